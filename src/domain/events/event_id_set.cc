#include "domain/events/event_id_set.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace siyu::domain {

EventIdHash HashEventId(std::string_view event_id) {
  XXH128_hash_t h = XXH3_128bits(event_id.data(), event_id.size());
  EventIdHash out{h.low64, h.high64};
  if (out.lo == 0 && out.hi == 0) out.lo = 1;
  return out;
}

bool EventIdSet::Contains(const EventIdHash& h) const {
  if (slots_.empty()) return false;
  const size_t mask = slots_.size() - 1;
  for (size_t i = h.lo & mask;; i = (i + 1) & mask) {
    const EventIdHash& s = slots_[i];
    if (s == h) return true;
    if (s.lo == 0 && s.hi == 0) return false;
  }
}

bool EventIdSet::Insert(const EventIdHash& h) {
  if ((size_ + 1) * 2 > slots_.size()) Grow();
  const size_t mask = slots_.size() - 1;
  for (size_t i = h.lo & mask;; i = (i + 1) & mask) {
    EventIdHash& s = slots_[i];
    if (s == h) return false;
    if (s.lo == 0 && s.hi == 0) {
      s = h;
      ++size_;
      return true;
    }
  }
}

void EventIdSet::Grow() {
  std::vector<EventIdHash> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, EventIdHash{});
  const size_t mask = slots_.size() - 1;
  for (const EventIdHash& h : old) {
    if (h.lo == 0 && h.hi == 0) continue;
    size_t i = h.lo & mask;
    while (!(slots_[i].lo == 0 && slots_[i].hi == 0)) i = (i + 1) & mask;
    slots_[i] = h;
  }
}

}  // namespace siyu::domain
