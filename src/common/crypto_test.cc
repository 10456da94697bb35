#include "common/crypto.h"

#include <gtest/gtest.h>

#include <set>

namespace siyu {
namespace {

TEST(Crypto, Sha256KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crypto, RandomBase62IsBase62AndVaries) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string s = RandomBase62(20);
    ASSERT_EQ(s.size(), 20u);
    for (char c : s) ASSERT_TRUE(isalnum(static_cast<unsigned char>(c)));
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(Base62(0), "0");
  EXPECT_EQ(Base62(61), "z");
  EXPECT_EQ(Base62(62), "10");
}

TEST(Crypto, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
}

}  // namespace
}  // namespace siyu
