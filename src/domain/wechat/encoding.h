// Byte-level helpers shared by the WeChat adapters: base64 as WeChat uses it, SHA-1 hex digests
// and AES-CBC without the cipher library's padding. Stateless; thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace siyu::wechat {

// Standard alphabet, with '=' padding.
std::string Base64Encode(std::string_view bytes);

// Standard alphabet; the input length must be a multiple of 4 with at most two trailing '='.
// Lenient in one way only: the unused low bits of the last character may be non-zero, because
// most EncodingAESKeys handed out by WeChat are non-canonical in exactly that way. Anything else
// (whitespace, URL-safe characters, a truncated string) is BAD_BASE64 naming `field`.
StatusOr<std::string> Base64Decode(std::string_view text, std::string_view field);

// Lower-case hex of SHA-1(data).
std::string Sha1Hex(std::string_view data);

// Lower-case hex of arbitrary bytes.
std::string HexEncode(std::string_view bytes);

// AES-CBC with a 16- or 32-byte key (AES-128 / AES-256) and a 16-byte IV. The cipher library's
// padding is disabled: WeChat pads to 32-byte blocks in callbacks, which a PKCS#7 implementation
// with a 16-byte block would reject, so callers pad and unpad themselves. `data` must be a whole
// number of 16-byte blocks (INTERNAL otherwise: the callers have already checked).
StatusOr<std::string> AesCbcEncryptRaw(std::string_view key, std::string_view iv,
                                       std::string_view data);
StatusOr<std::string> AesCbcDecryptRaw(std::string_view key, std::string_view iv,
                                       std::string_view data);

}  // namespace siyu::wechat
