// A GoogleTest fixture for the domain tests: every test runs once on SQLite (a fresh data
// directory under the system temp dir) and once on PostgreSQL. The PostgreSQL case uses the
// cluster named by SIYU_TEST_PG_URL but its own database, `siyu_domain_test` (created on first
// use), so that other test binaries sharing the cluster are not disturbed; each test starts from
// an empty schema (`DROP SCHEMA public CASCADE; CREATE SCHEMA public;`). While a test runs it holds
// a session advisory lock on that database, so concurrent runs of this binary (ctest -j) take
// turns instead of dropping each other's tables. Without SIYU_TEST_PG_URL the PostgreSQL cases
// fail: they are never skipped.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "common/crypto.h"
#include "common/status.h"
#include "domain/people/identity.h"
#include "store/store.h"

namespace siyu::domain::testing {

inline constexpr char kPgTestDatabase[] = "siyu_domain_test";
inline constexpr int64_t kPgTestLockKey = 5'310'771;  // any key the store itself does not use

// `url` with its database name replaced by `db` (query parameters kept).
inline std::string WithDatabase(const std::string& url, const std::string& db) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t q = url.find('?', start);
  std::string base = url.substr(0, q);
  std::string query = q == std::string::npos ? "" : url.substr(q);
  size_t slash = base.find('/', start);
  if (slash == std::string::npos) return base + "/" + db + query;
  return base.substr(0, slash + 1) + db + query;
}

// A libpq connection for fixture housekeeping (database creation, schema reset, the lock).
class PgAdmin {
 public:
  PgAdmin() = default;
  PgAdmin(const PgAdmin&) = delete;
  PgAdmin& operator=(const PgAdmin&) = delete;
  ~PgAdmin() {
    if (c_) PQfinish(c_);
  }

  ::testing::AssertionResult Connect(const std::string& url) {
    c_ = PQconnectdb(url.c_str());
    if (PQstatus(c_) != CONNECTION_OK) {
      return ::testing::AssertionFailure()
             << "cannot connect to " << url << ": " << PQerrorMessage(c_)
             << " (start the cluster with scripts/pg-cluster.sh start /tmp/siyu-pg 54329)";
    }
    return ::testing::AssertionSuccess();
  }

  // Runs `sql`; a failure whose SQLSTATE is in `tolerated` (space-separated) counts as success.
  ::testing::AssertionResult Exec(const std::string& sql, const std::string& tolerated = "") {
    PGresult* r = PQexec(c_, sql.c_str());
    ExecStatusType t = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    ::testing::AssertionResult out = ::testing::AssertionSuccess();
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
      const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
      if (!(state && !tolerated.empty() &&
            (" " + tolerated + " ").find(std::string(" ") + state + " ") != std::string::npos)) {
        out = ::testing::AssertionFailure() << "`" << sql << "` failed: " << PQerrorMessage(c_)
                                            << " (SQLSTATE " << (state ? state : "?") << ")";
      }
    }
    PQclear(r);
    return out;
  }

 private:
  PGconn* c_ = nullptr;
};

// Each test runs with GetParam() == "sqlite" and == "postgres" (any parameter starting with
// "sqlite" is a SQLite store: a fixture may run variants of it). Derived fixtures that override
// SetUp() call StoreFixture::SetUp() first and return if HasFatalFailure().
class StoreFixture : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam().starts_with("sqlite")) {
      dir_ = std::filesystem::temp_directory_path() / ("siyu-domain-" + RandomBase62(10));
      url_ = dir_.string();
    } else {
      const char* pg = std::getenv("SIYU_TEST_PG_URL");
      ASSERT_NE(pg, nullptr) << "SIYU_TEST_PG_URL is not set; set it to a PostgreSQL cluster "
                                "(e.g. postgres://postgres@127.0.0.1:54329/postgres, started by "
                                "scripts/pg-cluster.sh start /tmp/siyu-pg 54329)";
      ASSERT_NO_FATAL_FAILURE(PreparePostgres(pg));
    }
    store::Options o;
    o.url = url_;
    auto s = store::Store::Open(o);
    ASSERT_TRUE(s.ok()) << "cannot open the " << GetParam() << " store at " << url_ << ": "
                        << s.status().ToString();
    store_ = std::move(s).value();
    identity_ = std::make_unique<domain::Identity>(*store_, identity_options_);
  }

  void TearDown() override {
    identity_.reset();
    store_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
    lock_.reset();  // releases the advisory lock
  }

  store::Store& db() { return *store_; }
  domain::Identity& identity() { return *identity_; }

  // A new tenant row, written directly (the domain tests other than tenancy's do not depend on
  // Tenancy).
  int64_t NewTenant(const std::string& name) {
    int64_t id = 0;
    Status s = store_->Write([&](store::Conn& c) -> Status {
      ASSIGN_OR_RETURN(store::Rows r, c.Query("INSERT INTO tenants (name, timezone, created_at) "
                                              "VALUES (?, ?, ?) RETURNING id",
                                              {name, std::string("Asia/Shanghai"), int64_t{1}}));
      id = r.at(0).Int(0);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_GT(id, 0);
    return id;
  }

  // The single integer a query such as `SELECT COUNT(*) …` returns; -1 (and a failure) on error.
  int64_t QueryInt(const std::string& sql, const store::Params& params = {}) {
    int64_t n = -1;
    Status s = store_->Read([&](store::Conn& c) -> Status {
      ASSIGN_OR_RETURN(store::Rows r, c.Query(sql, params));
      if (r.size() != 1 || r[0].size() != 1) return Internal("expected one value from " + sql);
      n = r[0].Int(0);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return n;
  }

  std::filesystem::path dir_;
  std::string url_;
  std::unique_ptr<store::Store> store_;
  domain::IdentityOptions identity_options_;  // set before SetUp to change the guard
  std::unique_ptr<domain::Identity> identity_;

 private:
  void PreparePostgres(const std::string& cluster_url) {
    static std::once_flag created;
    static ::testing::AssertionResult create_result = ::testing::AssertionSuccess();
    std::call_once(created, [&] {
      PgAdmin admin;
      create_result = admin.Connect(cluster_url);
      // 42P04 duplicate_database; 23505 when another process creates it at the same moment.
      if (create_result) {
        create_result =
            admin.Exec(std::string("CREATE DATABASE ") + kPgTestDatabase, "42P04 23505");
      }
    });
    ASSERT_TRUE(create_result);
    url_ = WithDatabase(cluster_url, kPgTestDatabase);
    lock_ = std::make_unique<PgAdmin>();
    ASSERT_TRUE(lock_->Connect(url_));
    ASSERT_TRUE(lock_->Exec("SET client_min_messages = warning"));
    ASSERT_TRUE(lock_->Exec("SELECT pg_advisory_lock(" + std::to_string(kPgTestLockKey) + ")"));
    ASSERT_TRUE(lock_->Exec("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"));
  }

  std::unique_ptr<PgAdmin> lock_;
};

// Names the instantiations "sqlite" and "postgres" in test names.
inline std::string BackendName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace siyu::domain::testing
