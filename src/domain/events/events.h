// Events (行为事件): what people do — views, carts, payments, contacts, groups, scans — sent in
// batches of up to 1,000 by SDKs and servers, each under a client-chosen `event_id` that makes
// resending safe. Every valid event is attached to a person found (or created) from its ids and
// stored once; invalid events are refused one by one without failing their batch. A person's
// timeline lists their events by the time they happened (`ts`), however late they arrived.
//
// Where events are kept (docs/decisions/0007). With PostgreSQL, a batch is one store write: all its
// accepted events are rows of `events`, committed together before the answer. With SQLite, once
// OpenLog has run, accepted events are records of the event log, appended together and durable
// before the answer; the store takes only what other features query in SQL — new people and their
// ids, merges, and events that carry a channel_state (attribution: the channel report and people's
// last touch), which are both rows of `events` and records of the log. Event ids are deduplicated
// in memory (a duplicate of an event still in flight is answered once that event is durable) and
// timelines read the log through an in-memory index; both are rebuilt from the log and the table
// when the log is opened. An event whose ids are all known and one person touches no SQL at all.
// The validation that needs no store runs on the request's own thread. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "domain/events/catalogue.h"
#include "domain/fact_scope.h"
#include "domain/people/identity.h"
#include "domain/people/people.h"
#include "store/store.h"

namespace siyu::domain {

inline constexpr size_t kMaxEventsPerBatch = 1000;
inline constexpr size_t kMaxEventIdLength = 64;
inline constexpr size_t kMaxIdsPerEvent = 10;
// An event's ts is not before 2000-01-01 and at most 5 minutes ahead of the server clock.
inline constexpr int64_t kMinEventTs = 946'684'800'000;
inline constexpr int64_t kMaxEventClockSkewMs = 5 * 60 * 1000;

// Where an event happened. Wider than a channel's touchpoints: events also come from stores and
// from anywhere else a brand meets people.
inline constexpr std::string_view kEventTouchpoints[] = {
    "official_account", "mini_program", "wecom", "group", "offline", "other"};

// 1–64 characters of [A-Za-z0-9_.:-].
bool IsEventId(std::string_view s);
bool IsEventTouchpoint(std::string_view s);

// The one place the `ids` of an event are parsed. Today this is the grammar of POST /v1/people;
// the identity module's fuller grammar (external_userid, member_no, custom ids) replaces it here
// and nowhere else. INVALID_FIELD on `field`.
StatusOr<ExternalId> ParseEventPersonId(std::string_view s, const std::string& field);

// A valid event, as the store will hold it.
struct EventIn {
  std::string event_id;
  std::string type;
  const EventTypeSpec* spec = nullptr;  // nullptr: a custom type
  std::vector<ExternalId> ids;          // canonical, in the order sent, without repeats
  int64_t ts = 0;
  std::string touchpoint;
  std::optional<std::string> channel_state;
  std::string ids_json;    // the canonical ids as a compact JSON array
  std::string properties;  // the properties as a compact JSON object
  // The integer properties (IntegerProperties), when whoever made the event had them parsed;
  // otherwise they are read from `properties` when needed.
  std::optional<std::vector<std::pair<std::string, int64_t>>> integer_properties;
};

// Adds a canonical id (of kind `kind`, an IdKindName) to `e.ids` and `e.ids_json` (left open:
// the reader closes the array), unless `e` has it already (e.g. a phone in two spellings).
void AddCanonicalId(EventIn& e, std::string_view canonical, std::string_view kind);
// The same for ids kept in e.ids[0, used): the elements past them are an earlier event's, written
// over in place (their strings' memory reused); the reader drops any left over. Counts in `used`.
void AddCanonicalId(EventIn& e, size_t& used, std::string_view canonical, std::string_view kind);

// The top-level integer properties of an event, in the object's order: what the audience's
// event_sum sums. Decimals, strings and numbers written with a fraction or an exponent are not
// integers.
std::vector<std::pair<std::string, int64_t>> IntegerProperties(const json::object& properties);
void IntegerProperties(const json::object& properties,
                       std::vector<std::pair<std::string, int64_t>>& out);  // appends to `out`

// One element of a batch after validation: a valid event, or why it was refused.
struct EventItem {
  std::string event_id;  // empty when the element has no valid event_id (Ingest may take it)
  Status rejected;       // OK: `event` is valid
  EventIn event;
};

// Validates element `index` of a batch (its fields are named `events[<index>].…`). Never fails the
// batch: a bad element comes back with `rejected` set. Moves the properties out of `item`.
EventItem ReadEventItem(json::value& item, size_t index, int64_t now_ms);

// POST /v1/events' body read into its items as api::ParseEventBatch reads it: the envelope is a
// JSON object whose only field is `events`, an array of 1–1,000 elements (MALFORMED_JSON,
// INVALID_FIELD, UNKNOWN_FIELD… for a bad envelope), and each element goes through ReadEventItem.
// The batch's JSON tree is built in a per-thread arena and dropped at once, instead of one heap
// allocation per node.
// The batch is read in one pass (ReadEventBatchFast) and, when that pass gives up, as a tree.
StatusOr<std::vector<EventItem>> ReadEventBatch(std::string_view body, int64_t now_ms);
// The same into `items`, whose elements — an earlier batch's — are written over: their strings'
// memory is reused, so that a thread reading batch after batch into one vector allocates little.
// On error, `items` is unspecified.
Status ReadEventBatch(std::string_view body, int64_t now_ms, std::vector<EventItem>& items);
// The reading through a JSON tree, which explains every error.
StatusOr<std::vector<EventItem>> ReadEventBatchTree(std::string_view body, int64_t now_ms);
// The same items as ReadEventBatchTree, read without a tree (batch_reader.cc); nullopt when the
// body has anything the tree reader would refuse or explain — a bad element, a bad envelope, a
// duplicate key — or anything this reader does not handle itself.
std::optional<std::vector<EventItem>> ReadEventBatchFast(std::string_view body, int64_t now_ms);
// Into `items` as ReadEventBatch does; false (and `items` unspecified) where the other gives
// nullopt.
bool ReadEventBatchFast(std::string_view body, int64_t now_ms, std::vector<EventItem>& items);

enum class EventOutcome { kAccepted, kDuplicate, kRejected };

// What an event's (or a login's) ids did to the identity graph: nothing new ("linked": they were
// one person already, or new ids were attached), a merge of people, or a link held back by the
// guard for review.
enum class LinkState { kLinked, kMerged, kQuarantined };
std::string_view LinkStateName(LinkState s);        // "linked" | "merged" | "quarantined"
std::string_view EventOutcomeName(EventOutcome o);  // "accepted" | "duplicate" | "rejected"

struct EventResult {
  std::string event_id;  // empty: the element had no valid event_id
  EventOutcome outcome = EventOutcome::kRejected;
  Status error;           // why it was rejected
  int64_t person_id = 0;  // accepted: the person the event belongs to (after any merge)
  LinkState link = LinkState::kLinked;
  std::optional<int64_t> channel_id;  // accepted: the channel its channel_state named
};

struct IngestResult {
  std::vector<EventResult> results;  // in the order of the batch
  int64_t accepted = 0;
  int64_t duplicates = 0;
  int64_t rejected = 0;
  // When the ingest began: every accepted event's received_at is at or after it.
  int64_t started_at = 0;
};

// The answer to POST /v1/events, written directly: the same text as serialising
// api::ToJson(result) — {"results":[{"event_id","status","person_id","link"?} or
// {"event_id","status","code","message","field"?} or {"event_id","status"}…],"accepted",
// "duplicates","rejected"}.
std::string IngestResultJson(const IngestResult& result);

// ---- person resolution -------------------------------------------------------------------------

// The person behind each external id, as far as known: loaded for a whole batch from the identity
// graph in one look, and kept current by ResolvePerson as it attaches new ids.
class KnownIds {
 public:
  // Inside a write: loads the person row of every id in `canonical` that has one (with ids
  // assigned ahead of the store, after Identity::SyncInWrite).
  Status Load(store::Conn& c, Identity& identity, int64_t tenant_id,
              const std::vector<std::string>& canonical);
  std::optional<int64_t> Find(const std::string& canonical) const;
  void Put(const std::string& canonical, int64_t person_id) { map_[canonical] = person_id; }

 private:
  std::unordered_map<std::string, int64_t> map_;
};

struct Resolution {
  int64_t person_id = 0;         // the person (survivor) the ids belong to after the links
  int64_t origin_person_id = 0;  // the person row the first known id belongs to (or the new one)
  bool created = false;
  LinkState link = LinkState::kLinked;
};

// Inside a write: the person an event with `ids` belongs to. The person row of the first id
// already known (the origin the event is attached to); if none is known, a new person row
// attributed to `channel_id` and acquired at `ts`. Ids not yet known are attached to that row. Ids
// of other people are linked to the first id through the identity graph (`reason` is logged):
// their people merge, or the link is quarantined when the guard holds it back. `known` must hold
// every id of `ids` that existed before the batch (KnownIds::Load).
StatusOr<Resolution> ResolvePerson(store::Conn& c, Identity& identity, int64_t tenant_id,
                                   const std::vector<ExternalId>& ids,
                                   std::optional<int64_t> channel_id, int64_t ts, KnownIds& known,
                                   const std::string& reason);

// ---- the service -------------------------------------------------------------------------------

struct StoredEvent {
  std::string event_id;
  int64_t person_id = 0;
  std::string type;
  int64_t ts = 0;
  std::string touchpoint;
  std::optional<int64_t> channel_id;
  std::string ids_json;    // JSON array text, as stored
  std::string properties;  // JSON object text, as stored
  int64_t received_at = 0;
};

struct TimelinePage {
  std::vector<StoredEvent> items;          // newest first by (ts, event_id)
  std::optional<std::string> next_before;  // opaque cursor for the next (older) page
};

// What the event log holds (SQLite deployments).
struct EventLogStats {
  bool enabled = false;
  uint64_t records = 0;          // events in the log
  uint64_t bytes = 0;            // durable bytes of the log
  uint64_t dedup_ids = 0;        // event ids known to the in-memory deduplication (log and table)
  uint64_t dedup_bytes = 0;      // their memory
  uint64_t timeline_rows = 0;    // person rows with events in the timeline index
  uint64_t recovered_bytes = 0;  // torn tail dropped when the log was opened
};

// An event siyu itself records for a known person (the audience's tag_added, segment_entered,
// stage_changed, …): no ids to resolve, no client event_id. Their types are not accepted from
// clients (they are neither standard nor custom:).
struct SystemEvent {
  int64_t person_id = 0;
  std::string type;
  int64_t ts = 0;
  std::string properties;  // compact JSON object
};
inline constexpr std::string_view kSystemEventTypes[] = {"tag_added",       "tag_removed",
                                                         "segment_entered", "segment_exited",
                                                         "stage_changed",   "rfm_class_changed"};
bool IsSystemEventType(std::string_view type);

class Events {
 public:
  Events(store::Store& store, Identity& identity);
  ~Events();
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;

  // From now on, events go to the event log in `dir` (created if missing). Opens and recovers the
  // log, then builds the deduplication sets and the timeline index from its records and from the
  // `events` table. Call once, before serving.
  //
  // With the log, new people, their ids, links between people and the rows of events with a
  // channel are decided in memory when a batch is ingested (person rows numbered by
  // Identity::NewPersonRow), acknowledged with the batch's log records, and written to the store
  // afterwards by an applier, in large transactions (docs/decisions/0007): at the start of every
  // store write, before every store read, and on its own a few milliseconds after a batch. The
  // store records the last log record so applied; OpenLog replays the records after it (a crash
  // may have left them unapplied) before serving.
  Status OpenLog(const std::string& dir);
  bool has_log() const { return log_ != nullptr; }
  // Writes what is still owed to the store and stops the applier (before the store shuts down).
  void Close();
  // Tests: while paused, nothing owed is written to the store (so that a test can stop the
  // process with work owed and see the next OpenLog replay it). Reads then wait for nothing.
  void PauseApplierForTest(bool paused);
  // Ingest holds new batches while the store is owed more than this many rows (people, ids, links
  // and rows of events with a channel): the applier's backlog, and so its memory and the time a
  // read waits for it, stay bounded however fast events come. Tests lower it.
  static constexpr size_t kDefaultMaxOwedRows = 1'000'000;
  // For work that can wait for the applier rather than have it write at once (as every store read
  // does): a ticket for what is owed to the store now, and whether the store has it. Without the
  // log, the store has everything that was ingested.
  uint64_t OwedTicket() const;
  bool StoreHas(uint64_t ticket) const;
  void SetMaxOwedRows(size_t rows);
  EventLogStats LogStats() const;

  // Every stored event of the tenant, once each: the `events` table's rows, then the log's records
  // that are not rows.
  Status ForEachStored(int64_t tenant_id, const std::function<Status(const StoredEvent&)>& fn);

  // Stores the valid, new events of `items` in one write and reports every item. Accepted events
  // are durable when this returns. A store failure fails the whole batch (nothing is stored).
  StatusOr<IngestResult> Ingest(int64_t tenant_id, std::vector<EventItem> items);
  // The same on the caller's items, left to the caller afterwards with their memory (an accepted
  // event's `event_id` has moved into the result): the HTTP handler reads its next batch into them.
  StatusOr<IngestResult> IngestItems(int64_t tenant_id, std::vector<EventItem>& items);
  // Records system events (touchpoint "other", event ids "sys-…"), durable when this returns.
  // They are not passed to the observer.
  Status AppendSystem(int64_t tenant_id, const std::vector<SystemEvent>& events);
  // Called after every successful Ingest with its items and result (the audience engine's feed).
  using Observer =
      std::function<void(int64_t tenant_id, const std::vector<EventItem>&, const IngestResult&)>;
  void SetObserver(Observer fn) { observer_ = std::move(fn); }
  // Held from before a batch is written until the observer has run.
  void SetFactScope(FactScope fn) { fact_scope_ = std::move(fn); }

  // The person's events (of every row merged into it), newest first, `limit` at a time, older than
  // the cursor `before` (from a previous page's next_before). NOT_FOUND for a person not of this
  // tenant; INVALID_QUERY (field "before") for a cursor this did not make.
  StatusOr<TimelinePage> Timeline(int64_t tenant_id, int64_t person_id,
                                  const std::optional<std::string>& before, int limit);

 private:
  struct LogState;
  struct TenantLog;
  struct Owed;
  // The applier (decision 0007): writes, inside the current write, every batch's work owed to
  // the store and not yet being written (the store's write prologue and Identity's catch-up).
  Status ApplyOwed(store::Conn& c);
  Status WriteOwed(store::Conn& c, const std::vector<std::shared_ptr<Owed>>& owed);
  // Queues a batch's work for the applier (waking it when the first is queued or enough are).
  void Owe(std::shared_ptr<Owed> o);
  void ApplierLoop();
  void Barrier();
  // Ingest's back-pressure: waits while the store is owed more than the limit of rows.
  Status WaitForRoom();
  // OpenLog: the work of the records after the store's applied mark, owed again.
  Status Replay(uint64_t applied, const std::vector<std::string>& payloads,
                const std::vector<uint64_t>& seqs);
  StatusOr<IngestResult> IngestToStore(int64_t tenant_id, std::vector<EventItem>& items);
  StatusOr<IngestResult> IngestToLog(int64_t tenant_id, std::vector<EventItem>& items);
  TenantLog& TenantLogOf(int64_t tenant_id);
  // The log's events of the person rows `members` older than (ts, event_id) `before`: the newest
  // `limit` + 1 of them at least (more when several share a ts), unordered.
  StatusOr<std::vector<StoredEvent>> LogTimeline(
      int64_t tenant_id, const std::vector<int64_t>& members,
      const std::optional<std::pair<int64_t, std::string>>& before, size_t limit);

  store::Store& store_;
  Identity& identity_;
  std::unique_ptr<LogState> log_;
  Observer observer_;
  FactScope fact_scope_;
};

}  // namespace siyu::domain
