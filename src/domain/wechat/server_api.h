// WeChat's server APIs that siyu calls with an access token: fetching the token, and the calls
// that make channel codes — a WeCom contact way (联系我), an official-account permanent parametric
// QR code, a mini-program code. Request paths and bodies, the answers parsed, and WeChat's errcodes
// mapped to siyu's codes with a message that says what to do. Pure functions that do no I/O (the
// caller owns the HTTP client and the token cache); thread-safe.
//
// Paths are relative to the API origin: https://qyapi.weixin.qq.com for WeCom,
// https://api.weixin.qq.com for official accounts and mini-programs. A token path carries the
// app's secret and a call's path its access token: never log them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace siyu::wechat {

enum class Platform {
  kWeCom,   // qyapi.weixin.qq.com: corp id + corp secret
  kWeixin,  // api.weixin.qq.com: official accounts and mini-programs, app id + AppSecret
};

inline constexpr std::string_view kWeComOrigin = "https://qyapi.weixin.qq.com";
inline constexpr std::string_view kWeixinOrigin = "https://api.weixin.qq.com";

// GET path of the access token: WeCom `/cgi-bin/gettoken?corpid=&corpsecret=`, otherwise
// `/cgi-bin/token?grant_type=client_credential&appid=&secret=` (values percent-encoded).
std::string AccessTokenPath(Platform p, std::string_view app_id, std::string_view secret);

struct AccessToken {
  std::string token;
  int64_t expires_in = 0;  // seconds
};

// The token answer. A non-zero errcode becomes FaultStatus(…, `app_kind`); a body without
// access_token is WECHAT_API_ERROR.
StatusOr<AccessToken> ParseAccessToken(std::string_view body, std::string_view app_kind);

// An answer of the form {"errcode": n ≠ 0, "errmsg": "…"}.
struct ApiFault {
  int64_t errcode = 0;
  std::string errmsg;
};
// nullopt when `body` is not a JSON object or its errcode is absent or 0.
std::optional<ApiFault> FaultOf(std::string_view body);

// 40001, 40014, 42001: the access token is invalid or expired. The caller fetches a new token
// and calls once more.
bool IsTokenFault(int64_t errcode);

// The Status for `api`'s fault, for an app of `app_kind` ("wecom", "official_account",
// "mini_program"; it names the configuration route in messages):
// - bad app id or secret (40001, 40013, 40125, 41002, 41004, 40243; a token refused again
//   after a refetch): WECHAT_SECRET_REJECTED;
// - the server's IP is not in the app's whitelist (40164, 60020): WECHAT_IP_NOT_ALLOWED;
// - the API is not open to the app or its secret (48001, 48002, 48004, 60011):
//   WECHAT_NO_PERMISSION;
// - quota or frequency limits (45009, 45011, 45033): WECHAT_RATE_LIMITED;
// - WeCom members that cannot take a contact way (40003, 41054, 40098, 60111, 84074):
//   WECHAT_INVALID_USERS, field `users`;
// - a mini-program page that is not published (41030, 40159): WECHAT_INVALID_PAGE, field `page`;
// - anything else, -1 (busy) included: WECHAT_API_ERROR.
// Messages read "<api> errcode <n>: <errmsg>; <what to do>".
Status FaultStatus(std::string_view api, const ApiFault& fault, std::string_view app_kind);

// ---- WeCom contact way (externalcontact/add_contact_way, update_contact_way) ------------------

inline constexpr std::string_view kAddContactWayPath = "/cgi-bin/externalcontact/add_contact_way";
inline constexpr std::string_view kUpdateContactWayPath =
    "/cgi-bin/externalcontact/update_contact_way";

struct ContactWayRequest {
  int type = 1;                    // 1: one member (单人), 2: several (多人)
  std::string state;               // ≤ 30 characters, returned in add_external_contact callbacks
  std::vector<std::string> users;  // WeCom member user ids
  bool skip_verify = true;         // add without the member confirming
  std::string remark;              // ≤ 30 characters, shown in WeCom's admin console
};

// scene 2 (a QR code). The remark is cut to 30 characters.
std::string AddContactWayBody(const ContactWayRequest& r);
// The type is WeCom's at creation and cannot change; it is not sent.
std::string UpdateContactWayBody(std::string_view config_id, const ContactWayRequest& r);

struct ContactWay {
  std::string config_id;  // the only handle to edit or delete the contact way later
  std::string qr_code;    // URL of the QR image WeChat hosts
};
StatusOr<ContactWay> ParseAddContactWay(std::string_view body);
Status ParseUpdateContactWay(std::string_view body);

// ---- Official account parametric QR code (cgi-bin/qrcode/create) ------------------------------

inline constexpr std::string_view kQrcodeCreatePath = "/cgi-bin/qrcode/create";

// QR_LIMIT_STR_SCENE: permanent, with scene_str (1–64 characters). A follow through it calls
// back with EventKey `qrscene_<scene_str>`, a scan by a follower with EventKey `<scene_str>`.
std::string PermanentQrcodeBody(std::string_view scene_str);

struct Qrcode {
  std::string ticket;
  std::string url;  // what the QR code encodes
};
StatusOr<Qrcode> ParseQrcodeCreate(std::string_view body);
// The image WeChat renders for a ticket.
std::string ShowQrcodeUrl(std::string_view ticket);

// ---- Mini-program code (wxa/getwxacodeunlimit) ------------------------------------------------

inline constexpr std::string_view kWxacodeUnlimitPath = "/wxa/getwxacodeunlimit";

// `page` empty: the mini-program's home page. A transparent background is asked for, which makes
// WeChat answer a PNG (otherwise a JPEG).
std::string WxacodeUnlimitBody(std::string_view scene, std::string_view page);

struct Image {
  std::string bytes;
  std::string mime;  // "image/png" or "image/jpeg"
};
// An image, or the JSON fault WeChat sends instead.
StatusOr<Image> ParseWxacode(std::string_view body);

// "image/png" or "image/jpeg" by the bytes' signature; "" for anything else.
std::string_view ImageMime(std::string_view bytes);

}  // namespace siyu::wechat
