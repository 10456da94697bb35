// Channel codes made and kept (codes.h has the pure part): POST makes a channel's code once —
// at WeChat for a WeCom contact way, an official-account QR code or a mini-program code; locally
// for a link — and keeps it in channel_codes, so that asking again answers the stored code
// (WeChat caps contact ways at 500,000 per corp and permanent QR codes at 100,000 per account,
// and a printed code must keep working). `refresh` makes it again: a contact way is updated in
// place (same config_id, same printed QR code) with the new members; the others are made anew.
//
// Images: siyu renders the QR code of what it knows the content of (a link; an official-account
// code's URL). WeChat renders mini-program codes and contact-way QR codes itself; siyu keeps
// those images as WeChat sent them (a contact way's image is fetched from its qr_code URL when
// it is made, or when first asked for if that failed). Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/channels/channels.h"
#include "domain/channels/codes.h"
#include "domain/inbound/wechat_api.h"
#include "domain/inbound/wechat_inbound.h"
#include "store/store.h"

namespace siyu::domain {

struct ChannelCode {
  int64_t channel_id = 0;
  CodeKind kind = CodeKind::kLink;
  bool made = false;       // false: not made yet; only `payload` (with default options) is set
  CodeOptions options;     // as made
  Payload payload;         // the fields that carry the channel's state
  std::string app_id;      // the WeChat app that made it ("" for a link)
  std::string content;     // what siyu's QR image encodes ("" when WeChat renders the image)
  std::string config_id;   // wecom_contact_way: WeCom's handle to edit or delete it
  int contact_type = 0;    // wecom_contact_way: 1 one member, 2 several (fixed by WeCom)
  std::string ticket;      // oa_qrcode
  std::string image_url;   // wecom_contact_way: qr_code; oa_qrcode: WeChat's showqrcode URL
  std::string image;       // bytes WeChat rendered (mp_code, wecom_contact_way); "" if none yet
  std::string image_type;  // "image/png" | "image/jpeg"
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

struct CodeRequest {
  CodeKind kind = CodeKind::kLink;
  CodeOptions options;
  bool refresh = false;
};

enum class ImageFormat { kSvg, kPng };

struct CodeImage {
  std::string body;
  std::string content_type;
  std::string extension;  // "svg", "png" or "jpg": what the bytes are
};

class ChannelCodes {
 public:
  ChannelCodes(store::Store& store, Channels& channels, WechatInbound& apps, WechatApi& api)
      : store_(store), channels_(channels), apps_(apps), api_(api) {}

  // The stored code, or, when there is none or `refresh` is set, the code made now; second: true
  // when the channel had no code of the kind before. NOT_FOUND for another
  // tenant's or no channel; INVALID_FIELD (field "kind") for a kind the channel cannot have;
  // options as CheckCodeOptions; WECHAT_NOT_CONFIGURED when the tenant has no app of the kind or
  // the app no secret; WeChat's errors as server_api.h's FaultStatus; UPSTREAM_UNAVAILABLE.
  StatusOr<std::pair<ChannelCode, bool>> Make(int64_t tenant_id, int64_t channel_id,
                                              const CodeRequest& req);
  // Every code the channel can have, made or not, in CodeKindsFor order.
  StatusOr<std::vector<ChannelCode>> List(int64_t tenant_id, int64_t channel_id);
  // NOT_FOUND when the channel cannot have `kind`.
  StatusOr<ChannelCode> Get(int64_t tenant_id, int64_t channel_id, CodeKind kind);
  // NOT_FOUND when the code is not made yet. `scale`: PNG pixels per module (siyu's images).
  StatusOr<CodeImage> Image(int64_t tenant_id, int64_t channel_id, CodeKind kind,
                            ImageFormat format, int scale);

 private:
  StatusOr<std::optional<ChannelCode>> Load(int64_t tenant_id, int64_t channel_id, CodeKind kind);
  Status MakeAtWechat(int64_t tenant_id, const Channel& ch,
                      const std::optional<ChannelCode>& stored, ChannelCode& code);
  StatusOr<WechatApp> AppFor(int64_t tenant_id, CodeKind kind);
  std::mutex& LockFor(int64_t tenant_id, int64_t channel_id, CodeKind kind);

  store::Store& store_;
  Channels& channels_;
  WechatInbound& apps_;
  WechatApi& api_;
  // Making a code is serialised per (tenant, channel, kind), so that two concurrent first calls
  // make one contact way at WeChat, not two.
  std::array<std::mutex, 32> locks_;
};

}  // namespace siyu::domain
