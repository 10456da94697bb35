// The v1 API: every route is declared once, in the table in routes.cc, with its method, path
// pattern, who may call it and its handler. Dispatch() authenticates, checks the role, parses the
// query and the path parameters, runs the handler and renders errors; unknown paths outside /v1
// fall through to the console's static files.
#pragma once

#include <memory>
#include <string>

#include "engine/engine.h"
#include "server/http_server.h"
#include "server/static_files.h"

namespace siyu::server {

class Api {
 public:
  Api(engine::Engine& engine, const StaticFiles* console);
  HttpOut Dispatch(const HttpIn& in);
  static HttpOut Error(const Status& s);

 private:
  engine::Engine& engine_;
  const StaticFiles* console_;
};

}  // namespace siyu::server
