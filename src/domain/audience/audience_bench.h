// The audience benchmark (`audience_bench`, later `siyu bench audience`): a tenant of --people
// people with 500 tags (5 dense at 30-60 %, the rest sparse at 0.1-5 %), orders and events,
// 20 rule tags and 20 saved segments. It measures counts of 5- and 20-term expressions, the
// materialisation of a ~1 M-member segment, incremental facts per second, the daily tick, bytes
// per (person, tag) and RSS.
//
// The data is a pure function of the seed (BenchData), person by person and tag by tag, so the
// same rows can be loaded into a SQL peer and both sides compared.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "domain/audience/audience.h"

namespace siyu::audience::bench {

struct BenchConfig {
  uint64_t people = 1'000'000;
  uint32_t tags = 500;
  uint64_t seed = 42;
  Day today = 20000;           // 2024-10-04
  double buyer_share = 0.30;   // people with orders
  double active_share = 0.50;  // people with events
};

struct BenchTag {
  int64_t id = 0;
  std::string group, name;
  double density = 0;
};

struct BenchPerson {
  int64_t id = 0;  // index + 1
  PersonAttrs attrs;
  std::vector<OrderFact> orders;
  std::vector<EventFact> events;
};

class BenchData {
 public:
  explicit BenchData(const BenchConfig& c);

  const BenchConfig& config() const { return c_; }
  const std::vector<BenchTag>& tags() const { return tags_; }
  // Person `index` (0-based), always the same for a seed.
  BenchPerson Person(uint64_t index) const;
  // The members of tag `t` (index into tags()), ascending person index.
  void TagMembers(size_t t, const std::function<void(uint64_t index)>& f) const;
  // `n` expressions of `terms` predicates over the tags and attributes.
  std::vector<std::string> CountQueries(int terms, size_t n, uint64_t seed) const;
  // An expression with about people/10 members (two dense tags).
  std::string TenPercentQuery() const;
  std::vector<TagDef> RuleTags() const;      // 20
  std::vector<SegmentDef> Segments() const;  // 20

 private:
  BenchConfig c_;
  std::vector<BenchTag> tags_;
};

// Defines the tags, rule tags and segments and bulk-loads every person and tag membership.
Status LoadBench(const BenchData& data, AudienceEngine& engine);

// --people N, --seed S, --queries Q, --facts F; returns the exit code.
int BenchMain(int argc, char** argv);

}  // namespace siyu::audience::bench
