#include "api/csv.h"

namespace siyu::api {

CsvReader::CsvReader(std::string text) : text_(std::move(text)) {
  if (text_.starts_with("\xEF\xBB\xBF")) pos_ = 3;
}

StatusOr<std::optional<CsvRecord>> CsvReader::Next() {
  // Skip blank lines between records.
  while (pos_ < text_.size() && (text_[pos_] == '\n' || text_[pos_] == '\r')) {
    if (text_[pos_] == '\n') ++line_;
    ++pos_;
  }
  if (pos_ >= text_.size()) return std::optional<CsvRecord>();
  CsvRecord rec;
  rec.line = line_;
  std::string field;
  bool quoted = false, was_quoted = false;
  auto error = [&](const std::string& what) {
    return Status(ErrorCode::kInvalidField, "line " + std::to_string(rec.line) + ": " + what,
                  "line " + std::to_string(rec.line));
  };
  while (pos_ < text_.size()) {
    char c = text_[pos_];
    if (quoted) {
      if (c == '"') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
          field.push_back('"');
          pos_ += 2;
          continue;
        }
        quoted = false;
        ++pos_;
        continue;
      }
      if (c == '\n') ++line_;
      field.push_back(c);
      ++pos_;
      continue;
    }
    if (c == '"') {
      if (!field.empty() || was_quoted) return error("a quote inside an unquoted field");
      quoted = was_quoted = true;
      ++pos_;
      continue;
    }
    if (c == ',') {
      rec.fields.push_back(std::move(field));
      field.clear();
      was_quoted = false;
      ++pos_;
      continue;
    }
    if (c == '\r' || c == '\n') {
      if (c == '\r' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '\n') ++pos_;
      ++pos_;
      ++line_;
      break;
    }
    if (was_quoted) return error("text after a closing quote");
    field.push_back(c);
    ++pos_;
  }
  if (quoted) return error("a quoted field is not closed");
  rec.fields.push_back(std::move(field));
  return std::optional<CsvRecord>(std::move(rec));
}

}  // namespace siyu::api
