// WeChat callbacks into siyu facts. A brand configures its WeCom corp and its official account
// (token and EncodingAESKey from their admin consoles); WeChat then calls
// /v1/wechat/{kind}/{tenant}/callback. Each callback is verified (signature before decryption),
// decrypted, parsed, and turned into standard events — contact_added, contact_removed,
// group_joined, group_left, follow, unfollow, qr_scanned — for the person behind the WeCom
// external_userid or the official-account openid, attributed to the channel whose `state` (WeCom
// contact way) or QR scene it carries.
//
// Exactly once: an event's id is derived from WeChat's dedup key for the callback (for WeCom
// customer events UserID + ExternalUserID + ChangeType + CreateTime), so WeChat's retries are
// acknowledged duplicates of the stored event. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/events/events.h"
#include "store/store.h"

namespace siyu::domain {

inline constexpr std::string_view kWeCom = "wecom";
inline constexpr std::string_view kOfficialAccount = "official_account";
// Configured like the others but never calls back: siyu calls it (see miniprogram_login.h).
inline constexpr std::string_view kMiniProgram = "mini_program";

struct WechatApp {
  std::string kind;    // "wecom" | "official_account" | "mini_program"
  std::string app_id;  // corp id / official account app id (the receiveid) / mini-program app id
  std::string token;   // callback apps only (empty for mini_program)
  std::string encoding_aes_key;  // callback apps only (empty for mini_program)
  // The secret of calls to WeChat's APIs: a mini-program's AppSecret (required: jscode2session),
  // an official account's AppSecret or WeCom's Customer Contact secret (optional: channel codes).
  std::optional<std::string> secret;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct CallbackQuery {
  std::string msg_signature;
  std::string signature;  // official account plain mode
  std::string timestamp;
  std::string nonce;
  std::string echostr;
  std::string encrypt_type;  // official account: "aes" in safe mode
};

struct CallbackOutcome {
  std::string event_kind;  // what WeChat reported, e.g. "add_external_contact"
  int64_t accepted = 0;
  int64_t duplicates = 0;
  int64_t rejected = 0;
};

class WechatInbound {
 public:
  WechatInbound(store::Store& store, Events& events) : store_(store), events_(events) {}

  // Creates or replaces the tenant's app of `kind`; the key is checked before it is stored.
  StatusOr<WechatApp> PutApp(int64_t tenant_id, const WechatApp& app);
  StatusOr<std::vector<WechatApp>> ListApps(int64_t tenant_id);
  // The tenant's app of `kind` (any kind), NOT_FOUND when it is not configured.
  StatusOr<WechatApp> App(int64_t tenant_id, std::string_view kind);

  // URL verification (GET): the text to echo.
  StatusOr<std::string> VerifyUrl(int64_t tenant_id, std::string_view kind, const CallbackQuery& q);
  // A callback (POST): verified, decrypted and stored as events before this returns.
  StatusOr<CallbackOutcome> Handle(int64_t tenant_id, std::string_view kind, const CallbackQuery& q,
                                   std::string_view body);

 private:
  StatusOr<bool> StateExists(int64_t tenant_id, const std::string& state);

  store::Store& store_;
  Events& events_;
};

}  // namespace siyu::domain
