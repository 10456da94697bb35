// The integration-test harness: real `siyu` processes on a fresh store (SQLite in a temp dir or a
// fresh PostgreSQL database), spoken to over real HTTP. Helpers throw std::runtime_error on
// infrastructure failures so that a broken harness fails the test loudly instead of skipping it.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/http_client.h"

namespace siyu::it {

namespace json = boost::json;

// ---- processes ---------------------------------------------------------------------------------

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string out;
  std::string err;
};
// Runs argv[0] (a path) to completion, capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv);

// A fresh, empty store for one test, removed afterwards.
enum class Backend { kSqlite, kPostgres };
std::string BackendName(const ::testing::TestParamInfo<Backend>& info);
inline void PrintTo(Backend b, std::ostream* os) {
  *os << (b == Backend::kSqlite ? "sqlite" : "postgres");
}

class TestStore {
 public:
  explicit TestStore(Backend backend);
  ~TestStore();
  TestStore(const TestStore&) = delete;
  TestStore& operator=(const TestStore&) = delete;

  Backend backend() const { return backend_; }
  // The `siyu` flags naming this store: {"--data", dir} or {"--store", url}.
  std::vector<std::string> StoreArgs() const;
  // A scratch directory for logs and port files (exists for both backends).
  const std::string& work_dir() const { return work_dir_; }

 private:
  Backend backend_;
  std::string work_dir_;
  std::string pg_admin_url_;
  std::string pg_database_;
  std::string pg_url_;
};

struct Credentials {
  int64_t tenant_id = 0;
  std::string username;
  std::string password;
  std::string api_key;
};
// `siyu admin bootstrap … --json` as a subprocess.
Credentials Bootstrap(const TestStore& store, const std::string& tenant,
                      const std::string& username, const std::string& password);

struct ExitInfo {
  bool exited = false;  // false: still running after the timeout (then SIGKILLed)
  int exit_code = -1;   // when it exited normally
  int signal = 0;       // when a signal ended it
  std::chrono::milliseconds elapsed{0};
};

// `siyu serve` on port 0 with --port-file; restartable on the same store.
class ServerProcess {
 public:
  // `extra_args` are appended to the `siyu serve` command line.
  explicit ServerProcess(const TestStore& store, const std::vector<std::string>& extra_args = {});
  ~ServerProcess();  // SIGKILLs a running server

  void Start();  // returns once the port file exists and /healthz answers
  ExitInfo Stop(int signal, std::chrono::milliseconds timeout);
  void Kill();  // SIGKILL and reap
  bool running() const { return pid_ > 0; }
  uint16_t port() const { return port_; }
  std::string LogTail(size_t lines = 40) const;

 private:
  std::vector<std::string> args_;
  std::string port_file_;
  std::string log_file_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int starts_ = 0;
};

// ---- HTTP --------------------------------------------------------------------------------------

struct Reply {
  int status = 0;  // 0: transport failure
  std::string body;
  std::string transport_error;
  std::vector<std::pair<std::string, std::string>> headers;
  json::value json;  // null when the body is not JSON

  std::string Header(std::string_view name) const;
  std::string Code() const;   // error.code, or ""
  std::string Field() const;  // error.field, or ""
  // RFC 6901 pointer into the JSON body; throws (with the body) when absent.
  const json::value& At(std::string_view pointer) const;
  int64_t Int(std::string_view pointer) const;
  std::string Str(std::string_view pointer) const;
  std::string Describe() const;
};

// One keep-alive connection with fixed credentials. One per thread.
class Api {
 public:
  explicit Api(uint16_t port, std::string token = {}, std::string tenant = {});
  Reply Get(const std::string& target);
  Reply Post(const std::string& target, const std::string& body);
  Reply Post(const std::string& target, const json::value& body);
  // A literal is raw body text, not a JSON string value.
  Reply Post(const std::string& target, const char* body) {
    return Post(target, std::string(body));
  }
  Reply Delete(const std::string& target);
  Reply Put(const std::string& target, const json::value& body);
  Reply Send(const std::string& method, const std::string& target, const std::string& body,
             const std::string& content_type = "application/json",
             const std::vector<std::pair<std::string, std::string>>& extra = {});

 private:
  std::unique_ptr<client::HttpClient> http_;
};

::testing::AssertionResult HasStatus(const Reply& r, int status);
// A documented error: status, error.code, error.field (when given; "" means "no field"),
// a message, a JSON content type and a request id.
::testing::AssertionResult IsError(const Reply& r, int status, std::string_view code,
                                   std::optional<std::string_view> field = std::nullopt);

// Every item of a paged list (`items` + `next_after`), checking the paging contract on the way.
std::vector<json::value> AllPages(Api& api, const std::string& path, int limit);

// Raw bytes on a fresh connection: sent from a helper thread (so a server that answers before
// reading everything cannot deadlock us), then everything received until the server closes or
// `timeout` passes.
std::string RawExchange(uint16_t port, const std::string& bytes, bool half_close,
                        std::chrono::milliseconds timeout);
// Status code of a raw HTTP response ("HTTP/1.1 413 …"), 0 when there is none.
int RawStatus(const std::string& response);
// error.code of a raw HTTP response's JSON body, or "".
std::string RawErrorCode(const std::string& response);

// ---- data helpers ------------------------------------------------------------------------------

int64_t NowMs();
// Local midnight in Asia/Shanghai (UTC+8 all year since 1991) as UTC milliseconds.
int64_t ShanghaiDayMs(int y, unsigned m, unsigned d);
std::string RandomHex(size_t n);
// Checks the overview's internal arithmetic: decomposition integers reconcile, floats agree with
// them, and by_channel rows sum to the totals.
void ExpectOverviewConsistent(const json::value& ov);

// The fixture of every backend-parameterized test: a fresh store, bootstrapped tenant "Brand A"
// (superuser `admin`), and a running server.
class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Runs after the first bootstrap, before the server starts.
  virtual void BeforeStart() {}

  uint16_t port() const { return server_->port(); }
  Api AdminApi() const { return Api(port(), boot_.api_key); }

  std::unique_ptr<TestStore> store_;
  std::unique_ptr<ServerProcess> server_;
  Credentials boot_;
  std::vector<std::string> extra_server_args_;  // set in BeforeStart() to pass more flags
};

#define SIYU_BACKEND_SUITE(Suite)                                                      \
  INSTANTIATE_TEST_SUITE_P(                                                            \
      Backends, Suite,                                                                 \
      ::testing::Values(::siyu::it::Backend::kSqlite, ::siyu::it::Backend::kPostgres), \
      ::siyu::it::BackendName)

}  // namespace siyu::it
