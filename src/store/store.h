// The store: siyu's system of record. Two backends implement it, SQLite (embedded, a data
// directory in WAL mode) and PostgreSQL, with the same schema and the same SQL (written with `?`
// placeholders; the PostgreSQL backend rewrites them).
//
// Thread-safety: Store is thread-safe. A Conn is used by one thread at a time and only inside the
// callback it was handed to.
//
// Writes go through group commit: Write() queues a closure; one writer thread runs all queued
// closures in a single transaction (each inside its own savepoint, so one failing closure does not
// undo the others) and commits; Write() returns only once that commit is durable. A backend may
// make commits durable off the writer thread (AfterCommit): the writer then goes on with the next
// group while the previous one is synced. Reads run on a pool of
// connections in read-only transactions, concurrently with the writer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace siyu::store {

enum class Dialect { kSqlite, kPostgres };

// Text a parameter borrows instead of copying: what it points to must outlive the Query or Exec
// it is passed to. Never returned in a Row.
struct TextRef {
  std::string_view text;
};

using Value = std::variant<std::nullptr_t, int64_t, std::string, TextRef>;
using Params = std::vector<Value>;

// One result row. Column values come back typed from SQLite and as text from PostgreSQL; the
// accessors convert.
class Row {
 public:
  explicit Row(std::vector<Value> cols) : cols_(std::move(cols)) {}
  bool IsNull(size_t i) const { return std::holds_alternative<std::nullptr_t>(cols_.at(i)); }
  int64_t Int(size_t i) const;  // NULL reads as 0
  std::optional<int64_t> OptInt(size_t i) const;
  std::string Text(size_t i) const;  // NULL reads as ""
  size_t size() const { return cols_.size(); }

 private:
  std::vector<Value> cols_;
};
using Rows = std::vector<Row>;

class Conn {
 public:
  virtual ~Conn() = default;
  virtual Dialect dialect() const = 0;
  virtual StatusOr<Rows> Query(std::string_view sql, const Params& params = {}) = 0;
  // Returns the number of rows changed.
  virtual StatusOr<int64_t> Exec(std::string_view sql, const Params& params = {}) = 0;
  // The same, with the parameters a slice of a longer list (a multi-row insert's rows), which a
  // store may bind without copying them.
  virtual StatusOr<int64_t> ExecSlice(std::string_view sql, std::span<const Value> params) {
    return Exec(sql, Params(params.begin(), params.end()));
  }
  // Several statements without parameters (migrations, transaction control).
  virtual Status ExecScript(std::string_view sql) = 0;
  // True when the last error means the connection is gone and must be reopened.
  virtual bool broken() const = 0;

  // Inside a write: `fn` runs (on the writer, with this connection) if the write's changes are
  // discarded — the write failed, or the transaction holding it did not commit — before any other
  // write runs. For in-memory state a write changes ahead of its commit (the identity graph): the
  // hook puts it back in line with the store.
  void OnRollback(std::function<void(Conn&)> fn) { rollback_hooks_.push_back(std::move(fn)); }
  // Inside a write: `fn` runs once the write's transaction is durable (OK), or with the error that
  // kept it from committing or becoming durable (after any OnRollback hooks). On any thread.
  void OnDurable(std::function<void(const Status&)> fn) { durable_hooks_.push_back(std::move(fn)); }
  // Inside a write: a number that differs from one write to the next (hooks registered once per
  // write compare it).
  uint64_t write_number() const { return write_number_; }

 private:
  friend class Store;
  std::vector<std::function<void(Conn&)>> rollback_hooks_;
  std::vector<std::function<void(const Status&)>> durable_hooks_;
  uint64_t write_number_ = 0;
};

struct Options {
  // "sqlite:<dir>" / a directory path, or "postgres://…" / "postgresql://…".
  std::string url;
  int read_pool_size = 8;
  int max_batch = 512;
  // SQLite: the WAL size, in frames (one page each), past which the WAL is made to start over.
  int wal_restart_frames = 65536;
};

// The data directory of a SQLite store's URL ("sqlite:<dir>" or a path); empty for PostgreSQL.
std::string SqliteDataDir(const Options& options);

class Store {
 public:
  using WriteFn = std::function<Status(Conn&)>;
  using ReadFn = std::function<Status(Conn&)>;

  // Opens the backend named by `options.url`, applies migrations and starts the writer.
  static StatusOr<std::unique_ptr<Store>> Open(const Options& options);

  virtual ~Store();
  virtual Dialect dialect() const = 0;
  std::string_view name() const { return dialect() == Dialect::kSqlite ? "sqlite" : "postgres"; }

  // Runs `fn` inside a read-only transaction on a pooled connection, after the deferred work owed
  // when it was called is committed (SetDeferredWork).
  Status Read(const ReadFn& fn);
  // Read without waiting for deferred work: for reads of what deferred work never writes (tenants,
  // keys, channels).
  Status ReadNow(const ReadFn& fn);
  // Runs `fn` in the next group-commit transaction; returns after commit. If `fn` fails, its own
  // changes are rolled back and its status is returned.
  Status Write(WriteFn fn);
  // A transaction of the deferred work alone (SetDeferredWork), for the one who owes it: returns
  // after that commit, once durable. The deferred work writes rows whose references hold by
  // construction (people it inserts before their ids and touches; tenants, channels and people,
  // which are never deleted), so the backend may skip checking them (SQLite: foreign keys are
  // not enforced in this transaction). Every other write is checked as usual.
  Status WriteDeferredWork();
  // Stops accepting writes, commits what is queued, joins the writer. Idempotent.
  void Shutdown();

  // Work the store owes to writes acknowledged elsewhere (the event log's new people and ids,
  // docs/decisions/0007). `prologue` runs at the start of every group-commit transaction, before
  // the group's writes, so that every write sees what was owed when it began; if it fails, the
  // group fails with it. `barrier` runs at the start of every Read (not on the writer thread) and
  // returns once what was owed when it was called is committed. Set both before serving, once.
  void SetDeferredWork(WriteFn prologue, std::function<void()> barrier);
  // True on the store's writer thread (inside a Write).
  static bool OnWriterThread();
  // Before a write of much deferred work: lets the backend make ready for it, waiting at most
  // `at_most` (SQLite: when its WAL is to start over, the checkpointer first copies the frames it
  // still holds, so that the write begins the WAL afresh instead of growing it). Not on the writer.
  virtual void WaitBeforeLargeWrite(std::chrono::milliseconds /*at_most*/) {}

 protected:
  explicit Store(Options options);
  // Opens a new connection to the backend.
  virtual StatusOr<std::unique_ptr<Conn>> Connect() = 0;
  virtual std::string_view BeginWriteSql() const = 0;
  // On the writer thread, with its connection, before each group-commit transaction begins.
  virtual void BeforeWrite(Conn& /*writer*/) {}
  // On the writer thread, once its connection is opened (and again after a reconnect).
  virtual Status PrepareWriter(Conn& /*writer*/) { return Status::Ok(); }
  // On the writer thread, outside a transaction: whether the writer's next transactions enforce
  // references. Off only around a transaction of deferred work alone (WriteDeferredWork); an
  // error turning them back on drops the connection (a new one enforces them).
  virtual Status CheckReferences(Conn& /*writer*/, bool /*on*/) { return Status::Ok(); }
  // On the writer thread, right after a group's COMMIT returned: `acknowledge` must be called,
  // on any thread and in commit order, once that commit is durable (OK) or with the error that
  // kept it from becoming durable; the group's Write() calls return only then. The default
  // acknowledges at once: COMMIT itself made the transaction durable.
  using Acknowledge = std::function<void(const Status&)>;
  virtual void AfterCommit(Acknowledge acknowledge) { acknowledge(Status::Ok()); }
  virtual std::string_view BeginReadSql() const = 0;
  // Applies the schema migrations not yet applied (under whatever lock the backend needs).
  virtual Status Migrate(Conn& conn);
  // Starts the writer thread; called by Open() after Migrate().
  Status Start();

  const Options options_;

 private:
  Status Submit(WriteFn fn, bool deferred_only);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Applies pending migrations from schema.cc on `conn` (caller holds any needed lock).
Status ApplyMigrations(Conn& conn);

}  // namespace siyu::store
