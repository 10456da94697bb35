#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
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
    return ExecSlice(sql, params);
  }

  StatusOr<int64_t> ExecSlice(std::string_view sql, std::span<const Value> params) override {
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
  Status Prepare(std::string_view sql, std::span<const Value> params, sqlite3_stmt** out) {
    auto it = cache_.find(sql);
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
        // The parameters outlive every step of the statement (Query and Exec step it to the end
        // before they return, and bindings are cleared before its next use), so SQLite need not
        // copy them.
        rc = sqlite3_bind_text(stmt, idx, s->data(), static_cast<int>(s->size()), SQLITE_STATIC);
      } else if (auto r = std::get_if<TextRef>(&params[i])) {
        rc = sqlite3_bind_text(stmt, idx, r->text.data(), static_cast<int>(r->text.size()),
                               SQLITE_STATIC);
      } else {
        rc = sqlite3_bind_null(stmt, idx);
      }
      if (rc != SQLITE_OK) return SqliteError(db_, rc, "bind");
    }
    *out = stmt;
    return Status::Ok();
  }

  sqlite3* db_;
  // Looked up by the statement's text as given, without copying it.
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, sqlite3_stmt*, TextHash, std::equal_to<>> cache_;
};

// How often the checkpointer runs.
constexpr auto kCheckpointEvery = std::chrono::milliseconds(100);
// When the WAL is to start over, the writer copies at most this many frames (4 MiB) itself before
// a transaction; more are left to the checkpointer.
constexpr int64_t kWriterCopiesAtMost = 1024;

// What identifies one run of the WAL from its start: the checkpoint sequence number and the salts
// of the WAL header (bytes 12-23), which SQLite changes whenever the WAL starts over.
using WalRun = std::array<unsigned char, 12>;

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
    if (hook_wal_fd_ >= 0) ::close(hook_wal_fd_);
    {
      std::lock_guard<std::mutex> lock(ckpt_mu_);
      ckpt_stop_ = true;
    }
    ckpt_cv_.notify_all();
    ckpt_done_cv_.notify_all();
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
    // checkpointer asks for it to start over, and the frames the passes have not copied yet are
    // counted (the writer's WAL hook gives the frames after each commit, a pass the frames it
    // copied): before a transaction that finds few of them (kWriterCopiesAtMost), the writer
    // copies them itself (BeforeWrite), so that transaction writes the WAL from its start again.
    // A large write that finds many — the event log's applier after its previous transaction —
    // first waits for the checkpointer to copy them (WaitBeforeLargeWrite).
    ASSIGN_OR_RETURN(auto ckpt, Connect());
    checkpointer_ = std::thread([this, c = std::move(ckpt)]() mutable {
      NameThisThread("siyu-checkpoint");
      sqlite3* db = static_cast<SqliteConn&>(*c).db();
      std::unique_lock<std::mutex> lock(ckpt_mu_);
      for (;;) {
        ckpt_cv_.wait_for(lock, kCheckpointEvery, [&] { return ckpt_stop_ || ckpt_kick_; });
        if (ckpt_stop_) break;
        // When the WAL is to start over, passes follow each other until few frames are left.
        for (int passes = 0; passes < 3; ++passes) {
          ckpt_kick_ = false;
          const uint64_t run = wal_runs_;
          lock.unlock();
          int log_frames = 0, done_frames = 0;
          const bool ok = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                                    &log_frames, &done_frames) == SQLITE_OK;
          lock.lock();
          // A pass that could not copy every frame it saw was held back by a reader.
          if (ok && done_frames < log_frames) ++held_back_passes_;
          ckpt_done_cv_.notify_all();
          if (!ok || run != wal_runs_) break;  // the WAL started over meanwhile: count afresh
          backfilled_ = std::max<int64_t>(backfilled_, done_frames);
          if (log_frames >= options_.wal_restart_frames) restart_wanted_ = true;
          if (!restart_wanted_ || wal_frames_ - backfilled_ <= kWriterCopiesAtMost ||
              done_frames < log_frames) {
            break;
          }
        }
      }
      lock.unlock();
      (void)c->ExecScript("PRAGMA wal_checkpoint(TRUNCATE)");
    });
    return Status::Ok();
  }

  void WaitBeforeLargeWrite(std::chrono::milliseconds at_most) override {
    std::unique_lock<std::mutex> lock(ckpt_mu_);
    if (!restart_wanted_ || wal_frames_ - backfilled_ <= kWriterCopiesAtMost) return;
    ckpt_kick_ = true;
    ckpt_cv_.notify_all();
    // Not for a reader: a long read holds the frames after its snapshot where they are.
    const uint64_t held_back = held_back_passes_;
    ckpt_done_cv_.wait_for(lock, at_most, [&] {
      return ckpt_stop_ || !restart_wanted_ || wal_frames_ - backfilled_ <= kWriterCopiesAtMost ||
             held_back_passes_ != held_back;
    });
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
    int64_t owed;
    uint64_t run;
    {
      std::lock_guard<std::mutex> lock(ckpt_mu_);
      if (!restart_wanted_) return;
      owed = wal_frames_ - backfilled_;
      run = wal_runs_;
    }
    // Nothing owed: this transaction starts the WAL over. Too much: the checkpointer copies it.
    if (owed <= 0 || owed > kWriterCopiesAtMost) return;
    int log_frames = 0, done_frames = 0;
    if (sqlite3_wal_checkpoint_v2(static_cast<SqliteConn&>(writer).db(), nullptr,
                                  SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                  &done_frames) != SQLITE_OK) {
      return;
    }
    std::lock_guard<std::mutex> lock(ckpt_mu_);
    if (run == wal_runs_) backfilled_ = std::max<int64_t>(backfilled_, done_frames);
  }
  Status PrepareWriter(Conn& writer) override {
    // The writer keeps up to 512 MiB of pages (allocated as used; readers keep 64 MiB): the
    // event log's applier inserts ids and events at random places in large indexes, and pages it
    // must read back from the file cost it more than the memory.
    RETURN_IF_ERROR(writer.ExecScript(
        "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-524288; PRAGMA temp_store=MEMORY"));
    sqlite3_wal_hook(static_cast<SqliteConn&>(writer).db(), &SqliteStore::OnWalCommit, this);
    return Status::Ok();
  }
  Status CheckReferences(Conn& writer, bool on) override {
    // A no-op inside a transaction: read back to be sure it took.
    RETURN_IF_ERROR(writer.ExecScript(on ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF"));
    ASSIGN_OR_RETURN(Rows r, writer.Query("PRAGMA foreign_keys"));
    if (r.empty() || r[0].Int(0) != (on ? 1 : 0)) {
      return Internal(fmt::format("PRAGMA foreign_keys={} did not take", on ? "ON" : "OFF"));
    }
    return Status::Ok();
  }
  void AfterCommit(Acknowledge acknowledge) override {
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      to_sync_.push_back(std::move(acknowledge));
    }
    sync_cv_.notify_one();
  }

 private:
  // The writer's WAL hook, after every commit: `frames` is the WAL's size in frames. A commit that
  // began the WAL anew shows in the WAL header; counting starts over with it.
  static int OnWalCommit(void* self, sqlite3* /*db*/, const char* /*schema*/, int frames) {
    static_cast<SqliteStore*>(self)->NoteCommit(frames);
    return SQLITE_OK;
  }
  void NoteCommit(int frames) {
    bool new_run = false;
    WalRun run{};
    if (ReadWalRun(run)) {
      new_run = run != wal_run_;
      wal_run_ = run;
    }
    std::lock_guard<std::mutex> lock(ckpt_mu_);
    if (new_run || frames < wal_frames_) {
      ++wal_runs_;
      backfilled_ = 0;
      restart_wanted_ = false;
    }
    wal_frames_ = frames;
    // Known at once: a large write that follows waits for its frames to be copied.
    if (frames >= options_.wal_restart_frames) restart_wanted_ = true;
  }
  // The writer's: reads what identifies the WAL's current run from its header.
  bool ReadWalRun(WalRun& run) {
    const std::string wal = path_ + "-wal";
    struct stat st {};
    if (hook_wal_fd_ >= 0 && (::stat(wal.c_str(), &st) != 0 || st.st_ino != hook_wal_ino_)) {
      ::close(hook_wal_fd_);
      hook_wal_fd_ = -1;
    }
    if (hook_wal_fd_ < 0) {
      hook_wal_fd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
      if (hook_wal_fd_ < 0) return false;
      if (::fstat(hook_wal_fd_, &st) != 0) {
        ::close(hook_wal_fd_);
        hook_wal_fd_ = -1;
        return false;
      }
      hook_wal_ino_ = st.st_ino;
    }
    return ::pread(hook_wal_fd_, run.data(), run.size(), 12) == static_cast<ssize_t>(run.size());
  }

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
  std::condition_variable ckpt_done_cv_;  // after every pass
  bool ckpt_stop_ = false;
  bool ckpt_kick_ = false;         // a large write waits: pass now
  uint64_t held_back_passes_ = 0;  // passes that a reader kept from copying every frame
  // Under ckpt_mu_: the WAL's frames after the last commit, how many of them passes have copied
  // into the database file, whether the WAL is to start over, and how many times it has.
  int64_t wal_frames_ = 0;
  int64_t backfilled_ = 0;
  bool restart_wanted_ = false;
  uint64_t wal_runs_ = 0;
  // The writer's (its WAL hook):
  WalRun wal_run_{};
  int hook_wal_fd_ = -1;
  ino_t hook_wal_ino_ = 0;

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
  // SQLite's memory statistics take a global mutex around every allocation; siyu never reads
  // them. Only possible before SQLite initialises (a no-op if something opened a database first).
  static std::once_flag configured;
  std::call_once(configured, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  auto store = std::make_unique<SqliteStore>(options, dir + "/siyu.db");
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace siyu::store
