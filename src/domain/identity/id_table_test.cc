#include "domain/identity/id_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "domain/identity/segmented.h"

namespace siyu::identity {
namespace {

std::string IdFor(int i) {
  switch (i % 4) {
    case 0:
      return "openid:wx1234567890abcdef:o" + std::to_string(i) + "_padding_to_28_chars";
    case 1:
      return "unionid:u" + std::to_string(i);
    case 2:
      return "phone:+86" + std::to_string(13000000000LL + i);
    default:
      return "custom:ns" + std::to_string(i % 7) + ":" + std::to_string(i);
  }
}

TEST(IdTableTest, InternsFindsAndReturnsStringsAcrossChunks) {
  IdTable t;
  // ~40 bytes a record: 300k ids cross several 4 MiB chunks and offset blocks.
  const int n = 300000;
  for (int i = 0; i < n; ++i) {
    auto r = t.Insert(IdFor(i), static_cast<uint32_t>(i * 7));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(*r, static_cast<uint32_t>(i));
  }
  EXPECT_EQ(t.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    std::string id = IdFor(i);
    ASSERT_EQ(t.Find(id), static_cast<uint32_t>(i)) << id;
    ASSERT_EQ(t.Value(i), static_cast<uint32_t>(i * 7));
    ASSERT_EQ(t.Get(i), id);
  }
  EXPECT_EQ(t.Find("unionid:nope"), IdTable::kNone);
  EXPECT_EQ(t.Find("unknownprefix:x"), IdTable::kNone);
  EXPECT_EQ(t.Find("noprefix"), IdTable::kNone);
  EXPECT_EQ(t.Find(IdFor(1) + "x"), IdTable::kNone);
  EXPECT_GT(t.MemoryBytes().arena, 4u << 20);
}

TEST(IdTableTest, LongestTailFitsAndLongerIsRejected) {
  IdTable t;
  std::string longest = "custom:ns:" + std::string(IdTable::kMaxTail, 'x');
  ASSERT_TRUE(t.Insert(longest, 1).ok());
  EXPECT_EQ(t.Get(0), longest);
  EXPECT_EQ(t.Find(longest), 0u);
  EXPECT_FALSE(t.Insert("custom:ns:" + std::string(IdTable::kMaxTail + 1, 'x'), 1).ok());
  EXPECT_FALSE(t.Insert("custom:ns:", 1).ok());
  EXPECT_FALSE(t.Insert("nocolon", 1).ok());
}

TEST(IdTableTest, SmallTableIsSmall) {
  IdTable t;
  ASSERT_TRUE(t.Insert("unionid:u1", 0).ok());
  EXPECT_LT(t.MemoryBytes().total(), 4096u);
}

}  // namespace
}  // namespace siyu::identity

namespace siyu::identity {
namespace {

TEST(SegmentedTest, AppendsAcrossBlocksWithoutMoving) {
  Segmented<int, 3> a;  // blocks of 8
  const int* first = nullptr;
  for (int i = 0; i < 100; ++i) {
    a.push_back(i * 3);
    if (i == 8) first = &a[8];
  }
  ASSERT_EQ(a.size(), 100u);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a[i], i * 3);
  EXPECT_EQ(first, &a[8]);  // elements never move
  EXPECT_EQ(a.back(), 297);
  EXPECT_EQ(a.front(), 0);
  EXPECT_GE(a.MemoryBytes(), 100 * sizeof(int));
}

}  // namespace
}  // namespace siyu::identity
