#include "domain/wechat/encoding.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <array>
#include <memory>

namespace siyu::wechat {
namespace {

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// -1 for characters outside the standard alphabet.
constexpr std::array<int8_t, 256> MakeDecodeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kBase64Alphabet[i])] = i;
  return t;
}
constexpr auto kDecodeTable = MakeDecodeTable();

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};

const EVP_CIPHER* CipherFor(std::string_view key) {
  if (key.size() == 16) return EVP_aes_128_cbc();
  if (key.size() == 32) return EVP_aes_256_cbc();
  return nullptr;
}

StatusOr<std::string> AesCbcRaw(std::string_view key, std::string_view iv, std::string_view data,
                                bool encrypt) {
  const EVP_CIPHER* cipher = CipherFor(key);
  if (cipher == nullptr || iv.size() != 16 || data.size() % 16 != 0) {
    return Internal("AES-CBC called with a bad key, IV or block length");
  }
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter> ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return Internal("EVP_CIPHER_CTX_new failed");
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* v = reinterpret_cast<const unsigned char*>(iv.data());
  if (EVP_CipherInit_ex(ctx.get(), cipher, nullptr, k, v, encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1) {
    return Internal("AES-CBC initialisation failed");
  }
  std::string out(data.size(), '\0');
  int n1 = 0;
  int n2 = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_CipherUpdate(ctx.get(), o, &n1, reinterpret_cast<const unsigned char*>(data.data()),
                       static_cast<int>(data.size())) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), o + n1, &n2) != 1) {
    return Internal("AES-CBC failed");
  }
  out.resize(static_cast<size_t>(n1) + static_cast<size_t>(n2));
  return out;
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t j) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[j])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(kBase64Alphabet[v >> 18 & 63]);
    out.push_back(kBase64Alphabet[v >> 12 & 63]);
    out.push_back(kBase64Alphabet[v >> 6 & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = byte(i) << 16;
    out.push_back(kBase64Alphabet[v >> 18 & 63]);
    out.push_back(kBase64Alphabet[v >> 12 & 63]);
    out.append("==");
  } else if (rest == 2) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out.push_back(kBase64Alphabet[v >> 18 & 63]);
    out.push_back(kBase64Alphabet[v >> 12 & 63]);
    out.push_back(kBase64Alphabet[v >> 6 & 63]);
    out.push_back('=');
  }
  return out;
}

StatusOr<std::string> Base64Decode(std::string_view text, std::string_view field) {
  auto bad = [&](std::string why) {
    return Status(ErrorCode::kBadBase64, "not valid base64: " + why, std::string(field));
  };
  if (text.size() % 4 != 0) return bad("length is not a multiple of 4 (truncated?)");
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  std::string_view body = text.substr(0, text.size() - pad);
  std::string out;
  out.reserve(body.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : body) {
    int v = kDecodeTable[static_cast<unsigned char>(c)];
    if (v < 0) return bad("unexpected character");
    acc = (acc << 6 | static_cast<uint32_t>(v)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(acc >> bits & 0xFF));
    }
  }
  // One character alone cannot carry a byte: "A===" and similar are not base64 at all.
  if (body.size() % 4 == 1) return bad("dangling character");
  // The remaining `bits` low bits are discarded without checking that they are zero (lenient).
  return out;
}

std::string Sha1Hex(std::string_view data) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), sizeof md));
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * bytes.size(), '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[b >> 4];
    out[2 * i + 1] = kHex[b & 0xF];
  }
  return out;
}

StatusOr<std::string> AesCbcEncryptRaw(std::string_view key, std::string_view iv,
                                       std::string_view data) {
  return AesCbcRaw(key, iv, data, true);
}

StatusOr<std::string> AesCbcDecryptRaw(std::string_view key, std::string_view iv,
                                       std::string_view data) {
  return AesCbcRaw(key, iv, data, false);
}

}  // namespace siyu::wechat
