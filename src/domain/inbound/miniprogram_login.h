// Mini-program login (小程序登录). The mini-program sends the code of wx.login; siyu exchanges it
// at WeChat (jscode2session) with the tenant's app id and secret, finds or creates the person
// behind `openid:<appid>:<openid>` (with `unionid:<unionid>` attached to the same person when
// WeChat returns one) and hands the client an opaque session token `mps_…`. The session_key
// WeChat returns stays in mp_sessions and is never sent anywhere; it later decrypts the user data
// the client forwards (getPhoneNumber), whose phone is linked to the session's person.
//
// Ids that already belong to *different* people are not merged: the first id's person answers and
// the result says the link is pending (the identity graph decides merges). Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/outbound_http.h"
#include "common/status.h"
#include "domain/events/events.h"
#include "domain/inbound/wechat_inbound.h"
#include "store/store.h"

namespace siyu::domain {

inline constexpr std::string_view kDefaultWechatApiBase = "https://api.weixin.qq.com";
// A session lasts as long as WeChat is likely to keep its session_key; then the client logs in.
inline constexpr int64_t kMiniProgramSessionTtlMs = int64_t{7} * 24 * 3600 * 1000;

struct MiniProgramLoginResult {
  int64_t person_id = 0;
  std::string openid;
  std::optional<std::string> unionid;
  std::string session;  // "mps_<random>", shown once
  LinkState link = LinkState::kLinked;
};

struct MiniProgramPhoneInput {
  std::string session;
  std::string encrypted_data;
  std::string iv;
};

struct MiniProgramPhoneResult {
  int64_t person_id = 0;
  std::string phone;  // canonical "phone:+<cc><number>"
  LinkState link = LinkState::kLinked;
};

class MiniProgramLogin {
 public:
  // `api_base`: WeChat's API origin without a trailing slash (tests point it at a stand-in).
  MiniProgramLogin(store::Store& store, Identity& identity, WechatInbound& apps,
                   std::string api_base)
      : store_(store), identity_(identity), apps_(apps), api_base_(std::move(api_base)) {}

  // WECHAT_* codes for WeChat's errcodes, UPSTREAM_UNAVAILABLE when WeChat cannot be reached,
  // NOT_FOUND when the tenant has no mini_program app.
  StatusOr<MiniProgramLoginResult> Login(int64_t tenant_id, const std::string& js_code);
  // NOT_FOUND (field "session") for an unknown or expired session; BAD_RECEIVE_ID when the data
  // was sealed for another app; DECRYPT_FAILED for a stale session key.
  StatusOr<MiniProgramPhoneResult> LinkPhone(int64_t tenant_id, const MiniProgramPhoneInput& in);

 private:
  store::Store& store_;
  Identity& identity_;
  WechatInbound& apps_;
  std::string api_base_;
  OutboundHttp http_;
};

}  // namespace siyu::domain
