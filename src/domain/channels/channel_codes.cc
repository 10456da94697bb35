#include "domain/channels/channel_codes.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "common/json.h"
#include "common/time.h"
#include "domain/channels/qr_image.h"
#include "domain/wechat/encoding.h"
#include "domain/wechat/server_api.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {

constexpr const char* kColumns =
    "channel_id, kind, options, content, app_id, config_id, contact_type, ticket, image_url, "
    "image_type, created_at, updated_at, image";

store::Value Nullable(const std::string& s) {
  return s.empty() ? store::Value(nullptr) : store::Value(s);
}

std::string OptionsJson(const CodeOptions& o) {
  json::object j;
  if (o.users) {
    json::array a;
    for (const auto& u : *o.users) a.emplace_back(u);
    j["users"] = std::move(a);
  }
  if (o.skip_verify) j["skip_verify"] = *o.skip_verify;
  if (o.page) j["page"] = *o.page;
  if (o.url) j["url"] = *o.url;
  return ToJson(j);
}

// Reads what OptionsJson wrote; anything else reads as no options.
CodeOptions OptionsFrom(const std::string& text) {
  CodeOptions o;
  auto parsed = ParseJsonObject(text);
  if (!parsed.ok()) return o;
  const json::object& j = *parsed;
  if (const auto* v = j.if_contains("users"); v && v->is_array()) {
    o.users.emplace();
    for (const auto& u : v->as_array()) {
      if (u.is_string()) o.users->emplace_back(u.as_string());
    }
  }
  if (const auto* v = j.if_contains("skip_verify"); v && v->is_bool()) o.skip_verify = v->as_bool();
  if (const auto* v = j.if_contains("page"); v && v->is_string())
    o.page = std::string(v->as_string());
  if (const auto* v = j.if_contains("url"); v && v->is_string())
    o.url = std::string(v->as_string());
  return o;
}

std::string KindList(const std::vector<CodeKind>& kinds) {
  std::string out;
  for (size_t i = 0; i < kinds.size(); ++i) {
    if (i > 0) out += i + 1 == kinds.size() ? " or " : ", ";
    out += CodeKindName(kinds[i]);
  }
  return out;
}

bool CanHave(const Channel& ch, CodeKind kind) {
  auto kinds = CodeKindsFor(ch.touchpoint);
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

std::string NoKindMessage(const Channel& ch, CodeKind kind) {
  return "channel " + std::to_string(ch.id) + " reaches people through " + ch.touchpoint +
         ", which has no " + std::string(CodeKindName(kind)) + " code; its codes are " +
         KindList(CodeKindsFor(ch.touchpoint));
}

// A code not made yet: the payload with default options.
StatusOr<ChannelCode> Unmade(const Channel& ch, CodeKind kind) {
  ChannelCode c;
  c.channel_id = ch.id;
  c.kind = kind;
  ASSIGN_OR_RETURN(c.payload, CodePayload(kind, ch.state, {}));
  return c;
}

}  // namespace

std::mutex& ChannelCodes::LockFor(int64_t tenant_id, int64_t channel_id, CodeKind kind) {
  size_t h = std::hash<int64_t>()(tenant_id) * 31 + std::hash<int64_t>()(channel_id);
  h = h * 31 + static_cast<size_t>(kind);
  return locks_[h % locks_.size()];
}

StatusOr<std::optional<ChannelCode>> ChannelCodes::Load(int64_t tenant_id, int64_t channel_id,
                                                        CodeKind kind) {
  std::optional<ChannelCode> out;
  std::string image_b64;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                         " FROM channel_codes WHERE tenant_id = ? AND "
                                         "channel_id = ? AND kind = ?",
                                     {tenant_id, channel_id, std::string(CodeKindName(kind))}));
    if (r.empty()) return Status::Ok();
    const store::Row& row = r[0];
    ChannelCode code;
    code.channel_id = row.Int(0);
    code.kind = kind;
    code.made = true;
    code.options = OptionsFrom(row.Text(2));
    code.content = row.Text(3);
    code.app_id = row.Text(4);
    code.config_id = row.Text(5);
    code.contact_type = static_cast<int>(row.Int(6));
    code.ticket = row.Text(7);
    code.image_url = row.Text(8);
    code.image_type = row.Text(9);
    code.created_at = row.Int(10);
    code.updated_at = row.Int(11);
    image_b64 = row.Text(12);
    out = std::move(code);
    return Status::Ok();
  }));
  if (out && !image_b64.empty()) {
    auto bytes = wechat::Base64Decode(image_b64, "image");
    // A row siyu wrote always decodes; an unreadable image is fetched again like a missing one.
    if (bytes.ok()) out->image = std::move(bytes).value();
  }
  return out;
}

StatusOr<WechatApp> ChannelCodes::AppFor(int64_t tenant_id, CodeKind kind) {
  const std::string app_kind(CodeAppKind(kind));
  auto app = apps_.App(tenant_id, app_kind);
  if (!app.ok()) {
    if (app.status().code() != ErrorCode::kNotFound) return app.status();
    return Status(ErrorCode::kWechatNotConfigured,
                  std::string(CodeKindName(kind)) + " codes are made at WeChat with the " +
                      "tenant's " + app_kind + " app, and none is configured; configure it, " +
                      "with its secret, with PUT /v1/wechat/apps/" + app_kind);
  }
  if (!app->secret || app->secret->empty()) {
    std::string which =
        app_kind == kWeCom ? "the Customer Contact (客户联系) secret" : "its AppSecret";
    return Status(ErrorCode::kWechatNotConfigured,
                  "the tenant's " + app_kind + " app has no secret, which WeChat needs to make " +
                      std::string(CodeKindName(kind)) + " codes; add " + which +
                      " with PUT /v1/wechat/apps/" + app_kind);
  }
  return std::move(app).value();
}

Status ChannelCodes::MakeAtWechat(int64_t tenant_id, const Channel& ch,
                                  const std::optional<ChannelCode>& stored, ChannelCode& code) {
  ASSIGN_OR_RETURN(WechatApp app, AppFor(tenant_id, code.kind));
  code.app_id = app.app_id;
  switch (code.kind) {
    case CodeKind::kWecomContactWay: {
      wechat::ContactWayRequest r;
      r.state = ch.state;
      r.users = code.options.users.value_or(std::vector<std::string>{});
      r.skip_verify = code.options.skip_verify.value_or(true);
      r.remark = ch.name;
      if (stored && !stored->config_id.empty() && stored->app_id == app.app_id) {
        // Updated in place: the printed QR code stays valid and keeps its config_id.
        r.type = stored->contact_type;
        if (r.type == 1 && r.users.size() > 1) {
          return InvalidField("users",
                              "this contact way was made for one member, and WeCom cannot turn it "
                              "into a multi-member one; give one member, or make the "
                              "multi-member code on a new channel");
        }
        ASSIGN_OR_RETURN(HttpResponse resp,
                         api_.PostJson(tenant_id, app, wechat::kUpdateContactWayPath,
                                       wechat::UpdateContactWayBody(stored->config_id, r)));
        RETURN_IF_ERROR(wechat::ParseUpdateContactWay(resp.body));
        code.config_id = stored->config_id;
        code.contact_type = stored->contact_type;
        code.image_url = stored->image_url;
        code.image = stored->image;
        code.image_type = stored->image_type;
      } else {
        r.type = r.users.size() == 1 ? 1 : 2;
        ASSIGN_OR_RETURN(HttpResponse resp,
                         api_.PostJson(tenant_id, app, wechat::kAddContactWayPath,
                                       wechat::AddContactWayBody(r)));
        ASSIGN_OR_RETURN(wechat::ContactWay way, wechat::ParseAddContactWay(resp.body));
        code.config_id = way.config_id;
        code.contact_type = r.type;
        code.image_url = way.qr_code;
      }
      if (code.image.empty() && !code.image_url.empty()) {
        // The contact way exists now whatever happens here: a failed fetch is retried when the
        // image is first asked for.
        auto img = api_.FetchImage(code.image_url);
        if (img.ok()) {
          code.image = std::move(img->body);
          code.image_type = img->content_type;
        } else {
          spdlog::info("channel codes: contact way {} image not fetched yet: {}", code.config_id,
                       img.status().message());
        }
      }
      return Status::Ok();
    }
    case CodeKind::kOaQrcode: {
      ASSIGN_OR_RETURN(HttpResponse resp, api_.PostJson(tenant_id, app, wechat::kQrcodeCreatePath,
                                                        wechat::PermanentQrcodeBody(ch.state)));
      ASSIGN_OR_RETURN(wechat::Qrcode q, wechat::ParseQrcodeCreate(resp.body));
      code.ticket = q.ticket;
      code.content = q.url;
      code.image_url = wechat::ShowQrcodeUrl(q.ticket);
      return Status::Ok();
    }
    case CodeKind::kMpCode: {
      ASSIGN_OR_RETURN(
          HttpResponse resp,
          api_.PostJson(tenant_id, app, wechat::kWxacodeUnlimitPath,
                        wechat::WxacodeUnlimitBody(ch.state, code.options.page.value_or(""))));
      ASSIGN_OR_RETURN(wechat::Image img, wechat::ParseWxacode(resp.body));
      code.image = std::move(img.bytes);
      code.image_type = img.mime;
      return Status::Ok();
    }
    case CodeKind::kLink:
      break;
  }
  return Internal("a link is not made at WeChat");
}

StatusOr<std::pair<ChannelCode, bool>> ChannelCodes::Make(int64_t tenant_id, int64_t channel_id,
                                                          const CodeRequest& req) {
  ASSIGN_OR_RETURN(Channel ch, channels_.Get(tenant_id, channel_id));
  if (!CanHave(ch, req.kind)) return InvalidField("kind", NoKindMessage(ch, req.kind));
  RETURN_IF_ERROR(CheckCodeOptions(req.kind, req.options));

  std::lock_guard lock(LockFor(tenant_id, channel_id, req.kind));
  ASSIGN_OR_RETURN(std::optional<ChannelCode> stored, Load(tenant_id, channel_id, req.kind));
  if (stored && !req.refresh) return std::make_pair(std::move(*stored), false);

  ChannelCode code;
  code.channel_id = ch.id;
  code.kind = req.kind;
  code.made = true;
  code.options = req.options;
  ASSIGN_OR_RETURN(code.payload, CodePayload(req.kind, ch.state, req.options));
  if (req.kind == CodeKind::kLink) {
    for (const auto& [name, value] : code.payload) {
      if (name == "url") code.content = value;
    }
  } else {
    RETURN_IF_ERROR(MakeAtWechat(tenant_id, ch, stored, code));
  }
  const int64_t now = NowMs();
  code.created_at = stored ? stored->created_at : now;
  code.updated_at = now;
  Status s = store_.Write([&](Conn& c) -> Status {
    return c
        .Exec(
            "INSERT INTO channel_codes (tenant_id, channel_id, kind, options, content, app_id, "
            "config_id, contact_type, ticket, image_url, image_type, created_at, updated_at, "
            "image) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, "
            "channel_id, kind) DO UPDATE SET options = excluded.options, content = "
            "excluded.content, app_id = excluded.app_id, config_id = excluded.config_id, "
            "contact_type = excluded.contact_type, ticket = excluded.ticket, image_url = "
            "excluded.image_url, image_type = excluded.image_type, updated_at = "
            "excluded.updated_at, image = excluded.image",
            {tenant_id, ch.id, std::string(CodeKindName(code.kind)), OptionsJson(code.options),
             Nullable(code.content), Nullable(code.app_id), Nullable(code.config_id),
             code.contact_type ? store::Value(int64_t{code.contact_type}) : store::Value(nullptr),
             Nullable(code.ticket), Nullable(code.image_url), Nullable(code.image_type),
             code.created_at, code.updated_at,
             Nullable(code.image.empty() ? std::string() : wechat::Base64Encode(code.image))})
        .status();
  });
  if (!s.ok()) {
    // WeChat has the contact way now; without its config_id it can never be edited or deleted.
    if (!code.config_id.empty()) {
      spdlog::warn(
          "channel codes: contact way config_id {} (tenant {}, channel {}) was made at "
          "WeCom but not stored: {}",
          code.config_id, tenant_id, ch.id, s.ToString());
    }
    return s;
  }
  return std::make_pair(std::move(code), !stored.has_value());
}

StatusOr<std::vector<ChannelCode>> ChannelCodes::List(int64_t tenant_id, int64_t channel_id) {
  ASSIGN_OR_RETURN(Channel ch, channels_.Get(tenant_id, channel_id));
  std::vector<ChannelCode> out;
  for (CodeKind kind : CodeKindsFor(ch.touchpoint)) {
    ASSIGN_OR_RETURN(ChannelCode code, Get(tenant_id, channel_id, kind));
    code.image.clear();  // listings carry no images
    out.push_back(std::move(code));
  }
  return out;
}

StatusOr<ChannelCode> ChannelCodes::Get(int64_t tenant_id, int64_t channel_id, CodeKind kind) {
  ASSIGN_OR_RETURN(Channel ch, channels_.Get(tenant_id, channel_id));
  if (!CanHave(ch, kind)) return Status(ErrorCode::kNotFound, NoKindMessage(ch, kind));
  ASSIGN_OR_RETURN(std::optional<ChannelCode> stored, Load(tenant_id, channel_id, kind));
  if (!stored) return Unmade(ch, kind);
  ASSIGN_OR_RETURN(stored->payload, CodePayload(kind, ch.state, stored->options));
  return std::move(*stored);
}

StatusOr<CodeImage> ChannelCodes::Image(int64_t tenant_id, int64_t channel_id, CodeKind kind,
                                        ImageFormat format, int scale) {
  ASSIGN_OR_RETURN(ChannelCode code, Get(tenant_id, channel_id, kind));
  if (!code.made) {
    return Status(ErrorCode::kNotFound, "the " + std::string(CodeKindName(kind)) +
                                            " code of channel " + std::to_string(channel_id) +
                                            " is not made yet; make it with POST /v1/" +
                                            "channels/" + std::to_string(channel_id) + "/codes");
  }
  if (!code.content.empty()) {
    ASSIGN_OR_RETURN(QrMatrix m, EncodeQr(code.content));
    if (format == ImageFormat::kSvg) return CodeImage{QrSvg(m), "image/svg+xml", "svg"};
    return CodeImage{QrPng(m, std::clamp(scale, 1, kQrMaxScale)), "image/png", "png"};
  }
  if (code.image.empty() && !code.image_url.empty()) {
    ASSIGN_OR_RETURN(HttpResponse img, api_.FetchImage(code.image_url));
    code.image = std::move(img.body);
    code.image_type = img.content_type;
    const std::string b64 = wechat::Base64Encode(code.image);
    RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
      return c
          .Exec(
              "UPDATE channel_codes SET image = ?, image_type = ? WHERE tenant_id = ? AND "
              "channel_id = ? AND kind = ? AND image_url = ?",
              {b64, code.image_type, tenant_id, channel_id, std::string(CodeKindName(kind)),
               code.image_url})
          .status();
    }));
  }
  if (code.image.empty()) {
    return Status(ErrorCode::kWechatApiError,
                  "WeChat gave no image for this code; make it again with refresh: true");
  }
  if (format == ImageFormat::kSvg) {
    return CodeImage{EmbeddedImageSvg(code.image, code.image_type), "image/svg+xml", "svg"};
  }
  return CodeImage{code.image, code.image_type, code.image_type == "image/jpeg" ? "jpg" : "png"};
}

}  // namespace siyu::domain
