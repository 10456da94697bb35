// JSON in and out of siyu, on Boost.JSON. FieldReader is the strict request-body reader every
// handler uses: it checks types and ranges, names the offending field, and rejects fields the
// route does not know. It keeps the first error and turns later reads into no-ops.
#pragma once

#include <boost/container/small_vector.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace siyu {

namespace json = boost::json;

// How deep request bodies may nest containers.
inline constexpr int kMaxJsonDepth = 32;

// Parses `body` as a JSON object (depth ≤ kMaxJsonDepth). MALFORMED_JSON otherwise.
StatusOr<json::object> ParseJsonObject(std::string_view body);
// The same, with the tree's memory from `sp` (a request's monotonic_resource, say), which must
// outlive the object.
StatusOr<json::object> ParseJsonObject(std::string_view body, json::storage_ptr sp);

// Lenient readers of other systems' answers (WeChat's): the member as a string / an int64, or
// nullopt when it is absent or of another type.
std::optional<std::string> JsonString(const json::object& obj, std::string_view key);
std::optional<int64_t> JsonInt(const json::object& obj, std::string_view key);

// Compact serialisation.
std::string ToJson(const json::value& v);
// Appends `s` as a JSON string, escaped as ToJson escapes it; and integers as ToJson writes them.
void AppendJsonString(std::string& out, std::string_view s);
void AppendJsonInt(std::string& out, int64_t v);
void AppendJsonInt(std::string& out, uint64_t v);

class FieldReader {
 public:
  // `prefix` names the object in field paths, e.g. "lines[2]".
  explicit FieldReader(const json::object& obj, std::string prefix = {});

  // A string of [min_len, max_len] UTF-8 code points. Absent: MISSING_FIELD.
  std::string String(std::string_view key, size_t min_len, size_t max_len);
  std::optional<std::string> OptString(std::string_view key, size_t min_len, size_t max_len);
  // An integer in [min, max]. Out of range answers `range_code` (AMOUNT_OUT_OF_RANGE for money).
  int64_t Int(std::string_view key, int64_t min, int64_t max,
              ErrorCode range_code = ErrorCode::kInvalidField);
  std::optional<int64_t> OptInt(std::string_view key, int64_t min, int64_t max,
                                ErrorCode range_code = ErrorCode::kInvalidField);
  std::optional<bool> OptBool(std::string_view key);
  // An array of [min_size, max_size] elements, or nullptr after an error.
  const json::array* Array(std::string_view key, size_t min_size, size_t max_size);
  // The same, absent or null allowed (nullptr, no error).
  const json::array* OptArray(std::string_view key, size_t min_size, size_t max_size);
  // Element `i` of an array read above, as an object reader; type errors are recorded here.
  const json::object* ObjectAt(const json::array& arr, std::string_view key, size_t i);

  // The raw value of `key` (read: not UNKNOWN_FIELD), nullptr when absent or null, for the
  // caller's own type check.
  const json::value* OptValue(std::string_view key) { return Find(key, false); }
  bool Has(std::string_view key) const;
  // Records an error found by the caller (first error wins).
  void Fail(Status s);
  std::string Path(std::string_view key) const;

  // The first error, or UNKNOWN_FIELD for any key that was never read.
  Status Finish();
  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }

 private:
  const json::value* Find(std::string_view key, bool required);
  // The checks of a present value; messages and paths are made only for an error.
  std::optional<std::string> CheckString(const json::value& v, std::string_view key, size_t min_len,
                                         size_t max_len);
  std::optional<int64_t> CheckInt(const json::value& v, std::string_view key, int64_t min,
                                  int64_t max, ErrorCode range_code);
  const json::array* CheckArray(const json::value& v, std::string_view key, size_t min_size,
                                size_t max_size);

  const json::object& obj_;
  std::string prefix_;
  boost::container::small_vector<std::string_view, 8> seen_;
  Status status_;
};

// Number of UTF-8 code points, or -1 when `s` is not valid UTF-8.
int64_t Utf8Length(std::string_view s);

}  // namespace siyu
