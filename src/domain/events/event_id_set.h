// EventIdSet: the event ids a tenant has stored, as 128-bit XXH3 hashes, for deduplication without
// a store lookup (decision 0007). A hash is never 0 (0 marks an empty slot). No deletion: a stored
// event stays stored. Thread-safety: none; the events service guards it.
//
// Extendible hashing: a directory, indexed by the top bits of the hash, points at 4 KiB pages of
// 256 slots (open addressing inside the page, at most 3/4 full). A full page splits in two by
// the next bit; the directory doubles (4 bytes an entry) only when a page is as deep as it is.
// Growing never copies the whole set, never frees a page, and touches fresh memory one page at a
// time: ~28 bytes an event on average, against ~43 for one table doubled at load 1/2 (and twice
// that touched over its life, as each doubling takes new memory). The hashes are seeded per
// process, so that no client can aim its event ids at one page or one slot.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/prefetch.h"

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
  EventIdSet(EventIdSet&&) noexcept;
  EventIdSet& operator=(EventIdSet&&) noexcept;

  bool Contains(const EventIdHash& h) const;
  // Starts loading the slot where `h` would be: a batch prefetches all its hashes before it looks
  // them up, so that their cache misses overlap instead of following one another.
  void Prefetch(const EventIdHash& h) const {
    PrefetchLine(&PageFor(h).slots[h.lo & (kPageSlots - 1)]);
  }
  // False if it was there already.
  bool Insert(const EventIdHash& h);
  size_t size() const { return size_; }
  size_t memory_bytes() const;

  static constexpr size_t kPageSlots = 256;
  static constexpr uint32_t kPageMax = kPageSlots * 3 / 4;
  // The directory stops doubling here (2^24 pages hold ~2.4 * 10^9 events); a page that must split
  // beyond it keeps its extra hashes in a list instead.
  static constexpr int kMaxDepth = 24;

 private:
  struct Page {
    EventIdHash slots[kPageSlots];
  };
  struct PageInfo {
    uint32_t count = 0;
    uint32_t depth = 0;  // how many top bits its hashes share
  };
  static constexpr size_t kPagesPerBlock = 8;  // 32 KiB: what an idle tenant costs

  uint32_t DirIndex(const EventIdHash& h) const {
    return depth_ == 0 ? 0 : static_cast<uint32_t>(h.hi >> (64 - depth_));
  }
  Page& PageAt(uint32_t n) const { return blocks_[n / kPagesPerBlock][n % kPagesPerBlock]; }
  Page& PageFor(const EventIdHash& h) const { return PageAt(dir_[DirIndex(h)]); }
  uint32_t NewPage(uint32_t depth);
  // Splits the page `h` falls in; false when it is as deep as the directory may go.
  bool Split(const EventIdHash& h);
  static bool PlaceInPage(Page& p, const EventIdHash& h);

  std::vector<uint32_t> dir_;                    // page number per top-`depth_`-bit prefix
  std::vector<std::unique_ptr<Page[]>> blocks_;  // pages, kPagesPerBlock at a time
  std::vector<PageInfo> info_;                   // per page number
  std::vector<EventIdHash> overflow_;            // beyond kMaxDepth (never, in practice)
  int depth_ = 0;
  size_t size_ = 0;
};

}  // namespace siyu::domain
