#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace siyu::it {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Our own client sockets are plain fds without CLOEXEC; a server forked while one is open must
// not inherit it (it would keep connections to a killed server half alive). Also the test may
// ignore SIGPIPE or block signals, and exec keeps both: give the child a clean slate.
void ChildReset() {
  if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
    for (int fd = 3; fd < 4096; ++fd) close(fd);
  }
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> v;
  for (auto& a : args) v.push_back(a.data());
  v.push_back(nullptr);
  return v;
}

[[noreturn]] void Fail(const std::string& what) { throw std::runtime_error(what); }

const bool kSigpipeIgnored = [] {
  // A server that resets a connection mid-write must fail our write, not kill the test binary.
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::mt19937_64& Rng() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return rng;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// postgres://user@host:port/db?opts with the database replaced.
std::string WithDatabase(const std::string& url, const std::string& db) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) Fail("SIYU_TEST_PG_URL is not a URL: " + url);
  size_t q = url.find('?', scheme + 3);
  std::string base = url.substr(0, q), query = q == std::string::npos ? "" : url.substr(q);
  size_t slash = base.find('/', scheme + 3);
  if (slash != std::string::npos) base.resize(slash);
  return base + "/" + db + query;
}

void Psql(const std::string& url, const std::string& sql) {
  auto r = RunCommand({"/usr/bin/env", "psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql});
  if (r.exit_code != 0) Fail("psql '" + sql + "' failed: " + r.err + r.out);
}

}  // namespace

// ---- processes ---------------------------------------------------------------------------------

CommandResult RunCommand(const std::vector<std::string>& argv_in) {
  std::vector<std::string> args = argv_in;
  auto argv = Argv(args);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) Fail("pipe failed");
  pid_t pid = fork();
  if (pid < 0) Fail("fork failed");
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    ChildReset();
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandResult res;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&res.out, &res.err};
  int open = 2;
  while (open > 0) {
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, n);
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  res.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return res;
}

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "sqlite" : "postgres";
}

TestStore::TestStore(Backend backend) : backend_(backend) {
  std::string tmpl = (fs::temp_directory_path() / "siyu-it-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) Fail("mkdtemp failed");
  work_dir_ = tmpl;
  if (backend == Backend::kPostgres) {
    const char* url = std::getenv("SIYU_TEST_PG_URL");
    if (!url || !*url) {
      Fail(
          "SIYU_TEST_PG_URL is not set: the PostgreSQL cases need a cluster (`make test` starts "
          "one; or run scripts/pg-cluster.sh start /tmp/siyu-pg 54329 and export "
          "SIYU_TEST_PG_URL=postgres://postgres@127.0.0.1:54329/postgres)");
    }
    pg_admin_url_ = url;
    pg_database_ = "siyu_it_" + RandomHex(12);
    Psql(pg_admin_url_, "CREATE DATABASE " + pg_database_);
    pg_url_ = WithDatabase(pg_admin_url_, pg_database_);
  }
}

TestStore::~TestStore() {
  if (!pg_database_.empty()) {
    try {
      // FORCE: a SIGKILLed server's backends may not have noticed yet.
      Psql(pg_admin_url_, "DROP DATABASE IF EXISTS " + pg_database_ + " WITH (FORCE)");
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
  std::error_code ec;
  fs::remove_all(work_dir_, ec);
}

std::vector<std::string> TestStore::StoreArgs() const {
  if (backend_ == Backend::kPostgres) return {"--store", pg_url_};
  return {"--data", work_dir_ + "/data"};
}

Credentials Bootstrap(const TestStore& store, const std::string& tenant,
                      const std::string& username, const std::string& password) {
  std::vector<std::string> argv = {SIYU_BINARY, "admin", "bootstrap"};
  for (const auto& a : store.StoreArgs()) argv.push_back(a);
  for (const auto& a : {"--tenant", tenant.c_str(), "--username", username.c_str(), "--password",
                        password.c_str(), "--json"}) {
    argv.emplace_back(a);
  }
  CommandResult r = RunCommand(argv);
  if (r.exit_code != 0) {
    Fail("siyu admin bootstrap exited " + std::to_string(r.exit_code) + ": " + r.err);
  }
  boost::system::error_code ec;
  json::value v = json::parse(r.out, ec);
  if (ec || !v.is_object()) Fail("siyu admin bootstrap --json printed non-JSON: " + r.out);
  Credentials c;
  try {
    c.tenant_id = v.at("tenant_id").as_int64();
    c.username = json::value_to<std::string>(v.at("username"));
    c.password = json::value_to<std::string>(v.at("password"));
    c.api_key = json::value_to<std::string>(v.at("api_key"));
  } catch (const std::exception& e) {
    Fail("siyu admin bootstrap --json lacks a field (" + std::string(e.what()) + "): " + r.out);
  }
  return c;
}

ServerProcess::ServerProcess(const TestStore& store, const std::vector<std::string>& extra_args)
    : port_file_(store.work_dir() + "/port"), log_file_(store.work_dir() + "/server.log") {
  args_ = {SIYU_BINARY, "serve"};
  for (const auto& a : store.StoreArgs()) args_.push_back(a);
  for (const auto& a : {"--port", "0", "--port-file"}) args_.emplace_back(a);
  args_.push_back(port_file_);
  for (const auto& a : extra_args) args_.push_back(a);
}

ServerProcess::~ServerProcess() {
  if (running()) Kill();
}

void ServerProcess::Start() {
  if (running()) Fail("server already running");
  std::error_code ec;
  fs::remove(port_file_, ec);
  std::vector<std::string> args = args_;
  auto argv = Argv(args);
  std::string header = "---- start " + std::to_string(++starts_) + " ----\n";
  { std::ofstream(log_file_, std::ios::app) << header; }
  pid_t pid = fork();
  if (pid < 0) Fail("fork failed");
  if (pid == 0) {
    int fd = open(log_file_.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    ChildReset();
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!fs::exists(port_file_)) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      Fail("siyu serve exited during start-up:\n" + LogTail());
    }
    if (std::chrono::steady_clock::now() > deadline) {
      Kill();
      Fail("siyu serve wrote no port file within 60 s:\n" + LogTail());
    }
    std::this_thread::sleep_for(10ms);
  }
  port_ = static_cast<uint16_t>(std::stoi(ReadFile(port_file_)));
  Reply r = Api(port_).Get("/healthz");
  if (r.status != 200) Fail("siyu serve is up but /healthz says " + r.Describe());
}

ExitInfo ServerProcess::Stop(int sig, std::chrono::milliseconds timeout) {
  ExitInfo info;
  if (!running()) Fail("server not running");
  auto t0 = std::chrono::steady_clock::now();
  kill(pid_, sig);
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      info.exited = true;
      if (WIFEXITED(st)) info.exit_code = WEXITSTATUS(st);
      if (WIFSIGNALED(st)) info.signal = WTERMSIG(st);
      break;
    }
    if (std::chrono::steady_clock::now() - t0 > timeout) {
      Kill();
      info.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      return info;
    }
    std::this_thread::sleep_for(2ms);
  }
  info.elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  pid_ = -1;
  return info;
}

void ServerProcess::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  int st = 0;
  while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string ServerProcess::LogTail(size_t lines) const {
  std::ifstream in(log_file_);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line.size() > 400 ? line.substr(0, 400) + "…" : line);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail) out += "  | " + l + "\n";
  return out;
}

// ---- HTTP --------------------------------------------------------------------------------------

std::string Reply::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return {};
}

std::string Reply::Code() const {
  auto* e = json.is_object() ? json.as_object().if_contains("error") : nullptr;
  if (!e || !e->is_object()) return {};
  auto* c = e->as_object().if_contains("code");
  return c && c->is_string() ? std::string(c->as_string()) : std::string();
}

std::string Reply::Field() const {
  auto* e = json.is_object() ? json.as_object().if_contains("error") : nullptr;
  if (!e || !e->is_object()) return {};
  auto* f = e->as_object().if_contains("field");
  return f && f->is_string() ? std::string(f->as_string()) : std::string();
}

const json::value& Reply::At(std::string_view pointer) const {
  boost::system::error_code ec;
  const json::value* v = json.find_pointer(pointer, ec);
  if (!v) Fail("response has no " + std::string(pointer) + ": " + Describe());
  return *v;
}

int64_t Reply::Int(std::string_view pointer) const {
  const json::value& v = At(pointer);
  if (!v.is_int64()) Fail(std::string(pointer) + " is not an integer: " + Describe());
  return v.as_int64();
}

std::string Reply::Str(std::string_view pointer) const {
  const json::value& v = At(pointer);
  if (!v.is_string()) Fail(std::string(pointer) + " is not a string: " + Describe());
  return std::string(v.as_string());
}

std::string Reply::Describe() const {
  if (status == 0) return "transport failure (" + transport_error + ")";
  std::string b = body.size() > 600 ? body.substr(0, 600) + "…" : body;
  return "HTTP " + std::to_string(status) + " " + b;
}

Api::Api(uint16_t port, std::string token, std::string tenant)
    : http_(std::make_unique<client::HttpClient>("127.0.0.1", port)) {
  if (!token.empty()) http_->SetHeader("Authorization", "Bearer " + token);
  if (!tenant.empty()) http_->SetHeader("X-Siyu-Tenant", tenant);
}

Reply Api::Get(const std::string& target) { return Send("GET", target, "", ""); }
Reply Api::Post(const std::string& target, const std::string& body) {
  return Send("POST", target, body);
}
Reply Api::Post(const std::string& target, const json::value& body) {
  return Send("POST", target, json::serialize(body));
}
Reply Api::Delete(const std::string& target) { return Send("DELETE", target, "", ""); }
Reply Api::Put(const std::string& target, const json::value& body) {
  return Send("PUT", target, json::serialize(body));
}

Reply Api::Send(const std::string& method, const std::string& target, const std::string& body,
                const std::string& content_type,
                const std::vector<std::pair<std::string, std::string>>& extra) {
  client::Response res = http_->Send(method, target, body, content_type, extra);
  Reply r;
  r.status = res.status;
  r.body = std::move(res.body);
  r.transport_error = std::move(res.error);
  r.headers = std::move(res.headers);
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (!ec) r.json = std::move(v);
  return r;
}

::testing::AssertionResult HasStatus(const Reply& r, int status) {
  if (r.status == status) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected HTTP " << status << ", got " << r.Describe();
}

::testing::AssertionResult IsError(const Reply& r, int status, std::string_view code,
                                   std::optional<std::string_view> field) {
  auto fail = [&]() {
    return ::testing::AssertionFailure()
           << "expected HTTP " << status << " " << code
           << (field ? " field '" + std::string(*field) + "'" : std::string()) << ", got "
           << r.Describe() << "\n  ";
  };
  if (r.status != status || r.Code() != code) return fail();
  if (field && r.Field() != *field) return fail() << "(wrong error.field)";
  const json::value* msg =
      r.json.is_object() ? r.json.at("error").as_object().if_contains("message") : nullptr;
  if (!msg || !msg->is_string() || msg->as_string().empty()) return fail() << "(no message)";
  if (r.Header("Content-Type").rfind("application/json", 0) != 0) {
    return fail() << "(content type " << r.Header("Content-Type") << ")";
  }
  if (r.Header("X-Request-Id").empty()) return fail() << "(no X-Request-Id)";
  return ::testing::AssertionSuccess();
}

std::vector<json::value> AllPages(Api& api, const std::string& path, int limit) {
  std::vector<json::value> out;
  std::optional<int64_t> after;
  std::set<int64_t> seen_cursors;
  char sep = path.find('?') == std::string::npos ? '?' : '&';
  for (int page = 0;; ++page) {
    std::string target = path + sep + "limit=" + std::to_string(limit);
    if (after) target += "&after=" + std::to_string(*after);
    Reply r = api.Get(target);
    if (r.status != 200) Fail("GET " + target + ": " + r.Describe());
    const auto& items = r.At("/items").as_array();
    if (items.size() > static_cast<size_t>(limit)) Fail("page larger than limit: " + target);
    for (const auto& it : items) out.push_back(it);
    const json::value& next = r.At("/next_after");
    if (next.is_null()) break;
    if (!next.is_int64() || items.empty()) Fail("bad next_after on " + target + ": " + r.body);
    if (!seen_cursors.insert(next.as_int64()).second) Fail("paging loops at " + target);
    if (after && next.as_int64() <= *after) Fail("next_after went backwards at " + target);
    after = next.as_int64();
    if (page > 100000) Fail("too many pages");
  }
  return out;
}

std::string RawExchange(uint16_t port, const std::string& bytes, bool half_close,
                        std::chrono::milliseconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    Fail("connect to 127.0.0.1:" + std::to_string(port) + " failed: " + strerror(errno));
  }
  std::thread sender([fd, &bytes, half_close] {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;  // the server gave up on us; what it answered is what we test
      }
      off += static_cast<size_t>(n);
    }
    if (half_close) shutdown(fd, SHUT_WR);
  });
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) break;
    char buf[8192];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, n);
  }
  // Unblock a sender stuck on a full socket buffer.
  shutdown(fd, SHUT_RDWR);
  sender.join();
  close(fd);
  return got;
}

int RawStatus(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.substr(9, 3).c_str());
}

std::string RawErrorCode(const std::string& response) {
  size_t p = response.find("\r\n\r\n");
  if (p == std::string::npos) return {};
  boost::system::error_code ec;
  json::value v = json::parse(response.substr(p + 4), ec);
  if (ec) return {};
  const json::value* c = v.find_pointer("/error/code", ec);
  return c && c->is_string() ? std::string(c->as_string()) : std::string();
}

// ---- data helpers ------------------------------------------------------------------------------

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t ShanghaiDayMs(int y, unsigned m, unsigned d) {
  // days_from_civil (H. Hinnant), independent of the server's tz database on purpose.
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = int64_t{era} * 146097 + static_cast<int64_t>(doe) - 719468;
  return days * 86'400'000 - 8 * 3'600'000;
}

std::string RandomHex(size_t n) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(kHex[Rng()() % 16]);
  return s;
}

namespace {
int64_t I(const json::value& o, std::string_view k) {
  const json::value* v = o.as_object().if_contains(k);
  if (!v || !v->is_int64()) Fail("overview lacks integer '" + std::string(k) + "'");
  return v->as_int64();
}
double D(const json::value& o, std::string_view k) {
  const json::value* v = o.as_object().if_contains(k);
  if (!v || !v->is_number()) Fail("overview lacks number '" + std::string(k) + "'");
  return v->to_number<double>();
}
}  // namespace

void ExpectOverviewConsistent(const json::value& ov) {
  SCOPED_TRACE("overview " + json::serialize(ov));
  const int64_t people = I(ov, "people"), buyers = I(ov, "buyers"), orders = I(ov, "orders");
  const int64_t paid = I(ov, "paid_fen"), refunded = I(ov, "refunded_fen"), gmv = I(ov, "gmv_fen");
  EXPECT_EQ(gmv, paid - refunded);
  EXPECT_LE(buyers, people);
  EXPECT_LE(buyers, orders);
  EXPECT_TRUE(orders > 0 || buyers == 0);

  const json::value& d = ov.at("decomposition");
  EXPECT_EQ(I(d, "people"), people);
  EXPECT_EQ(I(d, "gmv_fen"), gmv);
  const json::value &conv = d.at("conversion"), &aov = d.at("aov_fen"), &freq = d.at("frequency");
  EXPECT_EQ(I(conv, "num"), buyers);
  EXPECT_EQ(I(conv, "den"), people);
  EXPECT_EQ(I(aov, "num"), gmv);
  EXPECT_EQ(I(aov, "den"), orders);
  EXPECT_EQ(I(freq, "num"), orders);
  EXPECT_EQ(I(freq, "den"), buyers);
  // P·(B/P)·(G/O)·(O/B) = G, cross-multiplied so no division happens. A zero denominator
  // makes the product meaningless, so then every numerator downstream must be zero as well:
  // no people means no buyers, no buyers no orders, no orders no GMV.
  using i128 = __int128;
  i128 lhs = i128{people} * I(conv, "num") * I(aov, "num") * I(freq, "num");
  i128 rhs = i128{gmv} * I(conv, "den") * I(aov, "den") * I(freq, "den");
  EXPECT_TRUE(lhs == rhs) << "decomposition does not reconcile";
  if (I(conv, "den") == 0) {
    EXPECT_EQ(I(conv, "num"), 0);
  }
  if (I(aov, "den") == 0) {
    EXPECT_EQ(I(aov, "num"), 0);
  }
  if (I(freq, "den") == 0) {
    EXPECT_EQ(I(freq, "num"), 0);
  }
  auto ratio = [](int64_t n, int64_t d) { return d == 0 ? 0.0 : double(n) / double(d); };
  EXPECT_NEAR(D(ov, "conversion"), ratio(buyers, people), 1e-9);
  EXPECT_NEAR(D(ov, "aov_fen"), ratio(gmv, orders), 1e-6);
  EXPECT_NEAR(D(ov, "frequency"), ratio(orders, buyers), 1e-9);

  int64_t sp = 0, sb = 0, so = 0, sg = 0, spaid = 0, sref = 0;
  std::set<std::string> ids;
  for (const auto& row : ov.at("by_channel").as_array()) {
    sp += I(row, "people");
    sb += I(row, "buyers");
    so += I(row, "orders");
    sg += I(row, "gmv_fen");
    if (row.as_object().contains("paid_fen")) spaid += I(row, "paid_fen");
    if (row.as_object().contains("refunded_fen")) sref += I(row, "refunded_fen");
    EXPECT_TRUE(ids.insert(json::serialize(row.at("channel_id"))).second)
        << "channel listed twice: " << row.at("channel_id");
    const int64_t rb = I(row, "buyers"), rp = I(row, "people"), ro = I(row, "orders");
    EXPECT_NEAR(D(row, "conversion"), ratio(rb, rp), 1e-9);
    EXPECT_NEAR(D(row, "aov_fen"), ratio(I(row, "gmv_fen"), ro), 1e-6);
    EXPECT_NEAR(D(row, "frequency"), ratio(ro, rb), 1e-9);
  }
  EXPECT_EQ(sp, people) << "by_channel people do not sum to the total";
  EXPECT_EQ(sb, buyers) << "by_channel buyers do not sum to the total";
  EXPECT_EQ(so, orders) << "by_channel orders do not sum to the total";
  EXPECT_EQ(sg, gmv) << "by_channel gmv_fen does not sum to the total";
  if (spaid != 0 || sref != 0) {
    EXPECT_EQ(spaid, paid);
    EXPECT_EQ(sref, refunded);
  }
}

// ---- fixture -----------------------------------------------------------------------------------

void BackendTest::SetUp() {
  if (GetParam() == Backend::kPostgres && !std::getenv("SIYU_TEST_PG_URL")) {
    FAIL() << "SIYU_TEST_PG_URL is not set: the PostgreSQL cases need a cluster (`make test` "
              "starts one; or scripts/pg-cluster.sh start /tmp/siyu-pg 54329 and export "
              "SIYU_TEST_PG_URL=postgres://postgres@127.0.0.1:54329/postgres)";
  }
  store_ = std::make_unique<TestStore>(GetParam());
  boot_ = Bootstrap(*store_, "Brand A", "admin", "correct horse battery " + RandomHex(8));
  BeforeStart();
  server_ = std::make_unique<ServerProcess>(*store_, extra_server_args_);
  server_->Start();
}

void BackendTest::TearDown() {
  if (server_ && HasFailure()) {
    std::cerr << "server log (tail):\n" << server_->LogTail() << std::flush;
  }
  server_.reset();
  store_.reset();
}

}  // namespace siyu::it
