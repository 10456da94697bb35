#include "domain/wechat/miniprogram.h"

#include "common/crypto.h"
#include "common/json.h"
#include "domain/wechat/encoding.h"

namespace siyu::wechat {
namespace {

Status ApiError(ErrorCode code, std::string message, std::string field = {}) {
  return Status(code, std::move(message), std::move(field));
}

StatusOr<std::string> DecodeKeyMaterial(std::string_view b64, const char* field) {
  auto bytes = Base64Decode(b64, field);
  if (!bytes.ok() || bytes->size() != 16) {
    return InvalidField(field, std::string(field) + " must be base64 of 16 bytes");
  }
  return std::move(bytes).value();
}

}  // namespace

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

StatusOr<std::string> Code2SessionRequest(std::string_view appid, std::string_view secret,
                                          std::string_view js_code) {
  if (appid.empty()) return InvalidField("appid", "must not be empty");
  if (secret.empty()) return InvalidField("secret", "must not be empty");
  if (js_code.empty() || js_code.size() > 128) {
    return InvalidField("js_code", "must be 1..128 bytes (the code from wx.login)");
  }
  std::string url = "https://api.weixin.qq.com/sns/jscode2session?appid=";
  url.append(PercentEncode(appid));
  url.append("&secret=").append(PercentEncode(secret));
  url.append("&js_code=").append(PercentEncode(js_code));
  url.append("&grant_type=authorization_code");
  return url;
}

StatusOr<Code2Session> ParseCode2SessionResponse(std::string_view body) {
  auto parsed = ParseJsonObject(body);
  if (!parsed.ok()) {
    return ApiError(ErrorCode::kWechatApiError, "jscode2session answered something not JSON");
  }
  const json::object& obj = *parsed;
  int64_t errcode = JsonInt(obj, "errcode").value_or(0);
  if (errcode != 0) {
    std::string message = "jscode2session errcode " + std::to_string(errcode) + ": " +
                          JsonString(obj, "errmsg").value_or("");
    switch (errcode) {
      case 40029:  // invalid code
      case 40163:  // code already used
        return ApiError(ErrorCode::kWechatInvalidCode, std::move(message), "js_code");
      case 45011:
        return ApiError(ErrorCode::kWechatRateLimited, std::move(message));
      case 40226:
        return ApiError(ErrorCode::kWechatRiskyUser, std::move(message));
      default:
        return ApiError(ErrorCode::kWechatApiError, std::move(message));
    }
  }
  Code2Session out;
  std::optional<std::string> openid = JsonString(obj, "openid");
  std::optional<std::string> session_key = JsonString(obj, "session_key");
  if (!openid || openid->empty() || !session_key || session_key->empty()) {
    return ApiError(ErrorCode::kWechatApiError,
                    "jscode2session answered without openid or session_key");
  }
  out.openid = std::move(*openid);
  out.session_key = std::move(*session_key);
  std::optional<std::string> unionid = JsonString(obj, "unionid");
  if (unionid && !unionid->empty()) out.unionid = std::move(*unionid);
  return out;
}

Status VerifyUserInfoSignature(std::string_view raw_data, std::string_view session_key,
                               std::string_view signature) {
  std::string signed_text(raw_data);
  signed_text.append(session_key);
  if (!ConstantTimeEquals(Sha1Hex(signed_text), signature)) {
    return Status(ErrorCode::kBadSignature, "user info signature does not match", "signature");
  }
  return Status::Ok();
}

StatusOr<UserData> DecryptUserData(std::string_view encrypted_data_b64, std::string_view iv_b64,
                                   std::string_view session_key_b64,
                                   std::string_view expected_appid) {
  ASSIGN_OR_RETURN(std::string key, DecodeKeyMaterial(session_key_b64, "session_key"));
  ASSIGN_OR_RETURN(std::string iv, DecodeKeyMaterial(iv_b64, "iv"));
  ASSIGN_OR_RETURN(std::string ciphertext, Base64Decode(encrypted_data_b64, "encryptedData"));
  auto failed = [](std::string why) {
    return Status(ErrorCode::kDecryptFailed,
                  why + ": wrong or stale session_key, or corrupt encryptedData", "encryptedData");
  };
  if (ciphertext.empty() || ciphertext.size() % 16 != 0) {
    return failed("encryptedData is not a whole number of AES blocks");
  }
  ASSIGN_OR_RETURN(std::string plain, AesCbcDecryptRaw(key, iv, ciphertext));
  auto pad = static_cast<unsigned char>(plain.back());
  if (pad < 1 || pad > 16) return failed("bad padding");
  for (size_t i = plain.size() - pad; i < plain.size(); ++i) {
    if (static_cast<unsigned char>(plain[i]) != pad) return failed("bad padding");
  }
  plain.resize(plain.size() - pad);

  auto parsed = ParseJsonObject(plain);
  if (!parsed.ok()) return failed("decrypted data is not a JSON object");
  const json::value* watermark = parsed->if_contains("watermark");
  if (watermark == nullptr || !watermark->is_object())
    return failed("decrypted data has no watermark");
  std::optional<std::string> appid = JsonString(watermark->as_object(), "appid");
  if (!appid) return failed("watermark has no appid");
  if (*appid != expected_appid) {
    return Status(ErrorCode::kBadReceiveId,
                  "encryptedData was sealed for another app (watermark.appid differs)",
                  "watermark.appid");
  }
  UserData out;
  out.watermark_timestamp = JsonInt(watermark->as_object(), "timestamp").value_or(0);
  out.json = std::move(plain);
  return out;
}

}  // namespace siyu::wechat
