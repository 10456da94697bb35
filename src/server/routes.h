// The v1 API: every route is declared once, in the table in routes.cc, with its method, path
// pattern, who may call it and its handler. Dispatch() authenticates, checks the role, parses the
// query and the path parameters, runs the handler and renders errors; unknown paths outside /v1
// fall through to the console's static files.
#pragma once

#include <memory>
#include <string>

#include "domain/channels/channel_codes.h"
#include "domain/inbound/wechat_api.h"
#include "engine/engine.h"
#include "server/http_server.h"
#include "server/static_files.h"

namespace siyu::server {

class Api {
 public:
  // `wechat_api_base`: where calls to WeChat go (siyu serve --wechat-api-base).
  Api(engine::Engine& engine, const StaticFiles* console,
      std::string wechat_api_base = std::string(domain::kDefaultWechatApiBase));
  HttpOut Dispatch(const HttpIn& in);
  static HttpOut Error(const Status& s);

 private:
  engine::Engine& engine_;
  const StaticFiles* console_;
  // Channel codes call WeChat with tokens cached for the process's lifetime.
  std::unique_ptr<domain::WechatApi> wechat_api_;
  std::unique_ptr<domain::ChannelCodes> codes_;
};

}  // namespace siyu::server
