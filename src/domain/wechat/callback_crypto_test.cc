#include "domain/wechat/callback_crypto.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>
#include <string>

#include "domain/wechat/encoding.h"

namespace siyu::wechat {
namespace {

// V1: WeCom's official sample (weworkapi_cplusplus).
constexpr char kV1Token[] = "QDG6eK";
constexpr char kV1Key[] = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
constexpr char kV1Corp[] = "wx5823bf96d3bd56c7";
constexpr char kV1KeyHex[] = "8d69989bbaabe67328014c194631ad0719b3dca035b64023df292447aab60760";
constexpr char kV1Echostr[] =
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
constexpr char kV1PostEncrypt[] =
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdC"
    "Upj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4X"
    "gpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+K"
    "qCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XX"
    "ZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHB"
    "ZZIs2pDBS8R07+qN+E7Q==";
constexpr char kV1PostPlain[] =
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    "<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    "<CreateTime>1409659813</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n"
    "<AgentID>218</AgentID>\n"
    "</xml>";

// V3: wechatpy tests/test_crypto.py.
constexpr char kV3Token[] = "123456";
constexpr char kV3Key[] = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
constexpr char kV3Corp[] = "wx49f0ab532d5d035a";
constexpr char kV3Echostr[] =
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";
constexpr char kV3Encrypt[] =
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrs"
    "TyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+"
    "BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7"
    "vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dS"
    "hyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=";
constexpr char kV3Plain[] =
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n"
    "<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n"
    "<CreateTime>1411525903</CreateTime>\n</xml>";
constexpr char kV3Expected[] =
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBq"
    "GsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFh"
    "HZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX0"
    "5UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3"
    "WeK2XeFYFMNMpatF9XiKzHo3";

CallbackCrypto Make(const char* token, const char* key, const char* receive_id) {
  auto c = CallbackCrypto::Create(token, key, receive_id);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(c).value();
}

std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// AES-256-CBC with OpenSSL directly (no padding, IV = key[0:16]), so that malformed plaintexts
// can be sealed without going through the code under test.
std::string SealRaw(const std::string& key, const std::string& plain) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), nullptr, k, k);
  EVP_CIPHER_CTX_set_padding(ctx, 0);
  std::string out(plain.size() + 32, '\0');
  int n1 = 0;
  int n2 = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  EXPECT_EQ(EVP_EncryptUpdate(ctx, o, &n1, reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(plain.size())),
            1);
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx, o + n1, &n2), 1);
  EVP_CIPHER_CTX_free(ctx);
  out.resize(static_cast<size_t>(n1 + n2));
  std::string b64(4 * ((out.size() + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                            reinterpret_cast<const unsigned char*>(out.data()),
                            static_cast<int>(out.size()));
  b64.resize(static_cast<size_t>(len));
  return b64;
}

// random(16) | big-endian length | msg | id, without padding.
std::string Frame(std::string_view msg, std::string_view id, uint32_t declared_len) {
  std::string p(16, 'r');
  p.push_back(static_cast<char>(declared_len >> 24));
  p.push_back(static_cast<char>(declared_len >> 16 & 0xFF));
  p.push_back(static_cast<char>(declared_len >> 8 & 0xFF));
  p.push_back(static_cast<char>(declared_len & 0xFF));
  p.append(msg);
  p.append(id);
  return p;
}

std::string Post(std::string_view encrypt) {
  return "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[" +
         std::string(encrypt) + "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>";
}

// ---- Published vectors -------------------------------------------------------------------------

TEST(CallbackCryptoVectors, V1VerifyUrl) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  EXPECT_EQ(c.Signature("1409659589", "263014780", kV1Echostr),
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3");
  auto echo = c.VerifyUrl("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
                          kV1Echostr);
  ASSERT_TRUE(echo.ok()) << echo.status().ToString();
  EXPECT_EQ(*echo, "1616140317555161061");
  auto parts = c.Open(kV1Echostr);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(HexEncode(parts->random), "63343162363434393163323436386430");
  EXPECT_EQ(parts->receive_id, kV1Corp);
}

TEST(CallbackCryptoVectors, V1DecryptOfficialPost) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  EXPECT_EQ(c.Signature("1409659813", "1372623149", kV1PostEncrypt),
            "477715d11cdb4164915debcba66cb864d751f3e6");
  // The body exactly as the sample shows it: newlines between elements, AgentID after Encrypt.
  std::string body =
      "<xml>\n<ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[" +
      std::string(kV1PostEncrypt) + "]]></Encrypt>\n<AgentID><![CDATA[218]]></AgentID>\n</xml>";
  auto plain = c.DecryptMessage("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813",
                                "1372623149", body);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(*plain, kV1PostPlain);
  EXPECT_EQ(plain->size(), 284u);  // padded with 30: no trimming of the trailing "\n</xml>"
}

TEST(CallbackCryptoVectors, V3EchostrAndWrongNonce) {
  CallbackCrypto c = Make(kV3Token, kV3Key, kV3Corp);
  auto echo = c.VerifyUrl("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425",
                          kV3Echostr);
  ASSERT_TRUE(echo.ok()) << echo.status().ToString();
  EXPECT_EQ(*echo, "5927782489442352469");
  auto bad = c.VerifyUrl("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424",
                         kV3Echostr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kBadSignature);
}

TEST(CallbackCryptoVectors, V3Decrypt) {
  CallbackCrypto c = Make(kV3Token, kV3Key, kV3Corp);
  auto plain = c.DecryptMessage("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903",
                                "461056294", Post(kV3Encrypt));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(*plain,
            "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n"
            "<FromUserName><![CDATA[messense]]></FromUserName>\n"
            "<CreateTime>1411525903</CreateTime>\n"
            "<MsgType><![CDATA[text]]></MsgType>\n"
            "<Content><![CDATA[test]]></Content>\n"
            "<MsgId>4363689963896700987</MsgId>\n"
            "<AgentID>1</AgentID>\n"
            "</xml>");
}

TEST(CallbackCryptoVectors, V3DeterministicEncryptAndReply) {
  CallbackCrypto c = Make(kV3Token, kV3Key, kV3Corp);
  auto enc = c.Encrypt(kV3Plain, "1234567890123456");
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(*enc, kV3Expected);
  EXPECT_EQ(c.Signature("1411525903", "461056294", *enc),
            "407518b7649e86ef23978113f92d27afa9296533");
  auto reply = c.EncryptReply(kV3Plain, "1411525903", "461056294", "1234567890123456");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(*reply,
            std::string("<xml><Encrypt><![CDATA[") + kV3Expected +
                "]]></Encrypt><MsgSignature><![CDATA["
                "407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>"
                "<TimeStamp>1411525903</TimeStamp><Nonce><![CDATA[461056294]]></Nonce></xml>");
  // The reply envelope is itself a valid callback body.
  auto back = c.DecryptMessage("407518b7649e86ef23978113f92d27afa9296533", "1411525903",
                               "461056294", *reply);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, kV3Plain);
}

struct PeerVector {
  const char* name;
  const char* msg;
  const char* ciphertext;
  const char* signature;
};

TEST(CallbackCryptoVectors, PeerGeneratedEncEchostrAndEncUtf8) {
  const PeerVector kVectors[] = {
      {"enc_echostr", "1288432023552776189",
       "sKqRbbiSUnDhFHOvPjtUMf+xwrnV77cSWh4CiLPt/FeoALdcM2k9QAq9T5vsKwlqVa8l7KB4GC1vO131WM6wkw==",
       "707fc6413176cc961d7672953919f40c75d5a51e"},
      {"enc_utf8", "<xml><Content><![CDATA[你好，私域]]></Content></xml>",
       "sKqRbbiSUnDhFHOvPjtUMXsb2gYezRgF/sNHmL8Q/BXsI8cLFZDyIz04cDR721EUmL0zGeHQbZtsZe800yqMWlVzJv+"
       "l6pjFGTYWJjdXJuBxJZiF8ZXOHk+BnQgIm/pJ",
       "cb9dfec5a6668f20db69f1a5c18193f9b3c623ad"},
  };
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  for (const PeerVector& v : kVectors) {
    SCOPED_TRACE(v.name);
    auto enc = c.Encrypt(v.msg, "0123456789abcdef");
    ASSERT_TRUE(enc.ok());
    EXPECT_EQ(*enc, v.ciphertext);
    EXPECT_EQ(c.Signature("1700000000", "1234567890", v.ciphertext), v.signature);
    auto reply = c.EncryptReply(v.msg, "1700000000", "1234567890", "0123456789abcdef");
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(*reply, std::string("<xml><Encrypt><![CDATA[") + v.ciphertext +
                          "]]></Encrypt><MsgSignature><![CDATA[" + v.signature +
                          "]]></MsgSignature><TimeStamp>1700000000</TimeStamp><Nonce><![CDATA["
                          "1234567890]]></Nonce></xml>");
    auto plain = c.VerifyUrl(v.signature, "1700000000", "1234567890", v.ciphertext);
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(*plain, v.msg);
  }
}

TEST(CallbackCryptoVectors, V8SignatureOnly) {
  CallbackCrypto c = Make("RMNlACHlV5ThzfRlVS4D4", kV1Key, kV1Corp);
  EXPECT_EQ(c.Signature("timestamp", "nonce", "encrypt"),
            "8edac0945683c119ee71c9f6256d76c48aa08a96");
  EXPECT_EQ(SortedSha1({"RMNlACHlV5ThzfRlVS4D4", "timestamp", "nonce", "encrypt"}),
            "8edac0945683c119ee71c9f6256d76c48aa08a96");
}

TEST(CallbackCryptoVectors, OfficialAccountPlainMode) {
  EXPECT_TRUE(
      VerifyPlainSignature("test", "1410685589", "test", "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff")
          .ok());
  Status wrong_token = VerifyPlainSignature("tset", "1410685589", "test",
                                            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff");
  EXPECT_EQ(wrong_token.code(), ErrorCode::kBadSignature);
  EXPECT_EQ(VerifyPlainSignature("test", "1410685589", "test", "").code(),
            ErrorCode::kBadSignature);
}

TEST(CallbackCryptoVectors, JsApiSignature) {
  constexpr char kTicket[] =
      "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
  EXPECT_EQ(JsApiSignature(kTicket, "Wm3WZYTPz0wzccnW", "1414587457",
                           "http://mp.weixin.qq.com?params=value"),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
  // The fragment is not part of what the page signs.
  EXPECT_EQ(JsApiSignature(kTicket, "Wm3WZYTPz0wzccnW", "1414587457",
                           "http://mp.weixin.qq.com?params=value#/cart"),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
}

TEST(CallbackCryptoVectors, SortIsByteWiseUnsigned) {
  // A signed-char sort would put the 0xE4 byte (a UTF-8 lead byte) before 'z'.
  EXPECT_EQ(SortedSha1({"\xe4\xbd\xa0", "z", "A"}), Sha1Hex("Az\xe4\xbd\xa0"));
  EXPECT_EQ(SortedSha1({"b", "a", "ab", ""}), Sha1Hex("aabb"));
}

// ---- Key handling ------------------------------------------------------------------------------

TEST(CallbackCryptoKey, RejectsKeysThatAreNot43CharsOf32Bytes) {
  for (std::string key :
       {std::string(42, 'A'), std::string(44, 'A'), std::string(),
        std::string(kV1Key).substr(0, 42) + "-", std::string(kV1Key).substr(0, 42) + "="}) {
    auto c = CallbackCrypto::Create("t", key, "id");
    ASSERT_FALSE(c.ok()) << key;
    EXPECT_EQ(c.status().code(), ErrorCode::kInvalidField);
    EXPECT_EQ(c.status().field(), "encoding_aes_key");
    EXPECT_NE(c.status().message().find("EncodingAESKey"), std::string::npos);
  }
  auto no_token = CallbackCrypto::Create("", kV1Key, "id");
  ASSERT_FALSE(no_token.ok());
  EXPECT_EQ(no_token.status().field(), "token");
}

TEST(CallbackCryptoKey, LenientLastCharacterAndAllZeroKey) {
  // kV1Key ends in 'C' (low bits 10): non-canonical. 'A' is the canonical spelling of the same
  // 32 bytes, so both must encrypt identically.
  std::string canonical = std::string(kV1Key).substr(0, 42) + "A";
  CallbackCrypto a = Make(kV1Token, kV1Key, kV1Corp);
  CallbackCrypto b = Make(kV1Token, canonical.c_str(), kV1Corp);
  EXPECT_EQ(*a.Encrypt("x", "0123456789abcdef"), *b.Encrypt("x", "0123456789abcdef"));
  // The key bytes are the ones the peers computed.
  std::string frame = Frame("x", kV1Corp, 1);
  frame.append(32 - frame.size() % 32, static_cast<char>(32 - frame.size() % 32));
  EXPECT_EQ(*a.Encrypt("x", "rrrrrrrrrrrrrrrr"), SealRaw(FromHex(kV1KeyHex), frame));

  // 43 × 'A' is 32 zero bytes.
  CallbackCrypto zero = Make("t", std::string(43, 'A').c_str(), "id");
  std::string zframe = Frame("hi", "id", 2);
  zframe.append(32 - zframe.size() % 32, static_cast<char>(32 - zframe.size() % 32));
  EXPECT_EQ(*zero.Encrypt("hi", "rrrrrrrrrrrrrrrr"), SealRaw(std::string(32, '\0'), zframe));
}

// ---- Bad input ---------------------------------------------------------------------------------

TEST(CallbackCryptoBadInput, FlippedCiphertextByte) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  std::string raw = *Base64Decode(kV1PostEncrypt, "e");
  for (size_t pos : {size_t{0}, size_t{16}, raw.size() / 2, raw.size() - 17, raw.size() - 1}) {
    SCOPED_TRACE(pos);
    std::string flipped = raw;
    flipped[pos] ^= 0x01;
    std::string b64 = Base64Encode(flipped);
    // Through the callback entry point the signature no longer matches, so nothing is decrypted.
    auto via_post = c.DecryptMessage("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813",
                                     "1372623149", Post(b64));
    ASSERT_FALSE(via_post.ok());
    EXPECT_EQ(via_post.status().code(), ErrorCode::kBadSignature);
    // A correctly signed but corrupted payload never decrypts to the original message.
    auto direct = c.Decrypt(b64);
    if (direct.ok()) {
      EXPECT_NE(*direct, kV1PostPlain);
    }
  }
  // Flipping the last byte of the next-to-last block flips the pad byte itself (30 → 31).
  std::string pad_hit = raw;
  pad_hit[raw.size() - 17] ^= 0x01;
  auto r = c.Decrypt(Base64Encode(pad_hit));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
  // Flipping a bit in block 0 flips the same bit of the length field in block 1's plaintext.
  std::string len_hit = raw;
  len_hit[0] ^= 0x40;
  r = c.Decrypt(Base64Encode(len_hit));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
}

TEST(CallbackCryptoBadInput, TruncatedBase64) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  std::string echostr = kV1Echostr;
  auto r = c.Decrypt(echostr.substr(0, echostr.size() - 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kBadBase64);
  // Valid base64 but not whole AES blocks.
  r = c.Decrypt(echostr.substr(0, echostr.size() - 4));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
  // Whole blocks, but the padding block is gone.
  std::string raw = *Base64Decode(kV1Echostr, "e");
  r = c.Decrypt(Base64Encode(raw.substr(0, raw.size() - 16)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
  r = c.Decrypt("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
  // Through VerifyUrl the signature is checked first, and the field names the echostr.
  std::string cut = echostr.substr(0, echostr.size() - 1);
  auto v = c.VerifyUrl(c.Signature("1", "2", cut), "1", "2", cut);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), ErrorCode::kBadBase64);
  EXPECT_EQ(v.status().field(), "echostr");
}

TEST(CallbackCryptoBadInput, PaddingOutsideOneToThirtyTwo) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  std::string key = FromHex(kV1KeyHex);
  std::string base = Frame("hello", kV1Corp, 5);  // 43 bytes

  std::string pad0 = base;
  pad0.append(64 - pad0.size(), '\0');  // ends in 0x00
  auto r = c.Decrypt(SealRaw(key, pad0));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);

  std::string pad33 = base;
  pad33.append(96 - 33 - pad33.size(), 'z');
  pad33.append(33, static_cast<char>(33));
  ASSERT_EQ(pad33.size(), 96u);
  r = c.Decrypt(SealRaw(key, pad33));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);

  // The last byte says 21 but the bytes before it disagree.
  std::string inconsistent = base;
  inconsistent.append(21, static_cast<char>(21));
  inconsistent[inconsistent.size() - 5] = 'q';
  r = c.Decrypt(SealRaw(key, inconsistent));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);

  // Pad 32 (a whole block, when the frame is already aligned) and pad 1 are both valid.
  std::string aligned = Frame(std::string(26, 'm'), kV1Corp, 26);
  ASSERT_EQ(aligned.size(), 64u);
  aligned.append(32, static_cast<char>(32));
  r = c.Decrypt(SealRaw(key, aligned));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, std::string(26, 'm'));
  std::string one = Frame(std::string(25, 'm'), kV1Corp, 25);
  one.push_back('\x01');
  r = c.Decrypt(SealRaw(key, one));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, std::string(25, 'm'));
}

TEST(CallbackCryptoBadInput, LengthFieldOutOfBounds) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  std::string key = FromHex(kV1KeyHex);
  for (uint32_t declared : {uint32_t{24}, uint32_t{0xFFFFFFFF}, uint32_t{0x80000000}}) {
    std::string p = Frame("hello", kV1Corp, declared);
    p.append(64 - p.size(), static_cast<char>(64 - p.size()));
    auto r = c.Decrypt(SealRaw(key, p));
    ASSERT_FALSE(r.ok()) << declared;
    EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
  }
  // Shorter than random + length: 16 bytes of random and 16 of padding.
  std::string tiny(16, 'r');
  tiny.append(16, static_cast<char>(16));
  auto r = c.Decrypt(SealRaw(key, tiny));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
}

TEST(CallbackCryptoBadInput, WrongReceiveId) {
  for (const char* other : {"wx0000000000000000", "wx5823bf96d3bd56c", "wx5823bf96d3bd56c7x", ""}) {
    SCOPED_TRACE(other);
    CallbackCrypto c = Make(kV1Token, kV1Key, other);
    auto r = c.VerifyUrl("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
                         kV1Echostr);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kBadReceiveId);
    EXPECT_NE(r.status().message().find(kV1Corp), std::string::npos);
  }
  // A message addressed to the empty receiveid (personal third-party apps) matches only that.
  CallbackCrypto empty = Make(kV1Token, kV1Key, "");
  auto enc = empty.Encrypt("m");
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(*empty.Decrypt(*enc), "m");
  EXPECT_EQ(Make(kV1Token, kV1Key, kV1Corp).Decrypt(*enc).status().code(),
            ErrorCode::kBadReceiveId);
}

TEST(CallbackCryptoBadInput, WrongToken) {
  CallbackCrypto c = Make("QDG6eL", kV1Key, kV1Corp);
  auto r = c.VerifyUrl("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780",
                       kV1Echostr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kBadSignature);
  EXPECT_EQ(r.status().field(), "msg_signature");
  // Upper-case hex is not what the platform sends.
  CallbackCrypto good = Make(kV1Token, kV1Key, kV1Corp);
  r = good.VerifyUrl("5C45FF5E21C57E6AD56BAC8758B79B1D9AC89FD3", "1409659589", "263014780",
                     kV1Echostr);
  EXPECT_EQ(r.status().code(), ErrorCode::kBadSignature);
}

TEST(CallbackCryptoBadInput, MalformedEnvelope) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  for (std::string body :
       {std::string("<xml><Encrypt><![CDATA[abc]]></Encrypt>"), std::string("not xml at all"),
        std::string(""), std::string("<xml><ToUserName>x</ToUserName></xml>"),
        std::string("<root><Encrypt>abcd</Encrypt></root>")}) {
    SCOPED_TRACE(body);
    auto r = c.DecryptMessage("sig", "1", "2", body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kMalformedXml);
  }
  auto r = c.DecryptMessage("sig", "1", "2", "<xml><AgentID>1</AgentID></xml>");
  EXPECT_EQ(r.status().field(), "Encrypt");
  // An entity bomb / external entity is not expanded.
  std::string xxe =
      "<!DOCTYPE xml [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Encrypt>&e;</Encrypt></xml>";
  r = c.DecryptMessage("sig", "1", "2", xxe);
  ASSERT_FALSE(r.ok());
}

TEST(CallbackCryptoBadInput, ReplyArgumentsAreChecked) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  EXPECT_EQ(c.EncryptReply("x", "17000000a0", "1").status().field(), "timestamp");
  EXPECT_EQ(c.EncryptReply("x", "1700000000", "]]><x>").status().field(), "nonce");
  EXPECT_EQ(c.EncryptReply("x", "1700000000", "").status().field(), "nonce");
  EXPECT_EQ(c.Encrypt("x", "short").status().field(), "random");
}

TEST(CallbackCryptoBadInput, RandomCiphertextsAreRejectedCleanly) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  std::mt19937 rng(20240601);
  for (int i = 0; i < 2000; ++i) {
    std::string raw(16 * (1 + rng() % 8), '\0');
    for (char& ch : raw) ch = static_cast<char>(rng());
    auto r = c.Decrypt(Base64Encode(raw));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().code() == ErrorCode::kDecryptFailed ||
                r.status().code() == ErrorCode::kBadReceiveId)
        << r.status().ToString();
  }
  // Every prefix of a real envelope fails without crashing.
  std::string body = Post(kV1PostEncrypt);
  for (size_t n = 0; n < body.size(); ++n) {
    auto r = c.DecryptMessage("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813",
                              "1372623149", body.substr(0, n));
    EXPECT_FALSE(r.ok()) << n;
  }
}

// ---- Round trips -------------------------------------------------------------------------------

TEST(CallbackCryptoRoundTrip, EveryLengthAndNoTrimming) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  std::string msg;
  for (int len = 0; len <= 100; ++len) {
    auto enc = c.Encrypt(msg);
    ASSERT_TRUE(enc.ok());
    EXPECT_EQ(Base64Decode(*enc, "e")->size() % 32, 0u);
    auto sig = c.Signature("1700000000", "42", *enc);
    auto dec = c.DecryptMessage(sig, "1700000000", "42", Post(*enc));
    ASSERT_TRUE(dec.ok()) << len << ": " << dec.status().ToString();
    ASSERT_EQ(*dec, msg) << len;
    msg.push_back(static_cast<char>("\n \t\r\0x\xe4"[len % 7]));
  }
  for (std::string m : {std::string("\n<xml>\n</xml>\n\n"), std::string("  padded  "),
                        std::string("中文\n私域\r\n"), std::string("\0\0", 2)}) {
    auto enc = c.Encrypt(m);
    ASSERT_TRUE(enc.ok());
    EXPECT_EQ(*c.Decrypt(*enc), m);
  }
}

TEST(CallbackCryptoRoundTrip, FreshRandomEachTime) {
  CallbackCrypto c = Make(kV1Token, kV1Key, kV1Corp);
  auto a = c.Encrypt("same");
  auto b = c.Encrypt("same");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  auto reply = c.EncryptReply("<xml/>", "1700000000", "abc123");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->rfind("<xml><Encrypt><![CDATA[", 0), 0u);
}

}  // namespace
}  // namespace siyu::wechat
