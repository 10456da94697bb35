#include "store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace siyu::store {
namespace {

Status SqliteError(sqlite3* db, int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      return Status(ErrorCode::kAlreadyExists, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
      return Status(ErrorCode::kStoreUnavailable, msg);
    default:
      return Internal(msg);
  }
}

class SqliteConn final : public Conn {
 public:
  explicit SqliteConn(sqlite3* db) : db_(db) {}
  ~SqliteConn() override {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  Dialect dialect() const override { return Dialect::kSqlite; }
  bool broken() const override { return false; }

  StatusOr<Rows> Query(std::string_view sql, const Params& params) override {
    sqlite3_stmt* stmt;
    RETURN_IF_ERROR(Prepare(sql, params, &stmt));
    Rows rows;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      int n = sqlite3_column_count(stmt);
      std::vector<Value> cols;
      cols.reserve(n);
      for (int i = 0; i < n; ++i) {
        switch (sqlite3_column_type(stmt, i)) {
          case SQLITE_NULL:
            cols.emplace_back(nullptr);
            break;
          case SQLITE_INTEGER:
            cols.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt, i)));
            break;
          default: {
            auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
            cols.emplace_back(std::string(p ? p : "", sqlite3_column_bytes(stmt, i)));
          }
        }
      }
      rows.emplace_back(std::move(cols));
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, "query");
    return rows;
  }

  StatusOr<int64_t> Exec(std::string_view sql, const Params& params) override {
    sqlite3_stmt* stmt;
    RETURN_IF_ERROR(Prepare(sql, params, &stmt));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) return SqliteError(db_, rc, "exec");
    return static_cast<int64_t>(sqlite3_changes64(db_));
  }

  Status ExecScript(std::string_view sql) override {
    char* err = nullptr;
    std::string s(sql);
    int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      Status st = SqliteError(db_, rc, "exec script");
      sqlite3_free(err);
      return st;
    }
    return Status::Ok();
  }

 private:
  Status Prepare(std::string_view sql, const Params& params, sqlite3_stmt** out) {
    auto it = cache_.find(std::string(sql));
    sqlite3_stmt* stmt;
    if (it != cache_.end()) {
      stmt = it->second;
    } else {
      int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                  SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) return SqliteError(db_, rc, "prepare");
      cache_.emplace(std::string(sql), stmt);
    }
    sqlite3_clear_bindings(stmt);
    for (size_t i = 0; i < params.size(); ++i) {
      int idx = static_cast<int>(i + 1);
      int rc;
      if (auto p = std::get_if<int64_t>(&params[i])) {
        rc = sqlite3_bind_int64(stmt, idx, *p);
      } else if (auto s = std::get_if<std::string>(&params[i])) {
        rc = sqlite3_bind_text(stmt, idx, s->data(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
      } else {
        rc = sqlite3_bind_null(stmt, idx);
      }
      if (rc != SQLITE_OK) return SqliteError(db_, rc, "bind");
    }
    *out = stmt;
    return Status::Ok();
  }

  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(Options options, std::string path)
      : Store(std::move(options)), path_(std::move(path)) {}
  ~SqliteStore() override {
    Shutdown();
    {
      std::lock_guard<std::mutex> lock(ckpt_mu_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Status Init() {
    ASSIGN_OR_RETURN(auto conn, Connect());
    RETURN_IF_ERROR(conn->ExecScript("PRAGMA journal_mode=WAL"));
    RETURN_IF_ERROR(Migrate(*conn));
    RETURN_IF_ERROR(Start());
    // Checkpoints copy committed pages from the WAL into the database file. Left to SQLite they
    // run inside the commit that crosses the threshold, on the writer's critical path; here a
    // thread of its own runs them, so commits only append to the WAL. Durability is unchanged:
    // a commit is durable once its WAL frames are synced.
    ASSIGN_OR_RETURN(auto ckpt, Connect());
    checkpointer_ = std::thread([this, c = std::move(ckpt)]() mutable {
      std::unique_lock<std::mutex> lock(ckpt_mu_);
      while (!ckpt_cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return ckpt_stop_; })) {
        lock.unlock();
        (void)c->ExecScript("PRAGMA wal_checkpoint(PASSIVE)");
        lock.lock();
      }
      lock.unlock();
      (void)c->ExecScript("PRAGMA wal_checkpoint(TRUNCATE)");
    });
    return Status::Ok();
  }

 protected:
  StatusOr<std::unique_ptr<Conn>> Connect() override {
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(path_.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      Status s = SqliteError(db, rc, "open " + path_);
      sqlite3_close_v2(db);
      return s;
    }
    auto conn = std::make_unique<SqliteConn>(db);
    sqlite3_busy_timeout(db, 5000);
    RETURN_IF_ERROR(conn->ExecScript(
        "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536; "
        "PRAGMA wal_autocheckpoint=0;"));
    return std::unique_ptr<Conn>(std::move(conn));
  }
  std::string_view BeginWriteSql() const override { return "BEGIN IMMEDIATE"; }
  std::string_view BeginReadSql() const override { return "BEGIN"; }

 private:
  std::string path_;
  std::thread checkpointer_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_stop_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const Options& options, std::string dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Status(ErrorCode::kStoreUnavailable,
                  "cannot create data directory " + dir + ": " + ec.message());
  }
  auto store = std::make_unique<SqliteStore>(options, dir + "/siyu.db");
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace siyu::store
