#include "domain/wechat/server_api.h"

#include <algorithm>

#include "common/json.h"
#include "domain/wechat/miniprogram.h"

namespace siyu::wechat {
namespace {

// WeChat's errmsg, made safe to pass on: printable ASCII, at most 160 bytes.
std::string CleanMessage(std::string_view s) {
  std::string out;
  for (char ch : s.substr(0, 160)) {
    out.push_back(ch >= 0x20 && ch < 0x7f ? ch : '?');
  }
  return out;
}

// The first `n` UTF-8 code points of `s`.
std::string CutCodePoints(std::string_view s, size_t n) {
  size_t i = 0, count = 0;
  while (i < s.size() && count < n) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 1;
    i = std::min(s.size(), i + len);
    ++count;
  }
  return std::string(s.substr(0, i));
}

json::array Strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

StatusOr<json::object> AnswerObject(std::string_view api, std::string_view body) {
  auto parsed = ParseJsonObject(body);
  if (!parsed.ok()) {
    return Status(ErrorCode::kWechatApiError,
                  std::string(api) + " answered something that is not JSON; retry later");
  }
  return std::move(parsed).value();
}

}  // namespace

std::string AccessTokenPath(Platform p, std::string_view app_id, std::string_view secret) {
  if (p == Platform::kWeCom) {
    return "/cgi-bin/gettoken?corpid=" + PercentEncode(app_id) +
           "&corpsecret=" + PercentEncode(secret);
  }
  return "/cgi-bin/token?grant_type=client_credential&appid=" + PercentEncode(app_id) +
         "&secret=" + PercentEncode(secret);
}

StatusOr<AccessToken> ParseAccessToken(std::string_view body, std::string_view app_kind) {
  if (auto fault = FaultOf(body)) return FaultStatus("gettoken", *fault, app_kind);
  ASSIGN_OR_RETURN(json::object obj, AnswerObject("gettoken", body));
  AccessToken t;
  t.token = JsonString(obj, "access_token").value_or("");
  t.expires_in = JsonInt(obj, "expires_in").value_or(7200);
  if (t.token.empty()) {
    return Status(ErrorCode::kWechatApiError, "gettoken answered no access_token; retry later");
  }
  return t;
}

std::optional<ApiFault> FaultOf(std::string_view body) {
  // Images and other non-JSON answers are not faults; cheap check before parsing.
  size_t i = body.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos || body[i] != '{') return std::nullopt;
  auto parsed = ParseJsonObject(body);
  if (!parsed.ok()) return std::nullopt;
  int64_t code = JsonInt(*parsed, "errcode").value_or(0);
  if (code == 0) return std::nullopt;
  return ApiFault{code, CleanMessage(JsonString(*parsed, "errmsg").value_or(""))};
}

bool IsTokenFault(int64_t errcode) {
  return errcode == 40001 || errcode == 40014 || errcode == 42001;
}

Status FaultStatus(std::string_view api, const ApiFault& f, std::string_view app_kind) {
  const std::string what =
      std::string(api) + " errcode " + std::to_string(f.errcode) + ": " + f.errmsg + "; ";
  const std::string configure = "PUT /v1/wechat/apps/" + std::string(app_kind);
  switch (f.errcode) {
    case 40001:
    case 40013:
    case 40014:
    case 40125:
    case 41002:
    case 41004:
    case 42001:
    case 40243:
      return Status(ErrorCode::kWechatSecretRejected,
                    what + "WeChat refused the app id or secret; copy them again from WeChat's " +
                        "admin console and save them with " + configure);
    case 40164:
    case 60020:
      return Status(ErrorCode::kWechatIpNotAllowed,
                    what + "add this server's outbound IP address to the app's IP whitelist in " +
                        "WeChat's admin console, then retry");
    case 48001:
    case 48002:
    case 48004:
    case 60011:
      if (app_kind == "wecom") {
        return Status(ErrorCode::kWechatNoPermission,
                      what + "use the secret of Customer Contact (客户联系) or of a self-built " +
                          "app with customer-contact permission whose visible range holds the " +
                          "members, and save it with " + configure);
      }
      if (app_kind == "official_account") {
        return Status(ErrorCode::kWechatNoPermission,
                      what + "only a verified service account may create parametric QR codes; " +
                          "verify the account or use a link code");
      }
      return Status(ErrorCode::kWechatNoPermission,
                    what + "the app may not call this API; check its permissions in WeChat's " +
                        "admin console");
    case 45009:
    case 45011:
    case 45033:
      return Status(ErrorCode::kWechatRateLimited,
                    what + "WeChat's quota for this API is used up; retry later");
    case 40003:
    case 41054:
    case 40098:
    case 60111:
    case 84074:
      return Status(ErrorCode::kWechatInvalidUsers,
                    what + "each of `users` must be the user id of an active, verified WeCom " +
                        "member with customer-contact permission",
                    "users");
    case 41030:
    case 40159:
      return Status(ErrorCode::kWechatInvalidPage,
                    what + "`page` must be a page of the published mini-program, without a " +
                        "leading '/' or a query; publish it or leave `page` out for the home page",
                    "page");
    default:
      return Status(ErrorCode::kWechatApiError, what + "retry later, or check the request");
  }
}

// ---- WeCom contact way -------------------------------------------------------------------------

std::string AddContactWayBody(const ContactWayRequest& r) {
  json::object o;
  o["type"] = r.type;
  o["scene"] = 2;
  o["remark"] = CutCodePoints(r.remark, 30);
  o["skip_verify"] = r.skip_verify;
  o["state"] = r.state;
  o["user"] = Strings(r.users);
  return ToJson(o);
}

std::string UpdateContactWayBody(std::string_view config_id, const ContactWayRequest& r) {
  json::object o;
  o["config_id"] = config_id;
  o["remark"] = CutCodePoints(r.remark, 30);
  o["skip_verify"] = r.skip_verify;
  o["state"] = r.state;
  o["user"] = Strings(r.users);
  return ToJson(o);
}

StatusOr<ContactWay> ParseAddContactWay(std::string_view body) {
  if (auto fault = FaultOf(body)) return FaultStatus("add_contact_way", *fault, "wecom");
  ASSIGN_OR_RETURN(json::object obj, AnswerObject("add_contact_way", body));
  ContactWay w;
  w.config_id = JsonString(obj, "config_id").value_or("");
  w.qr_code = JsonString(obj, "qr_code").value_or("");
  if (w.config_id.empty()) {
    return Status(ErrorCode::kWechatApiError, "add_contact_way answered no config_id");
  }
  return w;
}

Status ParseUpdateContactWay(std::string_view body) {
  if (auto fault = FaultOf(body)) return FaultStatus("update_contact_way", *fault, "wecom");
  return AnswerObject("update_contact_way", body).status();
}

// ---- Official account QR code ------------------------------------------------------------------

std::string PermanentQrcodeBody(std::string_view scene_str) {
  json::object scene;
  scene["scene_str"] = scene_str;
  json::object info;
  info["scene"] = std::move(scene);
  json::object o;
  o["action_name"] = "QR_LIMIT_STR_SCENE";
  o["action_info"] = std::move(info);
  return ToJson(o);
}

StatusOr<Qrcode> ParseQrcodeCreate(std::string_view body) {
  if (auto fault = FaultOf(body)) return FaultStatus("qrcode/create", *fault, "official_account");
  ASSIGN_OR_RETURN(json::object obj, AnswerObject("qrcode/create", body));
  Qrcode q;
  q.ticket = JsonString(obj, "ticket").value_or("");
  q.url = JsonString(obj, "url").value_or("");
  if (q.ticket.empty() || q.url.empty()) {
    return Status(ErrorCode::kWechatApiError, "qrcode/create answered no ticket or url");
  }
  return q;
}

std::string ShowQrcodeUrl(std::string_view ticket) {
  return "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + PercentEncode(ticket);
}

// ---- Mini-program code -------------------------------------------------------------------------

std::string WxacodeUnlimitBody(std::string_view scene, std::string_view page) {
  json::object o;
  o["scene"] = scene;
  if (!page.empty()) o["page"] = page;
  o["is_hyaline"] = true;
  return ToJson(o);
}

StatusOr<Image> ParseWxacode(std::string_view body) {
  std::string_view mime = ImageMime(body);
  if (!mime.empty()) return Image{std::string(body), std::string(mime)};
  if (auto fault = FaultOf(body)) {
    return FaultStatus("getwxacodeunlimit", *fault, "mini_program");
  }
  return Status(ErrorCode::kWechatApiError,
                "getwxacodeunlimit answered neither an image nor an error; retry later");
}

std::string_view ImageMime(std::string_view b) {
  if (b.starts_with("\x89PNG\r\n\x1a\n")) return "image/png";
  if (b.size() >= 3 && static_cast<unsigned char>(b[0]) == 0xFF &&
      static_cast<unsigned char>(b[1]) == 0xD8 && static_cast<unsigned char>(b[2]) == 0xFF) {
    return "image/jpeg";
  }
  return {};
}

}  // namespace siyu::wechat
