// The key of an external id in the store: the 128-bit XXH3 hash of its canonical text, as two
// signed 64-bit halves (person_ids.key_hi, key_lo). The store keys person_ids by it instead of by
// the text: a random-order index of two integers takes ~29 bytes an id where one of the ~50-byte
// texts took ~53, so each transaction rewrites fewer of its pages and inserts compare integers.
// Two distinct ids sharing a key would need a 128-bit collision (about 1 in 10^24 for 30 M ids in
// a tenant), as the event-id set already assumes for event ids.
#pragma once

#include <cstdint>
#include <string_view>
#include <tuple>

namespace siyu {

struct IdKey {
  int64_t hi = 0;
  int64_t lo = 0;
  friend bool operator==(const IdKey&, const IdKey&) = default;
  friend bool operator<(const IdKey& a, const IdKey& b) {
    return std::tie(a.hi, a.lo) < std::tie(b.hi, b.lo);
  }
};

IdKey IdKeyOf(std::string_view canonical);

}  // namespace siyu
