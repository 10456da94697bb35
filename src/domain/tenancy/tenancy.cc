#include "domain/tenancy/tenancy.h"

#include <argon2.h>

#include <charconv>
#include <mutex>
#include <unordered_map>

#include "common/crypto.h"
#include "common/time.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {
constexpr int64_t kCacheTtlMs = 2000;
constexpr int64_t kSessionTtlMs = 7 * kMsPerDay;

Status Unauthenticated(std::string msg) {
  return Status(ErrorCode::kUnauthenticated, std::move(msg));
}
}  // namespace

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
    case Role::kAnalyst:
      return "analyst";
    case Role::kIngest:
      return "ingest";
  }
  return "analyst";
}

std::optional<Role> ParseRole(std::string_view s) {
  for (Role r : {Role::kAdmin, Role::kOperator, Role::kAnalyst, Role::kIngest}) {
    if (RoleName(r) == s) return r;
  }
  return std::nullopt;
}

std::string HashPassword(const std::string& password) {
  constexpr uint32_t t = 2, m = 19456, p = 1;
  std::string salt = RandomBase62(16);
  size_t len = argon2_encodedlen(t, m, p, salt.size(), 32, Argon2_id);
  std::string out(len, '\0');
  int rc = argon2id_hash_encoded(t, m, p, password.data(), password.size(), salt.data(),
                                 salt.size(), 32, out.data(), out.size());
  if (rc != ARGON2_OK) throw std::runtime_error(argon2_error_message(rc));
  out.resize(out.find('\0'));
  return out;
}

bool VerifyPassword(const std::string& encoded, const std::string& password) {
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

struct Tenancy::Cache {
  struct Key {
    std::string secret_hash;
    int64_t tenant_id;
    Role role;
    bool revoked;
    int64_t loaded_at;
  };
  struct Sess {
    Operator op;
    std::vector<std::pair<int64_t, Role>> tenants;
    int64_t expires_at;
    bool revoked;
    int64_t loaded_at;
  };
  std::mutex mu;
  // Bumped by every revocation or membership change. A credential read from the store is cached
  // only if no bump happened while it was read, so a revocation can never be undone by a read
  // that raced with it.
  uint64_t epoch = 0;
  std::unordered_map<int64_t, Key> keys;
  std::unordered_map<std::string, Sess> sessions;  // by token hash
};

Tenancy::Tenancy(store::Store& store) : store_(store), cache_(std::make_unique<Cache>()) {}
Tenancy::~Tenancy() = default;

StatusOr<Tenant> Tenancy::CreateTenant(const std::string& name,
                                       std::optional<int64_t> admin_operator) {
  Tenant t;
  t.name = name;
  t.timezone = std::string(kDefaultTimeZone);
  t.created_at = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("INSERT INTO tenants (name, timezone, created_at) VALUES "
                                     "(?, ?, ?) RETURNING id",
                                     {t.name, t.timezone, t.created_at}));
    t.id = r.at(0).Int(0);
    if (admin_operator) {
      RETURN_IF_ERROR(c.Exec("INSERT INTO memberships (tenant_id, operator_id, role, created_at) "
                             "VALUES (?, ?, ?, ?)",
                             {t.id, *admin_operator, std::string("admin"), t.created_at})
                          .status());
    }
    return Status::Ok();
  }));
  t.role = admin_operator ? "admin" : "";
  if (admin_operator) {
    std::lock_guard<std::mutex> lock(cache_->mu);
    cache_->epoch++;
    cache_->sessions.clear();  // memberships changed
  }
  return t;
}

StatusOr<Operator> Tenancy::CreateOperator(const std::string& username, const std::string& password,
                                           bool superuser) {
  Operator op;
  op.username = username;
  op.display_name = username;
  op.superuser = superuser;
  std::string hash = HashPassword(password);
  Status s = store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id FROM operators WHERE username = ?", {username}));
    if (!r.empty()) {
      return Status(ErrorCode::kAlreadyExists, "operator '" + username + "' already exists",
                    "username");
    }
    ASSIGN_OR_RETURN(r, c.Query("INSERT INTO operators (username, display_name, password_hash, "
                                "superuser, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                                {username, username, hash, int64_t{superuser ? 1 : 0}, NowMs()}));
    op.id = r.at(0).Int(0);
    return Status::Ok();
  });
  RETURN_IF_ERROR(s);
  return op;
}

StatusOr<std::optional<Operator>> Tenancy::FindOperator(const std::string& username) {
  std::optional<Operator> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, username, display_name, superuser FROM operators "
                                     "WHERE username = ?",
                                     {username}));
    if (!r.empty()) out = Operator{r[0].Int(0), r[0].Text(1), r[0].Text(2), r[0].Int(3) != 0};
    return Status::Ok();
  }));
  return out;
}

Status Tenancy::AddMembership(int64_t tenant_id, int64_t operator_id, Role role) {
  RETURN_IF_ERROR(store_.Write([&](Conn& c) {
    return c
        .Exec(
            "INSERT INTO memberships (tenant_id, operator_id, role, created_at) VALUES (?, ?, "
            "?, ?)",
            {tenant_id, operator_id, std::string(RoleName(role)), NowMs()})
        .status();
  }));
  std::lock_guard<std::mutex> lock(cache_->mu);
  cache_->epoch++;
  cache_->sessions.clear();
  return Status::Ok();
}

StatusOr<std::vector<Tenant>> Tenancy::TenantsOf(int64_t operator_id) {
  std::vector<Tenant> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT t.id, t.name, t.timezone, t.created_at, m.role FROM "
                                     "memberships m JOIN tenants t ON t.id = m.tenant_id WHERE "
                                     "m.operator_id = ? ORDER BY t.id",
                                     {operator_id}));
    for (const auto& row : r) {
      out.push_back({row.Int(0), row.Text(1), row.Text(2), row.Int(3), row.Text(4)});
    }
    return Status::Ok();
  }));
  return out;
}

StatusOr<Tenant> Tenancy::GetTenant(int64_t tenant_id) {
  std::optional<Tenant> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, name, timezone, created_at FROM tenants WHERE "
                                     "id = ?",
                                     {tenant_id}));
    if (!r.empty()) out = Tenant{r[0].Int(0), r[0].Text(1), r[0].Text(2), r[0].Int(3), ""};
    return Status::Ok();
  }));
  if (!out) return Status(ErrorCode::kNotFound, "no such tenant");
  return *out;
}

StatusOr<ApiKey> Tenancy::CreateKey(int64_t tenant_id, const std::string& name, Role role) {
  ApiKey k;
  k.tenant_id = tenant_id;
  k.name = name;
  k.role = role;
  k.created_at = NowMs();
  std::string secret = RandomBase62(32);
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("INSERT INTO api_keys (tenant_id, name, role, secret_hash, "
                                     "created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                                     {tenant_id, name, std::string(RoleName(role)),
                                      Sha256Hex(secret), k.created_at}));
    k.id = r.at(0).Int(0);
    return Status::Ok();
  }));
  k.plaintext = "siyu_" + std::to_string(k.id) + "_" + secret;
  return k;
}

namespace {
ApiKey KeyFromRow(const store::Row& r) {
  ApiKey k;
  k.id = r.Int(0);
  k.tenant_id = r.Int(1);
  k.name = r.Text(2);
  k.role = ParseRole(r.Text(3)).value_or(Role::kAnalyst);
  k.created_at = r.Int(4);
  k.revoked_at = r.OptInt(5);
  return k;
}
constexpr const char* kKeyColumns = "id, tenant_id, name, role, created_at, revoked_at";
}  // namespace

StatusOr<std::vector<ApiKey>> Tenancy::ListKeys(int64_t tenant_id) {
  std::vector<ApiKey> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kKeyColumns +
                                         " FROM api_keys WHERE tenant_id = ? ORDER BY id",
                                     {tenant_id}));
    for (const auto& row : r) out.push_back(KeyFromRow(row));
    return Status::Ok();
  }));
  return out;
}

StatusOr<ApiKey> Tenancy::RevokeKey(int64_t tenant_id, int64_t key_id) {
  std::optional<ApiKey> out;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    RETURN_IF_ERROR(c.Exec("UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND "
                           "revoked_at IS NULL",
                           {NowMs(), tenant_id, key_id})
                        .status());
    ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kKeyColumns +
                                         " FROM api_keys WHERE tenant_id = ? AND id = ?",
                                     {tenant_id, key_id}));
    if (!r.empty()) out = KeyFromRow(r[0]);
    return Status::Ok();
  }));
  if (!out) return Status(ErrorCode::kNotFound, "no API key " + std::to_string(key_id));
  std::lock_guard<std::mutex> lock(cache_->mu);
  cache_->epoch++;
  cache_->keys.erase(key_id);
  return *out;
}

StatusOr<Session> Tenancy::Login(const std::string& username, const std::string& password) {
  std::string hash;
  Operator op;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, username, display_name, superuser, "
                                     "password_hash FROM operators WHERE username = ?",
                                     {username}));
    if (!r.empty()) {
      op = Operator{r[0].Int(0), r[0].Text(1), r[0].Text(2), r[0].Int(3) != 0};
      hash = r[0].Text(4);
    }
    return Status::Ok();
  }));
  // Verify against a dummy hash for unknown users so timing does not reveal which names exist.
  static const std::string kDummy = HashPassword("siyu-dummy-password");
  bool ok = VerifyPassword(hash.empty() ? kDummy : hash, password) && !hash.empty();
  if (!ok) {
    return Status(ErrorCode::kInvalidCredentials,
                  "wrong username or password; check both and try again", "password");
  }
  Session s;
  s.op = op;
  s.token = "sess_" + RandomBase62(32);
  int64_t now = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) {
    return c
        .Exec(
            "INSERT INTO sessions (token_hash, operator_id, created_at, expires_at) VALUES (?, "
            "?, ?, ?)",
            {Sha256Hex(s.token), op.id, now, now + kSessionTtlMs})
        .status();
  }));
  ASSIGN_OR_RETURN(s.tenants, TenantsOf(op.id));
  return s;
}

Status Tenancy::Logout(const std::string& token) {
  std::string h = Sha256Hex(token);
  RETURN_IF_ERROR(store_.Write([&](Conn& c) {
    return c
        .Exec("UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
              {NowMs(), h})
        .status();
  }));
  std::lock_guard<std::mutex> lock(cache_->mu);
  cache_->epoch++;
  cache_->sessions.erase(h);
  return Status::Ok();
}

StatusOr<Session> Tenancy::SessionOf(const std::string& token) {
  if (!token.starts_with("sess_")) return Unauthenticated("this needs a console session");
  ASSIGN_OR_RETURN(Principal p, Authenticate(token, ""));
  Session s;
  bool found = false;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id, username, display_name, superuser FROM operators "
                                     "WHERE id = ?",
                                     {p.operator_id}));
    if (!r.empty()) {
      found = true;
      s.op = Operator{r[0].Int(0), r[0].Text(1), r[0].Text(2), r[0].Int(3) != 0};
    }
    return Status::Ok();
  }));
  if (!found) return Unauthenticated("unknown session; log in again");
  ASSIGN_OR_RETURN(s.tenants, TenantsOf(p.operator_id));
  return s;
}

StatusOr<Principal> Tenancy::Authenticate(std::string_view token, std::string_view tenant_header) {
  int64_t now = NowMs();
  if (token.starts_with("siyu_")) {
    std::string_view rest = token.substr(5);
    size_t us = rest.find('_');
    int64_t id = 0;
    if (us == std::string_view::npos ||
        std::from_chars(rest.data(), rest.data() + us, id).ptr != rest.data() + us) {
      return Unauthenticated("malformed API key; keys look like siyu_<id>_<secret>");
    }
    std::string secret_hash = Sha256Hex(rest.substr(us + 1));
    Cache::Key entry;
    bool cached = false;
    uint64_t epoch;
    {
      std::lock_guard<std::mutex> lock(cache_->mu);
      epoch = cache_->epoch;
      auto it = cache_->keys.find(id);
      if (it != cache_->keys.end() && now - it->second.loaded_at < kCacheTtlMs) {
        entry = it->second;
        cached = true;
      }
    }
    if (!cached) {
      bool found = false;
      // Keys are never written by deferred work: no need to wait for it.
      RETURN_IF_ERROR(store_.ReadNow([&](Conn& c) -> Status {
        ASSIGN_OR_RETURN(Rows r, c.Query("SELECT secret_hash, tenant_id, role, revoked_at FROM "
                                         "api_keys WHERE id = ?",
                                         {id}));
        if (!r.empty()) {
          found = true;
          entry =
              Cache::Key{r[0].Text(0), r[0].Int(1),
                         ParseRole(r[0].Text(2)).value_or(Role::kAnalyst), !r[0].IsNull(3), now};
        }
        return Status::Ok();
      }));
      if (!found) return Unauthenticated("unknown API key; create one in the console");
      std::lock_guard<std::mutex> lock(cache_->mu);
      if (cache_->epoch == epoch) cache_->keys[id] = entry;
    }
    if (!ConstantTimeEquals(entry.secret_hash, secret_hash)) {
      return Unauthenticated("unknown API key; create one in the console");
    }
    if (entry.revoked) return Unauthenticated("this API key was revoked; use another key");
    Principal p;
    p.tenant_id = entry.tenant_id;
    p.role = entry.role;
    p.key_id = id;
    return p;
  }
  if (token.starts_with("sess_")) {
    std::string h = Sha256Hex(token);
    Cache::Sess entry;
    bool cached = false;
    uint64_t epoch;
    {
      std::lock_guard<std::mutex> lock(cache_->mu);
      epoch = cache_->epoch;
      auto it = cache_->sessions.find(h);
      if (it != cache_->sessions.end() && now - it->second.loaded_at < kCacheTtlMs) {
        entry = it->second;
        cached = true;
      }
    }
    if (!cached) {
      bool found = false;
      RETURN_IF_ERROR(store_.ReadNow([&](Conn& c) -> Status {
        ASSIGN_OR_RETURN(Rows r, c.Query("SELECT o.id, o.username, o.display_name, o.superuser, "
                                         "s.expires_at, s.revoked_at FROM sessions s JOIN "
                                         "operators o ON o.id = s.operator_id WHERE "
                                         "s.token_hash = ?",
                                         {h}));
        if (r.empty()) return Status::Ok();
        found = true;
        entry.op = Operator{r[0].Int(0), r[0].Text(1), r[0].Text(2), r[0].Int(3) != 0};
        entry.expires_at = r[0].Int(4);
        entry.revoked = !r[0].IsNull(5);
        entry.loaded_at = now;
        ASSIGN_OR_RETURN(Rows m, c.Query("SELECT tenant_id, role FROM memberships WHERE "
                                         "operator_id = ? ORDER BY tenant_id",
                                         {entry.op.id}));
        for (const auto& row : m) {
          entry.tenants.emplace_back(row.Int(0), ParseRole(row.Text(1)).value_or(Role::kAnalyst));
        }
        return Status::Ok();
      }));
      if (!found) return Unauthenticated("unknown session; log in again");
      std::lock_guard<std::mutex> lock(cache_->mu);
      if (cache_->epoch == epoch) cache_->sessions[h] = entry;
    }
    if (entry.revoked || entry.expires_at <= now) {
      return Unauthenticated("session expired; log in again");
    }
    Principal p;
    p.operator_id = entry.op.id;
    p.superuser = entry.op.superuser;
    if (entry.tenants.empty()) {
      p.tenant_id = 0;  // an operator without tenants may only create one (superuser)
      p.role = Role::kAnalyst;
      return p;
    }
    if (tenant_header.empty()) {
      p.tenant_id = entry.tenants[0].first;
      p.role = entry.tenants[0].second;
      return p;
    }
    int64_t want = 0;
    if (std::from_chars(tenant_header.data(), tenant_header.data() + tenant_header.size(), want)
            .ptr != tenant_header.data() + tenant_header.size()) {
      return Status(ErrorCode::kInvalidField, "X-Siyu-Tenant must be a tenant id", "X-Siyu-Tenant");
    }
    for (const auto& [tid, role] : entry.tenants) {
      if (tid == want) {
        p.tenant_id = tid;
        p.role = role;
        return p;
      }
    }
    return Status(ErrorCode::kForbidden,
                  "you are not a member of tenant " + std::string(tenant_header) +
                      "; pick one of your tenants",
                  "X-Siyu-Tenant");
  }
  return Unauthenticated("missing or unrecognised credentials; send Authorization: Bearer <key>");
}

}  // namespace siyu::domain
