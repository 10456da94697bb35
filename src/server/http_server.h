// The HTTP/1.1 listener (Boost.Beast). I/O is asynchronous on a few io threads, one strand per
// connection; each parsed request is handed to a pool of worker threads, where the handler may
// block (a store write waits for its group commit), and the response is written back on the
// connection's strand. Keep-alive, limits on header size, body size and read time, and a
// graceful stop: stop accepting, close idle connections, finish in-flight requests.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace siyu::server {

struct HttpIn {
  std::string method;
  std::string target;
  std::string body;
  std::string authorization;
  std::string tenant;  // X-Siyu-Tenant
  std::string content_type;
  std::string request_id;
};

struct HttpOut {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string route;  // route pattern, for metrics and logs
  std::vector<std::pair<std::string, std::string>> headers;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port
  // 0: sized to the machine (ServerThreads). Handlers block (on group commits), so workers are
  // several per core; past that, more of them only add switching and cold caches.
  int io_threads = 0;      // 0: one per two cores
  int worker_threads = 0;  // 0: eight per core, between 8 and 64
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  int read_timeout_seconds = 30;
  int max_connections = 10000;
  bool access_log = true;
};

// The io and worker thread counts `o` asks for, with 0 resolved for `cores` cores.
std::pair<int, int> ServerThreads(const ServerOptions& o, unsigned cores);

class HttpServer {
 public:
  using Handler = std::function<HttpOut(const HttpIn&)>;
  // Renders an error (limits, timeouts, shutdown) the same way handlers do.
  using ErrorRenderer = std::function<HttpOut(const Status&)>;

  HttpServer(ServerOptions options, Handler handler, ErrorRenderer errors);
  ~HttpServer();

  // Binds and starts serving; port() is known afterwards.
  Status Start();
  uint16_t port() const;
  // Graceful stop; returns when in-flight requests are answered. Idempotent.
  void Stop();

  struct Impl;  // shared with the connection sessions

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace siyu::server
