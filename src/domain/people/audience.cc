#include "domain/people/audience.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <deque>
#include <iterator>
#include <unordered_set>

#include "common/threads.h"
#include "common/time.h"
#include "domain/audience/sql.h"

namespace siyu::domain {

using audience::AudienceEngine;
using audience::Day;
using audience::Deltas;
using audience::PersonAttrs;
using store::Conn;
using store::Row;
using store::Rows;

namespace {

// How often channel touches are read back once the store has them, and how often every tenant's
// engine is ticked (a new day) and reconciled with the store.
constexpr auto kSettleChannelsEvery = std::chrono::milliseconds(200);
constexpr auto kTickEvery = std::chrono::seconds(30);
constexpr size_t kMaxTagText = 32;
constexpr size_t kMaxMembersChange = 10'000;

// A Status like `s` with its field named `field` (or the JSON path moved under `field`).
Status WithField(const Status& s, const std::string& field) {
  std::string f = s.field();
  if (f.starts_with("expression")) f = field + f.substr(10);
  if (f.empty()) f = field;
  return Status(s.code(), s.message(), f);
}

Status CheckText(const std::string& s, const char* field, size_t min, const char* what) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  if (chars < min || chars > kMaxTagText) {
    return InvalidField(field, std::string(what) + " must be " + std::to_string(min) + "-" +
                                   std::to_string(kMaxTagText) + " characters");
  }
  return Status::Ok();
}

uint64_t OrZero(const StatusOr<uint64_t>& v) { return v.ok() ? *v : 0; }

// The tier a member_bound event names ("level"), if any.
std::string TierOf(std::string_view type, std::string_view properties) {
  if (type != "member_bound") return {};
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(properties, ec);
  if (ec || !v.is_object()) return {};
  const auto* level = v.as_object().if_contains("level");
  return level && level->is_string() ? std::string(level->as_string()) : std::string();
}

// The integer properties of an event stored as `properties` (IntegerProperties).
std::vector<std::pair<std::string, int64_t>> EventValues(std::string_view properties) {
  if (properties.find_first_of("0123456789") == std::string_view::npos) return {};
  unsigned char buf[4096];
  boost::json::monotonic_resource mr(buf, sizeof buf);
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(properties, ec, &mr);
  if (ec || !v.is_object()) return {};
  return IntegerProperties(v.as_object());
}

// A member_bound event (ts, event_id) later than the one that named the row's tier.
bool LaterTier(int64_t ts, std::string_view event_id, int64_t tier_ts,
               std::string_view tier_event) {
  return ts != tier_ts ? ts > tier_ts : event_id > tier_event;
}

// The bit of an event's touchpoint in RowAttrs::touchpoints (0: not one of kEventTouchpoints).
uint8_t TouchpointBit(std::string_view touchpoint) {
  for (size_t i = 0; i < std::size(kEventTouchpoints); ++i) {
    if (kEventTouchpoints[i] == touchpoint) return static_cast<uint8_t>(1u << i);
  }
  return 0;
}
static_assert(std::size(kEventTouchpoints) <= 8, "RowAttrs::touchpoints has 8 bits");

}  // namespace

// A writer-preferring shared lock: facts hold it shared (BeginFact), a build exclusively while it
// drains the facts in flight and while it installs. Facts arrive all the time, so a build must not
// wait for a moment without any (a reader-preferring lock would let it starve).
class Audience::FactGate {
 public:
  void lock_shared() {
    std::unique_lock l(m_);
    cv_.wait(l, [&] { return !writer_ && writers_waiting_ == 0; });
    ++readers_;
  }
  void unlock_shared() {
    std::lock_guard l(m_);
    if (--readers_ == 0) cv_.notify_all();
  }
  void lock() {
    std::unique_lock l(m_);
    ++writers_waiting_;
    cv_.wait(l, [&] { return !writer_ && readers_ == 0; });
    --writers_waiting_;
    writer_ = true;
  }
  void unlock() {
    std::lock_guard l(m_);
    writer_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int readers_ = 0, writers_waiting_ = 0;
  bool writer_ = false;
};

namespace {
// Fact scopes this thread holds (BeginFact is reentrant: only the outermost locks).
thread_local int fact_scopes = 0;
}  // namespace

// What the service keeps per tenant beside its engine: the time zone, and the attributes of each
// row of its people (a person's are folded from its rows).
struct Audience::Tenant {
  std::mutex mu;  // guards everything below except the engine's own state
  std::shared_ptr<AudienceEngine> engine;
  std::string tz;
  RowMap rows;
  std::unique_ptr<Journal> journal;  // while a build catches up
  // People whose channels events may have moved, to be read back once the store has the events:
  // per batch, the event log's ticket after it (Events::OwedTicket) and its people.
  std::deque<std::pair<uint64_t, std::vector<int64_t>>> channel_moves;
  FactGate gate;        // facts in flight hold it shared (BeginFact)
  std::mutex build_mu;  // one build (or definition change) at a time
};

// The facts that arrive while a build reads the store, replayed into it once it has.
struct Audience::Journal {
  // Events the build took from the store have received_at >= since (it started a margin before the
  // build, so an ingest whose facts it journals began after it; else the replay is ambiguous).
  int64_t since = 0;
  struct Entry {
    enum class Kind { kEvents, kOrder, kRefund, kPerson, kChannels } kind = Kind::kEvents;
    std::vector<EventItem> items;  // kEvents: the accepted ones, with their results in r
    IngestResult r;
    Order order;                  // kOrder, kRefund
    int64_t person = 0;           // kPerson
    std::vector<int64_t> people;  // kChannels: whose channels to read back
  };
  std::vector<Entry> entries;
};

Audience::Audience(store::Store& store, Identity& identity, Events& events)
    : store_(store), identity_(identity), events_(events) {}

Audience::~Audience() { Stop(); }

void Audience::Stop() {
  {
    std::lock_guard lock(tick_mu_);
    stopping_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  {
    std::lock_guard lock(emit_mu_);
    emit_stopping_ = true;
  }
  emit_cv_.notify_all();
  if (emitter_.joinable()) emitter_.join();
}

void Audience::Emit(int64_t tenant_id, const Deltas& d) {
  deltas_ += d.size();
  if (d.empty()) return;
  constexpr size_t kMaxPending = 1'000'000;
  const int64_t now = NowMs();
  {
    std::lock_guard lock(emit_mu_);
    for (const audience::Delta& x : d) {
      if (pending_.size() >= kMaxPending) {
        ++dropped_;
        continue;
      }
      pending_.push_back({tenant_id, now, x});
    }
  }
  emit_cv_.notify_one();
}

Audience::ChangeStats Audience::Changes() {
  ChangeStats st;
  st.deltas = deltas_;
  st.recorded = emitted_;
  st.dropped = dropped_;
  std::lock_guard lock(emit_mu_);
  st.pending = pending_.size() + in_flight_;
  return st;
}

void Audience::EmitLoop() {
  std::vector<Pending> batch;
  for (;;) {
    {
      std::unique_lock lock(emit_mu_);
      emit_cv_.wait(lock, [&] { return emit_stopping_ || !pending_.empty(); });
      if (pending_.empty() && emit_stopping_) return;
      batch.swap(pending_);
      in_flight_ = batch.size();
    }
    // Per tenant, in order; names resolved once per batch.
    std::unordered_map<int64_t, std::vector<SystemEvent>> by_tenant;
    std::unordered_map<int64_t, std::unordered_map<int64_t, std::string>> tag_names, seg_names;
    for (const Pending& p : batch) {
      auto e = LiveEngineOf(p.tenant_id);
      if (!e) continue;
      auto& tags = tag_names[p.tenant_id];
      auto& segs = seg_names[p.tenant_id];
      if (tags.empty() && segs.empty()) {
        for (const auto& t : e->Tags())
          tags[t.id] = t.group.empty() ? t.name : t.group + "/" + t.name;
        for (const auto& sg : e->Segments()) segs[sg.id] = sg.name;
        tags[0] = segs[0] = "";  // marks the tenant as looked up
      }
      boost::json::object props;
      const audience::Delta& x = p.delta;
      switch (x.kind) {
        case audience::DeltaKind::kTagAdded:
        case audience::DeltaKind::kTagRemoved:
          props["tag_id"] = x.id;
          props["tag"] = tags.count(x.id) ? tags[x.id] : std::string();
          break;
        case audience::DeltaKind::kSegmentEntered:
        case audience::DeltaKind::kSegmentExited:
          props["segment_id"] = x.id;
          props["segment"] = segs.count(x.id) ? segs[x.id] : std::string();
          break;
        case audience::DeltaKind::kStageChanged:
          props["from"] = audience::StageKey(static_cast<audience::Stage>(x.from));
          props["to"] = audience::StageKey(static_cast<audience::Stage>(x.to));
          break;
        case audience::DeltaKind::kRfmClassChanged:
          props["from"] = audience::RfmClassKey(static_cast<audience::RfmClass>(x.from));
          props["to"] = audience::RfmClassKey(static_cast<audience::RfmClass>(x.to));
          break;
      }
      by_tenant[p.tenant_id].push_back(SystemEvent{x.person, std::string(DeltaKindName(x.kind)),
                                                   p.ts, boost::json::serialize(props)});
    }
    for (const auto& [tenant, events] : by_tenant) {
      Status s = events_.AppendSystem(tenant, events);
      if (!s.ok()) {
        spdlog::warn("audience: tenant {}: recording {} changes: {}", tenant, events.size(),
                     s.ToString());
        dropped_ += events.size();
      } else {
        emitted_ += events.size();
      }
    }
    batch.clear();
    std::lock_guard lock(emit_mu_);
    in_flight_ = 0;
  }
}

Audience::Tenant& Audience::TenantOf(int64_t tenant_id) {
  std::lock_guard lock(mu_);
  auto& t = tenants_[tenant_id];
  if (!t) t = std::make_unique<Tenant>();
  return *t;
}

StatusOr<std::string> Audience::TimezoneOf(int64_t tenant_id) {
  std::string tz;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT timezone FROM tenants WHERE id = ?", {tenant_id}));
    if (r.empty()) return Status(ErrorCode::kNotFound, "no tenant " + std::to_string(tenant_id));
    tz = r[0].Text(0);
    return Status::Ok();
  }));
  return tz;
}

Day Audience::DayOf(int64_t tenant_id, int64_t ms) {
  Tenant& t = TenantOf(tenant_id);
  std::string tz;
  {
    std::lock_guard lock(t.mu);
    tz = t.tz;
  }
  return LocalDayNumber(ms, tz.empty() ? kDefaultTimeZone : std::string_view(tz));
}

Status Audience::LoadAll() {
  std::vector<int64_t> ids;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ids.clear();
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id FROM tenants ORDER BY id"));
    for (const Row& row : r) ids.push_back(row.Int(0));
    return Status::Ok();
  }));
  for (int64_t id : ids) RETURN_IF_ERROR(Rebuild(id));
  emitter_ = std::thread([this] {
    NameThisThread("siyu-audience");
    EmitLoop();
  });
  ticker_ = std::thread([this] {
    NameThisThread("siyu-aud-tick");
    std::unique_lock lock(tick_mu_);
    auto last_tick = std::chrono::steady_clock::now();
    while (!tick_cv_.wait_for(lock, kSettleChannelsEvery, [&] { return stopping_; })) {
      lock.unlock();
      SettleAllChannels();
      if (std::chrono::steady_clock::now() - last_tick >= kTickEvery) {
        TickAll();
        last_tick = std::chrono::steady_clock::now();
      }
      lock.lock();
    }
  });
  return Status::Ok();
}

void Audience::SettleChannels(int64_t tenant_id, bool now) {
  Tenant& t = TenantOf(tenant_id);
  std::vector<int64_t> people;
  {
    std::lock_guard lock(t.mu);
    while (!t.channel_moves.empty() && (now || events_.StoreHas(t.channel_moves.front().first))) {
      const auto& front = t.channel_moves.front().second;
      people.insert(people.end(), front.begin(), front.end());
      t.channel_moves.pop_front();
    }
  }
  if (people.empty()) return;  // (ReadChannels drops repeats)
  ApplyLive(
      tenant_id, [&](Sink& s) { ReadChannels(tenant_id, s, people, now); },
      [&](Journal& j) {
        Journal::Entry x;
        x.kind = Journal::Entry::Kind::kChannels;
        x.people = people;
        j.entries.push_back(std::move(x));
      });
}

void Audience::SettleAllChannels() {
  std::vector<int64_t> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, t] : tenants_) ids.push_back(id);
  }
  for (int64_t id : ids) SettleChannels(id, false);
}

std::shared_ptr<AudienceEngine> Audience::EngineOf(int64_t tenant_id) {
  SettleChannels(tenant_id, true);
  return LiveEngineOf(tenant_id);
}

void Audience::TickAll() {
  std::vector<int64_t> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, t] : tenants_) ids.push_back(id);
  }
  const int64_t now = NowMs();
  for (int64_t id : ids) {
    auto e = LiveEngineOf(id);
    if (!e) continue;
    Deltas d;
    const Day today = DayOf(id, now);
    if (today > e->today()) {
      Status s = e->Tick(today, &d);
      if (!s.ok()) spdlog::warn("audience: tenant {}: tick: {}", id, s.ToString());
    }
    Emit(id, d);
    Status s = Reconcile(id);
    if (!s.ok()) spdlog::warn("audience: tenant {}: reconcile: {}", id, s.ToString());
  }
}

std::shared_ptr<AudienceEngine> Audience::LiveEngineOf(int64_t tenant_id) {
  Tenant& t = TenantOf(tenant_id);
  {
    std::lock_guard lock(t.mu);
    if (t.engine) return t.engine;
  }
  std::lock_guard build(t.build_mu);
  {
    std::lock_guard lock(t.mu);
    if (t.engine) return t.engine;
  }
  Status s = RebuildLocked(tenant_id, t);
  if (!s.ok()) spdlog::error("audience: tenant {}: {}", tenant_id, s.ToString());
  std::lock_guard lock(t.mu);
  return t.engine;
}

StatusOr<std::shared_ptr<AudienceEngine>> Audience::LockDefinitions(
    int64_t tenant_id, std::unique_lock<std::mutex>& lock) {
  SettleChannels(tenant_id, true);
  Tenant& t = TenantOf(tenant_id);
  lock = std::unique_lock(t.build_mu);
  {
    std::lock_guard l(t.mu);
    if (t.engine) return t.engine;
  }
  RETURN_IF_ERROR(RebuildLocked(tenant_id, t));
  std::lock_guard l(t.mu);
  if (!t.engine)
    return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  return t.engine;
}

bool Audience::NoteTier(std::unique_ptr<RowTier>& row, std::string tier, int64_t ts,
                        std::string_view event_id) {
  if (tier.empty()) return false;
  if (row && !LaterTier(ts, event_id, row->ts, row->event_id)) return false;
  if (!row) row = std::make_unique<RowTier>();
  row->tier = std::move(tier);
  row->ts = ts;
  row->event_id = std::string(event_id);
  return true;
}

PersonAttrs Audience::FoldRows(const RowMap& rows, std::vector<int64_t> ids) {
  std::sort(ids.begin(), ids.end());
  PersonAttrs out;
  bool any = false;
  Day first_day = 0;
  uint8_t touchpoints = 0;
  const RowTier* tier = nullptr;
  for (int64_t id : ids) {
    const RowAttrs* found = rows.find(id);
    if (!found) continue;
    const RowAttrs& r = *found;
    out.first_seen_day = any ? std::min(out.first_seen_day, r.first_seen_day) : r.first_seen_day;
    any = true;
    if (r.first_channel != 0 && (out.first_channel == 0 || r.first_seen_day < first_day)) {
      out.first_channel = r.first_channel;
      first_day = r.first_seen_day;
    }
    if (out.last_channel == 0) out.last_channel = r.last_channel;
    touchpoints |= r.touchpoints;
    if (r.tier && (!tier || LaterTier(r.tier->ts, r.tier->event_id, tier->ts, tier->event_id))) {
      tier = r.tier.get();
    }
  }
  for (size_t i = 0; i < std::size(kEventTouchpoints); ++i) {
    if (touchpoints & (1u << i)) out.touchpoints.emplace_back(kEventTouchpoints[i]);
  }
  std::sort(out.touchpoints.begin(), out.touchpoints.end());
  if (tier) out.tier = tier->tier;
  return out;
}

StatusOr<Audience::Built> Audience::Build(int64_t tenant_id, int64_t since) {
  ASSIGN_OR_RETURN(std::string tz, TimezoneOf(tenant_id));
  ASSIGN_OR_RETURN(AudienceSettings settings, Settings(tenant_id));
  audience::EngineOptions options;
  options.today = LocalDayNumber(NowMs(), tz);
  options.rfm = settings.rfm;
  options.lifecycle = settings.lifecycle;
  Built b;
  b.engine = std::make_shared<AudienceEngine>(options);
  AudienceEngine* e = b.engine.get();
  RowMap& rows = b.rows;
  std::vector<std::pair<int64_t, int64_t>> merges;  // (row, canonical)
  std::vector<audience::SegmentDef> segments;
  e->BeginBulkLoad();
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows tags, c.Query("SELECT id, group_name, name, rule FROM tags WHERE "
                                        "tenant_id = ? ORDER BY id",
                                        {tenant_id}));
    for (const Row& r : tags) {
      RETURN_IF_ERROR(e->DefineTag(audience::TagDef{r.Int(0), r.Text(1), r.Text(2),
                                                    r.IsNull(3) ? std::string() : r.Text(3)}));
    }
    ASSIGN_OR_RETURN(Rows people,
                     c.Query("SELECT id, acquired_at, first_channel_id, last_channel_id, "
                             "canonical_id FROM people WHERE tenant_id = ? ORDER BY id",
                             {tenant_id}));
    for (const Row& r : people) {
      RowAttrs& row = rows[r.Int(0)];
      row.first_seen_day = LocalDayNumber(r.Int(1), tz);
      row.first_channel = r.OptInt(2).value_or(0);
      row.last_channel = r.OptInt(3).value_or(0);
      if (!r.IsNull(4)) merges.emplace_back(r.Int(0), r.Int(4));
    }
    ASSIGN_OR_RETURN(Rows segs, c.Query("SELECT id, name, expression FROM segments WHERE "
                                        "tenant_id = ? ORDER BY id",
                                        {tenant_id}));
    for (const Row& r : segs) segments.push_back({r.Int(0), r.Text(1), r.Text(2)});
    return Status::Ok();
  }));
  if (build_pause_) build_pause_();
  // Events: their days, values and touchpoints; tiers from member_bound. Events of rows written
  // after the people were read come from the journal.
  std::vector<std::pair<int64_t, audience::EventFact>> event_facts;
  RETURN_IF_ERROR(events_.ForEachStored(tenant_id, [&](const StoredEvent& ev) -> Status {
    // The audience's own change events are records of it, not facts for it.
    if (IsSystemEventType(ev.type)) return Status::Ok();
    RowAttrs* found = rows.find(ev.person_id);
    if (!found) return Status::Ok();
    RowAttrs& row = *found;
    row.touchpoints |= TouchpointBit(ev.touchpoint);
    NoteTier(row.tier, TierOf(ev.type, ev.properties), ev.ts, ev.event_id);
    if (ev.received_at >= since) b.recent.Insert(HashEventId(ev.event_id));
    audience::EventFact f;
    f.type = ev.type;
    f.day = LocalDayNumber(ev.ts, tz);
    f.values = EventValues(ev.properties);
    event_facts.emplace_back(ev.person_id, std::move(f));
    return Status::Ok();
  }));
  for (auto& [id, row] : rows) RETURN_IF_ERROR(e->AddPerson(id, FoldRows(rows, {id})));
  for (const auto& [person, f] : event_facts) RETURN_IF_ERROR(e->AddEvent(person, f));
  event_facts.clear();
  event_facts.shrink_to_fit();
  if (build_pause_) build_pause_();
  // Orders, manual tags and inviters of people the read above saw (later ones are journaled).
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    std::unordered_map<int64_t, std::vector<std::string>> skus;
    std::unordered_map<int64_t, std::vector<std::string>> categories;
    ASSIGN_OR_RETURN(Rows lines, c.Query("SELECT order_id, sku, category FROM order_lines WHERE "
                                         "tenant_id = ? ORDER BY order_id, line_no",
                                         {tenant_id}));
    for (const Row& r : lines) {
      skus[r.Int(0)].push_back(r.Text(1));
      if (!r.IsNull(2)) categories[r.Int(0)].push_back(r.Text(2));
    }
    ASSIGN_OR_RETURN(Rows orders, c.Query("SELECT id, person_id, paid_at, total_fen, "
                                          "refunded_fen FROM orders WHERE tenant_id = ? ORDER "
                                          "BY id",
                                          {tenant_id}));
    for (const Row& r : orders) {
      if (!e->HasPerson(r.Int(1))) continue;
      audience::OrderFact o;
      o.id = r.Int(0);
      o.day = LocalDayNumber(r.Int(2), tz);
      o.amount_fen = r.Int(3);
      o.skus = std::move(skus[o.id]);
      o.categories = std::move(categories[o.id]);
      RETURN_IF_ERROR(e->AddOrder(r.Int(1), o));
      if (r.Int(4) > 0) RETURN_IF_ERROR(e->RefundOrder(r.Int(1), o.id, r.Int(4)));
    }
    ASSIGN_OR_RETURN(Rows manual, c.Query("SELECT person_id, tag_id FROM person_tags WHERE "
                                          "tenant_id = ?",
                                          {tenant_id}));
    for (const Row& r : manual) {
      if (e->HasPerson(r.Int(0))) RETURN_IF_ERROR(e->AddTag(r.Int(0), r.Int(1)));
    }
    ASSIGN_OR_RETURN(Rows inviters, c.Query("SELECT person_id, inviter_id FROM person_inviters "
                                            "WHERE tenant_id = ?",
                                            {tenant_id}));
    for (const Row& r : inviters) {
      if (e->HasPerson(r.Int(0))) RETURN_IF_ERROR(e->SetInviter(r.Int(0), r.Int(1)));
    }
    return Status::Ok();
  }));
  // Merged rows fold into their survivor, as the graph has it now; survivors get the attributes
  // folded from all their rows.
  std::vector<int64_t> survivors;
  for (const auto& [row, stored_canonical] : merges) {
    const int64_t survivor = identity_.CanonicalOf(tenant_id, row);
    if (survivor == row || !e->HasPerson(row) || !e->HasPerson(survivor)) continue;
    RETURN_IF_ERROR(e->Merge(survivor, row));
    survivors.push_back(survivor);
  }
  std::sort(survivors.begin(), survivors.end());
  survivors.erase(std::unique(survivors.begin(), survivors.end()), survivors.end());
  for (int64_t p : survivors) {
    RETURN_IF_ERROR(e->UpdateAttrs(p, FoldRows(rows, identity_.ComponentOf(tenant_id, p))));
  }
  for (const auto& s : segments) RETURN_IF_ERROR(e->DefineSegment(s));
  RETURN_IF_ERROR(e->EndBulkLoad());
  b.tz = std::move(tz);
  return b;
}

StatusOr<Audience::Built> Audience::BuildCaughtUp(int64_t tenant_id, Tenant& t,
                                                  std::unique_lock<FactGate>& exclusive) {
  // Events the build reads are known by their ids if received from a little before it started:
  // every journaled event was received after (its scope began after the drain), the margin only
  // absorbs a wall clock stepping back.
  constexpr int64_t kSlackMs = 10'000;
  for (int attempt = 1;; ++attempt) {
    int64_t since = 0;
    {
      // The facts in flight finish (their writes are durable: the build reads them); the ones that
      // begin from now on are journaled.
      std::lock_guard drain(t.gate);
      std::lock_guard lock(t.mu);
      t.journal = std::make_unique<Journal>();
      since = t.journal->since = NowMs() - kSlackMs;
    }
    StatusOr<Built> b = Build(tenant_id, since);
    if (!b.ok()) {
      std::lock_guard lock(t.mu);
      t.journal.reset();
      return b.status();
    }
    bool ambiguous = false;
    // Catch up while facts keep landing, then the last ones with them stopped.
    Journal part;
    part.since = since;
    {
      std::lock_guard lock(t.mu);
      part.entries.swap(t.journal->entries);
    }
    Replay(tenant_id, *b, part, &ambiguous);
    exclusive = std::unique_lock(t.gate);
    {
      std::lock_guard lock(t.mu);
      part.entries.clear();
      part.entries.swap(t.journal->entries);
      t.journal.reset();
    }
    Replay(tenant_id, *b, part, &ambiguous);
    // Merges made while it built (links, approvals).
    std::mutex mu;
    Sink s{*b->engine, b->rows, mu, b->tz, {}};
    RETURN_IF_ERROR(ApplyReconcile(tenant_id, s));
    if (!ambiguous) return b;
    if (attempt == 3) {
      spdlog::warn(
          "audience: tenant {}: the clock moved back during builds; some events may "
          "count twice until the next rebuild",
          tenant_id);
      return b;
    }
    exclusive.unlock();
  }
}

void Audience::Replay(int64_t tenant_id, Built& b, Journal& j, bool* ambiguous) {
  std::mutex mu;
  Sink s{*b.engine, b.rows, mu, b.tz, {}};
  for (Journal::Entry& x : j.entries) {
    switch (x.kind) {
      case Journal::Entry::Kind::kEvents: {
        if (x.r.started_at < j.since) *ambiguous = true;
        std::vector<char> skip(x.items.size(), 0);
        for (size_t i = 0; i < x.items.size(); ++i) {
          skip[i] = b.recent.Contains(HashEventId(x.items[i].event.event_id));
        }
        ApplyEvents(tenant_id, s, x.items, x.r, &skip);
        break;
      }
      case Journal::Entry::Kind::kOrder:
        ApplyOrder(tenant_id, s, x.order);
        break;
      case Journal::Entry::Kind::kRefund:
        ApplyRefund(tenant_id, s, x.order);
        break;
      case Journal::Entry::Kind::kPerson:
        ApplyPersonCreated(tenant_id, s, x.person);
        break;
      case Journal::Entry::Kind::kChannels:
        ReadChannels(tenant_id, s, x.people, true);
        break;
    }
  }
  // The live engine reported these changes as they happened.
}

Status Audience::Rebuild(int64_t tenant_id) {
  Tenant& t = TenantOf(tenant_id);
  std::lock_guard build(t.build_mu);
  return RebuildLocked(tenant_id, t);
}

Status Audience::RebuildLocked(int64_t tenant_id, Tenant& t) {
  auto start = std::chrono::steady_clock::now();
  std::unique_lock<FactGate> exclusive;
  ASSIGN_OR_RETURN(Built b, BuildCaughtUp(tenant_id, t, exclusive));
  auto e = b.engine;
  {
    std::lock_guard lock(t.mu);
    t.engine = std::move(b.engine);
    t.rows = std::move(b.rows);
    t.tz = std::move(b.tz);
  }
  exclusive.unlock();
  spdlog::info("audience: tenant {}: {} people, {} tags, {} segments in {:.2f} s", tenant_id,
               e->PeopleCount(), e->Tags().size(), e->Segments().size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return Status::Ok();
}

// ---- settings, snapshots, verification ---------------------------------------------------------

AudienceSettings DefaultAudienceSettings() {
  AudienceSettings s;
  // RFM splits each dimension at the median of the tenant's buyers (resolved at every daily tick),
  // so the matrix means "better or worse than our typical buyer" whatever the brand's rhythm.
  s.rfm.recency = {audience::RfmThreshold::Mode::kQuantile, 0, 0.5};
  s.rfm.frequency = {audience::RfmThreshold::Mode::kQuantile, 0, 0.5};
  s.rfm.monetary = {audience::RfmThreshold::Mode::kQuantile, 0, 0.5};
  return s;
}

Status CheckAudienceSettings(const AudienceSettings& s) {
  const std::pair<const char*, const audience::RfmThreshold*> dims[] = {
      {"rfm.recency", &s.rfm.recency},
      {"rfm.frequency", &s.rfm.frequency},
      {"rfm.monetary", &s.rfm.monetary}};
  for (const auto& [name, t] : dims) {
    if (t->mode == audience::RfmThreshold::Mode::kQuantile) {
      if (!(t->quantile > 0 && t->quantile < 1)) {
        return InvalidField(std::string(name) + ".quantile", "a quantile is between 0 and 1");
      }
    } else if (t->value < 0 || t->value > int64_t{1'000'000'000'000}) {
      return InvalidField(std::string(name) + ".value",
                          "a fixed threshold is 0 to 1,000,000,000,000");
    }
  }
  const auto& l = s.lifecycle;
  if (l.default_cycle_days < 1 || l.default_cycle_days > 3650) {
    return InvalidField("lifecycle.default_cycle_days", "the purchase cycle is 1 to 3650 days");
  }
  if (!(l.dormant_cycles >= 0.5 && l.dormant_cycles <= 100)) {
    return InvalidField("lifecycle.dormant_cycles", "dormant_cycles is 0.5 to 100");
  }
  if (!(l.churn_cycles > l.dormant_cycles && l.churn_cycles <= 200)) {
    return InvalidField("lifecycle.churn_cycles",
                        "churn_cycles is more than dormant_cycles, at most 200");
  }
  if (l.active_min_orders < 2 || l.active_min_orders > 1000) {
    return InvalidField("lifecycle.active_min_orders", "active_min_orders is 2 to 1000");
  }
  return Status::Ok();
}

namespace {

boost::json::object ThresholdJson(const audience::RfmThreshold& t) {
  boost::json::object o;
  if (t.mode == audience::RfmThreshold::Mode::kQuantile) {
    o["mode"] = "quantile";
    o["quantile"] = t.quantile;
  } else {
    o["mode"] = "fixed";
    o["value"] = t.value;
  }
  return o;
}

std::optional<audience::RfmThreshold> ThresholdFrom(const boost::json::value* v) {
  if (!v || !v->is_object()) return std::nullopt;
  const auto& o = v->as_object();
  audience::RfmThreshold t;
  const auto* mode = o.if_contains("mode");
  if (mode && mode->is_string() && mode->as_string() == "fixed") {
    t.mode = audience::RfmThreshold::Mode::kFixed;
    const auto* value = o.if_contains("value");
    if (!value || !value->is_int64()) return std::nullopt;
    t.value = value->as_int64();
  } else {
    t.mode = audience::RfmThreshold::Mode::kQuantile;
    const auto* q = o.if_contains("quantile");
    if (!q || !(q->is_double() || q->is_int64())) return std::nullopt;
    t.quantile = q->to_number<double>();
  }
  return t;
}

}  // namespace

std::string AudienceSettingsJson(const AudienceSettings& s) {
  boost::json::object rfm{{"recency", ThresholdJson(s.rfm.recency)},
                          {"frequency", ThresholdJson(s.rfm.frequency)},
                          {"monetary", ThresholdJson(s.rfm.monetary)}};
  boost::json::object lc{{"default_cycle_days", s.lifecycle.default_cycle_days},
                         {"dormant_cycles", s.lifecycle.dormant_cycles},
                         {"churn_cycles", s.lifecycle.churn_cycles},
                         {"active_min_orders", s.lifecycle.active_min_orders}};
  return boost::json::serialize(boost::json::object{{"rfm", rfm}, {"lifecycle", lc}});
}

// Reads what AudienceSettingsJson wrote (the stored form); anything unreadable is the default.
AudienceSettings AudienceSettingsFromJson(std::string_view text) {
  AudienceSettings s = DefaultAudienceSettings();
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) return s;
  const auto& o = v.as_object();
  if (const auto* rfm = o.if_contains("rfm"); rfm && rfm->is_object()) {
    const auto& r = rfm->as_object();
    if (auto t = ThresholdFrom(r.if_contains("recency"))) s.rfm.recency = *t;
    if (auto t = ThresholdFrom(r.if_contains("frequency"))) s.rfm.frequency = *t;
    if (auto t = ThresholdFrom(r.if_contains("monetary"))) s.rfm.monetary = *t;
  }
  if (const auto* lc = o.if_contains("lifecycle"); lc && lc->is_object()) {
    const auto& l = lc->as_object();
    if (const auto* x = l.if_contains("default_cycle_days"); x && x->is_int64()) {
      s.lifecycle.default_cycle_days = static_cast<int32_t>(x->as_int64());
    }
    if (const auto* x = l.if_contains("dormant_cycles"); x && x->is_number()) {
      s.lifecycle.dormant_cycles = x->to_number<double>();
    }
    if (const auto* x = l.if_contains("churn_cycles"); x && x->is_number()) {
      s.lifecycle.churn_cycles = x->to_number<double>();
    }
    if (const auto* x = l.if_contains("active_min_orders"); x && x->is_int64()) {
      s.lifecycle.active_min_orders = static_cast<uint32_t>(x->as_int64());
    }
  }
  return s;
}

StatusOr<AudienceSettings> Audience::Settings(int64_t tenant_id) {
  AudienceSettings out = DefaultAudienceSettings();
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(
        Rows r, c.Query("SELECT settings FROM audience_settings WHERE tenant_id = ?", {tenant_id}));
    out = r.empty() ? DefaultAudienceSettings() : AudienceSettingsFromJson(r[0].Text(0));
    return Status::Ok();
  }));
  return out;
}

StatusOr<AudienceSettings> Audience::PutSettings(int64_t tenant_id, const AudienceSettings& in) {
  RETURN_IF_ERROR(CheckAudienceSettings(in));
  const std::string text = AudienceSettingsJson(in);
  const int64_t now = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    RETURN_IF_ERROR(
        c.Exec("DELETE FROM audience_settings WHERE tenant_id = ?", {tenant_id}).status());
    return c
        .Exec("INSERT INTO audience_settings (tenant_id, settings, updated_at) VALUES (?, ?, ?)",
              {tenant_id, text, now})
        .status();
  }));
  RETURN_IF_ERROR(Rebuild(tenant_id));
  return Settings(tenant_id);
}

StatusOr<SegmentSnapshotInfo> Audience::Snapshot(int64_t tenant_id, int64_t segment_id,
                                                 const std::string& name) {
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  RETURN_IF_ERROR(CheckText(name, "name", 1, "a snapshot's name"));
  ASSIGN_OR_RETURN(AudienceSegment seg, Segment(tenant_id, segment_id));
  auto snap = e->SegmentSnapshot(segment_id);
  if (!snap.ok()) {
    return Status(ErrorCode::kNotFound, "no segment " + std::to_string(segment_id), "id");
  }
  std::vector<int64_t> members = e->Members(*snap);
  std::string text;
  text.reserve(members.size() * 8);
  for (size_t i = 0; i < members.size(); ++i) {
    if (i) text += ',';
    text += std::to_string(members[i]);
  }
  SegmentSnapshotInfo out{0, segment_id, name, seg.expression, members.size(), NowMs()};
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("INSERT INTO segment_snapshots (tenant_id, segment_id, name, "
                                     "expression, people, members, created_at) VALUES (?, ?, ?, "
                                     "?, ?, ?, ?) RETURNING id",
                                     {tenant_id, segment_id, name, seg.expression,
                                      static_cast<int64_t>(out.people), text, out.created_at}));
    out.id = r.at(0).Int(0);
    return Status::Ok();
  }));
  return out;
}

StatusOr<std::vector<SegmentSnapshotInfo>> Audience::Snapshots(int64_t tenant_id,
                                                               int64_t segment_id) {
  std::vector<SegmentSnapshotInfo> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    out.clear();
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, segment_id, name, expression, people, created_at "
                                     "FROM segment_snapshots WHERE tenant_id = ? AND segment_id = "
                                     "? ORDER BY id DESC",
                                     {tenant_id, segment_id}));
    for (const Row& row : r) {
      out.push_back({row.Int(0), row.Int(1), row.Text(2), row.Text(3),
                     static_cast<uint64_t>(row.Int(4)), row.Int(5)});
    }
    return Status::Ok();
  }));
  return out;
}

StatusOr<std::vector<int64_t>> Audience::SnapshotMembers(int64_t tenant_id, int64_t snapshot_id) {
  std::vector<int64_t> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    out.clear();
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT members FROM segment_snapshots WHERE tenant_id = ? "
                                     "AND id = ?",
                                     {tenant_id, snapshot_id}));
    if (r.empty()) {
      return Status(ErrorCode::kNotFound, "no snapshot " + std::to_string(snapshot_id), "id");
    }
    const std::string stored = r[0].Text(0);
    std::string_view text = stored;
    while (!text.empty()) {
      size_t comma = text.find(',');
      std::string_view part = text.substr(0, comma);
      int64_t v = 0;
      std::from_chars(part.data(), part.data() + part.size(), v);
      out.push_back(v);
      if (comma == std::string_view::npos) break;
      text.remove_prefix(comma + 1);
    }
    return Status::Ok();
  }));
  return out;
}

StatusOr<AudienceVerifyReport> Audience::Verify(int64_t tenant_id) {
  auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> build;
  ASSIGN_OR_RETURN(auto live, LockDefinitions(tenant_id, build));
  Tenant& t = TenantOf(tenant_id);
  // Built while facts keep landing, caught up, and compared with facts stopped.
  std::unique_lock<FactGate> exclusive;
  ASSIGN_OR_RETURN(Built b, BuildCaughtUp(tenant_id, t, exclusive));
  {
    std::lock_guard lock(t.mu);
    live = t.engine;
  }
  // Quantile thresholds move at the daily tick: compare with the live engine's.
  b.engine->PinRfmThresholds(live->ResolvedRfmThresholds());
  AudienceVerifyReport out;
  out.differences = live->Diff(*b.engine, 20);
  out.ok = out.differences.empty();
  out.people = live->PeopleCount();
  exclusive.unlock();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

StatusOr<AudienceVerifyReport> Audience::CheckAgainstStore(int64_t tenant_id) {
  auto start = std::chrono::steady_clock::now();
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  ASSIGN_OR_RETURN(std::string tz, TimezoneOf(tenant_id));
  const int64_t now = NowMs();
  audience::SqlContext ctx;
  ctx.dialect = store_.dialect() == store::Dialect::kPostgres ? audience::SqlDialect::kPostgres
                                                              : audience::SqlDialect::kSqlite;
  ctx.tenant_id = tenant_id;
  ctx.today = e->today();
  ctx.tz_offset_ms = int64_t{LocalDayNumber(now, tz)} * 86'400'000 - StartOfLocalDay(now, tz);
  ctx.tags = e->Tags();
  ctx.rfm = e->ResolvedRfmThresholds();
  ctx.lifecycle = e->options().lifecycle;
  AudienceVerifyReport out;
  out.people = e->PeopleCount();
  auto check = [&](const std::string& what, const StatusOr<audience::Expr>& x,
                   const StatusOr<audience::PersonSet>& members) -> Status {
    if (!x.ok() || !members.ok()) {
      out.differences.push_back(what + ": cannot be evaluated");
      return Status::Ok();
    }
    auto sql = audience::ExpressionToSql(*x, ctx);
    if (!sql.ok()) {
      out.differences.push_back(what + ": " + sql.status().message());
      return Status::Ok();
    }
    std::vector<int64_t> stored;
    RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
      stored.clear();
      ASSIGN_OR_RETURN(Rows r, c.Query(*sql));
      for (const Row& row : r) stored.push_back(row.Int(0));
      return Status::Ok();
    }));
    std::vector<int64_t> live = e->Members(*members);
    if (live != stored) {
      std::vector<int64_t> only_live, only_store;
      std::set_difference(live.begin(), live.end(), stored.begin(), stored.end(),
                          std::back_inserter(only_live));
      std::set_difference(stored.begin(), stored.end(), live.begin(), live.end(),
                          std::back_inserter(only_store));
      std::string d = what + ": " + std::to_string(live.size()) + " members in memory, " +
                      std::to_string(stored.size()) + " by the store";
      if (!only_live.empty())
        d += "; e.g. person " + std::to_string(only_live[0]) + " only in memory";
      if (!only_store.empty())
        d += "; e.g. person " + std::to_string(only_store[0]) + " only by the store";
      out.differences.push_back(std::move(d));
    }
    return Status::Ok();
  };
  for (const auto& sg : e->Segments()) {
    RETURN_IF_ERROR(check("segment " + std::to_string(sg.id) + " (" + sg.name + ")",
                          e->Parse(sg.expression), e->SegmentSnapshot(sg.id)));
  }
  for (const auto& tg : e->Tags()) {
    audience::Expr x;
    x.kind = audience::Kind::kTag;
    x.id = tg.id;
    x.name = tg.group.empty() ? tg.name : tg.group + "/" + tg.name;
    RETURN_IF_ERROR(
        check("tag " + std::to_string(tg.id) + " (" + x.name + ")", x, e->TagMembers(tg.id)));
  }
  out.ok = out.differences.empty();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

// A definition changes the engine inside its write: if that write does not commit, the engine holds
// what the store does not, so the tenant's engine is dropped (rebuilt on next use).
void Audience::DropEngineOnRollback(Conn& c, int64_t tenant_id) {
  c.OnRollback([this, tenant_id](Conn&) {
    Tenant& t = TenantOf(tenant_id);
    std::lock_guard lock(t.mu);
    t.engine.reset();
  });
}

// ---- facts -------------------------------------------------------------------------------------

std::shared_ptr<void> Audience::BeginFact(int64_t tenant_id) {
  if (fact_scopes++ > 0) {
    return std::shared_ptr<void>(nullptr, [](void*) { --fact_scopes; });
  }
  Tenant& t = TenantOf(tenant_id);
  t.gate.lock_shared();
  return std::shared_ptr<void>(&t, [](void* p) {
    static_cast<Tenant*>(p)->gate.unlock_shared();
    --fact_scopes;
  });
}

template <typename Fn, typename J>
void Audience::ApplyLive(int64_t tenant_id, Fn&& fn, J&& journal) {
  // Callers outside a fact scope (no service wired it) get one here.
  std::shared_ptr<void> scope = fact_scopes == 0 ? BeginFact(tenant_id) : nullptr;
  Tenant& t = TenantOf(tenant_id);
  std::shared_ptr<AudienceEngine> e;
  std::string tz;
  bool journaling = false;
  {
    std::lock_guard lock(t.mu);
    e = t.engine;
    tz = t.tz;
    journaling = t.journal != nullptr;
  }
  if (e) {
    Sink s{*e, t.rows, t.mu, std::move(tz), {}};
    fn(s);
    Emit(tenant_id, s.d);
  }
  if (journaling) {
    std::lock_guard lock(t.mu);
    if (t.journal) journal(*t.journal);
  }
  // No engine and no build under way: the engine built on next use reads the fact from the store
  // (not built here: a build waits for the facts in flight, this one among them).
}

void Audience::RefreshPerson(Sink& s, int64_t person, std::vector<int64_t> rows) {
  PersonAttrs a;
  {
    std::lock_guard lock(s.mu);
    a = FoldRows(s.rows, std::move(rows));
  }
  Status st =
      s.e.HasPerson(person) ? s.e.UpdateAttrs(person, a, &s.d) : s.e.AddPerson(person, a, &s.d);
  if (!st.ok()) spdlog::warn("audience: person {}: {}", person, st.ToString());
}

void Audience::FoldPerson(int64_t tenant_id, Sink& s, int64_t person) {
  std::vector<int64_t> rows = identity_.ComponentOf(tenant_id, person);
  bool merged = false;
  for (int64_t m : rows) {
    if (m == person || !s.e.HasPerson(m)) continue;
    if (!s.e.HasPerson(person)) ApplyPersonCreated(tenant_id, s, person);
    Status st = s.e.Merge(person, m, &s.d);
    if (!st.ok()) {
      spdlog::warn("audience: tenant {}: merge {} into {}: {}", tenant_id, m, person,
                   st.ToString());
      continue;
    }
    merged = true;
  }
  if (merged) RefreshPerson(s, person, std::move(rows));
}

void Audience::ApplyEvents(int64_t tenant_id, Sink& s, const std::vector<EventItem>& items,
                           const IngestResult& r, const std::vector<char>* skip,
                           std::vector<int64_t>* deferred) {
  std::vector<int64_t> moved;  // people whose channels may have moved
  // The events in runs between merges: a merge folds the people it joins before the events after
  // it, and after the events before it, as they came.
  std::vector<size_t> run;
  for (size_t i = 0; i < items.size() && i < r.results.size(); ++i) {
    const EventResult& res = r.results[i];
    if (res.outcome != EventOutcome::kAccepted || (skip && (*skip)[i])) continue;
    if (res.link == LinkState::kMerged) {
      ApplyEventRun(tenant_id, s, items, r, run);
      run.clear();
      FoldPerson(tenant_id, s, res.person_id);
    }
    run.push_back(i);
    if (res.channel_id) moved.push_back(res.person_id);
  }
  ApplyEventRun(tenant_id, s, items, r, run);
  // Channel touches move the people rows' channels (the last-touch rule is the store's): read
  // them back for the people touched.
  if (moved.empty()) return;
  if (deferred) {
    deferred->insert(deferred->end(), moved.begin(), moved.end());
    return;
  }
  ReadChannels(tenant_id, s, std::move(moved), true);
}

void Audience::ApplyEventRun(int64_t tenant_id, Sink& s, const std::vector<EventItem>& items,
                             const IngestResult& r, const std::vector<size_t>& run) {
  if (run.empty()) return;
  // Every ingest thread applies its batch here: the rows under one lock, then the engine's people
  // and events under one lock acquisition each, instead of several per event.
  struct Touched {
    int64_t person = 0;
    bool refresh = false;    // its rows' attributes changed
    bool self_only = false;  // ...and it is a new person of one row (no need to ask the graph)
  };
  std::vector<Touched> touched;
  boost::unordered_flat_map<int64_t, size_t> touched_at;
  touched_at.reserve(run.size());
  // The facts are written over those of the thread's last run, whose strings and value lists
  // keep their memory (a fresh vector of them was several allocations an event). Runs do not
  // nest: nothing below calls back into the audience.
  thread_local std::vector<audience::Fact> pool;
  size_t fact_count = 0;
  std::vector<size_t> fact_item;  // the item of each fact
  {
    std::lock_guard lock(s.mu);
    for (size_t i : run) s.rows.Prefetch(r.results[i].person_id);
    for (size_t i : run) {
      const EventResult& res = r.results[i];
      const EventIn& ev = items[i].event;
      const int64_t person = res.person_id;
      const Day day = LocalDayNumber(ev.ts, s.tz);
      auto [found, fresh] = s.rows.try_emplace(person);
      RowAttrs& row = *found;
      bool changed = false;
      if (fresh) {
        row.first_seen_day = day;
        row.first_channel = row.last_channel = res.channel_id.value_or(0);
      }
      if (const uint8_t bit = TouchpointBit(ev.touchpoint); bit && !(row.touchpoints & bit)) {
        row.touchpoints |= bit;
        changed = true;
      }
      // A later event naming the same level still changes the row's latest one, which may now be
      // the latest of the person's rows.
      if (NoteTier(row.tier, TierOf(ev.type, ev.properties), ev.ts, ev.event_id)) changed = true;
      auto [at, first] = touched_at.try_emplace(person, touched.size());
      if (first) touched.push_back({person, false, false});
      Touched& t = touched[at->second];
      if (fresh) {
        t.self_only = !t.refresh && res.link != LinkState::kMerged;
        t.refresh = true;
      } else if (changed) {
        t.refresh = true;
        t.self_only = false;
      }
      if (fact_count == pool.size()) pool.emplace_back();
      audience::Fact& f = pool[fact_count++];  // only event facts are made here
      f.kind = audience::Fact::Kind::kEvent;
      f.person = person;
      f.event.type = ev.type;
      f.event.day = day;
      f.event.count = 1;
      if (ev.integer_properties) {
        f.event.values.assign(ev.integer_properties->begin(), ev.integer_properties->end());
      } else {
        f.event.values = EventValues(ev.properties);
      }
      fact_item.push_back(i);
    }
  }
  const std::span<const audience::Fact> facts(pool.data(), fact_count);
  // The people to refresh: those whose rows changed, and any the engine does not have yet.
  std::vector<int64_t> people;
  people.reserve(touched.size());
  for (const Touched& t : touched) people.push_back(t.person);
  const std::vector<char> has = s.e.HasPeople(people);
  std::vector<std::pair<int64_t, std::vector<int64_t>>> rows_of;
  for (size_t k = 0; k < touched.size(); ++k) {
    const Touched& t = touched[k];
    if (!t.refresh && has[k]) continue;
    rows_of.emplace_back(t.person, t.refresh && t.self_only && !has[k]
                                       ? std::vector<int64_t>{t.person}
                                       : identity_.ComponentOf(tenant_id, t.person));
  }
  if (!rows_of.empty()) {
    std::vector<std::pair<int64_t, PersonAttrs>> attrs;
    attrs.reserve(rows_of.size());
    {
      std::lock_guard lock(s.mu);
      for (auto& [person, rows] : rows_of) attrs.emplace_back(person, FoldRows(s.rows, rows));
    }
    Status st = s.e.UpsertAttrs(attrs, &s.d);
    if (!st.ok()) spdlog::warn("audience: tenant {}: people: {}", tenant_id, st.ToString());
  }
  for (size_t done = 0; done < facts.size();) {
    size_t applied = 0;
    Status st = s.e.ApplyBatch(facts.subspan(done), &s.d, &applied);
    done += applied;
    if (st.ok()) break;
    spdlog::warn("audience: tenant {}: event {}: {}", tenant_id,
                 items[fact_item[done]].event.event_id, st.ToString());
    ++done;  // the failed one is skipped, as it was alone
  }
}

void Audience::ReadChannels(int64_t tenant_id, Sink& s, std::vector<int64_t> moved,
                            bool wait_for_store) {
  std::sort(moved.begin(), moved.end());
  moved.erase(std::unique(moved.begin(), moved.end()), moved.end());
  std::vector<std::tuple<int64_t, int64_t, int64_t>> channels;
  auto read = [&](Conn& c) -> Status {
    channels.clear();
    for (int64_t p : moved) {
      ASSIGN_OR_RETURN(Rows r2, c.Query("SELECT first_channel_id, last_channel_id FROM people "
                                        "WHERE tenant_id = ? AND id = ?",
                                        {tenant_id, p}));
      if (!r2.empty())
        channels.emplace_back(p, r2[0].OptInt(0).value_or(0), r2[0].OptInt(1).value_or(0));
    }
    return Status::Ok();
  };
  Status st = wait_for_store ? store_.Read(read) : store_.ReadNow(read);
  if (!st.ok()) {
    spdlog::warn("audience: tenant {}: reading channels: {}", tenant_id, st.ToString());
    return;
  }
  for (const auto& [p, first, last] : channels) {
    bool changed = false;
    {
      std::lock_guard lock(s.mu);
      RowAttrs& row = s.rows[p];
      if (row.first_channel != first || row.last_channel != last) {
        row.first_channel = first;
        row.last_channel = last;
        changed = true;
      }
    }
    if (changed && s.e.HasPerson(p)) RefreshPerson(s, p, identity_.ComponentOf(tenant_id, p));
  }
}

void Audience::OnEvents(int64_t tenant_id, const std::vector<EventItem>& items,
                        const IngestResult& r) {
  std::vector<int64_t> moved;
  ApplyLive(
      tenant_id, [&](Sink& s) { ApplyEvents(tenant_id, s, items, r, nullptr, &moved); },
      [&](Journal& j) {
        Journal::Entry x;
        x.kind = Journal::Entry::Kind::kEvents;
        x.r.started_at = r.started_at;
        for (size_t i = 0; i < items.size() && i < r.results.size(); ++i) {
          if (r.results[i].outcome != EventOutcome::kAccepted) continue;
          x.items.push_back(items[i]);
          x.r.results.push_back(r.results[i]);
        }
        j.entries.push_back(std::move(x));
      });
  if (moved.empty()) return;
  const uint64_t ticket = events_.OwedTicket();
  Tenant& t = TenantOf(tenant_id);
  std::lock_guard lock(t.mu);
  if (!t.channel_moves.empty() && t.channel_moves.back().first == ticket) {
    auto& last = t.channel_moves.back().second;
    last.insert(last.end(), moved.begin(), moved.end());
  } else {
    t.channel_moves.emplace_back(ticket, std::move(moved));
  }
}

void Audience::ApplyPersonCreated(int64_t tenant_id, Sink& s, int64_t person_id) {
  if (s.e.HasPerson(person_id)) return;
  std::optional<PersonAttrs> a;
  Status st = store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT acquired_at, first_channel_id, last_channel_id FROM "
                                     "people WHERE tenant_id = ? AND id = ?",
                                     {tenant_id, person_id}));
    if (r.empty()) return Status::Ok();
    a = PersonAttrs{};
    a->first_seen_day = LocalDayNumber(r[0].Int(0), s.tz);
    a->first_channel = r[0].OptInt(1).value_or(0);
    a->last_channel = r[0].OptInt(2).value_or(0);
    return Status::Ok();
  });
  if (!st.ok() || !a) return;
  {
    std::lock_guard lock(s.mu);
    RowAttrs& row = s.rows[person_id];
    row.first_seen_day = a->first_seen_day;
    row.first_channel = a->first_channel;
    row.last_channel = a->last_channel;
  }
  RefreshPerson(s, person_id, identity_.ComponentOf(tenant_id, person_id));
}

void Audience::OnPersonCreated(int64_t tenant_id, int64_t person_id) {
  ApplyLive(
      tenant_id, [&](Sink& s) { ApplyPersonCreated(tenant_id, s, person_id); },
      [&](Journal& j) {
        Journal::Entry x;
        x.kind = Journal::Entry::Kind::kPerson;
        x.person = person_id;
        j.entries.push_back(std::move(x));
      });
}

void Audience::ApplyOrder(int64_t tenant_id, Sink& s, const Order& order) {
  const int64_t person = identity_.CanonicalOf(tenant_id, order.person_id);
  if (!s.e.HasPerson(person)) ApplyPersonCreated(tenant_id, s, person);
  FoldPerson(tenant_id, s, person);
  audience::OrderFact o;
  o.id = order.id;
  o.day = LocalDayNumber(order.paid_at, s.tz);
  o.amount_fen = order.total_fen;
  for (const auto& l : order.lines) {
    o.skus.push_back(l.sku);
    if (l.category) o.categories.push_back(*l.category);
  }
  Status st = s.e.AddOrder(person, o, &s.d);
  if (!st.ok() && st.code() != ErrorCode::kAlreadyExists) {
    spdlog::warn("audience: tenant {}: order {}: {}", tenant_id, order.id, st.ToString());
  }
}

void Audience::OnOrder(int64_t tenant_id, const Order& order) {
  ApplyLive(
      tenant_id, [&](Sink& s) { ApplyOrder(tenant_id, s, order); },
      [&](Journal& j) {
        Journal::Entry x;
        x.kind = Journal::Entry::Kind::kOrder;
        x.order = order;
        j.entries.push_back(std::move(x));
      });
}

// Refunds give the order's refunded total: the engine takes what it has not counted yet, so a
// refund applied twice (live and in a build's replay) counts once.
void Audience::ApplyRefund(int64_t tenant_id, Sink& s, const Order& order) {
  if (order.refunded_fen <= 0) return;  // a free order refunded: nothing counted changes
  const int64_t person = identity_.CanonicalOf(tenant_id, order.person_id);
  FoldPerson(tenant_id, s, person);
  auto facts = s.e.FactsOf(person);
  if (!facts.ok()) return;
  int64_t counted = -1;
  for (const auto& o : facts->orders) {
    if (o.id == order.id) counted = o.refunded_fen;
  }
  if (counted < 0 || counted >= order.refunded_fen) return;
  Status st = s.e.RefundOrder(person, order.id, order.refunded_fen - counted, &s.d);
  if (!st.ok())
    spdlog::warn("audience: tenant {}: refund {}: {}", tenant_id, order.id, st.ToString());
}

void Audience::OnRefund(int64_t tenant_id, const Order& order) {
  ApplyLive(
      tenant_id, [&](Sink& s) { ApplyRefund(tenant_id, s, order); },
      [&](Journal& j) {
        Journal::Entry x;
        x.kind = Journal::Entry::Kind::kRefund;
        x.order = order;
        j.entries.push_back(std::move(x));
      });
}

Status Audience::ApplyReconcile(int64_t tenant_id, Sink& s) {
  std::vector<int64_t> rows;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    rows.clear();
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id FROM people WHERE tenant_id = ? AND canonical_id "
                                     "IS NOT NULL",
                                     {tenant_id}));
    for (const Row& row : r) rows.push_back(row.Int(0));
    return Status::Ok();
  }));
  for (int64_t row : rows) {
    if (!s.e.HasPerson(row)) continue;
    const int64_t survivor = identity_.CanonicalOf(tenant_id, row);
    if (survivor == row) continue;
    FoldPerson(tenant_id, s, survivor);
  }
  return Status::Ok();
}

Status Audience::Reconcile(int64_t tenant_id) {
  Status out = Status::Ok();
  ApplyLive(
      tenant_id, [&](Sink& s) { out = ApplyReconcile(tenant_id, s); }, [](Journal&) {});
  return out;
}

// ---- definitions -------------------------------------------------------------------------------

StatusOr<std::vector<AudienceTag>> Audience::Tags(int64_t tenant_id) {
  auto e = EngineOf(tenant_id);
  std::vector<AudienceTag> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    out.clear();
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, group_name, name, rule, created_at, updated_at "
                                     "FROM tags WHERE tenant_id = ? ORDER BY group_name, name",
                                     {tenant_id}));
    for (const Row& row : r) {
      AudienceTag t;
      t.id = row.Int(0);
      t.group = row.Text(1);
      t.name = row.Text(2);
      if (!row.IsNull(3)) t.rule = row.Text(3);
      t.created_at = row.Int(4);
      t.updated_at = row.Int(5);
      out.push_back(std::move(t));
    }
    return Status::Ok();
  }));
  for (AudienceTag& t : out) t.people = e ? OrZero(e->TagCount(t.id)) : 0;
  return out;
}

StatusOr<AudienceTag> Audience::CreateTag(int64_t tenant_id, const NewTag& in) {
  RETURN_IF_ERROR(CheckText(in.name, "name", 1, "a tag's name"));
  RETURN_IF_ERROR(CheckText(in.group, "group", 0, "a tag group's name"));
  if (in.name.find('/') != std::string::npos || in.group.find('/') != std::string::npos) {
    return InvalidField(in.name.find('/') != std::string::npos ? "name" : "group",
                        "tag and group names may not contain '/' (tag(\"group/name\") uses it)");
  }
  std::unique_lock<std::mutex> build;
  ASSIGN_OR_RETURN(auto e, LockDefinitions(tenant_id, build));
  AudienceTag out;
  out.group = in.group;
  out.name = in.name;
  if (in.rule) {
    // Checked against the tags as they are (the tag itself cannot be referred to before it exists).
    auto parsed = e->Parse(*in.rule);
    if (!parsed.ok()) return WithField(parsed.status(), "rule");
    out.rule = audience::PrintExpression(*parsed);
  }
  const int64_t now = NowMs();
  Deltas d;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows dup, c.Query("SELECT id FROM tags WHERE tenant_id = ? AND group_name = ? "
                                       "AND name = ?",
                                       {tenant_id, in.group, in.name}));
    if (!dup.empty()) {
      return Status(ErrorCode::kAlreadyExists,
                    "a tag named '" + in.name + "' exists in this group already", "name");
    }
    store::Value rule = out.rule ? store::Value(*out.rule) : store::Value(nullptr);
    ASSIGN_OR_RETURN(Rows r, c.Query("INSERT INTO tags (tenant_id, group_name, name, rule, source, "
                                     "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                                     "RETURNING id",
                                     {tenant_id, in.group, in.name, rule,
                                      std::string(out.rule ? "rule" : "manual"), now, now}));
    out.id = r.at(0).Int(0);
    d.clear();
    Status s = e->DefineTag(audience::TagDef{out.id, in.group, in.name, out.rule.value_or("")}, &d);
    if (!s.ok()) return WithField(s, "rule");
    DropEngineOnRollback(c, tenant_id);
    return Status::Ok();
  }));
  deltas_ += d.size();
  out.created_at = out.updated_at = now;
  out.people = OrZero(e->TagCount(out.id));
  return out;
}

Status Audience::DeleteTag(int64_t tenant_id, int64_t tag_id) {
  std::unique_lock<std::mutex> build;
  ASSIGN_OR_RETURN(auto e, LockDefinitions(tenant_id, build));
  Deltas d;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(
        Rows r, c.Query("SELECT id FROM tags WHERE tenant_id = ? AND id = ?", {tenant_id, tag_id}));
    if (r.empty()) return Status(ErrorCode::kNotFound, "no tag " + std::to_string(tag_id), "id");
    RETURN_IF_ERROR(
        c.Exec("DELETE FROM person_tags WHERE tenant_id = ? AND tag_id = ?", {tenant_id, tag_id})
            .status());
    RETURN_IF_ERROR(
        c.Exec("DELETE FROM tags WHERE tenant_id = ? AND id = ?", {tenant_id, tag_id}).status());
    d.clear();
    RETURN_IF_ERROR(e->DropTag(tag_id, &d));
    DropEngineOnRollback(c, tenant_id);
    return Status::Ok();
  }));
  deltas_ += d.size();
  return Status::Ok();
}

StatusOr<TagMembersResult> Audience::ChangeTagMembers(int64_t tenant_id, int64_t tag_id,
                                                      const TagMembersChange& in) {
  std::unique_lock<std::mutex> build;
  ASSIGN_OR_RETURN(auto e, LockDefinitions(tenant_id, build));
  if (in.add.size() > kMaxMembersChange || in.remove.size() > kMaxMembersChange) {
    return InvalidField(in.add.size() > kMaxMembersChange ? "add" : "remove",
                        "at most 10,000 people per call");
  }
  TagMembersResult out;
  out.tag_id = tag_id;
  std::vector<int64_t> add, remove;
  auto canonical = [&](const std::vector<int64_t>& people, std::vector<int64_t>& into) {
    for (int64_t p : people) {
      const int64_t c = identity_.CanonicalOf(tenant_id, p);
      if (e->HasPerson(c)) {
        into.push_back(c);
      } else {
        ++out.skipped;
      }
    }
  };
  canonical(in.add, add);
  canonical(in.remove, remove);
  if (in.segment_id) {
    auto snap = e->SegmentSnapshot(*in.segment_id);
    if (!snap.ok()) {
      return Status(ErrorCode::kNotFound, "no segment " + std::to_string(*in.segment_id),
                    "segment_id");
    }
    for (int64_t p : e->Members(*snap)) add.push_back(p);
  }
  const int64_t now = NowMs();
  Deltas d;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT rule FROM tags WHERE tenant_id = ? AND id = ?",
                                     {tenant_id, tag_id}));
    if (r.empty()) return Status(ErrorCode::kNotFound, "no tag " + std::to_string(tag_id), "id");
    if (!r[0].IsNull(0)) {
      return InvalidField("tag_id",
                          "a rule tag's members are computed from its rule; only manual "
                          "tags take people");
    }
    d.clear();
    for (int64_t p : add) {
      RETURN_IF_ERROR(c.Exec("INSERT INTO person_tags (tenant_id, tag_id, person_id, created_at) "
                             "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                             {tenant_id, tag_id, p, now})
                          .status());
    }
    for (int64_t p : remove) {
      // The tag may be on any row of a merged person.
      for (int64_t row : identity_.ComponentOf(tenant_id, p)) {
        RETURN_IF_ERROR(c.Exec("DELETE FROM person_tags WHERE tenant_id = ? AND tag_id = ? AND "
                               "person_id = ?",
                               {tenant_id, tag_id, row})
                            .status());
      }
    }
    size_t before = d.size();
    for (int64_t p : add) RETURN_IF_ERROR(e->AddTag(p, tag_id, &d));
    for (int64_t p : remove) RETURN_IF_ERROR(e->RemoveTag(p, tag_id, &d));
    out.changed = 0;
    for (size_t k = before; k < d.size(); ++k) {
      if ((d[k].kind == audience::DeltaKind::kTagAdded ||
           d[k].kind == audience::DeltaKind::kTagRemoved) &&
          d[k].id == tag_id) {
        ++out.changed;
      }
    }
    DropEngineOnRollback(c, tenant_id);
    return Status::Ok();
  }));
  Emit(tenant_id, d);
  return out;
}

StatusOr<std::vector<AudienceSegment>> Audience::Segments(int64_t tenant_id) {
  auto e = EngineOf(tenant_id);
  std::vector<AudienceSegment> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    out.clear();
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, name, expression, created_at, updated_at FROM "
                                     "segments WHERE tenant_id = ? ORDER BY id",
                                     {tenant_id}));
    for (const Row& row : r) {
      out.push_back({row.Int(0), row.Text(1), row.Text(2), 0, row.Int(3), row.Int(4)});
    }
    return Status::Ok();
  }));
  for (AudienceSegment& s : out) s.people = e ? OrZero(e->SegmentCount(s.id)) : 0;
  return out;
}

StatusOr<AudienceSegment> Audience::Segment(int64_t tenant_id, int64_t segment_id) {
  ASSIGN_OR_RETURN(auto all, Segments(tenant_id));
  for (auto& s : all) {
    if (s.id == segment_id) return s;
  }
  return Status(ErrorCode::kNotFound, "no segment " + std::to_string(segment_id), "id");
}

StatusOr<AudienceSegment> Audience::CreateSegment(int64_t tenant_id, const NewSegment& in) {
  RETURN_IF_ERROR(CheckText(in.name, "name", 1, "a segment's name"));
  std::unique_lock<std::mutex> build;
  ASSIGN_OR_RETURN(auto e, LockDefinitions(tenant_id, build));
  if (in.expression.has_value() == in.json.has_value()) {
    return Status(ErrorCode::kMissingField, "give the segment's 'expression' or its 'json' form",
                  "expression");
  }
  StatusOr<audience::Expr> parsed =
      in.expression ? e->Parse(*in.expression) : audience::ParseExpressionJson(*in.json, e.get());
  if (!parsed.ok()) return WithField(parsed.status(), in.expression ? "expression" : "json");
  AudienceSegment out;
  out.name = in.name;
  out.expression = audience::PrintExpression(*parsed);
  const int64_t now = NowMs();
  Deltas d;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows dup, c.Query("SELECT id FROM segments WHERE tenant_id = ? AND name = ?",
                                       {tenant_id, in.name}));
    if (!dup.empty()) {
      return Status(ErrorCode::kAlreadyExists, "a segment named '" + in.name + "' exists already",
                    "name");
    }
    ASSIGN_OR_RETURN(Rows r, c.Query("INSERT INTO segments (tenant_id, name, expression, "
                                     "created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                                     {tenant_id, in.name, out.expression, now, now}));
    out.id = r.at(0).Int(0);
    d.clear();
    RETURN_IF_ERROR(e->DefineSegment(audience::SegmentDef{out.id, in.name, out.expression}, &d));
    DropEngineOnRollback(c, tenant_id);
    return Status::Ok();
  }));
  deltas_ += d.size();
  out.created_at = out.updated_at = now;
  out.people = OrZero(e->SegmentCount(out.id));
  return out;
}

Status Audience::DeleteSegment(int64_t tenant_id, int64_t segment_id) {
  std::unique_lock<std::mutex> build;
  ASSIGN_OR_RETURN(auto e, LockDefinitions(tenant_id, build));
  return store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id FROM segments WHERE tenant_id = ? AND id = ?",
                                     {tenant_id, segment_id}));
    if (r.empty()) {
      return Status(ErrorCode::kNotFound, "no segment " + std::to_string(segment_id), "id");
    }
    RETURN_IF_ERROR(
        c.Exec("DELETE FROM segments WHERE tenant_id = ? AND id = ?", {tenant_id, segment_id})
            .status());
    RETURN_IF_ERROR(e->DropSegment(segment_id));
    DropEngineOnRollback(c, tenant_id);
    return Status::Ok();
  });
}

// ---- reads -------------------------------------------------------------------------------------

StatusOr<CountAnswer> Audience::Count(int64_t tenant_id,
                                      const std::optional<std::string>& expression,
                                      const std::optional<std::string>& json) {
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  if (expression.has_value() == json.has_value()) {
    return Status(ErrorCode::kMissingField, "give an 'expression' or its 'json' form",
                  "expression");
  }
  StatusOr<audience::Expr> parsed =
      expression ? e->Parse(*expression) : audience::ParseExpressionJson(*json, e.get());
  if (!parsed.ok()) return WithField(parsed.status(), expression ? "expression" : "json");
  CountAnswer out;
  ASSIGN_OR_RETURN(out.people, e->Count(*parsed));
  out.expression = audience::PrintExpression(*parsed);
  out.json = audience::PrintExpressionJson(*parsed);
  return out;
}

StatusOr<audience::MembersPage> Audience::SegmentMembers(int64_t tenant_id, int64_t segment_id,
                                                         int64_t after, size_t limit) {
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  auto page = e->SegmentMembers(segment_id, after, limit);
  if (!page.ok() && page.status().code() == ErrorCode::kNotFound) {
    return Status(ErrorCode::kNotFound, "no segment " + std::to_string(segment_id), "id");
  }
  return page;
}

StatusOr<std::vector<int64_t>> Audience::AllSegmentMembers(int64_t tenant_id, int64_t segment_id) {
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  auto snap = e->SegmentSnapshot(segment_id);
  if (!snap.ok()) {
    return Status(ErrorCode::kNotFound, "no segment " + std::to_string(segment_id), "id");
  }
  return e->Members(*snap);
}

Audience::RfmAnswer Audience::Rfm(int64_t tenant_id) {
  RfmAnswer out;
  if (auto e = EngineOf(tenant_id)) {
    out.thresholds = e->ResolvedRfmThresholds();
    out.cells = e->RfmMatrix();
  }
  return out;
}

std::array<uint64_t, audience::kStageCount> Audience::Lifecycle(int64_t tenant_id) {
  if (auto e = EngineOf(tenant_id)) return e->StageCounts();
  return {};
}

Audience::KocAnswer Audience::Koc(int64_t tenant_id, size_t limit, double top_fraction) {
  KocAnswer out;
  if (auto e = EngineOf(tenant_id)) {
    out.items = e->TopKoc(limit);
    out.share = e->TopGmvShare(top_fraction);
  }
  return out;
}

StatusOr<std::pair<int64_t, audience::PersonView>> Audience::PersonOf(int64_t tenant_id,
                                                                      int64_t person_id) {
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  const int64_t person = identity_.CanonicalOf(tenant_id, person_id);
  auto v = e->View(person);
  if (!v.ok()) return Status(ErrorCode::kNotFound, "no person " + std::to_string(person_id));
  return std::make_pair(person, std::move(v).value());
}

}  // namespace siyu::domain
