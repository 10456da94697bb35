// PersonIndex: the store person id (int64 > 0) -> dense uint32 index map of one engine. Open
// addressing with linear probing; a slot holds key and value together (16 bytes, one cache miss
// per lookup) at load <= 0.7: about 25 bytes a person (std::unordered_map would cost ~50). No
// deletion: a person merged away keeps its index so that reviving it (unmerge) reuses it. Big
// tables live on huge pages (memory.h): a lookup is a random read over hundreds of MiB. A slot
// also carries a 32-bit hint the caller may set (the engine keeps the person's aggregate block
// handle there, so that it can start loading the block while the person's row is still loading).
//
// Thread-safety: none of its own (the engine's lock guards it). Ownership: owns its arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "domain/audience/internal/memory.h"

namespace siyu::audience::internal {

class PersonIndex {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;

  uint32_t Find(int64_t key) const {
    const Slot* s = FindSlot(key);
    return s ? s->value : kNone;
  }
  // Also gives the slot's hint (0 if never set).
  uint32_t Find(int64_t key, uint32_t* hint) const {
    const Slot* s = FindSlot(key);
    *hint = s ? s->hint : 0;
    return s ? s->value : kNone;
  }
  // Sets the hint of a present key.
  void SetHint(int64_t key, uint32_t hint) {
    if (Slot* s = const_cast<Slot*>(FindSlot(key))) s->hint = hint;
  }
  // Starts loading the home slot of `key` (batches: a later Find then hits the cache).
  void Prefetch(int64_t key) const {
    if (!slots_.empty()) PrefetchLine(&slots_[Hash(key) & (slots_.size() - 1)]);
  }
  // The caller has checked that `key` is absent.
  void Insert(int64_t key, uint32_t value) {
    if ((size_ + 1) * 10 > slots_.size() * 7) Grow(slots_.empty() ? 64 : slots_.size() * 2);
    Place(key, value);
    ++size_;
  }
  void Reserve(size_t n) {
    size_t cap = 64;
    while (cap * 7 < n * 10) cap *= 2;
    if (cap > slots_.size()) Grow(cap);
  }
  size_t size() const { return size_; }
  size_t bytes() const { return slots_.capacity() * sizeof(Slot); }

 private:
  static constexpr int64_t kEmpty = INT64_MIN;
  struct Slot {
    int64_t key = kEmpty;
    uint32_t value = kNone;
    uint32_t hint = 0;
  };
  static_assert(sizeof(Slot) == 16);
  const Slot* FindSlot(int64_t key) const {
    if (slots_.empty()) return nullptr;
    size_t mask = slots_.size() - 1;
    for (size_t i = Hash(key) & mask;; i = (i + 1) & mask) {
      if (slots_[i].key == key) return &slots_[i];
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }
  static size_t Hash(int64_t key) {
    uint64_t h = static_cast<uint64_t>(key);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return static_cast<size_t>(h);
  }
  void Place(int64_t key, uint32_t value, uint32_t hint = 0) {
    size_t mask = slots_.size() - 1;
    size_t i = Hash(key) & mask;
    while (slots_[i].key != kEmpty) i = (i + 1) & mask;
    slots_[i] = Slot{key, value, hint};
  }
  void Grow(size_t cap) {
    BigVector<Slot> old(cap);
    old.swap(slots_);
    for (const Slot& s : old) {
      if (s.key != kEmpty) Place(s.key, s.value, s.hint);
    }
  }

  BigVector<Slot> slots_;
  size_t size_ = 0;
};

}  // namespace siyu::audience::internal
