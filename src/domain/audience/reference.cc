#include "domain/audience/reference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace siyu::audience::testing {

namespace {

bool Counts(const OrderFact& o) { return !(o.amount_fen > 0 && o.refunded_fen >= o.amount_fen); }

bool InWindow(Day day, Day today, int32_t window) {
  return window == 0 || int64_t{day} >= int64_t{today} - window + 1;
}

int64_t MedianGap(const std::vector<Day>& days, size_t n, int64_t dflt) {
  if (n < 2) return dflt;
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < n; ++i) gaps.push_back(int64_t{days[i]} - days[i - 1]);
  std::sort(gaps.begin(), gaps.end());
  size_t m = gaps.size();
  int64_t med = m % 2 ? gaps[m / 2] : (gaps[m / 2 - 1] + gaps[m / 2]) / 2;
  return std::max<int64_t>(1, med);
}

int64_t Times(double k, int64_t c) { return std::max<int64_t>(1, std::llround(k * double(c))); }

}  // namespace

void Reference::AddPerson(int64_t id, const PersonAttrs& a) {
  RefPerson& p = people[id];
  p = RefPerson{};
  p.id = id;
  p.attrs = a;
}

void Reference::AddEvent(int64_t id, const EventFact& e) {
  RefEvent r{e.type, e.day, e.count, {}};
  for (auto& [k, v] : e.values) r.values[k] += v;
  people.at(id).events.push_back(r);
}

void Reference::AddOrder(int64_t id, const OrderFact& o) { people.at(id).orders.push_back(o); }

void Reference::Refund(int64_t id, int64_t order, int64_t fen) {
  for (OrderFact& o : people.at(id).orders) {
    if (o.id == order) o.refunded_fen += fen;
  }
}

void Reference::Merge(int64_t survivor, int64_t absorbed) {
  RefPerson& a = people.at(survivor);
  RefPerson& b = people.at(absorbed);
  bool b_first = b.attrs.first_seen_day < a.attrs.first_seen_day;
  int64_t fc = b_first ? (b.attrs.first_channel ? b.attrs.first_channel : a.attrs.first_channel)
                       : (a.attrs.first_channel ? a.attrs.first_channel : b.attrs.first_channel);
  a.attrs.first_seen_day = std::min(a.attrs.first_seen_day, b.attrs.first_seen_day);
  a.attrs.first_channel = fc;
  if (!a.attrs.last_channel) a.attrs.last_channel = b.attrs.last_channel;
  if (a.attrs.tier.empty()) a.attrs.tier = b.attrs.tier;
  for (const std::string& t : b.attrs.touchpoints) {
    if (std::find(a.attrs.touchpoints.begin(), a.attrs.touchpoints.end(), t) ==
        a.attrs.touchpoints.end()) {
      a.attrs.touchpoints.push_back(t);
    }
  }
  for (const OrderFact& o : b.orders) {
    bool dup = false;
    for (const OrderFact& x : a.orders) dup = dup || x.id == o.id;
    if (!dup) a.orders.push_back(o);
  }
  for (const RefEvent& e : b.events) a.events.push_back(e);
  a.manual.insert(b.manual.begin(), b.manual.end());
  if (ResolveInviter(survivor) == 0) {
    int64_t rb = ResolveInviter(absorbed);
    a.inviter = rb != 0 && rb != survivor ? b.inviter : 0;
  }
  b = RefPerson{};
  b.id = absorbed;
  b.alive = false;
  b.merged_into = survivor;
}

void Reference::Replace(int64_t id, const PersonFacts& f) {
  RefPerson& p = people[id];
  p = RefPerson{};
  p.id = id;
  p.attrs = f.attrs;
  p.orders = f.orders;
  for (const EventFact& e : f.events) {
    RefEvent r{e.type, e.day, e.count, {}};
    for (auto& [k, v] : e.values) r.values[k] += v;
    p.events.push_back(r);
  }
  p.manual.insert(f.manual_tags.begin(), f.manual_tags.end());
  p.inviter = f.inviter;
}

int64_t Reference::ResolveInviter(int64_t id) const {
  auto it = people.find(id);
  if (it == people.end()) return 0;
  int64_t inv = it->second.inviter;
  for (int hops = 0; inv != 0 && hops < 1000; ++hops) {
    auto jt = people.find(inv);
    if (jt == people.end()) return 0;
    if (jt->second.alive) return inv == id ? 0 : inv;
    inv = jt->second.merged_into;
  }
  return 0;
}

PersonFacts Reference::FactsFor(int64_t id) const {
  const RefPerson& p = people.at(id);
  PersonFacts f;
  f.attrs = p.attrs;
  f.orders = p.orders;
  for (const RefEvent& e : p.events) {
    EventFact x{e.type, e.day, e.count, {}};
    for (auto& [k, v] : e.values) x.values.push_back({k, v});
    f.events.push_back(x);
  }
  f.manual_tags.assign(p.manual.begin(), p.manual.end());
  f.inviter = ResolveInviter(id);
  return f;
}

int64_t Reference::Gmv(const RefPerson& p) const {
  int64_t g = 0;
  for (const OrderFact& o : p.orders) {
    if (Counts(o)) g += o.amount_fen - o.refunded_fen;
  }
  return g;
}

Stage Reference::StageOf(const RefPerson& p) const {
  const LifecycleOptions& lo = opts.lifecycle;
  std::vector<Day> days;
  size_t n = 0;
  for (const OrderFact& o : p.orders) {
    if (!Counts(o)) continue;
    ++n;
    days.push_back(o.day);
  }
  if (n == 0) return Stage::kProspect;
  std::sort(days.begin(), days.end());
  days.erase(std::unique(days.begin(), days.end()), days.end());
  int64_t cycle = MedianGap(days, days.size(), lo.default_cycle_days);
  int64_t since = int64_t{today} - days.back();
  if (since > Times(lo.churn_cycles, cycle)) return Stage::kChurned;
  if (since > Times(lo.dormant_cycles, cycle)) return Stage::kDormant;
  if (days.size() >= 2) {
    int64_t before = MedianGap(days, days.size() - 1, lo.default_cycle_days);
    if (int64_t{days.back()} - days[days.size() - 2] > Times(lo.dormant_cycles, before)) {
      return Stage::kRecalled;
    }
  }
  if (n == 1) return Stage::kNew;
  if (n >= lo.active_min_orders && since <= cycle) return Stage::kActive;
  return Stage::kRepeat;
}

RfmClass Reference::RfmOf(const RfmThresholds& t, const RefPerson& p) const {
  int64_t f = 0, m = 0;
  Day last = INT32_MIN;
  for (const OrderFact& o : p.orders) {
    if (!Counts(o)) continue;
    ++f;
    m += o.amount_fen - o.refunded_fen;
    last = std::max(last, o.day);
  }
  if (f == 0) return RfmClass::kNone;
  return RfmClassOf(int64_t{today} - last<t.recency_days, f> t.frequency, m > t.monetary_fen);
}

RfmThresholds Reference::Resolve() const {
  auto pick = [&](const RfmThreshold& th, auto value) -> int64_t {
    if (th.mode == RfmThreshold::Mode::kFixed) return th.value;
    std::vector<int64_t> v;
    for (auto& [id, p] : people) {
      if (!p.alive) continue;
      int64_t f = 0;
      for (const OrderFact& o : p.orders) f += Counts(o);
      if (f) v.push_back(value(p));
    }
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[size_t(std::floor(std::clamp(th.quantile, 0.0, 1.0) * double(v.size() - 1)))];
  };
  RfmThresholds t;
  t.recency_days = pick(opts.rfm.recency, [&](const RefPerson& p) {
    Day last = INT32_MIN;
    for (const OrderFact& o : p.orders) {
      if (Counts(o)) last = std::max(last, o.day);
    }
    return int64_t{today} - last;
  });
  t.frequency = pick(opts.rfm.frequency, [&](const RefPerson& p) {
    int64_t f = 0;
    for (const OrderFact& o : p.orders) f += Counts(o);
    return f;
  });
  t.monetary_fen = pick(opts.rfm.monetary, [&](const RefPerson& p) { return Gmv(p); });
  return t;
}

bool Reference::HasTag(int64_t tag, const RefPerson& p) const {
  const RefTag& t = tags.at(tag);
  if (t.is_rule) return Eval(t.rule, p);
  return p.manual.count(tag) > 0;
}

bool Reference::Eval(const Expr& e, const RefPerson& p) const {
  auto orders = [&](bool amount) {
    int64_t v = 0;
    for (const OrderFact& o : p.orders) {
      if (!Counts(o) || !InWindow(o.day, today, e.window_days)) continue;
      if (e.filter == ItemFilter::kSku &&
          std::find(o.skus.begin(), o.skus.end(), e.name) == o.skus.end()) {
        continue;
      }
      if (e.filter == ItemFilter::kCategory &&
          std::find(o.categories.begin(), o.categories.end(), e.name) == o.categories.end()) {
        continue;
      }
      v += amount ? o.amount_fen - o.refunded_fen : 1;
    }
    return v;
  };
  switch (e.kind) {
    case Kind::kAnd:
      for (const Expr& c : e.children) {
        if (!Eval(c, p)) return false;
      }
      return true;
    case Kind::kOr:
      for (const Expr& c : e.children) {
        if (Eval(c, p)) return true;
      }
      return false;
    case Kind::kNot:
      return !Eval(e.children[0], p);
    case Kind::kTag:
      return HasTag(e.id, p);
    case Kind::kRfm:
      return static_cast<int64_t>(RfmOf(thresholds, p)) == e.id;
    case Kind::kStage:
      return static_cast<int64_t>(StageOf(p)) == e.id;
    case Kind::kFirstChannel:
      return p.attrs.first_channel == e.id;
    case Kind::kLastChannel:
      return p.attrs.last_channel == e.id;
    case Kind::kTouchpoint:
      return std::find(p.attrs.touchpoints.begin(), p.attrs.touchpoints.end(), e.name) !=
             p.attrs.touchpoints.end();
    case Kind::kTier:
      return p.attrs.tier == e.name;
    case Kind::kBought:
      return orders(false) >= 1;
    case Kind::kOrders:
      return Compare(orders(false), e.cmp, e.value);
    case Kind::kGmv:
      return Compare(orders(true), e.cmp, e.value);
    case Kind::kEvents:
    case Kind::kEventSum: {
      int64_t v = 0;
      for (const RefEvent& ev : p.events) {
        if (ev.type != e.name || !InWindow(ev.day, today, e.window_days)) continue;
        if (e.kind == Kind::kEvents) {
          v += ev.count;
        } else {
          auto it = ev.values.find(e.property);
          if (it != ev.values.end()) v += it->second;
        }
      }
      return Compare(v, e.cmp, e.value);
    }
    case Kind::kLastOrderDays: {
      Day last = INT32_MIN;
      for (const OrderFact& o : p.orders) {
        if (Counts(o)) last = std::max(last, o.day);
      }
      return last != INT32_MIN && Compare(int64_t{today} - last, e.cmp, e.value);
    }
    case Kind::kFirstSeenDays:
      return Compare(int64_t{today} - p.attrs.first_seen_day, e.cmp, e.value);
    case Kind::kFirstEventDays:
    case Kind::kLastEventDays: {
      // No value without an event of the type: false whatever the comparison.
      bool any = false;
      Day day = 0;
      for (const RefEvent& ev : p.events) {
        if (ev.type != e.name) continue;
        if (!any || (e.kind == Kind::kFirstEventDays ? ev.day < day : ev.day > day)) day = ev.day;
        any = true;
      }
      return any && Compare(int64_t{today} - day, e.cmp, e.value);
    }
  }
  return false;
}

std::vector<int64_t> Reference::Members(const Expr& e) const {
  std::vector<int64_t> v;
  for (auto& [id, p] : people) {
    if (p.alive && Eval(e, p)) v.push_back(id);
  }
  return v;
}

std::unique_ptr<AudienceEngine> Reference::Rebuild(const std::vector<TagDef>& tag_defs,
                                                   const std::vector<SegmentDef>& segments,
                                                   const RfmThresholds* pin) const {
  auto e = std::make_unique<AudienceEngine>(opts);
  e->BeginBulkLoad();
  // Manual tags first, then rules in an order where references resolve (retry until stable).
  std::vector<TagDef> pending = tag_defs;
  while (!pending.empty()) {
    std::vector<TagDef> later;
    for (const TagDef& t : pending) {
      if (!e->DefineTag(t).ok()) later.push_back(t);
    }
    if (later.size() == pending.size()) break;
    pending = std::move(later);
  }
  for (const SegmentDef& s : segments) (void)e->DefineSegment(s);
  for (auto& [id, p] : people) {
    if (!p.alive) continue;
    PersonFacts f = FactsFor(id);
    f.inviter = 0;
    (void)e->ReplacePersonFacts(id, f);
  }
  for (auto& [id, p] : people) {
    if (p.alive && ResolveInviter(id)) (void)e->SetInviter(id, ResolveInviter(id));
  }
  (void)e->Tick(today);
  (void)e->EndBulkLoad();
  if (pin) e->PinRfmThresholds(*pin);
  return e;
}

// ----- Random expressions ------------------------------------------------------------------------

namespace {

template <typename T>
const T& Pick(std::mt19937_64& rng, const std::vector<T>& v) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}

Expr Leaf(std::mt19937_64& rng, const ExprDomain& d) {
  auto u = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Expr e;
  auto window = [&] { return u(0, 2) == 0 ? 0 : Pick(rng, d.windows); };
  auto compare = [&](int64_t lo, int64_t hi) {
    e.cmp = static_cast<Cmp>(u(0, 5));
    e.value = std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  switch (u(0, 14)) {
    case 0:
    case 1:
      if (!d.tags.empty()) {
        e.kind = Kind::kTag;
        auto& t = Pick(rng, d.tags);
        e.id = t.first;
        e.name = t.second;
        return e;
      }
      [[fallthrough]];
    case 2:
      e.kind = Kind::kRfm;
      e.id = u(1, kRfmClassCount - 1);
      return e;
    case 3:
      e.kind = Kind::kStage;
      e.id = u(0, kStageCount - 1);
      return e;
    case 4:
      e.kind = u(0, 1) ? Kind::kFirstChannel : Kind::kLastChannel;
      e.id = Pick(rng, d.channels);
      return e;
    case 5:
      e.kind = Kind::kTouchpoint;
      e.name = Pick(rng, d.touchpoints);
      return e;
    case 6:
      e.kind = Kind::kTier;
      e.name = Pick(rng, d.tiers);
      return e;
    case 7:
    case 8:
    case 9: {
      int k = u(0, 2);
      e.kind = k == 0 ? Kind::kBought : k == 1 ? Kind::kOrders : Kind::kGmv;
      int f = u(0, 2);
      if (f == 1) {
        e.filter = ItemFilter::kSku;
        e.name = Pick(rng, d.skus);
      } else if (f == 2) {
        e.filter = ItemFilter::kCategory;
        e.name = Pick(rng, d.categories);
      }
      e.window_days = window();
      if (e.kind == Kind::kOrders) compare(0, 4);
      if (e.kind == Kind::kGmv) compare(0, 30000);
      return e;
    }
    case 10:
    case 11:
      e.kind = u(0, 2) ? Kind::kEvents : Kind::kEventSum;
      e.name = Pick(rng, d.event_types);
      if (e.kind == Kind::kEventSum) e.property = Pick(rng, d.properties);
      e.window_days = window();
      if (e.kind == Kind::kEvents) {
        compare(0, 5);
      } else {
        compare(-5, 50);
      }
      return e;
    case 12:
      e.kind = u(0, 1) ? Kind::kLastEventDays : Kind::kFirstEventDays;
      e.name = Pick(rng, d.event_types);
      compare(-2, 60);
      return e;
    case 13:
      e.kind = Kind::kLastOrderDays;
      compare(0, 90);
      return e;
    default:
      e.kind = Kind::kFirstSeenDays;
      compare(0, 90);
      return e;
  }
}

}  // namespace

Expr RandomExpr(std::mt19937_64& rng, const ExprDomain& d, int depth) {
  int r = std::uniform_int_distribution<int>(0, 9)(rng);
  if (depth <= 0 || r < 4) return Leaf(rng, d);
  if (r < 6) {
    Expr e;
    e.kind = Kind::kNot;
    e.children.push_back(RandomExpr(rng, d, depth - 1));
    return e;
  }
  Expr e;
  e.kind = r < 8 ? Kind::kAnd : Kind::kOr;
  int n = std::uniform_int_distribution<int>(2, 4)(rng);
  for (int i = 0; i < n; ++i) {
    Expr c = RandomExpr(rng, d, depth - 1);
    if (c.kind == e.kind) {  // canonical: no AND directly under AND
      for (Expr& g : c.children) e.children.push_back(std::move(g));
    } else {
      e.children.push_back(std::move(c));
    }
  }
  return e;
}

}  // namespace siyu::audience::testing
