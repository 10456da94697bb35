// audience_bench [--people N] [--seed S] [--queries Q] [--facts F]
//
// Defaults: 1 M people (the quick run); the scale is --people 10000000. Prints one table
// with the targets; exits non-zero if a check fails (a count disagreeing with its member list,
// the incremental engine disagreeing with a fresh evaluation of its segments).
#include "domain/audience/audience_bench.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string_view>

namespace siyu::audience::bench {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t Mix(uint64_t x) {  // SplitMix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A tiny deterministic generator (SplitMix64): cheap to seed per person and per tag.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() { return Mix(s_ += 0x9e3779b97f4a7c15ULL); }
  uint64_t Below(uint64_t n) { return Next() % n; }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  bool Chance(double p) { return Unit() < p; }

 private:
  uint64_t s_;
};

const char* const kTiers[] = {"silver", "gold", "platinum"};
const char* const kTouch[] = {"oa", "mp", "wecom", "group", "live", "store"};
const char* const kEvents[] = {"view",   "share",      "cart",      "pay",  "search",
                               "coupon", "live_watch", "group_msg", "scan", "checkin"};
constexpr int kSkus = 2000;
constexpr int kCategories = 40;
constexpr double kDense[] = {0.30, 0.33, 0.40, 0.50, 0.60};

size_t RssBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Latency {
  double p50 = 0, p99 = 0, max = 0, mean = 0;
};
Latency Percentiles(std::vector<double> v) {
  Latency l;
  if (v.empty()) return l;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * double(v.size())))]; };
  l.p50 = at(0.5);
  l.p99 = at(0.99);
  l.max = v.back();
  l.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  return l;
}

}  // namespace

BenchData::BenchData(const BenchConfig& c) : c_(c) {
  for (uint32_t k = 0; k < c_.tags; ++k) {
    BenchTag t;
    t.id = k + 1;
    t.group = fmt::format("g{}", k / 50);
    t.name = fmt::format("t{}", k);
    if (k < std::size(kDense)) {
      t.density = kDense[k];
    } else {
      // Log-uniform in [0.1 %, 5 %].
      double u = static_cast<double>(Mix(c_.seed * 7919 + k) >> 11) * 0x1.0p-53;
      t.density = 0.001 * std::pow(50.0, u);
    }
    tags_.push_back(std::move(t));
  }
}

BenchPerson BenchData::Person(uint64_t index) const {
  Rng r(Mix(c_.seed) ^ Mix(index + 1));
  BenchPerson p;
  p.id = static_cast<int64_t>(index + 1);
  p.attrs.first_seen_day = static_cast<Day>(c_.today - r.Below(730));
  p.attrs.first_channel = r.Chance(0.8) ? static_cast<int64_t>(1 + r.Below(50)) : 0;
  p.attrs.last_channel = r.Chance(0.8) ? static_cast<int64_t>(1 + r.Below(50)) : 0;
  if (r.Chance(0.4)) p.attrs.tier = kTiers[r.Below(10) < 6 ? 0 : r.Below(10) < 8 ? 1 : 2];
  for (const char* t : kTouch) {
    if (r.Chance(0.3)) p.attrs.touchpoints.push_back(t);
  }
  if (r.Chance(c_.buyer_share)) {
    int n = 1;
    while (n < 12 && r.Chance(0.55)) ++n;
    for (int i = 0; i < n; ++i) {
      OrderFact o;
      o.id = p.id * 16 + i;
      o.day = static_cast<Day>(c_.today - r.Below(365));
      o.amount_fen = static_cast<int64_t>(1000 + r.Below(99000));
      o.skus.push_back(fmt::format("s{}", r.Below(kSkus)));
      if (r.Chance(0.3)) o.skus.push_back(fmt::format("s{}", r.Below(kSkus)));
      o.categories.push_back(fmt::format("c{}", r.Below(kCategories)));
      p.orders.push_back(std::move(o));
    }
  }
  if (r.Chance(c_.active_share)) {
    int n = 1 + static_cast<int>(r.Below(6));
    for (int i = 0; i < n; ++i) {
      EventFact e;
      e.type = kEvents[r.Below(r.Chance(0.5) ? 3 : std::size(kEvents))];
      e.day = static_cast<Day>(c_.today - r.Below(60));
      if (e.type == "pay") e.values.push_back({"points", static_cast<int64_t>(r.Below(100))});
      p.events.push_back(std::move(e));
    }
  }
  return p;
}

void BenchData::TagMembers(size_t t, const std::function<void(uint64_t)>& f) const {
  Rng r(Mix(c_.seed ^ 0x7a67) ^ Mix(t + 1));
  double p = tags_[t].density;
  if (p >= 0.2) {  // dense: a draw per person
    for (uint64_t i = 0; i < c_.people; ++i) {
      if (r.Chance(p)) f(i);
    }
    return;
  }
  // Sparse: geometric gaps, work in proportion to the members.
  double lq = std::log1p(-p);
  uint64_t i = 0;
  while (true) {
    double u = std::max(r.Unit(), 1e-300);
    i += static_cast<uint64_t>(std::floor(std::log(u) / lq));
    if (i >= c_.people) return;
    f(i);
    ++i;
  }
}

std::vector<std::string> BenchData::CountQueries(int terms, size_t n, uint64_t seed) const {
  Rng r(Mix(seed));
  auto dense = [&] { return fmt::format("tag(\"t{}\")", r.Below(std::size(kDense))); };
  auto sparse = [&] {
    return fmt::format("tag(\"t{}\")", std::size(kDense) + r.Below(c_.tags - std::size(kDense)));
  };
  auto any = [&] { return r.Chance(0.3) ? dense() : sparse(); };
  std::vector<std::string> out;
  for (size_t q = 0; q < n; ++q) {
    std::string s;
    if (terms == 5) {
      switch (q % 4) {
        case 0:
          s = fmt::format("{} AND {} AND NOT {} AND ({} OR {})", dense(), sparse(), sparse(),
                          sparse(), dense());
          break;
        case 1:
          s = fmt::format("({} OR {}) AND {} AND NOT {} AND tier(\"gold\")", dense(), dense(),
                          sparse(), dense());
          break;
        case 2:
          s = fmt::format("{} AND {} AND {} AND NOT {} AND touchpoint(\"wecom\")", dense(), dense(),
                          dense(), sparse());
          break;
        default:
          s = fmt::format("({} OR {} OR {}) AND NOT ({} OR {})", any(), any(), any(), any(), any());
          break;
      }
    } else {
      // Groups of ORs, ANDed, with some NOTs: `terms` tag predicates in all.
      int left = terms;
      std::vector<std::string> groups;
      while (left > 0) {
        int k = std::min<int>(left, 1 + static_cast<int>(r.Below(4)));
        left -= k;
        std::string g;
        for (int i = 0; i < k; ++i) g += (i ? " OR " : "") + any();
        if (k > 1) g = "(" + g + ")";
        if (r.Chance(0.25) && !groups.empty()) g = "NOT " + g;
        groups.push_back(g);
      }
      for (size_t i = 0; i < groups.size(); ++i) s += (i ? " AND " : "") + groups[i];
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string BenchData::TenPercentQuery() const { return "tag(\"t0\") AND tag(\"t1\")"; }

std::vector<TagDef> BenchData::RuleTags() const {
  std::vector<std::string> rules = {
      "orders(last 90d) >= 2",
      "gmv >= 200000",
      "events(\"view\", last 7d) >= 2",
      "bought(category=\"c1\", last 30d)",
      "tag(\"t0\") AND orders >= 1",
      "stage(\"dormant\") AND tag(\"t1\")",
      "rfm(\"important_value\")",
      "last_order_days <= 30",
      "events(\"share\", last 30d) >= 1 AND NOT tag(\"t2\")",
      "first_seen_days <= 7",
      "tier(\"gold\") AND gmv(last 365d) >= 20000",
      "touchpoint(\"wecom\") AND events(\"cart\", last 3d) >= 1",
      "bought(sku=\"s7\")",
      "event_sum(\"pay\", \"points\", last 30d) >= 50",
      "tag(\"r1\") AND tag(\"r3\")",
      "stage(\"active\") OR stage(\"repeat\")",
      "orders(category=\"c2\") >= 2",
      "NOT bought(last 180d) AND orders >= 1",
      "events(\"view\") >= 5",
      "tag(\"r2\") OR tag(\"r7\")",
  };
  std::vector<TagDef> v;
  for (size_t i = 0; i < rules.size(); ++i) {
    v.push_back(
        {static_cast<int64_t>(10000 + i + 1), "rules", fmt::format("r{}", i + 1), rules[i]});
  }
  return v;
}

std::vector<SegmentDef> BenchData::Segments() const {
  std::vector<std::string> exprs = {
      "tag(\"r1\") AND tag(\"t0\") AND NOT tag(\"t10\")",
      "tag(\"r3\") AND tier(\"gold\")",
      "tag(\"r5\") AND NOT tag(\"r8\")",
      "stage(\"dormant\") AND tag(\"t3\") AND NOT bought(last 30d)",
      "rfm(\"important_retain\") AND touchpoint(\"wecom\")",
      "tag(\"r9\") OR tag(\"r12\")",
      "tag(\"会员\") AND orders(last 90d) >= 2",
      "events(\"view\", last 7d) >= 1 AND NOT tag(\"r4\")",
      "tag(\"r15\") AND tag(\"t4\")",
      "tag(\"r16\") AND first_channel(7)",
      "stage(\"new\") AND tag(\"t20\")",
      "tag(\"r11\") OR tag(\"r14\")",
      "tag(\"r17\") AND NOT tag(\"t1\")",
      "tag(\"r18\") AND tag(\"t2\")",
      "tag(\"r19\") AND last_channel(3)",
      "tag(\"r20\") AND tag(\"t0\") AND tag(\"t1\")",
      "gmv(last 30d) >= 50000 AND tag(\"t30\")",
      "tag(\"r6\") OR (tag(\"r10\") AND tag(\"t40\"))",
      "tag(\"r13\") AND touchpoint(\"mp\")",
      "stage(\"churned\") AND tag(\"t0\") AND tag(\"t5\")",
  };
  std::vector<SegmentDef> v;
  for (size_t i = 0; i < exprs.size(); ++i) {
    v.push_back({static_cast<int64_t>(i + 1), fmt::format("seg{}", i + 1), exprs[i]});
  }
  return v;
}

Status LoadBench(const BenchData& data, AudienceEngine& e) {
  e.BeginBulkLoad();
  RETURN_IF_ERROR(e.Tick(data.config().today));
  for (const BenchTag& t : data.tags()) RETURN_IF_ERROR(e.DefineTag({t.id, t.group, t.name, ""}));
  RETURN_IF_ERROR(e.DefineTag({9999, "身份", "会员", ""}));
  for (const TagDef& t : data.RuleTags()) RETURN_IF_ERROR(e.DefineTag(t));
  for (const SegmentDef& s : data.Segments()) RETURN_IF_ERROR(e.DefineSegment(s));
  for (uint64_t i = 0; i < data.config().people; ++i) {
    BenchPerson p = data.Person(i);
    RETURN_IF_ERROR(e.AddPerson(p.id, p.attrs));
    for (const OrderFact& o : p.orders) RETURN_IF_ERROR(e.AddOrder(p.id, o));
    for (const EventFact& ev : p.events) RETURN_IF_ERROR(e.AddEvent(p.id, ev));
  }
  std::vector<int64_t> ids;
  for (size_t t = 0; t < data.tags().size(); ++t) {
    ids.clear();
    data.TagMembers(t, [&](uint64_t i) { ids.push_back(static_cast<int64_t>(i + 1)); });
    RETURN_IF_ERROR(e.AddTagToPeople(data.tags()[t].id, ids));
  }
  // 会员 = the members of t3 (40 %), under a Chinese name for the example.
  ids.clear();
  data.TagMembers(3, [&](uint64_t i) { ids.push_back(static_cast<int64_t>(i + 1)); });
  RETURN_IF_ERROR(e.AddTagToPeople(9999, ids));
  return e.EndBulkLoad();
}

namespace {

struct Args {
  BenchConfig config;
  size_t queries = 200;
  size_t facts = 1'000'000;
};

bool ParseArgs(int argc, char** argv, Args& a) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
    auto num = [&](auto& out) {
      if (!next) return false;
      out = static_cast<std::remove_reference_t<decltype(out)>>(std::strtoull(next, nullptr, 10));
      ++i;
      return true;
    };
    bool ok = true;
    if (arg == "--people") {
      ok = num(a.config.people);
    } else if (arg == "--seed") {
      ok = num(a.config.seed);
    } else if (arg == "--queries") {
      ok = num(a.queries);
    } else if (arg == "--facts") {
      ok = num(a.facts);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: audience_bench [--people N] [--seed S] [--queries Q] [--facts F]\n");
      return false;
    }
  }
  return a.config.people > 0;
}

}  // namespace

int BenchMain(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) return 2;
  const BenchConfig& c = args.config;
  int failures = 0;
  auto fail = [&](std::string msg) {
    std::fprintf(stderr, "CHECK FAILED: %s\n", msg.c_str());
    ++failures;
  };
  std::printf("audience_bench: %llu people, %u tags, seed %llu\n",
              static_cast<unsigned long long>(c.people), c.tags,
              static_cast<unsigned long long>(c.seed));

  // The machine's load average, start and end: the VM is shared, so rates and latencies depend
  // on what else runs.
  double load0[3] = {0, 0, 0}, load1[3] = {0, 0, 0};
  if (getloadavg(load0, 3) != 3) load0[0] = -1;
  BenchData data(c);
  size_t rss0 = RssBytes();
  EngineOptions opts;
  opts.today = c.today;
  opts.rfm.recency = {RfmThreshold::Mode::kFixed, 30, 0.5};
  opts.rfm.frequency = {RfmThreshold::Mode::kFixed, 1, 0.5};
  opts.rfm.monetary = {RfmThreshold::Mode::kQuantile, 0, 0.5};
  AudienceEngine e(opts);
  auto t0 = Clock::now();
  Status s = LoadBench(data, e);
  double load_ms = Ms(Clock::now() - t0);
  if (!s.ok()) {
    std::fprintf(stderr, "load failed: %s\n", s.ToString().c_str());
    return 1;
  }
  size_t rss_loaded = RssBytes();
  EngineStats st = e.Stats();

  // Counts.
  auto timed_counts = [&](int terms, size_t n, uint64_t seed) {
    std::vector<std::string> texts = data.CountQueries(terms, n, seed);
    std::vector<Expr> exprs;
    for (const std::string& t : texts) {
      auto x = e.Parse(t);
      if (!x.ok()) {
        fail(fmt::format("parse {}: {}", t, x.status().ToString()));
        continue;
      }
      exprs.push_back(*x);
    }
    std::vector<double> ms;
    for (int rep = 0; rep < 3; ++rep) {
      for (const Expr& x : exprs) {
        auto q0 = Clock::now();
        auto n = e.Count(x);
        ms.push_back(Ms(Clock::now() - q0));
        if (!n.ok()) fail(n.status().ToString());
      }
    }
    // The count of a few is checked against the member list of the same plan.
    for (size_t i = 0; i < exprs.size() && i < 5; ++i) {
      auto set = e.Evaluate(exprs[i]);
      if (set->Count() != *e.Count(exprs[i])) fail("count differs from members: " + texts[i]);
    }
    return Percentiles(ms);
  };
  Latency q5 = timed_counts(5, args.queries, c.seed + 5);
  Latency q20 = timed_counts(20, args.queries / 2, c.seed + 20);

  // Materialise a ~10 % segment (1 M members at 10 M people).
  auto ten = *e.Parse(data.TenPercentQuery());
  std::vector<double> eval_ms, members_ms;
  uint64_t ten_count = 0;
  for (int rep = 0; rep < 10; ++rep) {
    auto m0 = Clock::now();
    auto set = e.Evaluate(ten);
    eval_ms.push_back(Ms(Clock::now() - m0));
    auto m1 = Clock::now();
    std::vector<int64_t> ids = e.Members(*set);
    members_ms.push_back(Ms(Clock::now() - m1));
    ten_count = ids.size();
  }
  Latency mat = Percentiles(eval_ms);
  Latency mat_ids = Percentiles(members_ms);
  s = e.DefineSegment({1000, "ten percent", data.TenPercentQuery()});
  auto p0 = Clock::now();
  uint64_t paged = 0;
  int64_t after = 0;
  while (true) {
    auto page = e.SegmentMembers(1000, after, 10000);
    paged += page->people.size();
    if (!page->next_after) break;
    after = page->next_after;
  }
  double page_ms = Ms(Clock::now() - p0);
  if (paged != ten_count) fail(fmt::format("paged {} of {} members", paged, ten_count));

  // Incremental facts: random people, events (60 %), orders (20 %), manual tags (20 %);
  // generated first, so only the engine is timed. One call each, then batches of 256 (the write
  // path's group commit).
  std::vector<Fact> stream(args.facts);
  {
    Rng r(Mix(c.seed ^ 0xfac7));
    int64_t next_order = int64_t{1} << 40;
    for (Fact& f : stream) {
      f.person = static_cast<int64_t>(1 + r.Below(c.people));
      uint64_t kind = r.Below(10);
      if (kind < 6) {
        f.kind = Fact::Kind::kEvent;
        f.event.type = kEvents[r.Below(4)];
        f.event.day = static_cast<Day>(c.today - r.Below(3));
        if (f.event.type == "pay") {
          f.event.values.push_back({"points", static_cast<int64_t>(r.Below(60))});
        }
      } else if (kind < 8) {
        f.kind = Fact::Kind::kOrder;
        f.order.id = next_order++;
        f.order.day = c.today;
        f.order.amount_fen = static_cast<int64_t>(1000 + r.Below(99000));
        f.order.skus.push_back(fmt::format("s{}", r.Below(kSkus)));
        f.order.categories.push_back(fmt::format("c{}", r.Below(kCategories)));
      } else {
        f.kind = kind == 8 ? Fact::Kind::kTagAdded : Fact::Kind::kTagRemoved;
        f.tag = static_cast<int64_t>(1 + r.Below(c.tags));
      }
    }
  }
  Deltas deltas;
  std::vector<double> fact_ns;
  size_t half = stream.size() / 2;
  fact_ns.reserve(half);
  uint64_t delta_count = 0;
  auto f0 = Clock::now();
  for (size_t i = 0; i < half; ++i) {
    auto a0 = Clock::now();
    Status fs = e.ApplyBatch(std::span<const Fact>(&stream[i], 1), &deltas);
    fact_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - a0).count());
    if (!fs.ok()) fail(fs.ToString());
    delta_count += deltas.size();
    deltas.clear();
  }
  double single_s = std::chrono::duration<double>(Clock::now() - f0).count();
  Latency fact_lat = Percentiles(fact_ns);
  auto b0 = Clock::now();
  for (size_t i = half; i < stream.size(); i += 256) {
    size_t k = std::min<size_t>(256, stream.size() - i);
    Status fs = e.ApplyBatch(std::span<const Fact>(&stream[i], k), &deltas);
    if (!fs.ok()) fail(fs.ToString());
    delta_count += deltas.size();
    deltas.clear();
  }
  double batch_s = std::chrono::duration<double>(Clock::now() - b0).count();
  stream.clear();
  stream.shrink_to_fit();

  // The daily tick.
  auto k0 = Clock::now();
  s = e.Tick(c.today + 1, &deltas);
  double tick_ms = Ms(Clock::now() - k0);
  uint64_t tick_deltas = deltas.size();
  deltas.clear();

  // The incremental segments equal a fresh evaluation of their expressions.
  for (const SegmentDef& sd : e.Segments()) {
    auto x = e.Parse(sd.expression);
    auto fresh = e.Evaluate(*x);
    auto live = e.SegmentSnapshot(sd.id);
    if (!fresh->SameMembers(*live)) {
      fail(fmt::format("segment {} ({}) differs from a fresh evaluation: {} vs {}", sd.id,
                       sd.expression, live->Count(), fresh->Count()));
    }
  }
  for (const TagDef& td : e.Tags()) {
    if (td.rule.empty()) continue;
    auto x = e.Parse(td.rule);
    auto fresh = e.Evaluate(*x);
    auto live = e.TagMembers(td.id);
    if (!fresh->SameMembers(*live)) fail(fmt::format("rule tag {} differs", td.name));
  }

  size_t rss_end = RssBytes();
  if (getloadavg(load1, 3) != 3) load1[0] = -1;
  std::printf("\n%-52s %14s %14s\n", "", "measured", "target");
  auto row = [](std::string what, std::string v, std::string target) {
    std::printf("%-52s %14s %14s\n", what.c_str(), v.c_str(), target.c_str());
  };
  row("load (bulk, 500 tags, 20 rules, 20 segments)", fmt::format("{:.1f} s", load_ms / 1000), "");
  row("count, 5-term expression p50", fmt::format("{:.3f} ms", q5.p50), "<= 2 ms");
  row("count, 5-term expression p99", fmt::format("{:.3f} ms", q5.p99), "<= 10 ms");
  row("count, 20-term expression p50", fmt::format("{:.3f} ms", q20.p50), "");
  row("count, 20-term expression p99", fmt::format("{:.3f} ms", q20.p99), "<= 20 ms");
  row(fmt::format("materialise a {}-member segment (bitmap) p50", ten_count),
      fmt::format("{:.3f} ms", mat.p50), "<= 30 ms");
  row("  ... and its person ids, ascending, p50", fmt::format("{:.3f} ms", mat_ids.p50), "");
  row("  ... paged 10,000 at a time", fmt::format("{:.1f} ms", page_ms), "");
  row("incremental facts, one call each (20 rules, 21 seg.)",
      fmt::format("{:.0f} /s", double(half) / single_s), ">= 500,000/s");
  row("incremental facts, batches of 256",
      fmt::format("{:.0f} /s", double(args.facts - half) / batch_s), ">= 500,000/s");
  row("  fact latency p50 / p99",
      fmt::format("{:.2f}/{:.2f} us", fact_lat.p50 / 1000, fact_lat.p99 / 1000), "");
  row("  deltas per fact", fmt::format("{:.3f}", double(delta_count) / double(args.facts)), "");
  row("daily tick", fmt::format("{:.1f} ms", tick_ms), "");
  row("  deltas of the tick", fmt::format("{}", tick_deltas), "");
  row("tag memberships", fmt::format("{}", st.tag_memberships), "");
  row("bytes per (person, tag), tag bitmaps",
      fmt::format("{:.3f}", double(st.tag_bitmap_bytes) / double(st.tag_memberships)), "");
  row("bitmaps, all (MiB)", fmt::format("{:.1f}", st.bitmap_bytes / 1048576.0), "");
  row("per-person columns + index (B/person)",
      fmt::format("{:.1f}", double(st.column_bytes) / double(st.people)), "");
  row("orders + events (B/person)",
      fmt::format("{:.1f}", double(st.aggregate_bytes) / double(st.people)), "");
  row(fmt::format("  ({} orders, {} event cells)", st.orders, st.event_cells), "", "");
  row("RSS after load (MiB)", fmt::format("{:.0f}", (rss_loaded - rss0) / 1048576.0), "");
  row("RSS at the end (MiB)", fmt::format("{:.0f}", rss_end / 1048576.0), "");
  row("RSS after load per person (B)",
      fmt::format("{:.0f}", double(rss_loaded - rss0) / double(c.people)), "");
  row("load average (1 min), start / end", fmt::format("{:.2f} / {:.2f}", load0[0], load1[0]), "");
  if (failures) std::printf("\n%d check(s) FAILED\n", failures);
  return failures ? 1 : 0;
}

}  // namespace siyu::audience::bench
