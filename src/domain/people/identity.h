// Identity (OneID) in the service: one IdentityGraph per tenant (src/domain/identity) kept in line
// with the store as docs/decisions/0005 describes. Person rows are origin people; the graph joins
// them into persons (named by the survivor, the oldest row); `people.canonical_id` and the
// append-only `identity_log` table persist what the graph decided, in the same write as the facts
// that caused it.
//
// Writes that attach ids or link them run on the store's writer (inside Store::Write), so graph
// changes are serialised with the store's. A graph change is applied at once (later writes of the
// same group commit see it) and undone, if its write does not commit, by rebuilding the tenant's
// graph from the store (Conn::OnRollback). Reads (Resolve, Describe, Quarantined, CanonicalOf) run
// on any thread against the live graph.
//
// Guard: a link whose id would tie together more than `max_people_per_id` people is quarantined
// for an operator to approve or reject; it is never applied silently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "domain/identity/graph.h"
#include "store/store.h"

namespace siyu::domain {

struct IdentityOptions {
  uint32_t max_people_per_id = 3;  // 0 disables the guard
};

struct PersonIdOwner {
  std::string id;  // canonical
  std::string kind;
  int64_t origin_person_id = 0;
};

// Everything the identity graph knows of one person.
struct PersonIdentity {
  int64_t person_id = 0;                    // the person (survivor) as callers see it
  std::vector<int64_t> origin_people;       // the person rows joined into it, ascending
  std::vector<PersonIdOwner> ids;           // every id, by origin person, then in the order added
  std::vector<identity::LogEntry> history;  // merges, unmerges, quarantines touching it, in order
};

struct LinkAnswer {
  identity::LinkResult result = identity::LinkResult::kAlreadySame;
  int64_t person_id = 0;  // linked / already_same: the person both ids resolve to
  uint64_t merge_id = 0;
  uint64_t quarantine_id = 0;
  std::string quarantine_reason;
  std::vector<std::string> created_ids;  // ids that were new and were attached to the person
};

struct UnmergeAnswer {
  uint64_t seq = 0;
  int64_t person_a = 0, person_b = 0;
};

struct IdentityStats {
  int64_t tenant_id = 0;
  identity::GraphStats graph;
};

class Identity {
 public:
  Identity(store::Store& store, IdentityOptions options = {});
  ~Identity();

  // Builds every tenant's graph from the store (start-up).
  Status LoadAll();

  // ---- inside a write (the store's writer) -----------------------------------------------------

  // Records that `canonical` now belongs to origin person `person` (its person_ids row was just
  // inserted by this write).
  Status AddIdInWrite(store::Conn& c, int64_t tenant_id, const std::string& canonical,
                      int64_t person);
  // Links two ids that both belong to people already (person_ids rows exist); persists the log
  // entries and canonical ids the link produced.
  StatusOr<identity::LinkOutcome> LinkInWrite(store::Conn& c, int64_t tenant_id,
                                              const std::string& a, const std::string& b,
                                              const std::string& reason, int64_t ts);
  // The person (survivor) an origin person belongs to now, as the graph has it in this write.
  int64_t CanonicalInWrite(store::Conn& c, int64_t tenant_id, int64_t origin_person);
  // The origin person owning each of `ids` (canonical forms), as the graph has it in this write;
  // nullopt for an id nobody has. The graph is the store's only index of ids by their text (the
  // store keeps them by person, migration 15). With ids assigned ahead of the store (the event
  // log), call SyncInWrite first, so that every person named has its row.
  Status OwnersInWrite(store::Conn& c, int64_t tenant_id, std::span<const std::string_view> ids,
                       std::vector<std::optional<int64_t>>& out);
  StatusOr<std::optional<int64_t>> OwnerInWrite(store::Conn& c, int64_t tenant_id,
                                                std::string_view canonical);

  // ---- the API ---------------------------------------------------------------------------------

  // The person an id (any accepted spelling) resolves to: (person, origin person). NOT_FOUND.
  StatusOr<std::pair<int64_t, int64_t>> Resolve(int64_t tenant_id, const std::string& canonical);
  // The person `person_id` (any of its origin people) with its ids and merge history. NOT_FOUND.
  StatusOr<PersonIdentity> Describe(int64_t tenant_id, int64_t person_id);
  // For each of `ids` (canonical), the origin person owning it and the person it resolves to, from
  // the live graph in one look; nullopt for an unknown id. The hot path of event ingest.
  void ResolveOwners(int64_t tenant_id, std::span<const std::string_view> ids,
                     std::vector<std::optional<identity::IdentityGraph::IdOwner>>& out);
  // The person an origin person belongs to (itself if it was never merged or is unknown).
  int64_t CanonicalOf(int64_t tenant_id, int64_t origin_person);
  // CanonicalOf for each of `origin_people`, into `out` (of the same size), in one look.
  void CanonicalOfMany(int64_t tenant_id, std::span<const int64_t> origin_people,
                       std::span<int64_t> out);
  // The origin people of the person `person_id` belongs to (just itself when never merged).
  std::vector<int64_t> ComponentOf(int64_t tenant_id, int64_t person_id);

  // Links two ids (canonical forms). An id nobody has yet is attached to the other id's person; if
  // neither is known, a person holding both is created.
  StatusOr<LinkAnswer> Link(int64_t tenant_id, const std::string& a, const std::string& b,
                            const std::string& reason);
  StatusOr<UnmergeAnswer> Unmerge(int64_t tenant_id, uint64_t merge_id, const std::string& reason);
  std::vector<identity::Quarantine> Quarantined(int64_t tenant_id);
  StatusOr<LinkAnswer> Approve(int64_t tenant_id, uint64_t quarantine_id,
                               const std::string& reason);
  Status Reject(int64_t tenant_id, uint64_t quarantine_id, const std::string& reason);

  // Rebuilds every tenant's graph from the store and compares it with the live one; also checks
  // the graph's invariants and that people.canonical_id agrees with the graph. The first
  // difference, if any, is in the error.
  // `tenant_id`: just that tenant. Runs on the store's writer: writes wait meanwhile.
  Status Verify(std::optional<int64_t> tenant_id = std::nullopt);
  std::vector<IdentityStats> Stats();

  const IdentityOptions& options() const { return options_; }

  // ---- identity assigned ahead of the store (SQLite with the event log, decision 0007) ---------
  // The events service numbers new person rows and attaches new ids in memory, acknowledges them
  // with the event log, and writes them to the store later (its applier). These keep the graph,
  // the store and the other writers in line with that.

  // From now on every new person row is numbered here, from `next` on (no row of the store is
  // numbered `next` or above). Call once, before serving.
  void StartPersonRows(int64_t next);
  // The number of a new person row, or nullopt when the store numbers them (StartPersonRows was
  // not called).
  std::optional<int64_t> NewPersonRow();
  // On a request thread (never inside a Write, never holding a store read): runs `fn` with the
  // tenant's graph while holding the tenant's assign lock, which `fn` may release early. Writers
  // that read or attach ids hold the same lock (SyncInWrite), and a graph rebuilt from the store
  // gets back the ids assigned but not yet written (`pending` below) before it is installed.
  using AssignLock = std::unique_lock<std::recursive_mutex>;
  Status Assign(int64_t tenant_id,
                const std::function<Status(identity::IdentityGraph&, AssignLock&)>& fn);
  // `catch_up` writes, inside the current write, everything assigned and not yet in the store;
  // `pending` adds a tenant's ids assigned and not yet committed to `out` (ids with their person
  // rows). Set once, before serving.
  void SetDeferred(
      std::function<Status(store::Conn&)> catch_up,
      std::function<void(int64_t tenant_id, std::vector<identity::IdRow>& out)> pending);
  // Inside a write that looks up or attaches ids or people: takes the tenant's assign lock (held
  // until the returned lock goes, at the latest when the write ends) and writes what was assigned
  // before it, so that the store and the graph agree for the rest of the write.
  StatusOr<AssignLock> SyncInWrite(store::Conn& c, int64_t tenant_id);

 private:
  struct Tenant;
  Tenant& TenantOf(int64_t tenant_id);
  std::shared_ptr<identity::IdentityGraph> GraphForRead(int64_t tenant_id);
  // On the writer: the tenant's graph, (re)built from `c` if missing or stale.
  StatusOr<identity::IdentityGraph*> GraphInWrite(store::Conn& c, Tenant& t, int64_t tenant_id);
  // On the writer, after the graph was changed: registers the rollback hook once per write.
  void MarkChanged(store::Conn& c, Tenant& t, int64_t tenant_id);
  Status LoadTenant(store::Conn& c, Tenant& t, int64_t tenant_id);
  // Persists the graph's log entries after t.persisted_seq and the canonical ids of the people
  // they touched.
  Status PersistLog(store::Conn& c, Tenant& t, int64_t tenant_id);

  store::Store& store_;
  const IdentityOptions options_;
  std::atomic<int64_t> next_row_{0};
  std::function<Status(store::Conn&)> catch_up_;
  std::function<void(int64_t, std::vector<identity::IdRow>&)> pending_;
  std::mutex mu_;
  std::unordered_map<int64_t, std::unique_ptr<Tenant>> tenants_;
};

// Loads a tenant's graph from the store through `c` (person_ids and identity_log).
StatusOr<identity::IdentityGraph> LoadIdentityGraph(store::Conn& c, int64_t tenant_id,
                                                    const IdentityOptions& options,
                                                    uint64_t* last_seq);

}  // namespace siyu::domain
