#include "domain/events/event_id_set.h"

#include <algorithm>
#include <random>
#include <utility>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace siyu::domain {
namespace {

bool Empty(const EventIdHash& h) { return h.lo == 0 && h.hi == 0; }

uint64_t ProcessSeed() {
  static const uint64_t seed = [] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }();
  return seed;
}

}  // namespace

EventIdHash HashEventId(std::string_view event_id) {
  XXH128_hash_t h = XXH3_128bits_withSeed(event_id.data(), event_id.size(), ProcessSeed());
  EventIdHash out{h.low64, h.high64};
  if (out.lo == 0 && out.hi == 0) out.lo = 1;
  return out;
}

EventIdSet::EventIdSet() { dir_.push_back(NewPage(0)); }

EventIdSet::~EventIdSet() = default;
EventIdSet::EventIdSet(EventIdSet&& o) noexcept
    : dir_(std::move(o.dir_)),
      blocks_(std::move(o.blocks_)),
      info_(std::move(o.info_)),
      overflow_(std::move(o.overflow_)),
      depth_(std::exchange(o.depth_, 0)),
      size_(std::exchange(o.size_, 0)) {}
EventIdSet& EventIdSet::operator=(EventIdSet&& o) noexcept {
  std::swap(dir_, o.dir_);
  std::swap(blocks_, o.blocks_);
  std::swap(info_, o.info_);
  std::swap(overflow_, o.overflow_);
  std::swap(depth_, o.depth_);
  std::swap(size_, o.size_);
  return *this;
}

uint32_t EventIdSet::NewPage(uint32_t depth) {
  const auto n = static_cast<uint32_t>(info_.size());
  if (n % kPagesPerBlock == 0) blocks_.emplace_back(new Page[kPagesPerBlock]());
  info_.push_back({0, depth});
  return n;
}

bool EventIdSet::Contains(const EventIdHash& h) const {
  const Page& p = PageFor(h);
  for (size_t i = h.lo & (kPageSlots - 1);; i = (i + 1) & (kPageSlots - 1)) {
    const EventIdHash& x = p.slots[i];
    if (x == h) return true;
    if (Empty(x)) break;  // a page is never full: every probe ends
  }
  return !overflow_.empty() && std::find(overflow_.begin(), overflow_.end(), h) != overflow_.end();
}

bool EventIdSet::PlaceInPage(Page& p, const EventIdHash& h) {
  for (size_t i = h.lo & (kPageSlots - 1);; i = (i + 1) & (kPageSlots - 1)) {
    EventIdHash& x = p.slots[i];
    if (x == h) return false;
    if (Empty(x)) {
      x = h;
      return true;
    }
  }
}

bool EventIdSet::Insert(const EventIdHash& h) {
  for (;;) {
    const uint32_t n = dir_[DirIndex(h)];
    PageInfo& info = info_[n];
    if (info.count < kPageMax) {
      if (!PlaceInPage(PageAt(n), h)) return false;
      ++info.count;
      ++size_;
      return true;
    }
    if (Contains(h)) return false;
    if (!Split(h)) {
      overflow_.push_back(h);
      ++size_;
      return true;
    }
  }
}

bool EventIdSet::Split(const EventIdHash& h) {
  const uint32_t n = dir_[DirIndex(h)];
  const uint32_t d = info_[n].depth;
  if (d >= kMaxDepth) return false;
  if (static_cast<int>(d) == depth_) {  // the directory doubles: each entry becomes two
    std::vector<uint32_t> dir(dir_.size() * 2);
    for (size_t i = 0; i < dir_.size(); ++i) dir[2 * i] = dir[2 * i + 1] = dir_[i];
    dir_.swap(dir);
    ++depth_;
  }
  const uint32_t m = NewPage(d + 1);  // may move blocks_' vector, not the pages
  info_[n].depth = d + 1;
  // The entries for the page's prefix are a run of 2^(depth_ - d); its upper half goes to `m`.
  const uint32_t run = uint32_t{1} << (depth_ - d);
  const uint32_t start = DirIndex(h) & ~(run - 1);
  for (uint32_t i = start + run / 2; i < start + run; ++i) dir_[i] = m;
  // Bit d from the top (0-based) sends each hash to the old page or the new one.
  Page& old = PageAt(n);
  Page& fresh = PageAt(m);
  Page copy = old;
  std::fill(std::begin(old.slots), std::end(old.slots), EventIdHash{});
  uint32_t stay = 0, moved = 0;
  for (const EventIdHash& x : copy.slots) {
    if (Empty(x)) continue;
    if ((x.hi >> (63 - d)) & 1) {
      PlaceInPage(fresh, x);
      ++moved;
    } else {
      PlaceInPage(old, x);
      ++stay;
    }
  }
  info_[n].count = stay;
  info_[m].count = moved;
  return true;
}

size_t EventIdSet::memory_bytes() const {
  return blocks_.size() * kPagesPerBlock * sizeof(Page) + dir_.capacity() * sizeof(uint32_t) +
         info_.capacity() * sizeof(PageInfo) + overflow_.capacity() * sizeof(EventIdHash);
}

}  // namespace siyu::domain
