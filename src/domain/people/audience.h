// Audience in the service (人群运营): one audience::AudienceEngine per tenant (src/domain/audience)
// kept in line with the store. The store holds the definitions (tags, segments), the manual facts
// (person_tags, person_inviters) and the facts the engine aggregates (people, orders, events);
// the engine is derived state, built from them at start (LoadAll) and fed each fact once its
// write is durable: ingested events, orders and refunds, new people, merges.
//
// Days are the tenant's local calendar days (its time zone), counted from 1970-01-01. A ticker
// thread moves every engine to the new day shortly after local midnight, so rolling windows move
// with time.
//
// Changes are events: every tag_added / tag_removed, segment_entered / segment_exited,
// stage_changed and rfm_class_changed a fact (or a day passing, or a manual tagging) causes is
// recorded as a system event of the person (Events::AppendSystem), asynchronously and in order,
// so that timelines, outreach and journeys can follow them. Definitions (a new rule tag or
// segment) compute their first members without events. The queue is in memory: a crash can lose
// the events of the last moments (the memberships themselves are rebuilt from the store).
//
// Merges: an event whose ids merged people folds the absorbed rows into the survivor at once;
// merges made elsewhere (links, approvals, logins) are folded by Reconcile, which the identity
// routes call and the ticker runs every 30 s. A person's attributes are folded from its rows',
// kept per row, so a live merge ends where a rebuild does. An unmerge rebuilds the tenant's engine
// from the store (rare; seconds for millions of people).
//
// Builds while facts arrive (decision 0008): a build journals the facts acknowledged while it
// reads the store and replays them into the new engine before installing it, so it misses none
// and counts none twice.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "domain/audience/audience.h"
#include "domain/events/event_id_set.h"
#include "domain/events/events.h"
#include "domain/orders/orders.h"
#include "domain/people/identity.h"
#include "domain/per_row.h"
#include "store/store.h"

namespace siyu::domain {

struct AudienceTag {
  int64_t id = 0;
  std::string group;  // "" = no group
  std::string name;
  std::optional<std::string> rule;  // canonical text; nullopt = manual
  uint64_t people = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct AudienceSegment {
  int64_t id = 0;
  std::string name;
  std::string expression;  // canonical text
  uint64_t people = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct NewTag {
  std::string group;
  std::string name;
  std::optional<std::string> rule;
};

struct NewSegment {
  std::string name;
  std::optional<std::string> expression;  // text form
  std::optional<std::string> json;        // or the JSON form, as text
};

struct TagMembersChange {
  std::vector<int64_t> add, remove;
  std::optional<int64_t> segment_id;  // add everyone in the segment
};

struct TagMembersResult {
  int64_t tag_id = 0;
  uint64_t changed = 0;
  uint64_t skipped = 0;
};

struct CountAnswer {
  uint64_t people = 0;
  std::string expression;  // canonical text
  std::string json;        // canonical JSON form
};

// How a tenant's people are classified: RFM thresholds (fixed, or a quantile of the buyers
// resolved daily) and lifecycle rules. Defaults: every RFM dimension split at the buyers' median.
struct AudienceSettings {
  audience::RfmOptions rfm;
  audience::LifecycleOptions lifecycle;
};
AudienceSettings DefaultAudienceSettings();
// The stored (and API) JSON form: {"rfm":{"recency":{"mode":"quantile","quantile":0.5} |
// {"mode":"fixed","value":30},"frequency":…,"monetary":…},"lifecycle":{"default_cycle_days",
// "dormant_cycles","churn_cycles","active_min_orders"}}.
std::string AudienceSettingsJson(const AudienceSettings& s);
// INVALID_FIELD naming the setting (e.g. "rfm.recency.quantile") for values out of range.
Status CheckAudienceSettings(const AudienceSettings& s);

struct SegmentSnapshotInfo {
  int64_t id = 0;
  int64_t segment_id = 0;
  std::string name;
  std::string expression;  // the segment's expression when frozen
  uint64_t people = 0;
  int64_t created_at = 0;
};

struct AudienceVerifyReport {
  bool ok = true;
  std::vector<std::string> differences;  // the first differences, if any
  uint64_t people = 0;
  double seconds = 0;
};

class Audience {
 public:
  Audience(store::Store& store, Identity& identity, Events& events);
  ~Audience();
  Audience(const Audience&) = delete;
  Audience& operator=(const Audience&) = delete;

  // Builds every tenant's engine from the store and starts the day ticker.
  Status LoadAll();
  // Stops the ticker. Idempotent.
  void Stop();

  // ---- facts, after their write is durable -----------------------------------------------------
  // The fact scope (domain/fact_scope.h) the services hold from before a fact's write until these
  // observers have run: a build waits for the facts in flight and journals the ones that begin
  // while it reads. Reentrant on one thread.
  std::shared_ptr<void> BeginFact(int64_t tenant_id);
  void OnEvents(int64_t tenant_id, const std::vector<EventItem>& items, const IngestResult& r);
  void OnPersonCreated(int64_t tenant_id, int64_t person_id);
  void OnOrder(int64_t tenant_id, const Order& order);
  void OnRefund(int64_t tenant_id, const Order& order);
  // Folds merged rows of the tenant that the engine still holds apart.
  Status Reconcile(int64_t tenant_id);
  // Rebuilds the tenant's engine from the store (after an unmerge).
  Status Rebuild(int64_t tenant_id);

  // ---- definitions -----------------------------------------------------------------------------
  StatusOr<std::vector<AudienceTag>> Tags(int64_t tenant_id);
  StatusOr<AudienceTag> CreateTag(int64_t tenant_id, const NewTag& in);
  Status DeleteTag(int64_t tenant_id, int64_t tag_id);
  StatusOr<TagMembersResult> ChangeTagMembers(int64_t tenant_id, int64_t tag_id,
                                              const TagMembersChange& in);
  StatusOr<std::vector<AudienceSegment>> Segments(int64_t tenant_id);
  StatusOr<AudienceSegment> Segment(int64_t tenant_id, int64_t segment_id);
  StatusOr<AudienceSegment> CreateSegment(int64_t tenant_id, const NewSegment& in);
  Status DeleteSegment(int64_t tenant_id, int64_t segment_id);

  // Settings: stored per tenant; a change rebuilds the tenant's engine.
  StatusOr<AudienceSettings> Settings(int64_t tenant_id);
  StatusOr<AudienceSettings> PutSettings(int64_t tenant_id, const AudienceSettings& in);

  // Snapshots: a segment's members frozen now (a campaign's audience), kept after the segment
  // changes or is deleted.
  StatusOr<SegmentSnapshotInfo> Snapshot(int64_t tenant_id, int64_t segment_id,
                                         const std::string& name);
  StatusOr<std::vector<SegmentSnapshotInfo>> Snapshots(int64_t tenant_id, int64_t segment_id);
  StatusOr<std::vector<int64_t>> SnapshotMembers(int64_t tenant_id, int64_t snapshot_id);

  // Builds the tenant's engine afresh from the store and compares it with the live one (people,
  // facts, definitions, stages, classes, memberships). Differences are findings, not errors.
  StatusOr<AudienceVerifyReport> Verify(int64_t tenant_id);
  // Every saved segment's and tag's members in the engine against the same question asked of the
  // store in SQL (audience::ExpressionToSql), at the tenant's current UTC offset. What `siyu admin
  // verify` runs; each query scans the tenant's facts (seconds per segment at millions of people).
  StatusOr<AudienceVerifyReport> CheckAgainstStore(int64_t tenant_id);

  // ---- reads -----------------------------------------------------------------------------------
  StatusOr<CountAnswer> Count(int64_t tenant_id, const std::optional<std::string>& expression,
                              const std::optional<std::string>& json);
  StatusOr<audience::MembersPage> SegmentMembers(int64_t tenant_id, int64_t segment_id,
                                                 int64_t after, size_t limit);
  StatusOr<std::vector<int64_t>> AllSegmentMembers(int64_t tenant_id, int64_t segment_id);
  struct RfmAnswer {
    audience::RfmThresholds thresholds;
    std::vector<audience::RfmCell> cells;
  };
  RfmAnswer Rfm(int64_t tenant_id);
  std::array<uint64_t, audience::kStageCount> Lifecycle(int64_t tenant_id);
  struct KocAnswer {
    std::vector<audience::KocEntry> items;
    audience::GmvShare share;
  };
  KocAnswer Koc(int64_t tenant_id, size_t limit, double top_fraction);
  // The person `person_id` (any row of it) as the engine sees it. NOT_FOUND.
  StatusOr<std::pair<int64_t, audience::PersonView>> PersonOf(int64_t tenant_id, int64_t person_id);

  struct ChangeStats {
    uint64_t deltas = 0;    // changes computed
    uint64_t recorded = 0;  // recorded as system events
    uint64_t dropped = 0;   // not recorded (queue full or the store failing)
    uint64_t pending = 0;   // queued now
  };
  ChangeStats Changes();

  // The tenant's engine (built on first use for a tenant created since start-up), with every fact
  // acknowledged so far in it (channel touches settled first).
  std::shared_ptr<audience::AudienceEngine> EngineOf(int64_t tenant_id);
  // The tenant's local day number of `ms`.
  audience::Day DayOf(int64_t tenant_id, int64_t ms);

  // Tests: run by every build between its reads of the store (so that facts land meanwhile).
  void SetBuildPauseForTesting(std::function<void()> fn) { build_pause_ = std::move(fn); }

 private:
  struct Tenant;
  struct Journal;
  class FactGate;
  // One store row of a person (merged people have several), as the engine's attributes see it:
  // acquisition day and channels from the people row, touchpoints and tier from its events. A
  // person's attributes fold its rows (FoldRows).
  struct RowTier {
    std::string tier;  // the level ("gold")
    int64_t ts = 0;    // the member_bound event that named it: the latest by (ts, event_id)
    std::string event_id;
  };
  struct RowAttrs {
    audience::Day first_seen_day = 0;
    // Bit i: the row has an event at kEventTouchpoints[i] (ingest accepts no other touchpoint).
    uint8_t touchpoints = 0;
    int64_t first_channel = 0;  // channel ids, 0 = none
    int64_t last_channel = 0;
    std::unique_ptr<RowTier> tier;  // few rows have one: kept out of line, the map stays small
  };
  // Open addressing: the map is looked up for every event, and a node per person costs a cache
  // miss and an allocation; a batch prefetches its rows first. References into it do not outlive
  // an insertion.
  using RowMap = PerRow<RowAttrs>;
  // Where facts go: a tenant's live engine, or one being built that catches up with it.
  struct Sink {
    audience::AudienceEngine& e;
    RowMap& rows;
    std::mutex& mu;  // guards rows
    std::string tz;
    audience::Deltas d;  // what the facts changed
  };
  // The tenant's engine built from the store, not installed.
  struct Built {
    std::shared_ptr<audience::AudienceEngine> engine;
    RowMap rows;
    std::string tz;
    EventIdSet recent;  // events taken from the store whose received_at >= the build's `since`
  };
  Tenant& TenantOf(int64_t tenant_id);
  StatusOr<Built> Build(int64_t tenant_id, int64_t since);
  // Builds the tenant's engine from the store while facts keep arriving, then replays the facts
  // that arrived meanwhile (the journal) into it. Returns it caught up with the live engine, with
  // `exclusive` holding the tenant's fact gate: no fact lands until the caller releases it. The
  // caller holds the tenant's build lock.
  StatusOr<Built> BuildCaughtUp(int64_t tenant_id, Tenant& t,
                                std::unique_lock<FactGate>& exclusive);
  // Rebuild with the build lock held.
  Status RebuildLocked(int64_t tenant_id, Tenant& t);
  // Holds the tenant's build lock in `lock` (no build runs while a definition or a manual tagging
  // changes the engine with the store) and returns the engine.
  StatusOr<std::shared_ptr<audience::AudienceEngine>> LockDefinitions(
      int64_t tenant_id, std::unique_lock<std::mutex>& lock);
  StatusOr<std::string> TimezoneOf(int64_t tenant_id);

  // Facts, applied to a sink. Events flagged in `skip` were taken from the store by a build.
  // The people whose channels the events may have moved are read back from the store at once, or,
  // given `moved`, added to it to be read once the store has them (SettleChannels).
  void ApplyEvents(int64_t tenant_id, Sink& s, const std::vector<EventItem>& items,
                   const IngestResult& r, const std::vector<char>* skip,
                   std::vector<int64_t>* moved = nullptr);
  // ApplyEvents' work for the items `run` of the batch (accepted, no merge among them but the
  // first).
  void ApplyEventRun(int64_t tenant_id, Sink& s, const std::vector<EventItem>& items,
                     const IngestResult& r, const std::vector<size_t>& run);
  // The first and last channels of `people` as the store has them now (after the event log's
  // applier, when `wait_for_store`), into the sink.
  void ReadChannels(int64_t tenant_id, Sink& s, std::vector<int64_t> people, bool wait_for_store);
  // Channel touches read back: a tenant's people whose channels events may have moved are read
  // from the store once the event log's applier has written those events (the refresher, a few
  // times a second), or at once before an answer that uses the engine (`now`), so that the answer
  // includes every fact acknowledged before it. Reading on ingest itself would make every batch
  // wait for the applier.
  void SettleChannels(int64_t tenant_id, bool now);
  void SettleAllChannels();
  // The tenant's engine as it is (built on first use), channel touches not settled.
  std::shared_ptr<audience::AudienceEngine> LiveEngineOf(int64_t tenant_id);
  void ApplyPersonCreated(int64_t tenant_id, Sink& s, int64_t person);
  void ApplyOrder(int64_t tenant_id, Sink& s, const Order& order);
  void ApplyRefund(int64_t tenant_id, Sink& s, const Order& order);
  Status ApplyReconcile(int64_t tenant_id, Sink& s);
  // Folds the person's other rows the engine still holds apart into it.
  void FoldPerson(int64_t tenant_id, Sink& s, int64_t person);
  // The person's attributes from its rows (ascending id: the survivor, the smallest, first): the
  // earliest acquisition day; the first channel of the earliest row with one (the smaller id on a
  // tie); the last channel of the first row with one; every touchpoint; the tier named by the
  // latest member_bound event of any row. Rows not in `rows` are skipped.
  static audience::PersonAttrs FoldRows(const RowMap& rows, std::vector<int64_t> ids);
  // Notes a member_bound event's level on a row when it is the row's latest. True if it changed the
  // row's level or the event naming it.
  static bool NoteTier(std::unique_ptr<RowTier>& row, std::string tier, int64_t ts,
                       std::string_view event_id);
  // Gives the engine the person's attributes folded from its rows (adds the person if new).
  void RefreshPerson(Sink& s, int64_t person, std::vector<int64_t> rows);
  // The facts that arrived during a build, into the built engine.
  void Replay(int64_t tenant_id, Built& b, Journal& j, bool* ambiguous);
  // Runs `fn(sink)` on the tenant's live engine inside the fact scope; journals the fact
  // (`journal(j)`) when a build is catching up.
  template <typename Fn, typename J>
  void ApplyLive(int64_t tenant_id, Fn&& fn, J&& journal);
  void DropEngineOnRollback(store::Conn& c, int64_t tenant_id);
  void TickAll();
  // Queues the deltas a fact caused, to be recorded as the people's system events (tag_added,
  // segment_entered, stage_changed, …) by the emitter thread, in order, shortly after.
  void Emit(int64_t tenant_id, const audience::Deltas& d);
  void EmitLoop();

  store::Store& store_;
  Identity& identity_;
  Events& events_;
  std::mutex mu_;
  std::unordered_map<int64_t, std::unique_ptr<Tenant>> tenants_;
  std::atomic<uint64_t> deltas_{0};

  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;
  std::thread ticker_;

  struct Pending {
    int64_t tenant_id;
    int64_t ts;
    audience::Delta delta;
  };
  std::mutex emit_mu_;
  std::condition_variable emit_cv_;
  std::vector<Pending> pending_;
  size_t in_flight_ = 0;  // taken by the emitter, not yet recorded
  bool emit_stopping_ = false;
  std::thread emitter_;
  std::atomic<uint64_t> emitted_{0}, dropped_{0};
  std::function<void()> build_pause_;
};

}  // namespace siyu::domain
