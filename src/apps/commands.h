// Entry points of the `siyu` subcommands, one file each, wired up in main.cc.
#pragma once

#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "domain/people/identity.h"
#include "server/http_server.h"
#include "store/store.h"

namespace siyu::engine {
class Engine;
}

namespace siyu::apps {

struct ServeConfig {
  store::Options store;
  server::ServerOptions http;
  std::string console_dir;  // empty: the built-in default locations
  std::string port_file;    // written with the bound port once listening
  std::string wechat_api_base = "https://api.weixin.qq.com";  // WeChat's API origin
  domain::IdentityOptions identity;
};

// `siyu admin verify`: rebuilds every tenant's identity graph from the store twice over and checks
// them, their invariants and people.canonical_id; builds every tenant's audience engine from the
// store and checks each segment's and tag's members against the store's SQL answer. Prints a JSON
// summary; 0 when all agree. (A running server's live engine: POST /v1/audience/verify.)
int Verify(const store::Options& store, const domain::IdentityOptions& identity);

// `siyu serve`: runs until SIGTERM/SIGINT, then drains and commits. Returns the exit code.
int Serve(const ServeConfig& cfg);

// The engine, the API and the HTTP listener exactly as `siyu serve` runs them, so that `siyu demo`
// and `siyu bench` exercise the real server in-process. Stop() (or destruction) drains the
// listener, then commits and closes the store.
class Server {
 public:
  // A failure to listen carries field "port".
  static StatusOr<std::unique_ptr<Server>> Start(const ServeConfig& cfg);
  ~Server();
  engine::Engine& engine();
  uint16_t port() const;
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread it starts afterwards,
// so that they can be taken with sigwait(*set). Call before starting any thread.
void BlockStopSignals(sigset_t* set);

struct BootstrapResult {
  int64_t tenant_id = 0;
  std::string username;
  std::string password;
  std::string api_key;
};
// `siyu admin bootstrap`: first tenant, superuser admin, admin API key.
int Bootstrap(const store::Options& store, const std::string& tenant, const std::string& username,
              std::string password, bool json);

struct DemoConfig {
  ServeConfig serve;
  std::string data_dir;  // holds demo-credentials.json, also when the store is PostgreSQL
  int people = 3000;
  int days = 30;
  uint64_t seed = 20261123;
};
// `siyu demo`: serve with a demo brand, loaded through the public API on first start.
int Demo(const DemoConfig& cfg);

struct BenchConfig {
  std::string workload;  // "orders"
  std::string pg_url;    // PostgreSQL for the side-by-side run; empty: skip
  int clients = 32;
  int seconds = 10;
  std::string data_dir;            // SQLite data dir (temp if empty)
  std::vector<std::string> extra;  // further arguments, passed to the identity benchmark
};
// `siyu bench <workload>`.
int Bench(const BenchConfig& cfg);

struct ImportConfig {
  store::Options store;
  std::string kind;  // "people" | "orders"
  std::string file;
  int64_t tenant_id = 0;
  std::vector<std::string> mappings;  // field=column
  std::string errors_file;            // every row error as JSON lines
};
// `siyu import people|orders FILE`: exit 0 when every row imported, 3 when some rows failed.
int Import(const ImportConfig& cfg);

// Finds the console build: --console, $SIYU_CONSOLE_DIR, or console/dist next to the source tree.
std::string ResolveConsoleDir(const std::string& flag);

}  // namespace siyu::apps
