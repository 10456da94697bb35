// The PostgreSQL backend (libpq). Same schema and SQL as SQLite; `?` placeholders are rewritten to
// `$n`, statements are prepared once per connection. Migrations run under an advisory lock so
// several siyu nodes may start against one database.
#pragma once

#include <memory>

#include "store/store.h"

namespace siyu::store {

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const Options& options);

}  // namespace siyu::store
