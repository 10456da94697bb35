#include "common/id_key.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace siyu {

IdKey IdKeyOf(std::string_view canonical) {
  const XXH128_hash_t h = XXH3_128bits(canonical.data(), canonical.size());
  return IdKey{static_cast<int64_t>(h.high64), static_cast<int64_t>(h.low64)};
}

}  // namespace siyu
