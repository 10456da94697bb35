#include <fstream>
#include <iostream>
#include <sstream>

#include "api/csv_import.h"
#include "apps/commands.h"
#include "common/json.h"
#include "engine/engine.h"

namespace siyu::apps {

int Import(const ImportConfig& cfg) {
  std::ifstream f(cfg.file, std::ios::binary);
  if (!f) {
    std::cerr << "siyu import: cannot read " << cfg.file << "\n";
    return 1;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  api::ImportOptions opt;
  for (const auto& m : cfg.mappings) {
    size_t eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      std::cerr << "siyu import: --map takes field=column, e.g. --map external_id=手机号\n";
      return 2;
    }
    opt.mapping[m.substr(0, eq)] = m.substr(eq + 1);
  }
  opt.progress = [&](int64_t done, int64_t total) {
    std::cerr << "\rimporting " << cfg.kind << ": " << done << "/" << total << std::flush;
    if (done == total) std::cerr << "\n";
  };
  auto engine = engine::Engine::Open(cfg.store, std::string(domain::kDefaultWechatApiBase), {},
                                     /*ingest=*/false);
  if (!engine.ok()) {
    std::cerr << "siyu import: cannot open the store: " << engine.status().ToString() << "\n";
    return 1;
  }
  // On SQLite, new person rows are numbered by whoever holds the event log (the server numbers
  // them in memory before writing them): the import takes the log, and refuses to run beside a
  // server that holds it.
  if (std::string dir = store::SqliteDataDir(cfg.store); !dir.empty()) {
    Status opened = (*engine)->events().OpenLog(dir + "/events");
    if (!opened.ok()) {
      std::cerr << "siyu import: " << opened.message()
                << "\nA siyu server is running on this data directory: import through it "
                   "(POST /v1/imports/people or /v1/imports/orders, or the console's import "
                   "page), or stop it first.\n";
      return 1;
    }
  }
  if (!(*engine)->tenancy().GetTenant(cfg.tenant_id).ok()) {
    std::cerr << "siyu import: no tenant " << cfg.tenant_id << "\n";
    return 1;
  }
  StatusOr<api::ImportSummary> sum =
      cfg.kind == "people"   ? api::ImportPeople((*engine)->people(), cfg.tenant_id, ss.str(), opt)
      : cfg.kind == "orders" ? api::ImportOrders((*engine)->orders(), cfg.tenant_id, ss.str(), opt)
                             : api::ImportTags((*engine)->audience(), (*engine)->people(),
                                               cfg.tenant_id, ss.str(), opt);
  (*engine)->Shutdown();
  if (!sum.ok()) {
    std::cerr << "siyu import: " << sum.status().message() << "\n";
    return 1;
  }
  std::cout << cfg.kind << ": " << sum->rows << " read, " << sum->created << " created, "
            << sum->updated << " updated, " << sum->unchanged << " unchanged, " << sum->failed
            << " failed\n";
  size_t shown = 0;
  for (const auto& e : sum->errors) {
    if (++shown > 50) {
      std::cout << "… " << sum->errors.size() - 50 << " more errors"
                << (cfg.errors_file.empty() ? " (use --errors FILE for all)" : "") << "\n";
      break;
    }
    std::cout << "  line " << e.line << ": " << e.code << (e.field.empty() ? "" : " " + e.field)
              << ": " << e.message << "\n";
  }
  if (!cfg.errors_file.empty()) {
    std::ofstream out(cfg.errors_file);
    for (const auto& e : sum->errors) {
      json::object o;
      o["line"] = e.line;
      o["code"] = e.code;
      o["field"] = e.field;
      o["message"] = e.message;
      out << ToJson(o) << "\n";
    }
  }
  return sum->failed == 0 && sum->errors.empty() ? 0 : 3;
}

}  // namespace siyu::apps
