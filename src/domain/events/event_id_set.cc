#include "domain/events/event_id_set.h"

#include <utility>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace siyu::domain {
namespace {

constexpr uint32_t kFirstShardSlots = 64;

bool Empty(const EventIdHash& h) { return h.lo == 0 && h.hi == 0; }

}  // namespace

EventIdHash HashEventId(std::string_view event_id) {
  XXH128_hash_t h = XXH3_128bits(event_id.data(), event_id.size());
  EventIdHash out{h.low64, h.high64};
  if (out.lo == 0 && out.hi == 0) out.lo = 1;
  return out;
}

EventIdSet::EventIdSet() : shards_(new Shard[size_t{1} << kShardBits]) {}

EventIdSet::EventIdSet(EventIdSet&& o) noexcept
    : shards_(std::exchange(o.shards_, nullptr)), size_(std::exchange(o.size_, 0)) {}

EventIdSet& EventIdSet::operator=(EventIdSet&& o) noexcept {
  std::swap(shards_, o.shards_);
  std::swap(size_, o.size_);
  return *this;
}

EventIdSet::~EventIdSet() {
  if (!shards_) return;
  for (size_t i = 0; i < (size_t{1} << kShardBits); ++i) delete[] shards_[i].slots;
}

bool EventIdSet::Contains(const EventIdHash& h) const {
  const Shard& s = shards_[ShardOf(h)];
  if (!s.slots) return false;
  for (size_t i = h.lo & s.mask;; i = (i + 1) & s.mask) {
    const EventIdHash& x = s.slots[i];
    if (x == h) return true;
    if (Empty(x)) return false;
  }
}

bool EventIdSet::Insert(const EventIdHash& h) {
  Shard& s = shards_[ShardOf(h)];
  if (!s.slots || (size_t{s.size} + 1) * 2 > size_t{s.mask} + 1) Grow(s);
  for (size_t i = h.lo & s.mask;; i = (i + 1) & s.mask) {
    EventIdHash& x = s.slots[i];
    if (x == h) return false;
    if (Empty(x)) {
      x = h;
      ++s.size;
      ++size_;
      return true;
    }
  }
}

size_t EventIdSet::memory_bytes() const {
  size_t bytes = (size_t{1} << kShardBits) * sizeof(Shard);
  for (size_t i = 0; i < (size_t{1} << kShardBits); ++i) {
    if (shards_[i].slots) bytes += (size_t{shards_[i].mask} + 1) * sizeof(EventIdHash);
  }
  return bytes;
}

void EventIdSet::Grow(Shard& s) {
  const size_t old_slots = s.slots ? size_t{s.mask} + 1 : 0;
  const size_t n = old_slots ? old_slots * 2 : kFirstShardSlots;
  EventIdHash* fresh = new EventIdHash[n]();
  const size_t mask = n - 1;
  for (size_t k = 0; k < old_slots; ++k) {
    const EventIdHash& h = s.slots[k];
    if (Empty(h)) continue;
    size_t i = h.lo & mask;
    while (!Empty(fresh[i])) i = (i + 1) & mask;
    fresh[i] = h;
  }
  delete[] s.slots;
  s.slots = fresh;
  s.mask = static_cast<uint32_t>(mask);
}

}  // namespace siyu::domain
