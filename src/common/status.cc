#include "common/status.h"

namespace siyu {

std::string Status::ToString() const {
  std::string s(ErrorCodeName(code_));
  if (!message_.empty()) s += ": " + message_;
  if (!field_.empty()) s += " (" + field_ + ")";
  return s;
}

}  // namespace siyu
