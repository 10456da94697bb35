#include "domain/tenancy/tenancy.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "common/time.h"
#include "domain/testing/store_fixture.h"

namespace siyu::domain {
namespace {

TEST(PasswordTest, HashAndVerifyRoundTrip) {
  std::string h = HashPassword("correct horse 电池 staple");
  EXPECT_TRUE(h.starts_with("$argon2id$")) << h;
  EXPECT_EQ(h.find("correct horse"), std::string::npos) << "the hash must not contain the password";
  EXPECT_TRUE(VerifyPassword(h, "correct horse 电池 staple"));
  EXPECT_FALSE(VerifyPassword(h, "correct horse 电池 stapl"));
  EXPECT_FALSE(VerifyPassword(h, "correct horse 电池 staple "));
  EXPECT_FALSE(VerifyPassword(h, ""));
  // Salted: the same password hashes differently each time, and both verify.
  std::string h2 = HashPassword("correct horse 电池 staple");
  EXPECT_NE(h, h2);
  EXPECT_TRUE(VerifyPassword(h2, "correct horse 电池 staple"));
  // Garbage never verifies.
  EXPECT_FALSE(VerifyPassword("", "x"));
  EXPECT_FALSE(VerifyPassword("not-a-phc-string", "not-a-phc-string"));
}

TEST(RoleTest, NamesRoundTrip) {
  for (Role r : {Role::kAdmin, Role::kOperator, Role::kAnalyst, Role::kIngest}) {
    auto back = ParseRole(RoleName(r));
    ASSERT_TRUE(back.has_value()) << RoleName(r);
    EXPECT_EQ(*back, r);
  }
  EXPECT_EQ(RoleName(Role::kIngest), "ingest");
  EXPECT_FALSE(ParseRole("root").has_value());
  EXPECT_FALSE(ParseRole("Admin").has_value());
  EXPECT_FALSE(ParseRole("").has_value());
}

class TenancyTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (HasFatalFailure()) return;
    tenancy_ = std::make_unique<Tenancy>(db());
  }
  void TearDown() override {
    tenancy_.reset();
    StoreFixture::TearDown();
  }

  Operator MustCreateOperator(const std::string& username, const std::string& password,
                              bool superuser = false) {
    auto r = tenancy_->CreateOperator(username, password, superuser);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Operator{};
  }
  Tenant MustCreateTenant(const std::string& name, std::optional<int64_t> admin = std::nullopt) {
    auto r = tenancy_->CreateTenant(name, admin);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Tenant{};
  }
  Session MustLogin(const std::string& username, const std::string& password) {
    auto r = tenancy_->Login(username, password);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Session{};
  }
  ApiKey MustCreateKey(int64_t tenant, const std::string& name, Role role) {
    auto r = tenancy_->CreateKey(tenant, name, role);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ApiKey{};
  }
  // Expects `token` to be refused as UNAUTHENTICATED.
  void ExpectUnauthenticated(std::string_view token, Tenancy* t = nullptr) {
    auto r = (t ? t : tenancy_.get())->Authenticate(token, "");
    ASSERT_FALSE(r.ok()) << "accepted '" << token << "' for tenant " << r->tenant_id;
    EXPECT_EQ(r.status().code(), ErrorCode::kUnauthenticated)
        << token << ": " << r.status().ToString();
  }

  std::unique_ptr<Tenancy> tenancy_;
};

TEST_P(TenancyTest, CreateOperatorTwiceIsAlreadyExists) {
  Operator op = MustCreateOperator("wang", "pw-1", /*superuser=*/true);
  EXPECT_GT(op.id, 0);
  EXPECT_EQ(op.username, "wang");
  EXPECT_TRUE(op.superuser);

  auto again = tenancy_->CreateOperator("wang", "pw-2", false);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(again.status().field(), "username");
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM operators"), 1);

  // The first password still works; the duplicate's does not.
  EXPECT_TRUE(tenancy_->Login("wang", "pw-1").ok());
  EXPECT_EQ(tenancy_->Login("wang", "pw-2").status().code(), ErrorCode::kInvalidCredentials);

  auto found = tenancy_->FindOperator("wang");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, op.id);
  EXPECT_TRUE((*found)->superuser);
  auto missing = tenancy_->FindOperator("li");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  // The password is stored hashed, never in the clear.
  int64_t clear =
      QueryInt("SELECT COUNT(*) FROM operators WHERE password_hash = ?", {std::string("pw-1")});
  EXPECT_EQ(clear, 0);
}

TEST_P(TenancyTest, LoginRefusesWrongPasswordAndUnknownUserAlike) {
  MustCreateOperator("wang", "s3cret");
  auto wrong = tenancy_->Login("wang", "S3cret");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kInvalidCredentials);
  auto unknown = tenancy_->Login("nobody", "s3cret");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), ErrorCode::kInvalidCredentials);
  // Indistinguishable, so that usernames cannot be probed.
  EXPECT_EQ(wrong.status().message(), unknown.status().message());
  EXPECT_EQ(wrong.status().field(), unknown.status().field());
  auto empty = tenancy_->Login("wang", "");
  EXPECT_EQ(empty.status().code(), ErrorCode::kInvalidCredentials);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM sessions"), 0);
}

TEST_P(TenancyTest, LoginGivesASessionTokenAndTheOperatorsTenants) {
  Operator op = MustCreateOperator("wang", "s3cret");
  Tenant a = MustCreateTenant("品牌A", op.id);
  Tenant b = MustCreateTenant("品牌B");
  Tenant c = MustCreateTenant("品牌C");
  ASSERT_TRUE(tenancy_->AddMembership(c.id, op.id, Role::kAnalyst).ok());
  EXPECT_EQ(a.role, "admin");
  EXPECT_EQ(a.timezone, "Asia/Shanghai");

  Session s = MustLogin("wang", "s3cret");
  EXPECT_TRUE(std::regex_match(s.token, std::regex("sess_[0-9A-Za-z]{32}"))) << s.token;
  EXPECT_EQ(s.op.id, op.id);
  EXPECT_EQ(s.op.username, "wang");
  EXPECT_FALSE(s.op.superuser);
  ASSERT_EQ(s.tenants.size(), 2u) << "A and C, not B";
  EXPECT_EQ(s.tenants[0].id, a.id);
  EXPECT_EQ(s.tenants[0].name, "品牌A");
  EXPECT_EQ(s.tenants[0].role, "admin");
  EXPECT_EQ(s.tenants[1].id, c.id);
  EXPECT_EQ(s.tenants[1].role, "analyst");
  (void)b;

  // Each login is a new session; the token is stored hashed.
  Session s2 = MustLogin("wang", "s3cret");
  EXPECT_NE(s.token, s2.token);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM sessions"), 2);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM sessions WHERE token_hash = ?", {s.token}), 0);

  auto me = tenancy_->SessionOf(s.token);
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  EXPECT_EQ(me->op.id, op.id);
  EXPECT_TRUE(me->token.empty());
  EXPECT_EQ(me->tenants.size(), 2u);
}

TEST_P(TenancyTest, SessionPicksTheTenantFromTheHeader) {
  Operator op = MustCreateOperator("wang", "s3cret");
  Tenant a = MustCreateTenant("品牌A", op.id);
  Tenant b = MustCreateTenant("品牌B");
  Tenant c = MustCreateTenant("品牌C");
  ASSERT_TRUE(tenancy_->AddMembership(c.id, op.id, Role::kOperator).ok());
  Session s = MustLogin("wang", "s3cret");

  // Default: the first tenant.
  auto p = tenancy_->Authenticate(s.token, "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, a.id);
  EXPECT_EQ(p->role, Role::kAdmin);
  EXPECT_EQ(p->operator_id, op.id);
  EXPECT_EQ(p->key_id, 0);
  EXPECT_FALSE(p->superuser);

  // Explicit: that tenant with the operator's role in it.
  p = tenancy_->Authenticate(s.token, std::to_string(c.id));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, c.id);
  EXPECT_EQ(p->role, Role::kOperator);
  p = tenancy_->Authenticate(s.token, std::to_string(a.id));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->tenant_id, a.id);
  EXPECT_EQ(p->role, Role::kAdmin);

  // A tenant the operator is not a member of, existing or not.
  for (int64_t t : {b.id, c.id + 1000}) {
    p = tenancy_->Authenticate(s.token, std::to_string(t));
    ASSERT_FALSE(p.ok()) << "tenant " << t;
    EXPECT_EQ(p.status().code(), ErrorCode::kForbidden) << p.status().ToString();
    EXPECT_EQ(p.status().field(), "X-Siyu-Tenant");
  }

  // Not a number.
  for (const std::string& h :
       std::vector<std::string>{"abc", std::to_string(a.id) + "x", "1.5", " "}) {
    p = tenancy_->Authenticate(s.token, h);
    ASSERT_FALSE(p.ok()) << "header '" << h << "'";
    EXPECT_EQ(p.status().code(), ErrorCode::kInvalidField) << h << ": " << p.status().ToString();
    EXPECT_EQ(p.status().field(), "X-Siyu-Tenant");
  }

  // A membership granted after login applies at once.
  ASSERT_TRUE(tenancy_->AddMembership(b.id, op.id, Role::kAnalyst).ok());
  p = tenancy_->Authenticate(s.token, std::to_string(b.id));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, b.id);
  EXPECT_EQ(p->role, Role::kAnalyst);

  // Sessions live in the store: another Tenancy on it accepts the token too.
  Tenancy fresh(db());
  p = fresh.Authenticate(s.token, std::to_string(c.id));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, c.id);
}

TEST_P(TenancyTest, SuperuserWithoutTenantsHasNoTenant) {
  Operator root = MustCreateOperator("root", "pw", /*superuser=*/true);
  Session s = MustLogin("root", "pw");
  EXPECT_TRUE(s.tenants.empty());
  auto p = tenancy_->Authenticate(s.token, "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, 0);
  EXPECT_TRUE(p->superuser);
  EXPECT_EQ(p->operator_id, root.id);

  // After creating a tenant it is theirs, as admin.
  Tenant t = MustCreateTenant("新品牌", root.id);
  p = tenancy_->Authenticate(s.token, "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, t.id);
  EXPECT_EQ(p->role, Role::kAdmin);
  auto ts = tenancy_->TenantsOf(root.id);
  ASSERT_TRUE(ts.ok());
  ASSERT_EQ(ts->size(), 1u);
  EXPECT_EQ((*ts)[0].id, t.id);
  EXPECT_EQ((*ts)[0].role, "admin");

  auto got = tenancy_->GetTenant(t.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "新品牌");
  EXPECT_EQ(tenancy_->GetTenant(t.id + 100).status().code(), ErrorCode::kNotFound);
}

TEST_P(TenancyTest, LogoutEndsTheSessionAtOnce) {
  Operator op = MustCreateOperator("wang", "s3cret");
  MustCreateTenant("品牌A", op.id);
  Session s = MustLogin("wang", "s3cret");
  Session other = MustLogin("wang", "s3cret");
  ASSERT_TRUE(tenancy_->Authenticate(s.token, "").ok());  // now cached

  ASSERT_TRUE(tenancy_->Logout(s.token).ok());
  ExpectUnauthenticated(s.token);
  EXPECT_EQ(tenancy_->SessionOf(s.token).status().code(), ErrorCode::kUnauthenticated);
  Tenancy fresh(db());
  ExpectUnauthenticated(s.token, &fresh);
  // Logging out twice is harmless; the operator's other session is unaffected.
  EXPECT_TRUE(tenancy_->Logout(s.token).ok());
  auto p = tenancy_->Authenticate(other.token, "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->operator_id, op.id);
}

TEST_P(TenancyTest, UnknownOrMissingCredentialsAreUnauthenticated) {
  ExpectUnauthenticated("");
  ExpectUnauthenticated("sess_");
  ExpectUnauthenticated("sess_doesnotexist0000000000000000000");
  ExpectUnauthenticated("Bearer sess_x");
  ExpectUnauthenticated("hello");
}

TEST_P(TenancyTest, ApiKeyAuthenticatesToItsTenantAndRole) {
  Tenant a = MustCreateTenant("品牌A");
  Tenant b = MustCreateTenant("品牌B");
  ApiKey ka = MustCreateKey(a.id, "pos sync", Role::kIngest);
  ApiKey kb = MustCreateKey(b.id, "bi", Role::kAnalyst);
  ApiKey kadm = MustCreateKey(a.id, "ops", Role::kAdmin);

  for (const ApiKey* k : {&ka, &kb, &kadm}) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(k->plaintext, m, std::regex("siyu_([0-9]+)_([0-9A-Za-z]{32})")))
        << k->plaintext;
    EXPECT_EQ(m[1].str(), std::to_string(k->id));
    EXPECT_EQ(k->revoked_at, std::nullopt);
  }
  EXPECT_EQ(ka.tenant_id, a.id);
  EXPECT_EQ(ka.name, "pos sync");
  EXPECT_EQ(ka.role, Role::kIngest);

  struct Want {
    const ApiKey* key;
    int64_t tenant;
    Role role;
  };
  for (const Want& w : {Want{&ka, a.id, Role::kIngest}, Want{&kb, b.id, Role::kAnalyst},
                        Want{&kadm, a.id, Role::kAdmin}}) {
    // Twice: from the store, then from the cache. The tenant header plays no part for keys.
    for (int i = 0; i < 2; ++i) {
      auto p = tenancy_->Authenticate(w.key->plaintext, i == 0 ? "" : std::to_string(b.id + 99));
      ASSERT_TRUE(p.ok()) << w.key->name << ": " << p.status().ToString();
      EXPECT_EQ(p->tenant_id, w.tenant) << w.key->name;
      EXPECT_EQ(p->role, w.role) << w.key->name;
      EXPECT_EQ(p->key_id, w.key->id);
      EXPECT_EQ(p->operator_id, 0);
      EXPECT_FALSE(p->superuser);
    }
  }
  // The secret is stored hashed.
  std::string secret = ka.plaintext.substr(ka.plaintext.rfind('_') + 1);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM api_keys WHERE secret_hash = ? OR secret_hash = ?",
                     {secret, ka.plaintext}),
            0);
}

TEST_P(TenancyTest, TamperedMalformedAndUnknownKeysAreUnauthenticated) {
  Tenant a = MustCreateTenant("品牌A");
  ApiKey k = MustCreateKey(a.id, "pos", Role::kIngest);
  ApiKey k2 = MustCreateKey(a.id, "pos2", Role::kIngest);
  const std::string prefix = "siyu_" + std::to_string(k.id) + "_";
  const std::string secret = k.plaintext.substr(prefix.size());
  ASSERT_EQ(secret.size(), 32u);

  std::string tampered = k.plaintext;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  std::string secret2 = k2.plaintext.substr(k2.plaintext.rfind('_') + 1);

  for (int round = 0; round < 2; ++round) {  // before and after the key is in the cache
    ExpectUnauthenticated(tampered);
    ExpectUnauthenticated(prefix + secret.substr(0, 31));
    ExpectUnauthenticated(prefix + secret + "x");
    ExpectUnauthenticated(prefix);
    ExpectUnauthenticated(prefix + secret2);  // another key's secret
    ASSERT_TRUE(tenancy_->Authenticate(k.plaintext, "").ok());
  }
  // Malformed.
  ExpectUnauthenticated("siyu_");
  ExpectUnauthenticated("siyu_" + std::to_string(k.id));
  ExpectUnauthenticated("siyu_abc_" + secret);
  ExpectUnauthenticated("siyu__" + secret);
  ExpectUnauthenticated("siyu_" + std::to_string(k.id) + "x_" + secret);
  ExpectUnauthenticated("siyu_-" + std::to_string(k.id) + "_" + secret);
  ExpectUnauthenticated("SIYU_" + std::to_string(k.id) + "_" + secret);
  // Unknown id, with a real secret.
  ExpectUnauthenticated("siyu_" + std::to_string(k2.id + 1000) + "_" + secret);
  ExpectUnauthenticated("siyu_0_" + secret);
  // The genuine key still works.
  EXPECT_TRUE(tenancy_->Authenticate(k.plaintext, "").ok());
}

TEST_P(TenancyTest, RevokedKeyStopsAtOnce) {
  Tenant a = MustCreateTenant("品牌A");
  ApiKey k = MustCreateKey(a.id, "pos", Role::kIngest);
  ApiKey keep = MustCreateKey(a.id, "keep", Role::kAnalyst);
  ASSERT_TRUE(tenancy_->Authenticate(k.plaintext, "").ok());  // cached

  int64_t before = NowMs();
  auto r = tenancy_->RevokeKey(a.id, k.id);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->id, k.id);
  ASSERT_TRUE(r->revoked_at.has_value());
  EXPECT_GE(*r->revoked_at, before);
  EXPECT_TRUE(r->plaintext.empty());

  ExpectUnauthenticated(k.plaintext);
  Tenancy fresh(db());
  ExpectUnauthenticated(k.plaintext, &fresh);
  EXPECT_TRUE(tenancy_->Authenticate(keep.plaintext, "").ok());

  // Revoking again answers with the key as revoked the first time.
  auto again = tenancy_->RevokeKey(a.id, k.id);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->revoked_at, r->revoked_at);
  ExpectUnauthenticated(k.plaintext);

  EXPECT_EQ(tenancy_->RevokeKey(a.id, keep.id + 1000).status().code(), ErrorCode::kNotFound);
}

TEST_P(TenancyTest, RevokingAnotherTenantsKeyIsNotFoundAndTheKeyKeepsWorking) {
  Tenant a = MustCreateTenant("品牌A");
  Tenant b = MustCreateTenant("品牌B");
  ApiKey kb = MustCreateKey(b.id, "b's key", Role::kAdmin);
  ASSERT_TRUE(tenancy_->Authenticate(kb.plaintext, "").ok());

  auto r = tenancy_->RevokeKey(a.id, kb.id);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);

  auto p = tenancy_->Authenticate(kb.plaintext, "");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, b.id);
  EXPECT_EQ(p->role, Role::kAdmin);
  Tenancy fresh(db());
  EXPECT_TRUE(fresh.Authenticate(kb.plaintext, "").ok());
  auto keys = tenancy_->ListKeys(b.id);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].revoked_at, std::nullopt);
}

TEST_P(TenancyTest, ListKeysShowsTheTenantsKeysWithoutSecrets) {
  Tenant a = MustCreateTenant("品牌A");
  Tenant b = MustCreateTenant("品牌B");
  ApiKey k1 = MustCreateKey(a.id, "pos sync", Role::kIngest);
  ApiKey k2 = MustCreateKey(a.id, "bi", Role::kAnalyst);
  MustCreateKey(b.id, "other", Role::kAdmin);
  ASSERT_TRUE(tenancy_->RevokeKey(a.id, k2.id).ok());

  auto keys = tenancy_->ListKeys(a.id);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].id, k1.id);
  EXPECT_EQ((*keys)[0].name, "pos sync");
  EXPECT_EQ((*keys)[0].role, Role::kIngest);
  EXPECT_EQ((*keys)[0].tenant_id, a.id);
  EXPECT_EQ((*keys)[0].created_at, k1.created_at);
  EXPECT_EQ((*keys)[0].revoked_at, std::nullopt);
  EXPECT_EQ((*keys)[1].id, k2.id);
  EXPECT_EQ((*keys)[1].role, Role::kAnalyst);
  EXPECT_TRUE((*keys)[1].revoked_at.has_value());
  for (const auto& k : *keys) {
    EXPECT_TRUE(k.plaintext.empty()) << k.name;
  }

  auto none = tenancy_->ListKeys(a.id + b.id + 100);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, TenancyTest, ::testing::Values("sqlite", "postgres"),
                         testing::BackendName);

}  // namespace
}  // namespace siyu::domain
