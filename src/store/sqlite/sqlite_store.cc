#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/threads.h"

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
  sqlite3* db() const { return db_; }

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

// How often the checkpointer runs.
constexpr auto kCheckpointEvery = std::chrono::milliseconds(100);
// How soon after the checkpointer's pass the writer must take up its request to restart the WAL.
constexpr auto kRestartFreshFor = std::chrono::milliseconds(10);

class SqliteStore final : public Store {
 public:
  SqliteStore(Options options, std::string path)
      : Store(std::move(options)), path_(std::move(path)) {}
  ~SqliteStore() override {
    Shutdown();  // the writer is joined: no commit is added to the syncer's queue after this
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      sync_stop_ = true;
    }
    sync_cv_.notify_all();
    if (syncer_.joinable()) syncer_.join();
    if (wal_fd_ >= 0) ::close(wal_fd_);
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
    // Commits are made durable by a thread of their own (AfterCommit): the writer commits with
    // synchronous=NORMAL (no sync at COMMIT) and goes on with the next group while the syncer
    // fsyncs the WAL; each group's writers are answered after the sync that covers its commit.
    // Every commit's frames are in the WAL before the sync that answers it, so an answered write
    // is as durable as with synchronous=FULL. A commit can be seen by readers before it is
    // durable; only its own writers wait.
    syncer_ = std::thread([this] {
      NameThisThread("siyu-wal-sync");
      SyncLoop();
    });
    RETURN_IF_ERROR(Start());
    // Checkpoints copy committed pages from the WAL into the database file. Left to SQLite they
    // run inside the commit that crosses the threshold, on the writer's critical path; here a
    // thread of its own runs them, so commits only append to the WAL. (A checkpoint syncs the WAL
    // before it copies frames and the database file after, at any synchronous level.)
    //
    // A passive checkpoint never lets the WAL start over while the writer keeps committing: the
    // WAL restarts only at a write that begins when every frame is checkpointed, and by the end
    // of a pass there are newer frames. Under a steady write load the WAL would grow without
    // bound, and appending to a growing file costs the kernel far more than overwriting one (new
    // blocks are allocated and zeroed). So once the WAL is past Options::wal_restart_frames the
    // checkpointer asks the writer to finish the job: before its next transaction the writer
    // checkpoints the frames committed since the pass began (BeforeWrite), and that transaction
    // writes the WAL from its start again. The writer holds its writes meanwhile (a copy of those
    // few frames and two syncs), so it does this only right after a pass: a stale request is
    // dropped.
    ASSIGN_OR_RETURN(auto ckpt, Connect());
    checkpointer_ = std::thread([this, c = std::move(ckpt)]() mutable {
      NameThisThread("siyu-checkpoint");
      sqlite3* db = static_cast<SqliteConn&>(*c).db();
      auto pass = [&](int* log_frames) {
        int done_frames = 0;
        return sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, log_frames,
                                         &done_frames) == SQLITE_OK;
      };
      std::unique_lock<std::mutex> lock(ckpt_mu_);
      while (!ckpt_cv_.wait_for(lock, kCheckpointEvery, [&] { return ckpt_stop_; })) {
        lock.unlock();
        int log_frames = 0;
        // When the WAL is to start over, a second pass right away copies what the first one
        // could not, so that the writer is left with the frames of one short pass.
        if (pass(&log_frames) && log_frames >= options_.wal_restart_frames && pass(&log_frames)) {
          restart_asked_at_ = std::chrono::steady_clock::now().time_since_epoch().count();
        }
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
  void BeforeWrite(Conn& writer) override {
    const int64_t asked = restart_asked_at_.exchange(0);
    if (asked == 0) return;
    const auto since = std::chrono::steady_clock::now().time_since_epoch() -
                       std::chrono::steady_clock::duration(asked);
    if (since > kRestartFreshFor) return;  // frames have piled up since that pass: next time
    // The background pass did most of the copying; this one catches up with the frames since.
    (void)sqlite3_wal_checkpoint_v2(static_cast<SqliteConn&>(writer).db(), nullptr,
                                    SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  }
  Status PrepareWriter(Conn& writer) override {
    // The writer keeps up to 512 MiB of pages (allocated as used; readers keep 64 MiB): the
    // event log's applier inserts ids and events at random places in large indexes, and pages it
    // must read back from the file cost it more than the memory.
    return writer.ExecScript("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-524288");
  }
  void AfterCommit(Acknowledge acknowledge) override {
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      to_sync_.push_back(std::move(acknowledge));
    }
    sync_cv_.notify_one();
  }

 private:
  // Answers the committed groups: every pass takes all of them, makes the WAL durable once, and
  // acknowledges them in commit order.
  void SyncLoop() {
    std::unique_lock<std::mutex> lock(sync_mu_);
    for (;;) {
      sync_cv_.wait(lock, [&] { return sync_stop_ || !to_sync_.empty(); });
      if (to_sync_.empty()) return;  // stopping, and everything is answered
      std::vector<Acknowledge> group = std::move(to_sync_);
      to_sync_.clear();
      lock.unlock();
      Status s = SyncWal();
      for (auto& ack : group) ack(s);
      lock.lock();
    }
  }

  // fdatasync of the WAL through a descriptor of our own (fsync covers the file's data whoever
  // wrote it). The directory is synced once per opened file, for a WAL that was just created.
  // A failed sync is final: the state of the file is unknown afterwards, so every later commit
  // is refused too until the store is reopened.
  Status SyncWal() {
    if (!sync_failed_.ok()) return sync_failed_;
    const std::string wal = path_ + "-wal";
    struct stat st {};
    if (wal_fd_ >= 0 && (::stat(wal.c_str(), &st) != 0 || st.st_ino != wal_ino_)) {
      ::close(wal_fd_);  // the WAL was removed or replaced: follow the file now in place
      wal_fd_ = -1;
    }
    int err = 0;  // errno of the first failure
    if (wal_fd_ < 0) {
      wal_fd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
      if (wal_fd_ < 0 || ::fstat(wal_fd_, &st) != 0) {
        err = errno;
      } else {
        wal_ino_ = st.st_ino;
        const std::string dir = std::filesystem::path(path_).parent_path().string();
        int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || ::fsync(dfd) != 0) err = errno;
        if (dfd >= 0) ::close(dfd);
      }
    }
    if (err == 0 && ::fdatasync(wal_fd_) != 0) err = errno;
    if (err != 0) {
      sync_failed_ = Status(ErrorCode::kStoreUnavailable,
                            "the store could not make a commit durable (sync of " + wal +
                                " failed: " + std::strerror(err) + "); restart the server");
      spdlog::error("store: {}", sync_failed_.ToString());
      return sync_failed_;
    }
    return Status::Ok();
  }

  std::string path_;
  std::thread checkpointer_;
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_stop_ = false;
  // When the checkpointer last asked the writer to make the WAL start over (steady_clock ticks);
  // 0: not asked.
  std::atomic<int64_t> restart_asked_at_{0};

  std::thread syncer_;
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::vector<Acknowledge> to_sync_;  // committed groups waiting for the sync, in commit order
  bool sync_stop_ = false;
  // The syncer's own:
  int wal_fd_ = -1;
  ino_t wal_ino_ = 0;
  Status sync_failed_;
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
