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
  // Load at most 1/2 in every shard: at least two slots an id, and the shard headers.
  EXPECT_GE(set.memory_bytes(), in.size() * 2 * sizeof(EventIdHash));
  EXPECT_LE(set.memory_bytes(), in.size() * 8 * sizeof(EventIdHash));
}

// Hashes that fall in one shard and on one slot probe past each other, wrap around the end of the
// shard's table, and survive its growth.
TEST(EventIdSetTest, CollidingHashesInOneShard) {
  EventIdSet set;
  const uint64_t hi = uint64_t{0x2a} << (64 - EventIdSet::kShardBits);
  std::vector<EventIdHash> in;
  for (uint64_t k = 0; k < 5'000; ++k) {
    // The same low bits (the same slot) for the first 40; then ids that end the table.
    const uint64_t lo = k < 40 ? (k << 32) | 63 : (k << 20) | 0xfffff;
    in.push_back({lo, hi + k});
  }
  in.push_back({0, 7});  // a zero low half is not the empty slot
  in.push_back({7, 0});
  for (const auto& h : in) ASSERT_TRUE(set.Insert(h));
  for (const auto& h : in) ASSERT_TRUE(set.Contains(h));
  EXPECT_FALSE(set.Contains({63, hi + 9'999}));  // the same shard and slot
  EXPECT_FALSE(set.Contains({0, hi + 9'999}));
  EXPECT_EQ(set.size(), in.size());
}

TEST(EventIdSetTest, MovesItsHashes) {
  EventIdSet a;
  ASSERT_TRUE(a.Insert(HashEventId("one")));
  EventIdSet b = std::move(a);
  EXPECT_TRUE(b.Contains(HashEventId("one")));
  EXPECT_EQ(b.size(), 1u);
  EventIdSet c;
  c = std::move(b);
  EXPECT_TRUE(c.Contains(HashEventId("one")));
  EXPECT_FALSE(c.Contains(HashEventId("two")));
}

}  // namespace
}  // namespace siyu::domain
