// Entry points of the `siyu` subcommands, one file each, wired up in main.cc.
#pragma once

#include <cstdint>
#include <string>

#include "server/http_server.h"
#include "store/store.h"

namespace siyu::apps {

struct ServeConfig {
  store::Options store;
  server::ServerOptions http;
  std::string console_dir;  // empty: the built-in default locations
  std::string port_file;    // written with the bound port once listening
};

// `siyu serve`: runs until SIGTERM/SIGINT, then drains and commits. Returns the exit code.
int Serve(const ServeConfig& cfg);

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
  std::string data_dir;  // SQLite data dir (temp if empty)
};
// `siyu bench <workload>`.
int Bench(const BenchConfig& cfg);

// Finds the console build: --console, $SIYU_CONSOLE_DIR, or console/dist next to the source tree.
std::string ResolveConsoleDir(const std::string& flag);

}  // namespace siyu::apps
