#include "domain/identity/graph.h"

#include <algorithm>
#include <mutex>
#include <numeric>
#include <shared_mutex>
#include <utility>

namespace siyu::identity {

namespace {

// 200 characters of UTF-8 (the API counts characters) at up to 4 bytes each.
constexpr size_t kMaxReason = 800;

uint32_t PersonTag(int64_t store_id) { return TagOf32(Mix64(static_cast<uint64_t>(store_id))); }

Status CheckReason(std::string_view reason) {
  if (reason.empty() || reason.size() > kMaxReason) {
    return InvalidField("reason", "reason must be 1-800 bytes");
  }
  for (char c : reason) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return InvalidField("reason", "reason has a control character");
  }
  return Status::Ok();
}

Status CheckTs(int64_t ts) {
  if (ts < 0) return InvalidField("ts", "ts must be UTC milliseconds >= 0");
  return Status::Ok();
}

Status NotFound(std::string message) { return Status(ErrorCode::kNotFound, std::move(message)); }
Status AlreadyDone(std::string message) {
  return Status(ErrorCode::kAlreadyExists, std::move(message));
}

std::string JoinIds(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace

std::string_view LinkResultName(LinkResult r) {
  switch (r) {
    case LinkResult::kLinked:
      return "linked";
    case LinkResult::kAlreadySame:
      return "already_same";
    case LinkResult::kQuarantined:
      return "quarantined";
    case LinkResult::kNewPersonNeeded:
      return "new_person_needed";
  }
  return "";
}

std::string_view LogKindName(LogKind k) {
  switch (k) {
    case LogKind::kMerge:
      return "merge";
    case LogKind::kUnmerge:
      return "unmerge";
    case LogKind::kQuarantine:
      return "quarantine";
    case LogKind::kApprove:
      return "approve";
    case LogKind::kReject:
      return "reject";
  }
  return "";
}

IdentityGraph::IdentityGraph(GraphOptions options) { s_.options = options; }

IdentityGraph::IdentityGraph(IdentityGraph&& other) noexcept : s_(std::move(other.s_)) {}

IdentityGraph& IdentityGraph::operator=(IdentityGraph&& other) noexcept {
  if (this != &other) s_ = std::move(other.s_);
  return *this;
}

void IdentityGraph::Reserve(size_t people, size_t ids) {
  std::unique_lock lock(mu_);
  s_.persons.reserve(people);
  s_.store_ids.reserve(people);
  s_.person_index.Reserve(people);
  s_.ids.Reserve(ids);
  s_.id_next.reserve(ids);
  s_.id_degree.reserve(ids);
}

// ---- helpers (the caller holds mu_) -------------------------------------------------------------

uint32_t IdentityGraph::PersonIndex(int64_t store_id) const {
  return s_.person_index.Find(PersonTag(store_id),
                              [&](uint32_t i) { return s_.store_ids[i] == store_id; });
}

uint32_t IdentityGraph::FindRoot(uint32_t p) const {
  while (s_.persons[p].parent != p) p = s_.persons[p].parent;
  return p;
}

uint32_t IdentityGraph::FindRootMut(uint32_t p) {
  auto& ps = s_.persons;
  while (ps[p].parent != p) {
    ps[p].parent = ps[ps[p].parent].parent;  // path halving
    p = ps[p].parent;
  }
  return p;
}

int64_t IdentityGraph::SurvivorOf(uint32_t p) const { return s_.persons[FindRoot(p)].survivor; }

uint32_t IdentityGraph::Degree(uint32_t id) const {
  uint8_t d = s_.id_degree[id];
  return d < 255 ? d : s_.degree_overflow.at(id);
}

void IdentityGraph::AddDegree(uint32_t id, int delta) {
  // One byte covers almost every id; the rare approved hub with 255+ merges spills to a map.
  uint32_t d = static_cast<uint32_t>(static_cast<int64_t>(Degree(id)) + delta);
  if (d < 255) {
    if (s_.id_degree[id] == 255) s_.degree_overflow.erase(id);
    s_.id_degree[id] = static_cast<uint8_t>(d);
  } else {
    s_.id_degree[id] = 255;
    s_.degree_overflow[id] = d;
  }
}

uint32_t IdentityGraph::InternReason(std::string_view reason) {
  // Callers mostly repeat a handful of reasons; the last one is checked before hashing.
  if (!s_.reasons.empty() && s_.reasons.back() == reason) {
    return static_cast<uint32_t>(s_.reasons.size() - 1);
  }
  auto [it, inserted] =
      s_.reason_index.try_emplace(std::string(reason), static_cast<uint32_t>(s_.reasons.size()));
  if (inserted) s_.reasons.emplace_back(reason);
  return it->second;
}

uint32_t IdentityGraph::NewEdge(uint32_t id_a, uint32_t id_b, uint32_t owner_a, uint32_t owner_b,
                                EdgeState state) {
  auto e = static_cast<uint32_t>(s_.edges.size());
  Edge edge{{id_a, id_b}, {kNone, kNone}, kNone, kNone, state};
  const uint32_t owners[2] = {owner_a, owner_b};
  for (int side = 0; side < 2; ++side) {
    PersonNode& owner = s_.persons[owners[side]];
    edge.next[side] = owner.adj;
    owner.adj = e * 2 + side;
  }
  s_.edges.push_back(edge);
  return e;
}

void IdentityGraph::Union(uint32_t ra, uint32_t rb) {
  auto& ps = s_.persons;
  if (ps[ra].size < ps[rb].size) std::swap(ra, rb);
  ps[rb].parent = ra;
  ps[ra].size += ps[rb].size;
  ps[ra].survivor = std::min(ps[ra].survivor, ps[rb].survivor);
  // Swapping one successor in each of two disjoint rings splices them into one.
  std::swap(ps[ra].next_member, ps[rb].next_member);
}

uint32_t IdentityGraph::ApplyMerge(uint32_t ia, uint32_t ib, uint32_t owner_a, uint32_t owner_b,
                                   uint32_t reason, int64_t ts, uint64_t seq,
                                   uint32_t approved_from) {
  uint32_t ra = FindRootMut(owner_a), rb = FindRootMut(owner_b);
  uint32_t e = NewEdge(ia, ib, owner_a, owner_b, EdgeState::kActive);
  s_.edges[e].open_event = static_cast<uint32_t>(s_.log.size());
  s_.log.push_back(Event{seq,
                         ts,
                         reason,
                         e,
                         {s_.persons[ra].survivor, s_.persons[rb].survivor},
                         approved_from,
                         LogKind::kMerge});
  s_.next_seq = seq + 1;
  Union(ra, rb);
  AddDegree(ia, 1);
  AddDegree(ib, 1);
  ++s_.active_merges;
  return e;
}

std::vector<uint32_t> IdentityGraph::Members(uint32_t p) const {
  std::vector<uint32_t> out;
  uint32_t m = p;
  do {
    out.push_back(m);
    m = s_.persons[m].next_member;
  } while (m != p);
  return out;
}

void IdentityGraph::RebuildComponent(uint32_t member) {
  // The component is closed under active merges, so resetting its members and replaying the
  // active merges among them (in log order) yields exactly the connected components of what
  // remains. Nothing outside the component is touched.
  std::vector<uint32_t> members = Members(member);
  for (uint32_t m : members) {
    PersonNode& n = s_.persons[m];
    n.parent = m;
    n.size = 1;
    n.survivor = s_.store_ids[m];
    n.next_member = m;
  }
  std::vector<uint32_t> active;
  for (uint32_t m : members) {
    for (uint32_t h = s_.persons[m].adj; h != kNone; h = s_.edges[h >> 1].next[h & 1]) {
      // Each active edge has both owners inside; take it once, from its side 0.
      if ((h & 1) == 0 && s_.edges[h >> 1].state == EdgeState::kActive) active.push_back(h >> 1);
    }
  }
  std::sort(active.begin(), active.end());  // edges are created in log order
  for (uint32_t e : active) {
    uint32_t ra = FindRootMut(Owner(s_.edges[e].id[0]));
    uint32_t rb = FindRootMut(Owner(s_.edges[e].id[1]));
    if (ra != rb) Union(ra, rb);
  }
}

void IdentityGraph::ApplyUnmerge(uint32_t e, uint32_t reason, int64_t ts, uint64_t seq) {
  Edge& edge = s_.edges[e];
  edge.state = EdgeState::kUndone;
  AddDegree(edge.id[0], -1);
  AddDegree(edge.id[1], -1);
  --s_.active_merges;
  RebuildComponent(Owner(edge.id[0]));
  int64_t sa = s_.persons[FindRootMut(Owner(edge.id[0]))].survivor;
  int64_t sb = s_.persons[FindRootMut(Owner(edge.id[1]))].survivor;
  s_.edges[e].close_event = static_cast<uint32_t>(s_.log.size());
  s_.log.push_back(Event{seq, ts, reason, e, {sa, sb}, kNone, LogKind::kUnmerge});
  s_.next_seq = seq + 1;
}

uint32_t IdentityGraph::EventIndex(uint64_t seq) const {
  const auto& log = s_.log;
  if (log.empty() || seq < log.front().seq) return kNone;
  // Sequence numbers are dense unless a rebuilt log had gaps: try the direct position first.
  uint64_t guess = seq - log.front().seq;
  if (guess < log.size() && log[guess].seq == seq) return static_cast<uint32_t>(guess);
  size_t i = FirstEventAfter(seq - 1);
  if (i == log.size() || log[i].seq != seq) return kNone;
  return static_cast<uint32_t>(i);
}

size_t IdentityGraph::FirstEventAfter(uint64_t seq) const {
  size_t lo = 0, hi = s_.log.size();  // binary search: seqs increase along the log
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s_.log[mid].seq <= seq) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

IdentityGraph::QuarantineInfo IdentityGraph::GuardInfo(uint32_t hub, uint32_t other,
                                                       uint32_t would_tie) const {
  QuarantineInfo q;
  q.hub_id = hub;
  uint32_t owner = Owner(hub);
  q.people.push_back(s_.store_ids[owner]);
  for (uint32_t h = s_.persons[owner].adj; h != kNone; h = s_.edges[h >> 1].next[h & 1]) {
    const Edge& e = s_.edges[h >> 1];
    if (e.state == EdgeState::kActive && e.id[h & 1] == hub) {
      q.people.push_back(s_.store_ids[Owner(e.id[1 - (h & 1)])]);
    }
  }
  q.people.push_back(s_.store_ids[Owner(other)]);
  std::sort(q.people.begin(), q.people.end());
  q.people.erase(std::unique(q.people.begin(), q.people.end()), q.people.end());
  q.guard_reason = "id '" + s_.ids.Get(hub) + "' would tie together " + std::to_string(would_tie) +
                   " people (max_people_per_id " + std::to_string(s_.options.max_people_per_id) +
                   "): origin persons " + JoinIds(q.people);
  return q;
}

// ---- writes -------------------------------------------------------------------------------------

Status IdentityGraph::AddIdLocked(std::string_view canonical, const IdTable::Key& key,
                                  int64_t origin_person, bool* added) {
  *added = false;
  if (origin_person <= 0) {
    return InvalidField("origin_person", "origin_person must be a person's store id (> 0)");
  }
  uint32_t existing_owner = kNone;
  uint32_t existing = s_.ids.Find(key, &existing_owner);
  if (existing != kNone) {
    int64_t owner = s_.store_ids[existing_owner];
    if (owner == origin_person) return Status::Ok();
    return AlreadyDone("id '" + std::string(canonical) + "' already belongs to person " +
                       std::to_string(owner));
  }
  uint32_t p = PersonIndex(origin_person);
  bool new_person = p == kNone;
  if (new_person) {
    if (s_.persons.size() >= kNone) return Internal("identity graph: too many people");
    p = static_cast<uint32_t>(s_.persons.size());
  }
  ASSIGN_OR_RETURN(uint32_t id, s_.ids.Insert(canonical, key, p));
  if (new_person) {
    s_.persons.push_back(PersonNode{p, 1, origin_person, p, kNone, kNone, 0});
    s_.store_ids.push_back(origin_person);
    s_.person_index.Insert(PersonTag(origin_person), p);
  }
  s_.id_next.push_back(id);
  s_.id_degree.push_back(0);
  // Append to the person's ring of ids, keeping the order in which they were added.
  PersonNode& n = s_.persons[p];
  if (n.last_id != kNone) {
    s_.id_next[id] = s_.id_next[n.last_id];
    s_.id_next[n.last_id] = id;
  }
  n.last_id = id;
  *added = true;
  return Status::Ok();
}

StatusOr<bool> IdentityGraph::AddId(std::string_view id, int64_t origin_person) {
  thread_local std::string canonical;
  IdKind kind;
  RETURN_IF_ERROR(CanonicalizeExternalId(id, "id", &canonical, &kind));
  std::unique_lock lock(mu_);
  bool added = false;
  RETURN_IF_ERROR(AddIdLocked(canonical, s_.ids.KeyOf(canonical), origin_person, &added));
  return added;
}

Status IdentityGraph::AddIds(std::span<const IdRow> rows, size_t* added) {
  if (added) *added = 0;
  // Canonicalised outside the lock, into one buffer.
  thread_local std::string buf, scratch;
  thread_local std::vector<std::pair<size_t, size_t>> spans;
  thread_local std::vector<IdTable::Key> keys;
  buf.clear();
  spans.clear();
  keys.clear();
  size_t valid = 0;
  Status invalid;
  for (const IdRow& row : rows) {
    IdKind kind;
    invalid = CanonicalizeExternalId(row.id, "id", &scratch, &kind);
    if (!invalid.ok()) break;
    spans.emplace_back(buf.size(), scratch.size());
    buf += scratch;
    ++valid;
  }
  std::unique_lock lock(mu_);
  for (const auto& [off, len] : spans)
    keys.push_back(s_.ids.KeyOf(std::string_view(buf).substr(off, len)));
  PrefetchIds(keys);
  for (size_t i = 0; i < valid; ++i) {
    std::string_view id = std::string_view(buf).substr(spans[i].first, spans[i].second);
    // A key made before its prefix was known is made again: a row above may have added it.
    const IdTable::Key key = keys[i].prefix == kNone ? s_.ids.KeyOf(id) : keys[i];
    bool one = false;
    RETURN_IF_ERROR(AddIdLocked(id, key, rows[i].person, &one));
    if (one && added) ++*added;
  }
  return invalid;
}

StatusOr<LinkOutcome> IdentityGraph::LinkLocked(std::string_view a, const IdTable::Key& key_a,
                                                std::string_view b, const IdTable::Key& key_b,
                                                std::string_view reason, int64_t ts) {
  LinkOutcome out;
  uint32_t oa = kNone, ob = kNone;  // the owners, read with the records
  uint32_t ia = s_.ids.Find(key_a, &oa), ib = s_.ids.Find(key_b, &ob);
  if (ia == kNone || ib == kNone) {
    out.result = LinkResult::kNewPersonNeeded;
    if (ia == kNone) out.unknown_ids.emplace_back(a);
    if (ib == kNone && (ia != kNone || a != b)) out.unknown_ids.emplace_back(b);
    uint32_t known = ia != kNone ? oa : ob;
    if (known != kNone) out.person = SurvivorOf(known);
    return out;
  }
  uint32_t ra = FindRootMut(oa), rb = FindRootMut(ob);
  if (ra == rb) {
    out.result = LinkResult::kAlreadySame;
    out.person = s_.persons[ra].survivor;
    return out;
  }
  uint32_t max_people = s_.options.max_people_per_id;
  if (max_people > 0) {
    uint32_t da = Degree(ia), db = Degree(ib);
    // After this link, an id with d active merges would tie d + 2 previously distinct persons.
    if (std::max(da, db) + 2 > max_people) {
      out.result = LinkResult::kQuarantined;
      uint64_t pair = (uint64_t{std::min(ia, ib)} << 32) | std::max(ia, ib);
      auto pending = s_.pending_pairs.find(pair);
      if (pending != s_.pending_pairs.end()) {
        // The same link again while it awaits a decision: one quarantine, not a pile of them.
        const Event& ev = s_.log[s_.edges[pending->second].open_event];
        out.quarantine_id = ev.seq;
        out.quarantine_reason = s_.quarantine_info[ev.aux].guard_reason;
        return out;
      }
      uint32_t hub = da >= db ? ia : ib;
      QuarantineInfo info = GuardInfo(hub, hub == ia ? ib : ia, std::max(da, db) + 2);
      uint64_t seq = s_.next_seq;
      uint32_t e = NewEdge(ia, ib, oa, ob, EdgeState::kPending);
      out.quarantine_id = seq;
      out.quarantine_reason = info.guard_reason;
      s_.edges[e].open_event = static_cast<uint32_t>(s_.log.size());
      s_.log.push_back(Event{seq,
                             ts,
                             InternReason(reason),
                             e,
                             {0, 0},
                             static_cast<uint32_t>(s_.quarantine_info.size()),
                             LogKind::kQuarantine});
      s_.quarantine_info.push_back(std::move(info));
      s_.pending.emplace(seq, e);
      s_.pending_pairs.emplace(pair, e);
      s_.next_seq = seq + 1;
      return out;
    }
  }
  uint64_t seq = s_.next_seq;
  ApplyMerge(ia, ib, oa, ob, InternReason(reason), ts, seq, kNone);
  out.result = LinkResult::kLinked;
  out.merge_id = seq;
  out.person = SurvivorOf(oa);
  return out;
}

StatusOr<LinkOutcome> IdentityGraph::Link(std::string_view id_a, std::string_view id_b,
                                          std::string_view reason, int64_t ts) {
  // Validate and canonicalise outside the lock: readers wait only for the graph work.
  thread_local std::string ca, cb;
  IdKind kind;
  RETURN_IF_ERROR(CanonicalizeExternalId(id_a, "id_a", &ca, &kind));
  RETURN_IF_ERROR(CanonicalizeExternalId(id_b, "id_b", &cb, &kind));
  RETURN_IF_ERROR(CheckReason(reason));
  RETURN_IF_ERROR(CheckTs(ts));
  std::unique_lock lock(mu_);
  IdTable::Key keys[2] = {s_.ids.KeyOf(ca), s_.ids.KeyOf(cb)};
  PrefetchIds(keys);  // the two ids' reads overlap instead of queueing
  return LinkLocked(ca, keys[0], cb, keys[1], reason, ts);
}

void IdentityGraph::PrefetchIds(std::span<const IdTable::Key> keys) const {
  // Stage by stage: each stage's loads were prefetched by the one before, so a stage costs one
  // memory latency for all ids instead of one per id. The slot's first tag match is only a guess
  // at the id's record (exact unless two ids share the tag); a wrong guess costs a useless
  // prefetch, never a wrong answer.
  constexpr size_t kMax = 256;
  const char* guess[kMax];
  size_t n = std::min(keys.size(), kMax);
  for (size_t i = 0; i < n; ++i) s_.ids.PrefetchSlot(keys[i]);
  for (size_t i = 0; i < n; ++i) {
    guess[i] = s_.ids.GuessRecord(keys[i]);
    if (guess[i]) IdTable::PrefetchRecord(guess[i]);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!guess[i]) continue;
    PrefetchLine(&s_.persons[IdTable::RecordValue(guess[i])]);
    PrefetchLine(&s_.id_degree[IdTable::RecordIndex(guess[i])]);
  }
  for (size_t i = 0; i < n; ++i) {
    if (guess[i]) PrefetchLine(&s_.persons[s_.persons[IdTable::RecordValue(guess[i])].parent]);
  }
}

std::vector<StatusOr<LinkOutcome>> IdentityGraph::LinkBatch(std::span<const LinkRequest> requests) {
  constexpr size_t kChunk = 32;
  std::vector<StatusOr<LinkOutcome>> out;
  out.reserve(requests.size());
  struct Prepared {
    Status status;
    size_t a_off = 0, a_len = 0, b_off = 0, b_len = 0;
  };
  std::vector<Prepared> prep;
  std::vector<IdTable::Key> keys;
  std::string buf, scratch;
  for (size_t start = 0; start < requests.size(); start += kChunk) {
    std::span<const LinkRequest> chunk =
        requests.subspan(start, std::min(kChunk, requests.size() - start));
    // Validate and canonicalise outside the lock.
    prep.assign(chunk.size(), Prepared{});
    buf.clear();
    for (size_t i = 0; i < chunk.size(); ++i) {
      const LinkRequest& r = chunk[i];
      Prepared& p = prep[i];
      IdKind kind;
      p.status = CanonicalizeExternalId(r.id_a, "id_a", &scratch, &kind);
      p.a_off = buf.size();
      p.a_len = scratch.size();
      buf += scratch;
      if (p.status.ok()) p.status = CanonicalizeExternalId(r.id_b, "id_b", &scratch, &kind);
      p.b_off = buf.size();
      p.b_len = scratch.size();
      buf += scratch;
      if (p.status.ok()) p.status = CheckReason(r.reason);
      if (p.status.ok()) p.status = CheckTs(r.ts);
    }
    auto view = [&](size_t off, size_t len) { return std::string_view(buf).substr(off, len); };
    std::unique_lock lock(mu_);
    keys.clear();
    for (const Prepared& p : prep) {
      keys.push_back(s_.ids.KeyOf(view(p.a_off, p.a_len)));
      keys.push_back(s_.ids.KeyOf(view(p.b_off, p.b_len)));
    }
    PrefetchIds(keys);
    for (size_t i = 0; i < chunk.size(); ++i) {
      const Prepared& p = prep[i];
      if (!p.status.ok()) {
        out.emplace_back(p.status);
        continue;
      }
      out.push_back(LinkLocked(view(p.a_off, p.a_len), keys[2 * i], view(p.b_off, p.b_len),
                               keys[2 * i + 1], chunk[i].reason, chunk[i].ts));
    }
  }
  return out;
}

StatusOr<UnmergeOutcome> IdentityGraph::Unmerge(uint64_t merge_id, std::string_view reason,
                                                int64_t ts) {
  RETURN_IF_ERROR(CheckReason(reason));
  RETURN_IF_ERROR(CheckTs(ts));
  std::unique_lock lock(mu_);
  uint32_t ev = EventIndex(merge_id);
  if (ev == kNone || s_.log[ev].kind != LogKind::kMerge) {
    return NotFound("no merge " + std::to_string(merge_id));
  }
  uint32_t e = s_.log[ev].edge;
  if (s_.edges[e].state != EdgeState::kActive) {
    return AlreadyDone("merge " + std::to_string(merge_id) + " was already undone by event " +
                       std::to_string(s_.log[s_.edges[e].close_event].seq));
  }
  uint64_t seq = s_.next_seq;
  ApplyUnmerge(e, InternReason(reason), ts, seq);
  const Event& done = s_.log.back();
  return UnmergeOutcome{seq, done.person[0], done.person[1]};
}

StatusOr<LinkOutcome> IdentityGraph::ApproveQuarantine(uint64_t quarantine_id,
                                                       std::string_view reason, int64_t ts) {
  RETURN_IF_ERROR(CheckReason(reason));
  RETURN_IF_ERROR(CheckTs(ts));
  std::unique_lock lock(mu_);
  uint32_t ev = EventIndex(quarantine_id);
  if (ev == kNone || s_.log[ev].kind != LogKind::kQuarantine) {
    return NotFound("no quarantine " + std::to_string(quarantine_id));
  }
  uint32_t e = s_.log[ev].edge;
  if (s_.edges[e].state != EdgeState::kPending) {
    return AlreadyDone("quarantine " + std::to_string(quarantine_id) + " was already decided");
  }
  Edge& edge = s_.edges[e];
  edge.state = EdgeState::kApproved;
  edge.close_event = static_cast<uint32_t>(s_.log.size());
  uint64_t seq = s_.next_seq;
  s_.log.push_back(Event{seq, ts, InternReason(reason), e, {0, 0}, kNone, LogKind::kApprove});
  s_.next_seq = seq + 1;
  s_.pending.erase(quarantine_id);
  s_.pending_pairs.erase((uint64_t{std::min(edge.id[0], edge.id[1])} << 32) |
                         std::max(edge.id[0], edge.id[1]));

  LinkOutcome out;
  uint32_t ia = edge.id[0], ib = edge.id[1];
  if (FindRootMut(Owner(ia)) == FindRootMut(Owner(ib))) {
    out.result = LinkResult::kAlreadySame;
  } else {
    // The merge keeps the link's own reason; the approval's reason is on the kApprove event.
    out.merge_id = s_.next_seq;
    ApplyMerge(ia, ib, Owner(ia), Owner(ib), s_.log[ev].reason, ts, out.merge_id, e);
    out.result = LinkResult::kLinked;
  }
  out.person = SurvivorOf(Owner(ia));
  return out;
}

Status IdentityGraph::RejectQuarantine(uint64_t quarantine_id, std::string_view reason,
                                       int64_t ts) {
  RETURN_IF_ERROR(CheckReason(reason));
  RETURN_IF_ERROR(CheckTs(ts));
  std::unique_lock lock(mu_);
  uint32_t ev = EventIndex(quarantine_id);
  if (ev == kNone || s_.log[ev].kind != LogKind::kQuarantine) {
    return NotFound("no quarantine " + std::to_string(quarantine_id));
  }
  uint32_t e = s_.log[ev].edge;
  Edge& edge = s_.edges[e];
  if (edge.state != EdgeState::kPending) {
    return AlreadyDone("quarantine " + std::to_string(quarantine_id) + " was already decided");
  }
  edge.state = EdgeState::kRejected;
  edge.close_event = static_cast<uint32_t>(s_.log.size());
  uint64_t seq = s_.next_seq;
  s_.log.push_back(Event{seq, ts, InternReason(reason), e, {0, 0}, kNone, LogKind::kReject});
  s_.next_seq = seq + 1;
  s_.pending.erase(quarantine_id);
  s_.pending_pairs.erase((uint64_t{std::min(edge.id[0], edge.id[1])} << 32) |
                         std::max(edge.id[0], edge.id[1]));
  return Status::Ok();
}

// ---- rebuild ------------------------------------------------------------------------------------

Status IdentityGraph::ReplayLocked(const LogEntry& row) {
  auto bad = [&](const std::string& why) {
    return Internal("merge log event " + std::to_string(row.seq) + " (" +
                    std::string(LogKindName(row.kind)) + "): " + why);
  };
  if (row.seq < s_.next_seq || row.seq == 0) return bad("sequence numbers must increase");
  if (!CheckTs(row.ts).ok() || !CheckReason(row.reason).ok()) return bad("bad ts or reason");
  auto find_id = [&](const std::string& id) { return s_.ids.Find(id); };
  // The target event's edge, if `target` names an event of kind `kind`.
  auto target_edge = [&](LogKind kind) -> uint32_t {
    uint32_t ev = EventIndex(row.target);
    if (ev == kNone || s_.log[ev].kind != kind) return kNone;
    return s_.log[ev].edge;
  };
  uint32_t reason = InternReason(row.reason);
  switch (row.kind) {
    case LogKind::kMerge: {
      uint32_t oa = kNone, ob = kNone;
      uint32_t ia = s_.ids.Find(s_.ids.KeyOf(row.id_a), &oa);
      uint32_t ib = s_.ids.Find(s_.ids.KeyOf(row.id_b), &ob);
      if (ia == kNone || ib == kNone) return bad("an id has no row");
      if (FindRootMut(oa) == FindRootMut(ob)) return bad("the ids are already one person");
      uint32_t from = kNone;
      if (row.target != 0) {
        from = target_edge(LogKind::kQuarantine);
        if (from == kNone || s_.edges[from].state != EdgeState::kApproved) {
          return bad("target is not an approved quarantine");
        }
      }
      ApplyMerge(ia, ib, oa, ob, reason, row.ts, row.seq, from);
      return Status::Ok();
    }
    case LogKind::kUnmerge: {
      uint32_t e = target_edge(LogKind::kMerge);
      if (e == kNone || s_.edges[e].state != EdgeState::kActive) {
        return bad("target is not an active merge");
      }
      ApplyUnmerge(e, reason, row.ts, row.seq);
      return Status::Ok();
    }
    case LogKind::kQuarantine: {
      uint32_t ia = find_id(row.id_a), ib = find_id(row.id_b), hub = find_id(row.hub_id);
      if (ia == kNone || ib == kNone || hub == kNone) return bad("an id has no row");
      uint32_t e = NewEdge(ia, ib, Owner(ia), Owner(ib), EdgeState::kPending);
      s_.edges[e].open_event = static_cast<uint32_t>(s_.log.size());
      s_.log.push_back(Event{row.seq,
                             row.ts,
                             reason,
                             e,
                             {0, 0},
                             static_cast<uint32_t>(s_.quarantine_info.size()),
                             LogKind::kQuarantine});
      s_.quarantine_info.push_back(QuarantineInfo{hub, row.people, row.guard_reason});
      s_.pending.emplace(row.seq, e);
      s_.pending_pairs[(uint64_t{std::min(ia, ib)} << 32) | std::max(ia, ib)] = e;
      s_.next_seq = row.seq + 1;
      return Status::Ok();
    }
    case LogKind::kApprove:
    case LogKind::kReject: {
      uint32_t e = target_edge(LogKind::kQuarantine);
      if (e == kNone || s_.edges[e].state != EdgeState::kPending) {
        return bad("target is not a pending quarantine");
      }
      Edge& edge = s_.edges[e];
      edge.state = row.kind == LogKind::kApprove ? EdgeState::kApproved : EdgeState::kRejected;
      edge.close_event = static_cast<uint32_t>(s_.log.size());
      s_.log.push_back(Event{row.seq, row.ts, reason, e, {0, 0}, kNone, row.kind});
      s_.pending.erase(row.target);
      s_.pending_pairs.erase((uint64_t{std::min(edge.id[0], edge.id[1])} << 32) |
                             std::max(edge.id[0], edge.id[1]));
      s_.next_seq = row.seq + 1;
      return Status::Ok();
    }
  }
  return bad("unknown kind");
}

StatusOr<IdentityGraph> IdentityGraph::Rebuild(const IdRowSource& rows, const LogSource& log,
                                               GraphOptions options, size_t people, size_t ids) {
  IdentityGraph g(options);
  g.Reserve(people, ids);
  std::unique_lock lock(g.mu_);
  // Rows are taken 32 at a time (copied: a row's view only lives until the next call) so their
  // reads can be prefetched together.
  constexpr size_t kBatch = 32;
  std::string buf;
  std::vector<std::pair<size_t, size_t>> spans;
  std::vector<IdRow> batch;
  size_t n = 0;
  bool more = true;
  while (more) {
    buf.clear();
    spans.clear();
    batch.clear();
    IdRow row;
    while (batch.size() < kBatch && (more = rows(&row))) {
      spans.emplace_back(buf.size(), row.id.size());
      buf.append(row.id);
      batch.push_back(IdRow{{}, row.person});
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].id = std::string_view(buf).substr(spans[i].first, spans[i].second);
    }
    RETURN_IF_ERROR(g.AddRowsLocked(batch, n + 1));
    n += batch.size();
  }
  // The log replays in order, 32 events at a time with their ids' reads prefetched together.
  std::vector<IdTable::Key> keys;
  std::vector<LogEntry> chunk(kBatch);
  for (more = true; more;) {
    size_t got = 0;
    while (got < kBatch && (more = log(&chunk[got]))) ++got;
    chunk.resize(got);
    keys.clear();
    for (const LogEntry& e : chunk) {
      if (e.kind != LogKind::kMerge && e.kind != LogKind::kQuarantine) continue;
      keys.push_back(g.s_.ids.KeyOf(e.id_a));
      keys.push_back(g.s_.ids.KeyOf(e.id_b));
    }
    g.PrefetchIds(keys);
    for (const LogEntry& e : chunk) RETURN_IF_ERROR(g.ReplayLocked(e));
    chunk.resize(kBatch);
  }
  // Point every node at its root so readers start with one hop.
  for (uint32_t p = 0; p < g.s_.persons.size(); ++p) g.s_.persons[p].parent = g.FindRoot(p);
  lock.unlock();
  return g;
}

Status IdentityGraph::AddRowsLocked(std::span<const IdRow> rows, size_t first_row_number) {
  thread_local std::string canonical;
  thread_local std::vector<IdTable::Key> keys;
  keys.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const IdRow& row = rows[i];
    IdKind kind;
    Status st = CanonicalizeExternalId(row.id, "id", &canonical, &kind);
    if (!st.ok() || canonical != row.id) {
      return Internal("id row " + std::to_string(first_row_number + i) + ": '" +
                      std::string(row.id.substr(0, 80)) + "' is not a canonical id");
    }
    keys[i] = s_.ids.KeyOf(row.id);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    s_.ids.PrefetchSlot(keys[i]);
    s_.person_index.Prefetch(PersonTag(rows[i].person));
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    uint32_t p = s_.person_index.FirstTagMatch(PersonTag(rows[i].person));
    if (p == kNone) continue;
    PrefetchLine(&s_.store_ids[p]);
    PrefetchLine(&s_.persons[p]);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    uint32_t p = s_.person_index.FirstTagMatch(PersonTag(rows[i].person));
    if (p != kNone && s_.persons[p].last_id != kNone) {
      PrefetchLine(&s_.id_next[s_.persons[p].last_id]);
    }
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    bool added;
    // A row that brings a new prefix invalidates the later keys of the batch (they were computed
    // without it), so recompute a key that has no prefix.
    if (keys[i].prefix == kNone) keys[i] = s_.ids.KeyOf(rows[i].id);
    Status st = AddIdLocked(rows[i].id, keys[i], rows[i].person, &added);
    if (!st.ok()) {
      return Internal("id row " + std::to_string(first_row_number + i) + ": " + st.message());
    }
  }
  return Status::Ok();
}

StatusOr<IdentityGraph> IdentityGraph::Rebuild(const IdRowSource& rows,
                                               std::span<const LogEntry> log, GraphOptions options,
                                               size_t people, size_t ids) {
  size_t i = 0;
  return Rebuild(
      rows,
      [&](LogEntry* e) {
        if (i == log.size()) return false;
        *e = log[i++];
        return true;
      },
      options, people, ids);
}

StatusOr<IdentityGraph> IdentityGraph::Rebuild(std::span<const IdRow> rows,
                                               std::span<const LogEntry> log,
                                               GraphOptions options) {
  size_t i = 0;
  return Rebuild(
      [&](IdRow* row) {
        if (i == rows.size()) return false;
        *row = rows[i++];
        return true;
      },
      log, options, 0, rows.size());
}

// ---- reads --------------------------------------------------------------------------------------

std::optional<int64_t> IdentityGraph::Resolve(std::string_view canonical_id) const {
  std::shared_lock lock(mu_);
  uint32_t owner = kNone;
  if (s_.ids.Find(s_.ids.KeyOf(canonical_id), &owner) == kNone) return std::nullopt;
  return SurvivorOf(owner);
}

std::optional<int64_t> IdentityGraph::ResolvePerson(int64_t origin_person) const {
  std::shared_lock lock(mu_);
  uint32_t p = PersonIndex(origin_person);
  if (p == kNone) return std::nullopt;
  return SurvivorOf(p);
}

void IdentityGraph::ResolveOwners(std::span<const std::string_view> ids,
                                  std::vector<std::optional<IdOwner>>& out) const {
  out.assign(ids.size(), std::nullopt);
  constexpr size_t kChunk = 256;  // PrefetchIds' batch
  thread_local std::vector<IdTable::Key> keys;
  std::shared_lock lock(mu_);
  for (size_t start = 0; start < ids.size(); start += kChunk) {
    const size_t n = std::min(kChunk, ids.size() - start);
    keys.clear();
    for (size_t i = 0; i < n; ++i) keys.push_back(s_.ids.KeyOf(ids[start + i]));
    if (n > 1) PrefetchIds(keys);
    for (size_t i = 0; i < n; ++i) {
      uint32_t owner = kNone;
      if (s_.ids.Find(keys[i], &owner) == kNone) continue;
      out[start + i] = IdOwner{s_.store_ids[owner], SurvivorOf(owner)};
    }
  }
}

void IdentityGraph::ResolvePersons(std::span<const int64_t> origin_people,
                                   std::span<int64_t> out) const {
  std::shared_lock lock(mu_);
  for (size_t i = 0; i < origin_people.size() && i < out.size(); ++i) {
    uint32_t p = PersonIndex(origin_people[i]);
    out[i] = p == kNone ? origin_people[i] : SurvivorOf(p);
  }
}

StatusOr<std::vector<int64_t>> IdentityGraph::ComponentOf(int64_t person) const {
  std::shared_lock lock(mu_);
  uint32_t p = PersonIndex(person);
  if (p == kNone) return NotFound("no person " + std::to_string(person));
  std::vector<int64_t> out;
  for (uint32_t m : Members(p)) out.push_back(s_.store_ids[m]);
  std::sort(out.begin(), out.end());
  return out;
}

StatusOr<std::vector<std::string>> IdentityGraph::IdsOf(int64_t person) const {
  std::shared_lock lock(mu_);
  uint32_t p = PersonIndex(person);
  if (p == kNone) return NotFound("no person " + std::to_string(person));
  std::vector<uint32_t> members = Members(p);
  std::sort(members.begin(), members.end(),
            [&](uint32_t x, uint32_t y) { return s_.store_ids[x] < s_.store_ids[y]; });
  std::vector<std::string> out;
  for (uint32_t m : members) {
    uint32_t last = s_.persons[m].last_id;
    if (last == kNone) continue;
    uint32_t id = s_.id_next[last];  // the oldest
    while (true) {
      out.push_back(s_.ids.Get(id));
      if (id == last) break;
      id = s_.id_next[id];
    }
  }
  return out;
}

LogEntry IdentityGraph::Materialize(const Event& ev) const {
  LogEntry le;
  le.seq = ev.seq;
  le.kind = ev.kind;
  le.ts = ev.ts;
  le.reason = s_.reasons[ev.reason];
  const Edge& edge = s_.edges[ev.edge];
  le.id_a = s_.ids.Get(edge.id[0]);
  le.id_b = s_.ids.Get(edge.id[1]);
  le.person_a = ev.person[0];
  le.person_b = ev.person[1];
  switch (ev.kind) {
    case LogKind::kMerge:
      if (ev.aux != kNone) le.target = s_.log[s_.edges[ev.aux].open_event].seq;
      break;
    case LogKind::kUnmerge:
    case LogKind::kApprove:
    case LogKind::kReject:
      le.target = s_.log[edge.open_event].seq;
      break;
    case LogKind::kQuarantine: {
      const QuarantineInfo& q = s_.quarantine_info[ev.aux];
      le.hub_id = s_.ids.Get(q.hub_id);
      le.people = q.people;
      le.guard_reason = q.guard_reason;
      break;
    }
  }
  return le;
}

StatusOr<std::vector<LogEntry>> IdentityGraph::MergeHistory(int64_t person) const {
  std::shared_lock lock(mu_);
  uint32_t p = PersonIndex(person);
  if (p == kNone) return NotFound("no person " + std::to_string(person));
  std::vector<uint32_t> events;
  for (uint32_t m : Members(p)) {
    for (uint32_t h = s_.persons[m].adj; h != kNone; h = s_.edges[h >> 1].next[h & 1]) {
      const Edge& e = s_.edges[h >> 1];
      events.push_back(e.open_event);
      if (e.close_event != kNone) events.push_back(e.close_event);
    }
  }
  std::sort(events.begin(), events.end());
  events.erase(std::unique(events.begin(), events.end()), events.end());
  std::vector<LogEntry> out;
  out.reserve(events.size());
  for (uint32_t ev : events) out.push_back(Materialize(s_.log[ev]));
  return out;
}

std::vector<Quarantine> IdentityGraph::Quarantined() const {
  std::shared_lock lock(mu_);
  std::vector<Quarantine> out;
  for (const auto& [qid, e] : s_.pending) {
    LogEntry le = Materialize(s_.log[s_.edges[e].open_event]);
    out.push_back(Quarantine{qid, le.ts, std::move(le.reason), std::move(le.id_a),
                             std::move(le.id_b), std::move(le.hub_id), std::move(le.people),
                             std::move(le.guard_reason)});
  }
  return out;
}

std::vector<LogEntry> IdentityGraph::Log(uint64_t after_seq) const {
  std::shared_lock lock(mu_);
  std::vector<LogEntry> out;
  size_t first = FirstEventAfter(after_seq);
  out.reserve(s_.log.size() - first);
  for (size_t i = first; i < s_.log.size(); ++i) out.push_back(Materialize(s_.log[i]));
  return out;
}

bool IdentityGraph::Equals(const IdentityGraph& other, std::string* why) const {
  if (this == &other) return true;
  std::shared_lock<RwLock> la(mu_, std::defer_lock), lb(other.mu_, std::defer_lock);
  std::lock(la, lb);  // deadlock-free whatever order two callers compare in
  auto differ = [&](std::string what) {
    if (why) *why = std::move(what);
    return false;
  };
  const State& a = s_;
  const State& b = other.s_;
  if (a.options.max_people_per_id != b.options.max_people_per_id) {
    return differ("max_people_per_id differs");
  }
  if (a.persons.size() != b.persons.size()) {
    return differ("people: " + std::to_string(a.persons.size()) + " vs " +
                  std::to_string(b.persons.size()));
  }
  if (a.ids.size() != b.ids.size()) {
    return differ("ids: " + std::to_string(a.ids.size()) + " vs " + std::to_string(b.ids.size()));
  }
  // Both loops look every key up in the other graph at random: 256 at a time, prefetched.
  constexpr size_t kBatch = 64;
  for (uint32_t start = 0; start < a.persons.size(); start += kBatch) {
    auto end = static_cast<uint32_t>(std::min<size_t>(a.persons.size(), start + kBatch));
    for (uint32_t p = start; p < end; ++p) b.person_index.Prefetch(PersonTag(a.store_ids[p]));
    for (uint32_t p = start; p < end; ++p) {
      uint32_t q = b.person_index.FirstTagMatch(PersonTag(a.store_ids[p]));
      if (q != kNone) {
        PrefetchLine(&b.store_ids[q]);
        PrefetchLine(&b.persons[q]);
      }
    }
    for (uint32_t p = start; p < end; ++p) {
      int64_t sid = a.store_ids[p];
      uint32_t q = other.PersonIndex(sid);
      if (q == kNone) return differ("person " + std::to_string(sid) + " missing");
      if (SurvivorOf(p) != other.SurvivorOf(q)) {
        return differ("person " + std::to_string(sid) + " resolves to " +
                      std::to_string(SurvivorOf(p)) + " vs " + std::to_string(other.SurvivorOf(q)));
      }
    }
  }
  std::string buf;
  std::vector<size_t> offsets;
  std::vector<IdTable::Key> keys;
  for (uint32_t start = 0; start < a.ids.size(); start += kBatch) {
    auto end = static_cast<uint32_t>(std::min<size_t>(a.ids.size(), start + kBatch));
    buf.clear();
    offsets.clear();
    keys.clear();
    for (uint32_t i = start; i < end; ++i) {
      offsets.push_back(buf.size());
      a.ids.AppendTo(i, &buf);
    }
    offsets.push_back(buf.size());
    auto id = [&](uint32_t k) {
      return std::string_view(buf).substr(offsets[k], offsets[k + 1] - offsets[k]);
    };
    for (uint32_t k = 0; k < end - start; ++k) keys.push_back(b.ids.KeyOf(id(k)));
    other.PrefetchIds(keys);
    for (uint32_t k = 0; k < end - start; ++k) {
      uint32_t j = b.ids.Find(keys[k]);
      if (j == kNone) return differ("id '" + std::string(id(k)) + "' missing");
      if (a.store_ids[Owner(start + k)] != b.store_ids[other.Owner(j)]) {
        return differ("id '" + std::string(id(k)) + "' has another owner");
      }
    }
  }
  if (a.log.size() != b.log.size()) return differ("log lengths differ");
  for (size_t k = 0; k < a.log.size(); ++k) {
    if (!(Materialize(a.log[k]) == other.Materialize(b.log[k]))) {
      return differ("log event " + std::to_string(a.log[k].seq) + " differs");
    }
  }
  if (a.next_seq != b.next_seq) return differ("next sequence numbers differ");
  if (a.pending.size() != b.pending.size() ||
      !std::equal(a.pending.begin(), a.pending.end(), b.pending.begin(),
                  [](const auto& x, const auto& y) { return x.first == y.first; })) {
    return differ("pending quarantines differ");
  }
  return true;
}

Status IdentityGraph::CheckInvariants() const {
  std::shared_lock lock(mu_);
  const auto& ps = s_.persons;
  auto fail = [](std::string why) { return Internal("identity graph invariant: " + why); };
  size_t n = ps.size();
  // Union-find: roots, sizes, rings, survivors.
  size_t total = 0;
  for (uint32_t p = 0; p < n; ++p) {
    if (ps[p].parent >= n) return fail("parent out of range");
    if (ps[p].parent != p) continue;
    std::vector<uint32_t> members = Members(p);
    if (members.size() != ps[p].size) return fail("ring and size disagree");
    total += members.size();
    int64_t oldest = s_.store_ids[p];
    for (uint32_t m : members) {
      if (FindRoot(m) != p) return fail("ring member under another root");
      oldest = std::min(oldest, s_.store_ids[m]);
    }
    if (ps[p].survivor != oldest) return fail("survivor is not the oldest member");
  }
  if (total != n) return fail("rings do not cover every person");
  // Id rings and owners.
  size_t ids_in_rings = 0;
  for (uint32_t p = 0; p < n; ++p) {
    uint32_t last = ps[p].last_id;
    if (last == kNone) return fail("a person without ids");
    uint32_t id = last;
    do {
      if (Owner(id) != p) return fail("id in another person's ring");
      ++ids_in_rings;
      id = s_.id_next[id];
    } while (id != last);
  }
  if (ids_in_rings != s_.ids.size()) return fail("id rings do not cover every id");
  // Degrees, and components = connected components of the active merges.
  std::vector<uint32_t> degree(s_.ids.size(), 0);
  std::vector<uint32_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0u);
  auto find = [&](uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  size_t active = 0;
  for (size_t k = 0; k < s_.edges.size(); ++k) {
    const Edge& e = s_.edges[k];
    if (e.state != EdgeState::kActive) continue;
    ++active;
    ++degree[e.id[0]];
    ++degree[e.id[1]];
    parent[find(Owner(e.id[0]))] = find(Owner(e.id[1]));
  }
  if (active != s_.active_merges) return fail("active merge count");
  for (uint32_t i = 0; i < s_.ids.size(); ++i) {
    if (degree[i] != Degree(i)) return fail("degree of '" + s_.ids.Get(i) + "'");
  }
  std::vector<uint32_t> map_a(n, kNone), map_b(n, kNone);
  for (uint32_t p = 0; p < n; ++p) {
    uint32_t x = find(p), y = FindRoot(p);
    if (map_a[x] == kNone) map_a[x] = y;
    if (map_b[y] == kNone) map_b[y] = x;
    if (map_a[x] != y || map_b[y] != x) return fail("components differ from the active merges");
  }
  size_t pending = 0;
  for (uint32_t e = 0; e < s_.edges.size(); ++e) {
    if (s_.edges[e].state != EdgeState::kPending) continue;
    ++pending;
    auto it = s_.pending.find(s_.log[s_.edges[e].open_event].seq);
    if (it == s_.pending.end() || it->second != e) return fail("pending quarantine index");
  }
  if (pending != s_.pending.size() || pending != s_.pending_pairs.size()) {
    return fail("pending quarantine count");
  }
  return Status::Ok();
}

GraphStats IdentityGraph::Stats() const {
  std::shared_lock lock(mu_);
  GraphStats st;
  st.people = s_.persons.size();
  st.ids = s_.ids.size();
  for (uint32_t p = 0; p < s_.persons.size(); ++p) st.components += s_.persons[p].parent == p;
  st.active_merges = s_.active_merges;
  st.log_events = s_.log.size();
  st.pending_quarantines = s_.pending.size();
  IdTable::Memory m = s_.ids.MemoryBytes();
  st.bytes_id_index = m.index;
  st.bytes_id_offsets = m.offsets + m.prefixes;
  st.bytes_id_arena = m.arena;
  st.bytes_id_links = s_.id_next.capacity() * sizeof(uint32_t) + s_.id_degree.capacity() +
                      s_.degree_overflow.size() * 32;
  st.bytes_people = s_.persons.capacity() * sizeof(PersonNode) +
                    s_.store_ids.capacity() * sizeof(int64_t) + s_.person_index.MemoryBytes();
  st.bytes_log = s_.edges.MemoryBytes() + s_.log.MemoryBytes();
  for (const auto& q : s_.quarantine_info) {
    st.bytes_log += sizeof(QuarantineInfo) + q.people.capacity() * 8 + q.guard_reason.capacity();
  }
  for (const auto& r : s_.reasons) st.bytes_log += 2 * (sizeof(std::string) + r.capacity()) + 16;
  return st;
}

}  // namespace siyu::identity
