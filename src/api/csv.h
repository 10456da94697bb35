// RFC 4180 CSV reading for imports: quoted fields, doubled quotes, CRLF or LF line ends, embedded
// newlines inside quotes, an optional UTF-8 byte-order mark. Records carry the line number they
// start on so errors can point at the file. Not thread-safe; owns nothing beyond its input copy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace siyu::api {

struct CsvRecord {
  int64_t line = 0;  // 1-based line of the record's first character
  std::vector<std::string> fields;
};

class CsvReader {
 public:
  explicit CsvReader(std::string text);
  // The next record; nullopt at the end. A malformed record (a quote in an unquoted field, an
  // unterminated quote) is an INVALID_FIELD error naming its line.
  StatusOr<std::optional<CsvRecord>> Next();

 private:
  std::string text_;
  size_t pos_ = 0;
  int64_t line_ = 1;
};

}  // namespace siyu::api
