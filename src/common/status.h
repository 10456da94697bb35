// Status and StatusOr<T>: how every fallible siyu function reports failure. Exceptions are not
// used for expected failures (bad input, conflicts, store errors); they only escape for defects.
// A Status carries a code from the registry (error_codes.h), a message for a human that says what
// to do, and, for input errors, the offending field.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "common/error_codes.h"

namespace siyu {

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const std::string& field() const { return field_; }
  // "CODE: message (field)" for logs.
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  std::string field_;
};

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status s) : v_(std::move(s)) {}     // NOLINT: implicit by design
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

inline Status InvalidField(std::string field, std::string message) {
  return Status(ErrorCode::kInvalidField, std::move(message), std::move(field));
}
inline Status Internal(std::string message) {
  return Status(ErrorCode::kInternal, std::move(message));
}

}  // namespace siyu

#define SIYU_CONCAT_INNER(a, b) a##b
#define SIYU_CONCAT(a, b) SIYU_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::siyu::Status siyu_status_ = (expr);        \
    if (!siyu_status_.ok()) return siyu_status_; \
  } while (0)

#define SIYU_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  SIYU_ASSIGN_OR_RETURN_IMPL(SIYU_CONCAT(siyu_statusor_, __LINE__), lhs, expr)
