// IdentityGraph (OneID): one tenant's in-memory map from every external id (openid, unionid,
// external_userid, phone, member_no, custom) to the person it belongs to, with merges that are
// audited (a merge log), undoable exactly (Unmerge), and guarded against over-merging
// (quarantine). It is derived state: the store holds the person rows, their ids and the merge log;
// Rebuild() recreates the graph from them and Equals() checks a rebuilt graph against the live one.
//
// Model.
//   - An origin person is a person row created in the store (int64 store id). Every id belongs to
//     exactly one origin person, for ever (AddId); origin persons get dense uint32 indexes.
//   - A merge joins the origin persons owning its two ids. A person (what callers see) is a
//     connected component of origin persons under the active (not undone) merges; it is named by
//     its survivor, the member with the smallest store id (the oldest row), so answers do not
//     depend on the order in which merges happened.
//   - Union-find (union by size; path halving on the writer's finds) keeps the components;
//     Resolve is a hash lookup plus a few parent hops.
//
// Unmerge(m) is exact: afterwards the persons are exactly the connected components of the active
// merges other than m, as if m had never been applied. It rebuilds only m's component: its members
// are reset to singletons and the component's remaining active merges are replayed in log order.
// Later merges that joined through m stay applied (they are still edges between their own two
// origin persons). Since a merge only ever joins two distinct persons, the active merges form a
// forest, so undoing one always splits its person into exactly two. A Link that
// answered kAlreadySame was not a merge and is not recorded, so undoing the merge that made it
// redundant does not resurrect it: issue the Link again if it should still hold.
//
// Guard (max_people_per_id = N, 0 disables it). "People tied together by an id x" is the number of
// previously distinct persons x has joined: 1 (x's own person) + the number of active merges made
// through x (x is id_a or id_b). Each such merge joined two persons that were distinct at the time,
// so origin persons already joined through other ids (a shared unionid, say) count once. A Link
// of a and b between two distinct persons would raise the count of both ids by one; if either
// would then exceed N (count(x) + 1 > N, i.e. x already has N-1 merges), the link is not applied:
// it is quarantined with the id that trips the guard and the origin persons it would tie (its
// owner, the owners of the other ids of its active merges, and the new one). With N = 3, a phone
// can join its owner to two other persons; a link that would add a third (a fourth person in all)
// is quarantined.
// ApproveQuarantine applies it regardless of the guard (the approved merge counts from then on);
// RejectQuarantine drops it. While a link is held, linking the same pair again returns the same
// quarantine (if the guard still holds it back; if an unmerge freed the ids, the link is applied
// and the stale quarantine, when approved, answers kAlreadySame).
//
// The merge log is one sequence of events, each with a sequence number: kMerge (its seq is the
// merge_id), kUnmerge, kQuarantine (its seq is the quarantine_id), kApprove (followed by the
// kMerge it caused, if the persons were still distinct) and kReject. Timestamps are passed in
// (UTC ms) so a replay is exact.
//
// Memory, sized for 30 M ids per tenant (std::unordered_map<std::string, ...> would cost ~100 bytes
// per id before the strings). Measured at 10 M people / 30 M ids: 69 bytes per id, people included.
//   per id: an 8-byte hash slot (tag | arena offset) at load 0.5-0.75 (10.7 B after Reserve), an
//     arena record of 11 bytes + the part after the last ':' (28 B for an openid; the
//     "openid:<appid>:" prefix is stored once per app), 2.06 B of reverse offset, a 4-byte link in
//     its person's ring of ids and a 1-byte count of merges through it (id_table.h);
//   per origin person: a 32-byte node (parent, size, survivor, member ring, id ring, edge list),
//     its 8-byte store id and an 8-byte index slot at load <= 0.75;
//   per merge or quarantine: a 28-byte edge and a 48-byte log event.
// The big arrays live on transparent huge pages (huge_alloc.h): a resolve is 3-4 dependent random
// reads (slot, record, person, root), and with 4 KiB pages each would also miss the TLB.
//
// Thread-safety: every method is safe to call from any thread. Reads share a reader-writer lock
// (RwLock, writer-preferring so a stream of Resolves cannot starve the writer); writes hold it
// exclusively for the whole operation, so a reader never sees a torn state (half a union, a
// component being re-replayed by Unmerge, a table being grown). The tenant's single writer (the
// engine's strand) is the expected writer; concurrent writers are serialised, not rejected. Readers
// never compress paths (union by size bounds the depth by log2 of the component size). A write
// stalls readers for its duration: O(1) for Link/AddId, 32 links for LinkBatch (it releases the
// lock between chunks), O(component) for Unmerge, O(ids) when a table grows (call Reserve() ahead
// when loading in bulk). Moving a graph is not thread-safe (nobody else may use either graph during
// a move).
//
// Ownership: the graph owns all its data; inputs are copied; outputs are values.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "domain/identity/external_id.h"
#include "domain/identity/flat_index.h"
#include "domain/identity/huge_alloc.h"
#include "domain/identity/id_table.h"
#include "domain/identity/rw_lock.h"
#include "domain/identity/segmented.h"

namespace siyu::identity {

struct GraphOptions {
  // The guard's N: a link is quarantined when one of its ids would tie together more than N
  // previously distinct persons (see the header comment). 0 disables the guard; 1 quarantines
  // every link (review every merge).
  uint32_t max_people_per_id = 3;
};

enum class LinkResult : uint8_t {
  kLinked,           // the two persons were merged (merge_id)
  kAlreadySame,      // the ids already resolve to one person; nothing recorded
  kQuarantined,      // the guard held the link back (quarantine_id, quarantine_reason)
  kNewPersonNeeded,  // an id belongs to no person yet (unknown_ids): see Link()
};
std::string_view LinkResultName(LinkResult r);

struct LinkOutcome {
  LinkResult result = LinkResult::kAlreadySame;
  uint64_t merge_id = 0;          // kLinked
  uint64_t quarantine_id = 0;     // kQuarantined
  std::string quarantine_reason;  // kQuarantined
  // kLinked, kAlreadySame: the person (survivor) both ids now resolve to. kNewPersonNeeded: the
  // person of the id that is known, or 0 if neither is.
  int64_t person = 0;
  std::vector<std::string> unknown_ids;  // kNewPersonNeeded, canonical forms
};

enum class LogKind : uint8_t { kMerge, kUnmerge, kQuarantine, kApprove, kReject };
std::string_view LogKindName(LogKind k);

// One event of the merge log, as the store persists it and Rebuild() reads it back.
struct LogEntry {
  // Strictly increasing; the merge_id of a kMerge, the quarantine_id of a kQuarantine.
  uint64_t seq = 0;
  LogKind kind = LogKind::kMerge;
  int64_t ts = 0;      // UTC ms
  std::string reason;  // why (kMerge/kQuarantine: the link's reason; otherwise the operator's)
  // The link's two ids (for kUnmerge/kApprove/kReject: those of the target; Rebuild derives them).
  std::string id_a, id_b;
  // kMerge: the survivors of the two persons just before the merge. kUnmerge: the survivors of
  // id_a's and id_b's persons just after it. Otherwise 0. Rebuild recomputes these.
  int64_t person_a = 0, person_b = 0;
  // kUnmerge: the merge_id undone. kApprove/kReject: the quarantine_id. kMerge: the quarantine_id
  // it was approved from, 0 for a direct link. kQuarantine: 0.
  uint64_t target = 0;
  // kQuarantine only (kept as recorded, since they reflect the options at the time): the id that
  // tripped the guard, the origin persons it would have tied, and the explanation.
  std::string hub_id;
  std::vector<int64_t> people;
  std::string guard_reason;

  bool operator==(const LogEntry&) const = default;
};

// A pending quarantined link.
struct Quarantine {
  uint64_t quarantine_id = 0;
  int64_t ts = 0;
  std::string reason;  // the link's reason
  std::string id_a, id_b;
  std::string hub_id;           // the id that would tie too many persons
  std::vector<int64_t> people;  // the origin persons it would tie, ascending store ids
  std::string guard_reason;     // human-readable explanation

  bool operator==(const Quarantine&) const = default;
};

// One link of a batch (LinkBatch); the views must stay valid for the call.
struct LinkRequest {
  std::string_view id_a, id_b, reason;
  int64_t ts = 0;
};

struct UnmergeOutcome {
  uint64_t seq = 0;  // the kUnmerge log event
  // The survivors of the merge's two sides afterwards (always two persons: see Unmerge).
  int64_t person_a = 0, person_b = 0;
};

// A row of the store's id table for Rebuild: `id` (canonical) belongs to origin person `person`.
struct IdRow {
  std::string_view id;
  int64_t person = 0;
};
// Fills *row and returns true, or returns false at the end. row->id must stay valid until the
// next call.
using IdRowSource = std::function<bool(IdRow* row)>;
// Fills *entry with the next log event (in seq order) and returns true, or returns false at the
// end. Lets the engine stream a long log from the store instead of holding it all.
using LogSource = std::function<bool(LogEntry* entry)>;

struct GraphStats {
  size_t people = 0;  // origin persons
  size_t ids = 0;
  size_t components = 0;  // persons as callers see them
  size_t active_merges = 0;
  size_t log_events = 0;
  size_t pending_quarantines = 0;
  // Bytes held (capacity), by part.
  size_t bytes_id_index = 0, bytes_id_offsets = 0, bytes_id_arena = 0, bytes_id_links = 0;
  size_t bytes_people = 0, bytes_log = 0;
  size_t bytes_total() const {
    return bytes_id_index + bytes_id_offsets + bytes_id_arena + bytes_id_links + bytes_people +
           bytes_log;
  }
};

class IdentityGraph {
 public:
  explicit IdentityGraph(GraphOptions options = {});
  IdentityGraph(IdentityGraph&& other) noexcept;
  IdentityGraph& operator=(IdentityGraph&& other) noexcept;
  IdentityGraph(const IdentityGraph&) = delete;
  IdentityGraph& operator=(const IdentityGraph&) = delete;

  // Recreates a graph from the store: every (id, origin person) row in any order, then the merge
  // log replayed in seq order (merges, unmerges and quarantine decisions exactly as recorded; the
  // guard is not re-evaluated). Deterministic: the same rows and log give a graph Equal() to the
  // one built incrementally. `people`/`ids` are optional size hints. INTERNAL if the rows or the
  // log are inconsistent (an id owned by two persons, a non-canonical id, a merge of unknown ids
  // or of ids already in one person, an unmerge of something not an active merge, ...): the
  // store is the truth, so a graph that cannot be rebuilt from it is a finding, not a crash. The
  // sources stream (the engine feeds tens of millions of rows without holding them); the span
  // forms are for tests and small tenants.
  static StatusOr<IdentityGraph> Rebuild(const IdRowSource& rows, const LogSource& log,
                                         GraphOptions options = {}, size_t people = 0,
                                         size_t ids = 0);
  static StatusOr<IdentityGraph> Rebuild(const IdRowSource& rows, std::span<const LogEntry> log,
                                         GraphOptions options = {}, size_t people = 0,
                                         size_t ids = 0);
  static StatusOr<IdentityGraph> Rebuild(std::span<const IdRow> rows, std::span<const LogEntry> log,
                                         GraphOptions options = {});

  // Pre-sizes the tables for bulk loads (avoids growth stalls).
  void Reserve(size_t people, size_t ids);

  // ---- writes -------------------------------------------------------------------------------

  // Records that `id` (any accepted spelling; stored canonical) belongs to origin person
  // `origin_person` (store id > 0), creating the person on first sight. Returns true if added,
  // false if it was already there for that person. INVALID_FIELD ("id", "origin_person") for bad
  // input; ALREADY_EXISTS if the id belongs to another origin person (ids never move).
  StatusOr<bool> AddId(std::string_view id, int64_t origin_person);
  // AddId for each row in order (row.id: any accepted spelling; row.person: the origin person),
  // with the lock taken once. Stops at the first error, which it returns; the rows before it
  // stay added. *added (if given) counts the rows that were new.
  Status AddIds(std::span<const IdRow> rows, size_t* added = nullptr);

  // Merges the persons of `id_a` and `id_b` (any accepted spellings). Outcomes:
  //   kNewPersonNeeded when an id is unknown: the graph never invents persons (rows are created
  //     in the store first). If one id is known, the caller adds the other to that person
  //     (AddId(unknown, outcome.person)); if neither, it creates a person holding both.
  //   kAlreadySame, kQuarantined (nothing merged), or kLinked with the new merge_id.
  // INVALID_FIELD ("id_a", "id_b", "reason": 1-800 bytes without control characters, "ts" >= 0).
  StatusOr<LinkOutcome> Link(std::string_view id_a, std::string_view id_b, std::string_view reason,
                             int64_t ts);

  // Link for each request, in order, with exactly the outcomes of calling Link one by one. Why:
  // a link is a handful of dependent random memory reads; taking them 64 at a time, the graph
  // prefetches every request's reads stage by stage (slots, records, persons) before applying
  // them in order, so the reads overlap instead of queueing, and the lock is taken once per 64.
  // This is what the tenant's writer uses for a batch of identity events.
  std::vector<StatusOr<LinkOutcome>> LinkBatch(std::span<const LinkRequest> requests);

  // Undoes merge `merge_id` exactly (see the header comment) and logs it. NOT_FOUND if it is not a
  // merge; ALREADY_EXISTS if it was already undone.
  StatusOr<UnmergeOutcome> Unmerge(uint64_t merge_id, std::string_view reason, int64_t ts);

  // Applies a pending quarantined link regardless of the guard: kLinked, or kAlreadySame if the
  // two persons were joined meanwhile. NOT_FOUND if not a quarantine; ALREADY_EXISTS if decided.
  StatusOr<LinkOutcome> ApproveQuarantine(uint64_t quarantine_id, std::string_view reason,
                                          int64_t ts);
  // Drops a pending quarantined link. NOT_FOUND / ALREADY_EXISTS as above.
  Status RejectQuarantine(uint64_t quarantine_id, std::string_view reason, int64_t ts);

  // ---- reads --------------------------------------------------------------------------------

  // The person (survivor store id) `canonical_id` resolves to, or nullopt if unknown. Takes the
  // canonical form (ParseExternalId) and does not parse: this is the hot path.
  std::optional<int64_t> Resolve(std::string_view canonical_id) const;
  // The person (survivor) an origin person belongs to, or nullopt if unknown.
  std::optional<int64_t> ResolvePerson(int64_t origin_person) const;
  // For each of `origin_people`, its person (survivor), or itself if unknown, into `out` (of the
  // same size), under one lock.
  void ResolvePersons(std::span<const int64_t> origin_people, std::span<int64_t> out) const;
  // For each of `ids` (canonical), the origin person that owns it and the person it resolves to,
  // under one lock; nullopt for an unknown id. `out` is resized to ids.size(). Many ids are looked
  // up in stages (as LinkBatch does), so that their random reads overlap.
  struct IdOwner {
    int64_t origin_person = 0;
    int64_t person = 0;
  };
  void ResolveOwners(std::span<const std::string_view> ids,
                     std::vector<std::optional<IdOwner>>& out) const;

  // The origin persons of `person`'s component (any member's store id), ascending.
  StatusOr<std::vector<int64_t>> ComponentOf(int64_t person) const;
  // Every id of `person`'s component: by origin person ascending, then in the order added (for a
  // rebuilt graph: the order of the rows).
  StatusOr<std::vector<std::string>> IdsOf(int64_t person) const;
  // Every log event touching an origin person of `person`'s component (merges and quarantines
  // with an id of a member, including undone and rejected ones, and their decisions), in order.
  StatusOr<std::vector<LogEntry>> MergeHistory(int64_t person) const;
  // Pending quarantines, oldest first.
  std::vector<Quarantine> Quarantined() const;
  // The log events with seq > after_seq, in order (what the store persists).
  std::vector<LogEntry> Log(uint64_t after_seq = 0) const;

  // True if both graphs hold the same origin persons, ids and owners, persons (components and
  // survivors), log and pending quarantines, and options. Internal layout (dense indexes, table
  // sizes) may differ. On false, *why (if given) says the first difference.
  bool Equals(const IdentityGraph& other, std::string* why = nullptr) const;
  // Checks internal invariants (union-find, member rings, degrees, components equal to the
  // connected components of the active merges). O(size); for tests and `siyu admin verify`.
  Status CheckInvariants() const;
  GraphStats Stats() const;
  const GraphOptions& options() const { return s_.options; }

 private:
  static constexpr uint32_t kNone = FlatIndex::kNone;

  // 32 bytes, half a cache line: a resolve reads the owner's node and, if it is not the root,
  // the root's, and the root holds the answer (the survivor's store id) itself.
  struct PersonNode {
    uint32_t parent;
    uint32_t size;         // valid at roots
    int64_t survivor;      // valid at roots: the smallest store id among the members
    uint32_t next_member;  // ring of the component's members
    uint32_t last_id;      // newest id of this origin person (ring via id_next), or kNone
    uint32_t adj;          // head of this person's edge list (half-edge code), or kNone
    uint32_t unused;
  };
  enum class EdgeState : uint8_t { kActive, kUndone, kPending, kApproved, kRejected };
  // A proposed link between two ids: a merge, or a quarantine. Listed under both owners.
  struct Edge {
    uint32_t id[2];
    uint32_t next[2];  // next half-edge (edge * 2 + side) in owner(id[side])'s list
    uint32_t open_event;
    uint32_t close_event;  // kUnmerge / kApprove / kReject event, or kNone
    EdgeState state;
  };
  struct Event {
    uint64_t seq;
    int64_t ts;
    uint32_t reason;
    uint32_t edge;
    int64_t person[2];  // survivors' store ids (see LogEntry::person_a/b), or 0
    uint32_t aux;       // kMerge: approving quarantine edge; kQuarantine: quarantine_info index
    LogKind kind;
  };
  struct QuarantineInfo {
    uint32_t hub_id;
    std::vector<int64_t> people;
    std::string guard_reason;
  };
  // Everything but the mutex, so a move is one assignment.
  struct State {
    GraphOptions options;
    IdTable ids;  // canonical id -> dense id; value = owning origin person (dense)
    // Big arrays live on huge pages (huge_alloc.h): resolves are random reads.
    template <typename T>
    using Array = std::vector<T, HugePageAllocator<T>>;
    Array<uint32_t> id_next;   // ring of each origin person's ids
    Array<uint8_t> id_degree;  // active merges through the id; 255 = see degree_overflow
    std::unordered_map<uint32_t, uint32_t> degree_overflow;
    Array<PersonNode> persons;
    Array<int64_t> store_ids;   // dense person -> store id
    FlatIndex person_index;     // store id -> dense person
    Segmented<Edge, 17> edges;  // blocks of 3.5 MiB
    Segmented<Event, 16> log;   // blocks of 3 MiB
    std::vector<QuarantineInfo> quarantine_info;
    std::map<uint64_t, uint32_t> pending;                  // quarantine_id -> edge
    std::unordered_map<uint64_t, uint32_t> pending_pairs;  // (lower id, higher id) -> edge
    std::vector<std::string> reasons;
    std::unordered_map<std::string, uint32_t> reason_index;
    uint64_t next_seq = 1;
    size_t active_merges = 0;
  };

  // Lock-free helpers; callers hold mu_ as needed.
  uint32_t PersonIndex(int64_t store_id) const;
  uint32_t FindRoot(uint32_t p) const;  // no path compression (readers)
  uint32_t FindRootMut(uint32_t p);     // path halving (writer)
  int64_t SurvivorOf(uint32_t p) const;
  uint32_t Owner(uint32_t id) const { return s_.ids.Value(id); }
  uint32_t Degree(uint32_t id) const;
  void AddDegree(uint32_t id, int delta);
  uint32_t InternReason(std::string_view reason);
  // owner_a/b: the ids' owners (callers on the hot path have them from the lookup).
  uint32_t NewEdge(uint32_t id_a, uint32_t id_b, uint32_t owner_a, uint32_t owner_b,
                   EdgeState state);
  void Union(uint32_t ra, uint32_t rb);
  uint32_t ApplyMerge(uint32_t ia, uint32_t ib, uint32_t owner_a, uint32_t owner_b, uint32_t reason,
                      int64_t ts, uint64_t seq, uint32_t approved_from);
  void ApplyUnmerge(uint32_t edge, uint32_t reason, int64_t ts, uint64_t seq);
  void RebuildComponent(uint32_t member);
  uint32_t EventIndex(uint64_t seq) const;     // kNone if absent
  size_t FirstEventAfter(uint64_t seq) const;  // index of the first event with a larger seq
  std::vector<uint32_t> Members(uint32_t p) const;
  QuarantineInfo GuardInfo(uint32_t hub, uint32_t other, uint32_t would_tie) const;
  StatusOr<LinkOutcome> LinkLocked(std::string_view a, const IdTable::Key& key_a,
                                   std::string_view b, const IdTable::Key& key_b,
                                   std::string_view reason, int64_t ts);
  Status AddIdLocked(std::string_view canonical, const IdTable::Key& key, int64_t origin_person,
                     bool* added);
  // Prefetches what looking up (and linking) these ids reads; see graph.cc.
  void PrefetchIds(std::span<const IdTable::Key> keys) const;
  // Rebuild's bulk path: AddIdLocked for each row, with the rows' reads prefetched.
  Status AddRowsLocked(std::span<const IdRow> rows, size_t first_row_number);
  LogEntry Materialize(const Event& e) const;
  Status ReplayLocked(const LogEntry& row);

  mutable RwLock mu_;
  State s_;
};

}  // namespace siyu::identity
