#include "domain/wechat/miniprogram.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "domain/wechat/encoding.h"

namespace siyu::wechat {
namespace {

// wechatpy's test vector (originally the official mini-program sample).
constexpr char kAppId[] = "wx4f4bc4dec97d474b";
constexpr char kSessionKey[] = "tiihtNczf5v6AKRyjwEUhQ==";
constexpr char kIv[] = "r7BXXKkLb8qrSNn05n0qiA==";
constexpr char kEncryptedData[] =
    "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+o"
    "NPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnE"
    "tpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//"
    "FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHq"
    "Z9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoK"
    "laRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

// AES-128-CBC through OpenSSL directly; `padding` false lets a test choose the final bytes.
std::string Seal128(const std::string& key, const std::string& iv, const std::string& plain,
                    bool padding) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), nullptr,
                     reinterpret_cast<const unsigned char*>(key.data()),
                     reinterpret_cast<const unsigned char*>(iv.data()));
  EVP_CIPHER_CTX_set_padding(ctx, padding ? 1 : 0);
  std::string out(plain.size() + 16, '\0');
  int n1 = 0;
  int n2 = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  EXPECT_EQ(EVP_EncryptUpdate(ctx, o, &n1, reinterpret_cast<const unsigned char*>(plain.data()),
                              static_cast<int>(plain.size())),
            1);
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx, o + n1, &n2), 1);
  EVP_CIPHER_CTX_free(ctx);
  out.resize(static_cast<size_t>(n1 + n2));
  return Base64Encode(out);
}

std::string RandomBytes(size_t n) {
  std::string s(n, '\0');
  EXPECT_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n)), 1);
  return s;
}

TEST(Code2Session, RequestUrl) {
  auto url =
      Code2SessionRequest("wx4f4bc4dec97d474b", "s3cr3t", "081kQn0007nP9R1OnQ2009bHJG2kQn0U");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(*url,
            "https://api.weixin.qq.com/sns/jscode2session?appid=wx4f4bc4dec97d474b&secret=s3cr3t"
            "&js_code=081kQn0007nP9R1OnQ2009bHJG2kQn0U&grant_type=authorization_code");
  auto escaped = Code2SessionRequest("wx1", "a b&c=d/+", "x%y?#中");
  ASSERT_TRUE(escaped.ok());
  EXPECT_EQ(*escaped,
            "https://api.weixin.qq.com/sns/jscode2session?appid=wx1&secret=a%20b%26c%3Dd%2F%2B"
            "&js_code=x%25y%3F%23%E4%B8%AD&grant_type=authorization_code");
  EXPECT_EQ(Code2SessionRequest("wx1", "s", "").status().field(), "js_code");
  EXPECT_EQ(Code2SessionRequest("wx1", "s", std::string(129, 'c')).status().field(), "js_code");
  EXPECT_EQ(Code2SessionRequest("", "s", "c").status().field(), "appid");
  EXPECT_EQ(Code2SessionRequest("wx1", "", "c").status().field(), "secret");
}

TEST(Code2Session, ParsesSuccess) {
  auto r = ParseCode2SessionResponse(
      R"({"session_key":"tiihtNczf5v6AKRyjwEUhQ==","openid":"oGZUI0egBJY1zhBYw2KhdUfwVJJE",)"
      R"("unionid":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->openid, "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
  EXPECT_EQ(r->session_key, "tiihtNczf5v6AKRyjwEUhQ==");
  EXPECT_EQ(r->unionid, "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");

  r = ParseCode2SessionResponse(R"({"errcode":0,"errmsg":"ok","session_key":"k","openid":"o"})");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->unionid.has_value());
}

TEST(Code2Session, ErrorsCarryErrcodeAndErrmsg) {
  struct Case {
    int errcode;
    ErrorCode code;
  };
  const Case kCases[] = {
      {40029, ErrorCode::kWechatInvalidCode}, {40163, ErrorCode::kWechatInvalidCode},
      {45011, ErrorCode::kWechatRateLimited}, {40226, ErrorCode::kWechatRiskyUser},
      {-1, ErrorCode::kWechatApiError},       {40013, ErrorCode::kWechatApiError},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.errcode);
    std::string body = R"({"errcode":)" + std::to_string(c.errcode) +
                       R"(,"errmsg":"invalid code, rid: 6500a1b2-1c2d3e4f"})";
    auto r = ParseCode2SessionResponse(body);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code);
    EXPECT_EQ(r.status().message(), "jscode2session errcode " + std::to_string(c.errcode) +
                                        ": invalid code, rid: 6500a1b2-1c2d3e4f");
  }
  for (const char* bad : {"<html>502</html>", "", R"({"openid":"o"})", R"({"session_key":"k"})",
                          R"({"openid":1,"session_key":"k"})"}) {
    auto r = ParseCode2SessionResponse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kWechatApiError) << bad;
  }
}

TEST(UserInfoSignature, Sha1OfRawDataAndSessionKey) {
  std::string raw = R"({"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou"})";
  std::string joined = raw + kSessionKey;
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(joined.data()), joined.size(), md);
  std::string expected = HexEncode(std::string(reinterpret_cast<char*>(md), sizeof md));
  EXPECT_TRUE(VerifyUserInfoSignature(raw, kSessionKey, expected).ok());
  EXPECT_EQ(VerifyUserInfoSignature(raw + " ", kSessionKey, expected).code(),
            ErrorCode::kBadSignature);
  EXPECT_EQ(VerifyUserInfoSignature(raw, "AAAAAAAAAAAAAAAAAAAAAA==", expected).code(),
            ErrorCode::kBadSignature);
}

TEST(UserData, OfficialVector) {
  auto r = DecryptUserData(kEncryptedData, kIv, kSessionKey, kAppId);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->watermark_timestamp, 1477314187);
  EXPECT_EQ(r->json.front(), '{');
  EXPECT_NE(r->json.find(R"("openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE")"), std::string::npos);
  EXPECT_NE(r->json.find(R"("unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA")"), std::string::npos);
  EXPECT_NE(r->json.find(R"("watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"})"),
            std::string::npos);
  EXPECT_EQ(r->json.back(), '}');
}

TEST(UserData, GeneratedVectorRoundTrip) {
  for (size_t filler = 0; filler < 40; ++filler) {  // every padding length 1..16
    SCOPED_TRACE(filler);
    std::string key = RandomBytes(16);
    std::string iv = RandomBytes(16);
    std::string json = R"({"phoneNumber":"13800138000","x":")" + std::string(filler, 'z') +
                       R"(","watermark":{"appid":"wxTEST","timestamp":1700000000}})";
    auto r = DecryptUserData(Seal128(key, iv, json, true), Base64Encode(iv), Base64Encode(key),
                             "wxTEST");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->json, json);
    EXPECT_EQ(r->watermark_timestamp, 1700000000);
  }
}

TEST(UserData, Rejections) {
  // Sealed for another app.
  auto r = DecryptUserData(kEncryptedData, kIv, kSessionKey, "wx0000000000000000");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kBadReceiveId);
  EXPECT_EQ(r.status().field(), "watermark.appid");

  // A different (stale) session key.
  r = DecryptUserData(kEncryptedData, kIv, "AAAAAAAAAAAAAAAAAAAAAA==", kAppId);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
  r = DecryptUserData(kEncryptedData, "AAAAAAAAAAAAAAAAAAAAAA==", kSessionKey, kAppId);
  ASSERT_FALSE(r.ok());  // a wrong IV garbles the first block: no longer a JSON object

  // Corrupt padding: last byte 0, last byte 17, and inconsistent pad bytes.
  std::string key = RandomBytes(16);
  std::string iv = RandomBytes(16);
  std::string body = R"({"watermark":{"appid":"wxTEST","timestamp":1}})";
  size_t n = 16 - body.size() % 16;
  ASSERT_GE(n, 2u);
  std::string inconsistent(n, static_cast<char>(n));
  inconsistent[0] = static_cast<char>(n - 1);
  for (std::string tail : {std::string(n, '\0'), std::string(n, '\x11'), inconsistent}) {
    std::string plain = body + tail;
    ASSERT_EQ(plain.size() % 16, 0u);
    r = DecryptUserData(Seal128(key, iv, plain, false), Base64Encode(iv), Base64Encode(key),
                        "wxTEST");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);
  }
  // The same body correctly padded decrypts: the rejections above are the padding's doing.
  std::string good = body + std::string(n, static_cast<char>(n));
  EXPECT_TRUE(
      DecryptUserData(Seal128(key, iv, good, false), Base64Encode(iv), Base64Encode(key), "wxTEST")
          .ok());

  // Valid padding, but no watermark.
  r = DecryptUserData(Seal128(key, iv, R"({"openId":"o"})", true), Base64Encode(iv),
                      Base64Encode(key), "wxTEST");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kDecryptFailed);

  // Bad shapes of the inputs.
  EXPECT_EQ(DecryptUserData(kEncryptedData, kIv, "dGlpaA==", kAppId).status().field(),
            "session_key");
  EXPECT_EQ(DecryptUserData(kEncryptedData, "r7BX", kSessionKey, kAppId).status().field(), "iv");
  EXPECT_EQ(DecryptUserData("CiyLU1Aw2Kjv", kIv, kSessionKey, kAppId).status().code(),
            ErrorCode::kDecryptFailed);
  EXPECT_EQ(DecryptUserData("CiyLU1Aw2Kj", kIv, kSessionKey, kAppId).status().code(),
            ErrorCode::kBadBase64);
  // A flipped byte in the last block breaks the padding.
  std::string raw = *Base64Decode(kEncryptedData, "e");
  raw[raw.size() - 17] ^= 0x01;
  EXPECT_EQ(DecryptUserData(Base64Encode(raw), kIv, kSessionKey, kAppId).status().code(),
            ErrorCode::kDecryptFailed);
}

}  // namespace
}  // namespace siyu::wechat
