#include "store/store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <iterator>
#include <mutex>
#include <thread>

#include "common/metrics.h"
#include "common/threads.h"

namespace siyu::store {

int64_t Row::Int(size_t i) const { return OptInt(i).value_or(0); }

std::optional<int64_t> Row::OptInt(size_t i) const {
  const Value& v = cols_.at(i);
  if (auto p = std::get_if<int64_t>(&v)) return *p;
  if (auto s = std::get_if<std::string>(&v)) {
    int64_t x = 0;
    auto r = std::from_chars(s->data(), s->data() + s->size(), x);
    if (r.ec != std::errc() || r.ptr != s->data() + s->size()) {
      // A defect (an integer column that is not an int64), never silently zero.
      throw std::runtime_error("column " + std::to_string(i) +
                               " is not an int64: " + s->substr(0, 40));
    }
    return x;
  }
  return std::nullopt;
}

std::string Row::Text(size_t i) const {
  const Value& v = cols_.at(i);
  if (auto s = std::get_if<std::string>(&v)) return *s;
  if (auto p = std::get_if<int64_t>(&v)) return std::to_string(*p);
  return {};
}

struct Store::Impl {
  struct Pending {
    WriteFn fn;
    std::promise<Status> done;
    bool deferred_only = false;  // WriteDeferredWork
  };

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Pending>> queue;
  bool stopping = false;
  bool stopped = false;
  std::thread writer;
  std::unique_ptr<Conn> wconn;
  uint64_t write_numbers = 0;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<Conn>> idle;

  std::mutex deferred_mu;  // guards the two below
  WriteFn prologue;
  std::function<void()> barrier;
};

namespace {
thread_local bool on_writer_thread = false;

void RunDurableHooks(std::vector<std::function<void(const Status&)>>& hooks, const Status& s) {
  for (auto& h : hooks) h(s);
  hooks.clear();
}
}  // namespace

bool Store::OnWriterThread() { return on_writer_thread; }

void Store::SetDeferredWork(WriteFn prologue, std::function<void()> barrier) {
  std::lock_guard<std::mutex> lock(impl_->deferred_mu);
  impl_->prologue = std::move(prologue);
  impl_->barrier = std::move(barrier);
}

Store::Store(Options options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

Store::~Store() { Shutdown(); }

Status Store::Migrate(Conn& conn) { return ApplyMigrations(conn); }

Status Store::Start() {
  auto c = Connect();
  if (!c.ok()) return c.status();
  RETURN_IF_ERROR(PrepareWriter(**c));
  impl_->wconn = std::move(c).value();
  impl_->writer = std::thread([this] {
    NameThisThread("siyu-store-w");
    on_writer_thread = true;
    auto run_one = [this](std::vector<std::unique_ptr<Impl::Pending>>& batch, auto& self) -> void {
      Impl& im = *impl_;
      // A group of deferred-work writes alone runs with references unchecked (WriteDeferredWork);
      // they are checked again after it, whatever way the transaction ends.
      const bool unchecked =
          std::all_of(batch.begin(), batch.end(), [](const auto& p) { return p->deferred_only; });
      struct Recheck {
        Store* store;
        Impl& im;
        bool active = false;
        ~Recheck() {
          if (!active || !im.wconn) return;
          Status s = store->CheckReferences(*im.wconn, true);
          if (!s.ok()) {
            spdlog::error("store: cannot enforce references again, reconnecting: {}", s.ToString());
            im.wconn.reset();
          }
        }
      } recheck{this, im};
      auto fail_all = [&](const Status& s) {
        for (auto& p : batch) p->done.set_value(s);
      };
      if (!im.wconn || im.wconn->broken()) {
        im.wconn.reset();
        auto c = Connect();
        if (c.ok()) {
          Status prepared = PrepareWriter(**c);
          if (!prepared.ok()) c = prepared;
        }
        if (!c.ok()) {
          spdlog::error("store: cannot reconnect writer: {}", c.status().ToString());
          fail_all(Status(ErrorCode::kStoreUnavailable,
                          "the store is unavailable; retry the request later"));
          return;
        }
        im.wconn = std::move(c).value();
      }
      Conn& conn = *im.wconn;
      auto t0 = std::chrono::steady_clock::now();
      BeforeWrite(conn);
      if (unchecked) {
        recheck.active = true;
        Status off = CheckReferences(conn, false);
        if (!off.ok()) spdlog::warn("store: references stay checked: {}", off.ToString());
      }
      Status s = conn.ExecScript(BeginWriteSql());
      if (!s.ok()) {
        spdlog::error("store: begin failed: {}", s.ToString());
        fail_all(Status(ErrorCode::kStoreUnavailable,
                        "the store is unavailable; retry the request later"));
        return;
      }
      std::vector<Status> results(batch.size());
      // The rollback hooks of the writes that succeeded: run if the commit fails.
      std::vector<std::function<void(Conn&)>> kept_hooks;
      // The durable hooks of the writes that succeeded: run once the commit is durable or failed.
      std::vector<std::function<void(const Status&)>> durable_hooks;
      auto run_hooks = [&conn](std::vector<std::function<void(Conn&)>>& hooks) {
        for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) (*it)(conn);
        hooks.clear();
      };
      WriteFn prologue;
      {
        std::lock_guard<std::mutex> lock(im.deferred_mu);
        prologue = im.prologue;
      }
      // With deferred work in the transaction, a failed lone write rolls back to its savepoint
      // instead of rolling back the whole transaction.
      bool single = batch.size() == 1 && !prologue;
      if (prologue) {
        conn.rollback_hooks_.clear();
        conn.durable_hooks_.clear();
        conn.write_number_ = ++im.write_numbers;
        Status r;
        try {
          r = prologue(conn);
        } catch (const std::exception& e) {
          r = Internal(std::string("deferred store work failed: ") + e.what());
        }
        std::vector<std::function<void(Conn&)>> hooks = std::move(conn.rollback_hooks_);
        std::vector<std::function<void(const Status&)>> dhooks = std::move(conn.durable_hooks_);
        conn.rollback_hooks_.clear();
        conn.durable_hooks_.clear();
        if (!r.ok()) {
          spdlog::error("store: deferred work failed: {}", r.ToString());
          (void)conn.ExecScript("ROLLBACK");
          run_hooks(hooks);
          RunDurableHooks(dhooks, r);
          fail_all(Status(ErrorCode::kStoreUnavailable,
                          "the store could not apply its deferred work; retry the request later"));
          return;
        }
        for (auto& h : hooks) kept_hooks.push_back(std::move(h));
        for (auto& h : dhooks) durable_hooks.push_back(std::move(h));
      }
      for (size_t i = 0; i < batch.size(); ++i) {
        conn.rollback_hooks_.clear();
        conn.durable_hooks_.clear();
        conn.write_number_ = ++im.write_numbers;
        if (!single) {
          Status sp = conn.ExecScript("SAVEPOINT w");
          if (!sp.ok()) {
            results[i] = sp;
            continue;
          }
        }
        Status r;
        try {
          r = batch[i]->fn(conn);
        } catch (const std::exception& e) {
          r = Internal(std::string("write failed: ") + e.what());
        }
        std::vector<std::function<void(Conn&)>> hooks = std::move(conn.rollback_hooks_);
        std::vector<std::function<void(const Status&)>> dhooks = std::move(conn.durable_hooks_);
        conn.rollback_hooks_.clear();
        conn.durable_hooks_.clear();
        if (!single) {
          if (!r.ok()) (void)conn.ExecScript("ROLLBACK TO SAVEPOINT w");
          (void)conn.ExecScript("RELEASE SAVEPOINT w");
          if (!r.ok()) {
            run_hooks(hooks);
            RunDurableHooks(dhooks, r);
          }
        }
        if (r.ok() || single) {
          for (auto& h : hooks) kept_hooks.push_back(std::move(h));
          if (r.ok()) {
            for (auto& h : dhooks) durable_hooks.push_back(std::move(h));
          } else {
            RunDurableHooks(dhooks, r);
          }
        }
        results[i] = std::move(r);
      }
      Status commit;
      if (single && !results[0].ok()) {
        commit = conn.ExecScript("ROLLBACK");
        run_hooks(kept_hooks);
      } else {
        commit = conn.ExecScript("COMMIT");
      }
      if (!commit.ok()) {
        spdlog::error("store: commit failed: {}", commit.ToString());
        (void)conn.ExecScript("ROLLBACK");
        run_hooks(kept_hooks);
        RunDurableHooks(durable_hooks, commit);
        if (batch.size() > 1) {
          // Retry each write alone so one bad write cannot fail its neighbours.
          for (auto& p : batch) {
            std::vector<std::unique_ptr<Impl::Pending>> one;
            one.push_back(std::move(p));
            self(one, self);
          }
          return;
        }
        fail_all(Status(ErrorCode::kStoreUnavailable,
                        "the store could not commit; retry the request later"));
        return;
      }
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      Metrics::Global().store_commit_seconds().Observe(secs);
      Metrics::Global().store_commit_batch().Observe(static_cast<double>(batch.size()));
      if (single && !results[0].ok()) {  // rolled back: nothing to make durable
        batch[0]->done.set_value(std::move(results[0]));
        return;
      }
      // The writers learn their results once the commit is durable; a write that failed on its
      // own keeps its error.
      struct Committed {
        std::vector<std::unique_ptr<Impl::Pending>> batch;
        std::vector<Status> results;
        std::vector<std::function<void(const Status&)>> durable_hooks;
      };
      auto committed = std::make_shared<Committed>(
          Committed{std::move(batch), std::move(results), std::move(durable_hooks)});
      AfterCommit([committed](const Status& durable) {
        RunDurableHooks(committed->durable_hooks, durable);
        for (size_t i = 0; i < committed->batch.size(); ++i) {
          Status& r = committed->results[i];
          committed->batch[i]->done.set_value(r.ok() && !durable.ok() ? durable : std::move(r));
        }
      });
    };

    for (;;) {
      std::vector<std::unique_ptr<Impl::Pending>> batch;
      {
        std::unique_lock<std::mutex> lock(impl_->mu);
        impl_->cv.wait(lock, [this] { return impl_->stopping || !impl_->queue.empty(); });
        if (impl_->queue.empty()) break;
        while (!impl_->queue.empty() && batch.size() < static_cast<size_t>(options_.max_batch)) {
          batch.push_back(std::move(impl_->queue.front()));
          impl_->queue.pop_front();
        }
      }
      const int64_t cpu0 = ThisThreadCpuNanos();
      // The deferred work alone first, in a transaction of its own (WriteDeferredWork).
      auto others = std::stable_partition(batch.begin(), batch.end(),
                                          [](const auto& p) { return p->deferred_only; });
      if (others != batch.begin() && others != batch.end()) {
        std::vector<std::unique_ptr<Impl::Pending>> rest(std::make_move_iterator(others),
                                                         std::make_move_iterator(batch.end()));
        batch.erase(others, batch.end());
        run_one(batch, run_one);
        run_one(rest, run_one);
      } else {
        run_one(batch, run_one);
      }
      Metrics::Global().AddStoreWriterCpu(ThisThreadCpuNanos() - cpu0);
    }
  });
  return Status::Ok();
}

Status Store::WriteDeferredWork() {
  return Submit([](Conn&) { return Status::Ok(); }, true);  // the prologue does the work
}

Status Store::Write(WriteFn fn) { return Submit(std::move(fn), false); }

Status Store::Submit(WriteFn fn, bool deferred_only) {
  auto p = std::make_unique<Impl::Pending>();
  p->fn = std::move(fn);
  p->deferred_only = deferred_only;
  auto fut = p->done.get_future();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) {
      return Status(ErrorCode::kShuttingDown, "the server is shutting down; retry on another node");
    }
    impl_->queue.push_back(std::move(p));
  }
  impl_->cv.notify_one();
  return fut.get();
}

Status Store::Read(const ReadFn& fn) {
  if (!on_writer_thread) {
    std::function<void()> barrier;
    {
      std::lock_guard<std::mutex> lock(impl_->deferred_mu);
      barrier = impl_->barrier;
    }
    if (barrier) barrier();
  }
  return ReadNow(fn);
}

Status Store::ReadNow(const ReadFn& fn) {
  std::unique_ptr<Conn> conn;
  {
    std::lock_guard<std::mutex> lock(impl_->pool_mu);
    if (!impl_->idle.empty()) {
      conn = std::move(impl_->idle.back());
      impl_->idle.pop_back();
    }
  }
  if (!conn) {
    auto c = Connect();
    if (!c.ok()) {
      spdlog::error("store: cannot open read connection: {}", c.status().ToString());
      return Status(ErrorCode::kStoreUnavailable, "the store is unavailable; retry later");
    }
    conn = std::move(c).value();
  }
  Status s = conn->ExecScript(BeginReadSql());
  if (s.ok()) {
    try {
      s = fn(*conn);
    } catch (const std::exception& e) {
      s = Internal(std::string("read failed: ") + e.what());
    }
    (void)conn->ExecScript("ROLLBACK");
  }
  if (!conn->broken()) {
    std::lock_guard<std::mutex> lock(impl_->pool_mu);
    if (impl_->idle.size() < static_cast<size_t>(options_.read_pool_size)) {
      impl_->idle.push_back(std::move(conn));
    }
  }
  return s;
}

void Store::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopping = true;
    impl_->stopped = true;
  }
  impl_->cv.notify_all();
  if (impl_->writer.joinable()) impl_->writer.join();
  impl_->wconn.reset();
  std::lock_guard<std::mutex> lock(impl_->pool_mu);
  impl_->idle.clear();
}

}  // namespace siyu::store
