#include "domain/wechat/callback_crypto.h"

#include <algorithm>
#include <cstdint>
#include <pugixml.hpp>
#include <vector>

#include "common/crypto.h"
#include "domain/wechat/encoding.h"

namespace siyu::wechat {
namespace {

constexpr size_t kBlock = 32;  // WeChat's PKCS#7 block, not AES's 16
constexpr size_t kRandomLen = 16;
constexpr size_t kHeaderLen = kRandomLen + 4;

Status DecryptError(std::string message) {
  return Status(ErrorCode::kDecryptFailed, std::move(message), "Encrypt");
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool AllAlnum(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
  });
}

bool IsPrintableId(std::string_view s) {
  return s.size() <= 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

}  // namespace

std::string SortedSha1(std::initializer_list<std::string_view> parts) {
  std::vector<std::string_view> v(parts);
  // std::string_view compares through char_traits<char>, which orders as unsigned char: the
  // byte-wise order the platform uses (and the same as JavaScript's sort for ASCII inputs).
  std::sort(v.begin(), v.end());
  std::string joined;
  for (std::string_view p : v) joined.append(p);
  return Sha1Hex(joined);
}

StatusOr<CallbackCrypto> CallbackCrypto::Create(std::string token,
                                                std::string_view encoding_aes_key,
                                                std::string receive_id) {
  if (token.empty()) return InvalidField("token", "the callback token must not be empty");
  if (encoding_aes_key.size() != 43) {
    return InvalidField("encoding_aes_key", "EncodingAESKey must be exactly 43 characters, got " +
                                                std::to_string(encoding_aes_key.size()));
  }
  auto key = Base64Decode(std::string(encoding_aes_key) + "=", "encoding_aes_key");
  if (!key.ok() || key->size() != 32) {
    return InvalidField("encoding_aes_key",
                        "EncodingAESKey must be base64 (A-Z a-z 0-9 + /) decoding to 32 bytes");
  }
  return CallbackCrypto(std::move(token), std::move(key).value(), std::move(receive_id));
}

std::string CallbackCrypto::Signature(std::string_view timestamp, std::string_view nonce,
                                      std::string_view encrypt) const {
  return SortedSha1({token_, timestamp, nonce, encrypt});
}

Status CallbackCrypto::CheckSignature(std::string_view msg_signature, std::string_view timestamp,
                                      std::string_view nonce, std::string_view encrypt) const {
  if (!ConstantTimeEquals(Signature(timestamp, nonce, encrypt), msg_signature)) {
    return Status(ErrorCode::kBadSignature,
                  "msg_signature does not match: check the callback token", "msg_signature");
  }
  return Status::Ok();
}

StatusOr<std::string> CallbackCrypto::VerifyUrl(std::string_view msg_signature,
                                                std::string_view timestamp, std::string_view nonce,
                                                std::string_view echostr) const {
  RETURN_IF_ERROR(CheckSignature(msg_signature, timestamp, nonce, echostr));
  StatusOr<std::string> echo = Decrypt(echostr);
  if (!echo.ok() && echo.status().field() == "Encrypt") {
    return Status(echo.status().code(), echo.status().message(), "echostr");
  }
  return echo;
}

StatusOr<std::string> CallbackCrypto::DecryptMessage(std::string_view msg_signature,
                                                     std::string_view timestamp,
                                                     std::string_view nonce,
                                                     std::string_view post_xml_body) const {
  pugi::xml_document doc;
  // pugixml never loads external entities or expands DTD entities, so a hostile body cannot
  // reach the file system or blow up; a DOCTYPE is skipped.
  pugi::xml_parse_result parsed = doc.load_buffer(post_xml_body.data(), post_xml_body.size(),
                                                  pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return Status(ErrorCode::kMalformedXml,
                  std::string("callback body is not XML: ") + parsed.description());
  }
  pugi::xml_node encrypt = doc.child("xml").child("Encrypt");
  if (!encrypt) {
    return Status(ErrorCode::kMalformedXml, "callback body has no <xml><Encrypt>", "Encrypt");
  }
  std::string_view ciphertext = encrypt.text().get();
  RETURN_IF_ERROR(CheckSignature(msg_signature, timestamp, nonce, ciphertext));
  return Decrypt(ciphertext);
}

StatusOr<std::string> CallbackCrypto::EncryptReply(std::string_view reply_xml,
                                                   std::string_view timestamp,
                                                   std::string_view nonce,
                                                   std::optional<std::string_view> random16) const {
  if (!AllDigits(timestamp)) return InvalidField("timestamp", "must be decimal digits");
  if (!AllAlnum(nonce)) return InvalidField("nonce", "must be non-empty [0-9A-Za-z]");
  StatusOr<std::string> encrypted = random16 ? Encrypt(reply_xml, *random16) : Encrypt(reply_xml);
  if (!encrypted.ok()) return encrypted.status();
  std::string signature = Signature(timestamp, nonce, *encrypted);
  // Base64, hex, digits and alphanumerics cannot contain "]]>", so the CDATA sections are safe.
  std::string out = "<xml><Encrypt><![CDATA[";
  out.append(*encrypted);
  out.append("]]></Encrypt><MsgSignature><![CDATA[");
  out.append(signature);
  out.append("]]></MsgSignature><TimeStamp>");
  out.append(timestamp);
  out.append("</TimeStamp><Nonce><![CDATA[");
  out.append(nonce);
  out.append("]]></Nonce></xml>");
  return out;
}

StatusOr<std::string> CallbackCrypto::Encrypt(std::string_view plaintext,
                                              std::string_view random16) const {
  if (random16.size() != kRandomLen) return InvalidField("random", "must be exactly 16 bytes");
  if (plaintext.size() > UINT32_MAX - kHeaderLen - receive_id_.size() - kBlock) {
    return InvalidField("message", "too long to encrypt");
  }
  std::string buf;
  size_t len = kHeaderLen + plaintext.size() + receive_id_.size();
  size_t pad = kBlock - len % kBlock;  // 1..32: a full block when already aligned
  buf.reserve(len + pad);
  buf.append(random16);
  auto n = static_cast<uint32_t>(plaintext.size());
  buf.push_back(static_cast<char>(n >> 24 & 0xFF));
  buf.push_back(static_cast<char>(n >> 16 & 0xFF));
  buf.push_back(static_cast<char>(n >> 8 & 0xFF));
  buf.push_back(static_cast<char>(n & 0xFF));
  buf.append(plaintext);
  buf.append(receive_id_);
  buf.append(pad, static_cast<char>(pad));
  ASSIGN_OR_RETURN(std::string ciphertext,
                   AesCbcEncryptRaw(key_, std::string_view(key_).substr(0, 16), buf));
  return Base64Encode(ciphertext);
}

StatusOr<std::string> CallbackCrypto::Encrypt(std::string_view plaintext) const {
  // Tencent's samples draw 16 alphanumerics; any 16 bytes work, these are from a CSPRNG.
  return Encrypt(plaintext, RandomBase62(kRandomLen));
}

StatusOr<CallbackPlaintext> CallbackCrypto::Open(std::string_view encrypt_b64) const {
  ASSIGN_OR_RETURN(std::string ciphertext, Base64Decode(encrypt_b64, "Encrypt"));
  if (ciphertext.empty() || ciphertext.size() % 16 != 0) {
    return DecryptError("ciphertext is not a whole number of AES blocks");
  }
  ASSIGN_OR_RETURN(std::string plain,
                   AesCbcDecryptRaw(key_, std::string_view(key_).substr(0, 16), ciphertext));
  auto pad = static_cast<unsigned char>(plain.back());
  if (pad < 1 || pad > kBlock || pad > plain.size()) {
    return DecryptError("bad padding: wrong EncodingAESKey or corrupt ciphertext");
  }
  for (size_t i = plain.size() - pad; i < plain.size(); ++i) {
    if (static_cast<unsigned char>(plain[i]) != pad) {
      return DecryptError("bad padding: wrong EncodingAESKey or corrupt ciphertext");
    }
  }
  plain.resize(plain.size() - pad);
  if (plain.size() < kHeaderLen) return DecryptError("plaintext shorter than its header");
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(plain[i])); };
  uint64_t msg_len = b(16) << 24 | b(17) << 16 | b(18) << 8 | b(19);
  if (msg_len > plain.size() - kHeaderLen) {
    return DecryptError("message length exceeds the plaintext: corrupt ciphertext");
  }
  CallbackPlaintext out;
  out.random = plain.substr(0, kRandomLen);
  out.message = plain.substr(kHeaderLen, msg_len);
  out.receive_id = plain.substr(kHeaderLen + msg_len);
  return out;
}

StatusOr<std::string> CallbackCrypto::Decrypt(std::string_view encrypt_b64) const {
  ASSIGN_OR_RETURN(CallbackPlaintext p, Open(encrypt_b64));
  if (p.receive_id != receive_id_) {
    // Naming the id it carries turns the usual misconfiguration (corpid vs suite id vs appid)
    // into a one-line fix; binary junk from a wrong key is not worth echoing.
    std::string got = IsPrintableId(p.receive_id) ? "'" + p.receive_id + "'" : "another id";
    return Status(ErrorCode::kBadReceiveId,
                  "payload is addressed to " + got + ", not to receiveid '" + receive_id_ + "'",
                  "receive_id");
  }
  return std::move(p.message);
}

Status VerifyPlainSignature(std::string_view token, std::string_view timestamp,
                            std::string_view nonce, std::string_view signature) {
  if (!ConstantTimeEquals(SortedSha1({token, timestamp, nonce}), signature)) {
    return Status(ErrorCode::kBadSignature, "signature does not match: check the token",
                  "signature");
  }
  return Status::Ok();
}

std::string JsApiSignature(std::string_view ticket, std::string_view noncestr,
                           std::string_view timestamp, std::string_view url) {
  url = url.substr(0, url.find('#'));
  std::string s = "jsapi_ticket=";
  s.append(ticket).append("&noncestr=").append(noncestr).append("&timestamp=");
  s.append(timestamp).append("&url=").append(url);
  return Sha1Hex(s);
}

}  // namespace siyu::wechat
