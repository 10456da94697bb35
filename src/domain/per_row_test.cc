#include "domain/per_row.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace siyu::domain {
namespace {

// Random inserts, lookups and updates against std::map, with the key 0, negative keys and keys
// that share their home slot; then iteration, move and clear.
TEST(PerRowTest, HoldsWhatAMapHolds) {
  std::mt19937_64 rng(20261125);
  PerRow<std::string> m;
  std::map<int64_t, std::string> want;
  for (int step = 0; step < 200000; ++step) {
    int64_t key;
    switch (rng() % 4) {
      case 0:
        key = static_cast<int64_t>(rng() % 5) - 2;  // around 0
        break;
      case 1:
        key = static_cast<int64_t>(rng() % 100000);
        break;
      case 2:
        key = static_cast<int64_t>(rng() % 1000) << 40;  // low bits alike
        break;
      default:
        key = static_cast<int64_t>(rng());
    }
    if (rng() % 3 == 0) {
      const std::string* got = m.find(key);
      auto it = want.find(key);
      ASSERT_EQ(got != nullptr, it != want.end()) << key;
      if (got) {
        ASSERT_EQ(*got, it->second) << key;
      }
      continue;
    }
    auto [v, made] = m.try_emplace(key);
    auto [it, inserted] = want.try_emplace(key);
    ASSERT_EQ(made, inserted) << key;
    ASSERT_EQ(*v, it->second) << key;
    *v += std::to_string(step % 10);
    it->second += std::to_string(step % 10);
    ASSERT_EQ(m.size(), want.size());
  }
  ASSERT_TRUE(want.count(0));
  std::map<int64_t, std::string> seen;
  for (const auto& [key, value] : m) {
    EXPECT_TRUE(seen.emplace(key, value).second) << "visited twice: " << key;
  }
  EXPECT_EQ(seen, want);

  PerRow<std::string> moved(std::move(m));
  EXPECT_EQ(moved.size(), want.size());
  for (const auto& [key, value] : want) {
    const std::string* got = moved.find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_EQ(*got, value);
    moved.Prefetch(key);
  }
  moved[0] = "zero";
  EXPECT_EQ(*moved.find(0), "zero");
  moved.clear();
  EXPECT_TRUE(moved.empty());
  EXPECT_EQ(moved.begin(), moved.end());
  EXPECT_EQ(moved.find(0), nullptr);
  moved.Prefetch(7);  // an empty map prefetches nothing
}

TEST(PerRowTest, IteratesTheKeyZeroAlone) {
  PerRow<int> m;
  EXPECT_EQ(m.begin(), m.end());
  m[0] = 5;
  int n = 0;
  for (auto& [key, value] : m) {
    EXPECT_EQ(key, 0);
    EXPECT_EQ(value, 5);
    ++n;
  }
  EXPECT_EQ(n, 1);
  m[3] = 4;
  n = 0;
  for (auto& e : m) n += e.second;
  EXPECT_EQ(n, 9);
}

}  // namespace
}  // namespace siyu::domain
