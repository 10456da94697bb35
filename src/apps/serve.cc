#include <spdlog/spdlog.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "apps/commands.h"
#include "common/crypto.h"
#include "common/json.h"
#include "engine/engine.h"
#include "server/routes.h"

namespace siyu::apps {

std::string ResolveConsoleDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("SIYU_CONSOLE_DIR")) return env;
  return SIYU_SOURCE_DIR "/console/dist";
}

void BlockStopSignals(sigset_t* set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
  pthread_sigmask(SIG_BLOCK, set, nullptr);
}

struct Server::Impl {
  std::unique_ptr<engine::Engine> engine;
  std::optional<server::StaticFiles> console;
  std::unique_ptr<server::Api> api;
  std::unique_ptr<server::HttpServer> http;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Stop(); }
engine::Engine& Server::engine() { return *impl_->engine; }
uint16_t Server::port() const { return impl_->http->port(); }

void Server::Stop() {
  impl_->http->Stop();
  impl_->engine->Shutdown();
}

StatusOr<std::unique_ptr<Server>> Server::Start(const ServeConfig& cfg) {
  auto im = std::make_unique<Impl>();
  auto engine = engine::Engine::Open(cfg.store, cfg.wechat_api_base, cfg.identity);
  if (!engine.ok()) {
    return Status(engine.status().code(), "cannot open the store: " + engine.status().message());
  }
  im->engine = std::move(engine).value();
  auto console = server::StaticFiles::Load(ResolveConsoleDir(cfg.console_dir));
  if (console.ok()) {
    im->console = std::move(console).value();
  } else {
    spdlog::warn("console not served: {}", console.status().message());
  }
  im->api = std::make_unique<server::Api>(*im->engine, im->console ? &*im->console : nullptr,
                                          cfg.wechat_api_base);
  im->http = std::make_unique<server::HttpServer>(
      cfg.http, [api = im->api.get()](const server::HttpIn& in) { return api->Dispatch(in); },
      &server::Api::Error);
  Status s = im->http->Start();
  if (!s.ok()) {
    im->engine->Shutdown();
    return s;
  }
  return std::unique_ptr<Server>(new Server(std::move(im)));
}

int Serve(const ServeConfig& cfg) {
  // Block the stop signals before any thread starts, then wait for them on this thread.
  sigset_t set;
  BlockStopSignals(&set);
  auto srv = Server::Start(cfg);
  if (!srv.ok()) {
    std::cerr << "siyu: " << srv.status().message() << "\n";
    return 1;
  }
  if (!cfg.port_file.empty()) {
    std::string tmp = cfg.port_file + ".tmp";
    std::ofstream(tmp) << (*srv)->port() << "\n";
    std::filesystem::rename(tmp, cfg.port_file);
  }
  spdlog::info("siyu listening on http://{}:{} (store: {})", cfg.http.host, (*srv)->port(),
               (*srv)->engine().store().name());
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("siyu: signal {} received; draining", sig);
  (*srv)->Stop();
  spdlog::info("siyu: stopped");
  return 0;
}

int Verify(const store::Options& store, const domain::IdentityOptions& identity) {
  auto start = std::chrono::steady_clock::now();
  auto engine = engine::Engine::Open(store, std::string(domain::kDefaultWechatApiBase), identity,
                                     /*ingest=*/false);
  if (!engine.ok()) {
    std::cerr << "siyu: cannot open the store: " << engine.status().ToString() << "\n";
    return 1;
  }
  Status s = (*engine)->identity().Verify(std::nullopt);
  json::object o;
  o["ok"] = s.ok();
  if (!s.ok()) o["error"] = s.message();
  // The audience: each tenant's engine built from the store, every segment and tag against the
  // same question asked of the store in SQL.
  json::array audiences;
  bool audience_ok = true;
  for (const auto& st : (*engine)->identity().Stats()) {
    json::object a;
    a["tenant_id"] = st.tenant_id;
    auto r = (*engine)->audience().CheckAgainstStore(st.tenant_id);
    if (!r.ok()) {
      a["ok"] = false;
      a["error"] = r.status().message();
      audience_ok = false;
    } else {
      a["ok"] = r->ok;
      a["people"] = r->people;
      json::array diffs;
      for (const auto& d : r->differences) diffs.emplace_back(d);
      a["differences"] = std::move(diffs);
      a["seconds"] = r->seconds;
      audience_ok = audience_ok && r->ok;
    }
    audiences.emplace_back(std::move(a));
  }
  o["audience"] = std::move(audiences);
  o["ok"] = s.ok() && audience_ok;
  json::array tenants;
  for (const auto& st : (*engine)->identity().Stats()) {
    json::object t;
    t["tenant_id"] = st.tenant_id;
    t["people"] = st.graph.people;
    t["ids"] = st.graph.ids;
    t["persons"] = st.graph.components;
    t["active_merges"] = st.graph.active_merges;
    t["log_entries"] = st.graph.log_events;
    t["pending_quarantines"] = st.graph.pending_quarantines;
    t["graph_bytes"] = st.graph.bytes_total();
    tenants.emplace_back(std::move(t));
  }
  o["tenants"] = std::move(tenants);
  o["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << ToJson(o) << "\n";
  (*engine)->Shutdown();
  return s.ok() && audience_ok ? 0 : 1;
}

int Bootstrap(const store::Options& store, const std::string& tenant, const std::string& username,
              std::string password, bool json) {
  auto engine = engine::Engine::Open(store, std::string(domain::kDefaultWechatApiBase), {},
                                     /*ingest=*/false);
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
    json::object o;
    o["tenant_id"] = tn->id;
    o["username"] = username;
    o["password"] = password;
    o["api_key"] = key->plaintext;
    std::cout << ToJson(o) << "\n";
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
