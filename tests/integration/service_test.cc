// The service routes and headers: /healthz, /metrics, X-Request-Id.
#include <cstring>
#include <set>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;
using namespace std::chrono_literals;

class ServiceTest : public BackendTest {};

TEST_P(ServiceTest, Healthz) {
  Reply r = Api(port()).Get("/healthz");
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Header("Content-Type").rfind("application/json", 0), 0u);
  EXPECT_EQ(r.json, value({{"status", "ok"},
                           {"store", GetParam() == Backend::kSqlite ? "sqlite" : "postgres"}}));
  // Public: credentials are not needed, and bad ones do not matter.
  EXPECT_TRUE(HasStatus(Api(port(), "siyu_1_nonsense").Get("/healthz"), 200));
}

TEST_P(ServiceTest, Metrics) {
  Api admin = AdminApi();
  ASSERT_TRUE(HasStatus(
      admin.Post("/v1/channels",
                 value{{"name", "m"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}}),
      201));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(HasStatus(admin.Get("/healthz"), 200));
  EXPECT_TRUE(IsError(admin.Get("/v1/channels/424242"), 404, "NOT_FOUND"));

  Reply m = Api(port()).Get("/metrics");
  ASSERT_TRUE(HasStatus(m, 200));
  EXPECT_EQ(m.Header("Content-Type").rfind("text/plain", 0), 0u) << m.Header("Content-Type");
  for (const char* needle :
       {"# TYPE siyu_http_requests_total counter", "siyu_http_requests_total{",
        "# TYPE siyu_store_commit_duration_seconds histogram",
        "siyu_store_commit_duration_seconds_bucket{le=\"+Inf\"}",
        "siyu_store_commit_duration_seconds_count", "siyu_http_request_duration_seconds_bucket{",
        "siyu_store_commit_batch_size_count",
        "siyu_http_requests_total{route=\"/v1/channels\",method=\"POST\",status=\"201\"} 1",
        "siyu_http_requests_total{route=\"/v1/channels/{id}\",method=\"GET\",status=\"404\"} 1"}) {
    EXPECT_NE(m.body.find(needle), std::string::npos) << "missing " << needle << " in\n" << m.body;
  }
  // SQLite deployments keep events in the event log, and say how big it and its indexes are.
  const bool log = m.body.find("# TYPE siyu_eventlog_records gauge") != std::string::npos;
  EXPECT_EQ(log, GetParam() == Backend::kSqlite) << m.body;
  // Counters count: three health checks (and the one at start-up) at least.
  size_t at =
      m.body.find("siyu_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} ");
  ASSERT_NE(at, std::string::npos);
  long n = std::stol(m.body.substr(m.body.find("} ", at) + 2));
  EXPECT_GE(n, 4);
  // The commit histogram saw our write.
  at = m.body.find("siyu_store_commit_duration_seconds_count ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GE(std::stol(m.body.substr(at + strlen("siyu_store_commit_duration_seconds_count "))), 1);
}

TEST_P(ServiceTest, RequestIdEchoedOrGenerated) {
  Api admin = AdminApi();
  // Echoed when sent, on successes and on errors alike.
  Reply r = admin.Send("GET", "/v1/channels", "", "", {{"X-Request-Id", "it-req-0001"}});
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Header("X-Request-Id"), "it-req-0001");
  r = admin.Send("GET", "/v1/nope", "", "", {{"X-Request-Id", "it-req-0002"}});
  EXPECT_TRUE(IsError(r, 404, "ROUTE_NOT_FOUND"));
  EXPECT_EQ(r.Header("X-Request-Id"), "it-req-0002");
  r = Api(port()).Send("GET", "/v1/channels", "", "", {{"X-Request-Id", "it-req-0003"}});
  EXPECT_TRUE(IsError(r, 401, "UNAUTHENTICATED"));
  EXPECT_EQ(r.Header("X-Request-Id"), "it-req-0003");

  // Generated when absent: present, and different for each request.
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    Reply g = admin.Get("/healthz");
    ASSERT_TRUE(HasStatus(g, 200));
    std::string id = g.Header("X-Request-Id");
    EXPECT_FALSE(id.empty());
    EXPECT_TRUE(ids.insert(id).second) << "request id reused: " << id;
  }
  // Not echoed verbatim when it is unsafe to log; a fresh one is generated instead.
  for (const std::string& bad : {std::string(200, 'x'), std::string("has space"),
                                 std::string("quote\"d"), std::string("new\\nline")}) {
    Reply g = admin.Send("GET", "/healthz", "", "", {{"X-Request-Id", bad}});
    ASSERT_TRUE(HasStatus(g, 200));
    EXPECT_NE(g.Header("X-Request-Id"), bad);
    EXPECT_FALSE(g.Header("X-Request-Id").empty());
  }
  // Errors found before routing (HTTP-level limits) carry one too.
  r = admin.Send("GET", "/healthz", "", "", {{"X-Padding", std::string(20000, 'p')}});
  EXPECT_TRUE(IsError(r, 431, "HEADERS_TOO_LARGE"));
  std::string raw = RawExchange(port(), "GARBAGE\r\n\r\n", false, 5s);
  EXPECT_NE(raw.find("X-Request-Id: "), std::string::npos) << raw;
}

TEST_P(ServiceTest, HttpTokensAreCaseInsensitive) {
  // RFC 9110 §8.3.1: media type names are case-insensitive; §11.1: so is the auth scheme.
  Api admin = AdminApi();
  for (const std::string ct :
       {"application/json", "Application/JSON", "APPLICATION/JSON",
        "application/json; charset=UTF-8", "Application/Json;charset=utf-8"}) {
    Reply r = admin.Send("POST", "/v1/people", R"({"external_id":"unionid:ct"})", ct);
    EXPECT_TRUE(r.status == 201 || r.status == 200)
        << "Content-Type: " << ct << " → " << r.Describe();
  }
  for (const std::string scheme : {"Bearer", "bearer", "BEARER", "bEaReR"}) {
    Reply r = Api(port()).Send("GET", "/v1/channels", "", "",
                               {{"Authorization", scheme + " " + boot_.api_key}});
    EXPECT_TRUE(HasStatus(r, 200)) << "Authorization scheme " << scheme;
  }
}

SIYU_BACKEND_SUITE(ServiceTest);

}  // namespace
}  // namespace siyu::it
