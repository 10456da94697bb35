// Roles: each access class of the route table, probed with every role. Allowed calls succeed,
// the others answer 403 FORBIDDEN and change nothing.
#include <functional>
#include <map>
#include <set>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

class RolesTest : public BackendTest {};

struct Probe {
  std::string route;
  std::set<std::string> allowed;  // roles
  int ok_status;
  // Runs the call as `api`; `n` makes names unique. Returns the reply.
  std::function<Reply(Api& api, int n)> call;
  // After a refused call: checks that its target is untouched.
  std::function<void(int n)> untouched = nullptr;
};

TEST_P(RolesTest, EachRoleCanUseExactlyItsRoutes) {
  Api admin = AdminApi();
  Reply ch = admin.Post(
      "/v1/channels", value{{"name", "Base"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}});
  ASSERT_TRUE(HasStatus(ch, 201));
  Reply p = admin.Post("/v1/people", value{{"external_id", "unionid:p0"}});
  ASSERT_TRUE(HasStatus(p, 201));
  const int64_t pid = p.Int("/person/id");
  auto order_body = [&](const std::string& no) {
    return value{
        {"order_no", no},
        {"person_id", pid},
        {"lines", json::array{value{{"sku", "S"}, {"quantity", 1}, {"unit_price_fen", 10}}}},
        {"total_fen", 10}};
  };
  ASSERT_TRUE(HasStatus(admin.Post("/v1/orders", order_body("R-0")), 201));

  std::map<std::string, std::string> keys = {{"admin", boot_.api_key}};
  std::map<std::string, int64_t> key_ids;
  for (const char* role : {"operator", "analyst", "ingest"}) {
    Reply k =
        admin.Post("/v1/api-keys", value{{"name", std::string(role) + " key"}, {"role", role}});
    ASSERT_TRUE(HasStatus(k, 201));
    EXPECT_EQ(k.Str("/role"), role);
    EXPECT_EQ(k.Str("/key").rfind("siyu_" + std::to_string(k.Int("/id")) + "_", 0), 0u)
        << "keys look like siyu_<id>_<secret>: " << k.body;
    EXPECT_TRUE(k.At("/revoked_at").is_null());
    keys[role] = k.Str("/key");
    key_ids[role] = k.Int("/id");
  }
  {
    Reply list = admin.Get("/v1/api-keys");
    ASSERT_TRUE(HasStatus(list, 200));
    EXPECT_EQ(list.At("/items").as_array().size(), 4u);
    for (const auto& k : list.At("/items").as_array()) {
      EXPECT_FALSE(k.as_object().contains("key")) << "a key's secret is shown only at creation";
    }
  }

  const std::set<std::string> all = {"admin", "operator", "analyst", "ingest"};
  const std::set<std::string> read = {"admin", "operator", "analyst"};
  const std::set<std::string> write = {"admin", "operator"};
  const std::set<std::string> ingest = {"admin", "operator", "ingest"};
  const std::set<std::string> admin_only = {"admin"};
  const std::string cid = std::to_string(ch.Int("/id"));

  int channels = 1, people = 1, orders = 1, live_keys = 4;
  std::vector<Probe> probes = {
      {"GET /v1/channels", read, 200, [](Api& a, int) { return a.Get("/v1/channels"); }},
      {"GET /v1/channels/{id}", read, 200,
       [&](Api& a, int) { return a.Get("/v1/channels/" + cid); }},
      {"GET /v1/people", read, 200, [](Api& a, int) { return a.Get("/v1/people"); }},
      {"GET /v1/people/{id}", read, 200,
       [&](Api& a, int) { return a.Get("/v1/people/" + std::to_string(pid)); }},
      {"GET /v1/orders", read, 200, [](Api& a, int) { return a.Get("/v1/orders"); }},
      {"GET /v1/orders/{order_no}", read, 200, [](Api& a, int) { return a.Get("/v1/orders/R-0"); }},
      {"GET /v1/analytics/overview", read, 200,
       [](Api& a, int) { return a.Get("/v1/analytics/overview"); }},
      {"POST /v1/channels", write, 201,
       [&](Api& a, int n) {
         Reply r = a.Post("/v1/channels", value{{"name", "ch-" + std::to_string(n)},
                                                {"source_pool", "partner"},
                                                {"touchpoint", "group"}});
         if (r.status == 201) ++channels;
         return r;
       }},
      {"POST /v1/people", ingest, 201,
       [&](Api& a, int n) {
         Reply r = a.Post("/v1/people", value{{"external_id", "unionid:r" + std::to_string(n)}});
         if (r.status == 201) ++people;
         return r;
       }},
      {"POST /v1/orders", ingest, 201,
       [&](Api& a, int n) {
         Reply r = a.Post("/v1/orders", order_body("R-" + std::to_string(n)));
         if (r.status == 201) ++orders;
         return r;
       }},
      {"POST /v1/orders/{order_no}/refund", ingest, 200,
       [&](Api& a, int n) {
         // A fresh order for each attempt, created by the admin.
         Reply o = admin.Post("/v1/orders", order_body("RF-" + std::to_string(n)));
         EXPECT_TRUE(HasStatus(o, 201));
         ++orders;
         return a.Post("/v1/orders/RF-" + std::to_string(n) + "/refund", value{{"reason", "r"}});
       },
       [&](int n) {
         Reply o = admin.Get("/v1/orders/RF-" + std::to_string(n));
         EXPECT_EQ(o.Str("/status"), "paid") << "a refused refund refunded the order";
       }},
      {"POST /v1/api-keys", admin_only, 201,
       [&](Api& a, int n) {
         Reply r =
             a.Post("/v1/api-keys", value{{"name", "k" + std::to_string(n)}, {"role", "admin"}});
         if (r.status == 201) ++live_keys;
         return r;
       }},
      {"GET /v1/api-keys", admin_only, 200, [](Api& a, int) { return a.Get("/v1/api-keys"); }},
      {"DELETE /v1/api-keys/{id}", admin_only, 200,
       [&](Api& a, int n) {
         Reply k = admin.Post("/v1/api-keys",
                              value{{"name", "victim" + std::to_string(n)}, {"role", "analyst"}});
         EXPECT_TRUE(HasStatus(k, 201));
         ++live_keys;
         Reply r = a.Delete("/v1/api-keys/" + std::to_string(k.Int("/id")));
         if (r.status == 200) --live_keys;
         return r;
       }},
      {"GET /v1/tenants", all, 200, [](Api& a, int) { return a.Get("/v1/tenants"); }},
      {"POST /v1/tenants",
       {},
       201,
       [](Api& a, int n) {
         return a.Post("/v1/tenants", value{{"name", "T" + std::to_string(n)}});
       }},
      {"GET /v1/auth/me", {}, 200, [](Api& a, int) { return a.Get("/v1/auth/me"); }},
      {"POST /v1/auth/logout",
       {},
       200,
       [](Api& a, int) { return a.Post("/v1/auth/logout", "{}"); }},
  };

  int n = 0;
  for (const Probe& pr : probes) {
    for (const auto& [role, key] : keys) {
      SCOPED_TRACE(role + " key on " + pr.route);
      Api api(port(), key);
      int id = ++n;
      Reply r = pr.call(api, id);
      if (pr.allowed.count(role)) {
        EXPECT_TRUE(HasStatus(r, pr.ok_status));
      } else {
        EXPECT_TRUE(IsError(r, 403, "FORBIDDEN"));
        if (pr.untouched) pr.untouched(id);
      }
    }
  }

  // A key sees its own tenant, with its own role.
  for (const auto& [role, key] : keys) {
    Reply r = Api(port(), key).Get("/v1/tenants");
    ASSERT_TRUE(HasStatus(r, 200));
    ASSERT_EQ(r.At("/items").as_array().size(), 1u) << r.body;
    EXPECT_EQ(r.Int("/items/0/id"), boot_.tenant_id);
    EXPECT_EQ(r.Str("/items/0/role"), role);
  }
  // Refused calls changed nothing; allowed ones exactly what they should.
  EXPECT_EQ(static_cast<int>(admin.Get("/v1/channels").At("/items").as_array().size()), channels);
  EXPECT_EQ(static_cast<int>(AllPages(admin, "/v1/people", 500).size()), people);
  EXPECT_EQ(static_cast<int>(AllPages(admin, "/v1/orders", 500).size()), orders);
  {
    Reply list = admin.Get("/v1/api-keys");
    int live = 0;
    for (const auto& k : list.At("/items").as_array()) live += k.at("revoked_at").is_null();
    EXPECT_EQ(live, live_keys);
  }
  // The role keys still work: no refused call revoked them.
  for (const auto& [role, key] : keys) {
    EXPECT_TRUE(HasStatus(Api(port(), key).Get("/v1/tenants"), 200)) << role;
  }

  // A superuser's console session may create tenants; the routes for sessions work for it.
  Reply login = Api(port()).Post("/v1/auth/login",
                                 value{{"username", boot_.username}, {"password", boot_.password}});
  ASSERT_TRUE(HasStatus(login, 200));
  Api session(port(), login.Str("/token"));
  EXPECT_TRUE(HasStatus(session.Get("/v1/auth/me"), 200));
  EXPECT_TRUE(HasStatus(session.Get("/v1/channels"), 200));
  EXPECT_TRUE(HasStatus(session.Get("/v1/api-keys"), 200));
  Reply t = session.Post("/v1/tenants", value{{"name", "Brand Z"}});
  ASSERT_TRUE(HasStatus(t, 201));
  EXPECT_EQ(t.Str("/name"), "Brand Z");
  EXPECT_EQ(t.Str("/role"), "admin");

  // Revoking a key stops it at once, whatever its role.
  ASSERT_TRUE(HasStatus(admin.Delete("/v1/api-keys/" + std::to_string(key_ids["analyst"])), 200));
  EXPECT_TRUE(IsError(Api(port(), keys["analyst"]).Get("/v1/channels"), 401, "UNAUTHENTICATED"));
  Reply again = admin.Delete("/v1/api-keys/" + std::to_string(key_ids["analyst"]));
  EXPECT_TRUE(HasStatus(again, 200));
  EXPECT_FALSE(again.At("/revoked_at").is_null());
}

SIYU_BACKEND_SUITE(RolesTest);

}  // namespace
}  // namespace siyu::it
