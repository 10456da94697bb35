// Console login: sessions come from a username and password, see the operator's tenants, and
// stop working at logout.
#include <csignal>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

class LoginTest : public BackendTest {};

TEST_P(LoginTest, LoginMeLogout) {
  Api anon(port());
  Reply login = anon.Post("/v1/auth/login",
                          value{{"username", boot_.username}, {"password", boot_.password}});
  ASSERT_TRUE(HasStatus(login, 200));
  const std::string token = login.Str("/token");
  EXPECT_EQ(token.rfind("sess_", 0), 0u) << token;
  EXPECT_GT(token.size(), 20u);
  EXPECT_GT(login.Int("/operator/id"), 0);
  EXPECT_EQ(login.Str("/operator/username"), boot_.username);
  EXPECT_TRUE(login.At("/operator/superuser").as_bool());
  ASSERT_EQ(login.At("/tenants").as_array().size(), 1u);
  EXPECT_EQ(login.Int("/tenants/0/id"), boot_.tenant_id);
  EXPECT_EQ(login.Str("/tenants/0/name"), "Brand A");
  EXPECT_EQ(login.Str("/tenants/0/role"), "admin");
  EXPECT_FALSE(login.body.find(boot_.password) != std::string::npos) << "password echoed";

  Api session(port(), token);
  Reply me = session.Get("/v1/auth/me");
  ASSERT_TRUE(HasStatus(me, 200));
  EXPECT_FALSE(me.json.as_object().contains("token"));
  json::object without_token = login.json.as_object();
  without_token.erase("token");
  EXPECT_EQ(me.json, value(without_token)) << "me is the login answer without the token";

  // The session works on tenant routes, choosing the tenant explicitly or by default.
  EXPECT_TRUE(HasStatus(session.Get("/v1/channels"), 200));
  Api explicit_tenant(port(), token, std::to_string(boot_.tenant_id));
  EXPECT_TRUE(HasStatus(explicit_tenant.Get("/v1/channels"), 200));
  Reply created = explicit_tenant.Post(
      "/v1/channels",
      value{{"name", "console"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}});
  EXPECT_TRUE(HasStatus(created, 201));
  // Two logins are two sessions.
  Reply login2 = anon.Post("/v1/auth/login",
                           value{{"username", boot_.username}, {"password", boot_.password}});
  ASSERT_TRUE(HasStatus(login2, 200));
  EXPECT_NE(login2.Str("/token"), token);

  // Wrong credentials: one answer whether the user exists or not.
  EXPECT_TRUE(IsError(
      anon.Post("/v1/auth/login", value{{"username", boot_.username}, {"password", "wrong"}}), 401,
      "INVALID_CREDENTIALS"));
  EXPECT_TRUE(IsError(
      anon.Post("/v1/auth/login", value{{"username", "nobody"}, {"password", boot_.password}}), 401,
      "INVALID_CREDENTIALS"));
  EXPECT_TRUE(IsError(anon.Post("/v1/auth/login", value{{"username", boot_.username},
                                                        {"password", boot_.password + " "}}),
                      401, "INVALID_CREDENTIALS"));
  // Sessions are for people; keys may not use the session routes.
  EXPECT_TRUE(IsError(AdminApi().Get("/v1/auth/me"), 403, "FORBIDDEN"));
  EXPECT_TRUE(IsError(anon.Get("/v1/auth/me"), 401, "UNAUTHENTICATED"));

  Reply out = session.Post("/v1/auth/logout", "");
  ASSERT_TRUE(HasStatus(out, 200));
  EXPECT_EQ(out.json, value({{"ok", true}}));
  EXPECT_TRUE(IsError(session.Get("/v1/auth/me"), 401, "UNAUTHENTICATED"));
  EXPECT_TRUE(IsError(session.Get("/v1/channels"), 401, "UNAUTHENTICATED"));
  EXPECT_TRUE(IsError(Api(port(), token).Get("/v1/channels"), 401, "UNAUTHENTICATED"))
      << "a fresh connection must not revive the session";
  EXPECT_TRUE(IsError(session.Post("/v1/auth/logout", ""), 401, "UNAUTHENTICATED"));
  // The other session is unaffected.
  EXPECT_TRUE(HasStatus(Api(port(), login2.Str("/token")).Get("/v1/auth/me"), 200));

  // Sessions and their ends survive a restart (they live in the store).
  server_->Stop(SIGTERM, std::chrono::seconds(20));
  server_->Start();
  EXPECT_TRUE(IsError(Api(port(), token).Get("/v1/auth/me"), 401, "UNAUTHENTICATED"));
  EXPECT_TRUE(HasStatus(Api(port(), login2.Str("/token")).Get("/v1/auth/me"), 200));
}

TEST_P(LoginTest, BootstrapJsonIsValidForAnyPassword) {
  // `--json` output is meant for scripts: it must stay JSON whatever the password contains.
  const std::string password = "pa\"ss\\word";
  Credentials c = Bootstrap(*store_, "Brand Q", "quoted", password);
  EXPECT_EQ(c.password, password);
  Reply login =
      Api(port()).Post("/v1/auth/login", value{{"username", "quoted"}, {"password", password}});
  EXPECT_TRUE(HasStatus(login, 200));
}

SIYU_BACKEND_SUITE(LoginTest);

}  // namespace
}  // namespace siyu::it
