#include "domain/events/event_id_set.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace siyu::domain {
namespace {

TEST(EventIdSetTest, HoldsWhatWasInsertedAndNothingElse) {
  EventIdSet set;
  std::vector<EventIdHash> in, out;
  for (int i = 0; i < 300'000; ++i) in.push_back(HashEventId("e-" + std::to_string(i)));
  for (int i = 0; i < 100'000; ++i) out.push_back(HashEventId("x-" + std::to_string(i)));
  for (const auto& h : in) EXPECT_TRUE(set.Insert(h));
  EXPECT_EQ(set.size(), in.size());
  for (const auto& h : in) {
    ASSERT_TRUE(set.Contains(h));
    ASSERT_FALSE(set.Insert(h));  // a second insert finds it
  }
  for (const auto& h : out) ASSERT_FALSE(set.Contains(h));
  EXPECT_EQ(set.size(), in.size());
  // Pages at most 3/4 and (split in two) at least ~3/8 full, but for the last block of pages.
  EXPECT_GE(set.memory_bytes(), in.size() * 4 / 3 * sizeof(EventIdHash));
  EXPECT_LE(set.memory_bytes(), in.size() * 3 * sizeof(EventIdHash) + (1 << 20));
}

// Hashes that share their top bits and their slot probe past each other, wrap around the end of
// their page, and are split apart by the bits that follow.
TEST(EventIdSetTest, CollidingHashesSplitApart) {
  EventIdSet set;
  std::vector<EventIdHash> in;
  for (uint64_t k = 0; k < 5'000; ++k) {
    const uint64_t hi = (uint64_t{0x2a} << 54) | (k << 20);  // the same top 10 bits
    // The same slot for the first 300; then slots at the end of the page.
    const uint64_t lo = k < 300 ? (k << 32) | 17 : (k << 20) | 0xff;
    in.push_back({lo, hi});
  }
  in.push_back({0, 7});  // a zero low half is not the empty slot
  in.push_back({7, 0});
  for (const auto& h : in) ASSERT_TRUE(set.Insert(h));
  for (const auto& h : in) {
    ASSERT_TRUE(set.Contains(h));
    ASSERT_FALSE(set.Insert(h));
  }
  EXPECT_FALSE(set.Contains({17, uint64_t{0x2a} << 54 | 1}));  // the same page and slot
  EXPECT_FALSE(set.Contains({0, 8}));
  EXPECT_EQ(set.size(), in.size());
}

// Hashes no split can tell apart (the same top 40 bits) go past the directory's deepest split
// into the overflow list, and are still found.
TEST(EventIdSetTest, BeyondTheDeepestSplit) {
  EventIdSet set;
  std::vector<EventIdHash> in;
  for (uint64_t k = 0; k < 1'000; ++k) in.push_back({k * 977 + 1, (uint64_t{0xabcdef} << 40) | k});
  for (const auto& h : in) ASSERT_TRUE(set.Insert(h));
  for (const auto& h : in) {
    ASSERT_TRUE(set.Contains(h));
    ASSERT_FALSE(set.Insert(h));
  }
  EXPECT_FALSE(set.Contains({1, (uint64_t{0xabcdef} << 40) | 5000}));
  EXPECT_EQ(set.size(), in.size());
}

TEST(EventIdSetTest, MovesItsHashes) {
  EventIdSet a;
  ASSERT_TRUE(a.Insert(HashEventId("one")));
  EventIdSet b = std::move(a);
  a = EventIdSet();  // a moved-from set takes a new one
  EXPECT_FALSE(a.Contains(HashEventId("one")));
  EXPECT_TRUE(b.Contains(HashEventId("one")));
  EXPECT_EQ(b.size(), 1u);
  EventIdSet c;
  c = std::move(b);
  EXPECT_TRUE(c.Contains(HashEventId("one")));
  EXPECT_FALSE(c.Contains(HashEventId("two")));
}

}  // namespace
}  // namespace siyu::domain
