// Calls to WeChat's server APIs with a tenant's app (domain/wechat/server_api.h has the formats).
// An access token is fetched with the app's secret and cached per tenant and app (and secret:
// a new secret gets a new token) until shortly before it expires. A token WeChat calls invalid or
// expired (40001, 40014, 42001) is dropped, fetched again, and the call made once more.
//
// Everything goes through the one OutboundHttp client to `api_base`: by default WeChat's origins
// (WeCom calls to qyapi.weixin.qq.com, the others to api.weixin.qq.com); with
// `siyu serve --wechat-api-base URL` (a local stand-in) every call goes to URL, told apart by
// path. Secrets and tokens travel only in URLs, which are never logged. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/outbound_http.h"
#include "common/status.h"
#include "domain/inbound/wechat_inbound.h"

namespace siyu::domain {

class WechatApi {
 public:
  // `api_base`: WeChat's API origin without a trailing slash (miniprogram_login.h's default).
  explicit WechatApi(std::string api_base);

  // POSTs `body` (JSON) to `path` (e.g. "/cgi-bin/qrcode/create") with the app's access token and
  // returns WeChat's answer for the caller to parse. WECHAT_NOT_CONFIGURED when the app has no
  // secret; token errors as server_api.h's FaultStatus; a status other than 200 is
  // WECHAT_API_ERROR; UPSTREAM_UNAVAILABLE when WeChat cannot be reached.
  StatusOr<HttpResponse> PostJson(int64_t tenant_id, const WechatApp& app, std::string_view path,
                                  const std::string& body);

  // GETs an image WeChat hosts (a contact way's qr_code). Only https URLs on WeChat's hosts
  // (*.qq.com, *.qpic.cn) are fetched — or, with a stand-in, URLs under the API base — so that
  // siyu cannot be pointed at other servers. WECHAT_API_ERROR when the answer is not an image.
  StatusOr<HttpResponse> FetchImage(const std::string& url);

 private:
  struct CachedToken {
    std::mutex mu;  // held while fetching, so concurrent calls fetch once
    std::string value;
    int64_t expires_at = 0;
  };

  std::string Origin(std::string_view app_kind) const;
  // A valid token; `stale` (a token WeChat refused) is never returned again.
  StatusOr<std::string> Token(int64_t tenant_id, const WechatApp& app, const std::string& stale);
  StatusOr<HttpResponse> Post(const WechatApp& app, std::string_view path, const std::string& token,
                              const std::string& body);

  std::string api_base_;
  bool stand_in_ = false;  // api_base_ is not WeChat's own origin
  OutboundHttp http_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<CachedToken>> tokens_;
};

}  // namespace siyu::domain
