// Durability: acknowledged writes survive SIGKILL and SIGTERM, exactly once.
#include <atomic>
#include <csignal>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;
using namespace std::chrono_literals;

struct SentOrder {
  std::string order_no;
  std::string external_id;
  int64_t quantity;
  int64_t unit_price;
  int64_t total() const { return quantity * unit_price; }
};

struct WriterLog {
  std::vector<SentOrder> acked;    // answered 2xx
  std::vector<SentOrder> unacked;  // sent, no 2xx seen: may or may not exist
  std::vector<std::string> acked_people;
  std::vector<std::string> unexpected;  // answers that are neither 2xx, 503 nor a dead server
};

class DurabilityTest : public BackendTest {
 protected:
  // `threads` writers, each creating people and orders as fast as it can until `stop` or its
  // server goes away. Every order's person was acknowledged before the order was sent.
  std::vector<WriterLog> RunWriters(int threads, std::chrono::milliseconds max_time,
                                    const std::function<void()>& disrupt) {
    std::vector<WriterLog> logs(threads);
    std::atomic<bool> stop{false};
    const uint16_t p = port();
    const std::string key = boot_.api_key;
    const int64_t paid_at = paid_at_;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        WriterLog& log = logs[t];
        Api api(p, key);
        std::string person;
        for (int i = 0; !stop; ++i) {
          if (i % 4 == 0) {
            person = "unionid:w" + std::to_string(t) + "-p" + std::to_string(i / 4);
            Reply r =
                api.Post("/v1/people", value{{"external_id", person}, {"acquired_at", paid_at}});
            if (r.status == 0) return;
            if (r.status / 100 != 2) {
              if (r.status != 503) log.unexpected.push_back("person: " + r.Describe());
              return;
            }
            log.acked_people.push_back(person);
          }
          SentOrder o{"W" + std::to_string(t) + "-" + std::to_string(i), person, 1 + i % 3,
                      100 + t * 7 + i};
          Reply r = api.Post("/v1/orders", Body(o));
          if (r.status == 201 || r.status == 200) {
            log.acked.push_back(o);
            continue;
          }
          log.unacked.push_back(o);
          if (r.status == 0) return;
          if (r.status != 503) log.unexpected.push_back("order: " + r.Describe());
        }
      });
    }
    auto t0 = std::chrono::steady_clock::now();
    disrupt();
    while (std::chrono::steady_clock::now() - t0 < max_time) std::this_thread::sleep_for(10ms);
    stop = true;
    for (auto& th : ts) th.join();
    return logs;
  }

  value Body(const SentOrder& o) const {
    return value{{"order_no", o.order_no},
                 {"external_id", o.external_id},
                 {"lines", json::array{value{{"sku", "SKU-" + std::to_string(o.quantity)},
                                             {"quantity", o.quantity},
                                             {"unit_price_fen", o.unit_price}}}},
                 {"total_fen", o.total()},
                 {"paid_at", paid_at_}};
  }

  // After a restart: acknowledged writes are there, once; the rest can be retried safely.
  void VerifyAfterRestart(const std::vector<WriterLog>& logs) {
    Api api = AdminApi();
    std::vector<SentOrder> acked, unacked;
    size_t people = 0;
    for (const auto& l : logs) {
      acked.insert(acked.end(), l.acked.begin(), l.acked.end());
      unacked.insert(unacked.end(), l.unacked.begin(), l.unacked.end());
      for (const auto& u : l.unexpected) ADD_FAILURE() << "unexpected answer while writing: " << u;
      for (const auto& p : l.acked_people) {
        Reply r = api.Get("/v1/people?external_id=" + p);
        EXPECT_TRUE(HasStatus(r, 200)) << "acknowledged person " << p << " is lost";
        ++people;
      }
    }
    std::cerr << "[          ] " << acked.size() << " orders and " << people
              << " people acknowledged, " << unacked.size() << " orders unacknowledged\n";
    EXPECT_GT(acked.size(), 50u) << "the writers barely wrote; the test proves little";

    int64_t lost = 0;
    for (const auto& o : acked) {
      Reply r = api.Get("/v1/orders/" + o.order_no);
      if (r.status != 200) {
        if (++lost <= 10)
          ADD_FAILURE() << "acknowledged order " << o.order_no << ": " << r.Describe();
        continue;
      }
      EXPECT_EQ(r.Int("/total_fen"), o.total()) << o.order_no;
      EXPECT_EQ(r.Int("/lines/0/quantity"), o.quantity) << o.order_no;
    }
    EXPECT_EQ(lost, 0) << "acknowledged orders lost";
    size_t unacked_found = 0;
    for (const auto& o : unacked) {
      Reply r = api.Get("/v1/orders/" + o.order_no);
      if (r.status == 200) {
        ++unacked_found;
        EXPECT_EQ(r.Int("/total_fen"), o.total()) << o.order_no;
      } else {
        EXPECT_TRUE(IsError(r, 404, "NOT_FOUND")) << o.order_no;
      }
    }
    const std::string window = "from=0&to=" + std::to_string(NowMs() + 86'400'000);
    Reply ov = api.Get("/v1/analytics/overview?" + window);
    ASSERT_TRUE(HasStatus(ov, 200));
    EXPECT_EQ(ov.Int("/orders"), static_cast<int64_t>(acked.size() + unacked_found))
        << "the store holds orders nobody sent, or some twice";
    ExpectOverviewConsistent(ov.json);

    // Retrying what was never acknowledged is safe: the order exists once afterwards.
    for (const auto& o : unacked) {
      Reply p = api.Post("/v1/people", value{{"external_id", o.external_id}});
      EXPECT_TRUE(p.status == 200 || p.status == 201) << p.Describe();
      Reply r = api.Post("/v1/orders", Body(o));
      EXPECT_TRUE(r.status == 201 || r.status == 200) << o.order_no << ": " << r.Describe();
    }
    std::set<std::string> nos;
    int64_t paid = 0;
    for (const auto& item : AllPages(api, "/v1/orders", 500)) {
      EXPECT_TRUE(nos.insert(std::string(item.at("order_no").as_string())).second)
          << "order listed twice: " << item.at("order_no");
      paid += item.at("total_fen").as_int64();
    }
    std::set<std::string> sent;
    int64_t sent_paid = 0;
    for (const auto* list : {&acked, &unacked}) {
      for (const auto& o : *list) {
        if (sent.insert(o.order_no).second) sent_paid += o.total();
      }
    }
    EXPECT_EQ(nos, sent);
    ov = api.Get("/v1/analytics/overview?" + window);
    ASSERT_TRUE(HasStatus(ov, 200));
    EXPECT_EQ(ov.Int("/orders"), static_cast<int64_t>(sent.size()));
    EXPECT_EQ(ov.Int("/paid_fen"), sent_paid);
    EXPECT_EQ(paid, sent_paid);
  }

  int64_t paid_at_ = NowMs() - 3'600'000;
};

TEST_P(DurabilityTest, AcknowledgedOrdersSurviveSigkill) {
  std::mt19937 rng(std::random_device{}());
  auto kill_after = std::chrono::milliseconds(300 + rng() % 2400);
  std::cerr << "[          ] SIGKILL after " << kill_after.count() << " ms\n";
  auto logs = RunWriters(16, 3000ms, [&] {
    std::this_thread::sleep_for(kill_after);
    server_->Kill();
  });
  server_->Start();
  VerifyAfterRestart(logs);
}

TEST_P(DurabilityTest, GracefulShutdownDrainsAndKeepsWrites) {
  ExitInfo exit;
  auto logs = RunWriters(16, 3000ms, [&] {
    std::this_thread::sleep_for(1000ms);
    // Waits well past the server's own 30 s drain deadline, so that a slow drain shows up as
    // "took N ms" rather than as a kill.
    exit = server_->Stop(SIGTERM, 45s);
  });
  EXPECT_TRUE(exit.exited) << "siyu serve did not exit within 45 s of SIGTERM";
  EXPECT_EQ(exit.signal, 0);
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_LT(exit.elapsed, 5s) << "draining took " << exit.elapsed.count() << " ms";
  server_->Start();
  VerifyAfterRestart(logs);
}

// "Finish in-flight requests": requests the server has read when SIGTERM arrives are answered
// before it exits. Logins make reliably slow requests (argon2id takes tens of milliseconds), so
// they are certainly in flight when the signal lands.
TEST_P(DurabilityTest, GracefulShutdownAnswersInFlightRequests) {
  constexpr int kClients = 12;
  std::vector<Reply> replies(kClients);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < kClients; ++i) {
    ts.emplace_back([&, i] {
      Api api(port());
      Reply h = api.Get("/healthz");  // connect first, so only the login is left to send
      ready++;
      while (!go) std::this_thread::yield();
      replies[i] = h.status == 200 ? api.Post("/v1/auth/login", value{{"username", boot_.username},
                                                                      {"password", boot_.password}})
                                   : h;
    });
  }
  while (ready < kClients) std::this_thread::sleep_for(1ms);
  go = true;
  std::this_thread::sleep_for(15ms);
  ExitInfo exit = server_->Stop(SIGTERM, 45s);
  for (auto& t : ts) t.join();
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_LT(exit.elapsed, 5s) << "draining took " << exit.elapsed.count() << " ms";
  int answered = 0;
  for (const auto& r : replies) {
    if (r.status == 200 || (r.status == 503 && r.Code() == "SHUTTING_DOWN")) {
      ++answered;
    } else {
      ADD_FAILURE() << "an in-flight login got " << r.Describe();
    }
  }
  EXPECT_EQ(answered, kClients);
}

SIYU_BACKEND_SUITE(DurabilityTest);

}  // namespace
}  // namespace siyu::it
