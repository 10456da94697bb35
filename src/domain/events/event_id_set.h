// EventIdSet: the event ids a tenant has stored, as 128-bit XXH3 hashes in an open-addressing
// table (16 bytes a slot, load at most 1/2: ~32 bytes an event), for deduplication without a
// store lookup (decision 0007). A hash never 0 (0 marks an empty slot). No deletion: a stored
// event stays stored. Thread-safety: none; the events service guards it.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace siyu::domain {

struct EventIdHash {
  uint64_t lo = 0, hi = 0;
  bool operator==(const EventIdHash&) const = default;
};

EventIdHash HashEventId(std::string_view event_id);

struct EventIdHashHasher {
  size_t operator()(const EventIdHash& h) const { return static_cast<size_t>(h.lo); }
};

class EventIdSet {
 public:
  bool Contains(const EventIdHash& h) const;
  // Starts loading the slot where `h` would be: a batch prefetches all its hashes before it looks
  // them up, so that their cache misses overlap instead of following one another.
  void Prefetch(const EventIdHash& h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h.lo & (slots_.size() - 1)]);
  }
  // False if it was there already.
  bool Insert(const EventIdHash& h);
  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.capacity() * sizeof(EventIdHash); }

 private:
  void Grow();
  std::vector<EventIdHash> slots_;  // power-of-two size
  size_t size_ = 0;
};

}  // namespace siyu::domain
