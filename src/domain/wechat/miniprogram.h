// Mini-program login and user data: the jscode2session request and its answer, the rawData
// signature, and decryption of encryptedData (AES-128-CBC with the session key) with the watermark
// check. Pure functions that do no I/O (the caller owns the HTTP client); thread-safe.
//
// The session_key is a secret shared with WeChat only: keep it server-side, never send it to the
// client and never log it (nor the request URL, which carries the app secret).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace siyu::wechat {

struct Code2Session {
  std::string openid;
  std::optional<std::string> unionid;  // only when the app is bound to an Open Platform account
  std::string session_key;             // base64 of 16 bytes
};

// The jscode2session GET URL: https://api.weixin.qq.com/sns/jscode2session with appid, secret,
// js_code (each percent-encoded) and grant_type=authorization_code. INVALID_FIELD when a value is
// empty or js_code is longer than 128 bytes (real codes are 32 characters; the bound keeps client
// junk out of the URL).
StatusOr<std::string> Code2SessionRequest(std::string_view appid, std::string_view secret,
                                          std::string_view js_code);

// The answer's body. A non-zero errcode becomes a Status whose message reads
// "jscode2session errcode <n>: <errmsg>": 40029/40163 (bad or used code, the client should call
// wx.login again) WECHAT_INVALID_CODE; 45011 WECHAT_RATE_LIMITED; 40226 (high-risk user)
// WECHAT_RISKY_USER; anything else, -1 (busy) included, and a body that is not the documented
// JSON, WECHAT_API_ERROR.
StatusOr<Code2Session> ParseCode2SessionResponse(std::string_view json);

// wx.getUserInfo's `signature` = hex(sha1(rawData + session_key)), session_key as the base64 text.
// BAD_SIGNATURE when it does not match.
Status VerifyUserInfoSignature(std::string_view raw_data, std::string_view session_key,
                               std::string_view signature);

struct UserData {
  std::string json;  // the decrypted JSON text, byte for byte
  int64_t watermark_timestamp = 0;
};

// Decrypts `encryptedData` (getUserInfo, getPhoneNumber's old form, getWeRunData, …):
// AES-128-CBC, key = b64(session_key), iv = b64(iv), standard 16-byte PKCS#7, then checks that
// watermark.appid is `expected_appid` (BAD_RECEIVE_ID otherwise: data sealed for another app).
// A session key or IV that is not base64 of 16 bytes is INVALID_FIELD; bad padding or a result
// that is not a JSON object with a watermark (wrong or stale session key) is DECRYPT_FAILED.
StatusOr<UserData> DecryptUserData(std::string_view encrypted_data_b64, std::string_view iv_b64,
                                   std::string_view session_key_b64,
                                   std::string_view expected_appid);

// RFC 3986 percent-encoding of everything but unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string PercentEncode(std::string_view s);

}  // namespace siyu::wechat
