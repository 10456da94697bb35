#include "domain/inbound/wechat_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "common/crypto.h"
#include "common/time.h"
#include "domain/wechat/miniprogram.h"
#include "domain/wechat/server_api.h"

namespace siyu::domain {

namespace {

wechat::Platform PlatformOf(std::string_view app_kind) {
  return app_kind == kWeCom ? wechat::Platform::kWeCom : wechat::Platform::kWeixin;
}

// Tokens last expires_in seconds (7200); stop using one five minutes early so that a call never
// races its expiry, but keep short-lived tokens for half their life.
int64_t UsableMs(int64_t expires_in) {
  int64_t s = expires_in > 600 ? expires_in - 300 : expires_in / 2;
  return std::max<int64_t>(s, 1) * 1000;
}

// The host of an absolute http(s) URL, lower-cased; "" when there is none.
std::string HostOf(std::string_view url, std::string_view scheme) {
  if (!url.starts_with(scheme)) return {};
  std::string_view rest = url.substr(scheme.size());
  std::string host(rest.substr(0, rest.find_first_of("/?#")));
  if (host.find('@') != std::string::npos || host.find(':') != std::string::npos) return {};
  for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return host;
}

}  // namespace

WechatApi::WechatApi(std::string api_base) : api_base_(std::move(api_base)) {
  while (api_base_.ends_with('/')) api_base_.pop_back();
  stand_in_ = api_base_ != wechat::kWeixinOrigin;
}

std::string WechatApi::Origin(std::string_view app_kind) const {
  if (stand_in_) return api_base_;
  return std::string(PlatformOf(app_kind) == wechat::Platform::kWeCom ? wechat::kWeComOrigin
                                                                      : wechat::kWeixinOrigin);
}

StatusOr<std::string> WechatApi::Token(int64_t tenant_id, const WechatApp& app,
                                       const std::string& stale) {
  const std::string secret = app.secret.value_or("");
  if (secret.empty()) {
    return Status(
        ErrorCode::kWechatNotConfigured,
        "the " + app.kind + " app has no secret; add it with PUT /v1/wechat/apps/" + app.kind);
  }
  // The secret's hash is in the key: a tenant that changes its secret gets a token for it.
  const std::string key =
      std::to_string(tenant_id) + "|" + app.kind + "|" + app.app_id + "|" + Sha256Hex(secret);
  std::shared_ptr<CachedToken> entry;
  {
    std::lock_guard lock(mu_);
    auto& slot = tokens_[key];
    if (!slot) slot = std::make_shared<CachedToken>();
    entry = slot;
  }
  std::lock_guard lock(entry->mu);
  if (!entry->value.empty() && entry->value != stale && NowMs() < entry->expires_at) {
    return entry->value;
  }
  entry->value.clear();
  const std::string url =
      Origin(app.kind) + wechat::AccessTokenPath(PlatformOf(app.kind), app.app_id, secret);
  ASSIGN_OR_RETURN(HttpResponse resp, http_.Get(url));
  if (resp.status != 200) {
    return Status(ErrorCode::kWechatApiError,
                  "gettoken answered HTTP " + std::to_string(resp.status) + "; retry later");
  }
  ASSIGN_OR_RETURN(wechat::AccessToken t, wechat::ParseAccessToken(resp.body, app.kind));
  entry->value = t.token;
  entry->expires_at = NowMs() + UsableMs(t.expires_in);
  return entry->value;
}

StatusOr<HttpResponse> WechatApi::Post(const WechatApp& app, std::string_view path,
                                       const std::string& token, const std::string& body) {
  const std::string url =
      Origin(app.kind) + std::string(path) + "?access_token=" + wechat::PercentEncode(token);
  ASSIGN_OR_RETURN(HttpResponse resp, http_.PostJson(url, body));
  if (resp.status != 200) {
    return Status(ErrorCode::kWechatApiError, std::string(path) + " answered HTTP " +
                                                  std::to_string(resp.status) + "; retry later");
  }
  return resp;
}

StatusOr<HttpResponse> WechatApi::PostJson(int64_t tenant_id, const WechatApp& app,
                                           std::string_view path, const std::string& body) {
  ASSIGN_OR_RETURN(std::string token, Token(tenant_id, app, ""));
  ASSIGN_OR_RETURN(HttpResponse resp, Post(app, path, token, body));
  auto fault = wechat::FaultOf(resp.body);
  if (!fault || !wechat::IsTokenFault(fault->errcode)) return resp;
  // WeChat dropped the token early (another client fetched one with the same secret, or it was
  // reset): fetch a new one and try once more; a second refusal is the caller's to report.
  spdlog::info("wechat: {} refused the {} access token (errcode {}); fetching a new one", path,
               app.kind, fault->errcode);
  ASSIGN_OR_RETURN(token, Token(tenant_id, app, token));
  return Post(app, path, token, body);
}

StatusOr<HttpResponse> WechatApi::FetchImage(const std::string& url) {
  std::string host = HostOf(url, "https://");
  bool allowed = host.ends_with(".qq.com") || host.ends_with(".qpic.cn");
  if (stand_in_ && url.starts_with(api_base_ + "/")) allowed = true;
  if (!allowed) {
    return Status(ErrorCode::kWechatApiError,
                  "the QR image URL WeChat gave is not on WeChat's hosts; open it from qr_code");
  }
  ASSIGN_OR_RETURN(HttpResponse resp, http_.Get(url));
  if (resp.status != 200 || wechat::ImageMime(resp.body).empty()) {
    return Status(ErrorCode::kWechatApiError, "WeChat's QR image could not be fetched (HTTP " +
                                                  std::to_string(resp.status) +
                                                  "); retry later, or open it from qr_code");
  }
  resp.content_type = std::string(wechat::ImageMime(resp.body));
  return resp;
}

}  // namespace siyu::domain
