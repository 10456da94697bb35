#include "server/http_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "common/metrics.h"
#include "common/threads.h"
#include "common/time.h"

namespace siyu::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

// A request id for a request that brings none: 16 base62 characters from a per-thread generator
// seeded by the OS. Ids correlate log lines; they are not secrets, so they need not cost a
// CSPRNG call per request.
std::string NewRequestId() {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seed{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seed);
  }();
  std::string id(16, '0');
  for (char& c : id) c = kAlphabet[rng() % 62];
  return id;
}

bool ValidRequestId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

}  // namespace

class Session;

// The most room a connection's read buffer gets for a request body (Session::OnHeader).
constexpr uint64_t kBodyReadBytes = 64 * 1024;

std::pair<int, int> ServerThreads(const ServerOptions& o, unsigned cores) {
  const int c = static_cast<int>(std::max(1u, cores));
  const int io = o.io_threads > 0 ? o.io_threads : std::max(1, c / 2);
  const int workers = o.worker_threads > 0 ? o.worker_threads : std::clamp(8 * c, 8, 64);
  return {io, workers};
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  ServerOptions opt;
  std::pair<int, int> threads;  // io threads, workers (ServerThreads); before `workers`
  Handler handler;
  ErrorRenderer errors;
  net::io_context ioc;
  // Keeps the io threads running during a stop while no socket operation is pending, so the
  // responses of in-flight requests can still be written.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  net::thread_pool workers;
  std::vector<std::thread> io_threads;
  std::atomic<bool> draining{false};
  std::atomic<int> inflight{0};
  std::atomic<int> connections{0};
  std::mutex sessions_mu;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::once_flag stop_once;
  uint16_t bound_port = 0;

  explicit Impl(ServerOptions o)
      : opt(std::move(o)),
        threads(ServerThreads(opt, std::thread::hardware_concurrency())),
        workers(threads.second) {}

  void Accept();
  HttpOut Run(HttpIn& in);
  void Log(const HttpIn& in, const HttpOut& out, double secs);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Impl> srv)
      : stream_(std::move(socket)), srv_(std::move(srv)) {}
  ~Session() {
    srv_->connections--;
    std::lock_guard<std::mutex> lock(srv_->sessions_mu);
    srv_->sessions.erase(this);
  }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

  // Called on the strand during a stop: drop the connection if it is waiting for a request.
  void CloseIfIdle() {
    if (reading_) {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      stream_.close();
    }
  }
  net::any_io_executor executor() { return stream_.get_executor(); }

 private:
  void ReadHeader() {
    if (srv_->draining) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(srv_->opt.max_header_bytes));
    parser_->body_limit(srv_->opt.max_body_bytes);
    stream_.expires_after(std::chrono::seconds(srv_->opt.read_timeout_seconds));
    reading_ = true;
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    reading_ = false;
    if (ec) return OnReadError(ec);
    // A read takes what the buffer has room for, and an empty buffer starts with a few hundred
    // bytes: a 40 KB batch came in ~40 reads. Room for the body (up to kBodyReadBytes) makes it
    // one or two; the room goes with the connection.
    if (auto length = parser_->content_length(); length && *length > buffer_.capacity()) {
      buffer_.reserve(
          static_cast<size_t>(std::min<uint64_t>(buffer_.size() + *length, kBodyReadBytes)));
    }
    auto& req = parser_->get();
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      net::async_write(stream_, net::buffer(*cont),
                       [self = shared_from_this(), cont](beast::error_code ec, size_t) {
                         if (ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    reading_ = true;
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof ||
        ec == net::error::bad_descriptor) {
      return Close();
    }
    if (ec == beast::error::timeout) {
      if (parser_ && parser_->got_some()) {
        return WriteError(Status(ErrorCode::kRequestTimeout,
                                 "the request was not received within " +
                                     std::to_string(srv_->opt.read_timeout_seconds) + " s"));
      }
      return Close();
    }
    if (ec == http::error::body_limit) {
      return WriteError(
          Status(ErrorCode::kBodyTooLarge, "request body is larger than " +
                                               std::to_string(srv_->opt.max_body_bytes) +
                                               " bytes; send smaller batches"));
    }
    if (ec == http::error::header_limit) {
      return WriteError(Status(ErrorCode::kHeadersTooLarge,
                               "request headers are larger than " +
                                   std::to_string(srv_->opt.max_header_bytes) + " bytes"));
    }
    WriteError(Status(ErrorCode::kBadRequest, "malformed HTTP request: " + ec.message()));
  }

  // Answers a request that could not be read (limits, timeouts, malformed HTTP) and closes.
  void WriteError(const Status& s) {
    HttpOut out = srv_->errors(s);
    out.route = "(http)";
    std::string request_id = NewRequestId();
    Metrics::Global().CountRequest(out.route, "OTHER", out.status, 0);
    if (srv_->opt.access_log) {
      spdlog::info(
          R"json({{"type":"access","rid":"{}","route":"(http)","status":{},"error":"{}"}})json",
          request_id, out.status, ErrorCodeName(s.code()));
    }
    srv_->inflight++;
    Write(std::move(out), request_id, false);
  }

  void OnRead(beast::error_code ec) {
    reading_ = false;
    if (ec) return OnReadError(ec);
    stream_.expires_never();
    auto req = parser_->release();
    auto in = std::make_shared<HttpIn>();
    in->method = std::string(req.method_string());
    in->target = std::string(req.target());
    in->body = std::move(req.body());
    in->authorization = std::string(req[http::field::authorization]);
    in->tenant = std::string(req["X-Siyu-Tenant"]);
    in->content_type = std::string(req[http::field::content_type]);
    std::string_view rid = req["X-Request-Id"];
    in->request_id = ValidRequestId(rid) ? std::string(rid) : NewRequestId();
    bool keep_alive = req.keep_alive();
    srv_->inflight++;
    net::post(srv_->workers, [self = shared_from_this(), in, keep_alive] {
      static thread_local bool named = [] {
        NameThisThread("siyu-http-w");
        return true;
      }();
      (void)named;
      HttpOut out = self->srv_->Run(*in);
      net::post(self->stream_.get_executor(),
                [self, out = std::move(out), rid = in->request_id, keep_alive]() mutable {
                  self->Write(std::move(out), rid, keep_alive);
                });
    });
  }

  void Write(HttpOut out, const std::string& request_id, bool keep_alive) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<http::status>(out.status));
    res_.set(http::field::server, "siyu");
    res_.set(http::field::content_type, out.content_type);
    res_.set("X-Request-Id", request_id);
    for (auto& [k, v] : out.headers) res_.set(k, v);
    res_.body() = std::move(out.body);
    res_.keep_alive(keep_alive && !srv_->draining);
    res_.prepare_payload();
    stream_.expires_after(std::chrono::seconds(srv_->opt.read_timeout_seconds));
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->srv_->inflight--;
      if (ec || !self->res_.keep_alive()) return self->Close();
      self->ReadHeader();
    });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::shared_ptr<HttpServer::Impl> srv_;
  bool reading_ = false;
};

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc),
                        [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
                          if (ec) {
                            if (ec == net::error::operation_aborted || !self->acceptor.is_open())
                              return;
                            spdlog::warn("accept: {}", ec.message());
                            return self->Accept();
                          }
                          if (self->draining || self->connections >= self->opt.max_connections) {
                            beast::error_code ignored;
                            socket.close(ignored);
                            return self->Accept();
                          }
                          socket.set_option(tcp::no_delay(true), ec);
                          self->connections++;
                          auto s = std::make_shared<Session>(std::move(socket), self);
                          {
                            std::lock_guard<std::mutex> lock(self->sessions_mu);
                            self->sessions.emplace(s.get(), s);
                          }
                          s->Start();
                          self->Accept();
                        });
}

HttpOut HttpServer::Impl::Run(HttpIn& in) {
  auto t0 = std::chrono::steady_clock::now();
  HttpOut out;
  try {
    out = handler(in);
  } catch (const std::exception& e) {
    spdlog::error("request {} {} {} failed: {}", in.request_id, in.method, in.target, e.what());
    out = errors(Internal("unexpected failure; the request id is " + in.request_id));
    out.route = "(error)";
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Clients choose the method string: keep the label set bounded.
  static constexpr std::string_view kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
  std::string_view method = "OTHER";
  for (auto m : kMethods) {
    if (in.method == m) method = m;
  }
  Metrics::Global().CountRequest(out.route, method, out.status, secs);
  if (opt.access_log) Log(in, out, secs);
  return out;
}

void HttpServer::Impl::Log(const HttpIn& in, const HttpOut& out, double secs) {
  std::string path = in.target.substr(0, in.target.find('?'));
  if (path.size() > 200) path.resize(200);
  for (char& c : path) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '_';
  }
  spdlog::info(
      R"({{"type":"access","rid":"{}","method":"{}","path":"{}","route":"{}","status":{},"ms":{:.3f},"bytes":{}}})",
      in.request_id, in.method.size() > 16 ? "?" : in.method, path, out.route, out.status,
      secs * 1000, out.body.size());
}

HttpServer::HttpServer(ServerOptions options, Handler handler, ErrorRenderer errors)
    : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->handler = std::move(handler);
  impl_->errors = std::move(errors);
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  beast::error_code ec;
  auto addr = net::ip::make_address(impl_->opt.host, ec);
  if (ec) return InvalidField("host", "cannot parse listen address " + impl_->opt.host);
  tcp::endpoint ep(addr, impl_->opt.port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(ErrorCode::kInvalidField,
                  "cannot listen on " + impl_->opt.host + ":" + std::to_string(impl_->opt.port) +
                      ": " + ec.message(),
                  "port");
  }
  impl_->bound_port = impl_->acceptor.local_endpoint().port();
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->Accept();
  spdlog::info("http: {} io threads, {} workers", impl_->threads.first, impl_->threads.second);
  for (int i = 0; i < impl_->threads.first; ++i) {
    impl_->io_threads.emplace_back([impl = impl_] {
      NameThisThread("siyu-http-io");
      impl->ioc.run();
    });
  }
  return Status::Ok();
}

uint16_t HttpServer::port() const { return impl_->bound_port; }

void HttpServer::Stop() {
  std::call_once(impl_->stop_once, [this] {
    auto& im = *impl_;
    im.draining = true;
    net::post(im.ioc, [impl = impl_] {
      beast::error_code ec;
      impl->acceptor.close(ec);
    });
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> lock(im.sessions_mu);
      for (auto& [p, w] : im.sessions) {
        if (auto s = w.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) net::post(s->executor(), [s] { s->CloseIfIdle(); });
    live.clear();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (im.inflight > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    im.workers.join();
    im.work.reset();
    im.ioc.stop();
    for (auto& t : im.io_threads) {
      if (t.joinable()) t.join();
    }
  });
}

}  // namespace siyu::server
