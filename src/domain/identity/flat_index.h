// FlatIndex: a compact open-addressing hash index from a key (kept by its owner) to a dense uint32
// index. It stores only a 32-bit hash tag and the index per slot (8 bytes), so the identity graph
// can index tens of millions of ids without a node allocation each (std::unordered_map costs
// ~60-100 bytes per entry before the key). The owner keeps the keys and answers equality through a
// callback, which the tag makes rare (one string compare per successful lookup, almost never for a
// miss).
//
// Linear probing; the home slot is derived from the tag alone ((tag * capacity) >> 32), so growing
// the table never needs the keys. No deletion (the graph never forgets an id or a person).
// Maximum load 3/4, growth x1.5; Reserve() sizes the table for a known count (rebuilds).
//
// Thread-safety: none of its own; the identity graph guards it (const methods may run
// concurrently with each other, not with a mutating one).
// Ownership: owns its slot array only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/prefetch.h"
#include "domain/identity/huge_alloc.h"

namespace siyu::identity {

using siyu::PrefetchLine;

// 64-bit finaliser (MurmurHash3 fmix64): spreads every input bit over the output, so the top 32
// bits make a good tag even for sequential integer keys.
inline uint64_t Mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// 64x64 -> 128-bit multiply folded to 64 bits: the mixing step of wyhash-style hashes.
inline uint64_t MulFold(uint64_t a, uint64_t b) {
  unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// A fast, well-mixed 64-bit hash of a byte string: 16 bytes per multiply, finished with Mix64.
// Not for adversarial keys: ids are validated, per-tenant, and every match is verified.
inline uint64_t HashBytes(std::string_view s, uint64_t seed = 0) {
  constexpr uint64_t kA = 0xa0761d6478bd642fULL, kB = 0xe7037ed1a0b428dbULL;
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ n ^ (seed * 0x8ebc6af09c88c6e3ULL);
  while (n > 16) {
    uint64_t a, b;
    __builtin_memcpy(&a, p, 8);
    __builtin_memcpy(&b, p + 8, 8);
    h = MulFold(a ^ kA ^ h, b ^ kB);
    p += 16;
    n -= 16;
  }
  // The last 1-16 bytes (zero-padded); the length is in the seed.
  uint64_t a = 0, b = 0;
  __builtin_memcpy(&a, p, n < 8 ? n : 8);
  if (n > 8) __builtin_memcpy(&b, p + 8, n - 8);
  return Mix64(MulFold(a ^ kA ^ h, b ^ kB));
}

inline uint32_t TagOf32(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }

class FlatIndex {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;

  // The index whose key matches, or kNone. `eq(index)` compares the caller's key with index's.
  template <typename Eq>
  uint32_t Find(uint32_t tag, Eq&& eq) const {
    if (slots_.empty()) return kNone;
    size_t cap = slots_.size();
    size_t i = Home(tag, cap);
    while (true) {
      const Slot& s = slots_[i];
      if (s.index == kNone) return kNone;
      if (s.tag == tag && eq(s.index)) return s.index;
      if (++i == cap) i = 0;
    }
  }

  // For batches: start loading the home slot of `tag` (a later Find or Insert then hits cache).
  void Prefetch(uint32_t tag) const { PrefetchLine(slots_.data() + Home(tag, slots_.size())); }

  // The first index stored under `tag`, without asking the owner to compare keys: a guess for
  // prefetching the key (right unless two keys share the 32-bit tag), kNone if there is none.
  uint32_t FirstTagMatch(uint32_t tag) const {
    if (slots_.empty()) return kNone;
    size_t cap = slots_.size();
    for (size_t i = Home(tag, cap);;) {
      const Slot& s = slots_[i];
      if (s.index == kNone || s.tag == tag) return s.index;
      if (++i == cap) i = 0;
    }
  }

  // Adds `index` under `tag`; the caller has checked that its key is absent.
  void Insert(uint32_t tag, uint32_t index) {
    if ((size_ + 1) * 4 > slots_.size() * 3) Grow(std::max<size_t>(16, slots_.size() * 3 / 2));
    Place(tag, index);
    ++size_;
  }

  // Sizes the table so `n` entries fit without growing.
  void Reserve(size_t n) {
    size_t want = n * 4 / 3 + 16;
    if (want > slots_.size()) Grow(want);
  }

  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }
  size_t MemoryBytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  struct Slot {
    uint32_t tag;
    uint32_t index;
  };

  static size_t Home(uint32_t tag, size_t cap) {
    return static_cast<size_t>((static_cast<uint64_t>(tag) * cap) >> 32);
  }

  void Place(uint32_t tag, uint32_t index) {
    size_t cap = slots_.size();
    size_t i = Home(tag, cap);
    while (slots_[i].index != kNone) {
      if (++i == cap) i = 0;
    }
    slots_[i] = Slot{tag, index};
  }

  void Grow(size_t cap) {
    std::vector<Slot, HugePageAllocator<Slot>> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{0, kNone});
    slots_.shrink_to_fit();
    for (const Slot& s : old) {
      if (s.index != kNone) Place(s.tag, s.index);
    }
  }

  std::vector<Slot, HugePageAllocator<Slot>> slots_;
  size_t size_ = 0;
};

}  // namespace siyu::identity
