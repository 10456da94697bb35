// Callback crypto for WeChat's message push (the scheme Tencent's samples call WXBizMsgCrypt),
// shared by WeCom (企业微信) app and third-party callbacks, Official Account safe mode and Open
// Platform: signature checks, AES-256-CBC with the 32-byte PKCS#7 variant, the receiveid check and
// the encrypted passive-reply envelope. Also the two plain SHA-1 signatures that sit beside it
// (Official Account URL check, JS-SDK config). A CallbackCrypto is immutable after Create(), so
// one instance may be shared by any number of threads.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace siyu::wechat {

// The parts of a decrypted payload: random(16) | msg_len | msg | receiveid.
struct CallbackPlaintext {
  std::string random;      // 16 bytes
  std::string message;     // the XML (or echo text), byte for byte
  std::string receive_id;  // corpid, suite id or appid
};

class CallbackCrypto {
 public:
  // `encoding_aes_key` is the 43-character EncodingAESKey from the admin console. `receive_id` is
  // what the plaintext must end with: the corpid for WeCom app callbacks, the suite id for
  // third-party command callbacks, the appid for Official Account / Open Platform, and the empty
  // string for personal third-party apps (still compared exactly). An empty token or a key that
  // is not 43 characters of base64 decoding to 32 bytes is INVALID_FIELD.
  static StatusOr<CallbackCrypto> Create(std::string token, std::string_view encoding_aes_key,
                                         std::string receive_id);

  // hex(sha1(concat(sort_bytewise(token, timestamp, nonce, encrypt)))).
  std::string Signature(std::string_view timestamp, std::string_view nonce,
                        std::string_view encrypt) const;

  // URL verification (GET): checks msg_signature over `echostr`, decrypts it and returns the
  // text to answer with, unchanged. Arguments are the percent-decoded query values; decode '+'
  // literally (WeChat percent-encodes it), not as a space.
  StatusOr<std::string> VerifyUrl(std::string_view msg_signature, std::string_view timestamp,
                                  std::string_view nonce, std::string_view echostr) const;

  // Message push (POST): reads <Encrypt> from the envelope (MALFORMED_XML when absent), checks
  // msg_signature, decrypts and returns the inner XML.
  StatusOr<std::string> DecryptMessage(std::string_view msg_signature, std::string_view timestamp,
                                       std::string_view nonce,
                                       std::string_view post_xml_body) const;

  // The encrypted passive reply, ready to send: <xml> with <Encrypt>, <MsgSignature>, <TimeStamp>
  // and <Nonce>, in that order, the strings as CDATA.
  // `timestamp` must be decimal digits and `nonce` [0-9A-Za-z] (they go into the XML verbatim).
  // `random16` is for tests; production replies draw a fresh one.
  StatusOr<std::string> EncryptReply(std::string_view reply_xml, std::string_view timestamp,
                                     std::string_view nonce,
                                     std::optional<std::string_view> random16 = std::nullopt) const;

  // base64(AES(random16 | len | plaintext | receive_id | pad)). `random16` must be 16 bytes.
  StatusOr<std::string> Encrypt(std::string_view plaintext, std::string_view random16) const;
  // Encrypt with a fresh random prefix.
  StatusOr<std::string> Encrypt(std::string_view plaintext) const;

  // Decrypts a base64 payload and checks the receiveid exactly; returns the message. Call it only
  // after the signature has been checked: the signature is what authenticates the ciphertext, and
  // checking it first keeps padding errors from being observable to an attacker.
  StatusOr<std::string> Decrypt(std::string_view encrypt_b64) const;
  // Decrypts without the receiveid check, for the caller that accepts several receiveids (e.g.
  // third-party data callbacks, one per authorising corp). The caller must check receive_id.
  StatusOr<CallbackPlaintext> Open(std::string_view encrypt_b64) const;

  const std::string& receive_id() const { return receive_id_; }

 private:
  CallbackCrypto(std::string token, std::string key, std::string receive_id)
      : token_(std::move(token)), key_(std::move(key)), receive_id_(std::move(receive_id)) {}

  Status CheckSignature(std::string_view msg_signature, std::string_view timestamp,
                        std::string_view nonce, std::string_view encrypt) const;

  std::string token_;
  std::string key_;  // 32 bytes; the IV is its first 16
  std::string receive_id_;
};

// hex(sha1(concat(sort_bytewise(parts)))), the primitive under every callback signature.
std::string SortedSha1(std::initializer_list<std::string_view> parts);

// Official Account plain-mode URL check and message signature: sha1(sort(token, timestamp,
// nonce)) compared with `signature`; BAD_SIGNATURE otherwise. On success the GET answers
// `echostr` unchanged.
Status VerifyPlainSignature(std::string_view token, std::string_view timestamp,
                            std::string_view nonce, std::string_view signature);

// JS-SDK wx.config signature: sha1("jsapi_ticket=…&noncestr=…&timestamp=…&url=…"). The URL is
// taken up to '#': the page signs location.href without its fragment.
std::string JsApiSignature(std::string_view ticket, std::string_view noncestr,
                           std::string_view timestamp, std::string_view url);

}  // namespace siyu::wechat
