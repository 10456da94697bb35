// Channel codes (渠道码 / 渠道活码): what an operator prints or shares for a channel — a WeCom
// contact-way QR code, an official-account parametric QR code, a mini-program code, or a link —
// each carrying the channel's `state`, so that the people it brings are attributed to the channel
// when WeChat calls back (WeCom `State`, official-account EventKey `qrscene_<state>`) or when the
// mini-program or landing page reports `channel_state`.
//
// This is the pure part: which codes a channel can have, the payload that carries the state in
// each (within WeChat's limits: contact-way state ≤ 30, scene_str ≤ 64, mini-program scene ≤ 32
// visible characters), the checks on the operator's options, and the link with the state. No I/O;
// thread-safe. channel_codes.h makes the codes at WeChat and keeps them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace siyu::domain {

enum class CodeKind {
  kWecomContactWay,  // WeCom 联系我 QR code (touchpoint wecom)
  kOaQrcode,         // official-account permanent parametric QR code (official_account)
  kMpCode,           // mini-program code, getwxacodeunlimit (mini_program)
  kLink,             // an H5 landing URL and a mini-program path with ?state= (any touchpoint)
};

// "wecom_contact_way", "oa_qrcode", "mp_code", "link".
std::string_view CodeKindName(CodeKind k);
std::optional<CodeKind> ParseCodeKind(std::string_view s);
// The codes a channel of `touchpoint` can have: its touchpoint's own code, then a link. Group
// channels have only the link: a group join way needs the group chats, which siyu does not know.
std::vector<CodeKind> CodeKindsFor(std::string_view touchpoint);
// The kind of WeChat app that makes the code (wechat_apps.kind); "" for a link, which needs none.
std::string_view CodeAppKind(CodeKind k);

inline constexpr size_t kMaxContactWayState = 30;
inline constexpr size_t kMaxOaSceneStr = 64;
inline constexpr size_t kMaxMpScene = 32;
inline constexpr size_t kMaxCodeUsers = 100;
inline constexpr size_t kMaxLinkUrl = 512;
// The page a link's mini-program path opens when the operator names none.
inline constexpr std::string_view kDefaultMpPage = "pages/index/index";

// What the operator chooses for a code; absent options take their defaults.
struct CodeOptions {
  std::optional<std::vector<std::string>> users;  // wecom_contact_way, required: member user ids
  std::optional<bool> skip_verify;                // wecom_contact_way: add without confirming
  std::optional<std::string> page;                // mp_code, link: a mini-program page path
  std::optional<std::string> url;                 // link, required: the H5 landing page
};

// MISSING_FIELD or INVALID_FIELD naming the field: a required option missing, an option that does
// not apply to `kind`, or a bad value (users: 1–100 distinct ids of 1–64 visible ASCII
// characters; page: 1–128 characters of [A-Za-z0-9_./-], no leading '/', no query; url: http(s),
// ≤ 512 visible ASCII characters, without a `state` parameter of its own).
Status CheckCodeOptions(CodeKind kind, const CodeOptions& o);

// Named values, in display order.
using Payload = std::vector<std::pair<std::string, std::string>>;

// The fields that carry `state` in a code of `kind`:
// - wecom_contact_way: `state` — the contact way's state, returned as State in callbacks;
// - oa_qrcode: `scene_str`, and `event_key` = qrscene_<state>, what a follow through the code
//   calls back with (a scan by a follower calls back with scene_str itself);
// - mp_code: `scene` (the mini-program reads it, URL-encoded, as options.scene) and `page`;
// - link: `path` = <page>?state=<state> for mini-program links, and `url` = the H5 URL with
//   state=<state> added when options.url is set.
// INTERNAL when `state` does not fit the kind's limit (channel states are 13 base62 characters).
StatusOr<Payload> CodePayload(CodeKind kind, std::string_view state, const CodeOptions& o);

// `url` with state=<state> added to its query, before any fragment.
std::string WithState(std::string_view url, std::string_view state);

}  // namespace siyu::domain
