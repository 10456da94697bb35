// Tenants (brands), operator accounts, memberships, console sessions and API keys, and turning a
// bearer token into a Principal: who is calling, for which tenant, with which role.
//
// Thread-safe. Credentials are never stored in the clear: API key secrets as SHA-256 (they are
// 192-bit random), operator passwords as argon2id. Validated credentials are cached briefly; a
// revocation through this process takes effect at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace siyu::domain {

enum class Role { kAdmin, kOperator, kAnalyst, kIngest };
std::string_view RoleName(Role r);
std::optional<Role> ParseRole(std::string_view s);

struct Principal {
  int64_t tenant_id = 0;
  Role role = Role::kAnalyst;
  int64_t operator_id = 0;  // console session
  int64_t key_id = 0;       // API key
  bool superuser = false;
};

struct Tenant {
  int64_t id = 0;
  std::string name;
  std::string timezone;
  int64_t created_at = 0;
  std::string role;  // the caller's role in it, when listed for a caller
};

struct Operator {
  int64_t id = 0;
  std::string username;
  std::string display_name;
  bool superuser = false;
};

struct ApiKey {
  int64_t id = 0;
  int64_t tenant_id = 0;
  std::string name;
  Role role = Role::kAnalyst;
  int64_t created_at = 0;
  std::optional<int64_t> revoked_at;
  std::string plaintext;  // only right after creation
};

struct Session {
  std::string token;  // only right after login
  Operator op;
  std::vector<Tenant> tenants;
};

class Tenancy {
 public:
  explicit Tenancy(store::Store& store);
  ~Tenancy();

  StatusOr<Tenant> CreateTenant(const std::string& name, std::optional<int64_t> admin_operator);
  StatusOr<Operator> CreateOperator(const std::string& username, const std::string& password,
                                    bool superuser);
  StatusOr<std::optional<Operator>> FindOperator(const std::string& username);
  Status AddMembership(int64_t tenant_id, int64_t operator_id, Role role);
  StatusOr<std::vector<Tenant>> TenantsOf(int64_t operator_id);
  StatusOr<Tenant> GetTenant(int64_t tenant_id);

  StatusOr<ApiKey> CreateKey(int64_t tenant_id, const std::string& name, Role role);
  StatusOr<std::vector<ApiKey>> ListKeys(int64_t tenant_id);
  StatusOr<ApiKey> RevokeKey(int64_t tenant_id, int64_t key_id);

  StatusOr<Session> Login(const std::string& username, const std::string& password);
  Status Logout(const std::string& token);
  StatusOr<Session> SessionOf(const std::string& token);

  // Authenticates `Authorization: Bearer <token>`; `tenant_header` picks the tenant for sessions
  // (empty: the operator's first tenant). UNAUTHENTICATED or FORBIDDEN on failure.
  StatusOr<Principal> Authenticate(std::string_view token, std::string_view tenant_header);

 private:
  struct Cache;
  store::Store& store_;
  std::unique_ptr<Cache> cache_;
};

// argon2id, OWASP parameters (19 MiB, t=2, p=1). Encoded PHC string.
std::string HashPassword(const std::string& password);
bool VerifyPassword(const std::string& encoded, const std::string& password);

}  // namespace siyu::domain
