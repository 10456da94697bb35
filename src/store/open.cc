#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"

namespace siyu::store {

StatusOr<std::unique_ptr<Store>> Store::Open(const Options& options) {
  std::string_view url = options.url;
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    return OpenPostgresStore(options);
  }
  if (url.starts_with("sqlite:")) url.remove_prefix(7);
  if (url.empty()) return InvalidField("store", "store URL is empty");
  return OpenSqliteStore(options, std::string(url));
}

std::string SqliteDataDir(const Options& options) {
  std::string_view url = options.url;
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) return {};
  if (url.starts_with("sqlite:")) url.remove_prefix(7);
  return std::string(url);
}

}  // namespace siyu::store
