#include "common/json.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <limits>

namespace siyu {

StatusOr<json::object> ParseJsonObject(std::string_view body) { return ParseJsonObject(body, {}); }

StatusOr<json::object> ParseJsonObject(std::string_view body, json::storage_ptr sp) {
  json::parse_options opt;
  opt.max_depth = kMaxJsonDepth;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec, std::move(sp), opt);
  if (ec) {
    return Status(ErrorCode::kMalformedJson,
                  "request body is not valid JSON (" + ec.message() + "); send a JSON object");
  }
  if (!v.is_object()) {
    return Status(ErrorCode::kMalformedJson, "request body must be a JSON object");
  }
  return std::move(v.as_object());
}

std::string ToJson(const json::value& v) { return json::serialize(v); }

void AppendJsonString(std::string& out, std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\' ||
        static_cast<unsigned char>(c) >= 0x80) {
      out += json::serialize(json::string_view(s.data(), s.size()));
      return;
    }
  }
  out += '"';
  out += s;
  out += '"';
}

namespace {
template <class Int>
void AppendDecimal(std::string& out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}
}  // namespace

void AppendJsonInt(std::string& out, int64_t v) { AppendDecimal(out, v); }
void AppendJsonInt(std::string& out, uint64_t v) { AppendDecimal(out, v); }

int64_t Utf8Length(std::string_view s) {
  int64_t n = 0;
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return -1;
    }
    i += len;
    ++n;
  }
  return n;
}

FieldReader::FieldReader(const json::object& obj, std::string prefix)
    : obj_(obj), prefix_(std::move(prefix)) {}

std::string FieldReader::Path(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
}

void FieldReader::Fail(Status s) {
  if (status_.ok()) status_ = std::move(s);
}

bool FieldReader::Has(std::string_view key) const {
  auto it = obj_.find(key);
  return it != obj_.end() && !it->value().is_null();
}

const json::value* FieldReader::Find(std::string_view key, bool required) {
  seen_.push_back(key);
  if (!status_.ok()) return nullptr;
  auto it = obj_.find(key);
  if (it == obj_.end() || it->value().is_null()) {
    if (required) {
      Fail(Status(ErrorCode::kMissingField, "field '" + Path(key) + "' is required", Path(key)));
    }
    return nullptr;
  }
  return &it->value();
}

std::optional<std::string> FieldReader::CheckString(const json::value& v, std::string_view key,
                                                    size_t min_len, size_t max_len) {
  if (!v.is_string()) {
    Fail(InvalidField(Path(key), "field '" + Path(key) + "' must be a string"));
    return std::nullopt;
  }
  std::string_view s = v.as_string();
  int64_t n = Utf8Length(s);
  if (n < 0) {
    Fail(InvalidField(Path(key), "field '" + Path(key) + "' is not valid UTF-8"));
    return std::nullopt;
  }
  if (static_cast<size_t>(n) < min_len || static_cast<size_t>(n) > max_len) {
    Fail(InvalidField(Path(key), "field '" + Path(key) + "' must have " + std::to_string(min_len) +
                                     " to " + std::to_string(max_len) + " characters"));
    return std::nullopt;
  }
  return std::string(s);
}

std::optional<std::string> FieldReader::OptString(std::string_view key, size_t min_len,
                                                  size_t max_len) {
  const json::value* v = Find(key, false);
  if (!v) return std::nullopt;
  return CheckString(*v, key, min_len, max_len);
}

std::string FieldReader::String(std::string_view key, size_t min_len, size_t max_len) {
  const json::value* v = Find(key, true);
  if (!v) return {};
  return CheckString(*v, key, min_len, max_len).value_or(std::string());
}

std::optional<int64_t> FieldReader::CheckInt(const json::value& v, std::string_view key,
                                             int64_t min, int64_t max, ErrorCode range_code) {
  auto out_of_range = [&] {
    std::string path = Path(key);
    Fail(Status(range_code,
                "field '" + path + "' must be between " + std::to_string(min) + " and " +
                    std::to_string(max),
                path));
  };
  auto not_integer = [&] {
    std::string path = Path(key);
    Fail(InvalidField(path, "field '" + path + "' must be an integer"));
  };
  int64_t x;
  if (v.is_int64()) {
    x = v.as_int64();
  } else if (v.is_uint64()) {
    out_of_range();
    return std::nullopt;
  } else if (v.is_double()) {
    double d = v.as_double();
    if (d != d || d > 9.2e18 || d < -9.2e18) {
      out_of_range();
      return std::nullopt;
    }
    not_integer();
    return std::nullopt;
  } else {
    not_integer();
    return std::nullopt;
  }
  if (x < min || x > max) {
    out_of_range();
    return std::nullopt;
  }
  return x;
}

std::optional<int64_t> FieldReader::OptInt(std::string_view key, int64_t min, int64_t max,
                                           ErrorCode range_code) {
  const json::value* v = Find(key, false);
  if (!v) return std::nullopt;
  return CheckInt(*v, key, min, max, range_code);
}

int64_t FieldReader::Int(std::string_view key, int64_t min, int64_t max, ErrorCode range_code) {
  const json::value* v = Find(key, true);
  if (!v) return 0;
  return CheckInt(*v, key, min, max, range_code).value_or(0);
}

std::optional<bool> FieldReader::OptBool(std::string_view key) {
  const json::value* v = Find(key, false);
  if (!v) return std::nullopt;
  if (!v->is_bool()) {
    Fail(InvalidField(Path(key), "field '" + Path(key) + "' must be true or false"));
    return std::nullopt;
  }
  return v->as_bool();
}

const json::array* FieldReader::CheckArray(const json::value& v, std::string_view key,
                                           size_t min_size, size_t max_size) {
  if (!v.is_array()) {
    std::string path = Path(key);
    Fail(InvalidField(path, "field '" + path + "' must be an array"));
    return nullptr;
  }
  const auto& a = v.as_array();
  if (a.size() < min_size || a.size() > max_size) {
    std::string path = Path(key);
    Fail(InvalidField(path, "field '" + path + "' must have " + std::to_string(min_size) + " to " +
                                std::to_string(max_size) + " elements"));
    return nullptr;
  }
  return &a;
}

const json::array* FieldReader::Array(std::string_view key, size_t min_size, size_t max_size) {
  const json::value* v = Find(key, true);
  if (!v) return nullptr;
  return CheckArray(*v, key, min_size, max_size);
}

const json::array* FieldReader::OptArray(std::string_view key, size_t min_size, size_t max_size) {
  const json::value* v = Find(key, false);
  if (!v) return nullptr;
  return CheckArray(*v, key, min_size, max_size);
}

const json::object* FieldReader::ObjectAt(const json::array& arr, std::string_view key, size_t i) {
  std::string path = Path(key) + "[" + std::to_string(i) + "]";
  if (!status_.ok()) return nullptr;
  if (!arr[i].is_object()) {
    Fail(InvalidField(path, "field '" + path + "' must be an object"));
    return nullptr;
  }
  return &arr[i].as_object();
}

Status FieldReader::Finish() {
  if (!status_.ok()) return status_;
  for (const auto& kv : obj_) {
    if (std::find(seen_.begin(), seen_.end(), kv.key()) == seen_.end()) {
      std::string path = Path(kv.key());
      return Status(ErrorCode::kUnknownField,
                    "field '" + path + "' is not accepted here; remove it (see docs/api.md)", path);
    }
  }
  return Status::Ok();
}

std::optional<std::string> JsonString(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

std::optional<int64_t> JsonInt(const json::object& obj, std::string_view key) {
  const json::value* v = obj.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->as_uint64());
  }
  return std::nullopt;
}

}  // namespace siyu
