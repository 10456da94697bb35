// The embedded SQLite backend: one database file in a data directory, WAL journal, foreign keys on,
// a busy timeout. Every commit is durable (its WAL frames fsynced) before Write() returns; the
// sync runs on a thread of its own while the writer goes on, and a background thread checkpoints.
#pragma once

#include <memory>

#include "store/store.h"

namespace siyu::store {

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const Options& options, std::string dir);

}  // namespace siyu::store
