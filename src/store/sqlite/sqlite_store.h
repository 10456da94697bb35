// The embedded SQLite backend: one database file in a data directory, WAL journal, synchronous
// FULL (every commit is fsynced before Write() returns), foreign keys on, a busy timeout.
#pragma once

#include <memory>

#include "store/store.h"

namespace siyu::store {

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const Options& options, std::string dir);

}  // namespace siyu::store
