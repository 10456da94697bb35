#include "common/error_codes.h"

namespace siyu {
namespace {
struct Entry {
  std::string_view name;
  int http;
};
constexpr Entry kEntries[] = {
#define SIYU_X(e, name, http) {name, http},
    SIYU_ERROR_CODES(SIYU_X)
#undef SIYU_X
};
}  // namespace

std::string_view ErrorCodeName(ErrorCode code) { return kEntries[static_cast<int>(code)].name; }
int ErrorCodeHttpStatus(ErrorCode code) { return kEntries[static_cast<int>(code)].http; }

}  // namespace siyu
