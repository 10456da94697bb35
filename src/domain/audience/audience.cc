#include "domain/audience/audience.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <roaring/roaring.hh>
#include <shared_mutex>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "domain/audience/internal/memory.h"
#include "domain/audience/internal/person_index.h"
#include "domain/identity/rw_lock.h"

namespace siyu::audience {

std::string_view DeltaKindName(DeltaKind k) {
  switch (k) {
    case DeltaKind::kTagAdded:
      return "tag_added";
    case DeltaKind::kTagRemoved:
      return "tag_removed";
    case DeltaKind::kSegmentEntered:
      return "segment_entered";
    case DeltaKind::kSegmentExited:
      return "segment_exited";
    case DeltaKind::kStageChanged:
      return "stage_changed";
    case DeltaKind::kRfmClassChanged:
      return "rfm_class_changed";
  }
  return "?";
}

PersonSet::PersonSet() : bits_(std::make_shared<const Roaring>()) {}
uint64_t PersonSet::Count() const { return bits_->cardinality(); }
bool PersonSet::SameMembers(const PersonSet& o) const { return *bits_ == *o.bits_; }

namespace {

constexpr uint32_t kNone = 0xffffffffu;
constexpr Day kNoDay = INT32_MIN;

// ----- Per-person aggregates ---------------------------------------------------------------------

// One order: 40 bytes. Its sku and category ids sit in the block's items at [item_begin, +n_sku)
// and [item_begin + n_sku, +n_cat).
struct OrderRec {
  int64_t id;
  int64_t amount;
  int64_t refunded;
  Day day;
  uint32_t item_begin;
  uint16_t n_sku;
  uint16_t n_cat;
  // A fully refunded order stops counting; a free order (amount 0) counts.
  bool Counts() const { return !(amount > 0 && refunded >= amount); }
  int64_t Net() const { return amount - refunded; }
};

// Events of one type on one day: 12 bytes, sorted by (type, day).
struct EventCell {
  Day day;
  uint32_t type;
  uint32_t count;
};

// The sum of one integer property of one event type on one day: 16 bytes, sorted by
// (type, prop, day).
struct PropCell {
  Day day;
  uint16_t type;
  uint16_t prop;
  int64_t sum;
};

// A person's aggregates live in one BlockArena block (only people with orders or events have
// one): the header, then the event cells, the property cells, the orders (sorted by (day, id))
// and their item ids, each region starting where the one before ends (8-byte aligned after the
// event cells). A fact usually reads the first one or two cache lines of the block.
struct FactsHead {
  uint32_t n_events, n_props, n_orders, n_items;
  uint32_t cls;  // the block's arena size class
};
static_assert(sizeof(FactsHead) == 20 && alignof(EventCell) == 4 && sizeof(EventCell) == 12);

struct FactsLayout {
  size_t ev, pr, od, it, end;  // byte offsets of the regions, and the bytes used
  explicit FactsLayout(const FactsHead& h)
      : ev(sizeof(FactsHead)),
        pr((ev + size_t{h.n_events} * sizeof(EventCell) + 7) & ~size_t{7}),
        od(pr + size_t{h.n_props} * sizeof(PropCell)),
        it(od + size_t{h.n_orders} * sizeof(OrderRec)),
        end(it + size_t{h.n_items} * 4) {}
};

// A read view of one person's block.
struct Facts {
  std::span<OrderRec> orders;
  const uint32_t* items = nullptr;
  std::span<EventCell> events;
  std::span<PropCell> props;
  explicit Facts(char* block) {
    const FactsHead& h = *reinterpret_cast<const FactsHead*>(block);
    FactsLayout l(h);
    events = {reinterpret_cast<EventCell*>(block + l.ev), h.n_events};
    props = {reinterpret_cast<PropCell*>(block + l.pr), h.n_props};
    orders = {reinterpret_cast<OrderRec*>(block + l.od), h.n_orders};
    items = reinterpret_cast<const uint32_t*>(block + l.it);
  }
};

// The per-person columns a fact reads, in one 64-byte row: at 10 M people every column of its
// own is a cache miss of its own, a row is one (and one prefetch).
struct alignas(64) Row {
  int64_t store_id;
  int64_t gmv;        // net GMV of the counting orders
  uint64_t touch;     // bit i = touchpoint i + 1
  uint64_t derived;   // membership bits 0..63 (Impl::AssignDerivedBits)
  uint32_t facts;     // the aggregates' arena block, 0 = none
  uint32_t n_orders;  // counting orders
  Day last_order;     // kNoDay for non-buyers
  Day first_seen;
  Day wake;                    // the current timer wheel entry, kNoDay = none
  uint32_t first_ch, last_ch;  // interned channels
  uint16_t tier;
  uint8_t stage_alive;  // Stage in the low 7 bits, alive in the top bit
  uint8_t rfm;          // RfmClass
};
static_assert(sizeof(Row) == 64);

// Strings interned to small dense ids; id 0 is the empty string ("none").
class Interner {
 public:
  Interner() {
    names_.emplace_back();
    index_.emplace("", 0);
  }
  uint32_t Intern(std::string_view s) {
    auto it = index_.find(std::string(s));
    if (it != index_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(names_.size());
    names_.emplace_back(s);
    index_.emplace(std::string(s), id);
    return id;
  }
  uint32_t Find(std::string_view s) const {
    auto it = index_.find(std::string(s));
    return it == index_.end() ? kNone : it->second;
  }
  const std::string& Name(uint32_t id) const { return names_[id]; }
  size_t size() const { return names_.size(); }

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t> index_;
};

// ----- Compiled expressions ----------------------------------------------------------------------

// What a fact changed, and what an expression depends on.
enum Feature : uint32_t {
  kFAttrs = 1,       // first_seen, channels, tier, touchpoints
  kFOrders = 2,      // orders, refunds
  kFStage = 4,       // the lifecycle stage
  kFRfm = 8,         // the RFM class
  kFTime = 16,       // the day (windows, *_days)
  kFAllEvents = 32,  // every event type (merges, replacements)
  kFRecompute = 64,  // recompute stage and RFM (with kFOrders/kFTime implied)
  kFAll = 128,       // a new, merged or replaced person: every expression, whatever it reads
};
constexpr uint32_t kFEverything =
    kFAttrs | kFOrders | kFStage | kFRfm | kFTime | kFAllEvents | kFAll;

struct Deps {
  uint32_t mask = 0;
  std::vector<uint32_t> event_types;
  std::vector<uint32_t> tags;  // tag slots
};

struct Changed {
  uint32_t mask = 0;
  uint32_t event_type = kNone;
  Day event_day = 0;            // with event_type: the day of the event cell just added
  bool event_new_cell = false;  // with event_type: the cell did not exist before
  std::vector<uint32_t> tags;   // tag slots whose membership just changed
};

// An expression with names resolved to this engine's slots and interned ids.
struct Node {
  Kind kind = Kind::kAnd;
  Cmp cmp = Cmp::kGe;
  ItemFilter filter = ItemFilter::kAny;
  int32_t window = 0;
  int64_t value = 0;
  uint32_t ref = kNone;   // tag slot, interned id, class, stage, touchpoint bit
  uint32_t ref2 = kNone;  // event_sum property
  std::vector<Node> kids;
};

bool IsBitmapLeaf(Kind k) {
  switch (k) {
    case Kind::kTag:
    case Kind::kRfm:
    case Kind::kStage:
    case Kind::kFirstChannel:
    case Kind::kLastChannel:
    case Kind::kTouchpoint:
    case Kind::kTier:
      return true;
    default:
      return false;
  }
}

bool HasAggregate(const Node& n) {
  if (!IsBitmapLeaf(n.kind) && n.kind != Kind::kAnd && n.kind != Kind::kOr &&
      n.kind != Kind::kNot) {
    return true;
  }
  for (const Node& k : n.kids) {
    if (HasAggregate(k)) return true;
  }
  return false;
}

struct Watch {
  enum Type : uint8_t {
    kOrderWindow,
    kEventWindow,
    kLastOrderDays,
    kFirstSeenDays,
    kFirstEventDays,
    kLastEventDays,
  } type;
  uint32_t ref;  // event type (kEventWindow, kFirstEventDays, kLastEventDays)
  int64_t n;     // window days or compared value
  bool operator==(const Watch&) const = default;
};

// Single-member changes of a big bitmap, applied later in bulk. A change made in place is a
// cache miss or more at 10 M people (and an array container shifts its tail); logged, the changes
// are applied when the bitmap is read or the log is long, sorted, as one union and one
// difference that visit each container once. Only bitmaps whose membership is also kept
// elsewhere (the per-person bits, stage and class) are logged: the writer never needs to ask
// them.
struct ChangeLog {
  static constexpr size_t kMinLimit = 4096;
  std::vector<uint64_t> entries;  // member << 32 | sequence << 1 | on
  size_t limit = kMinLimit;       // apply at this length (1/16 of the members, at least kMinLimit)
};

void ApplyLog(Roaring& bits, ChangeLog& log) {
  std::vector<uint64_t>& e = log.entries;
  if (e.empty()) return;
  std::sort(e.begin(), e.end());
  std::vector<uint32_t> add, del;
  for (size_t i = 0; i < e.size(); ++i) {
    if (i + 1 < e.size() && (e[i + 1] >> 32) == (e[i] >> 32)) continue;  // changed again later
    ((e[i] & 1) ? add : del).push_back(static_cast<uint32_t>(e[i] >> 32));
  }
  if (add.size() + del.size() < 64) {
    for (uint32_t d : add) bits.add(d);
    for (uint32_t d : del) bits.remove(d);
  } else {
    if (!add.empty()) bits |= Roaring(add.size(), add.data());
    if (!del.empty()) bits -= Roaring(del.size(), del.data());
  }
  e.clear();
  log.limit = std::max<size_t>(ChangeLog::kMinLimit, bits.cardinality() / 16);
}

struct TagSlot {
  int64_t id = 0;
  std::string group, name;
  bool alive = true;
  bool is_rule = false;
  Expr expr;
  Node node;
  Deps deps;
  Roaring bits;
  // Rule tags and the manual tags an expression refers to: the tag's bit in the per-person
  // membership bits (then changes of one member go through `log`); -1 for the others.
  int32_t bit = -1;
  ChangeLog log;
};

struct SegmentSlot {
  int64_t id = 0;
  std::string name;
  Expr expr;
  Node node;
  Deps deps;
  Roaring bits;
  int32_t bit = -1;
  ChangeLog log;
};

// A set produced by evaluation: borrowed from the engine (a tag's bitmap) or owned.
struct Set {
  const Roaring* ptr = nullptr;
  Roaring own;
  const Roaring& get() const { return ptr ? *ptr : own; }
  Roaring Take() && { return ptr ? Roaring(*ptr) : std::move(own); }
};

template <typename F>
void ForEach(const Roaring& r, F&& f) {
  roaring_uint32_iterator_t it;
  roaring_init_iterator(&r.roaring, &it);
  uint32_t buf[1024];
  while (true) {
    uint32_t n = roaring_read_uint32_iterator(&it, buf, 1024);
    for (uint32_t i = 0; i < n; ++i) f(buf[i]);
    if (n < 1024) break;
  }
}

}  // namespace

// =================================================================================================

struct AudienceEngine::Impl {
  explicit Impl(EngineOptions o) : opts(std::move(o)), today(opts.today) {
    stage_bits.resize(kStageCount);
    rfm_bits.resize(kRfmClassCount);
    stage_log.resize(kStageCount);
    rfm_log.resize(kRfmClassCount);
    tier_bits.resize(1);
    first_ch_bits.resize(1);
    last_ch_bits.resize(1);
    channel_ids.push_back(0);
    channel_index.emplace(0, 0);
    ResolveRfmThresholds();
  }

  mutable identity::RwLock mu;
  EngineOptions opts;
  Day today;
  bool bulk = false;
  RfmThresholds rfm_t;

  // Persons (dense).
  internal::PersonIndex index;
  internal::BigVector<Row> rows;
  // The store id while alive, 0 otherwise: member listings read 8 bytes a person here (nearly
  // sequentially) instead of a row each.
  internal::BigVector<int64_t> live_id;
  bool monotonic = true;  // store ids ascend with dense indexes (paging walks bitmaps directly)
  int64_t max_store_id = 0;
  std::vector<uint32_t> inviter;
  internal::BlockArena arena;  // per-person aggregates (Row::facts)
  // Membership of every rule tag and segment, and of every manual tag an expression refers to,
  // one bit each: the writer's per-fact step reads a bit instead of probing a bitmap per
  // expression (a Roaring lookup is one to three cache misses at 10 M people). Bits 0..63 live in
  // the row; the rest, `derived_words - 1` words per person, in `derived_ext`. Kept equal to the
  // bitmaps.
  uint32_t derived_words = 0;
  std::vector<uint64_t> derived_ext;
  std::unordered_map<uint32_t, uint32_t> merged_into;  // absorbed -> survivor (dense)

  // Interned values.
  Interner event_types, props, skus, categories, tiers, touchpoints;
  std::vector<int64_t> channel_ids;
  std::unordered_map<int64_t, uint32_t> channel_index;

  // Bitmaps.
  Roaring all;
  std::vector<Roaring> stage_bits, rfm_bits, tier_bits, touch_bits, first_ch_bits, last_ch_bits;
  // Logged changes (ChangeLog) of the stage and class bitmaps; the tags' and segments' are in
  // their slots. Readers apply them first (Settle): a read sees every bitmap up to date.
  std::vector<ChangeLog> stage_log, rfm_log;
  std::atomic<bool> unsettled{false};
  std::mutex settle_mu;  // readers share the engine's lock: one of them applies the logs

  // Definitions.
  std::vector<TagSlot> tags;
  std::unordered_map<int64_t, uint32_t> tag_by_id;
  std::vector<uint32_t> rule_order;  // rule tag slots, dependencies first
  std::vector<SegmentSlot> segments;
  std::map<int64_t, uint32_t> segment_by_id;
  std::vector<Watch> watches;

  // Timer wheel: day -> people to re-evaluate that day (stale entries skipped via `wake`).
  std::map<Day, std::vector<uint32_t>> wheel;

  // ---------------------------------------------------------------------------------------------
  // Small utilities

  static void Emit(Deltas* out, DeltaKind k, int64_t person, int64_t id, uint8_t from = 0,
                   uint8_t to = 0) {
    if (out) out->push_back(Delta{k, person, id, from, to});
  }

  uint32_t Dense(int64_t person) const {
    uint32_t d = index.Find(person);
    return d != kNone && Alive(d) ? d : kNone;
  }

  Status UnknownPerson(int64_t person) const {
    return Status(ErrorCode::kUnknownPerson,
                  fmt::format("person {} is not in the audience", person), "person");
  }

  uint32_t ChannelFind(int64_t ch) const {
    auto it = channel_index.find(ch);
    return it == channel_index.end() ? kNone : it->second;
  }
  uint32_t ChannelIntern(int64_t ch) {
    auto it = channel_index.find(ch);
    if (it != channel_index.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(channel_ids.size());
    channel_ids.push_back(ch);
    channel_index.emplace(ch, id);
    first_ch_bits.emplace_back();
    last_ch_bits.emplace_back();
    return id;
  }
  uint32_t TierIntern(std::string_view t) {
    uint32_t id = tiers.Intern(t);
    if (tier_bits.size() <= id) tier_bits.resize(id + 1);
    return id;
  }
  // Touchpoint kinds map to bits 0..63 (ids 1..64).
  uint32_t TouchIntern(std::string_view t) {
    uint32_t id = touchpoints.Find(t);
    if (id != kNone) return id;
    id = touchpoints.Intern(t);
    if (touch_bits.size() <= id) touch_bits.resize(id + 1);
    return id;
  }
  Status CheckAttrs(const PersonAttrs& a) const {
    size_t fresh = 0;
    // A person has a few touchpoints: the earlier ones are compared in place, and a set (its
    // allocations) is only for long lists.
    constexpr size_t kCompareInPlace = 16;
    std::unordered_set<std::string_view> seen;
    const auto& tps = a.touchpoints;
    for (size_t i = 0; i < tps.size(); ++i) {
      const std::string& t = tps[i];
      if (t.empty()) return InvalidField("touchpoints", "a touchpoint kind is a non-empty name");
      const bool first = tps.size() <= kCompareInPlace
                             ? std::find(tps.begin(), tps.begin() + static_cast<ptrdiff_t>(i), t) ==
                                   tps.begin() + static_cast<ptrdiff_t>(i)
                             : seen.insert(t).second;
      if (first && touchpoints.Find(t) == kNone) ++fresh;
    }
    if (touchpoints.size() - 1 + fresh > 64) {
      return InvalidField("touchpoints", "at most 64 touchpoint kinds per tenant");
    }
    if (a.first_channel < 0 || a.last_channel < 0) {
      return InvalidField("first_channel", "a channel id is positive (0 = none)");
    }
    return Status::Ok();
  }

  bool Alive(uint32_t d) const { return rows[d].stage_alive >> 7; }
  void SetAlive(uint32_t d, bool on) {
    rows[d].stage_alive = static_cast<uint8_t>((rows[d].stage_alive & 0x7f) | (on ? 0x80 : 0));
    live_id[d] = on ? rows[d].store_id : 0;
  }
  uint8_t StageOf(uint32_t d) const { return rows[d].stage_alive & 0x7f; }
  void SetStage(uint32_t d, uint8_t s) {
    rows[d].stage_alive = static_cast<uint8_t>((rows[d].stage_alive & 0x80) | s);
  }

  uint64_t& DWord(uint32_t d, int32_t bit) {
    return bit < 64 ? rows[d].derived
                    : derived_ext[size_t{d} * (derived_words - 1) + (bit >> 6) - 1];
  }
  bool DGet(uint32_t d, int32_t bit) const {
    uint64_t w =
        bit < 64 ? rows[d].derived : derived_ext[size_t{d} * (derived_words - 1) + (bit >> 6) - 1];
    return (w >> (bit & 63)) & 1;
  }
  void DSet(uint32_t d, int32_t bit, bool on) {
    uint64_t& w = DWord(d, bit);
    uint64_t m = uint64_t{1} << (bit & 63);
    w = on ? (w | m) : (w & ~m);
  }
  // Logs a membership change of a logged bitmap.
  void Defer(Roaring& bits, ChangeLog& log, uint32_t d, bool on) {
    log.entries.push_back((uint64_t{d} << 32) | (uint64_t{log.entries.size()} << 1) | (on ? 1 : 0));
    unsettled.store(true, std::memory_order_relaxed);
    if (log.entries.size() >= log.limit) ApplyLog(bits, log);
  }
  // Applies every log (the writer, under the exclusive lock, before it reads or replaces bitmaps).
  void SettleAll() {
    if (!unsettled.load(std::memory_order_relaxed)) return;
    for (TagSlot& t : tags) ApplyLog(t.bits, t.log);
    for (SegmentSlot& g : segments) ApplyLog(g.bits, g.log);
    for (int i = 0; i < kStageCount; ++i) ApplyLog(stage_bits[i], stage_log[i]);
    for (int i = 0; i < kRfmClassCount; ++i) ApplyLog(rfm_bits[i], rfm_log[i]);
    unsettled.store(false, std::memory_order_release);
  }
  // A reader, under the shared lock, before it reads bitmaps. No reader reads while the logs are
  // not empty: every reader passes here first, and only a writer fills them.
  void Settle() {
    if (!unsettled.load(std::memory_order_acquire)) return;
    std::lock_guard<std::mutex> g(settle_mu);
    SettleAll();
  }

  // Tag membership (manual or rule) of one person.
  bool HasTag(uint32_t slot, uint32_t d) const {
    const TagSlot& t = tags[slot];
    return t.bit >= 0 ? DGet(d, t.bit) : t.bits.contains(d);
  }
  // Sets a tag's membership of d; false if it was so already.
  bool SetTagMember(uint32_t slot, uint32_t d, bool on) {
    TagSlot& t = tags[slot];
    if (t.bit < 0) return on ? t.bits.addChecked(d) : t.bits.removeChecked(d);
    if (DGet(d, t.bit) == on) return false;
    DSet(d, t.bit, on);
    Defer(t.bits, t.log, d, on);
    return true;
  }
  bool SetSegmentMember(SegmentSlot& g, uint32_t d, bool on) {
    if (DGet(d, g.bit) == on) return false;
    DSet(d, g.bit, on);
    Defer(g.bits, g.log, d, on);
    return true;
  }
  // Gives every rule tag, every segment and every manual tag an expression refers to a bit,
  // refills the bits from the bitmaps, and rebuilds the triggers (definition changes only:
  // O(people x words + members)).
  void AssignDerivedBits() {
    SettleAll();
    std::vector<uint8_t> referred(tags.size(), 0);
    for (const TagSlot& t : tags) {
      if (!t.alive || !t.is_rule) continue;
      for (uint32_t r : t.deps.tags) referred[r] = 1;
    }
    for (const SegmentSlot& g : segments) {
      for (uint32_t r : g.deps.tags) referred[r] = 1;
    }
    int32_t n = 0;
    for (uint32_t i = 0; i < tags.size(); ++i) {
      const TagSlot& t = tags[i];
      tags[i].bit = t.alive && (t.is_rule || referred[i]) ? n++ : -1;
    }
    for (SegmentSlot& g : segments) g.bit = n++;
    derived_words = static_cast<uint32_t>((n + 63) / 64);
    for (Row& r : rows) r.derived = 0;
    derived_ext.assign(rows.size() * (derived_words > 1 ? derived_words - 1 : 0), 0);
    for (TagSlot& t : tags) {
      if (t.bit >= 0) ForEach(t.bits, [&](uint32_t d) { DSet(d, t.bit, true); });
    }
    for (SegmentSlot& g : segments) ForEach(g.bits, [&](uint32_t d) { DSet(d, g.bit, true); });
    BuildTriggers(rule_trig, rule_order.size(),
                  [&](size_t i) -> const Deps& { return tags[rule_order[i]].deps; });
    BuildTriggers(seg_trig, segments.size(),
                  [&](size_t i) -> const Deps& { return segments[i].deps; });
  }

  // Which rule tags (positions in rule_order) or segments a change can affect, as bitsets; Touch
  // walks only those.
  struct Triggers {
    size_t words = 0;
    std::vector<uint64_t> feature[5];  // kFAttrs, kFOrders, kFStage, kFRfm, kFTime
    std::vector<uint64_t> any_event;   // reads some event type
    std::vector<uint64_t> all;
    std::vector<std::vector<uint64_t>> event;  // by event type (empty: none)
    std::vector<std::vector<uint64_t>> tag;    // by tag slot (empty: none)
  };
  Triggers rule_trig, seg_trig;
  std::vector<uint64_t> due_rules, due_segments;  // Touch's scratch

  template <typename DepsOf>
  void BuildTriggers(Triggers& t, size_t n, DepsOf deps_of) {
    t.words = (n + 63) / 64;
    auto set = [&](std::vector<uint64_t>& v, size_t i) {
      if (v.empty()) v.assign(t.words, 0);
      v[i >> 6] |= uint64_t{1} << (i & 63);
    };
    for (auto& f : t.feature) f.assign(t.words, 0);
    t.any_event.assign(t.words, 0);
    t.all.assign(t.words, 0);
    t.event.clear();
    t.tag.assign(tags.size(), {});
    for (size_t i = 0; i < n; ++i) {
      const Deps& d = deps_of(i);
      set(t.all, i);
      for (int b = 0; b < 5; ++b) {
        if (d.mask & (1u << b)) set(t.feature[b], i);
      }
      if (!d.event_types.empty()) set(t.any_event, i);
      for (uint32_t ty : d.event_types) {
        if (t.event.size() <= ty) t.event.resize(ty + 1);
        set(t.event[ty], i);
      }
      for (uint32_t tg : d.tags) set(t.tag[tg], i);
    }
  }

  static void OrInto(std::vector<uint64_t>& acc, const std::vector<uint64_t>& v) {
    for (size_t i = 0; i < v.size(); ++i) acc[i] |= v[i];
  }
  // The rules or segments that `c` may affect.
  static void Due(const Triggers& t, const Changed& c, std::vector<uint64_t>& out) {
    if (c.mask & kFAll) {
      out = t.all;
      return;
    }
    out.assign(t.words, 0);
    for (int b = 0; b < 5; ++b) {
      if (c.mask & (1u << b)) OrInto(out, t.feature[b]);
    }
    if (c.mask & kFAllEvents) OrInto(out, t.any_event);
    if (c.event_type < t.event.size()) OrInto(out, t.event[c.event_type]);
    for (uint32_t tg : c.tags) {
      if (tg < t.tag.size()) OrInto(out, t.tag[tg]);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Persons

  uint32_t NewSlot(int64_t person) {
    uint32_t d = static_cast<uint32_t>(rows.size());
    index.Insert(person, d);
    if (person < max_store_id) monotonic = false;
    max_store_id = std::max(max_store_id, person);
    Row r{};
    r.store_id = person;
    r.last_order = kNoDay;
    r.wake = kNoDay;
    r.stage_alive = static_cast<uint8_t>(Stage::kProspect);
    rows.push_back(r);
    live_id.push_back(0);
    inviter.push_back(kNone);
    if (derived_words > 1) derived_ext.resize(derived_ext.size() + derived_words - 1, 0);
    return d;
  }

  // Brings a slot to life as an empty prospect.
  void Revive(uint32_t d) {
    SetAlive(d, 1);
    merged_into.erase(d);
    all.add(d);
    SetStage(d, static_cast<uint8_t>(Stage::kProspect));
    constexpr int kP = static_cast<int>(Stage::kProspect);
    Defer(stage_bits[kP], stage_log[kP], d, true);
    rows[d].rfm = 0;
  }

  void SetAttrs(uint32_t d, const PersonAttrs& a) {
    rows[d].first_seen = a.first_seen_day;
    uint32_t fc = ChannelIntern(a.first_channel);
    uint32_t lc = ChannelIntern(a.last_channel);
    uint32_t ti = TierIntern(a.tier);
    uint64_t mask = 0;
    for (const std::string& t : a.touchpoints) mask |= uint64_t{1} << (TouchIntern(t) - 1);
    SetAttrIds(d, fc, lc, ti, mask);
  }
  // Value 0 ("none") has no bitmap member: it cannot be asked for.
  template <typename T>
  static void MoveValue(std::vector<Roaring>& bits, T& col, uint32_t d, uint32_t v) {
    if (col == v) return;
    if (col) bits[col].remove(d);
    col = static_cast<T>(v);
    if (v) bits[v].add(d);
  }
  void SetAttrIds(uint32_t d, uint32_t fc, uint32_t lc, uint32_t ti, uint64_t mask) {
    MoveValue(first_ch_bits, rows[d].first_ch, d, fc);
    MoveValue(last_ch_bits, rows[d].last_ch, d, lc);
    MoveValue(tier_bits, rows[d].tier, d, ti);
    uint64_t old = rows[d].touch;
    for (uint32_t b = 0; b < 64; ++b) {
      uint64_t bit = uint64_t{1} << b;
      if ((old & bit) && !(mask & bit)) touch_bits[b + 1].remove(d);
      if (!(old & bit) && (mask & bit)) touch_bits[b + 1].add(d);
    }
    rows[d].touch = mask;
  }

  // ---------------------------------------------------------------------------------------------
  // Aggregates (one arena block per person)

  // The person's block, or null without orders and events.
  char* Block(uint32_t d) const { return rows[d].facts ? arena.At(rows[d].facts) : nullptr; }

  // Grows d's block (creating it) by the given counts: each region keeps its contents at its
  // start and gets the new room at its end. Returns the block (it may have moved).
  char* GrowFacts(uint32_t d, uint32_t events, uint32_t n_props, uint32_t orders, uint32_t items) {
    uint32_t h = rows[d].facts;
    FactsHead old{};
    char* b = nullptr;
    if (h) {
      b = arena.At(h);
      std::memcpy(&old, b, sizeof old);
    }
    FactsHead nh = old;
    nh.n_events += events;
    nh.n_props += n_props;
    nh.n_orders += orders;
    nh.n_items += items;
    FactsLayout lo(old), ln(nh);
    size_t units = (ln.end + internal::BlockArena::kUnit - 1) / internal::BlockArena::kUnit;
    if (units > (size_t{1} << 28)) throw std::bad_alloc();
    if (!h || units > internal::BlockArena::ClassUnits(old.cls)) {
      // A quarter more than needed: the next few facts fit without moving the block again.
      nh.cls = internal::BlockArena::ClassOf(static_cast<uint32_t>(units + units / 4));
      uint32_t nhandle = arena.Alloc(nh.cls);
      char* nb = arena.At(nhandle);
      if (h) {
        std::memcpy(nb + ln.ev, b + lo.ev, size_t{old.n_events} * sizeof(EventCell));
        std::memcpy(nb + ln.pr, b + lo.pr, size_t{old.n_props} * sizeof(PropCell));
        std::memcpy(nb + ln.od, b + lo.od, size_t{old.n_orders} * sizeof(OrderRec));
        std::memcpy(nb + ln.it, b + lo.it, size_t{old.n_items} * 4);
        arena.Free(h, old.cls);
      }
      rows[d].facts = nhandle;
      index.SetHint(rows[d].store_id, nhandle);
      b = nb;
    } else {
      // Regions only move right: the last one first.
      std::memmove(b + ln.it, b + lo.it, size_t{old.n_items} * 4);
      std::memmove(b + ln.od, b + lo.od, size_t{old.n_orders} * sizeof(OrderRec));
      std::memmove(b + ln.pr, b + lo.pr, size_t{old.n_props} * sizeof(PropCell));
    }
    std::memcpy(b, &nh, sizeof nh);
    return b;
  }

  void DropFacts(uint32_t d) {
    if (!rows[d].facts) return;
    FactsHead h;
    std::memcpy(&h, arena.At(rows[d].facts), sizeof h);
    arena.Free(rows[d].facts, h.cls);
    rows[d].facts = 0;
    index.SetHint(rows[d].store_id, 0);
  }

  void RecomputeOrderColumns(uint32_t d) {
    uint32_t n = 0;
    int64_t sum = 0;
    Day last = kNoDay;
    if (char* b = Block(d)) {
      for (const OrderRec& o : Facts(b).orders) {
        if (!o.Counts()) continue;
        ++n;
        sum += o.Net();
        last = std::max(last, o.day);
      }
    }
    rows[d].n_orders = n;
    rows[d].gmv = sum;
    rows[d].last_order = last;
  }

  // Inserts an order (by (day, id)) with its item ids.
  void InsertOrderRec(uint32_t d, OrderRec r, const uint32_t* ids) {
    uint32_t n_ids = uint32_t{r.n_sku} + r.n_cat;
    char* b = GrowFacts(d, 0, 0, 1, n_ids);
    Facts f(b);
    r.item_begin = static_cast<uint32_t>(FactsHeadOf(b).n_items - n_ids);
    if (n_ids) {
      std::memcpy(const_cast<uint32_t*>(f.items) + r.item_begin, ids, size_t{n_ids} * 4);
    }
    OrderRec* first = f.orders.data();
    OrderRec* last = first + f.orders.size() - 1;  // the new room is the last record
    OrderRec* at = std::upper_bound(first, last, r, [](const OrderRec& a, const OrderRec& b) {
      return a.day != b.day ? a.day < b.day : a.id < b.id;
    });
    std::memmove(at + 1, at, static_cast<size_t>(last - at) * sizeof(OrderRec));
    *at = r;
  }
  static FactsHead FactsHeadOf(const char* b) {
    FactsHead h;
    std::memcpy(&h, b, sizeof h);
    return h;
  }

  void InsertOrder(uint32_t d, const OrderFact& o) {
    OrderRec r{o.id,
               o.amount_fen,
               o.refunded_fen,
               o.day,
               0,
               static_cast<uint16_t>(o.skus.size()),
               static_cast<uint16_t>(o.categories.size())};
    uint32_t small[16];
    std::vector<uint32_t> big;
    size_t n = o.skus.size() + o.categories.size();
    uint32_t* ids = small;
    if (n > std::size(small)) {
      big.resize(n);
      ids = big.data();
    }
    size_t k = 0;
    for (const std::string& s : o.skus) ids[k++] = skus.Intern(s);
    for (const std::string& c : o.categories) ids[k++] = categories.Intern(c);
    InsertOrderRec(d, r, ids);
  }

  static EventCell* FindEventCell(std::span<EventCell> events, uint32_t type, Day day) {
    return std::lower_bound(events.data(), events.data() + events.size(), std::pair(type, day),
                            [](const EventCell& c, const std::pair<uint32_t, Day>& k) {
                              return c.type != k.first ? c.type < k.first : c.day < k.second;
                            });
  }
  // The first and last cell of `type` (null when the person has none).
  static const EventCell* FirstEventCell(std::span<const EventCell> events, uint32_t type) {
    const EventCell* it =
        std::lower_bound(events.data(), events.data() + events.size(), type,
                         [](const EventCell& c, uint32_t t) { return c.type < t; });
    return it != events.data() + events.size() && it->type == type ? it : nullptr;
  }
  static const EventCell* LastEventCell(std::span<const EventCell> events, uint32_t type) {
    const EventCell* it =
        std::upper_bound(events.data(), events.data() + events.size(), type,
                         [](uint32_t t, const EventCell& c) { return t < c.type; });
    return it != events.data() && (it - 1)->type == type ? it - 1 : nullptr;
  }
  // True if the (type, day) cell is new.
  bool AddEventCell(uint32_t d, uint32_t type, Day day, uint32_t count) {
    size_t pos = 0;
    if (char* b = Block(d)) {
      std::span<EventCell> ev = Facts(b).events;
      EventCell* it = FindEventCell(ev, type, day);
      if (it != ev.data() + ev.size() && it->type == type && it->day == day) {
        it->count += count;
        return false;
      }
      pos = static_cast<size_t>(it - ev.data());
    }
    std::span<EventCell> ev = Facts(GrowFacts(d, 1, 0, 0, 0)).events;
    std::memmove(ev.data() + pos + 1, ev.data() + pos, (ev.size() - 1 - pos) * sizeof(EventCell));
    ev[pos] = EventCell{day, type, count};
    return true;
  }
  void AddPropCell(uint32_t d, uint16_t type, uint16_t prop, Day day, int64_t v) {
    auto key = [](const PropCell& c) { return std::tuple(c.type, c.prop, c.day); };
    PropCell cell{day, type, prop, v};
    auto find = [&](std::span<PropCell> props_of) {
      return std::lower_bound(
          props_of.data(), props_of.data() + props_of.size(), cell,
          [&](const PropCell& a, const PropCell& b) { return key(a) < key(b); });
    };
    size_t pos = 0;
    if (char* b = Block(d)) {
      std::span<PropCell> pr = Facts(b).props;
      PropCell* it = find(pr);
      if (it != pr.data() + pr.size() && key(*it) == key(cell)) {
        it->sum += v;
        return;
      }
      pos = static_cast<size_t>(it - pr.data());
    }
    std::span<PropCell> pr = Facts(GrowFacts(d, 0, 1, 0, 0)).props;
    std::memmove(pr.data() + pos + 1, pr.data() + pos, (pr.size() - 1 - pos) * sizeof(PropCell));
    pr[pos] = cell;
  }
  Status CheckEvent(const EventFact& e) const {
    if (e.type.empty()) return InvalidField("type", "the event type is a non-empty name");
    if (e.count == 0) return InvalidField("count", "an event fact stands for at least one event");
    if (event_types.size() > 65535 && event_types.Find(e.type) == kNone) {
      return InvalidField("type", "too many event types");
    }
    for (const auto& [k, v] : e.values) {
      if (k.empty()) return InvalidField("values", "a property name is non-empty");
    }
    if (props.size() > 65535) return InvalidField("values", "too many event properties");
    return Status::Ok();
  }
  // Returns the event's type id; *new_cell: whether its (type, day) cell is new.
  uint32_t ApplyEvent(uint32_t d, const EventFact& e, bool* new_cell = nullptr) {
    uint32_t t = event_types.Intern(e.type);
    bool fresh = AddEventCell(d, t, e.day, e.count);
    if (new_cell) *new_cell = fresh;
    for (const auto& [k, v] : e.values) {
      AddPropCell(d, static_cast<uint16_t>(t), static_cast<uint16_t>(props.Intern(k)), e.day, v);
    }
    return t;
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle and RFM

  struct StageInfo {
    Stage stage = Stage::kProspect;
    int32_t cycle = 0;
    int64_t dormant_days = 0, churn_days = 0;
    Day last = kNoDay;
  };

  int64_t CycleOf(const Day* days, size_t n) const {
    if (n < 2) return opts.lifecycle.default_cycle_days;
    int64_t small[64];
    std::vector<int64_t> big;
    int64_t* gaps = small;
    if (n - 1 > 64) {
      big.resize(n - 1);
      gaps = big.data();
    }
    for (size_t i = 1; i < n; ++i) gaps[i - 1] = int64_t{days[i]} - days[i - 1];
    size_t m = n - 1;
    std::nth_element(gaps, gaps + m / 2, gaps + m);
    int64_t med = gaps[m / 2];
    if (m % 2 == 0) med = (*std::max_element(gaps, gaps + m / 2) + med) / 2;
    return std::max<int64_t>(1, med);
  }
  int64_t Scaled(double k, int64_t cycle) const {
    return std::max<int64_t>(1, std::llround(k * static_cast<double>(cycle)));
  }

  StageInfo ComputeStage(uint32_t d) const {
    StageInfo s;
    s.cycle = opts.lifecycle.default_cycle_days;
    if (rows[d].n_orders == 0) {
      s.dormant_days = Scaled(opts.lifecycle.dormant_cycles, s.cycle);
      s.churn_days = Scaled(opts.lifecycle.churn_cycles, s.cycle);
      return s;
    }
    // Distinct days of counting orders, ascending.
    Day small[64];
    std::vector<Day> big;
    Day* days = small;
    std::span<const OrderRec> orders = Facts(Block(d)).orders;
    if (orders.size() > 64) {
      big.resize(orders.size());
      days = big.data();
    }
    size_t nd = 0;
    for (const OrderRec& o : orders) {
      if (o.Counts() && (nd == 0 || days[nd - 1] != o.day)) days[nd++] = o.day;
    }
    int64_t cycle = CycleOf(days, nd);
    s.cycle = static_cast<int32_t>(std::min<int64_t>(cycle, INT32_MAX));
    s.dormant_days = Scaled(opts.lifecycle.dormant_cycles, cycle);
    s.churn_days = Scaled(opts.lifecycle.churn_cycles, cycle);
    s.last = days[nd - 1];
    int64_t since = int64_t{today} - s.last;
    if (since > s.churn_days) {
      s.stage = Stage::kChurned;
    } else if (since > s.dormant_days) {
      s.stage = Stage::kDormant;
    } else if (nd >= 2 && int64_t{days[nd - 1]} - days[nd - 2] >
                              Scaled(opts.lifecycle.dormant_cycles, CycleOf(days, nd - 1))) {
      s.stage = Stage::kRecalled;
    } else if (rows[d].n_orders == 1) {
      s.stage = Stage::kNew;
    } else if (rows[d].n_orders >= opts.lifecycle.active_min_orders && since <= cycle) {
      s.stage = Stage::kActive;
    } else {
      s.stage = Stage::kRepeat;
    }
    return s;
  }

  RfmScore ComputeRfm(uint32_t d) const {
    RfmScore r;
    if (rows[d].n_orders == 0) return r;
    int64_t rec = int64_t{today} - rows[d].last_order;
    r.recency_days = static_cast<int32_t>(std::clamp<int64_t>(rec, INT32_MIN, INT32_MAX));
    r.frequency = rows[d].n_orders;
    r.monetary_fen = rows[d].gmv;
    r.r_high = rec < rfm_t.recency_days;
    r.f_high = int64_t{r.frequency} > rfm_t.frequency;
    r.m_high = r.monetary_fen > rfm_t.monetary_fen;
    r.cls = RfmClassOf(r.r_high, r.f_high, r.m_high);
    return r;
  }

  // Resolves quantile thresholds over the current buyers; true if they changed.
  bool ResolveRfmThresholds() {
    const RfmOptions& o = opts.rfm;
    RfmThresholds t;
    auto resolve = [&](const RfmThreshold& th, auto value_of) -> int64_t {
      if (th.mode == RfmThreshold::Mode::kFixed) return th.value;
      std::vector<int64_t> v;
      ForEach(all, [&](uint32_t d) {
        if (rows[d].n_orders > 0) v.push_back(value_of(d));
      });
      if (v.empty()) return 0;
      double q = std::clamp(th.quantile, 0.0, 1.0);
      size_t k = static_cast<size_t>(std::floor(q * static_cast<double>(v.size() - 1)));
      std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
      return v[k];
    };
    t.recency_days =
        resolve(o.recency, [&](uint32_t d) { return int64_t{today} - rows[d].last_order; });
    t.frequency = resolve(o.frequency, [&](uint32_t d) { return int64_t{rows[d].n_orders}; });
    t.monetary_fen = resolve(o.monetary, [&](uint32_t d) { return rows[d].gmv; });
    bool changed = !(t == rfm_t);
    rfm_t = t;
    return changed;
  }

  // Recomputes stage and RFM class; records what changed.
  StageInfo UpdateStageRfm(uint32_t d, Changed& c, Deltas* out) {
    StageInfo info = ComputeStage(d);
    Stage s = info.stage;
    if (static_cast<uint8_t>(s) != StageOf(d)) {
      Emit(out, DeltaKind::kStageChanged, rows[d].store_id, 0, StageOf(d), static_cast<uint8_t>(s));
      Defer(stage_bits[StageOf(d)], stage_log[StageOf(d)], d, false);
      SetStage(d, static_cast<uint8_t>(s));
      Defer(stage_bits[StageOf(d)], stage_log[StageOf(d)], d, true);
      c.mask |= kFStage;
    }
    UpdateRfm(d, c, out);
    return info;
  }
  void UpdateRfm(uint32_t d, Changed& c, Deltas* out) {
    uint8_t cls = static_cast<uint8_t>(ComputeRfm(d).cls);
    if (cls != rows[d].rfm) {
      Emit(out, DeltaKind::kRfmClassChanged, rows[d].store_id, 0, rows[d].rfm, cls);
      if (rows[d].rfm) Defer(rfm_bits[rows[d].rfm], rfm_log[rows[d].rfm], d, false);
      rows[d].rfm = cls;
      if (cls) Defer(rfm_bits[cls], rfm_log[cls], d, true);
      c.mask |= kFRfm;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Point evaluation (one person)

  const OrderRec* WindowStart(std::span<const OrderRec> orders, int32_t window) const {
    const OrderRec* first = orders.data();
    const OrderRec* last = first + orders.size();
    if (window <= 0) return first;
    Day lo = static_cast<Day>(int64_t{today} - window + 1);
    return std::lower_bound(first, last, lo,
                            [](const OrderRec& o, Day day) { return o.day < day; });
  }

  static bool HasItem(const Facts& f, const OrderRec& o, ItemFilter filter, uint32_t ref) {
    const uint32_t* b = f.items + o.item_begin;
    const uint32_t* e = b + o.n_sku;
    if (filter == ItemFilter::kCategory) {
      b = e;
      e = b + o.n_cat;
    }
    return std::find(b, e, ref) != e;
  }

  int64_t OrderValue(uint32_t d, const Node& n, bool amount) const {
    if (n.filter == ItemFilter::kAny && n.window == 0) {
      return amount ? rows[d].gmv : rows[d].n_orders;
    }
    char* b = Block(d);
    if (!b || (n.filter != ItemFilter::kAny && n.ref == kNone)) return 0;
    Facts f(b);
    int64_t v = 0;
    const OrderRec* end = f.orders.data() + f.orders.size();
    for (const OrderRec* it = WindowStart(f.orders, n.window); it != end; ++it) {
      if (!it->Counts()) continue;
      if (n.filter != ItemFilter::kAny && !HasItem(f, *it, n.filter, n.ref)) continue;
      v += amount ? it->Net() : 1;
    }
    return v;
  }

  int64_t EventValue(uint32_t d, const Node& n) const {
    char* b = Block(d);
    if (!b || n.ref == kNone) return 0;
    std::span<EventCell> ev = Facts(b).events;
    Day lo = n.window > 0 ? static_cast<Day>(int64_t{today} - n.window + 1) : INT32_MIN;
    const EventCell* end = ev.data() + ev.size();
    int64_t v = 0;
    for (const EventCell* it = FindEventCell(ev, n.ref, lo); it != end && it->type == n.ref; ++it) {
      v += it->count;
    }
    return v;
  }

  int64_t PropValue(uint32_t d, const Node& n) const {
    char* b = Block(d);
    if (!b || n.ref == kNone || n.ref2 == kNone) return 0;
    std::span<PropCell> pr = Facts(b).props;
    Day lo = n.window > 0 ? static_cast<Day>(int64_t{today} - n.window + 1) : INT32_MIN;
    auto key = std::tuple(n.ref, n.ref2, lo);
    auto it = std::lower_bound(pr.begin(), pr.end(), key,
                               [](const PropCell& c, const std::tuple<uint32_t, uint32_t, Day>& k) {
                                 return std::tuple(uint32_t{c.type}, uint32_t{c.prop}, c.day) < k;
                               });
    int64_t v = 0;
    for (; it != pr.end() && it->type == n.ref && it->prop == n.ref2; ++it) v += it->sum;
    return v;
  }

  // The day of the first (or last) event of type n.ref; false when the person has none.
  bool EventDay(uint32_t d, const Node& n, Day* day) const {
    char* b = Block(d);
    if (!b || n.ref == kNone) return false;
    std::span<const EventCell> ev = Facts(b).events;
    const EventCell* c =
        n.kind == Kind::kFirstEventDays ? FirstEventCell(ev, n.ref) : LastEventCell(ev, n.ref);
    if (!c) return false;
    *day = c->day;
    return true;
  }

  bool EvalPoint(const Node& n, uint32_t d) const {
    switch (n.kind) {
      case Kind::kAnd:
        for (const Node& k : n.kids) {
          if (!EvalPoint(k, d)) return false;
        }
        return true;
      case Kind::kOr:
        for (const Node& k : n.kids) {
          if (EvalPoint(k, d)) return true;
        }
        return false;
      case Kind::kNot:
        return !EvalPoint(n.kids[0], d);
      case Kind::kTag: {
        return HasTag(n.ref, d);
      }
      case Kind::kRfm:
        return rows[d].rfm == n.ref;
      case Kind::kStage:
        return StageOf(d) == n.ref;
      case Kind::kFirstChannel:
        return n.ref != kNone && rows[d].first_ch == n.ref;
      case Kind::kLastChannel:
        return n.ref != kNone && rows[d].last_ch == n.ref;
      case Kind::kTouchpoint:
        return n.ref != kNone && ((rows[d].touch >> (n.ref - 1)) & 1);
      case Kind::kTier:
        return n.ref != kNone && rows[d].tier == n.ref;
      case Kind::kBought:
        return OrderValue(d, n, false) >= 1;
      case Kind::kOrders:
        return Compare(OrderValue(d, n, false), n.cmp, n.value);
      case Kind::kGmv:
        return Compare(OrderValue(d, n, true), n.cmp, n.value);
      case Kind::kEvents:
        return Compare(EventValue(d, n), n.cmp, n.value);
      case Kind::kEventSum:
        return Compare(PropValue(d, n), n.cmp, n.value);
      case Kind::kLastOrderDays:
        return rows[d].last_order != kNoDay &&
               Compare(int64_t{today} - rows[d].last_order, n.cmp, n.value);
      case Kind::kFirstSeenDays:
        return Compare(int64_t{today} - rows[d].first_seen, n.cmp, n.value);
      case Kind::kFirstEventDays:
      case Kind::kLastEventDays: {
        Day day;
        return EventDay(d, n, &day) && Compare(int64_t{today} - day, n.cmp, n.value);
      }
    }
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // Set evaluation. Contract: EvalSet(n, cand) returns S with S ∩ cand = {p ∈ cand : n(p)}
  // (cand null = all people); S may hold others, and is always within `all` when cand is.

  const Roaring* LeafBitmap(const Node& n) const {
    static const Roaring kEmpty;
    auto at = [&](const std::vector<Roaring>& v, uint32_t i) {
      return i == kNone || i >= v.size() ? &kEmpty : &v[i];
    };
    switch (n.kind) {
      case Kind::kTag:
        return &tags[n.ref].bits;
      case Kind::kRfm:
        return &rfm_bits[n.ref];
      case Kind::kStage:
        return &stage_bits[n.ref];
      case Kind::kFirstChannel:
        return at(first_ch_bits, n.ref);
      case Kind::kLastChannel:
        return at(last_ch_bits, n.ref);
      case Kind::kTouchpoint:
        return at(touch_bits, n.ref);
      case Kind::kTier:
        return at(tier_bits, n.ref);
      default:
        return nullptr;
    }
  }

  Roaring Filter(const Roaring& src, const Node& n) const {
    std::vector<uint32_t> hits;
    ForEach(src, [&](uint32_t d) {
      if (EvalPoint(n, d)) hits.push_back(d);
    });
    return Roaring(hits.size(), hits.data());
  }

  // 0: a bitmap; 1: NOT of a bitmap; 2: composite of bitmaps; 3: needs aggregates.
  int CostClass(const Node& n) const {
    if (IsBitmapLeaf(n.kind)) return 0;
    if (n.kind == Kind::kNot && IsBitmapLeaf(n.kids[0].kind)) return 1;
    return HasAggregate(n) ? 3 : 2;
  }

  std::vector<const Node*> OrderAnd(const Node& n) const {
    std::vector<std::pair<std::pair<int, uint64_t>, const Node*>> v;
    for (const Node& k : n.kids) {
      int c = CostClass(k);
      uint64_t card = c == 0 ? LeafBitmap(k)->cardinality() : 0;
      v.push_back({{c, card}, &k});
    }
    std::stable_sort(v.begin(), v.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<const Node*> out;
    for (auto& e : v) out.push_back(e.second);
    return out;
  }

  // AND, optionally counting the result without materialising the last step.
  Set EvalAnd(const Node& n, const Roaring* cand, uint64_t* count) const {
    std::vector<const Node*> order = OrderAnd(n);
    Set acc;
    bool have = false;
    for (size_t i = 0; i < order.size(); ++i) {
      const Node& k = *order[i];
      bool last = i + 1 == order.size();
      if (k.kind == Kind::kNot) {
        if (!have) {
          if (cand) {
            acc.own = *cand;
          } else {
            acc.own = all;
          }
          acc.ptr = nullptr;
          have = true;
        }
        if (last && count && IsBitmapLeaf(k.kids[0].kind)) {
          const Roaring& a = acc.get();
          *count = a.cardinality() - a.and_cardinality(*LeafBitmap(k.kids[0]));
          return acc;
        }
        Set s = EvalSet(k.kids[0], &acc.get());
        if (acc.ptr) {
          acc.own = acc.get() - s.get();
          acc.ptr = nullptr;
        } else {
          acc.own -= s.get();
        }
      } else {
        if (!have) {
          Set s = EvalSet(k, cand);
          if (cand) {
            acc.own = s.get() & *cand;
            acc.ptr = nullptr;
          } else {
            acc = std::move(s);
          }
          have = true;
          if (last && count) {
            *count = acc.get().and_cardinality(all);
            return acc;
          }
          continue;
        }
        if (last && count && IsBitmapLeaf(k.kind)) {
          *count = acc.get().and_cardinality(*LeafBitmap(k));
          return acc;
        }
        Set s = EvalSet(k, &acc.get());
        if (acc.ptr) {
          acc.own = acc.get() & s.get();
          acc.ptr = nullptr;
        } else {
          acc.own &= s.get();
        }
      }
      if (acc.get().isEmpty()) break;
    }
    if (count) *count = acc.get().and_cardinality(all);
    return acc;
  }

  Set EvalSet(const Node& n, const Roaring* cand) const {
    Set r;
    if (const Roaring* b = LeafBitmap(n)) {
      r.ptr = b;
      return r;
    }
    switch (n.kind) {
      case Kind::kAnd:
        return EvalAnd(n, cand, nullptr);
      case Kind::kOr: {
        std::vector<Set> parts;
        std::vector<const Roaring*> ptrs;
        parts.reserve(n.kids.size());
        for (const Node& k : n.kids) parts.push_back(EvalSet(k, cand));
        for (const Set& s : parts) ptrs.push_back(&s.get());
        r.own = Roaring::fastunion(ptrs.size(), ptrs.data());
        return r;
      }
      case Kind::kNot: {
        Set s = EvalSet(n.kids[0], cand);
        r.own = (cand ? *cand : all) - s.get();
        return r;
      }
      default:
        r.own = Filter(cand ? *cand : all, n);
        return r;
    }
  }

  uint64_t CountNode(const Node& n) const {
    if (const Roaring* b = LeafBitmap(n)) return b->and_cardinality(all);
    if (n.kind == Kind::kAnd) {
      uint64_t c = 0;
      (void)EvalAnd(n, nullptr, &c);
      return c;
    }
    return EvalSet(n, nullptr).get().and_cardinality(all);
  }

  Roaring EvalAll(const Node& n) const {
    Set s = EvalSet(n, nullptr);
    return s.get() & all;
  }

  // ---------------------------------------------------------------------------------------------
  // Compiling expressions

  // `intern`: saved rules and segments intern values no one has yet (so that later facts match);
  // ad-hoc reads only look them up.
  Node Compile(const Expr& e, bool intern) {
    Node n;
    n.kind = e.kind;
    n.cmp = e.cmp;
    n.filter = e.filter;
    n.window = e.window_days;
    n.value = e.value;
    switch (e.kind) {
      case Kind::kAnd:
      case Kind::kOr:
      case Kind::kNot:
        for (const Expr& c : e.children) n.kids.push_back(Compile(c, intern));
        break;
      case Kind::kTag:
        n.ref = tag_by_id.at(e.id);
        break;
      case Kind::kRfm:
      case Kind::kStage:
        n.ref = static_cast<uint32_t>(e.id);
        break;
      case Kind::kFirstChannel:
      case Kind::kLastChannel:
        n.ref = intern ? ChannelIntern(e.id) : ChannelFind(e.id);
        break;
      case Kind::kTouchpoint:
        n.ref = intern && touchpoints.size() <= 64 ? TouchIntern(e.name) : touchpoints.Find(e.name);
        break;
      case Kind::kTier:
        n.ref = intern ? TierIntern(e.name) : tiers.Find(e.name);
        break;
      case Kind::kBought:
      case Kind::kOrders:
      case Kind::kGmv:
        if (e.filter == ItemFilter::kSku) n.ref = intern ? skus.Intern(e.name) : skus.Find(e.name);
        if (e.filter == ItemFilter::kCategory) {
          n.ref = intern ? categories.Intern(e.name) : categories.Find(e.name);
        }
        break;
      case Kind::kEvents:
      case Kind::kEventSum:
      case Kind::kFirstEventDays:
      case Kind::kLastEventDays:
        n.ref = intern ? event_types.Intern(e.name) : event_types.Find(e.name);
        if (e.kind == Kind::kEventSum)
          n.ref2 = intern ? props.Intern(e.property) : props.Find(e.property);
        if (n.ref != kNone && n.ref > 65535) n.ref = kNone;
        if (n.ref2 != kNone && n.ref2 > 65535) n.ref2 = kNone;
        break;
      case Kind::kLastOrderDays:
      case Kind::kFirstSeenDays:
        break;
    }
    return n;
  }

  // Tags referenced by an expression must exist: checks ids (a tag may have been dropped and
  // re-created under another id since the expression was bound).
  Status CheckTagsExist(const Expr& e) const {
    Status s;
    VisitExpr(e, [&](const Expr& x) {
      if (s.ok() && x.kind == Kind::kTag) {
        auto it = tag_by_id.find(x.id);
        if (it == tag_by_id.end()) {
          s = Status(ErrorCode::kUnknownTag, fmt::format("unknown tag \"{}\"", x.name),
                     "expression");
        }
      }
    });
    return s;
  }

  void CollectDeps(const Node& n, Deps& d) const {
    switch (n.kind) {
      case Kind::kTag:
        d.tags.push_back(n.ref);
        break;
      case Kind::kRfm:
        d.mask |= kFRfm;
        break;
      case Kind::kStage:
        d.mask |= kFStage;
        break;
      case Kind::kFirstChannel:
      case Kind::kLastChannel:
      case Kind::kTouchpoint:
      case Kind::kTier:
        d.mask |= kFAttrs;
        break;
      case Kind::kBought:
      case Kind::kOrders:
      case Kind::kGmv:
        d.mask |= kFOrders;
        if (n.window) d.mask |= kFTime;
        break;
      case Kind::kEvents:
      case Kind::kEventSum:
        if (n.ref != kNone) d.event_types.push_back(n.ref);
        if (n.window) d.mask |= kFTime;
        break;
      case Kind::kLastOrderDays:
        d.mask |= kFOrders | kFTime;
        break;
      case Kind::kFirstEventDays:
      case Kind::kLastEventDays:
        if (n.ref != kNone) d.event_types.push_back(n.ref);
        d.mask |= kFTime;
        break;
      case Kind::kFirstSeenDays:
        d.mask |= kFAttrs | kFTime;
        break;
      default:
        break;
    }
    for (const Node& k : n.kids) CollectDeps(k, d);
  }

  void CollectWatches(const Node& n, std::vector<Watch>& w) const {
    switch (n.kind) {
      case Kind::kBought:
      case Kind::kOrders:
      case Kind::kGmv:
        if (n.window) w.push_back({Watch::kOrderWindow, 0, n.window});
        break;
      case Kind::kEvents:
      case Kind::kEventSum:
        if (n.window && n.ref != kNone) w.push_back({Watch::kEventWindow, n.ref, n.window});
        break;
      case Kind::kLastOrderDays:
        w.push_back({Watch::kLastOrderDays, 0, n.value});
        break;
      case Kind::kFirstSeenDays:
        w.push_back({Watch::kFirstSeenDays, 0, n.value});
        break;
      case Kind::kFirstEventDays:
      case Kind::kLastEventDays:
        if (n.ref != kNone) {
          w.push_back(
              {n.kind == Kind::kFirstEventDays ? Watch::kFirstEventDays : Watch::kLastEventDays,
               n.ref, n.value});
        }
        break;
      default:
        break;
    }
    for (const Node& k : n.kids) CollectWatches(k, w);
  }

  // Rebuilds the watch list; true if it changed (then every person is rescheduled).
  bool RebuildWatches() {
    std::vector<Watch> w;
    for (const TagSlot& t : tags) {
      if (t.alive && t.is_rule) CollectWatches(t.node, w);
    }
    for (const SegmentSlot& s : segments) CollectWatches(s.node, w);
    std::vector<Watch> dedup;
    for (const Watch& x : w) {
      if (std::find(dedup.begin(), dedup.end(), x) == dedup.end()) dedup.push_back(x);
    }
    bool changed = dedup != watches;
    watches = std::move(dedup);
    return changed;
  }

  // ---------------------------------------------------------------------------------------------
  // Timers

  // `stage`: ComputeStage(d) if the caller has it.
  Day NextWake(uint32_t d, const StageInfo* stage = nullptr) const {
    const Row& r = rows[d];
    int64_t best = INT64_MAX;
    auto cand = [&](int64_t day) {
      if (day > today && day < best) best = day;
    };
    if (r.n_orders > 0) {
      StageInfo s = stage ? *stage : ComputeStage(d);
      if (r.n_orders >= opts.lifecycle.active_min_orders) cand(int64_t{s.last} + s.cycle + 1);
      cand(int64_t{s.last} + s.dormant_days + 1);
      cand(int64_t{s.last} + s.churn_days + 1);
      cand(int64_t{r.last_order} + rfm_t.recency_days);
    }
    char* b = Block(d);
    for (const Watch& w : watches) {
      switch (w.type) {
        case Watch::kOrderWindow:
          if (b) {
            std::span<const OrderRec> orders = Facts(b).orders;
            const OrderRec* it = WindowStart(orders, static_cast<int32_t>(w.n));
            if (it != orders.data() + orders.size()) cand(int64_t{it->day} + w.n);
          }
          break;
        case Watch::kEventWindow:
          if (b) {
            std::span<EventCell> ev = Facts(b).events;
            const EventCell* it =
                FindEventCell(ev, w.ref, static_cast<Day>(int64_t{today} - w.n + 1));
            if (it != ev.data() + ev.size() && it->type == w.ref) cand(int64_t{it->day} + w.n);
          }
          break;
        case Watch::kLastOrderDays:
          if (r.last_order != kNoDay && w.n < INT32_MAX && w.n > INT32_MIN) {
            cand(int64_t{r.last_order} + w.n);
            cand(int64_t{r.last_order} + w.n + 1);
          }
          break;
        case Watch::kFirstSeenDays:
          if (w.n < INT32_MAX && w.n > INT32_MIN) {
            cand(int64_t{r.first_seen} + w.n);
            cand(int64_t{r.first_seen} + w.n + 1);
          }
          break;
        case Watch::kFirstEventDays:
        case Watch::kLastEventDays:
          if (b && w.n < INT32_MAX && w.n > INT32_MIN) {
            std::span<const EventCell> ev = Facts(b).events;
            const EventCell* c = w.type == Watch::kFirstEventDays ? FirstEventCell(ev, w.ref)
                                                                  : LastEventCell(ev, w.ref);
            if (c) {
              cand(int64_t{c->day} + w.n);
              cand(int64_t{c->day} + w.n + 1);
            }
          }
          break;
      }
    }
    return best > INT32_MAX ? kNoDay : static_cast<Day>(best);
  }

  void SetWake(uint32_t d, Day w) {
    if (w == rows[d].wake) return;
    rows[d].wake = w;
    if (w != kNoDay) wheel[w].push_back(d);
  }
  void Reschedule(uint32_t d, const StageInfo* stage = nullptr) { SetWake(d, NextWake(d, stage)); }

  // An event of `type` on `day` was added (`new_cell`: its (type, day) cell is new) and nothing
  // else changed. The wake day equals NextWake (every change that can move NextWake reschedules),
  // and the only candidates that can move are those of the watches on that type. A window's
  // earliest cell inside it is now this one if the day is inside and earlier, so its candidate can
  // only become day + N. The first (last) day of the type moves only when a new cell is the
  // type's first (last): then its old candidates are gone too, and the person is rescheduled.
  void WakeAfterEvent(uint32_t d, uint32_t type, Day day, bool new_cell) {
    int64_t best = rows[d].wake == kNoDay ? INT64_MAX : rows[d].wake;
    for (const Watch& w : watches) {
      if (w.ref != type) continue;
      if (w.type == Watch::kEventWindow) {
        int64_t c = int64_t{day} + w.n;
        if (c > today && c < best) best = c;
      } else if (new_cell &&
                 (w.type == Watch::kFirstEventDays || w.type == Watch::kLastEventDays)) {
        std::span<const EventCell> ev = Facts(Block(d)).events;
        const EventCell* c =
            w.type == Watch::kFirstEventDays ? FirstEventCell(ev, type) : LastEventCell(ev, type);
        if (c->day == day) {
          Reschedule(d);
          return;
        }
      }
    }
    SetWake(d, best > INT32_MAX ? kNoDay : static_cast<Day>(best));
  }

  void RescheduleAll() {
    wheel.clear();
    for (Row& r : rows) r.wake = kNoDay;
    ForEach(all, [&](uint32_t d) { Reschedule(d); });
  }

  // ---------------------------------------------------------------------------------------------
  // The incremental step: one person after a fact.

  void Touch(uint32_t d, Changed c, Deltas* out) {
    if (bulk) return;
    StageInfo st;
    bool have_stage = false;
    if (c.mask & (kFOrders | kFTime | kFRecompute)) {
      st = UpdateStageRfm(d, c, out);
      have_stage = true;
    }
    Due(rule_trig, c, due_rules);
    Due(seg_trig, c, due_segments);
    // Rule tags in dependency order: a rule that changes adds its dependents, which come later.
    for (size_t w = 0; w < due_rules.size(); ++w) {
      while (due_rules[w]) {
        size_t pos = w * 64 + static_cast<size_t>(__builtin_ctzll(due_rules[w]));
        due_rules[w] &= due_rules[w] - 1;
        uint32_t slot = rule_order[pos];
        TagSlot& t = tags[slot];
        bool v = EvalPoint(t.node, d);
        if (!SetTagMember(slot, d, v)) continue;
        Emit(out, v ? DeltaKind::kTagAdded : DeltaKind::kTagRemoved, rows[d].store_id, t.id);
        if (!rule_trig.tag[slot].empty()) OrInto(due_rules, rule_trig.tag[slot]);
        if (!seg_trig.tag[slot].empty()) OrInto(due_segments, seg_trig.tag[slot]);
      }
    }
    for (size_t w = 0; w < due_segments.size(); ++w) {
      for (uint64_t m = due_segments[w]; m; m &= m - 1) {
        SegmentSlot& s = segments[w * 64 + static_cast<size_t>(__builtin_ctzll(m))];
        bool v = EvalPoint(s.node, d);
        if (!SetSegmentMember(s, d, v)) continue;
        Emit(out, v ? DeltaKind::kSegmentEntered : DeltaKind::kSegmentExited, rows[d].store_id,
             s.id);
      }
    }
    // Only orders, attributes, time and watched event types move the next wake day; a manual
    // tag or an unwatched event type cannot.
    if (c.mask & (kFOrders | kFAttrs | kFTime | kFAllEvents | kFAll | kFRecompute | kFRfm)) {
      Reschedule(d, have_stage ? &st : nullptr);
    } else if (c.event_type != kNone) {
      WakeAfterEvent(d, c.event_type, c.event_day, c.event_new_cell);
    }
  }

  // Manual tag membership changes, cascading.
  void SetManual(uint32_t d, uint32_t slot, bool on, Deltas* out) {
    TagSlot& t = tags[slot];
    if (!SetTagMember(slot, d, on)) return;
    Emit(out, on ? DeltaKind::kTagAdded : DeltaKind::kTagRemoved, rows[d].store_id, t.id);
    Changed c;
    c.tags.push_back(slot);
    Touch(d, std::move(c), out);
  }

  // Removes a person from everything (merge, erasure).
  void Kill(uint32_t d, Deltas* out) {
    for (uint32_t slot = 0; slot < tags.size(); ++slot) {
      if (tags[slot].alive && SetTagMember(slot, d, false)) {
        Emit(out, DeltaKind::kTagRemoved, rows[d].store_id, tags[slot].id);
      }
    }
    for (SegmentSlot& s : segments) {
      if (SetSegmentMember(s, d, false)) {
        Emit(out, DeltaKind::kSegmentExited, rows[d].store_id, s.id);
      }
    }
    rows[d].derived = 0;
    if (derived_words > 1) {
      std::fill_n(
          derived_ext.begin() + static_cast<std::ptrdiff_t>(size_t{d} * (derived_words - 1)),
          derived_words - 1, 0);
    }
    if (rows[d].rfm) {
      Emit(out, DeltaKind::kRfmClassChanged, rows[d].store_id, 0, rows[d].rfm, 0);
      Defer(rfm_bits[rows[d].rfm], rfm_log[rows[d].rfm], d, false);
      rows[d].rfm = 0;
    }
    Defer(stage_bits[StageOf(d)], stage_log[StageOf(d)], d, false);
    SetStage(d, static_cast<uint8_t>(Stage::kProspect));
    SetAttrIds(d, 0, 0, 0, 0);
    rows[d].first_seen = 0;
    DropFacts(d);
    RecomputeOrderColumns(d);
    inviter[d] = kNone;
    rows[d].wake = kNoDay;
    all.remove(d);
    SetAlive(d, 0);
  }

  uint32_t ResolveMerged(uint32_t d) const {
    for (int hops = 0; d != kNone && !Alive(d) && hops < 1000; ++hops) {
      auto it = merged_into.find(d);
      d = it == merged_into.end() ? kNone : it->second;
    }
    return d != kNone && Alive(d) ? d : kNone;
  }

  // ---------------------------------------------------------------------------------------------
  // Recomputation for everyone (definitions, bulk load)

  // Sets a bitmap to `fresh`, reporting the differences.
  void Replace(Roaring& bits, int32_t bit, Roaring fresh, DeltaKind add, DeltaKind remove,
               int64_t id, Deltas* out) {
    ForEach(fresh - bits, [&](uint32_t d) {
      Emit(out, add, rows[d].store_id, id);
      if (bit >= 0) DSet(d, bit, true);
    });
    ForEach(bits - fresh, [&](uint32_t d) {
      Emit(out, remove, rows[d].store_id, id);
      if (bit >= 0) DSet(d, bit, false);
    });
    fresh.runOptimize();
    fresh.shrinkToFit();
    bits = std::move(fresh);
  }

  void RecomputeStagesAndRfm(Deltas* out) {
    SettleAll();
    std::vector<std::vector<uint32_t>> st(kStageCount), cl(kRfmClassCount);
    ForEach(all, [&](uint32_t d) {
      uint8_t s = static_cast<uint8_t>(ComputeStage(d).stage);
      uint8_t c = static_cast<uint8_t>(ComputeRfm(d).cls);
      if (s != StageOf(d)) Emit(out, DeltaKind::kStageChanged, rows[d].store_id, 0, StageOf(d), s);
      if (c != rows[d].rfm)
        Emit(out, DeltaKind::kRfmClassChanged, rows[d].store_id, 0, rows[d].rfm, c);
      SetStage(d, s);
      rows[d].rfm = c;
      st[s].push_back(d);
      if (c) cl[c].push_back(d);
    });
    for (int i = 0; i < kStageCount; ++i) stage_bits[i] = Roaring(st[i].size(), st[i].data());
    for (int i = 0; i < kRfmClassCount; ++i) rfm_bits[i] = Roaring(cl[i].size(), cl[i].data());
  }

  // Recomputes the rule tags in `seeds` (all rules when null), the rules downstream of any that
  // changed, and the segments downstream (or all segments when `all_segments`).
  void RecomputeRules(const std::vector<uint32_t>* seeds, bool all_segments, Deltas* out) {
    SettleAll();
    std::vector<uint32_t> changed;
    for (uint32_t slot : rule_order) {
      TagSlot& t = tags[slot];
      bool due = !seeds || std::find(seeds->begin(), seeds->end(), slot) != seeds->end();
      if (!due) {
        for (uint32_t dep : t.deps.tags) {
          if (std::find(changed.begin(), changed.end(), dep) != changed.end()) due = true;
        }
      }
      if (!due) continue;
      Roaring fresh = EvalAll(t.node);
      if (fresh == t.bits) continue;
      Replace(t.bits, t.bit, std::move(fresh), DeltaKind::kTagAdded, DeltaKind::kTagRemoved, t.id,
              out);
      changed.push_back(slot);
    }
    if (seeds) {
      for (uint32_t s : *seeds) {
        if (!tags[s].is_rule) changed.push_back(s);  // a manual tag's members moved
      }
    }
    for (SegmentSlot& s : segments) {
      bool due = all_segments || !seeds;
      for (uint32_t dep : s.deps.tags) {
        if (std::find(changed.begin(), changed.end(), dep) != changed.end()) due = true;
      }
      if (!due) continue;
      Replace(s.bits, s.bit, EvalAll(s.node), DeltaKind::kSegmentEntered, DeltaKind::kSegmentExited,
              s.id, out);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Definitions

  // Resolves a tag name; `override_id` (if nonzero) stands for a tag being (re)defined as
  // (group, name) and hides that id's current slot.
  StatusOr<int64_t> Resolve(std::string_view text, int64_t override_id = 0,
                            std::string_view ogroup = {}, std::string_view oname = {}) const {
    std::vector<std::pair<int64_t, std::string>> by_name, by_path;
    auto consider = [&](int64_t id, std::string_view group, std::string_view name) {
      if (name == text) by_name.push_back({id, std::string(group)});
      if (!group.empty() && text.size() == group.size() + 1 + name.size() &&
          text.substr(0, group.size()) == group && text[group.size()] == '/' &&
          text.substr(group.size() + 1) == name) {
        by_path.push_back({id, std::string(group)});
      }
      // "/name": the tag of that name in no group (a bare name may be ambiguous).
      if (group.empty() && text.size() == name.size() + 1 && text[0] == '/' &&
          text.substr(1) == name) {
        by_path.push_back({id, std::string()});
      }
    };
    for (const TagSlot& t : tags) {
      if (t.alive && t.id != override_id) consider(t.id, t.group, t.name);
    }
    if (override_id) consider(override_id, ogroup, oname);
    if (by_path.size() == 1) return by_path[0].first;
    if (by_name.size() == 1) return by_name[0].first;
    if (by_name.size() > 1) {
      std::string groups;
      for (auto& [id, g] : by_name) {
        if (!groups.empty()) groups += ", ";
        groups += fmt::format("\"{}/{}\"", g, text);
      }
      return Status(ErrorCode::kUnknownTag,
                    fmt::format("tag \"{}\" is in several groups; name one: {}", text, groups),
                    "expression");
    }
    return Status(ErrorCode::kUnknownTag, fmt::format("unknown tag \"{}\"", text), "expression");
  }

  struct DefiningCatalogue : Catalogue {
    const Impl* impl;
    const TagDef* def;
    StatusOr<int64_t> ResolveTag(std::string_view name) const override {
      return impl->Resolve(name, def->id, def->group, def->name);
    }
  };

  // Rule tag slots reachable from `slot` through rule dependencies, as a path if it reaches
  // `target`.
  bool FindPath(uint32_t from, uint32_t target, const std::vector<std::vector<uint32_t>>& deps,
                std::vector<uint32_t>& path, std::vector<uint8_t>& seen) const {
    path.push_back(from);
    if (from == target && path.size() > 1) return true;
    if (!seen[from]) {
      seen[from] = 1;
      for (uint32_t n : deps[from]) {
        if (FindPath(n, target, deps, path, seen)) return true;
      }
    }
    path.pop_back();
    return false;
  }

  std::vector<std::vector<uint32_t>> RuleDeps() const {
    std::vector<std::vector<uint32_t>> deps(tags.size());
    for (uint32_t i = 0; i < tags.size(); ++i) {
      if (tags[i].alive && tags[i].is_rule) deps[i] = tags[i].deps.tags;
    }
    return deps;
  }

  void RebuildRuleOrder() {
    auto deps = RuleDeps();
    std::vector<uint8_t> state(tags.size(), 0);
    rule_order.clear();
    std::function<void(uint32_t)> visit = [&](uint32_t s) {
      if (state[s]) return;
      state[s] = 1;
      for (uint32_t n : deps[s]) visit(n);
      if (tags[s].alive && tags[s].is_rule) rule_order.push_back(s);
    };
    for (uint32_t i = 0; i < tags.size(); ++i) visit(i);
  }

  Status DefineTag(const TagDef& def, Deltas* out) {
    SettleAll();
    if (def.id <= 0) return InvalidField("id", "a tag id is positive");
    if (def.name.empty() || def.name.size() > 200) {
      return InvalidField("name", "a tag name is 1 to 200 bytes");
    }
    if (def.name.find('/') != std::string::npos) {
      return InvalidField("name", "a tag name cannot contain '/' (it separates group and name)");
    }
    for (const TagSlot& t : tags) {
      if (t.alive && t.id != def.id && t.group == def.group && t.name == def.name) {
        return Status(ErrorCode::kAlreadyExists,
                      fmt::format("tag \"{}/{}\" exists (id {})", def.group, def.name, t.id),
                      "name");
      }
    }
    Expr expr;
    bool is_rule = !def.rule.empty();
    if (is_rule) {
      DefiningCatalogue cat;
      cat.impl = this;
      cat.def = &def;
      ASSIGN_OR_RETURN(expr, ParseExpression(def.rule, &cat));
    }
    auto existing = tag_by_id.find(def.id);
    uint32_t slot;
    bool fresh_slot = existing == tag_by_id.end();
    if (fresh_slot) {
      slot = static_cast<uint32_t>(tags.size());
      tags.emplace_back();
      tags[slot].id = def.id;
      tags[slot].alive = false;  // until committed
    } else {
      slot = existing->second;
    }
    tag_by_id[def.id] = slot;  // so Compile can resolve self-references
    Node node;
    Deps deps;
    if (is_rule) {
      node = Compile(expr, true);
      CollectDeps(node, deps);
      // Cycle check on the graph with this rule in place.
      auto all_deps = RuleDeps();
      all_deps[slot] = deps.tags;
      std::vector<uint32_t> path;
      std::vector<uint8_t> seen(tags.size(), 0);
      for (uint32_t n : deps.tags) {
        if (n == slot || FindPath(n, slot, all_deps, path, seen)) {
          std::string names = def.name;
          if (n == slot) {
            names += " -> " + def.name;
          } else {
            for (uint32_t p : path) names += " -> " + (p == slot ? def.name : tags[p].name);
          }
          if (fresh_slot) {
            tags.pop_back();
            tag_by_id.erase(def.id);
          }
          return Status(
              ErrorCode::kRuleCycle,
              fmt::format("the rule of tag \"{}\" depends on itself: {}", def.name, names), "rule");
        }
        std::fill(seen.begin(), seen.end(), 0);
        path.clear();
      }
    }
    TagSlot& t = tags[slot];
    t.alive = true;
    t.group = def.group;
    t.name = def.name;
    bool was_rule = t.is_rule;
    bool rule_changed = is_rule && (!was_rule || !(t.expr == expr));
    t.is_rule = is_rule;
    t.expr = std::move(expr);
    t.node = std::move(node);
    t.deps = std::move(deps);
    RebuildRuleOrder();
    AssignDerivedBits();
    if (RebuildWatches() && !bulk) RescheduleAll();
    if (rule_changed && !bulk) {
      std::vector<uint32_t> seeds{slot};
      RecomputeRules(&seeds, false, out);
    }
    return Status::Ok();
  }

  std::vector<std::string> Referrers(uint32_t slot) const {
    std::vector<std::string> who;
    auto refers = [&](const Deps& d) {
      return std::find(d.tags.begin(), d.tags.end(), slot) != d.tags.end();
    };
    for (const TagSlot& t : tags) {
      if (t.alive && t.is_rule && t.id != tags[slot].id && refers(t.deps)) {
        who.push_back(fmt::format("tag \"{}\"", t.name));
      }
    }
    for (const SegmentSlot& s : segments) {
      if (refers(s.deps)) who.push_back(fmt::format("segment \"{}\"", s.name));
    }
    return who;
  }

  Status DropTag(int64_t id, Deltas* out) {
    SettleAll();
    auto it = tag_by_id.find(id);
    if (it == tag_by_id.end()) {
      return Status(ErrorCode::kNotFound, fmt::format("tag {} does not exist", id), "tag");
    }
    uint32_t slot = it->second;
    auto who = Referrers(slot);
    if (!who.empty()) {
      std::string list;
      for (auto& w : who) list += (list.empty() ? "" : ", ") + w;
      return Status(ErrorCode::kTagInUse,
                    fmt::format("tag \"{}\" is used by {}", tags[slot].name, list), "tag");
    }
    TagSlot& t = tags[slot];
    if (out)
      ForEach(t.bits, [&](uint32_t d) { Emit(out, DeltaKind::kTagRemoved, rows[d].store_id, id); });
    t.bits = Roaring();
    t.alive = false;
    t.is_rule = false;
    t.expr = Expr();
    t.node = Node();
    t.deps = Deps();
    tag_by_id.erase(it);
    RebuildRuleOrder();
    AssignDerivedBits();
    if (RebuildWatches() && !bulk) RescheduleAll();
    return Status::Ok();
  }

  Status DefineSegment(const SegmentDef& def, Deltas* out) {
    SettleAll();
    if (def.id <= 0) return InvalidField("id", "a segment id is positive");
    ASSIGN_OR_RETURN(Expr expr, ParseExpression(def.expression, &catalogue));
    auto it = segment_by_id.find(def.id);
    uint32_t slot;
    if (it == segment_by_id.end()) {
      slot = static_cast<uint32_t>(segments.size());
      segments.emplace_back();
      segments[slot].id = def.id;
      segment_by_id[def.id] = slot;
    } else {
      slot = it->second;
    }
    SegmentSlot& s = segments[slot];
    s.name = def.name;
    bool changed = !(s.expr == expr) || it == segment_by_id.end();
    s.expr = std::move(expr);
    s.node = Compile(s.expr, true);
    s.deps = Deps();
    CollectDeps(s.node, s.deps);
    AssignDerivedBits();
    if (!bulk && changed) {
      Replace(s.bits, s.bit, EvalAll(s.node), DeltaKind::kSegmentEntered, DeltaKind::kSegmentExited,
              s.id, out);
    }
    if (RebuildWatches() && !bulk) RescheduleAll();
    return Status::Ok();
  }

  Status DropSegment(int64_t id) {
    SettleAll();
    auto it = segment_by_id.find(id);
    if (it == segment_by_id.end()) {
      return Status(ErrorCode::kNotFound, fmt::format("segment {} does not exist", id), "segment");
    }
    segments.erase(segments.begin() + it->second);
    segment_by_id.clear();
    for (uint32_t i = 0; i < segments.size(); ++i) segment_by_id[segments[i].id] = i;
    AssignDerivedBits();
    if (RebuildWatches() && !bulk) RescheduleAll();
    return Status::Ok();
  }

  struct EngineCatalogue : Catalogue {
    explicit EngineCatalogue(const Impl* i) : impl(i) {}
    const Impl* impl;
    StatusOr<int64_t> ResolveTag(std::string_view name) const override {
      return impl->Resolve(name);
    }
  } catalogue{this};

  // ---------------------------------------------------------------------------------------------
  // Facts

  Status AddPerson(int64_t person, const PersonAttrs& a, Deltas* out) {
    if (person <= 0) return InvalidField("person", "a person id is positive");
    RETURN_IF_ERROR(CheckAttrs(a));
    uint32_t d = index.Find(person);
    if (d != kNone && Alive(d)) {
      return Status(ErrorCode::kAlreadyExists, fmt::format("person {} exists", person), "person");
    }
    if (d == kNone) d = NewSlot(person);
    Revive(d);
    SetAttrs(d, a);
    Changed c;
    c.mask = kFEverything | kFRecompute;
    Touch(d, std::move(c), out);
    return Status::Ok();
  }

  Status UpdateAttrs(int64_t person, const PersonAttrs& a, Deltas* out) {
    uint32_t d = Dense(person);
    if (d == kNone) return UnknownPerson(person);
    RETURN_IF_ERROR(CheckAttrs(a));
    SetAttrs(d, a);
    Changed c;
    c.mask = kFAttrs;
    Touch(d, std::move(c), out);
    return Status::Ok();
  }

  Status AddEvent(int64_t person, const EventFact& e, Deltas* out) {
    uint32_t d = Dense(person);
    if (d == kNone) return UnknownPerson(person);
    RETURN_IF_ERROR(CheckEvent(e));
    Changed c;
    c.event_type = ApplyEvent(d, e, &c.event_new_cell);
    c.event_day = e.day;
    Touch(d, std::move(c), out);
    return Status::Ok();
  }

  Status CheckOrder(const OrderFact& o) const {
    if (o.amount_fen < 0) {
      return Status(ErrorCode::kAmountOutOfRange, "an order's amount is >= 0", "amount_fen");
    }
    if (o.refunded_fen < 0 || o.refunded_fen > o.amount_fen) {
      return Status(ErrorCode::kAmountOutOfRange, "refunded_fen is between 0 and the amount",
                    "refunded_fen");
    }
    if (o.skus.size() > 65535 || o.categories.size() > 65535) {
      return InvalidField("skus", "too many skus or categories in one order");
    }
    return Status::Ok();
  }

  Status AddOrder(int64_t person, const OrderFact& o, Deltas* out) {
    uint32_t d = Dense(person);
    if (d == kNone) return UnknownPerson(person);
    RETURN_IF_ERROR(CheckOrder(o));
    if (char* b = Block(d)) {
      for (const OrderRec& r : Facts(b).orders) {
        if (r.id == o.id) {
          return Status(ErrorCode::kAlreadyExists,
                        fmt::format("order {} is already recorded for person {}", o.id, person),
                        "order_id");
        }
      }
    }
    InsertOrder(d, o);
    RecomputeOrderColumns(d);
    Changed c;
    c.mask = kFOrders;
    Touch(d, std::move(c), out);
    return Status::Ok();
  }

  Status RefundOrder(int64_t person, int64_t order_id, int64_t refund, Deltas* out) {
    uint32_t d = Dense(person);
    if (d == kNone) return UnknownPerson(person);
    OrderRec* rec = nullptr;
    if (char* b = Block(d)) {
      for (OrderRec& r : Facts(b).orders) {
        if (r.id == order_id) rec = &r;
      }
    }
    if (!rec) {
      return Status(ErrorCode::kNotFound,
                    fmt::format("person {} has no order {}", person, order_id), "order_id");
    }
    if (refund <= 0 || refund > rec->amount - rec->refunded) {
      return Status(ErrorCode::kAmountOutOfRange,
                    fmt::format("a refund is 1 to {} fen (the amount not yet refunded)",
                                rec->amount - rec->refunded),
                    "refund_fen");
    }
    rec->refunded += refund;
    RecomputeOrderColumns(d);
    Changed c;
    c.mask = kFOrders;
    Touch(d, std::move(c), out);
    return Status::Ok();
  }

  Status SetInviter(int64_t person, int64_t inv) {
    uint32_t d = Dense(person);
    if (d == kNone) return UnknownPerson(person);
    if (inv == 0) {
      inviter[d] = kNone;
      return Status::Ok();
    }
    uint32_t i = Dense(inv);
    if (i == kNone) return UnknownPerson(inv);
    if (i == d) return InvalidField("inviter", "a person cannot invite themselves");
    inviter[d] = i;
    return Status::Ok();
  }

  StatusOr<uint32_t> ManualSlot(int64_t tag_id) const {
    auto it = tag_by_id.find(tag_id);
    if (it == tag_by_id.end()) {
      return Status(ErrorCode::kNotFound, fmt::format("tag {} does not exist", tag_id), "tag");
    }
    if (tags[it->second].is_rule) {
      return InvalidField("tag", fmt::format("tag \"{}\" is a rule tag: its members are computed",
                                             tags[it->second].name));
    }
    return it->second;
  }

  Status SetTag(int64_t person, int64_t tag_id, bool on, Deltas* out) {
    uint32_t d = Dense(person);
    if (d == kNone) return UnknownPerson(person);
    ASSIGN_OR_RETURN(uint32_t slot, ManualSlot(tag_id));
    SetManual(d, slot, on, out);
    return Status::Ok();
  }

  Status SetTagBulk(int64_t tag_id, const Roaring& people, bool on, Deltas* out) {
    SettleAll();
    ASSIGN_OR_RETURN(uint32_t slot, ManualSlot(tag_id));
    Roaring moved = on ? (people & all) - tags[slot].bits : people & tags[slot].bits;
    if (moved.isEmpty()) return Status::Ok();
    // Downstream rules and segments: per person when few, else recomputed as sets.
    if (moved.cardinality() * 64 < all.cardinality() + 64) {
      ForEach(moved, [&](uint32_t d) { SetManual(d, slot, on, out); });
      return Status::Ok();
    }
    ForEach(moved, [&](uint32_t d) {
      Emit(out, on ? DeltaKind::kTagAdded : DeltaKind::kTagRemoved, rows[d].store_id, tag_id);
    });
    if (on) {
      tags[slot].bits |= moved;
    } else {
      tags[slot].bits -= moved;
    }
    if (tags[slot].bit >= 0) ForEach(moved, [&](uint32_t d) { DSet(d, tags[slot].bit, on); });
    if (!bulk) {
      std::vector<uint32_t> seeds{slot};
      RecomputeRules(&seeds, false, out);
    }
    return Status::Ok();
  }

  // Folds b's facts into a's (b's block stays where it is while a's grows).
  void FoldFacts(uint32_t a, uint32_t b) {
    char* bb = Block(b);
    if (!bb) return;
    Facts fb(bb);
    for (const OrderRec& o : fb.orders) {
      bool dup = false;
      if (char* ba = Block(a)) {
        for (const OrderRec& r : Facts(ba).orders) dup = dup || r.id == o.id;
      }
      if (!dup) InsertOrderRec(a, o, fb.items + o.item_begin);
    }
    for (const EventCell& c : fb.events) AddEventCell(a, c.type, c.day, c.count);
    for (const PropCell& p : fb.props) AddPropCell(a, p.type, p.prop, p.day, p.sum);
  }

  Status Merge(int64_t survivor, int64_t absorbed, Deltas* out) {
    uint32_t a = Dense(survivor), b = Dense(absorbed);
    if (a == kNone) return UnknownPerson(survivor);
    if (b == kNone) return UnknownPerson(absorbed);
    if (a == b) return InvalidField("absorbed", "a person cannot be merged into themselves");
    // Attributes.
    // The earlier first sighting brings its first channel (the survivor's on a tie); a side
    // without one takes the other's.
    bool b_first = rows[b].first_seen < rows[a].first_seen;
    uint32_t fc = b_first ? (rows[b].first_ch ? rows[b].first_ch : rows[a].first_ch)
                          : (rows[a].first_ch ? rows[a].first_ch : rows[b].first_ch);
    Day fs = std::min(rows[a].first_seen, rows[b].first_seen);
    uint32_t lc = rows[a].last_ch ? rows[a].last_ch : rows[b].last_ch;
    uint32_t ti = rows[a].tier ? rows[a].tier : rows[b].tier;
    uint64_t mask = rows[a].touch | rows[b].touch;
    // The survivor's inviter, else the absorbed's (as recorded: both resolve through merges).
    uint32_t inv = inviter[a];
    uint32_t ra = ResolveMerged(inviter[a]);
    if (ra == kNone || ra == a) {
      uint32_t rb = ResolveMerged(inviter[b]);
      inv = rb != kNone && rb != b && rb != a ? inviter[b] : kNone;
    }
    std::vector<uint32_t> manual;
    for (uint32_t s = 0; s < tags.size(); ++s) {
      if (tags[s].alive && !tags[s].is_rule && HasTag(s, b) && !HasTag(s, a)) {
        manual.push_back(s);
      }
    }
    FoldFacts(a, b);
    Kill(b, out);
    merged_into[b] = a;
    // Invitees of b count for a through merged_into (see ResolveMerged).
    rows[a].first_seen = fs;
    SetAttrIds(a, fc, lc, ti, mask);
    inviter[a] = inv;
    RecomputeOrderColumns(a);
    Changed c;
    c.mask = kFEverything | kFRecompute;
    for (uint32_t s : manual) {
      SetTagMember(s, a, true);
      Emit(out, DeltaKind::kTagAdded, survivor, tags[s].id);
      c.tags.push_back(s);
    }
    Touch(a, std::move(c), out);
    return Status::Ok();
  }

  Status ReplacePersonFacts(int64_t person, const PersonFacts& pf, Deltas* out) {
    if (person <= 0) return InvalidField("person", "a person id is positive");
    RETURN_IF_ERROR(CheckAttrs(pf.attrs));
    for (const EventFact& e : pf.events) RETURN_IF_ERROR(CheckEvent(e));
    std::unordered_set<int64_t> order_ids;
    for (const OrderFact& o : pf.orders) {
      RETURN_IF_ERROR(CheckOrder(o));
      if (!order_ids.insert(o.id).second) {
        return Status(ErrorCode::kAlreadyExists, fmt::format("order {} appears twice", o.id),
                      "orders");
      }
    }
    std::vector<uint32_t> manual;
    for (int64_t t : pf.manual_tags) {
      ASSIGN_OR_RETURN(uint32_t s, ManualSlot(t));
      manual.push_back(s);
    }
    uint32_t inv = kNone;
    if (pf.inviter) {
      inv = Dense(pf.inviter);
      if (inv == kNone) return UnknownPerson(pf.inviter);
    }
    uint32_t d = index.Find(person);
    if (d == kNone) d = NewSlot(person);
    if (!Alive(d)) Revive(d);
    if (inv == d) return InvalidField("inviter", "a person cannot invite themselves");
    SetAttrs(d, pf.attrs);
    DropFacts(d);
    for (const OrderFact& o : pf.orders) InsertOrder(d, o);
    for (const EventFact& e : pf.events) ApplyEvent(d, e);
    RecomputeOrderColumns(d);
    inviter[d] = inv;
    Changed c;
    c.mask = kFEverything | kFRecompute;
    for (uint32_t s = 0; s < tags.size(); ++s) {
      if (!tags[s].alive || tags[s].is_rule) continue;
      bool on = std::find(manual.begin(), manual.end(), s) != manual.end();
      if (!SetTagMember(s, d, on)) continue;
      Emit(out, on ? DeltaKind::kTagAdded : DeltaKind::kTagRemoved, person, tags[s].id);
      c.tags.push_back(s);
    }
    Touch(d, std::move(c), out);
    return Status::Ok();
  }

  Status RemovePerson(int64_t person, Deltas* out) {
    uint32_t d = Dense(person);
    if (d == kNone) return UnknownPerson(person);
    Kill(d, out);
    return Status::Ok();
  }

  Status Tick(Day day, Deltas* out) {
    if (day < today) {
      return InvalidField("today", fmt::format("day {} is before the current day {}", day, today));
    }
    today = day;
    if (bulk) return Status::Ok();
    // First the people due on the days passed (with the thresholds of the last tick) ...
    while (!wheel.empty() && wheel.begin()->first <= day) {
      auto node = wheel.extract(wheel.begin());
      for (uint32_t d : node.mapped()) {
        if (!Alive(d) || rows[d].wake != node.key()) continue;
        rows[d].wake = kNoDay;
        Changed c;
        c.mask = kFTime;
        Touch(d, std::move(c), out);
      }
    }
    // ... then today's quantile thresholds, reclassifying every buyer if they moved.
    int64_t old_recency = rfm_t.recency_days;
    if (ResolveRfmThresholds()) {
      ForEach(all, [&](uint32_t d) {
        if (rows[d].n_orders == 0) return;
        Changed c;
        UpdateRfm(d, c, out);
        if (c.mask) Touch(d, std::move(c), out);
      });
      // Everyone's RFM recency timer moves with the threshold.
      if (rfm_t.recency_days != old_recency) RescheduleAll();
    }
    return Status::Ok();
  }

  Status EndBulkLoad() {
    SettleAll();
    bulk = false;
    AssignDerivedBits();
    ResolveRfmThresholds();
    RecomputeStagesAndRfm(nullptr);
    RecomputeRules(nullptr, true, nullptr);
    RebuildWatches();
    RescheduleAll();
    for (TagSlot& t : tags) {
      if (t.alive) {
        t.bits.runOptimize();
        t.bits.shrinkToFit();
      }
    }
    return Status::Ok();
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  StatusOr<Node> CompileRead(const Expr& e) const {
    RETURN_IF_ERROR(CheckTagsExist(e));
    return const_cast<Impl*>(this)->Compile(e, false);  // intern=false: reads only
  }

  MembersPage Page(const Roaring& bits, int64_t after, size_t limit) const {
    MembersPage page;
    if (limit == 0) return page;
    if (monotonic) {
      uint32_t start = static_cast<uint32_t>(
          std::upper_bound(rows.begin(), rows.end(), after,
                           [](int64_t v, const Row& r) { return v < r.store_id; }) -
          rows.begin());
      roaring_uint32_iterator_t it;
      roaring_init_iterator(&bits.roaring, &it);
      if (!roaring_move_uint32_iterator_equalorlarger(&it, start)) return page;
      while (it.has_value && page.people.size() <= limit) {
        if (int64_t id = live_id[it.current_value]) page.people.push_back(id);
        roaring_advance_uint32_iterator(&it);
      }
    } else {
      std::vector<int64_t> ids;
      ForEach(bits, [&](uint32_t d) {
        if (int64_t id = live_id[d]; id && id > after) ids.push_back(id);
      });
      std::sort(ids.begin(), ids.end());
      if (ids.size() > limit + 1) ids.resize(limit + 1);
      page.people = std::move(ids);
    }
    if (page.people.size() > limit) {
      page.people.resize(limit);
      page.next_after = page.people.back();
    }
    return page;
  }

  std::vector<int64_t> MembersOf(const Roaring& bits) const {
    std::vector<int64_t> ids;
    ids.reserve(bits.cardinality());
    ForEach(bits, [&](uint32_t d) {
      if (int64_t id = live_id[d]) ids.push_back(id);
    });
    if (!monotonic) std::sort(ids.begin(), ids.end());
    return ids;
  }

  PersonFacts FactsOf(uint32_t d) const {
    PersonFacts pf;
    pf.attrs.first_seen_day = rows[d].first_seen;
    pf.attrs.first_channel = channel_ids[rows[d].first_ch];
    pf.attrs.last_channel = channel_ids[rows[d].last_ch];
    pf.attrs.tier = tiers.Name(rows[d].tier);
    for (uint32_t b = 0; b < 64; ++b) {
      if ((rows[d].touch >> b) & 1) pf.attrs.touchpoints.push_back(touchpoints.Name(b + 1));
    }
    std::sort(pf.attrs.touchpoints.begin(), pf.attrs.touchpoints.end());
    if (char* b = Block(d)) {
      Facts f(b);
      for (const OrderRec& o : f.orders) {
        OrderFact of{o.id, o.day, o.amount, {}, {}, o.refunded};
        for (uint16_t i = 0; i < o.n_sku; ++i)
          of.skus.push_back(skus.Name(f.items[o.item_begin + i]));
        for (uint16_t i = 0; i < o.n_cat; ++i) {
          of.categories.push_back(categories.Name(f.items[o.item_begin + o.n_sku + i]));
        }
        pf.orders.push_back(std::move(of));
      }
      for (const EventCell& c : f.events) {
        EventFact e;
        e.type = event_types.Name(c.type);
        e.day = c.day;
        e.count = c.count;
        for (const PropCell& p : f.props) {
          if (p.type == c.type && p.day == c.day) e.values.push_back({props.Name(p.prop), p.sum});
        }
        std::sort(e.values.begin(), e.values.end());
        pf.events.push_back(std::move(e));
      }
      std::sort(pf.events.begin(), pf.events.end(), [](const EventFact& x, const EventFact& y) {
        return std::tie(x.type, x.day) < std::tie(y.type, y.day);
      });
    }
    for (uint32_t s = 0; s < tags.size(); ++s) {
      if (tags[s].alive && !tags[s].is_rule && HasTag(s, d)) pf.manual_tags.push_back(tags[s].id);
    }
    std::sort(pf.manual_tags.begin(), pf.manual_tags.end());
    uint32_t inv = ResolveMerged(inviter[d]);
    pf.inviter = inv == kNone || inv == d ? 0 : rows[inv].store_id;
    return pf;
  }

  std::vector<KocEntry> Koc() const {
    std::vector<KocEntry> e;
    std::vector<int64_t> invited(rows.size(), 0);
    std::vector<uint32_t> count(rows.size(), 0);
    ForEach(all, [&](uint32_t d) {
      uint32_t i = ResolveMerged(inviter[d]);
      if (i != kNone && i != d) {
        invited[i] += rows[d].gmv;
        ++count[i];
      }
    });
    ForEach(all, [&](uint32_t d) {
      int64_t score = rows[d].gmv + invited[d];
      if (score > 0 || count[d] > 0) {
        e.push_back(KocEntry{rows[d].store_id, rows[d].gmv, invited[d], score, count[d]});
      }
    });
    return e;
  }
};

// =================================================================================================
// Public surface: locks, then the Impl.

#define SIYU_READ                                     \
  std::shared_lock<identity::RwLock> lock(impl_->mu); \
  impl_->Settle()
#define SIYU_WRITE std::unique_lock<identity::RwLock> lock(impl_->mu)

AudienceEngine::AudienceEngine(EngineOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
AudienceEngine::~AudienceEngine() = default;

// All-or-nothing deltas: an error appends nothing (the Impl validates before it mutates, and
// a failed call's partial output, if any, is dropped here).
#define SIYU_WRITE_CALL(expr)            \
  SIYU_WRITE;                            \
  size_t mark = out ? out->size() : 0;   \
  Status s = (expr);                     \
  if (!s.ok() && out) out->resize(mark); \
  return s

Status AudienceEngine::DefineTag(const TagDef& def, Deltas* out) {
  SIYU_WRITE_CALL(impl_->DefineTag(def, out));
}
Status AudienceEngine::DropTag(int64_t tag_id, Deltas* out) {
  SIYU_WRITE_CALL(impl_->DropTag(tag_id, out));
}
Status AudienceEngine::DefineSegment(const SegmentDef& def, Deltas* out) {
  SIYU_WRITE_CALL(impl_->DefineSegment(def, out));
}
Status AudienceEngine::DropSegment(int64_t id) {
  SIYU_WRITE;
  return impl_->DropSegment(id);
}

std::vector<TagDef> AudienceEngine::Tags() const {
  SIYU_READ;
  std::vector<TagDef> v;
  for (const TagSlot& t : impl_->tags) {
    if (t.alive) v.push_back({t.id, t.group, t.name, t.is_rule ? PrintExpression(t.expr) : ""});
  }
  std::sort(v.begin(), v.end(), [](const TagDef& a, const TagDef& b) { return a.id < b.id; });
  return v;
}

std::vector<SegmentDef> AudienceEngine::Segments() const {
  SIYU_READ;
  std::vector<SegmentDef> v;
  for (const SegmentSlot& s : impl_->segments) v.push_back({s.id, s.name, PrintExpression(s.expr)});
  std::sort(v.begin(), v.end(),
            [](const SegmentDef& a, const SegmentDef& b) { return a.id < b.id; });
  return v;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> AudienceEngine::TagGroups() const {
  SIYU_READ;
  std::map<std::string, std::vector<int64_t>> g;
  for (const TagSlot& t : impl_->tags) {
    if (t.alive) g[t.group].push_back(t.id);
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> v;
  for (auto& [k, ids] : g) {
    std::sort(ids.begin(), ids.end());
    v.push_back({k, ids});
  }
  return v;
}

Status AudienceEngine::AddPerson(int64_t person, const PersonAttrs& attrs, Deltas* out) {
  SIYU_WRITE_CALL(impl_->AddPerson(person, attrs, out));
}
Status AudienceEngine::UpdateAttrs(int64_t person, const PersonAttrs& attrs, Deltas* out) {
  SIYU_WRITE_CALL(impl_->UpdateAttrs(person, attrs, out));
}
Status AudienceEngine::UpsertAttrs(std::span<const std::pair<int64_t, PersonAttrs>> people,
                                   Deltas* out) {
  SIYU_WRITE;
  Status first = Status::Ok();
  for (const auto& [person, attrs] : people) {
    size_t mark = out ? out->size() : 0;
    Status s = impl_->Dense(person) != kNone ? impl_->UpdateAttrs(person, attrs, out)
                                             : impl_->AddPerson(person, attrs, out);
    if (!s.ok()) {
      if (out) out->resize(mark);
      if (first.ok()) first = s;
    }
  }
  return first;
}
Status AudienceEngine::AddEvent(int64_t person, const EventFact& event, Deltas* out) {
  SIYU_WRITE_CALL(impl_->AddEvent(person, event, out));
}
Status AudienceEngine::AddOrder(int64_t person, const OrderFact& order, Deltas* out) {
  if (order.refunded_fen != 0) {
    return Status(ErrorCode::kAmountOutOfRange, "a new order has no refund yet (RefundOrder)",
                  "refunded_fen");
  }
  SIYU_WRITE_CALL(impl_->AddOrder(person, order, out));
}
Status AudienceEngine::RefundOrder(int64_t person, int64_t order_id, int64_t refund_fen,
                                   Deltas* out) {
  SIYU_WRITE_CALL(impl_->RefundOrder(person, order_id, refund_fen, out));
}
Status AudienceEngine::ApplyBatch(std::span<const Fact> facts, Deltas* out, size_t* applied) {
  SIYU_WRITE;
  Impl& m = *impl_;
  // Two stages ahead of the fact being applied: the index slot of a later fact, then its row
  // and its aggregate block (its dense index and the block's handle are in the slot).
  constexpr size_t kSlotAhead = 8, kRowAhead = 4;
  auto prefetch_row = [&](size_t i) {
    uint32_t block = 0;
    uint32_t d = m.index.Find(facts[i].person, &block);
    if (d == kNone) return;
    internal::PrefetchLine(&m.rows[d]);
    if (m.derived_words > 1) {
      internal::PrefetchLine(&m.derived_ext[size_t{d} * (m.derived_words - 1)]);
    }
    if (block) {
      const char* b = m.arena.At(block);
      internal::PrefetchLine(b);
      internal::PrefetchLine(b + 64);
    }
  };
  size_t n = facts.size();
  for (size_t i = 0; i < std::min(n, kSlotAhead); ++i) m.index.Prefetch(facts[i].person);
  for (size_t i = 0; i < std::min(n, kRowAhead); ++i) prefetch_row(i);
  Status s;
  size_t i = 0;
  for (; i < n; ++i) {
    if (i + kSlotAhead < n) m.index.Prefetch(facts[i + kSlotAhead].person);
    if (i + kRowAhead < n) prefetch_row(i + kRowAhead);
    const Fact& f = facts[i];
    size_t mark = out ? out->size() : 0;
    switch (f.kind) {
      case Fact::Kind::kEvent:
        s = m.AddEvent(f.person, f.event, out);
        break;
      case Fact::Kind::kOrder:
        s = f.order.refunded_fen != 0 ? Status(ErrorCode::kAmountOutOfRange,
                                               "a new order has no refund yet", "refunded_fen")
                                      : m.AddOrder(f.person, f.order, out);
        break;
      case Fact::Kind::kRefund:
        s = m.RefundOrder(f.person, f.order_id, f.refund_fen, out);
        break;
      case Fact::Kind::kTagAdded:
      case Fact::Kind::kTagRemoved:
        s = m.SetTag(f.person, f.tag, f.kind == Fact::Kind::kTagAdded, out);
        break;
    }
    if (!s.ok()) {
      if (out) out->resize(mark);
      break;
    }
  }
  if (applied) *applied = i;
  return s;
}

Status AudienceEngine::SetInviter(int64_t person, int64_t inviter) {
  SIYU_WRITE;
  return impl_->SetInviter(person, inviter);
}
Status AudienceEngine::AddTag(int64_t person, int64_t tag_id, Deltas* out) {
  SIYU_WRITE_CALL(impl_->SetTag(person, tag_id, true, out));
}
Status AudienceEngine::RemoveTag(int64_t person, int64_t tag_id, Deltas* out) {
  SIYU_WRITE_CALL(impl_->SetTag(person, tag_id, false, out));
}
Status AudienceEngine::AddTagToPeople(int64_t tag_id, std::span<const int64_t> people, Deltas* out,
                                      size_t* skipped) {
  SIYU_WRITE;
  std::vector<uint32_t> dense;
  size_t miss = 0;
  for (int64_t p : people) {
    uint32_t d = impl_->Dense(p);
    if (d == kNone) {
      ++miss;
    } else {
      dense.push_back(d);
    }
  }
  if (skipped) *skipped = miss;
  std::sort(dense.begin(), dense.end());
  Roaring r(dense.size(), dense.data());
  size_t mark = out ? out->size() : 0;
  Status s = impl_->SetTagBulk(tag_id, r, true, out);
  if (!s.ok() && out) out->resize(mark);
  return s;
}
Status AudienceEngine::AddTagToSet(int64_t tag_id, const PersonSet& people, Deltas* out) {
  SIYU_WRITE_CALL(impl_->SetTagBulk(tag_id, *people.bits_, true, out));
}
Status AudienceEngine::RemoveTagFromSet(int64_t tag_id, const PersonSet& people, Deltas* out) {
  SIYU_WRITE_CALL(impl_->SetTagBulk(tag_id, *people.bits_, false, out));
}
Status AudienceEngine::Merge(int64_t survivor, int64_t absorbed, Deltas* out) {
  SIYU_WRITE_CALL(impl_->Merge(survivor, absorbed, out));
}
Status AudienceEngine::ReplacePersonFacts(int64_t person, const PersonFacts& facts, Deltas* out) {
  SIYU_WRITE_CALL(impl_->ReplacePersonFacts(person, facts, out));
}
Status AudienceEngine::RemovePerson(int64_t person, Deltas* out) {
  SIYU_WRITE_CALL(impl_->RemovePerson(person, out));
}
Status AudienceEngine::Tick(Day today, Deltas* out) { SIYU_WRITE_CALL(impl_->Tick(today, out)); }

Day AudienceEngine::today() const {
  SIYU_READ;
  return impl_->today;
}

void AudienceEngine::BeginBulkLoad() {
  SIYU_WRITE;
  impl_->bulk = true;
}
Status AudienceEngine::EndBulkLoad() {
  SIYU_WRITE;
  return impl_->EndBulkLoad();
}

StatusOr<Expr> AudienceEngine::Parse(std::string_view text, ExprErrorAt* at) const {
  SIYU_READ;
  return ParseExpression(text, &impl_->catalogue, at);
}

StatusOr<uint64_t> AudienceEngine::Count(std::string_view expression) const {
  SIYU_READ;
  ASSIGN_OR_RETURN(Expr e, ParseExpression(expression, &impl_->catalogue));
  ASSIGN_OR_RETURN(Node n, impl_->CompileRead(e));
  return impl_->CountNode(n);
}
StatusOr<uint64_t> AudienceEngine::Count(const Expr& e) const {
  SIYU_READ;
  ASSIGN_OR_RETURN(Node n, impl_->CompileRead(e));
  return impl_->CountNode(n);
}
StatusOr<PersonSet> AudienceEngine::Evaluate(const Expr& e) const {
  SIYU_READ;
  ASSIGN_OR_RETURN(Node n, impl_->CompileRead(e));
  return PersonSet(std::make_shared<const Roaring>(impl_->EvalAll(n)));
}
StatusOr<bool> AudienceEngine::Matches(int64_t person, const Expr& e) const {
  SIYU_READ;
  uint32_t d = impl_->Dense(person);
  if (d == kNone) return impl_->UnknownPerson(person);
  ASSIGN_OR_RETURN(Node n, impl_->CompileRead(e));
  return impl_->EvalPoint(n, d);
}

namespace {
Status NoSegment(int64_t id) {
  return Status(ErrorCode::kNotFound, fmt::format("segment {} does not exist", id), "segment");
}
Status NoTag(int64_t id) {
  return Status(ErrorCode::kNotFound, fmt::format("tag {} does not exist", id), "tag");
}
}  // namespace

StatusOr<uint64_t> AudienceEngine::SegmentCount(int64_t id) const {
  SIYU_READ;
  auto it = impl_->segment_by_id.find(id);
  if (it == impl_->segment_by_id.end()) return NoSegment(id);
  return impl_->segments[it->second].bits.cardinality();
}
StatusOr<PersonSet> AudienceEngine::SegmentSnapshot(int64_t id) const {
  SIYU_READ;
  auto it = impl_->segment_by_id.find(id);
  if (it == impl_->segment_by_id.end()) return NoSegment(id);
  return PersonSet(std::make_shared<const Roaring>(impl_->segments[it->second].bits));
}
StatusOr<MembersPage> AudienceEngine::SegmentMembers(int64_t id, int64_t after,
                                                     size_t limit) const {
  SIYU_READ;
  auto it = impl_->segment_by_id.find(id);
  if (it == impl_->segment_by_id.end()) return NoSegment(id);
  return impl_->Page(impl_->segments[it->second].bits, after, limit);
}
StatusOr<PersonSet> AudienceEngine::TagMembers(int64_t id) const {
  SIYU_READ;
  auto it = impl_->tag_by_id.find(id);
  if (it == impl_->tag_by_id.end()) return NoTag(id);
  return PersonSet(std::make_shared<const Roaring>(impl_->tags[it->second].bits));
}
StatusOr<uint64_t> AudienceEngine::TagCount(int64_t id) const {
  SIYU_READ;
  auto it = impl_->tag_by_id.find(id);
  if (it == impl_->tag_by_id.end()) return NoTag(id);
  return impl_->tags[it->second].bits.cardinality();
}
PersonSet AudienceEngine::AllPeople() const {
  SIYU_READ;
  return PersonSet(std::make_shared<const Roaring>(impl_->all));
}
MembersPage AudienceEngine::Page(const PersonSet& set, int64_t after, size_t limit) const {
  SIYU_READ;
  return impl_->Page(*set.bits_, after, limit);
}
std::vector<int64_t> AudienceEngine::Members(const PersonSet& set) const {
  SIYU_READ;
  return impl_->MembersOf(*set.bits_);
}

bool AudienceEngine::HasPerson(int64_t person) const {
  SIYU_READ;
  return impl_->Dense(person) != kNone;
}

std::vector<char> AudienceEngine::HasPeople(std::span<const int64_t> people) const {
  SIYU_READ;
  std::vector<char> out(people.size());
  for (size_t i = 0; i < people.size(); ++i) out[i] = impl_->Dense(people[i]) != kNone;
  return out;
}

StatusOr<PersonView> AudienceEngine::View(int64_t person) const {
  SIYU_READ;
  const Impl& m = *impl_;
  uint32_t d = m.Dense(person);
  if (d == kNone) return m.UnknownPerson(person);
  PersonView v;
  v.stage = static_cast<Stage>(m.StageOf(d));
  v.rfm = m.ComputeRfm(d);
  v.cycle_days = m.ComputeStage(d).cycle;
  for (const TagSlot& t : m.tags) {
    if (t.alive && t.bits.contains(d)) v.tags.push_back(t.id);
  }
  for (const SegmentSlot& s : m.segments) {
    if (s.bits.contains(d)) v.segments.push_back(s.id);
  }
  std::sort(v.tags.begin(), v.tags.end());
  std::sort(v.segments.begin(), v.segments.end());
  return v;
}

StatusOr<PersonFacts> AudienceEngine::FactsOf(int64_t person) const {
  SIYU_READ;
  uint32_t d = impl_->Dense(person);
  if (d == kNone) return impl_->UnknownPerson(person);
  return impl_->FactsOf(d);
}

std::vector<int64_t> AudienceEngine::People() const {
  SIYU_READ;
  return impl_->MembersOf(impl_->all);
}

std::vector<RfmCell> AudienceEngine::RfmMatrix() const {
  SIYU_READ;
  std::vector<RfmCell> cells;
  for (int c = 1; c < kRfmClassCount; ++c) {
    RfmCell cell;
    cell.cls = static_cast<RfmClass>(c);
    cell.people = impl_->rfm_bits[c].cardinality();
    ForEach(impl_->rfm_bits[c], [&](uint32_t d) { cell.gmv_fen += impl_->rows[d].gmv; });
    cells.push_back(cell);
  }
  return cells;
}

RfmThresholds AudienceEngine::ResolvedRfmThresholds() const {
  SIYU_READ;
  return impl_->rfm_t;
}

void AudienceEngine::PinRfmThresholds(const RfmThresholds& t, Deltas* out) {
  SIYU_WRITE;
  if (impl_->rfm_t == t) return;
  impl_->rfm_t = t;
  if (impl_->bulk) return;
  ForEach(impl_->all, [&](uint32_t d) {
    Changed c;
    impl_->UpdateRfm(d, c, out);
    if (c.mask) impl_->Touch(d, std::move(c), out);
  });
  impl_->RescheduleAll();
}

std::array<uint64_t, kStageCount> AudienceEngine::StageCounts() const {
  SIYU_READ;
  std::array<uint64_t, kStageCount> v{};
  for (int i = 0; i < kStageCount; ++i) v[i] = impl_->stage_bits[i].cardinality();
  return v;
}

std::vector<KocEntry> AudienceEngine::TopKoc(size_t n) const {
  std::vector<KocEntry> e;
  {
    SIYU_READ;
    e = impl_->Koc();
  }
  auto better = [](const KocEntry& a, const KocEntry& b) {
    return a.score_fen != b.score_fen ? a.score_fen > b.score_fen : a.person < b.person;
  };
  if (e.size() > n) {
    std::partial_sort(e.begin(), e.begin() + static_cast<std::ptrdiff_t>(n), e.end(), better);
    e.resize(n);
  } else {
    std::sort(e.begin(), e.end(), better);
  }
  return e;
}

GmvShare AudienceEngine::TopGmvShare(double fraction) const {
  GmvShare r;
  std::vector<int64_t> g;
  {
    SIYU_READ;
    r.people = impl_->all.cardinality();
    g.reserve(r.people);
    ForEach(impl_->all, [&](uint32_t d) { g.push_back(impl_->rows[d].gmv); });
  }
  fraction = std::clamp(fraction, 0.0, 1.0);
  r.top_people = static_cast<uint64_t>(std::ceil(fraction * static_cast<double>(r.people)));
  r.top_people = std::min<uint64_t>(r.top_people, r.people);
  for (int64_t v : g) r.total_gmv_fen += v;
  auto k = static_cast<std::ptrdiff_t>(r.top_people);
  std::nth_element(g.begin(), g.begin() + std::min<std::ptrdiff_t>(k, g.size()), g.end(),
                   std::greater<>());
  for (std::ptrdiff_t i = 0; i < k; ++i) r.top_gmv_fen += g[i];
  r.share = r.total_gmv_fen > 0
                ? static_cast<double>(r.top_gmv_fen) / static_cast<double>(r.total_gmv_fen)
                : 0;
  return r;
}

uint64_t AudienceEngine::PeopleCount() const {
  SIYU_READ;
  return impl_->all.cardinality();
}

EngineStats AudienceEngine::Stats() const {
  SIYU_READ;
  const Impl& m = *impl_;
  EngineStats s;
  s.people = m.all.cardinality();
  s.person_slots = m.rows.size();
  auto bm = [](const Roaring& r) { return r.getSizeInBytes(false) + sizeof(Roaring); };
  for (const TagSlot& t : m.tags) {
    if (!t.alive) continue;
    s.tag_memberships += t.bits.cardinality();
    s.tag_bitmap_bytes += bm(t.bits);
  }
  s.bitmap_bytes = s.tag_bitmap_bytes + bm(m.all);
  for (const SegmentSlot& g : m.segments) s.bitmap_bytes += bm(g.bits);
  for (auto* v : {&m.stage_bits, &m.rfm_bits, &m.tier_bits, &m.touch_bits, &m.first_ch_bits,
                  &m.last_ch_bits}) {
    for (const Roaring& r : *v) s.bitmap_bytes += bm(r);
  }
  // The change logs' buffers (kept between applications).
  for (const TagSlot& t : m.tags) s.bitmap_bytes += t.log.entries.capacity() * 8;
  for (const SegmentSlot& g : m.segments) s.bitmap_bytes += g.log.entries.capacity() * 8;
  for (const auto* v : {&m.stage_log, &m.rfm_log}) {
    for (const ChangeLog& l : *v) s.bitmap_bytes += l.entries.capacity() * 8;
  }
  // Rows past the size are address space only (the big arrays are mmap'ed): not counted.
  s.column_bytes = m.index.bytes() + m.rows.size() * (sizeof(Row) + 8) + m.inviter.capacity() * 4 +
                   m.derived_ext.capacity() * 8;
  s.aggregate_bytes = m.arena.live_bytes();
  for (const Row& r : m.rows) {
    if (!r.facts) continue;
    FactsHead h = Impl::FactsHeadOf(m.arena.At(r.facts));
    s.orders += h.n_orders;
    s.event_cells += h.n_events;
  }
  for (const auto& [day, v] : m.wheel) s.timer_bytes += v.capacity() * 4 + 48;
  return s;
}

const EngineOptions& AudienceEngine::options() const { return impl_->opts; }

StatusOr<int64_t> AudienceEngine::ResolveTag(std::string_view name) const {
  SIYU_READ;
  return impl_->Resolve(name);
}

// ----- Verification ------------------------------------------------------------------------------

namespace {

std::string Describe(const PersonFacts& f) {
  std::string s = fmt::format(
      "first_seen={} first_channel={} last_channel={} tier=\"{}\" "
      "touchpoints={} inviter={} orders=[",
      f.attrs.first_seen_day, f.attrs.first_channel, f.attrs.last_channel, f.attrs.tier,
      f.attrs.touchpoints.size(), f.inviter);
  for (const OrderFact& o : f.orders) {
    s += fmt::format("{}@{}:{}-{} ", o.id, o.day, o.amount_fen, o.refunded_fen);
  }
  s += fmt::format("] event_cells={} manual_tags={}", f.events.size(), f.manual_tags.size());
  return s;
}

bool SameFacts(const PersonFacts& a, const PersonFacts& b) {
  if (!(a.attrs == b.attrs) || a.inviter != b.inviter || a.manual_tags != b.manual_tags) {
    return false;
  }
  if (a.orders.size() != b.orders.size() || a.events.size() != b.events.size()) return false;
  for (size_t i = 0; i < a.orders.size(); ++i) {
    const OrderFact &x = a.orders[i], &y = b.orders[i];
    if (x.id != y.id || x.day != y.day || x.amount_fen != y.amount_fen ||
        x.refunded_fen != y.refunded_fen || x.skus != y.skus || x.categories != y.categories) {
      return false;
    }
  }
  for (size_t i = 0; i < a.events.size(); ++i) {
    const EventFact &x = a.events[i], &y = b.events[i];
    if (x.type != y.type || x.day != y.day || x.count != y.count || x.values != y.values) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::vector<std::string> AudienceEngine::Diff(const AudienceEngine& other, size_t max) const {
  std::vector<std::string> d;
  if (this == &other) return d;
  // A consistent order of locking two engines.
  const AudienceEngine* first = this < &other ? this : &other;
  const AudienceEngine* second = this < &other ? &other : this;
  std::shared_lock<identity::RwLock> l1(first->impl_->mu), l2(second->impl_->mu);
  impl_->Settle();
  other.impl_->Settle();
  const Impl& a = *impl_;
  const Impl& b = *other.impl_;
  auto add = [&](std::string s) {
    if (d.size() < max) d.push_back(std::move(s));
  };
  if (a.today != b.today) add(fmt::format("today: {} vs {}", a.today, b.today));
  if (!(a.rfm_t == b.rfm_t)) {
    add(fmt::format("RFM thresholds: R<{} F>{} M>{} vs R<{} F>{} M>{}", a.rfm_t.recency_days,
                    a.rfm_t.frequency, a.rfm_t.monetary_fen, b.rfm_t.recency_days,
                    b.rfm_t.frequency, b.rfm_t.monetary_fen));
  }
  // Definitions.
  for (const TagSlot& t : a.tags) {
    if (!t.alive) continue;
    auto it = b.tag_by_id.find(t.id);
    if (it == b.tag_by_id.end()) {
      add(fmt::format("tag {} only on the left", t.id));
      continue;
    }
    const TagSlot& u = b.tags[it->second];
    if (t.group != u.group || t.name != u.name || t.is_rule != u.is_rule || !(t.expr == u.expr)) {
      add(fmt::format("tag {} defined differently", t.id));
    }
  }
  for (const TagSlot& u : b.tags) {
    if (u.alive && !a.tag_by_id.count(u.id)) add(fmt::format("tag {} only on the right", u.id));
  }
  for (const SegmentSlot& s : a.segments) {
    auto it = b.segment_by_id.find(s.id);
    if (it == b.segment_by_id.end()) {
      add(fmt::format("segment {} only on the left", s.id));
    } else if (!(s.expr == b.segments[it->second].expr)) {
      add(fmt::format("segment {} defined differently", s.id));
    }
  }
  for (const SegmentSlot& s : b.segments) {
    if (!a.segment_by_id.count(s.id)) add(fmt::format("segment {} only on the right", s.id));
  }
  // People, facts and derived state; a's dense -> b's dense.
  std::vector<uint32_t> to_b(a.rows.size(), kNone);
  ForEach(a.all, [&](uint32_t x) {
    int64_t id = a.rows[x].store_id;
    uint32_t y = b.Dense(id);
    if (y == kNone) {
      add(fmt::format("person {} only on the left", id));
      return;
    }
    to_b[x] = y;
    PersonFacts fa = a.FactsOf(x), fb = b.FactsOf(y);
    if (!SameFacts(fa, fb)) {
      add(fmt::format("person {} facts differ: {} vs {}", id, Describe(fa), Describe(fb)));
    }
    if (a.StageOf(x) != b.StageOf(y)) {
      add(fmt::format("person {} stage {} vs {}", id, StageKey(static_cast<Stage>(a.StageOf(x))),
                      StageKey(static_cast<Stage>(b.StageOf(y)))));
    }
    if (a.rows[x].rfm != b.rows[y].rfm) {
      add(fmt::format("person {} RFM class {} vs {}", id,
                      RfmClassKey(static_cast<RfmClass>(a.rows[x].rfm)),
                      RfmClassKey(static_cast<RfmClass>(b.rows[y].rfm))));
    }
  });
  ForEach(b.all, [&](uint32_t y) {
    if (a.Dense(b.rows[y].store_id) == kNone) {
      add(fmt::format("person {} only on the right", b.rows[y].store_id));
    }
  });
  auto translate = [&](const Roaring& bits) {
    std::vector<uint32_t> v;
    ForEach(bits, [&](uint32_t x) {
      if (x < to_b.size() && to_b[x] != kNone) v.push_back(to_b[x]);
    });
    std::sort(v.begin(), v.end());
    return Roaring(v.size(), v.data());
  };
  auto compare_members = [&](const Roaring& x, const Roaring& y, const std::string& what) {
    Roaring tx = translate(x);
    Roaring ty = y & b.all;
    if (tx == ty) return;
    Roaring only_a = tx - ty, only_b = ty - tx;
    std::string ex;
    int k = 0;
    ForEach(only_a, [&](uint32_t p) {
      if (k++ < 5) ex += fmt::format(" +{}", b.rows[p].store_id);
    });
    ForEach(only_b, [&](uint32_t p) {
      if (k++ < 10) ex += fmt::format(" -{}", b.rows[p].store_id);
    });
    add(fmt::format("{} members differ: {} only left, {} only right:{}", what, only_a.cardinality(),
                    only_b.cardinality(), ex));
  };
  for (const TagSlot& t : a.tags) {
    auto it = b.tag_by_id.find(t.id);
    if (!t.alive || it == b.tag_by_id.end()) continue;
    compare_members(t.bits, b.tags[it->second].bits, fmt::format("tag {} (\"{}\")", t.id, t.name));
  }
  for (const SegmentSlot& s : a.segments) {
    auto it = b.segment_by_id.find(s.id);
    if (it == b.segment_by_id.end()) continue;
    compare_members(s.bits, b.segments[it->second].bits,
                    fmt::format("segment {} (\"{}\")", s.id, s.name));
  }
  return d;
}

bool AudienceEngine::Equals(const AudienceEngine& other, std::string* why) const {
  auto d = Diff(other, 1);
  if (!d.empty() && why) *why = d[0];
  return d.empty();
}

}  // namespace siyu::audience
