#include "store/store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/crypto.h"
#include "common/id_key.h"

namespace siyu::store {
namespace {

// Each test runs on SQLite (a fresh temp dir) and on PostgreSQL (SIYU_TEST_PG_URL, a cluster
// that `make test` starts; each test gets its own database schema by dropping the tables first).
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      dir_ = std::filesystem::temp_directory_path() / ("siyu-store-" + RandomBase62(10));
      url_ = dir_.string();
    } else {
      const char* pg = std::getenv("SIYU_TEST_PG_URL");
      ASSERT_NE(pg, nullptr) << "SIYU_TEST_PG_URL is not set; run through `make test`, which "
                                "starts a PostgreSQL cluster on loopback";
      admin_url_ = pg;
      db_ = "siyu_store_test_" + RandomBase62(10);
      std::transform(db_.begin(), db_.end(), db_.begin(), ::tolower);
      AdminSql("CREATE DATABASE " + db_);
      url_ = admin_url_.substr(0, admin_url_.rfind('/') + 1) + db_;
    }
    Open();
  }
  void TearDown() override {
    store_.reset();
    if (!db_.empty()) AdminSql("DROP DATABASE IF EXISTS " + db_);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void Open() {
    Options o;
    o.url = url_;
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  // Each test gets a database of its own: ctest runs test cases in parallel processes.
  void AdminSql(const std::string& sql) {
    PGconn* c = PQconnectdb(admin_url_.c_str());
    ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
    PGresult* r = PQexec(c, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(c);
    PQclear(r);
    PQfinish(c);
  }
  int64_t CountTenants() {
    int64_t n = -1;
    EXPECT_TRUE(store_
                    ->Read([&](Conn& c) {
                      ASSIGN_OR_RETURN(Rows r, c.Query("SELECT COUNT(*) FROM tenants"));
                      n = r.at(0).Int(0);
                      return Status::Ok();
                    })
                    .ok());
    return n;
  }
  Status InsertTenant(Conn& c, const std::string& name) {
    return c
        .Exec("INSERT INTO tenants (name, timezone, created_at) VALUES (?, ?, ?)",
              {name, std::string("Asia/Shanghai"), int64_t{1}})
        .status();
  }

  std::filesystem::path dir_;
  std::string admin_url_, db_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, WriteThenReadBack) {
  int64_t id = 0;
  ASSERT_TRUE(store_
                  ->Write([&](Conn& c) {
                    ASSIGN_OR_RETURN(
                        Rows r, c.Query("INSERT INTO tenants (name, timezone, created_at) VALUES "
                                        "(?, ?, ?) RETURNING id",
                                        {std::string("品牌A"), std::string("Asia/Shanghai"),
                                         int64_t{1700000000000}}));
                    id = r.at(0).Int(0);
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_GT(id, 0);
  ASSERT_TRUE(store_
                  ->Read([&](Conn& c) {
                    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT name, created_at, NULL FROM "
                                                     "tenants WHERE id = ?",
                                                     {id}));
                    EXPECT_EQ(r.size(), 1u);
                    EXPECT_EQ(r[0].Text(0), "品牌A");
                    EXPECT_EQ(r[0].Int(1), 1700000000000);
                    EXPECT_TRUE(r[0].IsNull(2));
                    return Status::Ok();
                  })
                  .ok());
}

TEST_P(StoreTest, BorrowedTextIsBoundAsItsViewOnly) {
  // A TextRef is a view: neither the bytes after it nor an earlier use of the same statement
  // may show in what is stored.
  const std::string sql = "INSERT INTO tenants (name, timezone, created_at) VALUES (?, ?, ?)";
  ASSERT_TRUE(store_
                  ->Write([&](Conn& c) {
                    auto first = std::make_unique<std::string>("品牌甲-tail-not-bound");
                    RETURN_IF_ERROR(c.Exec(sql, {TextRef{std::string_view(*first).substr(0, 9)},
                                                 TextRef{"Asia/Shanghai"}, int64_t{1}})
                                        .status());
                    first.reset();
                    std::string second = "乙";
                    return c.Exec(sql, {TextRef{second}, std::string("UTC"), int64_t{2}}).status();
                  })
                  .ok());
  ASSERT_TRUE(store_
                  ->Read([&](Conn& c) {
                    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT name, timezone FROM tenants "
                                                     "ORDER BY created_at"));
                    EXPECT_EQ(r.size(), 2u);
                    EXPECT_EQ(r.at(0).Text(0), "品牌甲");
                    EXPECT_EQ(r.at(0).Text(1), "Asia/Shanghai");
                    EXPECT_EQ(r.at(1).Text(0), "乙");
                    EXPECT_EQ(r.at(1).Text(1), "UTC");
                    return Status::Ok();
                  })
                  .ok());
}

TEST_P(StoreTest, ConcurrentWritersAllCommitted) {
  constexpr int kThreads = 32, kPerThread = 20;
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = store_->Write([&](Conn& c) {
          return InsertTenant(c, "t" + std::to_string(t) + "-" + std::to_string(i));
        });
        if (!s.ok()) failures++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(CountTenants(), kThreads * kPerThread);
}

TEST_P(StoreTest, FailedWriteIsUndoneAndNeighboursCommit) {
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 16; ++t) {
    ts.emplace_back([&, t] {
      Status s = store_->Write([&](Conn& c) -> Status {
        RETURN_IF_ERROR(InsertTenant(c, "n" + std::to_string(t)));
        if (t % 2 == 1) return Status(ErrorCode::kInvalidField, "rejected after a write", "x");
        return Status::Ok();
      });
      (s.ok() ? ok : failed)++;
      if (!s.ok()) {
        EXPECT_EQ(s.code(), ErrorCode::kInvalidField);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(failed.load(), 8);
  EXPECT_EQ(CountTenants(), 8);
}

TEST_P(StoreTest, RollbackHooksRunOnlyForWritesThatDidNotCommit) {
  // 16 concurrent writes (so some share a group commit): the odd ones fail after registering a
  // hook, the even ones succeed. Exactly the failed writes' hooks run, each once, on a connection
  // that sees the store as it is without them, and before the write's caller hears back.
  std::atomic<int> hooks_run{0};
  std::vector<std::atomic<int>> ran(16);
  std::vector<std::thread> ts;
  for (int t = 0; t < 16; ++t) {
    ts.emplace_back([&, t] {
      uint64_t number = 0;
      Status s = store_->Write([&](Conn& c) -> Status {
        number = c.write_number();
        RETURN_IF_ERROR(InsertTenant(c, "h" + std::to_string(t)));
        c.OnRollback([&, t](Conn& conn) {
          ++ran[t];
          ++hooks_run;
          auto rows =
              conn.Query("SELECT COUNT(*) FROM tenants WHERE name = ?", {"h" + std::to_string(t)});
          EXPECT_TRUE(rows.ok());
          if (rows.ok()) EXPECT_EQ(rows->at(0).Int(0), 0) << "the hook saw the undone row";
        });
        if (t % 2 == 1) return Status(ErrorCode::kInvalidField, "rejected after a write", "x");
        return Status::Ok();
      });
      EXPECT_NE(number, 0u);
      EXPECT_EQ(s.ok(), t % 2 == 0);
      EXPECT_EQ(ran[t].load(), t % 2) << "write " << t;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(hooks_run.load(), 8);
  EXPECT_EQ(CountTenants(), 8);
}

TEST_P(StoreTest, ConstraintViolationIsReportedNotFatal) {
  Status s = store_->Write([&](Conn& c) {
    return c
        .Exec(
            "INSERT INTO channels (tenant_id, name, source_pool, touchpoint, cost_fen, state, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            {int64_t{999}, std::string("x"), std::string("offline"), std::string("wecom"),
             int64_t{0}, std::string("s"), int64_t{0}})
        .status();
  });
  EXPECT_EQ(s.code(), ErrorCode::kAlreadyExists) << s.ToString();  // foreign key: no tenant 999
  ASSERT_TRUE(store_->Write([&](Conn& c) { return InsertTenant(c, "after"); }).ok());
  EXPECT_EQ(CountTenants(), 1);
}

TEST_P(StoreTest, DataSurvivesReopenAndMigrationsAreIdempotent) {
  ASSERT_TRUE(store_->Write([&](Conn& c) { return InsertTenant(c, "persist"); }).ok());
  store_.reset();
  Open();
  EXPECT_EQ(CountTenants(), 1);
  ASSERT_TRUE(store_
                  ->Read([&](Conn& c) {
                    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT COUNT(*) FROM schema_migrations"));
                    EXPECT_GE(r.at(0).Int(0), 1);
                    return Status::Ok();
                  })
                  .ok());
}

// Migration 13 makes the touches of events stored before it: a store where it has not run yet
// (its table dropped, its version forgotten) gets one touch per event with a channel on reopen.
TEST_P(StoreTest, TouchesMigrationCopiesTheEventsWithAChannel) {
  ASSERT_TRUE(store_
                  ->Write([&](Conn& c) -> Status {
                    RETURN_IF_ERROR(InsertTenant(c, "brand"));
                    RETURN_IF_ERROR(c.ExecScript(
                        "INSERT INTO channels (tenant_id, name, source_pool, touchpoint, cost_fen, "
                        "state, created_at) SELECT id, 'store', 'offline', 'offline', 0, 'c1', 1 "
                        "FROM tenants;"
                        "INSERT INTO people (tenant_id, acquired_at, created_at, updated_at) "
                        "SELECT id, 1, 1, 1 FROM tenants;"
                        "DROP TABLE touches;"
                        "DELETE FROM schema_migrations WHERE version = 13;"
                        "INSERT INTO events (tenant_id, event_id, person_id, type, ts, touchpoint, "
                        "channel_id, ids, properties, received_at) SELECT p.tenant_id, 'scan-1', "
                        "p.id, 'qr_scanned', 100, 'offline', ch.id, '[]', '{}', 5 FROM people p "
                        "JOIN channels ch ON ch.tenant_id = p.tenant_id;"
                        "INSERT INTO events (tenant_id, event_id, person_id, type, ts, touchpoint, "
                        "channel_id, ids, properties, received_at) SELECT tenant_id, 'view-1', id, "
                        "'page_view', 200, 'mini_program', NULL, '[]', '{}', 5 FROM people;"));
                    return Status::Ok();
                  })
                  .ok());
  store_.reset();
  Open();
  ASSERT_TRUE(store_
                  ->Read([&](Conn& c) {
                    ASSIGN_OR_RETURN(Rows r,
                                     c.Query("SELECT t.event_id, t.type, t.ts, CASE WHEN "
                                             "t.person_id = p.id AND t.channel_id = ch.id THEN 1 "
                                             "ELSE 0 END FROM touches t JOIN people p ON "
                                             "p.tenant_id = t.tenant_id JOIN channels ch ON "
                                             "ch.tenant_id = t.tenant_id"));
                    EXPECT_EQ(r.size(), 1u);
                    if (r.size() != 1) return Status::Ok();
                    EXPECT_EQ(r[0].Text(0), "scan-1");
                    EXPECT_EQ(r[0].Text(1), "qr_scanned");
                    EXPECT_EQ(r[0].Int(2), 100);
                    EXPECT_EQ(r[0].Int(3), 1);  // its person and channel
                    return Status::Ok();
                  })
                  .ok());
}

// Migration 14 keys person_ids by the hash of the id, migration 15 orders them by person: a store
// where neither has run yet (the table as migration 1 made it, their versions forgotten) gets
// every row with its key on reopen, over more than one page of the copy. The key refuses a second
// row for the same id and person; PostgreSQL also refuses it for another person.
TEST_P(StoreTest, KeyedIdsMigrationCopiesEveryIdWithItsKey) {
  constexpr int kIds = 5000;  // more than a page of the copy
  ASSERT_TRUE(store_
                  ->Write([&](Conn& c) -> Status {
                    RETURN_IF_ERROR(InsertTenant(c, "a"));
                    RETURN_IF_ERROR(InsertTenant(c, "b"));
                    RETURN_IF_ERROR(c.ExecScript(
                        "INSERT INTO people (tenant_id, acquired_at, created_at, updated_at) "
                        "SELECT id, 1, 1, 1 FROM tenants;"
                        "DROP TABLE person_ids;"
                        "CREATE TABLE person_ids (tenant_id BIGINT NOT NULL REFERENCES "
                        "tenants(id), external_id TEXT NOT NULL, kind TEXT NOT NULL, person_id "
                        "BIGINT NOT NULL REFERENCES people(id), created_at BIGINT NOT NULL, "
                        "PRIMARY KEY (tenant_id, external_id));"
                        "CREATE INDEX person_ids_person ON person_ids(person_id);"
                        "DELETE FROM schema_migrations WHERE version IN (14, 15);"));
                    return c
                        .Exec(
                            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                            "WHERE i < ?) INSERT INTO person_ids (tenant_id, external_id, kind, "
                            "person_id, created_at) SELECT p.tenant_id, 'member_no:M' || "
                            "CAST(n.i AS TEXT), 'member_no', p.id, n.i FROM n, people p",
                            {int64_t{kIds}})
                        .status();
                  })
                  .ok());
  store_.reset();
  Open();
  ASSERT_TRUE(store_
                  ->Read([&](Conn& c) {
                    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT i.external_id, i.key_hi, i.key_lo, "
                                                     "i.kind, i.created_at, CASE WHEN "
                                                     "p.tenant_id = i.tenant_id THEN 1 ELSE 0 END "
                                                     "FROM person_ids i JOIN people p ON p.id = "
                                                     "i.person_id"));
                    EXPECT_EQ(r.size(), size_t{2 * kIds});
                    std::set<std::string> seen;
                    for (const Row& row : r) {
                      const IdKey key = IdKeyOf(row.Text(0));
                      EXPECT_EQ(row.Int(1), key.hi) << row.Text(0);
                      EXPECT_EQ(row.Int(2), key.lo) << row.Text(0);
                      EXPECT_EQ(row.Text(3), "member_no");
                      EXPECT_EQ("member_no:M" + std::to_string(row.Int(4)), row.Text(0));
                      EXPECT_EQ(row.Int(5), 1);  // the person of its own tenant
                      seen.insert(row.Text(0));
                    }
                    EXPECT_EQ(seen.size(), size_t{kIds});
                    return Status::Ok();
                  })
                  .ok());
  ASSERT_TRUE(store_
                  ->Read([&](Conn& c) {
                    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT version FROM schema_migrations "
                                                     "WHERE version IN (14, 15) ORDER BY version"));
                    EXPECT_EQ(r.size(), 2u);
                    // A tenant's ids come by person, then by key.
                    ASSIGN_OR_RETURN(Rows ids, c.Query("SELECT person_id, key_hi, key_lo FROM "
                                                       "person_ids ORDER BY tenant_id, person_id, "
                                                       "key_hi, key_lo"));
                    EXPECT_EQ(ids.size(), size_t{2 * kIds});
                    return Status::Ok();
                  })
                  .ok());
  const IdKey key = IdKeyOf("member_no:M7");
  Status dup = store_->Write([&](Conn& c) {
    return c
        .Exec(
            "INSERT INTO person_ids (tenant_id, key_hi, key_lo, external_id, kind, person_id, "
            "created_at) SELECT tenant_id, ?, ?, 'member_no:M7', 'member_no', id, 2 FROM people",
            {key.hi, key.lo})
        .status();
  });
  EXPECT_FALSE(dup.ok());
  if (GetParam() == "postgres") {
    Status other = store_->Write([&](Conn& c) -> Status {
      ASSIGN_OR_RETURN(Rows p, c.Query("INSERT INTO people (tenant_id, acquired_at, created_at, "
                                       "updated_at) SELECT MIN(id), 1, 1, 1 FROM tenants "
                                       "RETURNING id, tenant_id"));
      return c
          .Exec(
              "INSERT INTO person_ids (tenant_id, key_hi, key_lo, external_id, kind, person_id, "
              "created_at) VALUES (?, ?, ?, 'member_no:M7', 'member_no', ?, 2)",
              {p.at(0).Int(1), key.hi, key.lo, p.at(0).Int(0)})
          .status();
    });
    EXPECT_FALSE(other.ok());
  }
}

// WriteDeferredWork: a transaction of the deferred work alone. On SQLite its references go
// unchecked (the prologue sees foreign_keys off); every other write, also one queued at the same
// time, is checked as before and a dangling reference fails it.
TEST_P(StoreTest, DeferredWorkAloneLeavesOtherWritesChecked) {
  std::atomic<int> prologues{0}, unchecked{0}, checked{0};
  const bool sqlite = GetParam() == "sqlite";
  store_->SetDeferredWork(
      [&](Conn& c) -> Status {
        ++prologues;
        if (sqlite) {
          ASSIGN_OR_RETURN(Rows r, c.Query("PRAGMA foreign_keys"));
          ++(r.at(0).Int(0) == 1 ? checked : unchecked);
        }
        return Status::Ok();
      },
      [] {});
  ASSERT_TRUE(store_->Write([&](Conn& c) { return InsertTenant(c, "brand"); }).ok());
  auto dangling = [&] {
    return store_->Write([](Conn& c) {
      return c
          .Exec(
              "INSERT INTO people (tenant_id, acquired_at, created_at, updated_at) VALUES "
              "(987654, 1, 1, 1)")
          .status();
    });
  };
  for (int round = 0; round < 20; ++round) {
    std::thread deferred([&] { EXPECT_TRUE(store_->WriteDeferredWork().ok()); });
    EXPECT_FALSE(dangling().ok()) << "round " << round;
    deferred.join();
  }
  EXPECT_FALSE(dangling().ok());
  EXPECT_GE(prologues.load(), 20 + 20 + 2);
  if (sqlite) {
    EXPECT_GE(unchecked.load(), 20);  // each WriteDeferredWork
    EXPECT_GE(checked.load(), 20 + 2);
  }
  ASSERT_TRUE(store_
                  ->Read([&](Conn& c) {
                    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT COUNT(*) FROM people"));
                    EXPECT_EQ(r.at(0).Int(0), 0);
                    return Status::Ok();
                  })
                  .ok());
}

TEST_P(StoreTest, WritesAfterShutdownAreRefused) {
  store_->Shutdown();
  Status s = store_->Write([&](Conn& c) { return InsertTenant(c, "late"); });
  EXPECT_EQ(s.code(), ErrorCode::kShuttingDown);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("sqlite", "postgres"));

// SQLite only, below: a store in a new directory whose WAL is to start over past 1 MiB.
std::unique_ptr<Store> OpenSmallWalStore(const std::filesystem::path& dir) {
  Options o;
  o.url = dir.string();
  o.wal_restart_frames = 256;  // 1 MiB
  auto opened = Store::Open(o);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return opened.ok() ? std::move(opened).value() : nullptr;
}

std::filesystem::path NewStoreDir() {
  return std::filesystem::temp_directory_path() / ("siyu-store-" + RandomBase62(10));
}

// `n` tenants named "<prefix>-<i>" and 3,000 bytes more: every row a page of its own, and its
// index key too.
Status InsertPaddedTenants(Conn& c, const std::string& prefix, int n) {
  static const std::string pad(3000, 'x');
  for (int i = 0; i < n; ++i) {
    RETURN_IF_ERROR(
        c.Exec("INSERT INTO tenants (name, timezone, created_at) VALUES (?, ?, ?)",
               {prefix + "-" + std::to_string(i) + pad, std::string("Asia/Shanghai"), int64_t{1}})
            .status());
  }
  return Status::Ok();
}

int64_t TenantCount(Store& st) {
  int64_t n = -1;
  EXPECT_TRUE(st.Read([&](Conn& c) {
                  ASSIGN_OR_RETURN(Rows r, c.Query("SELECT COUNT(*) FROM tenants"));
                  n = r.at(0).Int(0);
                  return Status::Ok();
                }).ok());
  return n;
}

// SQLite only: under a steady write load (the writer always has the next group waiting, so a
// background checkpoint never finds the WAL idle) the WAL still starts over once it passes its
// limit instead of growing with every commit; and every acknowledged write is there, also after
// the store is reopened.
TEST(SqliteStoreTest, WalStartsOverUnderASteadyWriteLoad) {
  const auto dir = NewStoreDir();
  std::unique_ptr<Store> store = OpenSmallWalStore(dir);
  ASSERT_NE(store, nullptr);

  constexpr int kThreads = 16, kPerThread = 300;
  const auto wal = dir / "siyu.db-wal";
  std::atomic<bool> done{false};
  std::atomic<uintmax_t> largest{0};
  std::thread watch([&] {
    while (!done) {
      std::error_code ec;
      uintmax_t size = std::filesystem::file_size(wal, ec);
      if (!ec && size > largest) largest = size;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = store->Write([&](Conn& c) {
          return InsertPaddedTenants(c, std::to_string(t) + "-" + std::to_string(i), 1);
        });
        if (!s.ok()) failures++;
      }
    });
  }
  for (auto& t : ts) t.join();
  done = true;
  watch.join();
  EXPECT_EQ(failures.load(), 0);
  // Without restarts the WAL would hold every page written: two or more per row, over 60 MB.
  EXPECT_LT(largest.load(), uintmax_t{24} << 20) << "the WAL grew with the load";

  EXPECT_EQ(TenantCount(*store), kThreads * kPerThread);
  store.reset();
  store = OpenSmallWalStore(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(TenantCount(*store), kThreads * kPerThread);
  store.reset();
  std::filesystem::remove_all(dir);
}

// SQLite only: writes each larger than the writer copies on its own (the event log's applier)
// still let the WAL start over when they first wait for the checkpointer (WaitBeforeLargeWrite),
// instead of appending every one of them to the WAL.
TEST(SqliteStoreTest, WalStartsOverBetweenLargeWrites) {
  const auto dir = NewStoreDir();
  std::unique_ptr<Store> store = OpenSmallWalStore(dir);
  ASSERT_NE(store, nullptr);

  constexpr int kWrites = 16, kRowsPerWrite = 2000;  // each write well over 1,024 frames
  const auto wal = dir / "siyu.db-wal";
  uintmax_t largest = 0;
  for (int w = 0; w < kWrites; ++w) {
    store->WaitBeforeLargeWrite(std::chrono::seconds(5));
    Status s = store->Write(
        [&](Conn& c) { return InsertPaddedTenants(c, std::to_string(w), kRowsPerWrite); });
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::error_code ec;
    largest = std::max(largest, std::filesystem::file_size(wal, ec));
  }
  // Appended one after another, the writes would make a WAL of over 100 MB; starting over before
  // most of them, it holds about two.
  EXPECT_LT(largest, uintmax_t{32} << 20) << "the WAL grew with every large write";
  EXPECT_EQ(TenantCount(*store), kWrites * kRowsPerWrite);
  store.reset();
  std::filesystem::remove_all(dir);
}

// SQLite only: a large write does not wait out its limit for frames a long read keeps the
// checkpointer from copying; it goes on (appending to the WAL) once a pass shows the reader.
TEST(SqliteStoreTest, ALargeWriteDoesNotWaitForFramesAReaderHolds) {
  const auto dir = NewStoreDir();
  std::unique_ptr<Store> store = OpenSmallWalStore(dir);
  ASSERT_NE(store, nullptr);
  auto large_write = [&](int w) {  // over 1,024 frames
    return store->Write([&](Conn& c) { return InsertPaddedTenants(c, std::to_string(w), 2000); });
  };
  ASSERT_TRUE(large_write(0).ok());
  std::mutex mu;
  std::condition_variable cv;
  bool reading = false, release = false;
  std::thread reader([&] {
    Status s = store->Read([&](Conn& c) {
      RETURN_IF_ERROR(c.Query("SELECT COUNT(*) FROM tenants").status());  // takes the snapshot
      std::unique_lock<std::mutex> lock(mu);
      reading = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return reading; });
  }
  ASSERT_TRUE(large_write(1).ok());  // frames after the reader's snapshot
  const auto t0 = std::chrono::steady_clock::now();
  store->WaitBeforeLargeWrite(std::chrono::seconds(60));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(waited, std::chrono::seconds(20)) << "waited out the limit for frames a reader holds";
  ASSERT_TRUE(large_write(2).ok());
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  reader.join();
  store.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace siyu::store
