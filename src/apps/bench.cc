// `siyu bench orders`: N concurrent keep-alive HTTP clients create people and orders against the
// real server, run in-process on each store in turn (SQLite, then PostgreSQL when --pg is given).
// Each run is one Google Benchmark iteration timed manually; afterwards the run checks that the
// store holds exactly the acknowledged orders, to the fen.
//
// `siyu bench ingest`: batches of events over HTTP into siyu on SQLite, then the same rows into
// PostgreSQL by COPY and by multi-row INSERT (see the section below).
//
// `siyu bench audience`: the audience engine against PostgreSQL and SQLite answering the same
// segment expressions over the same people and tag memberships (see its section below).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
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
#include "domain/audience/audience_bench.h"
#include "domain/identity/identity_bench.h"
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
    if (name.find("_sum") == std::string::npos && name.find("_count") == std::string::npos &&
        name.find("_total") == std::string::npos) {
      continue;
    }
    m.values[name] = std::atof(line.c_str() + sp + 1);
  }
  return m;
}

// CPU time of this process so far (all threads, user and system).
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
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

// ---- `siyu bench ingest` -----------------------------------------------------------------------
//
// N clients post batches of 100 realistic events (mixed standard and custom types, ~20 % of them
// from people never seen before, the rest from people the client already introduced) to the real
// server on SQLite, with the tenant's audience engine live; every batch is durable before its
// answer. Afterwards the very rows siyu
// stored are inserted into PostgreSQL by the same number of connections, 100 rows per durable
// transaction, with COPY and with multi-row INSERT; the acknowledged events, siyu's store and
// PostgreSQL must then hold the same set of event ids.

constexpr int kEventsPerBatch = 100;
constexpr double kTargetEventsPerS = 200'000;
constexpr double kTargetIngestP99Ms = 50;
// The PostgreSQL peer's table: the shape of siyu's `events` (migration 3), under its own name.
constexpr const char* kPeerTable = "bench_ingest_events";

// An order-independent digest of a set of event ids: count and the sum of their FNV-1a hashes.
struct IdDigest {
  int64_t count = 0;
  uint64_t sum = 0;
  void Add(std::string_view id) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
    sum += h;
    ++count;
  }
  void Merge(const IdDigest& o) {
    count += o.count;
    sum += o.sum;
  }
  bool operator==(const IdDigest& o) const { return count == o.count && sum == o.sum; }
  std::string ToString() const { return fmt::format("{} ids, digest {:016x}", count, sum); }
};

struct EventType {
  const char* name;
  int weight;  // relative frequency in the mix
};
// Roughly what a brand's mini program, official account and WeCom produce in a day.
constexpr EventType kMix[] = {
    {"page_view", 300},    {"product_view", 250},     {"add_to_cart", 80},     {"message_read", 80},
    {"share", 50},         {"coupon_received", 40},   {"order_paid", 30},      {"live_watch", 30},
    {"contact_added", 20}, {"group_joined", 20},      {"qr_scanned", 20},      {"follow", 20},
    {"coupon_used", 15},   {"custom:lucky_draw", 15}, {"invite_accepted", 10}, {"member_bound", 10},
    {"order_refunded", 5}, {"contact_removed", 5},    {"group_left", 5},       {"unfollow", 5},
};

const char* TouchpointOf(std::string_view type) {
  if (type == "message_read" || type == "follow" || type == "unfollow") return "official_account";
  if (type == "contact_added" || type == "contact_removed") return "wecom";
  if (type == "group_joined" || type == "group_left") return "group";
  if (type == "qr_scanned") return "offline";
  return "mini_program";
}

// A WeChat-like id for person `k` of client `c`: 'o' and 27 characters of [A-Za-z0-9_-] that look
// random (as real openids and unionids do, which matters: they are B-tree keys) but are the same
// every time the person comes back.
void AppendWechatId(std::string& out, uint64_t salt, int c, int64_t k) {
  constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint64_t x = salt ^ (static_cast<uint64_t>(c) << 40) ^ static_cast<uint64_t>(k);
  out += 'o';
  for (int i = 0; i < 27; ++i) {
    if (i % 10 == 0) {  // splitmix64: ten 6-bit characters per step
      x += 0x9E3779B97F4A7C15ull;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      x = z ^ (z >> 31);
    }
    out += kChars[(x >> (6 * (i % 10))) & 63];
  }
}

// Makes one client's events. Each person has a mini-program openid, an official-account openid and
// a unionid; events carry the ids their touchpoint knows (WeCom and group events only the unionid),
// so a person's first official-account event attaches a new id to them.
class EventMaker {
 public:
  EventMaker(int client, std::vector<std::string> states)
      : client_(client), states_(std::move(states)), rng_(0x9E3779B97F4A7C15ull * (client + 7)) {
    for (const auto& t : kMix) total_weight_ += t.weight;
  }

  // Appends a batch body to `out` (cleared) and the event ids to `ids`.
  void Batch(std::string& out, std::vector<std::string>& ids, int64_t now) {
    out.clear();
    ids.clear();
    out += R"({"events":[)";
    for (int i = 0; i < kEventsPerBatch; ++i) {
      if (i) out += ',';
      ids.push_back(Event(out, now));
    }
    out += "]}";
  }

 private:
  uint64_t Next() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }
  uint64_t Below(uint64_t n) { return (Next() >> 11) % n; }

  std::string Event(std::string& out, int64_t now) {
    int64_t pick = static_cast<int64_t>(Below(static_cast<uint64_t>(total_weight_)));
    const EventType* type = &kMix[0];
    for (const auto& t : kMix) {
      if (pick < t.weight) {
        type = &t;
        break;
      }
      pick -= t.weight;
    }
    std::string_view name = type->name;
    const char* tp = TouchpointOf(name);
    // ~20 % new people; otherwise someone from a recent session or anyone seen before.
    bool fresh = people_ == 0 || Below(100) < 20;
    int64_t k;
    if (fresh) {
      k = people_++;
    } else if (Below(2) == 0) {
      k = people_ - 1 - static_cast<int64_t>(Below(std::min<uint64_t>(64, people_)));
    } else {
      k = static_cast<int64_t>(Below(static_cast<uint64_t>(people_)));
    }
    // Mostly the last ten minutes, some late by up to three days.
    int64_t ts = now - static_cast<int64_t>(Below(600'000));
    if (Below(100) < 3) ts = now - static_cast<int64_t>(Below(3 * 86'400'000ull));
    std::string event_id =
        fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", Next() & 0xffffffff, Next() & 0xffff,
                    Next() & 0xfff, (Next() & 0x3fff) | 0x8000, Next() & 0xffffffffffffull);
    auto out_it = std::back_inserter(out);
    fmt::format_to(out_it, R"({{"event_id":"{}","type":"{}","ts":{},"touchpoint":"{}","ids":[)",
                   event_id, name, ts, tp);
    std::string_view sp(tp);
    if (sp == "mini_program") {
      out += "\"openid:wxmp:";
      AppendWechatId(out, 1, client_, k);
      out += "\",";
    } else if (sp == "official_account") {
      out += "\"openid:wxoa:";
      AppendWechatId(out, 2, client_, k);
      out += "\",";
    }
    out += "\"unionid:";
    AppendWechatId(out, 3, client_, k);
    out += '"';
    if (name == "member_bound") {
      fmt::format_to(out_it, R"(,"phone:+86139{:08}")", client_ * 1'000'000 + k % 1'000'000);
    }
    out += ']';
    bool channel_moment = name == "qr_scanned" || name == "follow" || name == "contact_added";
    if (!states_.empty() && (channel_moment || (fresh && Below(2) == 0))) {
      fmt::format_to(out_it, R"(,"channel_state":"{}")", states_[Below(states_.size())]);
    }
    out += R"(,"properties":)";
    uint64_t r = Next();
    int64_t sku = static_cast<int64_t>(r % 40);
    if (name == "page_view") {
      fmt::format_to(out_it, R"({{"path":"/pages/goods/detail?id={}","title":"商品详情"}})", sku);
    } else if (name == "product_view") {
      fmt::format_to(out_it, R"({{"sku":"SKU-{:04}","price_fen":{}}})", sku, 990 + sku * 100);
    } else if (name == "add_to_cart") {
      fmt::format_to(out_it, R"({{"sku":"SKU-{:04}","quantity":{},"price_fen":{}}})", sku,
                     1 + (r >> 8) % 3, 990 + sku * 100);
    } else if (name == "order_paid" || name == "order_refunded") {
      fmt::format_to(out_it, R"({{"order_no":"SO{}{:08}","amount_fen":{}}})", client_,
                     r % 100'000'000, 1990 + (r >> 20) % 50'000);
    } else if (name == "share") {
      fmt::format_to(out_it, R"({{"content":"/pages/goods/detail?id={}","target":"friend"}})", sku);
    } else if (name == "invite_accepted") {
      out += R"({"inviter_id":"unionid:)";
      AppendWechatId(out, 3, client_, static_cast<int64_t>(Below(static_cast<uint64_t>(people_))));
      out += "\"}";
    } else if (name == "contact_added" || name == "contact_removed") {
      fmt::format_to(out_it, R"({{"user_id":"guide_{:03}"}})", r % 200);
    } else if (name == "group_joined" || name == "group_left") {
      fmt::format_to(out_it, R"({{"chat_id":"wrOgQhDgAAAc{:06}"}})", r % 5000);
    } else if (name == "message_read") {
      fmt::format_to(out_it, R"({{"message_id":"msg{:010}"}})", r % 10'000'000'000ull);
    } else if (name == "qr_scanned") {
      fmt::format_to(out_it, R"({{"scene":"store-{:03}"}})", r % 300);
    } else if (name == "follow") {
      out += R"({"app_id":"wxoa","scene":"qrcode"})";
    } else if (name == "unfollow") {
      out += R"({"app_id":"wxoa"})";
    } else if (name == "member_bound") {
      fmt::format_to(out_it, R"({{"member_no":"M{}{:07}","level":"silver"}})", client_, k);
    } else if (name == "coupon_received" || name == "coupon_used") {
      fmt::format_to(out_it, R"({{"coupon_id":"CPN-2611-{:02}"}})", r % 12);
    } else if (name == "live_watch") {
      fmt::format_to(out_it, R"({{"live_id":"live-1123","seconds":{}}})", r % 3600);
    } else {
      fmt::format_to(out_it, R"({{"prize":"{}","round":{}}})", r % 2 ? "cup" : "coupon", r % 5);
    }
    out += '}';
    return event_id;
  }

  int client_;
  std::vector<std::string> states_;
  uint64_t rng_;
  int total_weight_ = 0;
  int64_t people_ = 0;
};

struct IngestClientStats {
  std::vector<float> batch_ms;
  int64_t accepted = 0, duplicates = 0, rejected = 0, errors = 0;
  IdDigest acked;  // every event answered accepted or duplicate
  std::string first_error;
};

// Reads `"name":<int>` from a flat answer; the summary counts come last in the ingest answer.
int64_t SummaryCount(std::string_view body, std::string_view name) {
  std::string key = "\"" + std::string(name) + "\":";
  size_t pos = body.rfind(key);
  if (pos == std::string_view::npos) return -1;
  int64_t v = -1;
  const char* p = body.data() + pos + key.size();
  std::from_chars(p, body.data() + body.size(), v);
  return v;
}

// Batches made before the clock starts, per client: as many as `seconds` at this rate (over all
// clients) need, at most kMaxPrebuiltEvents in all (~350 bytes each, ~5.6 GB at most); a client
// that runs out makes the rest as it goes.
constexpr int64_t kPrebuiltEventsPerSecond = 250'000;
constexpr int64_t kMaxPrebuiltEvents = 16'000'000;

// A batch ready to send: its body and the digest of its event ids (the ids themselves are read
// back from the body in the rare case that the server refuses some of them).
struct ReadyBatch {
  std::string body;
  IdDigest ids;
};

void MakeReadyBatch(EventMaker& maker, std::string& scratch, std::vector<std::string>& ids,
                    ReadyBatch& out) {
  maker.Batch(scratch, ids, NowMs());
  out.body.assign(scratch);  // exactly its size: the scratch string's reserve is not kept
  out.ids = IdDigest();
  for (const auto& id : ids) out.ids.Add(id);
}

void RunIngestClient(int index, uint16_t port, const std::string& key,
                     const std::vector<std::string>& states, int prebuilt, std::barrier<>& ready,
                     std::barrier<>& start, const Clock::time_point& deadline,
                     IngestClientStats& st) {
  client::HttpClient c("127.0.0.1", port);
  c.SetHeader("Authorization", "Bearer " + key);
  EventMaker maker(index, states);
  // The client shares the server's two cores: its batches are made beforehand, so that what it
  // costs during the run is mostly sending and reading. They are the batches it would make as it
  // goes (every event distinct, people coming back as before); their ts are a few seconds older.
  std::string scratch;
  scratch.reserve(64 * 1024);
  std::vector<std::string> ids;
  std::vector<ReadyBatch> batches(prebuilt);
  for (ReadyBatch& b : batches) MakeReadyBatch(maker, scratch, ids, b);
  ReadyBatch batch;
  ready.arrive_and_wait();
  start.arrive_and_wait();
  for (size_t next = 0; Clock::now() < deadline; ++next) {
    if (next < batches.size()) {
      batch = std::move(batches[next]);
      batches[next] = ReadyBatch();  // sent batches give their memory back
    } else {
      MakeReadyBatch(maker, scratch, ids, batch);
    }
    auto t0 = Clock::now();
    auto r = c.Post("/v1/events", batch.body);
    auto t1 = Clock::now();
    st.batch_ms.push_back(std::chrono::duration<float, std::milli>(t1 - t0).count());
    int64_t acc = r.status == 200 ? SummaryCount(r.body, "accepted") : -1;
    int64_t dup = r.status == 200 ? SummaryCount(r.body, "duplicates") : -1;
    int64_t rej = r.status == 200 ? SummaryCount(r.body, "rejected") : -1;
    if (acc < 0 || dup < 0 || rej < 0) {
      ++st.errors;
      if (st.first_error.empty()) {
        st.first_error =
            "POST /v1/events: " + (r.status ? std::to_string(r.status) + " " + r.body.substr(0, 300)
                                            : "transport: " + r.error);
      }
      continue;
    }
    st.accepted += acc;
    // A duplicate can only be this client's own batch, resent by the HTTP client after a dropped
    // connection: the first send was stored.
    st.duplicates += dup;
    st.rejected += rej;
    if (rej == 0) {
      st.acked.Merge(batch.ids);
      continue;
    }
    // Generated events are all valid; a refusal is a defect worth showing.
    auto sent = ParseJsonObject(batch.body);
    auto o = ParseJsonObject(r.body);
    if (o.ok() && sent.ok()) {
      const auto& events = sent->at("events").as_array();
      const auto& results = o->at("results").as_array();
      for (size_t i = 0; i < results.size() && i < events.size(); ++i) {
        const auto& item = results[i].as_object();
        if (item.at("status") != "rejected") {
          st.acked.Add(std::string_view(events[i].as_object().at("event_id").as_string()));
        } else if (st.first_error.empty()) {
          st.first_error = "refused event: " + ToJson(item);
        }
      }
    }
  }
}

struct IngestRun {
  std::string label;
  int clients = 0;
  double seconds = 0;
  int64_t events = 0;  // acknowledged events (accepted or duplicate)
  int64_t rejected = 0, errors = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double server_ms = 0, commit_ms = 0, commit_batch = 0;
  double cpu_us = 0, writer_cpu_us = 0;  // siyu: CPU per event (the process's; the store writer's)
  double store_lag_s = 0;  // siyu: after the last acknowledgement, until the store had it all
  IdDigest acked;          // siyu: the events acknowledged to the clients
  std::string first_error;
  std::string check;  // empty: consistent
  double events_per_s() const { return seconds > 0 ? static_cast<double>(events) / seconds : 0; }
  // siyu: events over the run and the store's lag after it.
  double through_per_s() const {
    return seconds + store_lag_s > 0 ? static_cast<double>(events) / (seconds + store_lag_s) : 0;
  }
};

// The rows siyu stored, in insertion order, as COPY text and as INSERT parameters, in chunks of
// kEventsPerBatch rows.
struct PeerData {
  std::vector<std::string> copy_chunks;
  std::vector<std::vector<std::optional<std::string>>> insert_chunks;  // 10 values per row
  IdDigest ids;
  size_t rows = 0;
};

// COPY text format: backslash, tab, newline and carriage return are escaped; \N is NULL.
void AppendCopyField(std::string& out, const std::optional<std::string>& v) {
  if (!v) {
    out += "\\N";
    return;
  }
  for (char ch : *v) {
    switch (ch) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += ch;
    }
  }
}

StatusOr<IngestRun> RunIngest(const store::Options& so, int clients, int seconds, PeerData* peer) {
  ServeConfig sc;
  sc.store = so;
  sc.http.port = 0;
  sc.http.access_log = false;
  ASSIGN_OR_RETURN(auto srv, Server::Start(sc));
  auto& tenancy = srv->engine().tenancy();
  ASSIGN_OR_RETURN(
      domain::Tenant t,
      tenancy.CreateTenant(fmt::format("bench {} {}", NowMs(), RandomBase62(6)), std::nullopt));
  ASSIGN_OR_RETURN(domain::ApiKey admin_key,
                   tenancy.CreateKey(t.id, "bench admin", domain::Role::kAdmin));
  ASSIGN_OR_RETURN(domain::ApiKey ingest_key,
                   tenancy.CreateKey(t.id, "bench ingest", domain::Role::kIngest));
  // As for every tenant once siyu has restarted: its audience engine is live before the first
  // event, so each event also updates its people's attributes, tags and segments (a tenant created
  // since start-up would otherwise have its engine built on first use, up to 30 s in).
  if (!srv->engine().audience().EngineOf(t.id)) {
    return Status(ErrorCode::kInternal, "the bench tenant's audience engine could not be built");
  }
  const uint16_t port = srv->port();
  client::HttpClient admin("127.0.0.1", port);
  admin.SetHeader("Authorization", "Bearer " + admin_key.plaintext);
  std::vector<std::string> states;
  for (const char* body :
       {R"({"name":"门店海报","source_pool":"offline","touchpoint":"wecom"})",
        R"({"name":"公众号菜单","source_pool":"wechat_public","touchpoint":"official_account"})",
        R"({"name":"小程序分享","source_pool":"wechat_public","touchpoint":"mini_program"})"}) {
    auto ch = admin.Post("/v1/channels", body);
    if (ch.status != 201) {
      return Status(
          ErrorCode::kInternal,
          "POST /v1/channels answered " + std::to_string(ch.status) + ": " + ch.body + ch.error);
    }
    ASSIGN_OR_RETURN(json::object chj, ParseJsonObject(ch.body));
    states.emplace_back(chj.at("state").as_string());
  }

  std::vector<IngestClientStats> stats(clients);
  std::barrier<> ready(clients + 1), start(clients + 1);
  Clock::time_point deadline;
  std::vector<std::thread> threads;
  const int prebuilt = static_cast<int>(
      std::min(kPrebuiltEventsPerSecond * seconds, kMaxPrebuiltEvents) / clients / kEventsPerBatch);
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      RunIngestClient(i, port, ingest_key.plaintext, states, prebuilt, ready, start, deadline,
                      stats[i]);
    });
  }
  ready.arrive_and_wait();  // every client has made its batches
  MetricsSnapshot before = ReadMetrics(admin);
  const double cpu0 = ProcessCpuSeconds();
  deadline = Clock::now() + std::chrono::seconds(seconds);
  auto t0 = Clock::now();
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
  auto t1 = Clock::now();
  const double cpu1 = ProcessCpuSeconds();
  MetricsSnapshot after = ReadMetrics(admin);
  // Acknowledged events are durable in the event log; the applier may still owe the store their
  // people, ids and rows. A read waits for that work: the time it takes is the store's lag.
  RETURN_IF_ERROR(srv->engine().store().Read([](store::Conn&) { return Status::Ok(); }));
  const double lag = std::chrono::duration<double>(Clock::now() - t1).count();
  MetricsSnapshot applied = ReadMetrics(admin);

  IngestRun r;
  r.label = "siyu (SQLite)";
  r.clients = clients;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  IdDigest acked;
  std::vector<float> all;
  for (auto& s : stats) {
    r.events += s.accepted + s.duplicates;
    r.rejected += s.rejected;
    r.errors += s.errors;
    acked.Merge(s.acked);
    if (r.first_error.empty()) r.first_error = s.first_error;
    all.insert(all.end(), s.batch_ms.begin(), s.batch_ms.end());
  }
  r.acked = acked;
  r.p50_ms = Percentile(all, 0.50);
  r.p99_ms = Percentile(all, 0.99);
  r.max_ms = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  r.server_ms = 1000 * MeanDelta(before, after,
                                 R"(siyu_http_request_duration_seconds_sum{route="/v1/events"})",
                                 R"(siyu_http_request_duration_seconds_count{route="/v1/events"})");
  r.commit_ms = 1000 * MeanDelta(before, after, "siyu_store_commit_duration_seconds_sum",
                                 "siyu_store_commit_duration_seconds_count");
  r.commit_batch = MeanDelta(before, after, "siyu_store_commit_batch_size_sum",
                             "siyu_store_commit_batch_size_count");
  r.store_lag_s = lag;
  if (r.events > 0) {
    const double events = static_cast<double>(r.events);
    r.cpu_us = 1e6 * (cpu1 - cpu0) / events;
    r.writer_cpu_us = 1e6 *
                      (applied.Get("siyu_store_writer_cpu_seconds_total") -
                       before.Get("siyu_store_writer_cpu_seconds_total")) /
                      events;
  }

  // What siyu stored (the event log's records and the table's rows), read back.
  PeerData data;
  std::string copy;
  std::vector<std::optional<std::string>> params;
  RETURN_IF_ERROR(
      srv->engine().events().ForEachStored(t.id, [&](const domain::StoredEvent& e) -> Status {
        // siyu's own change events (none are expected: the bench makes no orders or tags).
        if (domain::IsSystemEventType(e.type)) return Status::Ok();
        std::vector<std::optional<std::string>> v = {
            std::to_string(t.id),
            e.event_id,
            std::to_string(e.person_id),
            e.type,
            std::to_string(e.ts),
            e.touchpoint,
            e.channel_id ? std::optional<std::string>(std::to_string(*e.channel_id)) : std::nullopt,
            e.ids_json,
            e.properties,
            std::to_string(e.received_at)};
        data.ids.Add(e.event_id);
        for (size_t i = 0; i < v.size(); ++i) {
          if (i) copy += '\t';
          AppendCopyField(copy, v[i]);
        }
        copy += '\n';
        params.insert(params.end(), v.begin(), v.end());
        if (++data.rows % kEventsPerBatch == 0) {
          data.copy_chunks.push_back(std::move(copy));
          data.insert_chunks.push_back(std::move(params));
          copy.clear();
          params.clear();
        }
        return Status::Ok();
      }));
  if (!copy.empty()) {
    data.copy_chunks.push_back(std::move(copy));
    data.insert_chunks.push_back(std::move(params));
  }
  if (!(data.ids == acked)) {
    r.check = "acknowledged " + acked.ToString() + " but siyu's store holds " + data.ids.ToString();
  }
  srv->Stop();
  if (peer) *peer = std::move(data);
  return r;
}

// ---- the PostgreSQL peer -----------------------------------------------------------------------

class Pg {
 public:
  explicit Pg(const std::string& url) : c_(PQconnectdb(url.c_str())) {}
  ~Pg() { PQfinish(c_); }
  Pg(const Pg&) = delete;
  Pg& operator=(const Pg&) = delete;

  Status Ok() const {
    if (PQstatus(c_) == CONNECTION_OK) return Status::Ok();
    return Status(ErrorCode::kStoreUnavailable,
                  std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(c_));
  }
  Status Exec(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    return Done(r, sql);
  }
  Status Copy(const std::string& table, const std::string& data) {
    PGresult* r = PQexec(c_, ("COPY " + table + " FROM STDIN").c_str());
    if (PQresultStatus(r) != PGRES_COPY_IN) return Done(r, "COPY");
    PQclear(r);
    if (PQputCopyData(c_, data.data(), static_cast<int>(data.size())) != 1 ||
        PQputCopyEnd(c_, nullptr) != 1) {
      return Status(ErrorCode::kStoreUnavailable, std::string("COPY: ") + PQerrorMessage(c_));
    }
    Status s;
    while (PGresult* res = PQgetResult(c_)) {
      Status one = Done(res, "COPY");
      if (s.ok()) s = one;
    }
    return s;
  }
  Status ExecParams(const std::string& sql, const std::vector<std::optional<std::string>>& v) {
    std::vector<const char*> values;
    values.reserve(v.size());
    for (const auto& x : v) values.push_back(x ? x->c_str() : nullptr);
    PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(v.size()), nullptr, values.data(),
                               nullptr, nullptr, 0);
    return Done(r, "INSERT");
  }
  StatusOr<IdDigest> Digest(const std::string& table) {
    PGresult* r = PQexec(c_, ("SELECT event_id FROM " + table).c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) return Done(r, "SELECT");
    IdDigest d;
    for (int i = 0; i < PQntuples(r); ++i) d.Add(PQgetvalue(r, i, 0));
    PQclear(r);
    return d;
  }

 private:
  Status Done(PGresult* r, std::string_view what) {
    ExecStatusType t = PQresultStatus(r);
    Status s;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
      s = Status(ErrorCode::kStoreUnavailable,
                 std::string(what.substr(0, 60)) + ": " + PQerrorMessage(c_));
    }
    PQclear(r);
    return s;
  }
  PGconn* c_;
};

// Inserts the chunks with `conns` connections, each chunk one durable transaction (PostgreSQL's
// default synchronous_commit), by COPY or by one multi-row INSERT.
StatusOr<IngestRun> RunPeer(const std::string& url, bool copy, int conns, const PeerData& data,
                            const IdDigest& want) {
  {
    Pg setup(url);
    RETURN_IF_ERROR(setup.Ok());
    RETURN_IF_ERROR(setup.Exec("SET client_min_messages = warning"));
    RETURN_IF_ERROR(setup.Exec(std::string("DROP TABLE IF EXISTS ") + kPeerTable));
    RETURN_IF_ERROR(setup.Exec(std::string("CREATE TABLE ") + kPeerTable + R"( (
  tenant_id BIGINT NOT NULL, event_id TEXT NOT NULL, person_id BIGINT NOT NULL,
  type TEXT NOT NULL, ts BIGINT NOT NULL, touchpoint TEXT NOT NULL, channel_id BIGINT,
  ids TEXT NOT NULL, properties TEXT NOT NULL, received_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, event_id)))"));
    RETURN_IF_ERROR(setup.Exec(std::string("CREATE INDEX ON ") + kPeerTable +
                               " (tenant_id, person_id, ts, event_id)"));
  }
  auto make_insert = [](size_t rows) {
    std::string s = std::string("INSERT INTO ") + kPeerTable +
                    " (tenant_id, event_id, person_id, type, ts, touchpoint, channel_id, ids, "
                    "properties, received_at) VALUES ";
    for (size_t i = 0; i < rows; ++i) {
      s += i ? ", (" : "(";
      for (size_t j = 0; j < 10; ++j) s += fmt::format("{}${}", j ? ", " : "", i * 10 + j + 1);
      s += ")";
    }
    return s;
  };
  std::atomic<size_t> next{0};
  std::vector<std::vector<float>> lat(conns);
  std::vector<Status> errors(conns);
  std::barrier<> start(conns + 1);
  std::vector<std::thread> threads;
  for (int i = 0; i < conns; ++i) {
    threads.emplace_back([&, i] {
      Pg pg(url);
      errors[i] = pg.Ok();
      start.arrive_and_wait();
      if (!errors[i].ok()) return;
      std::string sql_full = make_insert(kEventsPerBatch), sql_last;
      for (size_t k; (k = next++) < data.copy_chunks.size();) {
        auto t0 = Clock::now();
        Status s;
        if (copy) {
          s = pg.Exec("BEGIN");
          if (s.ok()) s = pg.Copy(kPeerTable, data.copy_chunks[k]);
          if (s.ok()) {
            s = pg.Exec("COMMIT");
          } else {
            (void)pg.Exec("ROLLBACK");
          }
        } else {
          const auto& p = data.insert_chunks[k];
          size_t rows = p.size() / 10;
          if (rows != static_cast<size_t>(kEventsPerBatch) && sql_last.empty()) {
            sql_last = make_insert(rows);
          }
          s = pg.ExecParams(rows == static_cast<size_t>(kEventsPerBatch) ? sql_full : sql_last, p);
        }
        lat[i].push_back(std::chrono::duration<float, std::milli>(Clock::now() - t0).count());
        if (!s.ok()) {
          errors[i] = s;
          return;
        }
      }
    });
  }
  auto t0 = Clock::now();
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
  auto t1 = Clock::now();
  for (const Status& s : errors) RETURN_IF_ERROR(s);

  IngestRun r;
  r.label = copy ? "PostgreSQL COPY" : "PostgreSQL INSERT";
  r.clients = conns;
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  r.events = static_cast<int64_t>(data.rows);
  std::vector<float> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  r.p50_ms = Percentile(all, 0.50);
  r.p99_ms = Percentile(all, 0.99);
  r.max_ms = all.empty() ? 0 : *std::max_element(all.begin(), all.end());
  Pg check(url);
  RETURN_IF_ERROR(check.Ok());
  ASSIGN_OR_RETURN(IdDigest got, check.Digest(kPeerTable));
  if (!(got == want)) {
    r.check = "acknowledged " + want.ToString() + " but PostgreSQL holds " + got.ToString();
  }
  return r;
}

int BenchIngest(const BenchConfig& cfg, const std::string& sqlite_dir) {
  std::vector<IngestRun> results;
  PeerData data;
  IdDigest acked;
  bool failed = false;
  auto counters = [](benchmark::State& state, const IngestRun& r) {
    state.SetIterationTime(r.seconds);
    state.counters["events_per_s"] = r.events_per_s();
    state.counters["p50_ms"] = r.p50_ms;
    state.counters["p99_ms"] = r.p99_ms;
  };
  benchmark::RegisterBenchmark(fmt::format("ingest/siyu-sqlite/clients:{}", cfg.clients).c_str(),
                               [&](benchmark::State& state) {
                                 for (auto _ : state) {
                                   auto r = RunIngest(store::Options{sqlite_dir}, cfg.clients,
                                                      cfg.seconds, &data);
                                   if (!r.ok()) {
                                     failed = true;
                                     state.SkipWithError(r.status().ToString().c_str());
                                     break;
                                   }
                                   counters(state, *r);
                                   state.counters["errors"] = static_cast<double>(r->errors);
                                   acked = r->acked;
                                   results.push_back(std::move(r).value());
                                 }
                               })
      ->Iterations(1)
      ->UseManualTime()
      ->Unit(benchmark::kSecond);
  if (!cfg.pg_url.empty()) {
    for (bool copy : {true, false}) {
      benchmark::RegisterBenchmark(
          fmt::format("ingest/postgres-{}/conns:{}", copy ? "copy" : "insert", cfg.clients).c_str(),
          [&, copy](benchmark::State& state) {
            for (auto _ : state) {
              if (data.rows == 0) {
                state.SkipWithError("the siyu run stored nothing to replay");
                break;
              }
              auto r = RunPeer(cfg.pg_url, copy, cfg.clients, data, acked);
              if (!r.ok()) {
                failed = true;
                state.SkipWithError(r.status().ToString().c_str());
                break;
              }
              counters(state, *r);
              results.push_back(std::move(r).value());
            }
          })
          ->Iterations(1)
          ->UseManualTime()
          ->Unit(benchmark::kSecond);
    }
  }
  int bargc = 1;
  char prog[] = "siyu-bench";
  char* bargv[] = {prog, nullptr};
  benchmark::Initialize(&bargc, bargv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  std::cout << "\n"
            << fmt::format(
                   "{:<18} {:>7} {:>10} {:>10} {:>7} {:>7} {:>7} {:>6} {:>10} {:>9} {:>7}\n", "run",
                   "clients", "events", "events/s", "p50 ms", "p99 ms", "max ms", "errors",
                   "server ms", "commit ms", "batch");
  for (const IngestRun& r : results) {
    std::cout << fmt::format(
        "{:<18} {:>7} {:>10} {:>10.0f} {:>7.2f} {:>7.2f} {:>7.1f} {:>6} {:>10.2f} {:>9.2f} "
        "{:>7.1f}\n",
        r.label, r.clients, r.events, r.events_per_s(), r.p50_ms, r.p99_ms, r.max_ms, r.errors,
        r.server_ms, r.commit_ms, r.commit_batch);
  }
  std::cout << "(latency: per batch of " << kEventsPerBatch
            << " events, from request sent to durable acknowledgement; PostgreSQL: per COPY or "
               "INSERT transaction. server ms: mean time in the POST /v1/events handler; commit ms "
               "and batch: mean store group commit)\n";
  for (const IngestRun& r : results) {
    if (r.cpu_us <= 0) continue;
    std::cout << fmt::format(
        "{}: CPU per event {:.2f} µs (the whole process, its clients included, while they ran); "
        "the store's writer thread {:.2f} µs (until the store had them all)\n"
        "{}: the store had every acknowledged event's people, ids and rows {:.2f} s after the "
        "last acknowledgement: {:.0f} events/s through to the store\n",
        r.label, r.cpu_us, r.writer_cpu_us, r.label, r.store_lag_s, r.through_per_s());
  }
  const IngestRun* siyu =
      results.empty() || results[0].label.rfind("siyu", 0) != 0 ? nullptr : &results[0];
  if (siyu) {
    for (const IngestRun& r : results) {
      if (&r == siyu || r.events_per_s() <= 0) continue;
      std::cout << fmt::format("siyu/{} throughput ratio: {:.2f}\n", r.label,
                               siyu->events_per_s() / r.events_per_s());
    }
    // Met only if the store keeps up too: acknowledgements that outrun it are a burst, not a rate.
    bool met = siyu->events_per_s() >= kTargetEventsPerS &&
               siyu->through_per_s() >= kTargetEventsPerS && siyu->p99_ms < kTargetIngestP99Ms;
    std::cout << fmt::format(
        "target (siyu on SQLite: >= {:.0f} events/s acknowledged and through to the store, p99 ack "
        "< {:.0f} ms): {}\n",
        kTargetEventsPerS, kTargetIngestP99Ms, met ? "met" : "NOT met");
  }
  for (const IngestRun& r : results) {
    if (!r.first_error.empty()) {
      std::cout << fmt::format("{}: first error: {}\n", r.label, r.first_error.substr(0, 300));
    }
    if (!r.check.empty()) {
      std::cout << fmt::format("MISMATCH ({}): {}\n", r.label, r.check);
      failed = true;
    } else {
      std::cout << fmt::format("{}: verified: holds exactly the acknowledged events ({})\n",
                               r.label, acked.ToString());
    }
  }
  return failed ? 1 : 0;
}

struct StoreRun {
  std::string label;
  store::Options options;
};

}  // namespace

// ---- siyu bench audience -------------------------------------------------------------------
//
// The audience engine against SQL peers on the same data: BenchData (audience_bench.h) generates
// a tenant of --people people with 500 tags (5 dense at 30-60 %, 495 sparse at 0.1-5 %), tiers,
// touchpoints, orders and events. The engine bulk-loads it and answers 5-term and 20-term count
// expressions and materialises a ~10 % segment; PostgreSQL (--pg, by COPY) and SQLite (a temp
// file) load the same people and tag memberships for --sql-people people and answer the same
// expressions in SQL, whose counts must equal the engine's at that size.
//
// SQL layout (the best case for the peers, not siyu's store schema):
//   people(id BIGINT PRIMARY KEY, tier TEXT)                      + index people(tier)
//   person_tags(tag_id, person_id)    PRIMARY KEY (tag_id, person_id)  (SQLite: WITHOUT ROWID)
//   person_touchpoints(touchpoint, person_id)  PRIMARY KEY (touchpoint, person_id)
// and an expression becomes SELECT COUNT(*) FROM people p WHERE <condition>, a tag being
// `p.id IN (SELECT person_id FROM person_tags WHERE tag_id = …)` (AND/OR/NOT as in SQL).
// PostgreSQL keys are added after COPY, then VACUUM ANALYZE; queries run with work_mem = 512MB
// (hashed subplans) and the server's default parallelism. SQLite inserts in key order in one
// transaction (journal off during the load only), then ANALYZE; queries with a 1 GiB page cache.

namespace {

using audience::AudienceEngine;
using audience::Expr;
using audience::Kind;
namespace abench = audience::bench;
using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

size_t ProcessRss() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
  std::fclose(f);
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

struct Lat {
  double p50 = 0, p99 = 0, mean = 0;
  size_t n = 0;
};
Lat LatOf(std::vector<double> v) {
  Lat l;
  l.n = v.size();
  if (v.empty()) return l;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * double(v.size())))]; };
  l.p50 = at(0.5);
  l.p99 = at(0.99);
  double s = 0;
  for (double x : v) s += x;
  l.mean = s / double(v.size());
  return l;
}

// The SQL of the bench's expressions: tags, tier, touchpoint, AND/OR/NOT.
StatusOr<std::string> BenchSqlCondition(const Expr& e) {
  auto quote = [](const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  };
  switch (e.kind) {
    case Kind::kAnd:
    case Kind::kOr: {
      std::string out;
      for (const Expr& c : e.children) {
        ASSIGN_OR_RETURN(std::string s, BenchSqlCondition(c));
        if (!out.empty()) out += e.kind == Kind::kAnd ? " AND " : " OR ";
        out += "(" + s + ")";
      }
      return out;
    }
    case Kind::kNot: {
      ASSIGN_OR_RETURN(std::string s, BenchSqlCondition(e.children.at(0)));
      return "NOT (" + s + ")";
    }
    case Kind::kTag:
      return fmt::format("p.id IN (SELECT person_id FROM person_tags WHERE tag_id = {})", e.id);
    case Kind::kTier:
      return "p.tier = " + quote(e.name);
    case Kind::kTouchpoint:
      return "p.id IN (SELECT person_id FROM person_touchpoints WHERE touchpoint = " +
             quote(e.name) + ")";
    default:
      return Status(ErrorCode::kInvalidField,
                    "the bench's SQL form takes tags, tier and touchpoint only");
  }
}

// One engine run over `people` people: load, counts, materialisation, memory.
struct EngineRun {
  uint64_t people = 0;
  double load_s = 0;
  Lat q5, q20, mat, mat_ids;
  uint64_t mat_count = 0;
  std::vector<uint64_t> counts5, counts20;  // per expression
  uint64_t tag_memberships = 0;
  size_t tag_bitmap_bytes = 0, bitmap_bytes = 0, column_bytes = 0, aggregate_bytes = 0;
  size_t rss_load = 0, rss_total = 0;
};

struct Queries {
  std::vector<std::string> q5, q20;
  std::string ten;
};

StatusOr<EngineRun> RunAudienceEngine(const abench::BenchConfig& bc, const Queries& q) {
  EngineRun r;
  r.people = bc.people;
  abench::BenchData data(bc);
  const size_t rss0 = ProcessRss();
  audience::EngineOptions options;
  options.today = bc.today;
  auto e = std::make_unique<AudienceEngine>(options);
  auto t0 = Clock::now();
  RETURN_IF_ERROR(abench::LoadBench(data, *e));
  r.load_s = MsSince(t0) / 1000;
  r.rss_total = ProcessRss();
  r.rss_load = r.rss_total - rss0;
  audience::EngineStats st = e->Stats();
  r.tag_memberships = st.tag_memberships;
  r.tag_bitmap_bytes = st.tag_bitmap_bytes;
  r.bitmap_bytes = st.bitmap_bytes;
  r.column_bytes = st.column_bytes;
  r.aggregate_bytes = st.aggregate_bytes;
  auto timed = [&](const std::vector<std::string>& texts, std::vector<uint64_t>& counts,
                   Lat& lat) -> Status {
    std::vector<Expr> exprs;
    for (const std::string& t : texts) {
      ASSIGN_OR_RETURN(Expr x, e->Parse(t));
      exprs.push_back(std::move(x));
    }
    std::vector<double> ms;
    counts.assign(exprs.size(), 0);
    for (int rep = 0; rep < 3; ++rep) {
      for (size_t i = 0; i < exprs.size(); ++i) {
        auto c0 = Clock::now();
        ASSIGN_OR_RETURN(uint64_t n, e->Count(exprs[i]));
        ms.push_back(MsSince(c0));
        counts[i] = n;
      }
    }
    lat = LatOf(std::move(ms));
    return Status::Ok();
  };
  RETURN_IF_ERROR(timed(q.q5, r.counts5, r.q5));
  RETURN_IF_ERROR(timed(q.q20, r.counts20, r.q20));
  ASSIGN_OR_RETURN(Expr ten, e->Parse(q.ten));
  std::vector<double> mat, ids;
  for (int rep = 0; rep < 10; ++rep) {
    auto m0 = Clock::now();
    ASSIGN_OR_RETURN(audience::PersonSet set, e->Evaluate(ten));
    mat.push_back(MsSince(m0));
    auto m1 = Clock::now();
    std::vector<int64_t> members = e->Members(set);
    ids.push_back(MsSince(m1));
    r.mat_count = members.size();
  }
  r.mat = LatOf(std::move(mat));
  r.mat_ids = LatOf(std::move(ids));
  return r;
}

// A SQL peer's run.
struct SqlRun {
  std::string label;
  uint64_t people = 0;
  uint64_t rows = 0;  // person_tags rows
  double load_s = 0, index_s = 0;
  Lat q5, q20, mat;
  uint64_t mat_count = 0;
  std::vector<std::string> mismatches;
};

// The rows both peers load, produced tag by tag (person_tags in key order).
struct PeerRows {
  const abench::BenchData& data;
  // people: (id, tier or ""), touchpoints: (touchpoint, id) grouped by touchpoint.
  void People(const std::function<void(int64_t, const std::string&)>& person,
              std::map<std::string, std::vector<int64_t>>& touch) const {
    for (uint64_t i = 0; i < data.config().people; ++i) {
      abench::BenchPerson p = data.Person(i);
      person(p.id, p.attrs.tier);
      for (const std::string& t : p.attrs.touchpoints) touch[t].push_back(p.id);
    }
  }
  void Tags(const std::function<void(int64_t tag, int64_t person)>& f) const {
    for (size_t t = 0; t < data.tags().size(); ++t) {
      const int64_t id = data.tags()[t].id;
      data.TagMembers(t, [&](uint64_t i) { f(id, static_cast<int64_t>(i + 1)); });
    }
  }
};

class PgQuery {
 public:
  explicit PgQuery(const std::string& url) : c_(PQconnectdb(url.c_str())) {}
  ~PgQuery() { PQfinish(c_); }
  Status Ok() const {
    if (PQstatus(c_) == CONNECTION_OK) return Status::Ok();
    return Status(ErrorCode::kStoreUnavailable,
                  std::string("cannot connect to PostgreSQL: ") + PQerrorMessage(c_));
  }
  Status Exec(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto t = PQresultStatus(r);
    Status s;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
      s = Status(ErrorCode::kStoreUnavailable, sql.substr(0, 80) + ": " + PQerrorMessage(c_));
    }
    PQclear(r);
    return s;
  }
  Status Copy(const std::string& table, const std::string& data) {
    PGresult* r = PQexec(c_, ("COPY " + table + " FROM STDIN").c_str());
    if (PQresultStatus(r) != PGRES_COPY_IN) {
      PQclear(r);
      return Status(ErrorCode::kStoreUnavailable, std::string("COPY: ") + PQerrorMessage(c_));
    }
    PQclear(r);
    if (PQputCopyData(c_, data.data(), static_cast<int>(data.size())) != 1 ||
        PQputCopyEnd(c_, nullptr) != 1) {
      return Status(ErrorCode::kStoreUnavailable, std::string("COPY: ") + PQerrorMessage(c_));
    }
    Status s;
    while (PGresult* res = PQgetResult(c_)) {
      if (PQresultStatus(res) != PGRES_COMMAND_OK && s.ok()) {
        s = Status(ErrorCode::kStoreUnavailable, std::string("COPY: ") + PQerrorMessage(c_));
      }
      PQclear(res);
    }
    return s;
  }
  // The rows of the first column.
  StatusOr<std::vector<int64_t>> Ints(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      std::string m = PQerrorMessage(c_);
      PQclear(r);
      return Status(ErrorCode::kStoreUnavailable, sql.substr(0, 80) + ": " + m);
    }
    std::vector<int64_t> v(static_cast<size_t>(PQntuples(r)));
    for (int i = 0; i < PQntuples(r); ++i)
      v[size_t(i)] = std::strtoll(PQgetvalue(r, i, 0), nullptr, 10);
    PQclear(r);
    return v;
  }

 private:
  PGconn* c_;
};

class Lite {
 public:
  explicit Lite(const std::string& path) { sqlite3_open(path.c_str(), &db_); }
  ~Lite() { sqlite3_close(db_); }
  Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = err ? err : "?";
      sqlite3_free(err);
      return Status(ErrorCode::kStoreUnavailable, sql.substr(0, 80) + ": " + m);
    }
    return Status::Ok();
  }
  StatusOr<std::vector<int64_t>> Ints(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      return Status(ErrorCode::kStoreUnavailable, sqlite3_errmsg(db_));
    }
    std::vector<int64_t> v;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) v.push_back(sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return Status(ErrorCode::kStoreUnavailable, sqlite3_errmsg(db_));
    return v;
  }
  // Runs `sql` (two parameters) once per f's call to `row`.
  Status Insert(
      const std::string& sql,
      const std::function<void(const std::function<void(int64_t, const std::string*, int64_t)>&)>&
          f) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      return Status(ErrorCode::kStoreUnavailable, sqlite3_errmsg(db_));
    }
    Status s;
    f([&](int64_t a, const std::string* text, int64_t b) {
      if (!s.ok()) return;
      if (text) {
        sqlite3_bind_text(st, 1, text->c_str(), static_cast<int>(text->size()), SQLITE_STATIC);
      } else {
        sqlite3_bind_int64(st, 1, a);
      }
      sqlite3_bind_int64(st, 2, b);
      if (sqlite3_step(st) != SQLITE_DONE) {
        s = Status(ErrorCode::kStoreUnavailable, sqlite3_errmsg(db_));
      }
      sqlite3_reset(st);
    });
    sqlite3_finalize(st);
    return s;
  }

 private:
  sqlite3* db_ = nullptr;
};

// Times the expressions on a peer through `ints` (one query, its first column); checks counts.
template <typename IntsFn>
void RunSqlQueries(SqlRun& r, const Queries& q, const std::vector<Expr>& e5,
                   const std::vector<Expr>& e20, const Expr& ten, const EngineRun& engine,
                   size_t n5, size_t n20, IntsFn ints) {
  auto timed = [&](const std::vector<Expr>& exprs, const std::vector<std::string>& texts,
                   const std::vector<uint64_t>& want, size_t n, Lat& lat) {
    std::vector<double> ms;
    for (size_t i = 0; i < exprs.size() && i < n; ++i) {
      auto cond = BenchSqlCondition(exprs[i]);
      if (!cond.ok()) {
        r.mismatches.push_back(texts[i] + ": " + cond.status().ToString());
        continue;
      }
      auto t0 = Clock::now();
      auto v = ints("SELECT COUNT(*) FROM people p WHERE " + *cond);
      ms.push_back(MsSince(t0));
      if (!v.ok() || v->size() != 1) {
        r.mismatches.push_back(texts[i] + ": " + (v.ok() ? "no row" : v.status().ToString()));
      } else if (uint64_t((*v)[0]) != want[i]) {
        r.mismatches.push_back(fmt::format("{}: SQL {} != siyu {}", texts[i], (*v)[0], want[i]));
      }
    }
    lat = LatOf(std::move(ms));
  };
  timed(e5, q.q5, engine.counts5, n5, r.q5);
  timed(e20, q.q20, engine.counts20, n20, r.q20);
  auto cond = BenchSqlCondition(ten);
  std::vector<double> ms;
  for (int rep = 0; cond.ok() && rep < 3; ++rep) {
    auto t0 = Clock::now();
    auto v = ints("SELECT p.id FROM people p WHERE " + *cond + " ORDER BY p.id");
    ms.push_back(MsSince(t0));
    if (v.ok()) r.mat_count = v->size();
  }
  if (r.mat_count != engine.mat_count) {
    r.mismatches.push_back(
        fmt::format("materialised segment: SQL {} != siyu {}", r.mat_count, engine.mat_count));
  }
  r.mat = LatOf(std::move(ms));
}

StatusOr<SqlRun> RunPgPeer(const std::string& url, const abench::BenchData& data, const Queries& q,
                           const std::vector<Expr>& e5, const std::vector<Expr>& e20,
                           const Expr& ten, const EngineRun& engine, size_t n5, size_t n20) {
  SqlRun r;
  r.label = "PostgreSQL";
  r.people = data.config().people;
  PgQuery pg(url);
  RETURN_IF_ERROR(pg.Ok());
  RETURN_IF_ERROR(pg.Exec("SET client_min_messages = warning"));
  RETURN_IF_ERROR(pg.Exec("DROP SCHEMA IF EXISTS siyu_bench_audience CASCADE"));
  RETURN_IF_ERROR(pg.Exec("CREATE SCHEMA siyu_bench_audience"));
  RETURN_IF_ERROR(pg.Exec("SET search_path = siyu_bench_audience"));
  // Room for hashed IN / NOT IN subplans (a dense tag at 10 M people has 3-6 M members): with the
  // default 4 MB, NOT IN falls back to a rescan per person and a 20-term count takes minutes.
  RETURN_IF_ERROR(pg.Exec("SET work_mem = '512MB'"));
  RETURN_IF_ERROR(pg.Exec(
      "CREATE TABLE people (id BIGINT NOT NULL, tier TEXT); CREATE TABLE person_tags (tag_id "
      "BIGINT NOT NULL, person_id BIGINT NOT NULL); CREATE TABLE person_touchpoints (touchpoint "
      "TEXT NOT NULL, person_id BIGINT NOT NULL)"));
  PeerRows rows{data};
  auto t0 = Clock::now();
  std::string buf;
  std::map<std::string, std::vector<int64_t>> touch;
  Status s;
  auto flush = [&](const char* table, bool force) {
    if (s.ok() && (force || buf.size() > (32u << 20))) {
      if (!buf.empty()) s = pg.Copy(table, buf);
      buf.clear();
    }
  };
  rows.People(
      [&](int64_t id, const std::string& tier) {
        buf += std::to_string(id);
        buf += '\t';
        buf += tier.empty() ? std::string("\\N") : tier;
        buf += '\n';
        flush("people", false);
      },
      touch);
  flush("people", true);
  for (const auto& [t, ids] : touch) {
    for (int64_t id : ids) buf += t + "\t" + std::to_string(id) + "\n";
  }
  flush("person_touchpoints", true);
  rows.Tags([&](int64_t tag, int64_t person) {
    buf += std::to_string(tag);
    buf += '\t';
    buf += std::to_string(person);
    buf += '\n';
    ++r.rows;
    flush("person_tags", false);
  });
  flush("person_tags", true);
  RETURN_IF_ERROR(s);
  r.load_s = MsSince(t0) / 1000;
  auto t1 = Clock::now();
  RETURN_IF_ERROR(pg.Exec("ALTER TABLE people ADD PRIMARY KEY (id)"));
  RETURN_IF_ERROR(pg.Exec("CREATE INDEX people_tier ON people (tier)"));
  RETURN_IF_ERROR(pg.Exec("ALTER TABLE person_tags ADD PRIMARY KEY (tag_id, person_id)"));
  RETURN_IF_ERROR(
      pg.Exec("ALTER TABLE person_touchpoints ADD PRIMARY KEY (touchpoint, person_id)"));
  RETURN_IF_ERROR(pg.Exec("VACUUM ANALYZE people"));
  RETURN_IF_ERROR(pg.Exec("VACUUM ANALYZE person_tags"));
  RETURN_IF_ERROR(pg.Exec("VACUUM ANALYZE person_touchpoints"));
  r.index_s = MsSince(t1) / 1000;
  RunSqlQueries(r, q, e5, e20, ten, engine, n5, n20,
                [&](const std::string& sql) { return pg.Ints(sql); });
  (void)pg.Exec("DROP SCHEMA siyu_bench_audience CASCADE");
  return r;
}

StatusOr<SqlRun> RunSqlitePeer(const std::string& dir, const abench::BenchData& data,
                               const Queries& q, const std::vector<Expr>& e5,
                               const std::vector<Expr>& e20, const Expr& ten,
                               const EngineRun& engine, size_t n5, size_t n20) {
  SqlRun r;
  r.label = "SQLite";
  r.people = data.config().people;
  const std::string path = dir + "/audience-peer.db";
  std::filesystem::remove(path);
  Status s;
  {
    Lite db(path);
    RETURN_IF_ERROR(
        db.Exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA "
                "cache_size = -1048576"));
    RETURN_IF_ERROR(db.Exec(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, tier TEXT); CREATE TABLE person_tags "
        "(tag_id INTEGER NOT NULL, person_id INTEGER NOT NULL, PRIMARY KEY (tag_id, person_id)) "
        "WITHOUT ROWID; CREATE TABLE person_touchpoints (touchpoint TEXT NOT NULL, person_id "
        "INTEGER NOT NULL, PRIMARY KEY (touchpoint, person_id)) WITHOUT ROWID"));
    PeerRows rows{data};
    auto t0 = Clock::now();
    RETURN_IF_ERROR(db.Exec("BEGIN"));
    std::map<std::string, std::vector<int64_t>> touch;
    std::vector<std::pair<int64_t, std::string>> people;
    RETURN_IF_ERROR(db.Insert(
        "INSERT INTO people (id, tier) VALUES (?2, NULLIF(?1, ''))", [&](const auto& row) {
          rows.People([&](int64_t id, const std::string& tier) { row(0, &tier, id); }, touch);
        }));
    RETURN_IF_ERROR(
        db.Insert("INSERT INTO person_touchpoints (touchpoint, person_id) VALUES (?1, ?2)",
                  [&](const auto& row) {
                    for (const auto& [t, ids] : touch) {
                      for (int64_t id : ids) row(0, &t, id);
                    }
                  }));
    RETURN_IF_ERROR(db.Insert("INSERT INTO person_tags (tag_id, person_id) VALUES (?1, ?2)",
                              [&](const auto& row) {
                                rows.Tags([&](int64_t tag, int64_t person) {
                                  row(tag, nullptr, person);
                                  ++r.rows;
                                });
                              }));
    RETURN_IF_ERROR(db.Exec("COMMIT"));
    r.load_s = MsSince(t0) / 1000;
    auto t1 = Clock::now();
    RETURN_IF_ERROR(db.Exec("CREATE INDEX people_tier ON people (tier); ANALYZE"));
    r.index_s = MsSince(t1) / 1000;
  }
  // Queried through a fresh connection with the default settings (but a 1 GiB page cache).
  Lite db(path);
  RETURN_IF_ERROR(db.Exec("PRAGMA cache_size = -1048576"));
  RunSqlQueries(r, q, e5, e20, ten, engine, n5, n20,
                [&](const std::string& sql) { return db.Ints(sql); });
  std::filesystem::remove(path);
  return r;
}

struct AudienceArgs {
  uint64_t people = 10'000'000;
  uint64_t sql_people = 1'000'000;
  uint64_t seed = 42;
  size_t queries = 200;     // 5-term expressions for the engine (half as many 20-term)
  size_t sql_queries = 20;  // 5-term expressions for each SQL peer (half as many 20-term)
};

int BenchAudience(const BenchConfig& cfg, const std::string& sqlite_dir) {
  AudienceArgs a;
  for (size_t i = 0; i < cfg.extra.size(); ++i) {
    const std::string& k = cfg.extra[i];
    if (i + 1 >= cfg.extra.size()) {
      std::cerr << "siyu bench audience: " << k << " needs a value\n";
      return 2;
    }
    const uint64_t v = std::strtoull(cfg.extra[++i].c_str(), nullptr, 10);
    if (k == "--people") {
      a.people = v;
    } else if (k == "--sql-people") {
      a.sql_people = v;
    } else if (k == "--seed") {
      a.seed = v;
    } else if (k == "--queries") {
      a.queries = v;
    } else if (k == "--sql-queries") {
      a.sql_queries = v;
    } else {
      std::cerr << "siyu bench audience: unknown argument '" << k
                << "' (--people N, --sql-people N, --seed S, --queries Q, --sql-queries Q)\n";
      return 2;
    }
  }
  a.sql_people = std::min(a.sql_people, a.people);
  if (a.people < 1000 || a.queries < 2 || a.sql_queries < 2) {
    std::cerr << "siyu bench audience: --people >= 1000, --queries and --sql-queries >= 2\n";
    return 2;
  }
  abench::BenchConfig bc;
  bc.people = a.sql_people;
  bc.seed = a.seed;
  abench::BenchData small(bc);
  Queries q;
  q.q5 = small.CountQueries(5, a.queries, a.seed + 5);
  q.q20 = small.CountQueries(20, a.queries / 2, a.seed + 20);
  q.ten = small.TenPercentQuery();

  // The engine at the SQL peers' size: the counts the peers must reproduce.
  std::cout << fmt::format("siyu engine at {} people (the SQL peers' size)…\n", a.sql_people)
            << std::flush;
  auto at_sql = RunAudienceEngine(bc, q);
  if (!at_sql.ok()) {
    std::cerr << "siyu bench audience: " << at_sql.status().ToString() << "\n";
    return 1;
  }
  // The expressions, bound to the tags' ids (the same ids at every size).
  std::vector<Expr> e5, e20;
  Expr ten;
  {
    AudienceEngine binder;
    for (const auto& t : small.tags()) (void)binder.DefineTag({t.id, t.group, t.name, ""});
    for (const auto& t : q.q5) e5.push_back(*binder.Parse(t));
    for (const auto& t : q.q20) e20.push_back(*binder.Parse(t));
    ten = *binder.Parse(q.ten);
  }
  std::vector<SqlRun> peers;
  bool failed = false;
  const size_t n5 = a.sql_queries, n20 = a.sql_queries / 2;
  if (!cfg.pg_url.empty()) {
    std::cout << "PostgreSQL peer: COPY, keys, queries…\n" << std::flush;
    auto r = RunPgPeer(cfg.pg_url, small, q, e5, e20, ten, *at_sql, n5, n20);
    if (!r.ok()) {
      std::cerr << "PostgreSQL peer: " << r.status().ToString() << "\n";
      failed = true;
    } else {
      peers.push_back(std::move(r).value());
    }
  }
  std::cout << "SQLite peer: inserts, queries…\n" << std::flush;
  {
    auto r = RunSqlitePeer(sqlite_dir, small, q, e5, e20, ten, *at_sql, n5, n20);
    if (!r.ok()) {
      std::cerr << "SQLite peer: " << r.status().ToString() << "\n";
      failed = true;
    } else {
      peers.push_back(std::move(r).value());
    }
  }
  // The engine at full size.
  std::optional<EngineRun> full;
  if (a.people != a.sql_people) {
    std::cout << fmt::format("siyu engine at {} people…\n", a.people) << std::flush;
    abench::BenchConfig big = bc;
    big.people = a.people;
    auto r = RunAudienceEngine(big, q);
    if (!r.ok()) {
      std::cerr << "siyu bench audience: " << r.status().ToString() << "\n";
      return 1;
    }
    full = std::move(r).value();
  }

  auto engine_rows = [](const EngineRun& r) {
    std::cout << fmt::format("\nsiyu engine, {} people (one thread; each count 3 times)\n",
                             r.people);
    std::cout << fmt::format("  bulk load (500 tags, 20 rule tags, 20 segments): {:.1f} s\n",
                             r.load_s);
    std::cout << fmt::format("  count, 5-term  p50 / p99: {:.3f} / {:.3f} ms ({} runs)\n", r.q5.p50,
                             r.q5.p99, r.q5.n);
    std::cout << fmt::format("  count, 20-term p50 / p99: {:.3f} / {:.3f} ms ({} runs)\n",
                             r.q20.p50, r.q20.p99, r.q20.n);
    std::cout << fmt::format(
        "  materialise the ~10 % segment ({} members): bitmap p50 {:.2f} ms, its ids p50 {:.2f} "
        "ms\n",
        r.mat_count, r.mat.p50, r.mat_ids.p50);
    std::cout << fmt::format(
        "  tag memberships {}; tag bitmaps {:.1f} MiB = {:.2f} B per (person, tag); all bitmaps "
        "{:.1f} MiB; columns {:.0f} B/person; aggregates {:.0f} B/person\n",
        r.tag_memberships, r.tag_bitmap_bytes / 1048576.0,
        double(r.tag_bitmap_bytes) / double(std::max<uint64_t>(1, r.tag_memberships)),
        r.bitmap_bytes / 1048576.0, double(r.column_bytes) / double(r.people),
        double(r.aggregate_bytes) / double(r.people));
    std::cout << fmt::format(
        "  RSS of the load {:.0f} MiB ({:.0f} B per person); process RSS {:.0f} MiB\n",
        r.rss_load / 1048576.0, double(r.rss_load) / double(r.people), r.rss_total / 1048576.0);
  };
  engine_rows(*at_sql);
  if (full) engine_rows(*full);
  for (const SqlRun& p : peers) {
    std::cout << fmt::format("\n{}, {} people, {} person_tags rows\n", p.label, p.people, p.rows);
    std::cout << fmt::format("  load {:.1f} s, keys/indexes + ANALYZE {:.1f} s\n", p.load_s,
                             p.index_s);
    std::cout << fmt::format("  count, 5-term  p50 / p99: {:.1f} / {:.1f} ms ({} queries)\n",
                             p.q5.p50, p.q5.p99, p.q5.n);
    std::cout << fmt::format("  count, 20-term p50 / p99: {:.1f} / {:.1f} ms ({} queries)\n",
                             p.q20.p50, p.q20.p99, p.q20.n);
    std::cout << fmt::format("  materialise the ~10 % segment ({} ids, ascending) p50: {:.1f} ms\n",
                             p.mat_count, p.mat.p50);
    std::cout << fmt::format(
        "  siyu/{} latency ratio (p50): 5-term {:.5f} ({:.0f}x faster), 20-term {:.5f} ({:.0f}x), "
        "segment ids {:.4f} ({:.0f}x)\n",
        p.label, at_sql->q5.p50 / p.q5.p50, p.q5.p50 / at_sql->q5.p50, at_sql->q20.p50 / p.q20.p50,
        p.q20.p50 / at_sql->q20.p50, (at_sql->mat.p50 + at_sql->mat_ids.p50) / p.mat.p50,
        p.mat.p50 / (at_sql->mat.p50 + at_sql->mat_ids.p50));
    if (p.mismatches.empty()) {
      std::cout << fmt::format("  every count equals siyu's ({} expressions and the segment)\n",
                               p.q5.n + p.q20.n);
    } else {
      failed = true;
      for (const std::string& m : p.mismatches) std::cout << "  MISMATCH: " << m << "\n";
    }
  }
  return failed ? 1 : 0;
}

}  // namespace

// ---- `siyu bench segment-live` ------------------------------------------------------------------
//
// How soon a segment change caused by an event is visible through the API, under ingest. The
// real server on SQLite; a segment `events("page_view", last 1d) >= 3`; N clients post batches of
// 100 page views paced to --rate events/s in all. In each batch one new "probe" person gets their
// third view (the other 97 events are first or second views of other people). After the answer
// the client polls GET /v1/people/{id}/audience until the probe is in the segment (membership
// visible), then the probe's timeline until its segment_entered event is there. Latencies are
// from sending the batch.

int BenchSegmentLive(const BenchConfig& cfg, const std::string& sqlite_dir, double rate) {
  ServeConfig sc;
  sc.store = store::Options{sqlite_dir};
  sc.http.port = 0;
  sc.http.access_log = false;
  auto srv = Server::Start(sc);
  if (!srv.ok()) {
    std::cerr << "siyu bench: " << srv.status().ToString() << "\n";
    return 1;
  }
  auto& tenancy = (*srv)->engine().tenancy();
  auto t = tenancy.CreateTenant(fmt::format("bench live {}", RandomBase62(6)), std::nullopt);
  if (!t.ok()) return 1;
  auto key = tenancy.CreateKey(t->id, "bench", domain::Role::kAdmin);
  if (!key.ok()) return 1;
  const uint16_t port = (*srv)->port();
  client::HttpClient admin("127.0.0.1", port);
  admin.SetHeader("Authorization", "Bearer " + key->plaintext);
  auto seg = admin.Post(
      "/v1/segments", R"({"name":"三次浏览","expression":"events(\"page_view\", last 1d) >= 3"})");
  if (seg.status != 201) {
    std::cerr << "siyu bench: POST /v1/segments answered " << seg.status << " " << seg.body << "\n";
    return 1;
  }
  const int64_t segment_id = ParseJsonObject(seg.body)->at("id").to_number<int64_t>();
  const int clients = cfg.clients;
  const double per_client = rate / clients;  // events/s
  const auto period = std::chrono::duration<double>(100.0 / per_client);
  std::vector<std::vector<float>> member_ms(clients), event_ms(clients), ack_ms(clients);
  std::atomic<int64_t> events{0}, errors{0};
  std::barrier<> start(clients + 1);
  const auto deadline = Clock::now() + std::chrono::seconds(cfg.seconds);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      client::HttpClient api("127.0.0.1", port);
      api.SetHeader("Authorization", "Bearer " + key->plaintext);
      start.arrive_and_wait();
      // Clients are spread evenly over the period: the 20,000 events/s arrive as a steady stream
      // (as from many independent devices), not as bursts of every client at once.
      auto next = Clock::now() + std::chrono::duration_cast<Clock::duration>(period * c / clients);
      for (int64_t b = 0; Clock::now() < deadline; ++b) {
        std::this_thread::sleep_until(next);
        next += std::chrono::duration_cast<Clock::duration>(period);
        const int64_t now = NowMs();
        std::string body = R"({"events":[)";
        auto add = [&](const std::string& who, int k) {
          if (body.back() != '[') body += ',';
          body += fmt::format(
              R"({{"event_id":"live-{}-{}-{}","type":"page_view","ids":["unionid:{}"],"ts":{},)"
              R"("touchpoint":"mini_program","properties":{{"path":"/p"}}}})",
              c, b, k, who, now - 1000);
        };
        const std::string probe = fmt::format("probe-{}-{}", c, b);
        for (int k = 0; k < 3; ++k) add(probe, k);
        for (int k = 3; k < 100; ++k) add(fmt::format("crowd-{}-{}-{}", c, b, k / 2), k);
        body += "]}";
        auto t0 = Clock::now();
        auto r = api.Post("/v1/events", body);
        auto t1 = Clock::now();
        auto o = r.status == 200 ? ParseJsonObject(r.body) : StatusOr<json::object>(Status());
        if (!o.ok() || o->at("accepted").to_number<int64_t>() != 100) {
          ++errors;
          continue;
        }
        events += 100;
        ack_ms[c].push_back(std::chrono::duration<float, std::milli>(t1 - t0).count());
        const int64_t person =
            o->at("results").as_array()[0].as_object().at("person_id").to_number<int64_t>();
        const std::string needle = std::to_string(segment_id);
        for (int poll = 0; poll < 5000; ++poll) {
          auto a = api.Get("/v1/people/" + std::to_string(person) + "/audience");
          auto ao = ParseJsonObject(a.body);
          bool in = false;
          if (ao.ok()) {
            for (const auto& s : ao->at("segments").as_array())
              in |= s.to_number<int64_t>() == segment_id;
          }
          if (in) {
            member_ms[c].push_back(
                std::chrono::duration<float, std::milli>(Clock::now() - t0).count());
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        for (int poll = 0; poll < 5000; ++poll) {
          auto tl = api.Get("/v1/people/" + std::to_string(person) + "/timeline?limit=10");
          if (tl.body.find("\"segment_entered\"") != std::string::npos) {
            event_ms[c].push_back(
                std::chrono::duration<float, std::milli>(Clock::now() - t0).count());
            break;
          }
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
      }
    });
  }
  auto w0 = Clock::now();
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
  const double secs = std::chrono::duration<double>(Clock::now() - w0).count();
  std::vector<float> members, evs, acks;
  for (int c = 0; c < clients; ++c) {
    members.insert(members.end(), member_ms[c].begin(), member_ms[c].end());
    evs.insert(evs.end(), event_ms[c].begin(), event_ms[c].end());
    acks.insert(acks.end(), ack_ms[c].begin(), ack_ms[c].end());
  }
  const size_t probes = acks.size();
  std::cout << fmt::format(
      "segment-live: {} clients, {:.0f} events/s ingested ({} events, {} errors) in {:.1f} s\n"
      "  batch ack               p50 {:.2f} ms  p99 {:.2f} ms\n"
      "  membership visible      p50 {:.2f} ms  p99 {:.2f} ms  ({} of {} probes)\n"
      "  segment_entered event   p50 {:.2f} ms  p99 {:.2f} ms  ({} of {} probes)\n",
      clients, static_cast<double>(events.load()) / secs, events.load(), errors.load(), secs,
      Percentile(acks, 0.5), Percentile(acks, 0.99), Percentile(members, 0.5),
      Percentile(members, 0.99), members.size(), probes, Percentile(evs, 0.5),
      Percentile(evs, 0.99), evs.size(), probes);
  const bool met = members.size() == probes && evs.size() == probes && probes > 0 &&
                   Percentile(evs, 0.99) < 50 &&
                   static_cast<double>(events.load()) / secs >= 0.95 * rate;
  std::cout << fmt::format(
      "target (segment_entered visible p99 < 50 ms under {:.0f} events/s): {}\n", rate,
      met ? "met" : "NOT met");
  (*srv)->Stop();
  return members.size() == probes && evs.size() == probes ? 0 : 1;
}

int Bench(const BenchConfig& cfg) {
  if (cfg.workload == "identity") {
    std::vector<std::string> args = {"siyu bench identity"};
    args.insert(args.end(), cfg.extra.begin(), cfg.extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return identity::BenchMain(static_cast<int>(argv.size()), argv.data());
  }
  if (cfg.workload == "audience") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "siyu-bench-XXXXXX").string();
    const std::string dir =
        cfg.data_dir.empty() ? std::string(mkdtemp(tmpl.data()) ? tmpl : "") : cfg.data_dir;
    if (dir.empty()) {
      std::cerr << "siyu bench: cannot create a temporary directory: " << std::strerror(errno)
                << "\n";
      return 1;
    }
    spdlog::set_level(spdlog::level::warn);
    int rc = BenchAudience(cfg, dir);
    if (cfg.data_dir.empty()) std::filesystem::remove_all(dir);
    return rc;
  }
  if (cfg.workload == "segment-live") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "siyu-bench-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return 1;
    spdlog::set_level(spdlog::level::warn);
    int rc = BenchSegmentLive(cfg, tmpl, 20'000);
    std::filesystem::remove_all(tmpl);
    return rc;
  }
  if (!cfg.extra.empty()) {
    std::cerr << "siyu bench: unknown argument '" << cfg.extra.front() << "'\n";
    return 2;
  }
  if (cfg.workload != "orders" && cfg.workload != "ingest") {
    std::cerr << "siyu bench: unknown workload '" << cfg.workload
              << "' (known: orders, ingest, identity, audience, segment-live)\n";
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
  if (cfg.workload == "ingest") {
    spdlog::set_level(spdlog::level::warn);
    int rc = BenchIngest(cfg, sqlite_dir);
    if (temp_dir) std::filesystem::remove_all(sqlite_dir);
    return rc;
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
