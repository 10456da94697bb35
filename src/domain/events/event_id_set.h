// EventIdSet: the event ids a tenant has stored, as 128-bit XXH3 hashes, for deduplication without
// a store lookup (decision 0007). A hash is never 0 (0 marks an empty slot). No deletion: a stored
// event stays stored. Thread-safety: none; the events service guards it.
//
// The set is 1,024 open-addressing tables (16 bytes a slot, load at most 1/2), picked by the top
// bits of the hash, each grown on its own. One table of tens of millions of slots would double all
// at once, under the tenant's lock, and touch hundreds of megabytes of fresh memory in one go;
// shards double a megabyte at a time, spread over the run, and reuse the memory of the ones
// before them.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

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
  EventIdSet();
  ~EventIdSet();
  // A moved-from set may only be destroyed or assigned to.
  EventIdSet(EventIdSet&&) noexcept;
  EventIdSet& operator=(EventIdSet&&) noexcept;

  bool Contains(const EventIdHash& h) const;
  // Starts loading the slot where `h` would be: a batch prefetches all its hashes before it looks
  // them up, so that their cache misses overlap instead of following one another.
  void Prefetch(const EventIdHash& h) const {
    const Shard& s = shards_[ShardOf(h)];
    if (s.slots) __builtin_prefetch(&s.slots[h.lo & s.mask]);
  }
  // False if it was there already.
  bool Insert(const EventIdHash& h);
  size_t size() const { return size_; }
  size_t memory_bytes() const;

  static constexpr int kShardBits = 10;

 private:
  struct Shard {
    EventIdHash* slots = nullptr;  // mask + 1 slots, or none yet
    uint32_t mask = 0;
    uint32_t size = 0;
  };
  static size_t ShardOf(const EventIdHash& h) { return h.hi >> (64 - kShardBits); }
  static void Grow(Shard& s);

  std::unique_ptr<Shard[]> shards_;
  size_t size_ = 0;
};

}  // namespace siyu::domain
