// wechat_crypto_cli: the callback crypto on stdin/stdout, one JSON request per line and one JSON
// answer per line, so that other implementations (tests/wechat, node) can be checked against
// siyu's. Requests: {"op": …, "token", "key", "receive_id", …}
//   encrypt    message, [random_hex (32 hex digits)], [timestamp, nonce] → encrypt, [msg_signature]
//   decrypt    encrypt, [msg_signature, timestamp, nonce] → message (signature checked if given)
//   open       encrypt → random_hex, message, receive_id (no receiveid check)
//   signature  timestamp, nonce, encrypt → signature
//   decrypt_message  msg_signature, timestamp, nonce, body → message
//   reply      message, timestamp, nonce, [random_hex] → xml
//   jsapi      ticket, noncestr, timestamp, url → signature (no token/key needed)
// Answers carry "ok": true, or "ok": false with "code" and "message". Exit status 0 unless stdin
// cannot be read.
#include <iostream>
#include <optional>
#include <string>

#include "common/json.h"
#include "domain/wechat/callback_crypto.h"
#include "domain/wechat/encoding.h"

namespace siyu::wechat {
namespace {

std::optional<std::string> Str(const json::object& req, std::string_view key) {
  const json::value* v = req.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

json::object Failure(const Status& s) {
  json::object out;
  out["ok"] = false;
  out["code"] = ErrorCodeName(s.code());
  out["message"] = s.message();
  if (!s.field().empty()) out["field"] = s.field();
  return out;
}

StatusOr<std::string> Need(const json::object& req, std::string_view key) {
  std::optional<std::string> v = Str(req, key);
  if (!v) return Status(ErrorCode::kMissingField, "request lacks a string", std::string(key));
  return *v;
}

StatusOr<std::optional<std::string>> RandomFrom(const json::object& req) {
  std::optional<std::string> hex = Str(req, "random_hex");
  if (!hex) return std::optional<std::string>();
  if (hex->size() != 32) return InvalidField("random_hex", "must be 32 hex digits");
  auto nibble = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string bytes;
  for (size_t i = 0; i < 32; i += 2) {
    int hi = nibble((*hex)[i]);
    int lo = nibble((*hex)[i + 1]);
    if (hi < 0 || lo < 0) return InvalidField("random_hex", "must be 32 hex digits");
    bytes.push_back(static_cast<char>(hi << 4 | lo));
  }
  return std::optional<std::string>(bytes);
}

StatusOr<json::object> Handle(const json::object& req) {
  ASSIGN_OR_RETURN(std::string op, Need(req, "op"));
  json::object out;
  out["ok"] = true;
  if (op == "jsapi") {
    ASSIGN_OR_RETURN(std::string ticket, Need(req, "ticket"));
    ASSIGN_OR_RETURN(std::string noncestr, Need(req, "noncestr"));
    ASSIGN_OR_RETURN(std::string timestamp, Need(req, "timestamp"));
    ASSIGN_OR_RETURN(std::string url, Need(req, "url"));
    out["signature"] = JsApiSignature(ticket, noncestr, timestamp, url);
    return out;
  }
  ASSIGN_OR_RETURN(std::string token, Need(req, "token"));
  ASSIGN_OR_RETURN(std::string key, Need(req, "key"));
  ASSIGN_OR_RETURN(std::string receive_id, Need(req, "receive_id"));
  ASSIGN_OR_RETURN(CallbackCrypto crypto, CallbackCrypto::Create(token, key, receive_id));

  if (op == "encrypt") {
    ASSIGN_OR_RETURN(std::string message, Need(req, "message"));
    ASSIGN_OR_RETURN(std::optional<std::string> random, RandomFrom(req));
    StatusOr<std::string> enc = random ? crypto.Encrypt(message, *random) : crypto.Encrypt(message);
    if (!enc.ok()) return enc.status();
    std::optional<std::string> timestamp = Str(req, "timestamp");
    std::optional<std::string> nonce = Str(req, "nonce");
    if (timestamp && nonce) out["msg_signature"] = crypto.Signature(*timestamp, *nonce, *enc);
    out["encrypt"] = *enc;
    return out;
  }
  if (op == "decrypt") {
    ASSIGN_OR_RETURN(std::string encrypt, Need(req, "encrypt"));
    std::optional<std::string> signature = Str(req, "msg_signature");
    if (!signature) {
      ASSIGN_OR_RETURN(out["message"], crypto.Decrypt(encrypt));
      return out;
    }
    ASSIGN_OR_RETURN(std::string timestamp, Need(req, "timestamp"));
    ASSIGN_OR_RETURN(std::string nonce, Need(req, "nonce"));
    ASSIGN_OR_RETURN(out["message"], crypto.VerifyUrl(*signature, timestamp, nonce, encrypt));
    return out;
  }
  if (op == "open") {
    ASSIGN_OR_RETURN(std::string encrypt, Need(req, "encrypt"));
    ASSIGN_OR_RETURN(CallbackPlaintext p, crypto.Open(encrypt));
    out["random_hex"] = HexEncode(p.random);
    out["message"] = p.message;
    out["receive_id"] = p.receive_id;
    return out;
  }
  if (op == "signature") {
    ASSIGN_OR_RETURN(std::string timestamp, Need(req, "timestamp"));
    ASSIGN_OR_RETURN(std::string nonce, Need(req, "nonce"));
    ASSIGN_OR_RETURN(std::string encrypt, Need(req, "encrypt"));
    out["signature"] = crypto.Signature(timestamp, nonce, encrypt);
    return out;
  }
  if (op == "decrypt_message") {
    ASSIGN_OR_RETURN(std::string signature, Need(req, "msg_signature"));
    ASSIGN_OR_RETURN(std::string timestamp, Need(req, "timestamp"));
    ASSIGN_OR_RETURN(std::string nonce, Need(req, "nonce"));
    ASSIGN_OR_RETURN(std::string body, Need(req, "body"));
    ASSIGN_OR_RETURN(out["message"], crypto.DecryptMessage(signature, timestamp, nonce, body));
    return out;
  }
  if (op == "reply") {
    ASSIGN_OR_RETURN(std::string message, Need(req, "message"));
    ASSIGN_OR_RETURN(std::string timestamp, Need(req, "timestamp"));
    ASSIGN_OR_RETURN(std::string nonce, Need(req, "nonce"));
    ASSIGN_OR_RETURN(std::optional<std::string> random, RandomFrom(req));
    StatusOr<std::string> xml =
        random ? crypto.EncryptReply(message, timestamp, nonce, std::string_view(*random))
               : crypto.EncryptReply(message, timestamp, nonce);
    if (!xml.ok()) return xml.status();
    out["xml"] = *xml;
    return out;
  }
  return InvalidField("op", "unknown op '" + op + "'");
}

int Main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    json::object answer;
    StatusOr<json::object> req = ParseJsonObject(line);
    if (!req.ok()) {
      answer = Failure(req.status());
    } else {
      StatusOr<json::object> handled = Handle(*req);
      answer = handled.ok() ? std::move(handled).value() : Failure(handled.status());
    }
    std::cout << ToJson(answer) << '\n';
  }
  std::cout.flush();
  return std::cin.bad() ? 1 : 0;
}

}  // namespace
}  // namespace siyu::wechat

int main() { return siyu::wechat::Main(); }
