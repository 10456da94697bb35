#include <spdlog/spdlog.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "apps/commands.h"
#include "common/crypto.h"
#include "engine/engine.h"
#include "server/routes.h"

namespace siyu::apps {

std::string ResolveConsoleDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("SIYU_CONSOLE_DIR")) return env;
  return SIYU_SOURCE_DIR "/console/dist";
}

namespace {
void BlockSignals(sigset_t* set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  pthread_sigmask(SIG_BLOCK, set, nullptr);
}
}  // namespace

int Serve(const ServeConfig& cfg) {
  // Block the stop signals before any thread starts, then wait for them on this thread.
  sigset_t set;
  BlockSignals(&set);
  auto engine = engine::Engine::Open(cfg.store);
  if (!engine.ok()) {
    std::cerr << "siyu: cannot open the store: " << engine.status().ToString() << "\n";
    return 1;
  }
  std::string console_dir = ResolveConsoleDir(cfg.console_dir);
  auto console = server::StaticFiles::Load(console_dir);
  if (!console.ok()) {
    spdlog::warn("console not served: {}", console.status().message());
  }
  server::Api api(**engine, console.ok() ? &*console : nullptr);
  server::HttpServer http(
      cfg.http, [&api](const server::HttpIn& in) { return api.Dispatch(in); }, &server::Api::Error);
  Status s = http.Start();
  if (!s.ok()) {
    std::cerr << "siyu: " << s.ToString() << "\n";
    return 1;
  }
  if (!cfg.port_file.empty()) {
    std::string tmp = cfg.port_file + ".tmp";
    std::ofstream(tmp) << http.port() << "\n";
    std::filesystem::rename(tmp, cfg.port_file);
  }
  spdlog::info("siyu listening on http://{}:{} (store: {})", cfg.http.host, http.port(),
               (*engine)->store().name());
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("siyu: signal {} received; draining", sig);
  http.Stop();
  (*engine)->Shutdown();
  spdlog::info("siyu: stopped");
  return 0;
}

int Bootstrap(const store::Options& store, const std::string& tenant, const std::string& username,
              std::string password, bool json) {
  auto engine = engine::Engine::Open(store);
  if (!engine.ok()) {
    std::cerr << "siyu: cannot open the store: " << engine.status().ToString() << "\n";
    return 1;
  }
  auto& t = (*engine)->tenancy();
  if (password.empty()) password = RandomBase62(16);
  auto op = t.CreateOperator(username, password, true);
  if (!op.ok()) {
    std::cerr << "siyu: " << op.status().ToString() << "\n";
    return 1;
  }
  auto tn = t.CreateTenant(tenant, op->id);
  if (!tn.ok()) {
    std::cerr << "siyu: " << tn.status().ToString() << "\n";
    return 1;
  }
  auto key = t.CreateKey(tn->id, "bootstrap admin key", domain::Role::kAdmin);
  if (!key.ok()) {
    std::cerr << "siyu: " << key.status().ToString() << "\n";
    return 1;
  }
  if (json) {
    std::cout << "{\"tenant_id\":" << tn->id << ",\"username\":\"" << username
              << "\",\"password\":\"" << password << "\",\"api_key\":\"" << key->plaintext
              << "\"}\n";
  } else {
    std::cout << "tenant:   " << tn->name << " (id " << tn->id << ")\n"
              << "username: " << username << "\n"
              << "password: " << password << "\n"
              << "api key:  " << key->plaintext << "   (shown once; store it safely)\n";
  }
  (*engine)->Shutdown();
  return 0;
}

}  // namespace siyu::apps
