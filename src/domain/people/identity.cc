#include "domain/people/identity.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "common/id_key.h"
#include "common/time.h"
#include "domain/people/people.h"

namespace siyu::domain {

using identity::IdentityGraph;
using identity::LogEntry;
using identity::LogKind;
using store::Conn;
using store::Params;
using store::Rows;

struct Identity::Tenant {
  // Guards the members below. The graph itself has its own reader-writer lock; this mutex only
  // protects which graph is current.
  std::mutex mu;
  // Held by ingest while it assigns rows and ids in the graph ahead of the store, by writers that
  // read or attach ids (SyncInWrite) and while a rebuilt graph is installed. Recursive: a write
  // holding it may rebuild the graph.
  std::recursive_mutex assign_mu;
  std::shared_ptr<IdentityGraph> graph;
  bool stale = true;           // never built, or out of line with the store after a failed rebuild
  uint64_t persisted_seq = 0;  // the last log entry written to identity_log
  uint64_t hook_write = 0;     // the write that registered the rollback hook last
};

namespace {

constexpr int64_t kPage = 65536;

std::optional<LogKind> LogKindFromName(std::string_view s) {
  for (LogKind k : {LogKind::kMerge, LogKind::kUnmerge, LogKind::kQuarantine, LogKind::kApprove,
                    LogKind::kReject}) {
    if (identity::LogKindName(k) == s) return k;
  }
  return std::nullopt;
}

std::string JoinPeople(const std::vector<int64_t>& people) {
  std::string s;
  for (int64_t p : people) s += (s.empty() ? "" : ",") + std::to_string(p);
  return s;
}

bool SplitPeople(std::string_view s, std::vector<int64_t>* out) {
  out->clear();
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view part = s.substr(0, comma);
    int64_t v = 0;
    auto r = std::from_chars(part.data(), part.data() + part.size(), v);
    if (r.ec != std::errc() || r.ptr != part.data() + part.size()) return false;
    out->push_back(v);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return true;
}

std::string Placeholders(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += i ? ", ?" : "?";
  return s;
}

// Sets canonical_id on every member of the person whose (ascending) origin people are `members`:
// NULL on the survivor (the first), the survivor on the others.
Status WriteCanonical(Conn& c, int64_t tenant_id, const std::vector<int64_t>& members) {
  if (members.empty()) return Status::Ok();
  const int64_t survivor = members.front();
  RETURN_IF_ERROR(c.Exec("UPDATE people SET canonical_id = NULL WHERE tenant_id = ? AND id = ? "
                         "AND canonical_id IS NOT NULL",
                         {tenant_id, survivor})
                      .status());
  constexpr size_t kChunk = 256;
  for (size_t pos = 1; pos < members.size(); pos += kChunk) {
    size_t n = std::min(kChunk, members.size() - pos);
    Params p{survivor, tenant_id};
    for (size_t i = 0; i < n; ++i) p.emplace_back(members[pos + i]);
    RETURN_IF_ERROR(c.Exec("UPDATE people SET canonical_id = ? WHERE tenant_id = ? AND id IN (" +
                               Placeholders(n) + ")",
                           p)
                        .status());
  }
  return Status::Ok();
}

Status WrapGraphError(const Status& s, std::string_view what, std::string field) {
  if (s.code() == ErrorCode::kAlreadyExists) {
    return Status(ErrorCode::kAlreadyDecided, s.message(), std::move(field));
  }
  if (s.code() == ErrorCode::kNotFound) {
    return Status(ErrorCode::kNotFound, std::string(what) + ": " + s.message(), std::move(field));
  }
  return s;
}

}  // namespace

StatusOr<IdentityGraph> LoadIdentityGraph(Conn& c, int64_t tenant_id,
                                          const IdentityOptions& options, uint64_t* last_seq) {
  identity::GraphOptions go;
  go.max_people_per_id = options.max_people_per_id;
  ASSIGN_OR_RETURN(Rows counts,
                   c.Query("SELECT (SELECT COUNT(*) FROM people WHERE tenant_id = ?), (SELECT "
                           "COUNT(*) FROM person_ids WHERE tenant_id = ?)",
                           {tenant_id, tenant_id}));
  const size_t people = static_cast<size_t>(counts.at(0).Int(0));
  const size_t ids = static_cast<size_t>(counts.at(0).Int(1));

  // Both sources read the store a page at a time, in key order, so a big tenant is never held
  // whole in memory twice.
  Status source_status;
  Rows id_page;
  size_t id_pos = 0;
  bool ids_done = false;
  struct After {
    int64_t person;
    IdKey key;
  };
  std::optional<After> id_after;
  std::string id_text;
  auto rows = [&](identity::IdRow* row) -> bool {
    if (id_pos == id_page.size()) {
      if (ids_done) return false;
      auto page =
          id_after ? c.Query(
                         "SELECT external_id, person_id, key_hi, key_lo FROM "
                         "person_ids WHERE tenant_id = ? AND (person_id, key_hi, "
                         "key_lo) > (?, ?, ?) ORDER BY person_id, key_hi, key_lo "
                         "LIMIT ?",
                         {tenant_id, id_after->person, id_after->key.hi, id_after->key.lo, kPage})
                   : c.Query(
                         "SELECT external_id, person_id, key_hi, key_lo FROM "
                         "person_ids WHERE tenant_id = ? ORDER BY person_id, key_hi, "
                         "key_lo LIMIT ?",
                         {tenant_id, kPage});
      if (!page.ok()) {
        source_status = page.status();
        return false;
      }
      id_page = std::move(page).value();
      id_pos = 0;
      if (id_page.size() < static_cast<size_t>(kPage)) ids_done = true;
      if (id_page.empty()) return false;
      id_after = After{id_page.back().Int(1), IdKey{id_page.back().Int(2), id_page.back().Int(3)}};
    }
    id_text = id_page[id_pos].Text(0);
    row->id = id_text;
    row->person = id_page[id_pos].Int(1);
    ++id_pos;
    return true;
  };
  Rows log_page;
  size_t log_pos = 0;
  bool log_done = false;
  int64_t log_after = 0;
  *last_seq = 0;
  auto log = [&](LogEntry* e) -> bool {
    if (log_pos == log_page.size()) {
      if (log_done) return false;
      auto page = c.Query(
          "SELECT seq, kind, ts, reason, id_a, id_b, person_a, person_b, target, hub_id, people, "
          "guard_reason FROM identity_log WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
          {tenant_id, log_after, kPage});
      if (!page.ok()) {
        source_status = page.status();
        return false;
      }
      log_page = std::move(page).value();
      log_pos = 0;
      if (log_page.size() < static_cast<size_t>(kPage)) log_done = true;
      if (log_page.empty()) return false;
      log_after = log_page.back().Int(0);
    }
    const store::Row& r = log_page[log_pos++];
    *e = LogEntry{};
    e->seq = static_cast<uint64_t>(r.Int(0));
    auto kind = LogKindFromName(r.Text(1));
    if (!kind || !SplitPeople(r.Text(10), &e->people)) {
      source_status = Internal("identity_log row " + std::to_string(e->seq) + " of tenant " +
                               std::to_string(tenant_id) + " is malformed");
      return false;
    }
    e->kind = *kind;
    e->ts = r.Int(2);
    e->reason = r.Text(3);
    e->id_a = r.Text(4);
    e->id_b = r.Text(5);
    e->person_a = r.Int(6);
    e->person_b = r.Int(7);
    e->target = static_cast<uint64_t>(r.Int(8));
    e->hub_id = r.Text(9);
    e->guard_reason = r.Text(11);
    *last_seq = e->seq;
    return true;
  };
  auto graph = IdentityGraph::Rebuild(rows, log, go, people, ids);
  if (!source_status.ok()) return source_status;
  if (!graph.ok()) {
    return Internal("the identity graph of tenant " + std::to_string(tenant_id) +
                    " cannot be rebuilt from the store: " + graph.status().message());
  }
  return graph;
}

Identity::Identity(store::Store& store, IdentityOptions options)
    : store_(store), options_(options) {}

Identity::~Identity() = default;

Identity::Tenant& Identity::TenantOf(int64_t tenant_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = tenants_[tenant_id];
  if (!slot) slot = std::make_unique<Tenant>();
  return *slot;
}

Status Identity::LoadAll() {
  std::vector<int64_t> ids;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ids.clear();
    ASSIGN_OR_RETURN(Rows rows, c.Query("SELECT id FROM tenants ORDER BY id"));
    for (const auto& r : rows) ids.push_back(r.Int(0));
    return Status::Ok();
  }));
  for (int64_t id : ids) {
    Tenant& t = TenantOf(id);
    RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status { return LoadTenant(c, t, id); }));
  }
  return Status::Ok();
}

Status Identity::LoadTenant(Conn& c, Tenant& t, int64_t tenant_id) {
  auto start = std::chrono::steady_clock::now();
  uint64_t last_seq = 0;
  auto graph = LoadIdentityGraph(c, tenant_id, options_, &last_seq);
  if (!graph.ok()) {
    std::lock_guard<std::mutex> lock(t.mu);
    t.stale = true;
    return graph.status();
  }
  auto fresh = std::make_shared<IdentityGraph>(std::move(graph).value());
  // Ids assigned by ingest and not yet committed to the store are not in it: they are added
  // back, with ingest held off until the new graph is installed.
  std::unique_lock<std::recursive_mutex> assign(t.assign_mu, std::defer_lock);
  if (pending_) {
    assign.lock();
    std::vector<identity::IdRow> rows;
    pending_(tenant_id, rows);
    if (!rows.empty()) {
      Status s = fresh->AddIds(rows);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(t.mu);
        t.stale = true;
        return Internal("identity: tenant " + std::to_string(tenant_id) +
                        ": ids assigned ahead of the store do not fit the graph rebuilt from it: " +
                        s.message());
      }
    }
  }
  identity::GraphStats st = fresh->Stats();
  {
    std::lock_guard<std::mutex> lock(t.mu);
    t.graph = std::move(fresh);
    t.stale = false;
    t.persisted_seq = last_seq;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (st.ids >= 100000) {
    spdlog::info("identity: tenant {} graph built: {} ids, {} people, {} merges in {:.2f} s",
                 tenant_id, st.ids, st.people, st.active_merges, secs);
  }
  return Status::Ok();
}

std::shared_ptr<IdentityGraph> Identity::GraphForRead(int64_t tenant_id) {
  Tenant& t = TenantOf(tenant_id);
  {
    std::lock_guard<std::mutex> lock(t.mu);
    if (t.graph) return t.graph;
  }
  // Never built (a tenant created since start-up): build it on the writer, where no write can
  // slip between the snapshot it is built from and its installation.
  Status s = store_.Write([&](Conn& c) -> Status {
    auto g = GraphInWrite(c, t, tenant_id);
    return g.status();
  });
  if (!s.ok()) spdlog::error("identity: tenant {}: {}", tenant_id, s.ToString());
  std::lock_guard<std::mutex> lock(t.mu);
  if (t.graph) return t.graph;
  // The store could not build it (it is failing): answer this read from an empty graph, and keep
  // none, so that the next read or write tries again.
  return std::make_shared<IdentityGraph>(identity::GraphOptions{options_.max_people_per_id});
}

StatusOr<IdentityGraph*> Identity::GraphInWrite(Conn& c, Tenant& t, int64_t tenant_id) {
  bool build;
  {
    std::lock_guard<std::mutex> lock(t.mu);
    build = t.stale || !t.graph;
  }
  if (build) RETURN_IF_ERROR(LoadTenant(c, t, tenant_id));
  std::lock_guard<std::mutex> lock(t.mu);
  return t.graph.get();
}

void Identity::MarkChanged(Conn& c, Tenant& t, int64_t tenant_id) {
  if (t.hook_write == c.write_number()) return;
  // If this write does not commit, the graph changes it made must go: rebuild the tenant's graph
  // from the store as it is after the rollback (on the writer, so nothing interleaves). A graph
  // operation that fails changes nothing, so only successful ones mark the write.
  t.hook_write = c.write_number();
  c.OnRollback([this, &t, tenant_id](Conn& conn) {
    Status s = LoadTenant(conn, t, tenant_id);
    if (!s.ok()) {
      spdlog::error("identity: tenant {}: rebuild after a rolled-back write failed: {}", tenant_id,
                    s.ToString());
    }
  });
}

Status Identity::PersistLog(Conn& c, Tenant& t, int64_t tenant_id) {
  ASSIGN_OR_RETURN(IdentityGraph * g, GraphInWrite(c, t, tenant_id));
  std::vector<LogEntry> entries = g->Log(t.persisted_seq);
  if (entries.empty()) return Status::Ok();
  std::set<int64_t> touched;  // people whose person changed
  for (const LogEntry& e : entries) {
    RETURN_IF_ERROR(
        c.Exec("INSERT INTO identity_log (tenant_id, seq, kind, ts, reason, id_a, id_b, person_a, "
               "person_b, target, hub_id, people, guard_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
               "?, ?, ?, ?)",
               {tenant_id, static_cast<int64_t>(e.seq), std::string(identity::LogKindName(e.kind)),
                e.ts, e.reason, e.id_a, e.id_b, e.person_a, e.person_b,
                static_cast<int64_t>(e.target), e.hub_id, JoinPeople(e.people), e.guard_reason})
            .status());
    if (e.kind == LogKind::kMerge || e.kind == LogKind::kUnmerge) {
      touched.insert(e.person_a);
      touched.insert(e.person_b);
    }
  }
  // The people of the touched persons as they are now (a person merged and split in one batch
  // is written once per side).
  std::set<int64_t> done;
  for (int64_t p : touched) {
    if (done.count(p)) continue;
    ASSIGN_OR_RETURN(std::vector<int64_t> members, g->ComponentOf(p));
    for (int64_t m : members) done.insert(m);
    RETURN_IF_ERROR(WriteCanonical(c, tenant_id, members));
  }
  t.persisted_seq = entries.back().seq;
  return Status::Ok();
}

Status Identity::AddIdInWrite(Conn& c, int64_t tenant_id, const std::string& canonical,
                              int64_t person) {
  Tenant& t = TenantOf(tenant_id);
  ASSIGN_OR_RETURN(IdentityGraph * g, GraphInWrite(c, t, tenant_id));
  ASSIGN_OR_RETURN(bool added, g->AddId(canonical, person));
  if (added) MarkChanged(c, t, tenant_id);
  return Status::Ok();
}

StatusOr<identity::LinkOutcome> Identity::LinkInWrite(Conn& c, int64_t tenant_id,
                                                      const std::string& a, const std::string& b,
                                                      const std::string& reason, int64_t ts) {
  Tenant& t = TenantOf(tenant_id);
  ASSIGN_OR_RETURN(IdentityGraph * g, GraphInWrite(c, t, tenant_id));
  ASSIGN_OR_RETURN(identity::LinkOutcome out, g->Link(a, b, reason, ts));
  MarkChanged(c, t, tenant_id);
  if (out.result == identity::LinkResult::kNewPersonNeeded) {
    return Internal("identity: link of " + a + " and " + b +
                    " found an id the graph does not know although the store has it");
  }
  RETURN_IF_ERROR(PersistLog(c, t, tenant_id));
  return out;
}

int64_t Identity::CanonicalInWrite(Conn& c, int64_t tenant_id, int64_t origin_person) {
  Tenant& t = TenantOf(tenant_id);
  auto g = GraphInWrite(c, t, tenant_id);
  if (!g.ok()) return origin_person;
  return (*g)->ResolvePerson(origin_person).value_or(origin_person);
}

Status Identity::OwnersInWrite(Conn& c, int64_t tenant_id, std::span<const std::string_view> ids,
                               std::vector<std::optional<int64_t>>& out) {
  Tenant& t = TenantOf(tenant_id);
  ASSIGN_OR_RETURN(IdentityGraph * g, GraphInWrite(c, t, tenant_id));
  std::vector<std::optional<IdentityGraph::IdOwner>> owners;
  g->ResolveOwners(ids, owners);
  out.assign(ids.size(), std::nullopt);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (owners[i]) out[i] = owners[i]->origin_person;
  }
  return Status::Ok();
}

StatusOr<std::optional<int64_t>> Identity::OwnerInWrite(Conn& c, int64_t tenant_id,
                                                        std::string_view canonical) {
  std::vector<std::optional<int64_t>> out;
  RETURN_IF_ERROR(
      OwnersInWrite(c, tenant_id, std::span<const std::string_view>(&canonical, 1), out));
  return out[0];
}

void Identity::StartPersonRows(int64_t next) { next_row_.store(next); }

std::optional<int64_t> Identity::NewPersonRow() {
  if (next_row_.load(std::memory_order_relaxed) == 0) return std::nullopt;
  return next_row_.fetch_add(1);
}

void Identity::SetDeferred(std::function<Status(Conn&)> catch_up,
                           std::function<void(int64_t, std::vector<identity::IdRow>&)> pending) {
  catch_up_ = std::move(catch_up);
  pending_ = std::move(pending);
}

Status Identity::Assign(int64_t tenant_id,
                        const std::function<Status(IdentityGraph&, AssignLock&)>& fn) {
  Tenant& t = TenantOf(tenant_id);
  // Built (on the writer) before the lock is taken: a build takes the lock too.
  (void)GraphForRead(tenant_id);
  AssignLock lock(t.assign_mu);
  std::shared_ptr<IdentityGraph> g;
  {
    std::lock_guard<std::mutex> tl(t.mu);
    g = t.graph;
  }
  if (!g) {
    return Status(ErrorCode::kStoreUnavailable,
                  "the identity graph of this tenant cannot be built from the store; retry later");
  }
  return fn(*g, lock);
}

StatusOr<Identity::AssignLock> Identity::SyncInWrite(Conn& c, int64_t tenant_id) {
  Tenant& t = TenantOf(tenant_id);
  AssignLock lock(t.assign_mu);
  if (catch_up_) RETURN_IF_ERROR(catch_up_(c));
  return lock;
}

// ---- the API ----------------------------------------------------------------------------------

StatusOr<std::pair<int64_t, int64_t>> Identity::Resolve(int64_t tenant_id,
                                                        const std::string& canonical) {
  std::string_view id = canonical;
  std::vector<std::optional<identity::IdentityGraph::IdOwner>> owner;
  GraphForRead(tenant_id)->ResolveOwners({&id, 1}, owner);
  if (!owner[0]) return Status(ErrorCode::kNotFound, "no person has the id " + canonical, "id");
  return std::make_pair(owner[0]->person, owner[0]->origin_person);
}

void Identity::ResolveOwners(int64_t tenant_id, std::span<const std::string_view> ids,
                             std::vector<std::optional<identity::IdentityGraph::IdOwner>>& out) {
  GraphForRead(tenant_id)->ResolveOwners(ids, out);
}

int64_t Identity::CanonicalOf(int64_t tenant_id, int64_t origin_person) {
  return GraphForRead(tenant_id)->ResolvePerson(origin_person).value_or(origin_person);
}

void Identity::CanonicalOfMany(int64_t tenant_id, std::span<const int64_t> origin_people,
                               std::span<int64_t> out) {
  GraphForRead(tenant_id)->ResolvePersons(origin_people, out);
}

std::vector<int64_t> Identity::ComponentOf(int64_t tenant_id, int64_t person_id) {
  auto members = GraphForRead(tenant_id)->ComponentOf(person_id);
  if (!members.ok()) return {person_id};
  return std::move(members).value();
}

StatusOr<PersonIdentity> Identity::Describe(int64_t tenant_id, int64_t person_id) {
  auto g = GraphForRead(tenant_id);
  PersonIdentity out;
  auto members = g->ComponentOf(person_id);
  if (members.ok()) {
    out.person_id = g->ResolvePerson(person_id).value_or(person_id);
    out.origin_people = std::move(members).value();
    ASSIGN_OR_RETURN(out.history, g->MergeHistory(person_id));
  } else {
    out.person_id = person_id;
    out.origin_people = {person_id};
  }
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows who, c.Query("SELECT id FROM people WHERE tenant_id = ? AND id = ?",
                                       {tenant_id, person_id}));
    if (who.empty()) {
      return Status(ErrorCode::kNotFound, "no person " + std::to_string(person_id), "id");
    }
    out.ids.clear();
    for (size_t pos = 0; pos < out.origin_people.size(); pos += 256) {
      size_t n = std::min<size_t>(256, out.origin_people.size() - pos);
      Params p{tenant_id};
      for (size_t i = 0; i < n; ++i) p.emplace_back(out.origin_people[pos + i]);
      ASSIGN_OR_RETURN(
          Rows rows, c.Query("SELECT external_id, kind, person_id FROM person_ids WHERE "
                             "tenant_id = ? AND person_id IN (" +
                                 Placeholders(n) + ") ORDER BY person_id, created_at, external_id",
                             p));
      for (const auto& r : rows) out.ids.push_back({r.Text(0), r.Text(1), r.Int(2)});
    }
    return Status::Ok();
  }));
  return out;
}

StatusOr<LinkAnswer> Identity::Link(int64_t tenant_id, const std::string& a, const std::string& b,
                                    const std::string& reason) {
  if (a == b) return InvalidField("id_b", "id_a and id_b are the same id");
  ASSIGN_OR_RETURN(ExternalId ea, ParseExternalId(a, "id_a"));
  ASSIGN_OR_RETURN(ExternalId eb, ParseExternalId(b, "id_b"));
  LinkAnswer out;
  const int64_t now = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    out = LinkAnswer{};
    ASSIGN_OR_RETURN(AssignLock sync, SyncInWrite(c, tenant_id));
    ASSIGN_OR_RETURN(auto pa, OwnerInWrite(c, tenant_id, ea.canonical));
    ASSIGN_OR_RETURN(auto pb, OwnerInWrite(c, tenant_id, eb.canonical));
    if (pa && pb) {
      ASSIGN_OR_RETURN(identity::LinkOutcome o,
                       LinkInWrite(c, tenant_id, ea.canonical, eb.canonical, reason, now));
      out.result = o.result;
      out.person_id = o.person;
      out.merge_id = o.merge_id;
      out.quarantine_id = o.quarantine_id;
      out.quarantine_reason = o.quarantine_reason;
      return Status::Ok();
    }
    int64_t home;
    if (pa || pb) {
      home = pa ? *pa : *pb;
    } else {
      ASSIGN_OR_RETURN(home, CreateOriginPerson(c, tenant_id, std::nullopt, now, std::nullopt, now,
                                                NewPersonRow()));
    }
    for (const ExternalId* id : {&ea, &eb}) {
      if ((id == &ea && pa) || (id == &eb && pb)) continue;
      RETURN_IF_ERROR(AttachId(c, *this, tenant_id, *id, home, now));
      out.created_ids.push_back(id->canonical);
    }
    out.result = identity::LinkResult::kAlreadySame;
    out.person_id = CanonicalInWrite(c, tenant_id, home);
    return Status::Ok();
  }));
  return out;
}

StatusOr<UnmergeAnswer> Identity::Unmerge(int64_t tenant_id, uint64_t merge_id,
                                          const std::string& reason) {
  UnmergeAnswer out;
  const int64_t now = NowMs();
  Tenant& t = TenantOf(tenant_id);
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(AssignLock sync, SyncInWrite(c, tenant_id));
    ASSIGN_OR_RETURN(IdentityGraph * g, GraphInWrite(c, t, tenant_id));
    auto r = g->Unmerge(merge_id, reason, now);
    if (!r.ok()) return WrapGraphError(r.status(), "merge " + std::to_string(merge_id), "merge_id");
    MarkChanged(c, t, tenant_id);
    out = UnmergeAnswer{r->seq, r->person_a, r->person_b};
    return PersistLog(c, t, tenant_id);
  }));
  return out;
}

std::vector<identity::Quarantine> Identity::Quarantined(int64_t tenant_id) {
  return GraphForRead(tenant_id)->Quarantined();
}

StatusOr<LinkAnswer> Identity::Approve(int64_t tenant_id, uint64_t quarantine_id,
                                       const std::string& reason) {
  LinkAnswer out;
  const int64_t now = NowMs();
  Tenant& t = TenantOf(tenant_id);
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(AssignLock sync, SyncInWrite(c, tenant_id));
    ASSIGN_OR_RETURN(IdentityGraph * g, GraphInWrite(c, t, tenant_id));
    auto r = g->ApproveQuarantine(quarantine_id, reason, now);
    if (!r.ok()) {
      return WrapGraphError(r.status(), "quarantine " + std::to_string(quarantine_id),
                            "quarantine_id");
    }
    MarkChanged(c, t, tenant_id);
    out = LinkAnswer{};
    out.result = r->result;
    out.person_id = r->person;
    out.merge_id = r->merge_id;
    return PersistLog(c, t, tenant_id);
  }));
  return out;
}

Status Identity::Reject(int64_t tenant_id, uint64_t quarantine_id, const std::string& reason) {
  const int64_t now = NowMs();
  Tenant& t = TenantOf(tenant_id);
  return store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(AssignLock sync, SyncInWrite(c, tenant_id));
    ASSIGN_OR_RETURN(IdentityGraph * g, GraphInWrite(c, t, tenant_id));
    Status s = g->RejectQuarantine(quarantine_id, reason, now);
    if (!s.ok()) {
      return WrapGraphError(s, "quarantine " + std::to_string(quarantine_id), "quarantine_id");
    }
    MarkChanged(c, t, tenant_id);
    return PersistLog(c, t, tenant_id);
  });
}

Status Identity::Verify(std::optional<int64_t> only) {
  std::vector<int64_t> tenants;
  if (only) tenants.push_back(*only);
  if (!only)
    RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
      tenants.clear();
      ASSIGN_OR_RETURN(Rows rows, c.Query("SELECT id FROM tenants ORDER BY id"));
      for (const auto& r : rows) tenants.push_back(r.Int(0));
      return Status::Ok();
    }));
  for (int64_t tenant_id : tenants) {
    Tenant& t = TenantOf(tenant_id);
    // On the writer, so that no write changes the graph or the store while they are compared.
    RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
      ASSIGN_OR_RETURN(AssignLock sync, SyncInWrite(c, tenant_id));
      ASSIGN_OR_RETURN(IdentityGraph * live, GraphInWrite(c, t, tenant_id));
      uint64_t last_seq = 0;
      ASSIGN_OR_RETURN(IdentityGraph rebuilt, LoadIdentityGraph(c, tenant_id, options_, &last_seq));
      std::string why;
      if (!live->Equals(rebuilt, &why)) {
        return Internal("tenant " + std::to_string(tenant_id) +
                        ": the live identity graph differs from the store: " + why);
      }
      Status inv = live->CheckInvariants();
      if (!inv.ok()) {
        return Internal("tenant " + std::to_string(tenant_id) +
                        ": identity graph invariant: " + inv.message());
      }
      // people.canonical_id must name each merged row's survivor, and nothing else.
      ASSIGN_OR_RETURN(Rows rows, c.Query("SELECT id, canonical_id FROM people WHERE tenant_id = ?",
                                          {tenant_id}));
      for (const auto& r : rows) {
        int64_t id = r.Int(0);
        int64_t want = live->ResolvePerson(id).value_or(id);
        std::optional<int64_t> have = r.OptInt(1);
        int64_t have_person = have.value_or(id);
        if (have_person != want || (have && *have == id)) {
          return Internal("tenant " + std::to_string(tenant_id) + ": person " + std::to_string(id) +
                          " has canonical_id " + (have ? std::to_string(*have) : "NULL") +
                          " but belongs to person " + std::to_string(want));
        }
      }
      return Status::Ok();
    }));
  }
  return Status::Ok();
}

std::vector<IdentityStats> Identity::Stats() {
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, t] : tenants_) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<IdentityStats> out;
  for (int64_t id : ids) {
    Tenant& t = TenantOf(id);
    std::shared_ptr<IdentityGraph> g;
    {
      std::lock_guard<std::mutex> lock(t.mu);
      g = t.graph;
    }
    if (g) out.push_back({id, g->Stats()});
  }
  return out;
}

}  // namespace siyu::domain
