#include "domain/wechat/encoding.h"

#include <gtest/gtest.h>

namespace siyu::wechat {
namespace {

TEST(Encoding, Base64Rfc4648Vectors) {
  const std::pair<const char*, const char*> kVectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : kVectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    auto decoded = Base64Decode(encoded, "f");
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
  EXPECT_EQ(Base64Encode(std::string("\xff\xfe\x00", 3)), "//4A");
}

TEST(Encoding, Base64AcceptsNonZeroTrailingBits) {
  // "Zh==" and "Zm9=" are the non-canonical spellings of "Zg==" and "Zm8=".
  EXPECT_EQ(*Base64Decode("Zh==", "f"), "f");
  EXPECT_EQ(*Base64Decode("Zm9=", "f"), "fo");
}

TEST(Encoding, Base64RejectsWhatIsNotBase64) {
  for (const char* bad : {"Zg=", "Zm9vY", "Zm9v Yg==", "Zm9v\nYg==", "Zm-v", "Zm_v",
                          "Z===", "====", "Zg==Zg==", "=Zg="}) {
    auto r = Base64Decode(bad, "encrypt");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kBadBase64) << bad;
    EXPECT_EQ(r.status().field(), "encrypt");
  }
}

TEST(Encoding, Sha1AndHex) {
  EXPECT_EQ(Sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(HexEncode(std::string("\x00\x7f\xff", 3)), "007fff");
}

TEST(Encoding, AesCbcRawRejectsBadShapes) {
  std::string key(32, 'k');
  std::string iv(16, 'i');
  EXPECT_FALSE(AesCbcEncryptRaw(key, iv, "not a block").ok());
  EXPECT_FALSE(AesCbcEncryptRaw(std::string(24, 'k'), iv, std::string(16, 'x')).ok());
  EXPECT_FALSE(AesCbcEncryptRaw(key, "short", std::string(16, 'x')).ok());
  auto enc = AesCbcEncryptRaw(key, iv, std::string(32, 'x'));
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(enc->size(), 32u);
  EXPECT_EQ(*AesCbcDecryptRaw(key, iv, *enc), std::string(32, 'x'));
}

}  // namespace
}  // namespace siyu::wechat
