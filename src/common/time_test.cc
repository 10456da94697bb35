#include "common/time.h"

#include <gtest/gtest.h>

namespace siyu {
namespace {

TEST(Time, ParsesDatesInShanghai) {
  // 2026-11-01 00:00 +08:00 == 2026-10-31T16:00:00Z
  auto ms = ParseTimeParam("2026-11-01");
  ASSERT_TRUE(ms.has_value());
  EXPECT_EQ(*ms, 1793462400000LL);
  EXPECT_EQ(ParseTimeParam("2026-11-01", "UTC").value(), 1793491200000LL);
  EXPECT_EQ(ParseTimeParam("1793462400000").value(), 1793462400000LL);
  EXPECT_FALSE(ParseTimeParam("2026-13-01").has_value());
  EXPECT_FALSE(ParseTimeParam("2026-02-30").has_value());
  EXPECT_FALSE(ParseTimeParam("-5").has_value());
  EXPECT_FALSE(ParseTimeParam("12ab").has_value());
}

TEST(Time, StartOfLocalDay) {
  int64_t noon = 1793462400000LL + 12 * 3600 * 1000;
  EXPECT_EQ(StartOfLocalDay(noon), 1793462400000LL);
}

}  // namespace
}  // namespace siyu
