#include "domain/people/audience.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <unordered_set>

#include "common/time.h"

namespace siyu::domain {

using audience::AudienceEngine;
using audience::Day;
using audience::Deltas;
using audience::PersonAttrs;
using store::Conn;
using store::Row;
using store::Rows;

namespace {

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
std::string TierOf(const EventIn& e) {
  if (e.type != "member_bound") return {};
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(e.properties, ec);
  if (ec || !v.is_object()) return {};
  const auto* level = v.as_object().if_contains("level");
  return level && level->is_string() ? std::string(level->as_string()) : std::string();
}

}  // namespace

// What the service keeps per tenant beside its engine: the time zone, and each live person's
// attributes as last given to the engine (UpdateAttrs takes them whole).
struct Audience::Tenant {
  std::mutex mu;  // guards everything below except the engine's own state
  std::shared_ptr<AudienceEngine> engine;
  std::string tz;
  std::unordered_map<int64_t, PersonAttrs> attrs;
  std::mutex build_mu;  // one build at a time
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
      auto e = EngineOf(p.tenant_id);
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
  emitter_ = std::thread([this] { EmitLoop(); });
  ticker_ = std::thread([this] {
    std::unique_lock lock(tick_mu_);
    while (!tick_cv_.wait_for(lock, std::chrono::seconds(30), [&] { return stopping_; })) {
      lock.unlock();
      TickAll();
      lock.lock();
    }
  });
  return Status::Ok();
}

void Audience::TickAll() {
  std::vector<int64_t> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, t] : tenants_) ids.push_back(id);
  }
  const int64_t now = NowMs();
  for (int64_t id : ids) {
    auto e = EngineOf(id);
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

std::shared_ptr<AudienceEngine> Audience::EngineOf(int64_t tenant_id) {
  Tenant& t = TenantOf(tenant_id);
  {
    std::lock_guard lock(t.mu);
    if (t.engine) return t.engine;
  }
  Status s = Rebuild(tenant_id);
  if (!s.ok()) spdlog::error("audience: tenant {}: {}", tenant_id, s.ToString());
  std::lock_guard lock(t.mu);
  return t.engine;
}

StatusOr<Audience::Built> Audience::Build(int64_t tenant_id) {
  ASSIGN_OR_RETURN(std::string tz, TimezoneOf(tenant_id));
  ASSIGN_OR_RETURN(AudienceSettings settings, Settings(tenant_id));
  audience::EngineOptions options;
  options.today = LocalDayNumber(NowMs(), tz);
  options.rfm = settings.rfm;
  options.lifecycle = settings.lifecycle;
  auto e = std::make_shared<AudienceEngine>(options);
  std::unordered_map<int64_t, PersonAttrs> attrs;
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
      PersonAttrs a;
      a.first_seen_day = LocalDayNumber(r.Int(1), tz);
      a.first_channel = r.OptInt(2).value_or(0);
      a.last_channel = r.OptInt(3).value_or(0);
      attrs[r.Int(0)] = a;
      if (!r.IsNull(4)) merges.emplace_back(r.Int(0), r.Int(4));
    }
    ASSIGN_OR_RETURN(Rows segs, c.Query("SELECT id, name, expression FROM segments WHERE "
                                        "tenant_id = ? ORDER BY id",
                                        {tenant_id}));
    for (const Row& r : segs) segments.push_back({r.Int(0), r.Text(1), r.Text(2)});
    return Status::Ok();
  }));
  // Events: their days and touchpoints; tiers from member_bound.
  std::vector<std::pair<int64_t, audience::EventFact>> event_facts;
  RETURN_IF_ERROR(events_.ForEachStored(tenant_id, [&](const StoredEvent& ev) -> Status {
    // The audience's own change events are records of it, not facts for it.
    if (IsSystemEventType(ev.type)) return Status::Ok();
    auto it = attrs.find(ev.person_id);
    if (it == attrs.end()) return Status::Ok();
    auto& tps = it->second.touchpoints;
    if (std::find(tps.begin(), tps.end(), ev.touchpoint) == tps.end()) {
      tps.push_back(ev.touchpoint);
    }
    if (ev.type == "member_bound") {
      EventIn in;
      in.type = ev.type;
      in.properties = ev.properties;
      if (std::string tier = TierOf(in); !tier.empty()) it->second.tier = tier;
    }
    audience::EventFact f;
    f.type = ev.type;
    f.day = LocalDayNumber(ev.ts, tz);
    event_facts.emplace_back(ev.person_id, std::move(f));
    return Status::Ok();
  }));
  for (auto& [id, a] : attrs) {
    std::sort(a.touchpoints.begin(), a.touchpoints.end());
    RETURN_IF_ERROR(e->AddPerson(id, a));
  }
  for (const auto& [person, f] : event_facts) RETURN_IF_ERROR(e->AddEvent(person, f));
  event_facts.clear();
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    std::unordered_map<int64_t, std::vector<std::string>> skus;
    ASSIGN_OR_RETURN(Rows lines, c.Query("SELECT order_id, sku FROM order_lines WHERE "
                                         "tenant_id = ? ORDER BY order_id, line_no",
                                         {tenant_id}));
    for (const Row& r : lines) skus[r.Int(0)].push_back(r.Text(1));
    ASSIGN_OR_RETURN(Rows orders, c.Query("SELECT id, person_id, paid_at, total_fen, "
                                          "refunded_fen FROM orders WHERE tenant_id = ? ORDER "
                                          "BY id",
                                          {tenant_id}));
    for (const Row& r : orders) {
      audience::OrderFact o;
      o.id = r.Int(0);
      o.day = LocalDayNumber(r.Int(2), tz);
      o.amount_fen = r.Int(3);
      o.skus = std::move(skus[o.id]);
      RETURN_IF_ERROR(e->AddOrder(r.Int(1), o));
      if (r.Int(4) > 0) RETURN_IF_ERROR(e->RefundOrder(r.Int(1), o.id, r.Int(4)));
    }
    ASSIGN_OR_RETURN(Rows manual, c.Query("SELECT person_id, tag_id FROM person_tags WHERE "
                                          "tenant_id = ?",
                                          {tenant_id}));
    for (const Row& r : manual) RETURN_IF_ERROR(e->AddTag(r.Int(0), r.Int(1)));
    ASSIGN_OR_RETURN(Rows inviters, c.Query("SELECT person_id, inviter_id FROM person_inviters "
                                            "WHERE tenant_id = ?",
                                            {tenant_id}));
    for (const Row& r : inviters) RETURN_IF_ERROR(e->SetInviter(r.Int(0), r.Int(1)));
    return Status::Ok();
  }));
  // Merged rows fold into their survivor, as the graph has it now.
  for (const auto& [row, stored_canonical] : merges) {
    const int64_t survivor = identity_.CanonicalOf(tenant_id, row);
    if (survivor == row || !e->HasPerson(row) || !e->HasPerson(survivor)) continue;
    RETURN_IF_ERROR(e->Merge(survivor, row));
    attrs.erase(row);
  }
  for (const auto& s : segments) RETURN_IF_ERROR(e->DefineSegment(s));
  RETURN_IF_ERROR(e->EndBulkLoad());
  // The attributes of the people the engine holds (merged-in rows are gone).
  return Built{std::move(e), std::move(attrs), std::move(tz)};
}

Status Audience::Rebuild(int64_t tenant_id) {
  Tenant& t = TenantOf(tenant_id);
  std::lock_guard build(t.build_mu);
  auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(Built b, Build(tenant_id));
  auto e = b.engine;
  {
    std::lock_guard lock(t.mu);
    t.engine = std::move(b.engine);
    t.attrs = std::move(b.attrs);
    t.tz = std::move(b.tz);
  }
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
  auto live = EngineOf(tenant_id);
  if (!live) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
  Tenant& t = TenantOf(tenant_id);
  std::lock_guard build(t.build_mu);
  ASSIGN_OR_RETURN(Built b, Build(tenant_id));
  // Quantile thresholds move at the daily tick: compare with the live engine's.
  b.engine->PinRfmThresholds(live->ResolvedRfmThresholds());
  AudienceVerifyReport out;
  out.differences = live->Diff(*b.engine, 20);
  out.ok = out.differences.empty();
  out.people = live->PeopleCount();
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

void Audience::Fold(int64_t tenant_id, AudienceEngine& e, int64_t person) {
  for (int64_t m : identity_.ComponentOf(tenant_id, person)) {
    if (m == person || !e.HasPerson(m)) continue;
    Deltas d;
    Status s = e.Merge(person, m, &d);
    if (!s.ok()) {
      spdlog::warn("audience: tenant {}: merge {} into {}: {}", tenant_id, m, person, s.ToString());
      continue;
    }
    Emit(tenant_id, d);
    Tenant& t = TenantOf(tenant_id);
    std::lock_guard lock(t.mu);
    auto from = t.attrs.find(m);
    if (from == t.attrs.end()) continue;
    PersonAttrs& into = t.attrs[person];
    for (const auto& tp : from->second.touchpoints) {
      if (std::find(into.touchpoints.begin(), into.touchpoints.end(), tp) ==
          into.touchpoints.end()) {
        into.touchpoints.push_back(tp);
      }
    }
    std::sort(into.touchpoints.begin(), into.touchpoints.end());
    if (from->second.first_seen_day < into.first_seen_day) {
      into.first_seen_day = from->second.first_seen_day;
      into.first_channel = from->second.first_channel;
    }
    if (into.tier.empty()) into.tier = from->second.tier;
    t.attrs.erase(from);
  }
}

void Audience::OnEvents(int64_t tenant_id, const std::vector<EventItem>& items,
                        const IngestResult& r) {
  auto e = EngineOf(tenant_id);
  if (!e) return;
  Tenant& t = TenantOf(tenant_id);
  std::string tz;
  {
    std::lock_guard lock(t.mu);
    tz = t.tz;
  }
  std::vector<int64_t> moved;  // people whose channels may have moved
  Deltas d;
  for (size_t i = 0; i < items.size() && i < r.results.size(); ++i) {
    const EventResult& res = r.results[i];
    if (res.outcome != EventOutcome::kAccepted) continue;
    const EventIn& ev = items[i].event;
    const int64_t person = res.person_id;
    const Day day = LocalDayNumber(ev.ts, tz);
    if (res.link == LinkState::kMerged) Fold(tenant_id, *e, person);
    std::optional<PersonAttrs> update;
    {
      std::lock_guard lock(t.mu);
      auto [it, fresh] = t.attrs.try_emplace(person);
      PersonAttrs& a = it->second;
      if (fresh) {
        a.first_seen_day = day;
        a.first_channel = a.last_channel = res.channel_id.value_or(0);
        a.touchpoints = {ev.touchpoint};
        a.tier = TierOf(ev);
        update = a;
      } else {
        bool changed = false;
        if (std::find(a.touchpoints.begin(), a.touchpoints.end(), ev.touchpoint) ==
            a.touchpoints.end()) {
          a.touchpoints.push_back(ev.touchpoint);
          std::sort(a.touchpoints.begin(), a.touchpoints.end());
          changed = true;
        }
        if (std::string tier = TierOf(ev); !tier.empty() && tier != a.tier) {
          a.tier = tier;
          changed = true;
        }
        if (changed) update = a;
      }
    }
    if (update) {
      Status s = e->HasPerson(person) ? e->UpdateAttrs(person, *update, &d)
                                      : e->AddPerson(person, *update, &d);
      if (!s.ok())
        spdlog::warn("audience: tenant {}: person {}: {}", tenant_id, person, s.ToString());
    }
    if (res.channel_id) moved.push_back(person);
    audience::EventFact f;
    f.type = ev.type;
    f.day = day;
    Status s = e->AddEvent(person, f, &d);
    if (!s.ok())
      spdlog::warn("audience: tenant {}: event {}: {}", tenant_id, ev.event_id, s.ToString());
  }
  // Channel touches move the people rows' channels (the last-touch rule is the store's): read
  // them back for the people touched.
  if (!moved.empty()) {
    std::sort(moved.begin(), moved.end());
    moved.erase(std::unique(moved.begin(), moved.end()), moved.end());
    std::vector<std::tuple<int64_t, int64_t, int64_t>> rows;
    Status s = store_.Read([&](Conn& c) -> Status {
      rows.clear();
      for (int64_t p : moved) {
        ASSIGN_OR_RETURN(Rows r2, c.Query("SELECT first_channel_id, last_channel_id FROM people "
                                          "WHERE tenant_id = ? AND id = ?",
                                          {tenant_id, p}));
        if (!r2.empty())
          rows.emplace_back(p, r2[0].OptInt(0).value_or(0), r2[0].OptInt(1).value_or(0));
      }
      return Status::Ok();
    });
    if (s.ok()) {
      for (const auto& [p, first, last] : rows) {
        std::optional<PersonAttrs> update;
        {
          std::lock_guard lock(t.mu);
          PersonAttrs& a = t.attrs[p];
          if (a.first_channel != first || a.last_channel != last) {
            a.first_channel = first;
            a.last_channel = last;
            update = a;
          }
        }
        if (update && e->HasPerson(p)) (void)e->UpdateAttrs(p, *update, &d);
      }
    }
  }
  Emit(tenant_id, d);
}

void Audience::OnPersonCreated(int64_t tenant_id, int64_t person_id) {
  auto e = EngineOf(tenant_id);
  if (!e || e->HasPerson(person_id)) return;
  Tenant& t = TenantOf(tenant_id);
  std::optional<PersonAttrs> a;
  Status s = store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT acquired_at, first_channel_id, last_channel_id FROM "
                                     "people WHERE tenant_id = ? AND id = ?",
                                     {tenant_id, person_id}));
    if (r.empty()) return Status::Ok();
    a = PersonAttrs{};
    a->first_seen_day = DayOf(tenant_id, r[0].Int(0));
    a->first_channel = r[0].OptInt(1).value_or(0);
    a->last_channel = r[0].OptInt(2).value_or(0);
    return Status::Ok();
  });
  if (!s.ok() || !a) return;
  {
    std::lock_guard lock(t.mu);
    t.attrs[person_id] = *a;
  }
  Deltas d;
  (void)e->AddPerson(person_id, *a, &d);
  Emit(tenant_id, d);
}

void Audience::OnOrder(int64_t tenant_id, const Order& order) {
  auto e = EngineOf(tenant_id);
  if (!e) return;
  const int64_t person = identity_.CanonicalOf(tenant_id, order.person_id);
  if (!e->HasPerson(person)) OnPersonCreated(tenant_id, person);
  Fold(tenant_id, *e, person);
  audience::OrderFact o;
  o.id = order.id;
  o.day = DayOf(tenant_id, order.paid_at);
  o.amount_fen = order.total_fen;
  for (const auto& l : order.lines) o.skus.push_back(l.sku);
  Deltas d;
  Status s = e->AddOrder(person, o, &d);
  if (!s.ok() && s.code() != ErrorCode::kAlreadyExists) {
    spdlog::warn("audience: tenant {}: order {}: {}", tenant_id, order.id, s.ToString());
  }
  Emit(tenant_id, d);
}

void Audience::OnRefund(int64_t tenant_id, const Order& order) {
  auto e = EngineOf(tenant_id);
  if (!e) return;
  const int64_t person = identity_.CanonicalOf(tenant_id, order.person_id);
  if (order.refunded_fen <= 0) return;  // a free order refunded: nothing counted changes
  Deltas d;
  Status s = e->RefundOrder(person, order.id, order.refunded_fen, &d);
  if (!s.ok())
    spdlog::warn("audience: tenant {}: refund {}: {}", tenant_id, order.id, s.ToString());
  Emit(tenant_id, d);
}

Status Audience::Reconcile(int64_t tenant_id) {
  auto e = EngineOf(tenant_id);
  if (!e) return Status::Ok();
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
    if (!e->HasPerson(row)) continue;
    const int64_t survivor = identity_.CanonicalOf(tenant_id, row);
    if (survivor == row) continue;
    if (!e->HasPerson(survivor)) OnPersonCreated(tenant_id, survivor);
    Fold(tenant_id, *e, survivor);
  }
  return Status::Ok();
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
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
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
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
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
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
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
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
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
  auto e = EngineOf(tenant_id);
  if (!e) return Status(ErrorCode::kStoreUnavailable, "the audience engine is not available");
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
