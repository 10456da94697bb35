// The web console's built files (console/dist), loaded into memory at start-up and served for
// GET requests outside /v1. Unknown paths get index.html so the console's router can handle them.
// Immutable after Load(); thread-safe to read.
#pragma once

#include <map>
#include <string>

#include "common/status.h"

namespace siyu::server {

class StaticFiles {
 public:
  struct File {
    std::string body;
    std::string content_type;
  };
  // Loads every file under `dir`. Fails if `dir` has no index.html.
  static StatusOr<StaticFiles> Load(const std::string& dir);
  // The file for a request path ("/assets/x.js"), or index.html.
  const File& Find(std::string_view path) const;
  size_t size() const { return files_.size(); }

 private:
  std::map<std::string, File, std::less<>> files_;
};

}  // namespace siyu::server
