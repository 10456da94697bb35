#include "server/static_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace siyu::server {

namespace {
std::string ContentType(const std::string& ext) {
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".woff") return "font/woff";
  if (ext == ".ttf") return "font/ttf";
  return "application/octet-stream";
}
}  // namespace

StatusOr<StaticFiles> StaticFiles::Load(const std::string& dir) {
  namespace fs = std::filesystem;
  StaticFiles out;
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "index.html", ec)) {
    return InvalidField("console", "no console build in " + dir +
                                       " (index.html missing); run 'make console' or pass "
                                       "--console DIR");
  }
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::ifstream f(it->path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string rel = "/" + fs::relative(it->path(), dir).generic_string();
    out.files_[rel] = File{ss.str(), ContentType(it->path().extension().string())};
  }
  return out;
}

const StaticFiles::File& StaticFiles::Find(std::string_view path) const {
  auto it = files_.find(path);
  if (it == files_.end()) it = files_.find("/index.html");
  return it->second;
}

}  // namespace siyu::server
