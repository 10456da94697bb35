#include "store/eventlog/crc32c.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace siyu::eventlog {
namespace {

uint32_t Crc(std::string_view s) { return Crc32c(s.data(), s.size()); }

// Check values from RFC 3720 (iSCSI), appendix B.4, and the common "123456789" check.
TEST(Crc32cTest, KnownValues) {
  EXPECT_EQ(Crc(std::string_view("123456789")), 0xe3069283u);
  EXPECT_EQ(Crc(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc(ascending), 0x46dd794eu);
  EXPECT_EQ(Crc(descending), 0x113fdb5cu);
  EXPECT_EQ(Crc(std::string_view()), 0u);
}

TEST(Crc32cTest, HardwareAndPortableAgreeAndExtend) {
  std::mt19937 rng(7);
  std::string data(4096 + 7, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t start = 0; start < 8; ++start) {
    for (size_t n : {0, 1, 7, 8, 9, 15, 16, 63, 300, 1000, 4096}) {
      const char* p = data.data() + start;
      ASSERT_EQ(Crc32c(p, n), Crc32cPortable(p, n)) << start << " " << n;
      for (size_t cut : {size_t{0}, n / 3, n}) {
        EXPECT_EQ(Crc32c(p + cut, n - cut, Crc32c(p, cut)), Crc32c(p, n)) << start << " " << n;
        EXPECT_EQ(Crc32cPortable(p + cut, n - cut, Crc32cPortable(p, cut)), Crc32c(p, n));
      }
    }
  }
}

}  // namespace
}  // namespace siyu::eventlog
