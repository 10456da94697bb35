// AudienceEngine: one tenant's in-memory audience — tags (manual and rule), saved segments, RFM
// classes, lifecycle stages and KOC ranking — over a dense person index, with membership kept in
// Roaring bitmaps and behaviour (orders, events) kept as compact per-person aggregates.
//
// It is derived state (DESIGN.md invariant 1): the store holds the facts (people and their
// attributes, events, orders, refunds, merges, manual tags, inviters) and the definitions (tags,
// segments); the engine is fed those facts one at a time on the tenant's write path, or in bulk at
// start (BeginBulkLoad … EndBulkLoad), and Diff()/Equals() check a rebuilt engine against the live
// one (`siyu admin verify`).
//
// Incremental by construction. A fact touches one person (a merge two): the engine updates that
// person's aggregates, recomputes their lifecycle stage and RFM class, re-evaluates only the rule
// tags and segments whose expression depends on what changed (the fact's kind, the event type,
// the tags that just changed, in dependency order), and appends the resulting deltas to the
// caller's vector. Windows move with Tick(day): every person carries the next day on which one of
// their windowed values (or their stage or RFM recency) can change, in a per-day timer wheel; a
// tick re-evaluates exactly the people due that day. Nothing is recomputed for everyone except on
// a definition change, EndBulkLoad, or a tick that moves quantile RFM thresholds.
//
// Persons are the store's int64 person ids; the engine maps them to dense uint32 indexes in order
// of arrival (a person merged away keeps its index, so re-adding it after an unmerge reuses it).
// Segments page their members in ascending person id.
//
// Thread-safety: every method may be called from any thread. Reads share a writer-preferring
// reader-writer lock; each write holds it exclusively for its whole duration, so counts and pages
// always see a consistent state (a fact is applied entirely or not at all). The tenant's single
// writer is the expected caller of the writes. PersonSet values are immutable and may outlive
// any lock; they are frozen snapshots.
//
// Ownership: the engine owns all its data; inputs are copied; outputs are values.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "domain/audience/expr.h"
#include "domain/audience/types.h"

class Roaring;  // <roaring/roaring.hh>, kept out of this header

namespace siyu::audience {

// ----- Facts -------------------------------------------------------------------------------------

struct PersonAttrs {
  Day first_seen_day = 0;
  int64_t first_channel = 0;  // channel id, 0 = none
  int64_t last_channel = 0;
  std::string tier;                      // member tier key ("gold"), empty = none
  std::vector<std::string> touchpoints;  // touched via ("wecom", "oa", "mp", …), at most 64 kinds
  bool operator==(const PersonAttrs&) const = default;
};

struct EventFact {
  std::string type;  // event type ("view_item")
  Day day = 0;
  // How many events of this type on this day the fact stands for (1 for one event; FactsOf
  // returns one fact per type and day, with the count and the summed values).
  uint32_t count = 1;
  // Integer properties to sum (event_sum); others are not kept.
  std::vector<std::pair<std::string, int64_t>> values;
};

struct OrderFact {
  int64_t id = 0;  // unique per tenant
  Day day = 0;     // the day it was paid
  int64_t amount_fen = 0;
  std::vector<std::string> skus;
  std::vector<std::string> categories;
  int64_t refunded_fen = 0;  // ReplacePersonFacts/FactsOf only; AddOrder takes it as 0
};

// Everything the engine knows of one person (ReplacePersonFacts, FactsOf).
struct PersonFacts {
  PersonAttrs attrs;
  std::vector<EventFact> events;
  std::vector<OrderFact> orders;
  std::vector<int64_t> manual_tags;  // tag ids
  int64_t inviter = 0;               // person id, 0 = none
};

// One fact of a batch (ApplyBatch): the write path's group commit hands the engine what it just
// committed, in commit order.
struct Fact {
  enum class Kind : uint8_t { kEvent, kOrder, kRefund, kTagAdded, kTagRemoved };
  Kind kind = Kind::kEvent;
  int64_t person = 0;
  EventFact event;         // kEvent
  OrderFact order;         // kOrder
  int64_t order_id = 0;    // kRefund
  int64_t refund_fen = 0;  // kRefund
  int64_t tag = 0;         // kTagAdded, kTagRemoved
};

// ----- Definitions -------------------------------------------------------------------------------

struct TagDef {
  int64_t id = 0;     // the store's tag id, > 0
  std::string group;  // tag group (标签组), may be empty
  std::string name;   // unique within the group
  // Empty for a manual (or imported) tag; otherwise the rule in the expression language.
  std::string rule;
};

struct SegmentDef {
  int64_t id = 0;  // the store's segment id, > 0
  std::string name;
  std::string expression;
};

// ----- Deltas ------------------------------------------------------------------------------------

enum class DeltaKind : uint8_t {
  kTagAdded,
  kTagRemoved,
  kSegmentEntered,
  kSegmentExited,
  kStageChanged,     // from/to: Stage
  kRfmClassChanged,  // from/to: RfmClass
};
std::string_view DeltaKindName(DeltaKind k);  // "tag_added", …

struct Delta {
  DeltaKind kind = DeltaKind::kTagAdded;
  int64_t person = 0;
  int64_t id = 0;  // tag or segment id
  uint8_t from = 0, to = 0;
  bool operator==(const Delta&) const = default;
};
using Deltas = std::vector<Delta>;

// ----- Options -----------------------------------------------------------------------------------

// One RFM dimension's threshold: a fixed value, or the q-quantile over current buyers (0.5 = the
// median), resolved at every Tick. High means R < t (recent), F > t, M > t.
struct RfmThreshold {
  enum class Mode : uint8_t { kFixed, kQuantile };
  Mode mode = Mode::kFixed;
  int64_t value = 0;      // kFixed
  double quantile = 0.5;  // kQuantile, in [0, 1]
};

struct RfmOptions {
  RfmThreshold recency{RfmThreshold::Mode::kFixed, 30, 0.5};     // days since the last order
  RfmThreshold frequency{RfmThreshold::Mode::kFixed, 1, 0.5};    // orders
  RfmThreshold monetary{RfmThreshold::Mode::kQuantile, 0, 0.5};  // GMV in fen
};

struct LifecycleOptions {
  int32_t default_cycle_days = 30;  // the purchase cycle of people with fewer than 2 order days
  double dormant_cycles = 2.0;      // dormant after round(k1 x cycle) days without an order
  double churn_cycles = 4.0;        // churned after round(k2 x cycle) days
  uint32_t active_min_orders = 3;   // active = this many orders and bought within one cycle
};

struct EngineOptions {
  Day today = 0;  // the day before the first Tick
  RfmOptions rfm;
  LifecycleOptions lifecycle;
};

// ----- Read results ------------------------------------------------------------------------------

// A frozen set of people of one engine (a segment snapshot, an evaluated expression). Cheap to
// copy (shared, immutable). Only meaningful with the engine that made it.
class PersonSet {
 public:
  PersonSet();
  uint64_t Count() const;
  bool Empty() const { return Count() == 0; }
  bool SameMembers(const PersonSet& o) const;

 private:
  friend class AudienceEngine;
  explicit PersonSet(std::shared_ptr<const Roaring> bits) : bits_(std::move(bits)) {}
  std::shared_ptr<const Roaring> bits_;
};

struct MembersPage {
  std::vector<int64_t> people;  // ascending person ids
  int64_t next_after = 0;       // pass as `after` for the next page; 0 when this page is the last
};

struct RfmScore {
  int32_t recency_days = 0;  // today - the last order's day
  uint32_t frequency = 0;    // paid orders, not fully refunded
  int64_t monetary_fen = 0;  // net of refunds
  bool r_high = false, f_high = false, m_high = false;
  RfmClass cls = RfmClass::kNone;  // kNone for non-buyers (the other fields are then 0)
};

struct RfmThresholds {  // resolved values: R high iff R < recency_days, F iff > frequency, …
  int64_t recency_days = 0;
  int64_t frequency = 0;
  int64_t monetary_fen = 0;
  bool operator==(const RfmThresholds&) const = default;
};

struct RfmCell {
  RfmClass cls = RfmClass::kNone;
  uint64_t people = 0;
  int64_t gmv_fen = 0;
};

struct KocEntry {
  int64_t person = 0;
  int64_t own_gmv_fen = 0;
  int64_t invited_gmv_fen = 0;  // GMV of the people this person brought (direct invitees)
  int64_t score_fen = 0;        // own + invited
  uint32_t invitees = 0;
};

struct GmvShare {
  uint64_t people = 0;      // all people
  uint64_t top_people = 0;  // ceil(fraction x people)
  int64_t top_gmv_fen = 0;  // their own GMV
  int64_t total_gmv_fen = 0;
  double share = 0;  // top / total (0 when total is 0)
};

struct PersonView {  // one person's derived state, for consoles and tests
  Stage stage = Stage::kProspect;
  RfmScore rfm;
  int32_t cycle_days = 0;
  std::vector<int64_t> tags;      // ascending
  std::vector<int64_t> segments;  // ascending
};

struct EngineStats {
  uint64_t people = 0;        // alive
  uint64_t person_slots = 0;  // dense indexes, merged-away included
  uint64_t tag_memberships = 0;
  size_t bitmap_bytes = 0;  // tags, segments, stages, classes, attributes
  size_t tag_bitmap_bytes = 0;
  size_t column_bytes = 0;     // per-person columns and the person index
  size_t aggregate_bytes = 0;  // per-person orders and events (heap, capacity)
  size_t timer_bytes = 0;
  uint64_t orders = 0, event_cells = 0;
};

// ----- The engine --------------------------------------------------------------------------------

class AudienceEngine final : public Catalogue {
 public:
  explicit AudienceEngine(EngineOptions options = {});
  ~AudienceEngine() override;
  AudienceEngine(const AudienceEngine&) = delete;
  AudienceEngine& operator=(const AudienceEngine&) = delete;

  // Every write below appends what it changed to *out when out is not null; on error nothing
  // changes and nothing is appended.

  // --- definitions ---
  // Creates or redefines a tag. A rule is parsed against this engine's tags (the tag itself
  // included); RULE_CYCLE if it depends on itself directly or through other rule tags. Membership
  // of a new or changed rule tag is computed at once (deltas for everyone whose membership moved).
  // Turning a rule tag into a manual one keeps its current members.
  Status DefineTag(const TagDef& def, Deltas* out = nullptr);
  // TAG_IN_USE (naming the rules and segments) while an expression refers to it.
  Status DropTag(int64_t tag_id, Deltas* out = nullptr);
  Status DefineSegment(const SegmentDef& def, Deltas* out = nullptr);
  Status DropSegment(int64_t segment_id);
  std::vector<TagDef> Tags() const;          // by id; rules in canonical form
  std::vector<SegmentDef> Segments() const;  // by id; expressions in canonical form
  // Tag groups with their tag ids, by group name.
  std::vector<std::pair<std::string, std::vector<int64_t>>> TagGroups() const;

  // --- facts ---
  // ALREADY_EXISTS if the person is present (merged-away persons come back through
  // ReplacePersonFacts). Invalid attrs (more than 64 touchpoint kinds): INVALID_FIELD.
  Status AddPerson(int64_t person, const PersonAttrs& attrs, Deltas* out = nullptr);
  Status UpdateAttrs(int64_t person, const PersonAttrs& attrs, Deltas* out = nullptr);
  // Many people's attributes under one lock acquisition: each added if the engine does not have
  // the person, else updated. Every person is tried; the first error is returned (and the deltas
  // of the people that failed dropped).
  Status UpsertAttrs(std::span<const std::pair<int64_t, PersonAttrs>> people,
                     Deltas* out = nullptr);
  Status AddEvent(int64_t person, const EventFact& event, Deltas* out = nullptr);
  // ALREADY_EXISTS if the person already has the order id; amounts are >= 0.
  Status AddOrder(int64_t person, const OrderFact& order, Deltas* out = nullptr);
  // Refunds accumulate; an order refunded in full stops counting (orders, GMV, bought, RFM,
  // lifecycle). AMOUNT_OUT_OF_RANGE beyond the order's amount.
  Status RefundOrder(int64_t person, int64_t order_id, int64_t refund_fen, Deltas* out = nullptr);
  // Applies facts in order under one lock acquisition, prefetching the people ahead (at 10 M
  // people every fact is a handful of cache misses; a batch overlaps them). Stops at the first
  // fact that fails: the facts before it are applied (their deltas appended), *applied says how
  // many, and the error is returned.
  Status ApplyBatch(std::span<const Fact> facts, Deltas* out = nullptr, size_t* applied = nullptr);
  // Who brought `person` (KOC); 0 clears it.
  Status SetInviter(int64_t person, int64_t inviter);
  // Manual tags. INVALID_FIELD for a rule tag (its membership is computed).
  Status AddTag(int64_t person, int64_t tag_id, Deltas* out = nullptr);
  Status RemoveTag(int64_t person, int64_t tag_id, Deltas* out = nullptr);
  // Bulk: unknown people are skipped (counted in *skipped if given).
  Status AddTagToPeople(int64_t tag_id, std::span<const int64_t> people, Deltas* out = nullptr,
                        size_t* skipped = nullptr);
  Status AddTagToSet(int64_t tag_id, const PersonSet& people, Deltas* out = nullptr);
  Status RemoveTagFromSet(int64_t tag_id, const PersonSet& people, Deltas* out = nullptr);
  // Identity merge: the absorbed person's facts (orders, events, manual tags, touchpoints) fold
  // into the survivor's; attributes: the earlier first_seen_day with its first channel, the
  // survivor's last channel and tier unless empty. The absorbed person leaves every bitmap
  // (tag_removed / segment_exited / rfm_class_changed to none are reported for it).
  Status Merge(int64_t survivor, int64_t absorbed, Deltas* out = nullptr);
  // Sets a person's facts to exactly `facts` (creating or reviving the person): how an unmerge
  // is applied (the caller re-supplies both sides' facts from the store).
  Status ReplacePersonFacts(int64_t person, const PersonFacts& facts, Deltas* out = nullptr);
  // Forgets a person (erasure).
  Status RemovePerson(int64_t person, Deltas* out = nullptr);
  // Moves today forward (the tenant's local day; the caller converts): re-evaluates the people
  // whose windowed values, stage or RFM recency change on the days passed, and resolves quantile
  // RFM thresholds. INVALID_FIELD if `today` is before the current day.
  Status Tick(Day today, Deltas* out = nullptr);
  Day today() const;

  // Rebuild at start: between these, facts only update aggregates (no deltas, no derived state);
  // EndBulkLoad computes stages, RFM, rule tags, segments and timers for everyone.
  void BeginBulkLoad();
  Status EndBulkLoad();

  // --- reads ---
  // Parses against this engine's tags.
  StatusOr<Expr> Parse(std::string_view text, ExprErrorAt* at = nullptr) const;
  StatusOr<uint64_t> Count(std::string_view expression) const;
  StatusOr<uint64_t> Count(const Expr& e) const;
  StatusOr<PersonSet> Evaluate(const Expr& e) const;
  // One person against an expression (the same semantics, evaluated for one person).
  StatusOr<bool> Matches(int64_t person, const Expr& e) const;

  StatusOr<uint64_t> SegmentCount(int64_t segment_id) const;
  StatusOr<PersonSet> SegmentSnapshot(int64_t segment_id) const;  // a frozen copy
  StatusOr<MembersPage> SegmentMembers(int64_t segment_id, int64_t after, size_t limit) const;
  StatusOr<PersonSet> TagMembers(int64_t tag_id) const;
  StatusOr<uint64_t> TagCount(int64_t tag_id) const;
  PersonSet AllPeople() const;
  // Members of a set in ascending person id, after `after` (0: from the start).
  MembersPage Page(const PersonSet& set, int64_t after, size_t limit) const;
  std::vector<int64_t> Members(const PersonSet& set) const;  // all of them, ascending

  bool HasPerson(int64_t person) const;
  // HasPerson of each of `people`, under one lock acquisition.
  std::vector<char> HasPeople(std::span<const int64_t> people) const;
  StatusOr<PersonView> View(int64_t person) const;
  StatusOr<PersonFacts> FactsOf(int64_t person) const;
  std::vector<int64_t> People() const;  // ascending

  // RFM: the 8 classes with people and GMV (non-buyers excluded), and the resolved thresholds.
  std::vector<RfmCell> RfmMatrix() const;
  RfmThresholds ResolvedRfmThresholds() const;
  // For a rebuild: pins the thresholds the live engine resolved at its last tick (quantile
  // thresholds otherwise move with the data between ticks), and reclassifies everyone.
  void PinRfmThresholds(const RfmThresholds& t, Deltas* out = nullptr);
  std::array<uint64_t, kStageCount> StageCounts() const;

  // KOC: people ranked by own GMV + GMV of the people they brought, best first (ties: lower id).
  std::vector<KocEntry> TopKoc(size_t n) const;
  // The share of all GMV produced by the top `fraction` (0..1] of people by own GMV.
  GmvShare TopGmvShare(double fraction) const;

  uint64_t PeopleCount() const;
  EngineStats Stats() const;
  const EngineOptions& options() const;

  // Verification: the same people, facts, definitions, derived state and memberships, compared
  // by person id (dense indexes may differ). Diff lists up to `max` differences.
  std::vector<std::string> Diff(const AudienceEngine& other, size_t max = 20) const;
  bool Equals(const AudienceEngine& other, std::string* why = nullptr) const;

  // Catalogue: tag("name") (unique across groups) or tag("group/name").
  StatusOr<int64_t> ResolveTag(std::string_view name) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace siyu::audience
