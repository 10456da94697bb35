// siyu: one binary for the server, the demo, benchmarks and administration.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#ifdef SIYU_MIMALLOC
#include <mimalloc.h>
#endif

#include "apps/commands.h"

int main(int argc, char** argv) {
  using namespace siyu;
#ifdef SIYU_MIMALLOC
  // The allocator's memory in 2 MiB pages where the kernel can (transparent huge pages, also when
  // THP is "madvise"), unless MIMALLOC_LARGE_OS_PAGES says otherwise. Ingest touches the
  // deduplication set, the audience's rows and the work owed to the store at random over
  // gigabytes; with 4 KiB pages each of those reads is also a TLB miss, dearer still under
  // virtualisation. Over 60 s of `siyu bench ingest` it took CPU per event from 10.9-11.1 to
  // 10.1-10.6 µs.
  if (std::getenv("MIMALLOC_LARGE_OS_PAGES") == nullptr) mi_option_enable(mi_option_large_os_pages);
#endif
  // Logs (including the access log) go to stderr; stdout carries command output only.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("siyu"));
  CLI::App app{"siyu — private-domain commerce engine for the WeChat ecosystem"};
  app.require_subcommand(1);

  std::string data = "./siyu-data", store_url;
  auto add_store = [&](CLI::App* cmd) {
    cmd->add_option("--data", data, "data directory of the embedded SQLite store");
    cmd->add_option("--store", store_url, "postgres://… to use PostgreSQL instead");
  };
  auto store_options = [&] {
    store::Options o;
    o.url = store_url.empty() ? data : store_url;
    return o;
  };

  apps::ServeConfig serve;
  auto add_http = [&](CLI::App* cmd, apps::ServeConfig& cfg) {
    cmd->add_option("--host", cfg.http.host, "listen address")->capture_default_str();
    cmd->add_option("--port", cfg.http.port, "listen port (0: any free port)")
        ->capture_default_str();
    cmd->add_option("--workers", cfg.http.worker_threads,
                    "handler threads (0: eight per core, between 8 and 64)")
        ->capture_default_str();
    cmd->add_option("--io-threads", cfg.http.io_threads, "network threads (0: one per two cores)")
        ->capture_default_str();
    cmd->add_option("--console", cfg.console_dir, "directory of the built console");
    cmd->add_option("--port-file", cfg.port_file, "write the bound port to this file");
    cmd->add_option("--wechat-api-base", cfg.wechat_api_base,
                    "origin of WeChat's API (tests point it at a stand-in)")
        ->capture_default_str();
    cmd->add_flag("!--no-access-log", cfg.http.access_log, "do not log each request");
    cmd->add_option("--max-people-per-id", cfg.identity.max_people_per_id,
                    "identity guard: a link through an id tying more people than this is "
                    "quarantined for review (0: no guard)")
        ->capture_default_str();
  };

  auto* serve_cmd = app.add_subcommand("serve", "run the HTTP API and the web console");
  add_store(serve_cmd);
  add_http(serve_cmd, serve);

  apps::DemoConfig demo;
  demo.serve.http.port = 8080;
  auto* demo_cmd = app.add_subcommand("demo", "serve a demo brand (loaded through the API)");
  add_store(demo_cmd);
  add_http(demo_cmd, demo.serve);
  demo_cmd->add_option("--people", demo.people, "people in the demo brand")->capture_default_str();

  apps::BenchConfig bench;
  auto* bench_cmd = app.add_subcommand("bench", "benchmarks with peers side by side");
  bench_cmd
      ->add_option("workload", bench.workload,
                   "orders | ingest | identity | audience | segment-live")
      ->required();
  // `siyu bench identity --people N --ids M …` and `siyu bench audience --people N --sql-people M
  // …` pass their own flags through.
  bench_cmd->allow_extras();
  bench_cmd->add_option("--pg", bench.pg_url, "PostgreSQL URL for the side-by-side run");
  auto* bench_clients = bench_cmd->add_option("--clients", bench.clients,
                                              "concurrent HTTP clients (ingest: default 16)");
  bench_clients->capture_default_str();
  bench_cmd->add_option("--seconds", bench.seconds, "duration of each run")->capture_default_str();
  bench_cmd->add_option("--data", bench.data_dir, "SQLite data directory (default: temporary)");

  apps::ImportConfig import;
  auto* import_cmd =
      app.add_subcommand("import", "import people, orders or tag members from a CSV file");
  add_store(import_cmd);
  import_cmd->add_option("kind", import.kind, "people | orders | tags")
      ->required()
      ->check(CLI::IsMember({"people", "orders", "tags"}));
  import_cmd->add_option("file", import.file, "CSV file with a header row")->required();
  import_cmd->add_option("--tenant", import.tenant_id, "tenant id")->required();
  import_cmd->add_option("--map", import.mappings, "field=column, e.g. external_id=手机号");
  import_cmd->add_option("--errors", import.errors_file, "write every row error as JSON lines");

  auto* admin = app.add_subcommand("admin", "administration");
  admin->require_subcommand(1);
  std::string tenant = "My Brand", username = "admin", password;
  bool as_json = false;
  auto* boot = admin->add_subcommand("bootstrap", "create the first tenant, admin and API key");
  add_store(boot);
  boot->add_option("--tenant", tenant, "tenant (brand) name")->capture_default_str();
  boot->add_option("--username", username, "admin username")->capture_default_str();
  boot->add_option("--password", password, "admin password (default: generated)");
  boot->add_flag("--json", as_json, "print the result as JSON");

  domain::IdentityOptions verify_identity;
  auto* verify = admin->add_subcommand(
      "verify",
      "check the identity graphs and the audience engines rebuilt from the store against "
      "the store (people.canonical_id, every segment and tag in SQL)");
  add_store(verify);
  verify
      ->add_option("--max-people-per-id", verify_identity.max_people_per_id,
                   "the guard the server runs with")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (*serve_cmd) {
    serve.store = store_options();
    return apps::Serve(serve);
  }
  if (*demo_cmd) {
    if (data == "./siyu-data") data = "./demo-data";
    demo.serve.store = store_options();
    demo.data_dir = data;
    return apps::Demo(demo);
  }
  if (*bench_cmd) {
    // Each workload has its own default client count: the ingest target is stated for 16.
    if (bench.workload == "ingest" && bench_clients->count() == 0) bench.clients = 16;
    bench.extra = bench_cmd->remaining();
    return apps::Bench(bench);
  }
  if (*import_cmd) {
    import.store = store_options();
    return apps::Import(import);
  }
  if (*verify) return apps::Verify(store_options(), verify_identity);
  if (*boot) return apps::Bootstrap(store_options(), tenant, username, password, as_json);
  return 2;
}
