// `siyu bench orders`: N concurrent keep-alive HTTP clients create people and orders against the
// real server, run in-process on each store in turn (SQLite, then PostgreSQL when --pg is given).
// Each run is one Google Benchmark iteration timed manually; afterwards the run checks that the
// store holds exactly the acknowledged orders, to the fen.
//
// `siyu bench ingest`: batches of events over HTTP into siyu on SQLite, then the same rows into
// PostgreSQL by COPY and by multi-row INSERT (see the section below).
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <charconv>
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

// ---- `siyu bench ingest` -----------------------------------------------------------------------
//
// N clients post batches of 100 realistic events (mixed standard and custom types, ~20 % of them
// from people never seen before, the rest from people the client already introduced) to the real
// server on SQLite; every batch is durable before its answer. Afterwards the very rows siyu
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

void RunIngestClient(int index, uint16_t port, const std::string& key,
                     const std::vector<std::string>& states, std::barrier<>& start,
                     const Clock::time_point& deadline, IngestClientStats& st) {
  client::HttpClient c("127.0.0.1", port);
  c.SetHeader("Authorization", "Bearer " + key);
  EventMaker maker(index, states);
  std::string body;
  body.reserve(64 * 1024);
  std::vector<std::string> ids;
  start.arrive_and_wait();
  while (Clock::now() < deadline) {
    maker.Batch(body, ids, NowMs());
    auto t0 = Clock::now();
    auto r = c.Post("/v1/events", body);
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
      for (const auto& id : ids) st.acked.Add(id);
      continue;
    }
    // Generated events are all valid; a refusal is a defect worth showing.
    auto o = ParseJsonObject(r.body);
    if (o.ok()) {
      const auto& results = o->at("results").as_array();
      for (size_t i = 0; i < results.size() && i < ids.size(); ++i) {
        const auto& item = results[i].as_object();
        if (item.at("status") != "rejected") {
          st.acked.Add(ids[i]);
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
  IdDigest acked;  // siyu: the events acknowledged to the clients
  std::string first_error;
  std::string check;  // empty: consistent
  double events_per_s() const { return seconds > 0 ? static_cast<double>(events) / seconds : 0; }
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

  MetricsSnapshot before = ReadMetrics(admin);
  std::vector<IngestClientStats> stats(clients);
  std::barrier<> start(clients + 1);
  Clock::time_point deadline;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      RunIngestClient(i, port, ingest_key.plaintext, states, start, deadline, stats[i]);
    });
  }
  deadline = Clock::now() + std::chrono::seconds(seconds);
  auto t0 = Clock::now();
  start.arrive_and_wait();
  for (auto& th : threads) th.join();
  auto t1 = Clock::now();
  MetricsSnapshot after = ReadMetrics(admin);

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
  const IngestRun* siyu =
      results.empty() || results[0].label.rfind("siyu", 0) != 0 ? nullptr : &results[0];
  if (siyu) {
    for (const IngestRun& r : results) {
      if (&r == siyu || r.events_per_s() <= 0) continue;
      std::cout << fmt::format("siyu/{} throughput ratio: {:.2f}\n", r.label,
                               siyu->events_per_s() / r.events_per_s());
    }
    bool met = siyu->events_per_s() >= kTargetEventsPerS && siyu->p99_ms < kTargetIngestP99Ms;
    std::cout << fmt::format(
        "target (siyu on SQLite: >= {:.0f} events/s, p99 ack < {:.0f} ms): {}\n", kTargetEventsPerS,
        kTargetIngestP99Ms, met ? "met" : "NOT met");
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

int Bench(const BenchConfig& cfg) {
  if (cfg.workload == "identity") {
    std::vector<std::string> args = {"siyu bench identity"};
    args.insert(args.end(), cfg.extra.begin(), cfg.extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return identity::BenchMain(static_cast<int>(argv.size()), argv.data());
  }
  if (!cfg.extra.empty()) {
    std::cerr << "siyu bench: unknown argument '" << cfg.extra.front() << "'\n";
    return 2;
  }
  if (cfg.workload != "orders" && cfg.workload != "ingest") {
    std::cerr << "siyu bench: unknown workload '" << cfg.workload
              << "' (known: orders, ingest, identity)\n";
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
