// audience_differential_test: the engine against the SQL form of the same expressions, on the same
// store (SQLite and PostgreSQL). A random tenant — people with channels and merges made through
// the identity service, events of several types over ~120 days (some minutes or a day ahead) with
// integer and non-integer property values, orders with skus, categories and full and partial
// refunds, manual tags on any row of a person, rule tags referring to other tags, segments — is
// written to the store, the service builds the engine from it (domain::Audience::Rebuild), and for
// hundreds of random expressions the engine's count and member list must equal what
// ExpressionToSql's query returns. Then facts arrive the live way (Events::Ingest with new people,
// member tiers and merges by shared ids, Orders::Create, Orders::Refund — their observers feeding
// the service inside fact scopes, as the engine wires them —, Identity::Link + Reconcile of people
// merged already or not, manual tag changes) and the live engine must still equal SQL, segments
// included. A second case rebuilds and verifies the engine while facts keep arriving from other
// threads.
//
// Sizes: AUDIENCE_DIFF_PEOPLE (default 2000; 600 under ASan) and AUDIENCE_DIFF_EXPRESSIONS
// (default 400; 150 under ASan) per backend; AUDIENCE_DIFF_SEED picks the data (default 1).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "domain/audience/reference.h"
#include "domain/audience/sql.h"
#include "domain/events/events.h"
#include "domain/orders/orders.h"
#include "domain/people/audience.h"
#include "domain/people/people.h"
#include "domain/testing/store_fixture.h"

namespace siyu::audience {
namespace {

using audience::testing::ExprDomain;
using audience::testing::RandomExpr;
using domain::testing::StoreFixture;
using store::Conn;
using store::Params;
using store::Rows;

constexpr int64_t kDayMs = 86'400'000;

size_t EnvSize(const char* name, size_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : dflt;
}

#ifdef __SANITIZE_ADDRESS__
constexpr size_t kDefaultPeople = 600, kDefaultExpressions = 150;
#else
constexpr size_t kDefaultPeople = 2000, kDefaultExpressions = 400;
#endif

// Multi-row INSERTs of `cols` columns, 100 rows a statement.
class BulkInsert {
 public:
  BulkInsert(std::string head, size_t cols) : head_(std::move(head)), cols_(cols) {}
  void Add(Params row) {
    for (auto& v : row) params_.push_back(std::move(v));
    ++rows_;
  }
  Status Flush(Conn& c) {
    size_t done = 0;
    while (done < rows_) {
      const size_t n = std::min<size_t>(100, rows_ - done);
      std::string sql = head_ + " VALUES ";
      for (size_t i = 0; i < n; ++i) {
        sql += i ? ", (" : "(";
        for (size_t k = 0; k < cols_; ++k) sql += k ? ", ?" : "?";
        sql += ")";
      }
      Params p(params_.begin() + done * cols_, params_.begin() + (done + n) * cols_);
      RETURN_IF_ERROR(c.Exec(sql, p).status());
      done += n;
    }
    params_.clear();
    rows_ = 0;
    return Status::Ok();
  }

 private:
  std::string head_;
  size_t cols_;
  Params params_;
  size_t rows_ = 0;
};

class AudienceDifferential : public StoreFixture {
 protected:
  void SetUp() override {
    identity_options_.max_people_per_id = 0;  // merges are made on purpose here
    StoreFixture::SetUp();
    if (HasFatalFailure()) return;
    people_n_ = EnvSize("AUDIENCE_DIFF_PEOPLE", kDefaultPeople);
    expressions_n_ = EnvSize("AUDIENCE_DIFF_EXPRESSIONS", kDefaultExpressions);
    rng_.seed(EnvSize("AUDIENCE_DIFF_SEED", 1));
    events_ = std::make_unique<domain::Events>(db(), identity());
    orders_ = std::make_unique<domain::Orders>(db(), identity());
    audience_ = std::make_unique<domain::Audience>(db(), identity(), *events_);
    // Wired as the engine wires them (src/engine/engine.cc): observers inside fact scopes.
    events_->SetObserver(
        [this](int64_t tenant, const std::vector<domain::EventItem>& items,
               const domain::IngestResult& r) { audience_->OnEvents(tenant, items, r); });
    orders_->SetObserver([this](int64_t tenant, const domain::Order& o, bool refund) {
      refund ? audience_->OnRefund(tenant, o) : audience_->OnOrder(tenant, o);
    });
    auto scope = [this](int64_t tenant) { return audience_->BeginFact(tenant); };
    events_->SetFactScope(scope);
    orders_->SetFactScope(scope);
    tenant_ = NewTenant("differential");
  }
  void TearDown() override {
    if (audience_) audience_->Stop();
    audience_.reset();
    orders_.reset();
    events_.reset();
    StoreFixture::TearDown();
  }

  int64_t U(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(U(0, static_cast<int64_t>(v.size()) - 1))];
  }

  // A time in the ~120 days before now; sometimes minutes ahead, rarely a day or two ahead.
  int64_t RandomTs() {
    const int64_t r = U(0, 99);
    if (r < 3) return now_ + U(0, 5 * 60'000);
    if (r < 5) return now_ + U(1, 2) * kDayMs + U(0, kDayMs / 2);
    if (r < 25) return now_ - U(0, 10 * kDayMs);  // dense recent days (windows of 1–7 days)
    return now_ - U(0, 120 * kDayMs);
  }

  // Channels, people (with ids, through the people service's write functions), events, orders
  // with lines and refunds, in a few writes.
  void WriteFacts() {
    now_ = NowMs();
    Status s = db().Write([&](Conn& c) -> Status {
      for (int i = 1; i <= 5; ++i) {
        ASSIGN_OR_RETURN(Rows r, c.Query("INSERT INTO channels (tenant_id, name, source_pool, "
                                         "touchpoint, cost_fen, state, created_at) VALUES (?, ?, "
                                         "'ads', 'wecom', 0, ?, ?) RETURNING id",
                                         {tenant_, "channel " + std::to_string(i),
                                          "st" + std::to_string(i), now_}));
        channels_.push_back(r.at(0).Int(0));
      }
      for (size_t i = 0; i < people_n_; ++i) {
        std::optional<int64_t> ch;
        if (Chance(0.7)) ch = Pick(channels_);
        // Acquisitions cluster on a few days so that merged rows tie on first_seen_day.
        int64_t acquired = Chance(0.3) ? now_ - U(0, 3) * kDayMs : RandomTs();
        ASSIGN_OR_RETURN(int64_t id,
                         domain::CreateOriginPerson(c, tenant_, ch, acquired, std::nullopt, now_));
        auto ext = domain::ParseExternalId("member_no:m" + std::to_string(i));
        if (!ext.ok()) return ext.status();
        RETURN_IF_ERROR(domain::AttachId(c, identity(), tenant_, *ext, id, now_));
        rows_.push_back(id);
        ext_[id] = ext->canonical;
        if (Chance(0.3)) {  // the last touch moved (or was never recorded)
          store::Value last = Chance(0.8) ? store::Value(Pick(channels_)) : store::Value(nullptr);
          RETURN_IF_ERROR(
              c.Exec("UPDATE people SET last_channel_id = ? WHERE id = ?", {last, id}).status());
        }
      }
      return Status::Ok();
    });
    ASSERT_TRUE(s.ok()) << s.ToString();

    // Events.
    const std::vector<std::string> types = {"page_view", "view_item", "add_cart", "share",
                                            "member_bound"};
    const std::vector<std::string> levels = {"gold", "silver", "platinum"};
    s = db().Write([&](Conn& c) -> Status {
      BulkInsert ins(
          "INSERT INTO events (tenant_id, event_id, person_id, type, ts, touchpoint, "
          "channel_id, ids, properties, received_at)",
          10);
      uint64_t serial = 0;
      for (int64_t row : rows_) {
        if (!Chance(0.75)) continue;
        const int64_t n = U(1, 12);
        for (int64_t k = 0; k < n; ++k) {
          std::string type = Pick(types);
          if (type == "member_bound" && Chance(0.5)) type = "page_view";
          std::string props = "{}";
          if (type == "member_bound") {
            const int64_t r = U(0, 9);
            props = r < 7   ? "{\"level\":\"" + Pick(levels) + "\"}"
                    : r < 8 ? "{\"level\":3}"
                    : r < 9 ? "{\"level\":\"\"}"
                            : "{}";
          } else if (Chance(0.5)) {
            props = "{\"points\":" + std::to_string(U(-5, 40)) + ",\"amount\":1.5}";
          } else if (Chance(0.2)) {
            // Not integers: event_sum skips them.
            props = Pick(std::vector<std::string>{"{\"points\":\"12\"}", "{\"points\":1e2}",
                                                  "{\"points\":12.0}", "{\"points\":null}",
                                                  "{\"points\":[3]}"});
          }
          // Event ids in no particular relation to time (the tier is the greatest event_id's).
          std::string id =
              "ev" + std::to_string(U(100000, 999999)) + "-" + std::to_string(++serial);
          ins.Add({tenant_, id, row, type, RandomTs(),
                   std::string(domain::kEventTouchpoints[U(0, 5)]), nullptr, std::string("[]"),
                   props, now_});
        }
      }
      return ins.Flush(c);
    });
    ASSERT_TRUE(s.ok()) << s.ToString();

    // Orders, lines, refunds (full and partial), zero-amount orders.
    s = db().Write([&](Conn& c) -> Status {
      int64_t total = 0;
      uint64_t serial = 0;
      for (int64_t row : rows_) {
        if (!Chance(0.4)) continue;
        const int64_t n = U(1, 6);
        // Some buyers buy on a rhythm (lifecycle cycles), others at random.
        const bool rhythmic = Chance(0.5);
        const int64_t gap = U(3, 25);
        int64_t ts = RandomTs();
        for (int64_t k = 0; k < n; ++k) {
          if (rhythmic) {
            ts = now_ - (U(0, 40) + k * gap) * kDayMs - U(0, kDayMs / 2);
          } else {
            ts = RandomTs();
          }
          const int64_t lines = U(1, 3);
          int64_t amount = 0;
          std::vector<std::pair<std::string, int64_t>> ls;
          std::vector<store::Value> categories;
          const bool free = Chance(0.04);
          for (int64_t l = 0; l < lines; ++l) {
            const int64_t price = free ? 0 : U(1, 300) * 100;
            ls.emplace_back("sku" + std::to_string(U(1, 8)), price);
            categories.push_back(Chance(0.7) ? store::Value("c" + std::to_string(U(1, 3)))
                                             : store::Value(nullptr));
            amount += price;
          }
          const std::string no = "o" + std::to_string(++serial);
          int64_t refunded = 0;
          std::string status = "paid";
          const int64_t r = U(0, 99);
          if (r < 12) {
            refunded = amount;
            status = "refunded";
          } else if (r < 18 && amount > 1) {
            refunded = U(1, amount - 1);
          }
          ASSIGN_OR_RETURN(
              Rows o, c.Query("INSERT INTO orders (tenant_id, order_no, person_id, "
                              "status, total_fen, refunded_fen, content_hash, "
                              "paid_at, refunded_at, created_at) VALUES (?, ?, ?, ?, "
                              "?, ?, 'x', ?, ?, ?) RETURNING id",
                              {tenant_, no, row, status, amount, refunded, ts,
                               refunded ? store::Value(ts + 1000) : store::Value(nullptr), now_}));
          const int64_t id = o.at(0).Int(0);
          for (size_t l = 0; l < ls.size(); ++l) {
            RETURN_IF_ERROR(c.Exec("INSERT INTO order_lines (tenant_id, order_id, line_no, sku, "
                                   "quantity, unit_price_fen, amount_fen, category) VALUES (?, ?, "
                                   "?, ?, 1, ?, ?, ?)",
                                   {tenant_, id, static_cast<int64_t>(l), ls[l].first, ls[l].second,
                                    ls[l].second, categories[l]})
                                .status());
          }
          if (refunded) {
            RETURN_IF_ERROR(c.Exec("INSERT INTO refunds (tenant_id, order_id, amount_fen, "
                                   "refunded_at, created_at) VALUES (?, ?, ?, ?, ?)",
                                   {tenant_, id, refunded, ts + 1000, now_})
                                .status());
          }
          total += amount;
        }
      }
      return c
          .Exec("INSERT INTO tenant_totals (tenant_id, paid_fen) VALUES (?, ?)", {tenant_, total})
          .status();
    });
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Merges through the identity service: random links (pairs, and chains of three or more rows
  // as links land on people merged already).
  void Merge(size_t links) {
    for (size_t i = 0; i < links; ++i) {
      const int64_t a = Pick(rows_), b = Pick(rows_);
      if (a == b) continue;
      auto r = identity().Link(tenant_, ext_[a], ext_[b], "differential");
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
  }

  // Events the live way (Events::Ingest, the observer feeding the service): member tiers, integer
  // and other property values, new people, and events naming two people's ids (a merge).
  void IngestLive(const std::string& tag, size_t n) {
    const std::vector<std::string> levels = {"gold", "silver", "platinum", "bronze"};
    const int64_t now = NowMs();
    std::vector<domain::EventItem> items;
    for (size_t i = 0; i < n; ++i) {
      boost::json::object ev;
      ev["event_id"] = "live-" + tag + "-" + std::to_string(i);
      boost::json::array ids;
      const int64_t r = U(0, 99);
      if (r < 15) {
        ids.emplace_back("member_no:new-" + tag + "-" + std::to_string(i));
      } else {
        ids.emplace_back(ext_[Pick(rows_)]);
        if (r < 30) ids.emplace_back(ext_[Pick(rows_)]);
      }
      ev["ids"] = std::move(ids);
      ev["ts"] = now - U(0, 40) * kDayMs - U(0, kDayMs);
      ev["touchpoint"] = std::string(domain::kEventTouchpoints[U(0, 5)]);
      boost::json::object props;
      const int64_t k = U(0, 2);
      if (k == 0) {
        ev["type"] = "member_bound";
        props["member_no"] = "M" + std::to_string(i);
        if (Chance(0.8)) props["level"] = Pick(levels);
      } else {
        ev["type"] = k == 1 ? "page_view" : "share";
        if (k == 1) props["path"] = "/p/" + std::to_string(i);
        if (Chance(0.6)) props["points"] = U(-5, 40);
        if (Chance(0.2)) props["points"] = 2.5;
      }
      ev["properties"] = std::move(props);
      boost::json::value v(std::move(ev));
      items.push_back(domain::ReadEventItem(v, i, now));
      ASSERT_TRUE(items.back().rejected.ok()) << items.back().rejected.ToString();
    }
    auto r = events_->Ingest(tenant_, std::move(items));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_GT(r->accepted, 0);
  }

  // Manual tags (service), their members (any row of a person, directly), rule tags and segments.
  void DefineTags() {
    struct Manual {
      std::string group, name;
      double density;
    };
    const std::vector<Manual> manual = {{"兴趣", "护肤", 0.3}, {"兴趣", "彩妆", 0.15},
                                        {"身份", "会员", 0.4}, {"身份", "员工", 0.02},
                                        {"", "vip", 0.08},     {"活动", "新品", 0.1}};
    for (const Manual& m : manual) {
      auto t = audience_->CreateTag(tenant_, {m.group, m.name, std::nullopt});
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      written_tags_.emplace_back(t->id, (m.group.empty() ? "" : m.group + "/") + m.name);
      Status s = db().Write([&](Conn& c) -> Status {
        BulkInsert ins("INSERT INTO person_tags (tenant_id, tag_id, person_id, created_at)", 4);
        for (int64_t row : rows_) {
          if (Chance(m.density)) ins.Add({tenant_, t->id, row, now_});
        }
        return ins.Flush(c);
      });
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    // Rule tags, each may refer to the ones before.
    const std::vector<std::pair<std::string, std::string>> rules = {
        {"r_recent_buyer", "bought(last 30d) AND tag(\"兴趣/护肤\")"},
        {"r_engaged", "tag(\"r_recent_buyer\") OR events(\"share\", last 7d) >= 2"},
        {"r_lapsed_vip", "(tag(\"vip\") OR tag(\"活动/新品\")) AND NOT tag(\"r_engaged\")"},
        {"r_value", "gmv(last 90d) >= 20000 OR rfm(\"important_value\")"},
        {"r_cycle",
         "stage(\"dormant\") OR stage(\"recalled\") OR (stage(\"active\") AND "
         "tag(\"r_value\"))"},
        {"r_fresh", "first_seen_days <= 3 AND NOT tag(\"r_lapsed_vip\") AND tier(\"gold\")"},
        {"r_sku", "orders(sku=\"sku3\", last 60d) >= 1 AND last_order_days > 2"},
    };
    for (const auto& [name, rule] : rules) {
      auto t = audience_->CreateTag(tenant_, {"rules", name, rule});
      ASSERT_TRUE(t.ok()) << name << ": " << t.status().ToString();
      written_tags_.emplace_back(t->id, "rules/" + name);
    }
    const std::vector<std::string> segments = {
        "tag(\"r_engaged\") AND NOT tag(\"会员\")",
        "orders(last 30d) >= 2 OR stage(\"new\")",
        "events(\"page_view\", last 1d) >= 1",
        "tag(\"r_cycle\") AND touchpoint(\"wecom\")",
        "NOT (last_order_days > 14) AND first_channel(" + std::to_string(channels_[0]) + ")",
        "rfm(\"general_retain\") OR tag(\"r_sku\")",
    };
    for (size_t i = 0; i < segments.size(); ++i) {
      auto sg = audience_->CreateSegment(
          tenant_, {"segment " + std::to_string(i), segments[i], std::nullopt});
      ASSERT_TRUE(sg.ok()) << segments[i] << ": " << sg.status().ToString();
      segments_.push_back(sg->id);
    }
  }

  SqlContext Context(const AudienceEngine& e) {
    SqlContext ctx;
    ctx.dialect =
        db().dialect() == store::Dialect::kPostgres ? SqlDialect::kPostgres : SqlDialect::kSqlite;
    ctx.tenant_id = tenant_;
    ctx.today = e.today();
    ctx.tz_offset_ms = 8 * 3'600'000;
    ctx.tags = e.Tags();
    ctx.rfm = e.ResolvedRfmThresholds();
    ctx.lifecycle = e.options().lifecycle;
    return ctx;
  }

  std::vector<int64_t> SqlMembers(const std::string& sql) {
    std::vector<int64_t> out;
    Status s = db().Read([&](Conn& c) -> Status {
      out.clear();
      ASSIGN_OR_RETURN(Rows r, c.Query(sql));
      for (const auto& row : r) out.push_back(row.Int(0));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << sql;
    return out;
  }

  // Engine and SQL agree on `text` (count and members); false (with a report) otherwise.
  bool Same(AudienceEngine& e, const std::string& text, const std::string& what) {
    auto x = e.Parse(text);
    if (!x.ok()) {
      ADD_FAILURE() << what << ": cannot parse " << text << ": " << x.status().ToString();
      return false;
    }
    const SqlContext ctx = Context(e);
    auto sql = ExpressionToSql(*x, ctx);
    if (!sql.ok()) {
      ADD_FAILURE() << what << ": " << text << ": " << sql.status().ToString();
      return false;
    }
    auto set = e.Evaluate(*x);
    auto count = e.Count(*x);
    if (!set.ok() || !count.ok()) {
      ADD_FAILURE() << what << ": " << text << ": the engine failed";
      return false;
    }
    std::vector<int64_t> engine = e.Members(*set);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> sqlm = SqlMembers(*sql);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (ms > 2000) std::fprintf(stderr, "slow SQL (%.0f ms): %s\n", ms, text.c_str());
    if (engine == sqlm && *count == sqlm.size()) return true;
    std::vector<int64_t> only_engine, only_sql;
    std::set_difference(engine.begin(), engine.end(), sqlm.begin(), sqlm.end(),
                        std::back_inserter(only_engine));
    std::set_difference(sqlm.begin(), sqlm.end(), engine.begin(), engine.end(),
                        std::back_inserter(only_sql));
    auto few = [](const std::vector<int64_t>& v) {
      std::string s;
      for (size_t i = 0; i < v.size() && i < 8; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
      return s + (v.size() > 8 ? ", …" : "");
    };
    std::string detail;
    std::vector<int64_t> differing = only_engine;
    differing.insert(differing.end(), only_sql.begin(), only_sql.end());
    for (size_t i = 0; i < differing.size() && i < 3; ++i) detail += Describe(e, differing[i]);
    ADD_FAILURE() << what << " (" << GetParam() << "): " << text << "\n  engine count " << *count
                  << ", members " << engine.size() << "; SQL " << sqlm.size()
                  << "\n  only in the engine: " << few(only_engine)
                  << "\n  only in SQL: " << few(only_sql) << detail << "\n  SQL: " << *sql;
    return false;
  }

  // A person as the engine holds it and as the store has its rows.
  std::string Describe(AudienceEngine& e, int64_t person) {
    std::string out = "\n  person " + std::to_string(person) + ":";
    if (auto v = e.View(person); v.ok()) {
      out += " stage " + std::string(StageKey(v->stage)) + ", rfm " +
             std::string(RfmClassKey(v->rfm.cls)) + ", cycle " + std::to_string(v->cycle_days);
    }
    if (auto f = e.FactsOf(person); f.ok()) {
      out += ", first_seen " + std::to_string(f->attrs.first_seen_day) + ", first_channel " +
             std::to_string(f->attrs.first_channel) + ", last_channel " +
             std::to_string(f->attrs.last_channel) + ", tier '" + f->attrs.tier + "', orders " +
             std::to_string(f->orders.size());
      for (const auto& ev : f->events) {
        if (ev.values.empty()) continue;
        out += "\n    events " + ev.type + " day " + std::to_string(ev.day) + " x" +
               std::to_string(ev.count) + ":";
        for (const auto& [k, v] : ev.values) out += " " + k + "=" + std::to_string(v);
      }
    }
    Status s = db().Read([&](Conn& c) -> Status {
      ASSIGN_OR_RETURN(Rows evs, c.Query("SELECT x.type, x.ts, x.properties FROM events x JOIN "
                                         "people q ON q.id = x.person_id WHERE x.tenant_id = ? "
                                         "AND COALESCE(q.canonical_id, q.id) = ? AND "
                                         "x.properties LIKE '%points%' ORDER BY x.ts",
                                         {tenant_, person}));
      for (const auto& row : evs) {
        out += "\n    stored " + row.Text(0) + " day " +
               std::to_string((row.Int(1) + 8 * 3'600'000) / kDayMs) + " " + row.Text(2);
      }
      ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, acquired_at, first_channel_id, "
                                       "last_channel_id FROM people WHERE tenant_id = ? AND "
                                       "COALESCE(canonical_id, id) = ? ORDER BY id",
                                       {tenant_, person}));
      for (const auto& row : r) {
        out += "\n    row " + std::to_string(row.Int(0)) + ": day " +
               std::to_string((row.Int(1) + 8 * 3'600'000) / kDayMs) + ", first_channel " +
               std::to_string(row.Int(2)) + ", last_channel " + std::to_string(row.Int(3));
      }
      return Status::Ok();
    });
    if (!s.ok()) out += " (" + s.ToString() + ")";
    return out;
  }

  ExprDomain Domain() const {
    ExprDomain d;
    d.tags = written_tags_;
    d.event_types = {"page_view", "view_item", "add_cart", "share", "member_bound", "never_sent"};
    d.properties = {"points"};
    d.skus = {"sku1", "sku2", "sku3", "sku5", "sku8", "sku9"};
    d.categories = {"c1", "c2", "c3", "c9"};
    d.tiers = {"gold", "silver", "platinum", "bronze"};
    for (auto tp : domain::kEventTouchpoints) d.touchpoints.emplace_back(tp);
    d.channels = channels_;
    d.channels.push_back(channels_.back() + 1000);  // nobody's
    d.windows = {1, 2, 3, 7, 14, 30, 90, 365};
    return d;
  }

  // `n` random expressions agree; returns how many disagreed (reported as failures).
  size_t CompareRandom(AudienceEngine& e, size_t n, const std::string& what) {
    const ExprDomain d = Domain();
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
      Expr x = RandomExpr(rng_, d, static_cast<int>(U(0, 4)));
      // Every tag as written resolves through the engine (group/name or the bare name).
      const std::string text = PrintExpression(x);
      if (!Same(e, text, what + " #" + std::to_string(i)) && ++bad >= 5) break;
    }
    return bad;
  }

  void CompareSegments(AudienceEngine& e, const std::string& what) {
    for (const SegmentDef& s : e.Segments()) {
      auto all = audience_->AllSegmentMembers(tenant_, s.id);
      ASSERT_TRUE(all.ok());
      auto x = e.Parse(s.expression);
      ASSERT_TRUE(x.ok());
      auto sql = ExpressionToSql(*x, Context(e));
      ASSERT_TRUE(sql.ok()) << sql.status().ToString();
      EXPECT_EQ(*all, SqlMembers(*sql)) << what << ": segment " << s.expression;
    }
    for (const TagDef& t : e.Tags()) {
      EXPECT_TRUE(Same(e, "tag(\"" + (t.group.empty() ? "" : t.group + "/") + t.name + "\")",
                       what + ": tag " + t.name));
    }
  }

  size_t people_n_ = 0, expressions_n_ = 0;
  std::mt19937_64 rng_;
  int64_t tenant_ = 0;
  int64_t now_ = 0;
  std::vector<int64_t> channels_, rows_, segments_;
  std::map<int64_t, std::string> ext_;
  std::vector<std::pair<int64_t, std::string>> written_tags_;
  std::unique_ptr<domain::Events> events_;
  std::unique_ptr<domain::Orders> orders_;
  std::unique_ptr<domain::Audience> audience_;
};

TEST_P(AudienceDifferential, EngineEqualsSql) {
  ASSERT_NO_FATAL_FAILURE(WriteFacts());
  ASSERT_NO_FATAL_FAILURE(Merge(people_n_ / 8));
  ASSERT_NO_FATAL_FAILURE(DefineTags());
  // Planner statistics, as a store in service has them (without, PostgreSQL plans nested loops
  // over "1-row" tables and some queries take a minute).
  Status analyzed = db().Write([](Conn& c) { return c.ExecScript("ANALYZE"); });
  ASSERT_TRUE(analyzed.ok()) << analyzed.ToString();
  // The engine as the service builds it at start.
  ASSERT_TRUE(audience_->Rebuild(tenant_).ok());
  auto e = audience_->EngineOf(tenant_);
  ASSERT_TRUE(e);
  ASSERT_GT(e->PeopleCount(), people_n_ / 2);
  ASSERT_LT(e->PeopleCount(), people_n_);  // some merged
  // The data exercises every stage and several RFM classes.
  int stages = 0;
  for (uint64_t n : e->StageCounts()) stages += n > 0;
  EXPECT_GE(stages, 5);

  CompareSegments(*e, "after rebuild");
  EXPECT_EQ(CompareRandom(*e, expressions_n_, "after rebuild"), 0u);

  // Live facts: orders, refunds, merges, manual tag changes, through the services and the hooks.
  std::vector<domain::Order> made;
  for (int round = 0; round < 3; ++round) {
    ASSERT_NO_FATAL_FAILURE(IngestLive("r" + std::to_string(round), 60));
    for (int i = 0; i < 15; ++i) {
      domain::NewOrder o;
      o.order_no = "live-" + std::to_string(round) + "-" + std::to_string(i);
      o.person_id = Pick(rows_);
      const int64_t price = Chance(0.1) ? 0 : U(1, 200) * 100;
      o.lines.push_back(
          {"sku" + std::to_string(U(1, 8)), 1, price, 0,
           Chance(0.7) ? std::optional<std::string>("c" + std::to_string(U(1, 3))) : std::nullopt});
      o.total_fen = price;
      if (Chance(0.3)) o.paid_at = now_ - U(0, 20) * kDayMs;
      auto r = orders_->Create(tenant_, o);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      made.push_back(r->first);
    }
    for (int i = 0; i < 5; ++i) {
      const domain::Order& o = Pick(made);
      if (o.status == "refunded") continue;
      auto r = orders_->Refund(tenant_, o.order_no, std::nullopt, std::nullopt);
      if (!r.ok()) continue;  // refunded already
    }
    // Live merges of any people, merged already or not.
    ASSERT_NO_FATAL_FAILURE(Merge(12));
    ASSERT_TRUE(audience_->Reconcile(tenant_).ok());
    domain::TagMembersChange change;
    for (int i = 0; i < 10; ++i) change.add.push_back(Pick(rows_));
    for (int i = 0; i < 5; ++i) change.remove.push_back(Pick(rows_));
    auto ch = audience_->ChangeTagMembers(tenant_, written_tags_[0].first, change);
    ASSERT_TRUE(ch.ok()) << ch.status().ToString();

    auto live = audience_->EngineOf(tenant_);
    ASSERT_EQ(live, e);  // the same engine, updated in place
    const std::string what = "live round " + std::to_string(round);
    CompareSegments(*live, what);
    EXPECT_EQ(CompareRandom(*live, expressions_n_ / 4, what), 0u);
  }
}

// A rebuild (an unmerge, a settings change) and a verification while events, orders and refunds
// keep arriving: the rebuilt engine catches up with what arrived during its build (nothing lost,
// nothing counted twice), so verification finds no difference, during the stream and after it,
// and the engine still equals SQL.
TEST_P(AudienceDifferential, RebuildWhileFactsArrive) {
  people_n_ = std::min<size_t>(people_n_, 1000);
  // Other data than the first case's (seed 3 by default: it once showed a tier folded wrongly).
  rng_.seed(EnvSize("AUDIENCE_DIFF_SEED", 1) + 2);
  ASSERT_NO_FATAL_FAILURE(WriteFacts());
  ASSERT_NO_FATAL_FAILURE(Merge(people_n_ / 8));
  ASSERT_NO_FATAL_FAILURE(DefineTags());
  Status analyzed = db().Write([](Conn& c) { return c.ExecScript("ANALYZE"); });
  ASSERT_TRUE(analyzed.ok()) << analyzed.ToString();
  ASSERT_TRUE(audience_->Rebuild(tenant_).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::thread writer([&] {
    for (int k = 0; !stop; ++k) {
      IngestLive("c" + std::to_string(k), 25);
      domain::NewOrder o;
      o.order_no = "stream-" + std::to_string(k);
      o.person_id = Pick(rows_);
      const int64_t price = U(1, 200) * 100;
      o.lines.push_back({"sku" + std::to_string(U(1, 8)), 1, price, 0,
                         std::optional<std::string>("c" + std::to_string(U(1, 3)))});
      o.total_fen = price;
      auto r = orders_->Create(tenant_, o);
      if (r.ok() && k % 3 == 0) {
        (void)orders_->Refund(tenant_, r->first.order_no, std::nullopt, std::nullopt);
      }
      ++batches;
    }
  });
  auto wait_for = [&](int n) {
    while (batches < n && !HasFailure()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  wait_for(3);
  // Each build waits between its reads of the store until more facts have landed.
  audience_->SetBuildPauseForTesting([&] { wait_for(batches + 2); });
  for (int i = 0; i < 2; ++i) {
    const int before = batches;
    ASSERT_TRUE(audience_->Rebuild(tenant_).ok());
    EXPECT_GE(batches.load(), before + 4) << "facts arrived during the rebuild";
  }
  auto during = audience_->Verify(tenant_);
  audience_->SetBuildPauseForTesting(nullptr);
  wait_for(batches + 2);
  stop = true;
  writer.join();
  ASSERT_TRUE(during.ok()) << during.status().ToString();
  EXPECT_TRUE(during->ok) << (during->differences.empty() ? "" : during->differences[0]);
  auto after = audience_->Verify(tenant_);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_TRUE(after->ok) << (after->differences.empty() ? "" : after->differences[0]);
  auto e = audience_->EngineOf(tenant_);
  CompareSegments(*e, "after the stream");
  EXPECT_EQ(CompareRandom(*e, expressions_n_ / 4, "after the stream"), 0u);
}

// A merged person's tier is the level of the latest member_bound event of any of its rows, also
// when a later event names the level a row had already.
TEST_P(AudienceDifferential, TierFollowsTheLatestMemberBoundOfAnyRow) {
  now_ = NowMs();
  ASSERT_TRUE(audience_->Rebuild(tenant_).ok());
  int serial = 0;
  auto ingest = [&](std::vector<std::string> ids, const std::string& level, int64_t days_ago) {
    boost::json::object ev;
    ev["event_id"] = "tier-" + std::to_string(++serial);
    boost::json::array a;
    for (const auto& id : ids) a.emplace_back(id);
    ev["ids"] = std::move(a);
    ev["ts"] = now_ - days_ago * kDayMs;
    ev["touchpoint"] = "mini_program";
    if (level.empty()) {
      ev["type"] = "page_view";
      ev["properties"] = boost::json::object{{"path", "/"}};
    } else {
      ev["type"] = "member_bound";
      ev["properties"] = boost::json::object{{"member_no", "M1"}, {"level", level}};
    }
    boost::json::value v(std::move(ev));
    std::vector<domain::EventItem> items;
    items.push_back(domain::ReadEventItem(v, 0, NowMs()));
    auto r = events_->Ingest(tenant_, std::move(items));
    ASSERT_TRUE(r.ok() && r->accepted == 1) << (r.ok() ? "not accepted" : r.status().ToString());
  };
  ASSERT_NO_FATAL_FAILURE(ingest({"member_no:ta"}, "silver", 3));
  ASSERT_NO_FATAL_FAILURE(ingest({"member_no:tb"}, "gold", 2));
  ASSERT_NO_FATAL_FAILURE(ingest({"member_no:ta", "member_no:tb"}, "", 2));  // one person now
  auto e = audience_->EngineOf(tenant_);
  EXPECT_EQ(*e->Count("tier(\"gold\")"), 1u);
  ASSERT_NO_FATAL_FAILURE(ingest({"member_no:ta"}, "silver", 1));
  EXPECT_EQ(*e->Count("tier(\"silver\")"), 1u);
  EXPECT_EQ(*e->Count("tier(\"gold\")"), 0u);
  EXPECT_TRUE(Same(*e, "tier(\"silver\")", "after a later silver"));
  auto v = audience_->Verify(tenant_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << (v->differences.empty() ? "" : v->differences[0]);
}

INSTANTIATE_TEST_SUITE_P(Backends, AudienceDifferential, ::testing::Values("sqlite", "postgres"),
                         domain::testing::BackendName);

}  // namespace
}  // namespace siyu::audience
