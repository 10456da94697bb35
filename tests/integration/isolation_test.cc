// Tenant isolation, route by route. The table below must name every route of
// src/server/routes.cc: a new route fails RouteTableIsCovered until it gets an isolation case.
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "domain/wechat/callback_crypto.h"
#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

std::string ReadSource(const std::string& rel) {
  std::ifstream in(std::string(SIYU_SOURCE_DIR) + "/" + rel);
  if (!in) throw std::runtime_error("cannot read " + rel + " under " SIYU_SOURCE_DIR);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "METHOD /pattern" for every entry of the route table.
std::set<std::string> RoutesInTable() {
  std::string src = ReadSource("src/server/routes.cc");
  std::regex entry(R"re(\{\s*"([A-Z]+)"\s*,\s*"(/[^"]*)"\s*,\s*Access::)re");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(src.begin(), src.end(), entry); it != std::sregex_iterator();
       ++it) {
    out.insert((*it)[1].str() + " " + (*it)[2].str());
  }
  return out;
}

// The routes with an isolation case in IsolationTest.EveryRoute.
const std::set<std::string>& CoveredRoutes() {
  static const std::set<std::string> kCovered = {
      "GET /healthz",
      "GET /metrics",
      "POST /v1/auth/login",
      "POST /v1/auth/logout",
      "GET /v1/auth/me",
      "GET /v1/tenants",
      "POST /v1/tenants",
      "POST /v1/api-keys",
      "GET /v1/api-keys",
      "DELETE /v1/api-keys/{id}",
      "POST /v1/channels",
      "GET /v1/channels",
      "GET /v1/channels/{id}",
      "POST /v1/channels/{id}/codes",
      "GET /v1/channels/{id}/codes",
      "GET /v1/channels/{id}/codes/{kind}",
      "POST /v1/people",
      "GET /v1/people",
      "GET /v1/people/{id}",
      "POST /v1/orders",
      "GET /v1/orders",
      "GET /v1/orders/{order_no}",
      "POST /v1/orders/{order_no}/refund",
      "GET /v1/analytics/overview",
      "GET /v1/analytics/channels",
      "POST /v1/events",
      "GET /v1/events/catalogue",
      "GET /v1/people/{id}/timeline",
      "GET /v1/people/{id}/identity",
      "GET /v1/identity/resolve",
      "POST /v1/identity/links",
      "POST /v1/identity/merges/{id}/unmerge",
      "GET /v1/identity/quarantine",
      "POST /v1/identity/quarantine/{id}/approve",
      "POST /v1/identity/quarantine/{id}/reject",
      "POST /v1/identity/verify",
      "POST /v1/imports/{kind}",
      "GET /v1/wechat/apps",
      "PUT /v1/wechat/apps/{kind}",
      "POST /v1/wechat/mini_program/login",
      "POST /v1/wechat/mini_program/phone",
      "GET /v1/wechat/{kind}/{tenant}/callback",
      "POST /v1/wechat/{kind}/{tenant}/callback",
      "GET /v1/people/{id}/audience",
      "GET /v1/tags",
      "POST /v1/tags",
      "DELETE /v1/tags/{id}",
      "POST /v1/tags/{id}/people",
      "GET /v1/segments",
      "POST /v1/segments",
      "GET /v1/segments/{id}",
      "DELETE /v1/segments/{id}",
      "GET /v1/segments/{id}/members",
      "GET /v1/segments/{id}/members.csv",
      "POST /v1/audience/count",
      "GET /v1/audience/rfm",
      "GET /v1/audience/lifecycle",
      "GET /v1/audience/koc",
      "GET /v1/audience/settings",
      "PUT /v1/audience/settings",
      "POST /v1/audience/verify",
      "POST /v1/segments/{id}/snapshots",
      "GET /v1/segments/{id}/snapshots",
      "GET /v1/segment-snapshots/{id}/members.csv",
  };
  return kCovered;
}

TEST(RouteTable, IsCoveredByIsolationCasesAndDocumented) {
  std::set<std::string> table = RoutesInTable();
  ASSERT_GE(table.size(), 20u) << "the route table parser found too few routes; did its syntax "
                                  "change? Update RoutesInTable()";
  for (const auto& r : table) {
    EXPECT_TRUE(CoveredRoutes().count(r))
        << "route '" << r << "' has no tenant-isolation case; add one to IsolationTest.EveryRoute";
  }
  for (const auto& r : CoveredRoutes()) {
    EXPECT_TRUE(table.count(r)) << "isolation case for '" << r << "', which is not a route";
  }
  // docs/api.md and the table name the same routes (`METHOD /path`, maybe with a query).
  std::string doc = ReadSource("docs/api.md");
  std::regex documented(R"re(`(GET|POST|PUT|PATCH|DELETE) (/[^` ?]*))re");
  std::set<std::string> in_doc;
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), documented);
       it != std::sregex_iterator(); ++it) {
    in_doc.insert((*it)[1].str() + " " + (*it)[2].str());
  }
  for (const auto& r : table) {
    EXPECT_TRUE(in_doc.count(r)) << "route '" << r << "' is not documented in docs/api.md";
  }
  for (const auto& r : in_doc) {
    EXPECT_TRUE(CoveredRoutes().count(r))
        << "docs/api.md documents '" << r << "', which has no tenant-isolation case";
    EXPECT_TRUE(table.count(r)) << "docs/api.md documents '" << r << "', which is not a route";
  }
}

// Tenants: A (bootstrap, superuser `admin`), C (a second bootstrap, operator `other`, who is no
// member of A or B) and B (created by `admin` through the API).
class IsolationTest : public BackendTest {
 protected:
  void BeforeStart() override {
    other_ = Bootstrap(*store_, "Brand C", "other", "other password " + RandomHex(8));
  }
  Credentials other_;
};

value Line(const std::string& sku, int64_t qty, int64_t price) {
  return {{"sku", sku}, {"quantity", qty}, {"unit_price_fen", price}};
}

value OrderBody(const std::string& no, value who, json::array lines, int64_t paid_at) {
  int64_t total = 0;
  for (const auto& l : lines)
    total += l.at("quantity").as_int64() * l.at("unit_price_fen").as_int64();
  json::object o{{"order_no", no}, {"lines", lines}, {"total_fen", total}, {"paid_at", paid_at}};
  if (who.is_int64()) {
    o["person_id"] = who;
  } else {
    o["external_id"] = who;
  }
  return o;
}

TEST_P(IsolationTest, EveryRoute) {
  const int64_t t0 = NowMs() - 10 * 86'400'000LL;
  Api anon(port());
  Reply admin_login = anon.Post("/v1/auth/login",
                                value{{"username", boot_.username}, {"password", boot_.password}});
  ASSERT_TRUE(HasStatus(admin_login, 200));
  const std::string admin_session = admin_login.Str("/token");
  const int64_t tenant_a = boot_.tenant_id, tenant_c = other_.tenant_id;

  // Tenant B, through the API, and an admin key for it.
  Reply tb = Api(port(), admin_session).Post("/v1/tenants", value{{"name", "Brand B"}});
  ASSERT_TRUE(HasStatus(tb, 201));
  const int64_t tenant_b = tb.Int("/id");
  EXPECT_NE(tenant_b, tenant_a);
  EXPECT_NE(tenant_b, tenant_c);
  Reply kb = Api(port(), admin_session, std::to_string(tenant_b))
                 .Post("/v1/api-keys", value{{"name", "b admin"}, {"role", "admin"}});
  ASSERT_TRUE(HasStatus(kb, 201));
  Api b(port(), kb.Str("/key"));
  Api a = AdminApi();

  // Both configure a WeCom app; B's with the published sample token, A's with its own.
  const std::string wx_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
  ASSERT_TRUE(HasStatus(
      b.Send("PUT", "/v1/wechat/apps/wecom",
             json::serialize(
                 value{{"app_id", "wxBcorp"}, {"token", "btoken"}, {"encoding_aes_key", wx_key}})),
      200));
  // B also has a mini-program; A has none.
  ASSERT_TRUE(
      HasStatus(b.Send("PUT", "/v1/wechat/apps/mini_program",
                       json::serialize(value{{"app_id", "wxBmini"}, {"secret", "bsecret"}})),
                200));
  auto a_crypto = wechat::CallbackCrypto::Create("atoken", wx_key, "wxAcorp");
  ASSERT_TRUE(a_crypto.ok());

  // B's data: a channel, people (one shares an external id with A), orders (one shares an
  // order_no with A), a refund, and a spare key.
  Reply bch =
      b.Post("/v1/channels",
             value{{"name", "Shared name"}, {"source_pool", "partner"}, {"touchpoint", "group"}});
  ASSERT_TRUE(HasStatus(bch, 201));
  const int64_t b_channel = bch.Int("/id");
  const std::string b_state = bch.Str("/state");
  // B's link code (links need no WeChat app).
  const std::string b_codes = "/v1/channels/" + std::to_string(b_channel) + "/codes";
  ASSERT_TRUE(HasStatus(
      b.Post(b_codes, value{{"kind", "link"}, {"url", "https://b.example.com/b-landing"}}), 201));
  Reply bp1 = b.Post(
      "/v1/people",
      value{{"external_id", "unionid:b-only"}, {"channel_state", b_state}, {"acquired_at", t0}});
  ASSERT_TRUE(HasStatus(bp1, 201));
  const int64_t b_person = bp1.Int("/person/id");
  Reply bp2 = b.Post("/v1/people", value{{"external_id", "unionid:shared"}, {"acquired_at", t0}});
  ASSERT_TRUE(HasStatus(bp2, 201));
  ASSERT_TRUE(HasStatus(
      b.Post("/v1/orders", OrderBody("B-ONLY", b_person, {Line("B", 1, 70000)}, t0 + 1000)), 201));
  ASSERT_TRUE(HasStatus(
      b.Post("/v1/orders", OrderBody("SHARED-1", "unionid:shared", {Line("B", 2, 300)}, t0 + 2000)),
      201));
  ASSERT_TRUE(HasStatus(
      b.Post("/v1/orders", OrderBody("B-REFUNDED", b_person, {Line("B", 1, 900)}, t0 + 3000)),
      201));
  ASSERT_TRUE(HasStatus(b.Post("/v1/orders/B-REFUNDED/refund", value{{"reason", "b"}}), 200));
  // B's events: one for its person, one under an event_id A will use too.
  auto event = [](const std::string& id, const std::string& who, int64_t ts,
                  const std::string& sku) {
    return value{
        {"event_id", id}, {"type", "product_view"},       {"ids", json::array{value(who)}},
        {"ts", ts},       {"touchpoint", "mini_program"}, {"properties", value{{"sku", sku}}}};
  };
  Reply be = b.Post(
      "/v1/events",
      value{{"events", json::array{event("B-EV", "unionid:b-only", t0, "B-SKU"),
                                   event("SHARED-EV", "unionid:b-events", t0 + 1, "B-SKU")}}});
  ASSERT_TRUE(HasStatus(be, 200));
  ASSERT_EQ(be.Int("/accepted"), 2) << be.body;
  EXPECT_EQ(be.Int("/results/0/person_id"), b_person);
  const int64_t b_events_person = be.Int("/results/1/person_id");
  // B's identity: a merge of its two people, and a shared phone whose fourth person is held in
  // quarantine (the guard's default is 3 people per id).
  Reply bm =
      b.Post("/v1/identity/links",
             value{{"id_a", "unionid:b-only"}, {"id_b", "unionid:shared"}, {"reason", "B merge"}});
  ASSERT_TRUE(HasStatus(bm, 200));
  ASSERT_EQ(bm.Str("/result"), "linked") << bm.body;
  const int64_t b_merge = bm.Int("/merge_id");
  int64_t b_quarantine = 0;
  for (int i = 1; i <= 4; ++i) {
    std::string who = "unionid:bq" + std::to_string(i);
    ASSERT_TRUE(HasStatus(b.Post("/v1/people", value{{"external_id", who}}), 201));
    Reply l = b.Post("/v1/identity/links", value{{"id_a", "phone:13900000001"}, {"id_b", who}});
    ASSERT_TRUE(HasStatus(l, 200));
    EXPECT_EQ(l.Str("/result"), i == 1 ? "attached" : i < 4 ? "linked" : "quarantined") << l.body;
    if (i == 4) b_quarantine = l.Int("/quarantine_id");
  }
  ASSERT_NE(b_quarantine, 0);
  // B's audience: a manual tag on its person and a segment of it.
  Reply bt = b.Post("/v1/tags", value{{"group", "B-GROUP"}, {"name", "B-TAG"}});
  ASSERT_TRUE(HasStatus(bt, 201));
  const int64_t b_tag = bt.Int("/id");
  ASSERT_TRUE(HasStatus(b.Post("/v1/tags/" + std::to_string(b_tag) + "/people",
                               value{{"add", json::array{b_person}}}),
                        200));
  Reply bs = b.Post("/v1/segments", value{{"name", "B-SEG"}, {"expression", "tag(\"B-TAG\")"}});
  ASSERT_TRUE(HasStatus(bs, 201));
  EXPECT_EQ(bs.Int("/people"), 1) << bs.body;
  const int64_t b_segment = bs.Int("/id");
  Reply bsnap =
      b.Post("/v1/segments/" + std::to_string(b_segment) + "/snapshots", value{{"name", "B-SNAP"}});
  ASSERT_TRUE(HasStatus(bsnap, 201));
  const int64_t b_snapshot = bsnap.Int("/id");
  ASSERT_TRUE(HasStatus(
      b.Put("/v1/audience/settings", value{{"lifecycle", value{{"default_cycle_days", 45}}}}),
      200));
  Reply b_spare = b.Post("/v1/api-keys", value{{"name", "b spare"}, {"role", "analyst"}});
  ASSERT_TRUE(HasStatus(b_spare, 201));
  const int64_t b_key_id = b_spare.Int("/id");

  // A's own data, so that "A sees nothing of B" is not "A sees nothing".
  Reply ach =
      a.Post("/v1/channels",
             value{{"name", "A channel"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}});
  ASSERT_TRUE(HasStatus(ach, 201));
  Reply ap = a.Post("/v1/people", value{{"external_id", "unionid:a-only"},
                                        {"channel_state", ach.Str("/state")},
                                        {"acquired_at", t0}});
  ASSERT_TRUE(HasStatus(ap, 201));
  const int64_t a_person = ap.Int("/person/id");
  ASSERT_TRUE(HasStatus(
      a.Post("/v1/orders", OrderBody("A-ONLY", a_person, {Line("A", 1, 1100)}, t0 + 1000)), 201));

  const std::string window = "from=0&to=" + std::to_string(NowMs() + 86'400'000);
  auto snapshot_b = [&]() {
    std::string s;
    for (const std::string& path : std::vector<std::string>{
             "/v1/channels",
             "/v1/api-keys",
             "/v1/tenants",
             "/v1/channels/" + std::to_string(b_channel),
             "/v1/analytics/overview?" + window,
             "/v1/analytics/channels?" + window,
             "/v1/wechat/apps",
             "/v1/people/" + std::to_string(b_person) + "/timeline",
             "/v1/people/" + std::to_string(b_events_person) + "/timeline",
             "/v1/people/" + std::to_string(b_person) + "/identity",
             "/v1/identity/quarantine",
             "/v1/identity/resolve?id=phone:13900000001",
             "/v1/tags",
             "/v1/segments",
             "/v1/segments/" + std::to_string(b_segment) + "/members",
             "/v1/audience/rfm",
             "/v1/audience/lifecycle",
             "/v1/audience/koc",
             "/v1/audience/settings",
             "/v1/segments/" + std::to_string(b_segment) + "/snapshots",
             "/v1/segment-snapshots/" + std::to_string(b_snapshot) + "/members.csv",
             "/v1/people/" + std::to_string(b_person) + "/audience"}) {
      Reply r = b.Get(path);
      EXPECT_TRUE(HasStatus(r, 200)) << path;
      s += path + " " + r.body + "\n";
    }
    for (const auto& p : AllPages(b, "/v1/people", 500)) s += json::serialize(p) + "\n";
    for (const auto& o : AllPages(b, "/v1/orders", 500)) s += json::serialize(o) + "\n";
    for (const std::string& path : {b_codes, b_codes + "/link", b_codes + "/link.svg"}) {
      Reply r = b.Get(path);
      EXPECT_TRUE(HasStatus(r, 200)) << path;
      s += path + " " + r.body + "\n";
    }
    return s;
  };
  // B's orders changed its person's lifecycle stage: let those changes be recorded (as events of
  // B's timeline) before taking the picture of B.
  for (int i = 0; i < 500; ++i) {
    Reply m = anon.Get("/metrics");
    if (m.body.find("\nsiyu_audience_changes_pending 0\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string b_before = snapshot_b();
  const std::vector<std::string> b_secrets = {"Brand B",      "b-only", "B-ONLY", "B-REFUNDED",
                                              kb.Str("/key"), b_state,  "B-EV",   "B-SKU",
                                              "B-TAG",        "B-SEG",  "B-GROUP"};

  auto ids_of = [](const std::vector<value>& items, const char* field) {
    std::set<std::string> out;
    for (const auto& i : items) out.insert(json::serialize(i.at(field)));
    return out;
  };
  auto expect_no_b_rows = [&](const std::string& body, const std::string& where) {
    for (const auto& s : b_secrets) {
      EXPECT_EQ(body.find(s), std::string::npos) << where << " shows B's '" << s << "': " << body;
    }
  };

  std::map<std::string, std::function<void()>> cases;
  cases["GET /healthz"] = [&] {
    Reply r = a.Get("/healthz");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.json.as_object().size(), 2u) << "health carries no tenant data: " << r.body;
  };
  cases["GET /metrics"] = [&] {
    Reply r = a.Get("/metrics");
    ASSERT_TRUE(HasStatus(r, 200));
    expect_no_b_rows(r.body, "/metrics");
  };
  cases["POST /v1/auth/login"] = [&] {
    // Each operator's login lists only the tenants they belong to.
    Reply o = anon.Post("/v1/auth/login",
                        value{{"username", other_.username}, {"password", other_.password}});
    ASSERT_TRUE(HasStatus(o, 200));
    ASSERT_EQ(o.At("/tenants").as_array().size(), 1u) << o.body;
    EXPECT_EQ(o.Int("/tenants/0/id"), tenant_c);
    Reply l = anon.Post("/v1/auth/login",
                        value{{"username", boot_.username}, {"password", boot_.password}});
    ASSERT_TRUE(HasStatus(l, 200));
    std::set<int64_t> ts;
    for (const auto& t : l.At("/tenants").as_array()) ts.insert(t.at("id").as_int64());
    EXPECT_EQ(ts, (std::set<int64_t>{tenant_a, tenant_b}));
    // One operator's password does not open another's account.
    EXPECT_TRUE(IsError(anon.Post("/v1/auth/login", value{{"username", other_.username},
                                                          {"password", boot_.password}}),
                        401, "INVALID_CREDENTIALS"));
  };
  cases["POST /v1/auth/logout"] = [&] {
    Reply o = anon.Post("/v1/auth/login",
                        value{{"username", other_.username}, {"password", other_.password}});
    ASSERT_TRUE(HasStatus(o, 200));
    Api other(port(), o.Str("/token"));
    ASSERT_TRUE(HasStatus(other.Post("/v1/auth/logout", ""), 200));
    EXPECT_TRUE(IsError(other.Get("/v1/auth/me"), 401, "UNAUTHENTICATED"));
    EXPECT_TRUE(HasStatus(Api(port(), admin_session).Get("/v1/auth/me"), 200))
        << "one operator's logout ended another's session";
    // A key cannot log anybody out.
    EXPECT_TRUE(IsError(a.Post("/v1/auth/logout", ""), 403, "FORBIDDEN"));
  };
  cases["GET /v1/auth/me"] = [&] {
    Reply o = anon.Post("/v1/auth/login",
                        value{{"username", other_.username}, {"password", other_.password}});
    ASSERT_TRUE(HasStatus(o, 200));
    Reply me = Api(port(), o.Str("/token")).Get("/v1/auth/me");
    ASSERT_TRUE(HasStatus(me, 200));
    ASSERT_EQ(me.At("/tenants").as_array().size(), 1u);
    EXPECT_EQ(me.Int("/tenants/0/id"), tenant_c);
    expect_no_b_rows(me.body, "other's /v1/auth/me");
    // Choosing a tenant one does not belong to is refused.
    EXPECT_TRUE(IsError(Api(port(), o.Str("/token"), std::to_string(tenant_b)).Get("/v1/auth/me"),
                        403, "FORBIDDEN"));
  };
  cases["GET /v1/tenants"] = [&] {
    Reply r = a.Get("/v1/tenants");
    ASSERT_TRUE(HasStatus(r, 200));
    ASSERT_EQ(r.At("/items").as_array().size(), 1u) << r.body;
    EXPECT_EQ(r.Int("/items/0/id"), tenant_a);
    // A key's tenant is its own, whatever X-Siyu-Tenant says.
    Reply spoof = Api(port(), boot_.api_key, std::to_string(tenant_b)).Get("/v1/tenants");
    ASSERT_TRUE(HasStatus(spoof, 200));
    ASSERT_EQ(spoof.At("/items").as_array().size(), 1u) << spoof.body;
    EXPECT_EQ(spoof.Int("/items/0/id"), tenant_a);
    Reply o = anon.Post("/v1/auth/login",
                        value{{"username", other_.username}, {"password", other_.password}});
    Reply ot = Api(port(), o.Str("/token")).Get("/v1/tenants");
    ASSERT_TRUE(HasStatus(ot, 200));
    ASSERT_EQ(ot.At("/items").as_array().size(), 1u) << ot.body;
    EXPECT_EQ(ot.Int("/items/0/id"), tenant_c);
  };
  cases["POST /v1/tenants"] = [&] {
    EXPECT_TRUE(IsError(a.Post("/v1/tenants", value{{"name", "Sneaky"}}), 403, "FORBIDDEN"));
    // `other` is a superuser too (bootstrap makes one): its new tenant is its own, and no
    // member of A or B gains access to it.
    Reply o = anon.Post("/v1/auth/login",
                        value{{"username", other_.username}, {"password", other_.password}});
    ASSERT_TRUE(HasStatus(o, 200));
    Reply t = Api(port(), o.Str("/token")).Post("/v1/tenants", value{{"name", "Other's second"}});
    ASSERT_TRUE(HasStatus(t, 201));
    Reply l = Api(port(), admin_session).Get("/v1/tenants");
    ASSERT_TRUE(HasStatus(l, 200));
    EXPECT_EQ(l.At("/items").as_array().size(), 2u) << l.body;
    EXPECT_EQ(l.body.find("Other's second"), std::string::npos);
    EXPECT_TRUE(IsError(Api(port(), admin_session, std::to_string(t.Int("/id"))).Get("/v1/people"),
                        403, "FORBIDDEN"));
    EXPECT_EQ(a.Get("/v1/tenants").body.find("Other's second"), std::string::npos);
  };
  cases["POST /v1/api-keys"] = [&] {
    // Even with B named in X-Siyu-Tenant, A's key creates keys in A, which cannot see B.
    Reply k = Api(port(), boot_.api_key, std::to_string(tenant_b))
                  .Post("/v1/api-keys", value{{"name", "a reader"}, {"role", "analyst"}});
    ASSERT_TRUE(HasStatus(k, 201));
    Api reader(port(), k.Str("/key"));
    Reply ts = reader.Get("/v1/tenants");
    EXPECT_EQ(ts.Int("/items/0/id"), tenant_a);
    EXPECT_TRUE(IsError(reader.Get("/v1/orders/B-ONLY"), 404, "NOT_FOUND"));
    // The admin session of both tenants creates keys in the tenant it names.
    Reply ka = Api(port(), admin_session, std::to_string(tenant_a))
                   .Post("/v1/api-keys", value{{"name", "a by session"}, {"role", "analyst"}});
    ASSERT_TRUE(HasStatus(ka, 201));
    EXPECT_TRUE(IsError(Api(port(), ka.Str("/key")).Get("/v1/orders/B-ONLY"), 404, "NOT_FOUND"));
    EXPECT_TRUE(HasStatus(Api(port(), ka.Str("/key")).Get("/v1/orders/A-ONLY"), 200));
  };
  cases["GET /v1/api-keys"] = [&] {
    Reply r = a.Get("/v1/api-keys");
    ASSERT_TRUE(HasStatus(r, 200));
    for (const auto& k : r.At("/items").as_array()) {
      EXPECT_NE(k.at("id").as_int64(), b_key_id);
      EXPECT_NE(k.at("id").as_int64(), kb.Int("/id"));
    }
    expect_no_b_rows(r.body, "A's key list");
  };
  cases["DELETE /v1/api-keys/{id}"] = [&] {
    for (int64_t id : {b_key_id, kb.Int("/id")}) {
      EXPECT_TRUE(IsError(a.Delete("/v1/api-keys/" + std::to_string(id)), 404, "NOT_FOUND"));
    }
    EXPECT_TRUE(HasStatus(b.Get("/v1/channels"), 200)) << "A revoked B's key";
  };
  cases["POST /v1/channels"] = [&] {
    // Channel names are unique per tenant, not across tenants.
    Reply r =
        a.Post("/v1/channels",
               value{{"name", "Shared name"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}});
    ASSERT_TRUE(HasStatus(r, 201));
    EXPECT_NE(r.Int("/id"), b_channel);
    EXPECT_NE(r.Str("/state"), b_state);
  };
  cases["GET /v1/channels"] = [&] {
    Reply r = a.Get("/v1/channels");
    ASSERT_TRUE(HasStatus(r, 200));
    std::vector<value> items(r.At("/items").as_array().begin(), r.At("/items").as_array().end());
    EXPECT_FALSE(ids_of(items, "id").count(std::to_string(b_channel)));
    EXPECT_EQ(r.body.find(b_state), std::string::npos);
  };
  cases["GET /v1/channels/{id}"] = [&] {
    EXPECT_TRUE(IsError(a.Get("/v1/channels/" + std::to_string(b_channel)), 404, "NOT_FOUND"));
  };
  cases["POST /v1/channels/{id}/codes"] = [&] {
    // B's channel is no channel of A's, whatever the body asks.
    EXPECT_TRUE(IsError(
        a.Post(b_codes,
               value{{"kind", "link"}, {"url", "https://a.example.com/"}, {"refresh", true}}),
        404, "NOT_FOUND"));
    // A's own code carries A's state, and nothing of B's.
    Reply own = a.Post("/v1/channels/" + std::to_string(ach.Int("/id")) + "/codes",
                       value{{"kind", "link"}, {"url", "https://a.example.com/landing"}});
    ASSERT_TRUE(HasStatus(own, 201));
    EXPECT_NE(own.body.find(ach.Str("/state")), std::string::npos) << own.body;
    EXPECT_EQ(own.body.find("b-landing"), std::string::npos) << own.body;
    expect_no_b_rows(own.body, "A's link code");
  };
  cases["GET /v1/channels/{id}/codes"] = [&] {
    EXPECT_TRUE(IsError(a.Get(b_codes), 404, "NOT_FOUND"));
  };
  cases["GET /v1/channels/{id}/codes/{kind}"] = [&] {
    for (const char* kind : {"link", "link.svg", "link.png", "wecom_contact_way.png"}) {
      EXPECT_TRUE(IsError(a.Get(b_codes + "/" + kind), 404, "NOT_FOUND")) << kind;
    }
  };
  cases["POST /v1/people"] = [&] {
    EXPECT_TRUE(IsError(a.Post("/v1/people", value{{"external_id", "unionid:via-b-state"},
                                                   {"channel_state", b_state}}),
                        422, "UNKNOWN_CHANNEL_STATE", "channel_state"));
    EXPECT_TRUE(IsError(
        a.Post("/v1/people", value{{"external_id", "unionid:a-only"}, {"channel_state", b_state}}),
        422, "UNKNOWN_CHANNEL_STATE", "channel_state"));
    // B's external id is a stranger in A: a new person of A, not B's.
    Reply r = a.Post("/v1/people", value{{"external_id", "unionid:b-only"}});
    ASSERT_TRUE(HasStatus(r, 201));
    EXPECT_NE(r.Int("/person/id"), b_person);
    EXPECT_TRUE(r.At("/person/first_channel_id").is_null());
  };
  cases["GET /v1/people"] = [&] {
    auto items = AllPages(a, "/v1/people", 2);
    EXPECT_FALSE(ids_of(items, "id").count(std::to_string(b_person)));
    EXPECT_FALSE(ids_of(items, "id").count(std::to_string(bp2.Int("/person/id"))));
    Reply shared = a.Get("/v1/people?external_id=unionid%3Ashared");
    EXPECT_TRUE(IsError(shared, 404, "NOT_FOUND")) << "A found B's person by external id";
  };
  cases["GET /v1/people/{id}"] = [&] {
    EXPECT_TRUE(IsError(a.Get("/v1/people/" + std::to_string(b_person)), 404, "NOT_FOUND"));
    EXPECT_TRUE(
        IsError(a.Get("/v1/people/" + std::to_string(bp2.Int("/person/id"))), 404, "NOT_FOUND"));
  };
  cases["GET /v1/people/{id}/timeline"] = [&] {
    for (int64_t id : {b_person, bp2.Int("/person/id"), b_events_person}) {
      EXPECT_TRUE(
          IsError(a.Get("/v1/people/" + std::to_string(id) + "/timeline"), 404, "NOT_FOUND"));
    }
    Reply ae =
        a.Post("/v1/events",
               value{{"events", json::array{event("A-EV", "unionid:a-only", t0 + 5000, "A-SKU")}}});
    ASSERT_TRUE(HasStatus(ae, 200));
    EXPECT_EQ(ae.Int("/results/0/person_id"), a_person);
    Reply own = a.Get("/v1/people/" + std::to_string(a_person) + "/timeline");
    ASSERT_TRUE(HasStatus(own, 200));
    // A's own event, and siyu's records of what A's order changed (stage, RFM class): no more.
    std::vector<std::string> sent, changes;
    for (const auto& e : own.At("/items").as_array()) {
      const std::string type(e.at("type").as_string());
      (type == "stage_changed" || type == "rfm_class_changed" ? changes : sent)
          .push_back(std::string(e.at("event_id").as_string()));
    }
    EXPECT_EQ(sent, std::vector<std::string>{"A-EV"}) << own.body;
    EXPECT_EQ(changes.size(), 2u) << own.body;
    expect_no_b_rows(own.body, "A's timeline");
  };
  cases["GET /v1/people/{id}/identity"] = [&] {
    for (int64_t id : {b_person, bp2.Int("/person/id"), b_events_person}) {
      EXPECT_TRUE(
          IsError(a.Get("/v1/people/" + std::to_string(id) + "/identity"), 404, "NOT_FOUND"));
    }
    Reply own = a.Get("/v1/people/" + std::to_string(a_person) + "/identity");
    ASSERT_TRUE(HasStatus(own, 200));
    EXPECT_EQ(own.Str("/ids/0/id"), "unionid:a-only");
    expect_no_b_rows(own.body, "A's person identity");
  };
  cases["GET /v1/identity/resolve"] = [&] {
    for (const char* id : {"unionid:shared", "unionid:bq4", "phone:13900000001"}) {
      EXPECT_TRUE(IsError(a.Get(std::string("/v1/identity/resolve?id=") + id), 404, "NOT_FOUND"))
          << id;
    }
    Reply own = a.Get("/v1/identity/resolve?id=unionid:a-only");
    ASSERT_TRUE(HasStatus(own, 200));
    EXPECT_EQ(own.Int("/person_id"), a_person);
  };
  cases["POST /v1/identity/links"] = [&] {
    // B's ids are strangers in A: linking them makes A's own person, and leaves B's alone.
    Reply r = a.Post("/v1/identity/links",
                     value{{"id_a", "unionid:bq1"}, {"id_b", "unionid:bq2"}, {"reason", "A"}});
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Str("/result"), "attached") << r.body;
    EXPECT_NE(r.Int("/person_id"), b_person);
  };
  cases["POST /v1/identity/merges/{id}/unmerge"] = [&] {
    EXPECT_TRUE(IsError(a.Post("/v1/identity/merges/" + std::to_string(b_merge) + "/unmerge",
                               value{{"reason", "A tries B's merge"}}),
                        404, "NOT_FOUND", "merge_id"));
  };
  cases["GET /v1/identity/quarantine"] = [&] {
    Reply r = a.Get("/v1/identity/quarantine");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_TRUE(r.At("/items").as_array().empty()) << r.body;
  };
  cases["POST /v1/identity/quarantine/{id}/approve"] = [&] {
    EXPECT_TRUE(
        IsError(a.Post("/v1/identity/quarantine/" + std::to_string(b_quarantine) + "/approve",
                       value{{"reason", "A"}}),
                404, "NOT_FOUND", "quarantine_id"));
  };
  cases["POST /v1/identity/quarantine/{id}/reject"] = [&] {
    EXPECT_TRUE(
        IsError(a.Post("/v1/identity/quarantine/" + std::to_string(b_quarantine) + "/reject",
                       value{{"reason", "A"}}),
                404, "NOT_FOUND", "quarantine_id"));
  };
  cases["POST /v1/identity/verify"] = [&] {
    Reply r = a.Post("/v1/identity/verify", value(json::object{}));
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_TRUE(r.At("/ok").as_bool()) << r.body;
    EXPECT_EQ(r.Int("/pending_quarantines"), 0) << "B's quarantine counted for A: " << r.body;
    EXPECT_EQ(r.Int("/active_merges"), 0) << r.body;
    Reply rb = b.Post("/v1/identity/verify", value(json::object{}));
    ASSERT_TRUE(HasStatus(rb, 200));
    EXPECT_EQ(rb.Int("/pending_quarantines"), 1) << rb.body;
  };
  cases["POST /v1/events"] = [&] {
    // B's channel_state is unknown in A; B's ids are strangers in A; B's event_ids are free in A.
    // (unionid:b-events is an id only B's events introduced, so no other case depends on it.)
    Reply r =
        a.Post("/v1/events",
               value{{"events", json::array{value{{"event_id", "A-VIA-B-STATE"},
                                                  {"type", "follow"},
                                                  {"ids", json::array{"unionid:a-only"}},
                                                  {"ts", t0 + 7000},
                                                  {"touchpoint", "official_account"},
                                                  {"channel_state", b_state}},
                                            value{{"event_id", "SHARED-EV"},
                                                  {"type", "product_view"},
                                                  {"ids", json::array{"unionid:b-events"}},
                                                  {"ts", t0 + 8000},
                                                  {"touchpoint", "mini_program"},
                                                  {"properties", value{{"sku", "A-SKU"}}}}}}});
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Str("/results/0/status"), "rejected");
    EXPECT_EQ(r.Str("/results/0/code"), "UNKNOWN_CHANNEL_STATE");
    EXPECT_EQ(r.Str("/results/1/status"), "accepted") << "B's event_id counted as A's duplicate";
    const int64_t p = r.Int("/results/1/person_id");
    EXPECT_NE(p, b_person);
    EXPECT_NE(p, b_events_person);
    Reply tl = a.Get("/v1/people/" + std::to_string(p) + "/timeline");
    ASSERT_TRUE(HasStatus(tl, 200));
    ASSERT_EQ(tl.At("/items").as_array().size(), 1u) << tl.body;
    EXPECT_EQ(tl.Str("/items/0/properties/sku"), "A-SKU");
  };
  cases["GET /v1/events/catalogue"] = [&] {
    Reply ra = a.Get("/v1/events/catalogue");
    ASSERT_TRUE(HasStatus(ra, 200));
    EXPECT_EQ(ra.body, b.Get("/v1/events/catalogue").body) << "the catalogue is the same for all";
    expect_no_b_rows(ra.body, "the event catalogue");
  };
  cases["POST /v1/orders"] = [&] {
    EXPECT_TRUE(IsError(
        a.Post("/v1/orders", OrderBody("A-STEAL-1", b_person, {Line("X", 1, 1)}, t0 + 5000)), 422,
        "UNKNOWN_PERSON", "person_id"));
    EXPECT_TRUE(IsError(a.Post("/v1/orders", OrderBody("A-STEAL-2", "unionid:shared",
                                                       {Line("X", 1, 1)}, t0 + 5000)),
                        422, "UNKNOWN_PERSON", "external_id"));
    // order_no is unique per tenant: B's SHARED-1 is no conflict in A.
    Reply r = a.Post("/v1/orders", OrderBody("SHARED-1", a_person, {Line("A", 5, 10)}, t0 + 6000));
    ASSERT_TRUE(HasStatus(r, 201));
    EXPECT_EQ(r.Int("/person_id"), a_person);
    EXPECT_EQ(r.Int("/total_fen"), 50);
    // And B's order_no with B's exact content, sent to A, is a new order of A's person.
    Reply again =
        a.Post("/v1/orders", OrderBody("B-ONLY", a_person, {Line("B", 1, 70000)}, t0 + 1000));
    ASSERT_TRUE(HasStatus(again, 201));
    EXPECT_EQ(again.Int("/person_id"), a_person);
  };
  cases["GET /v1/orders"] = [&] {
    auto items = AllPages(a, "/v1/orders", 2);
    for (const auto& o : items) {
      EXPECT_NE(o.at("person_id").as_int64(), b_person);
      EXPECT_NE(o.at("order_no"), "B-REFUNDED");
    }
    EXPECT_TRUE(AllPages(a, "/v1/orders?person_id=" + std::to_string(b_person), 10).empty())
        << "A listed B's person's orders";
  };
  cases["GET /v1/orders/{order_no}"] = [&] {
    EXPECT_TRUE(IsError(a.Get("/v1/orders/B-REFUNDED"), 404, "NOT_FOUND"));
    Reply shared = a.Get("/v1/orders/SHARED-1");
    if (shared.status == 200) {
      EXPECT_EQ(shared.Int("/person_id"), a_person) << "A read B's SHARED-1";
    } else {
      EXPECT_TRUE(IsError(shared, 404, "NOT_FOUND"));
    }
  };
  cases["POST /v1/orders/{order_no}/refund"] = [&] {
    EXPECT_TRUE(
        IsError(a.Post("/v1/orders/B-REFUNDED/refund", value{{"reason", "a"}}), 404, "NOT_FOUND"));
    // B-ONLY exists in A too by now (POST /v1/orders case) or not; either way B's stays paid.
    Reply r = a.Post("/v1/orders/B-ONLY/refund", value{{"reason", "a"}});
    if (r.status == 200) {
      EXPECT_EQ(r.Int("/person_id"), a_person);
    } else {
      EXPECT_TRUE(IsError(r, 404, "NOT_FOUND"));
    }
    EXPECT_EQ(b.Get("/v1/orders/B-ONLY").Str("/status"), "paid") << "A refunded B's order";
  };
  cases["POST /v1/imports/{kind}"] = [&] {
    // B's person is unknown to A: the row fails, and B's data is unchanged (snapshot).
    Reply r = a.Send("POST", "/v1/imports/orders",
                     "order_no,person_id,sku,quantity,unit_price_fen\nA-IMP-1," +
                         std::to_string(b_person) + ",X,1,100\n",
                     "text/csv");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/failed"), 1);
    EXPECT_EQ(r.Str("/errors/0/code"), "UNKNOWN_PERSON");
    // A's people import lands in A only.
    Reply p =
        a.Send("POST", "/v1/imports/people", "external_id\nunionid:imported-by-a\n", "text/csv");
    ASSERT_TRUE(HasStatus(p, 200));
    EXPECT_EQ(p.Int("/created"), 1);
    EXPECT_TRUE(IsError(b.Get("/v1/people?external_id=unionid:imported-by-a"), 404, "NOT_FOUND"));
    // A tag import cannot put B's person in a tag, and its tags are A's.
    Reply t = a.Send("POST", "/v1/imports/tags",
                     "tag,person_id\nA导入," + std::to_string(b_person) + "\n", "text/csv");
    ASSERT_TRUE(HasStatus(t, 200));
    EXPECT_EQ(t.Int("/failed"), 1);
    EXPECT_EQ(t.Str("/errors/0/code"), "UNKNOWN_PERSON");
    EXPECT_EQ(b.Get("/v1/tags").body.find("A导入"), std::string::npos) << "A's tag shows in B";
  };
  cases["GET /v1/wechat/apps"] = [&] {
    Reply r = a.Get("/v1/wechat/apps");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.body.find("wxBcorp"), std::string::npos) << "A sees B's WeChat app";
  };
  cases["PUT /v1/wechat/apps/{kind}"] = [&] {
    ASSERT_TRUE(HasStatus(
        a.Send("PUT", "/v1/wechat/apps/wecom",
               json::serialize(value{
                   {"app_id", "wxAcorp"}, {"token", "atoken"}, {"encoding_aes_key", wx_key}})),
        200));
    EXPECT_NE(b.Get("/v1/wechat/apps").body.find("wxBcorp"), std::string::npos)
        << "A's configuration replaced B's";
  };
  cases["POST /v1/wechat/mini_program/login"] = [&] {
    // B's mini-program app is not A's: A has none, and WeChat is never called with B's secret.
    EXPECT_TRUE(IsError(a.Post("/v1/wechat/mini_program/login", value{{"code", "acode"}}), 404,
                        "NOT_FOUND"));
  };
  cases["POST /v1/wechat/mini_program/phone"] = [&] {
    // A session token is looked up in the caller's tenant only (the cross-tenant replay of a real
    // session is in miniprogram_test.cc).
    EXPECT_TRUE(
        IsError(a.Post("/v1/wechat/mini_program/phone", value{{"session", "mps_notasession"},
                                                              {"encrypted_data", "AAAA"},
                                                              {"iv", "AAAAAAAAAAAAAAAAAAAAAA=="}}),
                404, "NOT_FOUND", "session"));
  };
  const std::string b_callback = "/v1/wechat/wecom/" + std::to_string(tenant_b) + "/callback";
  cases["GET /v1/wechat/{kind}/{tenant}/callback"] = [&] {
    // A's signing secret does not open B's callback.
    auto echo = a_crypto->Encrypt("12345");
    ASSERT_TRUE(echo.ok());
    std::string sig = a_crypto->Signature("1700000000", "42", *echo);
    Api raw(port());
    EXPECT_TRUE(IsError(raw.Get(b_callback + "?msg_signature=" + sig +
                                "&timestamp=1700000000&nonce=42&echostr=" + *echo),
                        401, "BAD_SIGNATURE"));
  };
  cases["POST /v1/wechat/{kind}/{tenant}/callback"] = [&] {
    std::string xml =
        "<xml><ToUserName>wxAcorp</ToUserName><FromUserName>sys</FromUserName><CreateTime>"
        "1700000000</CreateTime><MsgType>event</MsgType><Event>change_external_contact</Event>"
        "<ChangeType>add_external_contact</ChangeType><UserID>u</UserID><ExternalUserID>wmX"
        "</ExternalUserID></xml>";
    auto enc = a_crypto->Encrypt(xml);
    ASSERT_TRUE(enc.ok());
    std::string sig = a_crypto->Signature("1700000000", "43", *enc);
    Api raw(port());
    EXPECT_TRUE(IsError(
        raw.Send("POST", b_callback + "?msg_signature=" + sig + "&timestamp=1700000000&nonce=43",
                 "<xml><Encrypt><![CDATA[" + *enc + "]]></Encrypt></xml>", "text/xml"),
        401, "BAD_SIGNATURE"));
  };
  cases["GET /v1/analytics/channels"] = [&] {
    Reply r = a.Get("/v1/analytics/channels?" + window);
    ASSERT_TRUE(HasStatus(r, 200));
    std::set<int64_t> own;
    Reply channels = a.Get("/v1/channels");
    for (const auto& ch : channels.At("/items").as_array()) {
      own.insert(ch.at("id").as_int64());
    }
    int64_t new_people = 0, gmv = 0;
    for (const auto& row : r.At("/rows").as_array()) {
      const auto& id = row.at("channel_id");
      if (!id.is_null()) {
        EXPECT_TRUE(own.count(id.as_int64())) << "A's report shows channel " << id.as_int64();
      }
      new_people += row.at("new_people").as_int64();
      gmv += row.at("gmv_fen").as_int64();
    }
    // A's cohort is exactly A's people, and their GMV exactly A's orders.
    EXPECT_EQ(new_people, static_cast<int64_t>(AllPages(a, "/v1/people", 500).size()));
    int64_t own_gmv = 0;
    for (const auto& o : AllPages(a, "/v1/orders", 500)) {
      own_gmv += o.at("total_fen").as_int64() - o.at("refunded_fen").as_int64();
    }
    EXPECT_EQ(gmv, own_gmv);
    EXPECT_EQ(r.Int("/total/gmv_fen"), own_gmv);
  };
  cases["GET /v1/analytics/overview"] = [&] {
    EXPECT_TRUE(IsError(a.Get("/v1/analytics/overview?channel=" + std::to_string(b_channel)), 404,
                        "NOT_FOUND", "channel"));
    Reply r = a.Get("/v1/analytics/overview?" + window);
    ASSERT_TRUE(HasStatus(r, 200));
    ExpectOverviewConsistent(r.json);
    // What A holds, counted here from A's own lists.
    auto people = AllPages(a, "/v1/people", 500);
    auto orders = AllPages(a, "/v1/orders", 500);
    int64_t paid = 0, refunded = 0;
    std::set<int64_t> buyers;
    for (const auto& o : orders) {
      paid += o.at("total_fen").as_int64();
      refunded += o.at("refunded_fen").as_int64();
      buyers.insert(o.at("person_id").as_int64());
    }
    EXPECT_EQ(r.Int("/people"), static_cast<int64_t>(people.size()));
    EXPECT_EQ(r.Int("/orders"), static_cast<int64_t>(orders.size()));
    EXPECT_EQ(r.Int("/buyers"), static_cast<int64_t>(buyers.size()));
    EXPECT_EQ(r.Int("/paid_fen"), paid);
    EXPECT_EQ(r.Int("/refunded_fen"), refunded);
    for (const auto& row : r.At("/by_channel").as_array()) {
      EXPECT_NE(row.at("channel_id"), value(b_channel)) << "B's channel in A's overview";
    }
  };

  // A console session on a tenant its operator does not belong to.
  auto session_cases = [&] {
    Api wrong(port(), admin_session, std::to_string(tenant_c));
    EXPECT_TRUE(IsError(wrong.Get("/v1/channels"), 403, "FORBIDDEN"));
    EXPECT_TRUE(
        IsError(wrong.Post("/v1/people", value{{"external_id", "unionid:c1"}}), 403, "FORBIDDEN"));
    EXPECT_TRUE(IsError(wrong.Get("/v1/analytics/overview"), 403, "FORBIDDEN"));
    EXPECT_TRUE(IsError(wrong.Post("/v1/api-keys", value{{"name", "c"}, {"role", "admin"}}), 403,
                        "FORBIDDEN"));
    EXPECT_TRUE(
        IsError(Api(port(), admin_session, "999999").Get("/v1/channels"), 403, "FORBIDDEN"));
    Reply o = anon.Post("/v1/auth/login",
                        value{{"username", other_.username}, {"password", other_.password}});
    ASSERT_TRUE(HasStatus(o, 200));
    for (int64_t t : {tenant_a, tenant_b}) {
      Api other(port(), o.Str("/token"), std::to_string(t));
      EXPECT_TRUE(IsError(other.Get("/v1/orders/B-ONLY"), 403, "FORBIDDEN"));
      EXPECT_TRUE(IsError(other.Get("/v1/people"), 403, "FORBIDDEN"));
    }
    // The same session, on a tenant it does belong to, works: the 403s above are about tenants.
    Api right(port(), admin_session, std::to_string(tenant_b));
    EXPECT_TRUE(HasStatus(right.Get("/v1/orders/B-ONLY"), 200));
  };

  // ---- audience ----
  const std::string b_seg_path = "/v1/segments/" + std::to_string(b_segment);
  const std::string b_tag_path = "/v1/tags/" + std::to_string(b_tag);
  auto a_people = [&] { return AllPages(a, "/v1/people", 500).size(); };
  cases["GET /v1/tags"] = [&] {
    Reply r = a.Get("/v1/tags");
    ASSERT_TRUE(HasStatus(r, 200));
    expect_no_b_rows(r.body, "/v1/tags");
  };
  cases["POST /v1/tags"] = [&] {
    // Names are per tenant: A may have its own B-TAG.
    Reply r = a.Post("/v1/tags", value{{"name", "B-TAG"}});
    ASSERT_TRUE(HasStatus(r, 201));
    EXPECT_NE(r.Int("/id"), b_tag);
    EXPECT_EQ(r.Int("/people"), 0);
  };
  cases["DELETE /v1/tags/{id}"] = [&] {
    EXPECT_TRUE(IsError(a.Delete(b_tag_path), 404, "NOT_FOUND"));
  };
  cases["POST /v1/tags/{id}/people"] = [&] {
    EXPECT_TRUE(IsError(a.Post(b_tag_path + "/people", value{{"add", json::array{a_person}}}), 404,
                        "NOT_FOUND"));
    // B's person is nobody in A.
    Reply t = a.Post("/v1/tags", value{{"name", "A manual"}});
    ASSERT_TRUE(HasStatus(t, 201));
    Reply r = a.Post("/v1/tags/" + std::to_string(t.Int("/id")) + "/people",
                     value{{"add", json::array{b_person, a_person}}});
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/changed"), 1) << r.body;
    EXPECT_EQ(r.Int("/skipped"), 1) << r.body;
  };
  cases["GET /v1/segments"] = [&] {
    Reply r = a.Get("/v1/segments");
    ASSERT_TRUE(HasStatus(r, 200));
    expect_no_b_rows(r.body, "/v1/segments");
  };
  cases["POST /v1/segments"] = [&] {
    // B's tags are not A's vocabulary.
    EXPECT_TRUE(IsError(
        a.Post("/v1/segments", value{{"name", "A seg"}, {"expression", "tag(\"B-GROUP/B-TAG\")"}}),
        422, "UNKNOWN_TAG"));
    Reply r = a.Post("/v1/segments",
                     value{{"name", "A buyers"}, {"expression", "orders(last 3650d) >= 1"}});
    ASSERT_TRUE(HasStatus(r, 201));
    Reply n = a.Post("/v1/audience/count", value{{"expression", "orders(last 3650d) >= 1"}});
    ASSERT_TRUE(HasStatus(n, 200));
    EXPECT_EQ(r.Int("/people"), n.Int("/people")) << "A's buyers only: " << r.body;
  };
  cases["GET /v1/segments/{id}"] = [&] {
    EXPECT_TRUE(IsError(a.Get(b_seg_path), 404, "NOT_FOUND"));
  };
  cases["DELETE /v1/segments/{id}"] = [&] {
    EXPECT_TRUE(IsError(a.Delete(b_seg_path), 404, "NOT_FOUND"));
  };
  cases["GET /v1/segments/{id}/members"] = [&] {
    EXPECT_TRUE(IsError(a.Get(b_seg_path + "/members"), 404, "NOT_FOUND"));
  };
  cases["GET /v1/segments/{id}/members.csv"] = [&] {
    EXPECT_TRUE(IsError(a.Get(b_seg_path + "/members.csv"), 404, "NOT_FOUND"));
  };
  cases["POST /v1/audience/count"] = [&] {
    EXPECT_TRUE(
        IsError(a.Post("/v1/audience/count", value{{"expression", "tag(\"B-GROUP/B-TAG\")"}}), 422,
                "UNKNOWN_TAG"));
    Reply r = a.Post("/v1/audience/count", value{{"expression", "orders(last 3650d) >= 1"}});
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/people"), 1) << r.body;
  };
  cases["GET /v1/audience/rfm"] = [&] {
    Reply r = a.Get("/v1/audience/rfm");
    ASSERT_TRUE(HasStatus(r, 200));
    int64_t people = 0, gmv = 0;
    for (const auto& c : r.At("/cells").as_array()) {
      people += c.at("people").as_int64();
      gmv += c.at("gmv_fen").as_int64();
    }
    EXPECT_EQ(people, 1) << r.body;
    EXPECT_EQ(gmv, 1100) << "A's one order, not B's: " << r.body;
  };
  cases["GET /v1/audience/lifecycle"] = [&] {
    Reply r = a.Get("/v1/audience/lifecycle");
    ASSERT_TRUE(HasStatus(r, 200));
    int64_t people = 0;
    for (const auto& st : r.At("/stages").as_array()) people += st.at("people").as_int64();
    EXPECT_EQ(people, static_cast<int64_t>(a_people())) << r.body;
  };
  cases["GET /v1/audience/koc"] = [&] {
    Reply r = a.Get("/v1/audience/koc?limit=500");
    ASSERT_TRUE(HasStatus(r, 200));
    for (const auto& k : r.At("/items").as_array()) {
      EXPECT_NE(k.at("person_id").as_int64(), b_person) << r.body;
    }
    EXPECT_EQ(r.Int("/share/people"), static_cast<int64_t>(a_people())) << r.body;
    EXPECT_EQ(r.Int("/share/total_gmv_fen"), 1100) << r.body;
  };
  cases["GET /v1/audience/settings"] = [&] {
    Reply r = a.Get("/v1/audience/settings");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/lifecycle/default_cycle_days"), 30) << "B's setting leaked: " << r.body;
  };
  cases["PUT /v1/audience/settings"] = [&] {
    Reply r = a.Put("/v1/audience/settings",
                    value{{"rfm", value{{"recency", value{{"mode", "fixed"}, {"value", 60}}}}}});
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/rfm/recency/value"), 60);
    EXPECT_EQ(r.Int("/lifecycle/default_cycle_days"), 30);
  };
  cases["POST /v1/audience/verify"] = [&] {
    Reply r = a.Post("/v1/audience/verify", value(json::object{}));
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_TRUE(r.At("/ok").as_bool()) << r.body;
    EXPECT_EQ(r.Int("/people"), static_cast<int64_t>(a_people()));
  };
  cases["POST /v1/segments/{id}/snapshots"] = [&] {
    EXPECT_TRUE(IsError(a.Post(b_seg_path + "/snapshots", value{{"name", "A"}}), 404, "NOT_FOUND"));
  };
  cases["GET /v1/segments/{id}/snapshots"] = [&] {
    Reply r = a.Get(b_seg_path + "/snapshots");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_TRUE(r.At("/items").as_array().empty()) << r.body;
  };
  cases["GET /v1/segment-snapshots/{id}/members.csv"] = [&] {
    EXPECT_TRUE(
        IsError(a.Get("/v1/segment-snapshots/" + std::to_string(b_snapshot) + "/members.csv"), 404,
                "NOT_FOUND"));
  };
  cases["GET /v1/people/{id}/audience"] = [&] {
    EXPECT_TRUE(
        IsError(a.Get("/v1/people/" + std::to_string(b_person) + "/audience"), 404, "NOT_FOUND"));
    Reply r = a.Get("/v1/people/" + std::to_string(a_person) + "/audience");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Str("/stage"), "new") << r.body;
  };

  for (const auto& route : RoutesInTable()) {
    SCOPED_TRACE("isolation case for " + route);
    auto it = cases.find(route);
    if (it == cases.end()) {
      ADD_FAILURE() << "no isolation case for route " << route;
      continue;
    }
    it->second();
  }
  for (const auto& [route, fn] : cases) {
    EXPECT_TRUE(CoveredRoutes().count(route)) << route << " is missing from CoveredRoutes()";
  }
  {
    SCOPED_TRACE("console sessions and X-Siyu-Tenant");
    session_cases();
  }
  EXPECT_EQ(snapshot_b(), b_before) << "tenant A's calls changed tenant B's data";
}

SIYU_BACKEND_SUITE(IsolationTest);

}  // namespace
}  // namespace siyu::it
