// `siyu bench orders`: N concurrent keep-alive HTTP clients create people and orders against the
// real server, run in-process on each store in turn (SQLite, then PostgreSQL when --pg is given).
// Each run is one Google Benchmark iteration timed manually; afterwards the run checks that the
// store holds exactly the acknowledged orders, to the fen.
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "apps/commands.h"
#include "client/http_client.h"
#include "common/crypto.h"
#include "common/json.h"
#include "common/time.h"
#include "engine/engine.h"

namespace siyu::apps {
namespace {

using Clock = std::chrono::steady_clock;

// Every order's paid_at is now and every person is acquired now, so [0, 2100-01-01) covers them.
constexpr int64_t kFarFutureMs = 4'102'444'800'000;
constexpr int kOrdersPerPerson = 5;
constexpr double kTargetOrdersPerS = 5000;
constexpr double kTargetP99Ms = 20;
constexpr int kTargetClients = 32;

struct Sku {
  const char* code;
  int64_t price_fen;
};
constexpr Sku kSkus[] = {{"CL-LAUNDRY-2KG", 4990},
                         {"CL-TISSUE-24", 5990},
                         {"CL-DISH-1100", 1990},
                         {"CL-BODYWASH-750", 3990},
                         {"CL-TOOTHPASTE-120", 1290}};

struct RunResult {
  std::string store;
  int clients = 0;
  double seconds = 0;
  int64_t orders = 0;  // acknowledged (2xx)
  int64_t orders_fen = 0;
  int64_t people = 0;  // acknowledged (2xx)
  int64_t errors = 0;  // non-2xx answers and transport failures
  std::string first_error;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  // Server-side means over the run, from /metrics: time in the handler of POST /v1/orders, store
  // commit time and commit batch size.
  double server_order_ms = 0, commit_ms = 0, commit_batch = 0;
  std::string mismatch;  // empty: the store holds exactly what was acknowledged
  double orders_per_s() const { return seconds > 0 ? static_cast<double>(orders) / seconds : 0; }
};

// Sums and counts of the series the run reports, read from the Prometheus text.
struct MetricsSnapshot {
  std::map<std::string, double> values;
  double Get(const std::string& series) const {
    auto it = values.find(series);
    return it == values.end() ? 0 : it->second;
  }
};

MetricsSnapshot ReadMetrics(client::HttpClient& c) {
  MetricsSnapshot m;
  auto r = c.Get("/metrics");
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    std::string name = line.substr(0, sp);
    if (name.find("_sum") == std::string::npos && name.find("_count") == std::string::npos) {
      continue;
    }
    m.values[name] = std::atof(line.c_str() + sp + 1);
  }
  return m;
}

double MeanDelta(const MetricsSnapshot& a, const MetricsSnapshot& b, const std::string& sum,
                 const std::string& count) {
  double n = b.Get(count) - a.Get(count);
  return n > 0 ? (b.Get(sum) - a.Get(sum)) / n : 0;
}

// What one client thread did.
struct ClientStats {
  std::vector<float> order_ms;
  int64_t orders = 0, orders_fen = 0, people = 0, errors = 0;
  std::string first_error;
  void Fail(const client::Response& r, std::string_view what) {
    ++errors;
    if (first_error.empty()) {
      first_error = std::string(what) + ": " +
                    (r.status ? std::to_string(r.status) + " " + r.body : "transport: " + r.error);
    }
  }
};

// One client: a person, then orders for them, a new person every kOrdersPerPerson orders, until
// `deadline`. Bodies are formatted by hand to keep the load generator's share of the two cores
// small.
void RunClient(int index, uint16_t port, const std::string& key, const std::string& state,
               std::barrier<>& start, const Clock::time_point& deadline, ClientStats& st) {
  client::HttpClient c("127.0.0.1", port);
  c.SetHeader("Authorization", "Bearer " + key);
  uint64_t rng = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(index + 1);
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  int64_t person_id = 0, person_seq = 0, order_seq = 0;
  int left = 0;
  std::string body;
  body.reserve(512);
  start.arrive_and_wait();
  while (Clock::now() < deadline) {
    if (left == 0) {
      // Alternate the id kinds the API normalises: phone numbers and mini-program openids.
      int64_t n = person_seq++;
      std::string ext = n % 2 == 0 ? fmt::format("phone:13{:03}{:06}", index, n)
                                   : fmt::format("openid:wxbench:o{}x{}", index, n);
      body = fmt::format(R"({{"external_id":"{}","channel_state":"{}"}})", ext, state);
      auto r = c.Post("/v1/people", body);
      if (r.status != 200 && r.status != 201) {
        st.Fail(r, "POST /v1/people");
        continue;
      }
      auto o = ParseJsonObject(r.body);
      const json::value* person = o.ok() ? o->if_contains("person") : nullptr;
      const json::value* id =
          person && person->is_object() ? person->as_object().if_contains("id") : nullptr;
      if (!id || !id->is_int64()) {
        st.Fail(r, "POST /v1/people (no person id)");
        continue;
      }
      person_id = id->as_int64();
      ++st.people;
      left = kOrdersPerPerson;
    }
    int nlines = 1 + static_cast<int>(next() % 3);
    int64_t total = 0;
    std::string lines;
    for (int l = 0; l < nlines; ++l) {
      const Sku& sku = kSkus[(next() >> 8) % std::size(kSkus)];
      int qty = 1 + static_cast<int>((next() >> 16) % 3);
      total += qty * sku.price_fen;
      lines += fmt::format(R"({}{{"sku":"{}","quantity":{},"unit_price_fen":{}}})", l ? "," : "",
                           sku.code, qty, sku.price_fen);
    }
    body = fmt::format(R"({{"order_no":"B{}-{}","person_id":{},"lines":[{}],"total_fen":{}}})",
                       index, order_seq++, person_id, lines, total);
    auto t0 = Clock::now();
    auto r = c.Post("/v1/orders", body);
    auto t1 = Clock::now();
    st.order_ms.push_back(std::chrono::duration<float, std::milli>(t1 - t0).count());
    --left;
    // 200 is a replay of an order this client already sent (the client retries once on a dropped
    // connection): still exactly one acknowledged order.
    if (r.status == 201 || r.status == 200) {
      ++st.orders;
      st.orders_fen += total;
    } else {
      st.Fail(r, "POST /v1/orders");
    }
  }
}

double Percentile(std::vector<float>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

// The store must hold exactly what was acknowledged: orders, their sum, and people.
std::string Verify(client::HttpClient& admin, const RunResult& r) {
  auto res = admin.Get("/v1/analytics/overview?from=0&to=" + std::to_string(kFarFutureMs));
  if (res.status != 200) return "overview answered " + std::to_string(res.status) + ": " + res.body;
  auto o = ParseJsonObject(res.body);
  if (!o.ok()) return "overview is not JSON: " + res.body;
  auto num = [&](const char* k) {
    const json::value* v = o->if_contains(k);
    return v && v->is_int64() ? v->as_int64() : int64_t{-1};
  };
  std::string out;
  auto cmp = [&](const char* what, int64_t acked, int64_t stored) {
    if (acked != stored) {
      out += fmt::format("{}{}: acknowledged {}, store holds {}", out.empty() ? "" : "; ", what,
                         acked, stored);
    }
  };
  cmp("orders", r.orders, num("orders"));
  cmp("paid_fen", r.orders_fen, num("paid_fen"));
  cmp("people", r.people, num("people"));
  return out;
}

// One run against one store: start the server, bootstrap a fresh tenant (which isolates the run
// in a shared PostgreSQL database), load for `seconds`, verify, stop.
StatusOr<RunResult> RunOrders(const std::string& label, const store::Options& so, int clients,
                              int seconds) {
  ServeConfig sc;
  sc.store = so;
  sc.http.port = 0;
  sc.http.access_log = false;
  ASSIGN_OR_RETURN(auto srv, Server::Start(sc));
  auto& tenancy = srv->engine().tenancy();
  std::string tenant_name = fmt::format("bench {} {}", NowMs(), RandomBase62(6));
  ASSIGN_OR_RETURN(domain::Tenant t, tenancy.CreateTenant(tenant_name, std::nullopt));
  ASSIGN_OR_RETURN(domain::ApiKey admin_key,
                   tenancy.CreateKey(t.id, "bench admin", domain::Role::kAdmin));
  ASSIGN_OR_RETURN(domain::ApiKey ingest_key,
                   tenancy.CreateKey(t.id, "bench ingest", domain::Role::kIngest));
  const uint16_t port = srv->port();

  client::HttpClient admin("127.0.0.1", port);
  admin.SetHeader("Authorization", "Bearer " + admin_key.plaintext);
  auto ch = admin.Post("/v1/channels",
                       R"({"name":"门店收银台扫码","source_pool":"offline","touchpoint":"wecom"})");
  if (ch.status != 201) {
    return Status(ErrorCode::kInternal, "POST /v1/channels answered " + std::to_string(ch.status) +
                                            ": " + ch.body + ch.error);
  }
  ASSIGN_OR_RETURN(json::object chj, ParseJsonObject(ch.body));
  std::string state(chj.at("state").as_string());

  MetricsSnapshot before = ReadMetrics(admin);
  std::vector<ClientStats> stats(clients);
  std::barrier<> start(clients + 1);
  Clock::time_point deadline;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back(
        [&, i] { RunClient(i, port, ingest_key.plaintext, state, start, deadline, stats[i]); });
  }
  deadline = Clock::now() + std::chrono::seconds(seconds);
  auto t0 = Clock::now();
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
  auto t1 = Clock::now();
  MetricsSnapshot after = ReadMetrics(admin);

  RunResult r;
  r.store = label;
  r.clients = clients;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  std::vector<float> all;
  for (auto& s : stats) {
    r.orders += s.orders;
    r.orders_fen += s.orders_fen;
    r.people += s.people;
    r.errors += s.errors;
    if (r.first_error.empty()) r.first_error = s.first_error;
    all.insert(all.end(), s.order_ms.begin(), s.order_ms.end());
  }
  r.p50_ms = Percentile(all, 0.50);
  r.p99_ms = Percentile(all, 0.99);
  r.max_ms = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  r.server_order_ms =
      1000 * MeanDelta(before, after,
                       R"(siyu_http_request_duration_seconds_sum{route="/v1/orders"})",
                       R"(siyu_http_request_duration_seconds_count{route="/v1/orders"})");
  r.commit_ms = 1000 * MeanDelta(before, after, "siyu_store_commit_duration_seconds_sum",
                                 "siyu_store_commit_duration_seconds_count");
  r.commit_batch = MeanDelta(before, after, "siyu_store_commit_batch_size_sum",
                             "siyu_store_commit_batch_size_count");
  r.mismatch = Verify(admin, r);
  srv->Stop();
  return r;
}

struct StoreRun {
  std::string label;
  store::Options options;
};

}  // namespace

int Bench(const BenchConfig& cfg) {
  if (cfg.workload != "orders") {
    std::cerr << "siyu bench: unknown workload '" << cfg.workload << "' (known: orders)\n";
    return 2;
  }
  if (cfg.clients < 1 || cfg.seconds < 1) {
    std::cerr << "siyu bench: --clients and --seconds must be at least 1\n";
    return 2;
  }
  std::string sqlite_dir = cfg.data_dir;
  bool temp_dir = sqlite_dir.empty();
  if (temp_dir) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "siyu-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      std::cerr << "siyu bench: cannot create a temporary directory: " << std::strerror(errno)
                << "\n";
      return 1;
    }
    sqlite_dir = tmpl;
  }
  std::vector<StoreRun> runs;
  runs.push_back({"sqlite", store::Options{sqlite_dir}});
  if (!cfg.pg_url.empty()) runs.push_back({"postgres", store::Options{cfg.pg_url}});

  // The console's absence and other start-up notes are not part of the results.
  spdlog::set_level(spdlog::level::warn);
  std::vector<RunResult> results;
  bool failed = false;
  for (const StoreRun& run : runs) {
    std::string name = fmt::format("orders/{}/clients:{}", run.label, cfg.clients);
    benchmark::RegisterBenchmark(name.c_str(),
                                 [&, run](benchmark::State& state) {
                                   for (auto _ : state) {
                                     auto r = RunOrders(run.label, run.options, cfg.clients,
                                                        cfg.seconds);
                                     if (!r.ok()) {
                                       failed = true;
                                       state.SkipWithError(r.status().ToString().c_str());
                                       break;
                                     }
                                     state.SetIterationTime(r->seconds);
                                     state.counters["orders_per_s"] = r->orders_per_s();
                                     state.counters["p50_ms"] = r->p50_ms;
                                     state.counters["p99_ms"] = r->p99_ms;
                                     state.counters["errors"] = static_cast<double>(r->errors);
                                     results.push_back(std::move(r).value());
                                   }
                                 })
        ->Iterations(1)
        ->UseManualTime()
        ->Unit(benchmark::kSecond);
  }
  // No command-line flags reach Google Benchmark: siyu's own options define the runs.
  int bargc = 1;
  char prog[] = "siyu-bench";
  char* bargv[] = {prog, nullptr};
  benchmark::Initialize(&bargc, bargv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (temp_dir) std::filesystem::remove_all(sqlite_dir);

  std::cout << "\n"
            << fmt::format("{:<10} {:>7} {:>9} {:>10} {:>7} {:>7} {:>7} {:>6} {:>10} {:>9} {:>7}\n",
                           "store", "clients", "orders", "orders/s", "p50 ms", "p99 ms", "max ms",
                           "errors", "server ms", "commit ms", "batch");
  for (const RunResult& r : results) {
    std::cout << fmt::format(
        "{:<10} {:>7} {:>9} {:>10.0f} {:>7.2f} {:>7.2f} {:>7.1f} {:>6} {:>10.2f} {:>9.2f} "
        "{:>7.1f}\n",
        r.store, r.clients, r.orders, r.orders_per_s(), r.p50_ms, r.p99_ms, r.max_ms, r.errors,
        r.server_order_ms, r.commit_ms, r.commit_batch);
  }
  std::cout << "(server ms: mean time in the POST /v1/orders handler; commit ms and batch: mean "
               "store group commit)\n";
  const RunResult* sqlite = nullptr;
  const RunResult* pg = nullptr;
  for (const RunResult& r : results) (r.store == "sqlite" ? sqlite : pg) = &r;
  if (sqlite && pg && pg->orders_per_s() > 0) {
    std::cout << fmt::format("SQLite/PostgreSQL throughput ratio: {:.2f}\n",
                             sqlite->orders_per_s() / pg->orders_per_s());
  }
  if (sqlite && sqlite->clients == kTargetClients) {
    bool met = sqlite->orders_per_s() >= kTargetOrdersPerS && sqlite->p99_ms < kTargetP99Ms;
    std::cout << fmt::format(
        "target (SQLite, {} clients: >= {:.0f} orders/s, p99 < {:.0f} ms): {}\n", kTargetClients,
        kTargetOrdersPerS, kTargetP99Ms, met ? "met" : "NOT met");
  }
  for (const RunResult& r : results) {
    if (!r.first_error.empty()) {
      std::cout << fmt::format("{}: first error: {}\n", r.store, r.first_error.substr(0, 300));
    }
    if (!r.mismatch.empty()) {
      std::cout << fmt::format("MISMATCH ({}): {}\n", r.store, r.mismatch);
      failed = true;
    } else {
      std::cout << fmt::format(
          "{}: verified: the store holds exactly the {} acknowledged orders ({} fen) and {} "
          "people\n",
          r.store, r.orders, r.orders_fen, r.people);
    }
  }
  return failed ? 1 : 0;
}

}  // namespace siyu::apps
