// A brute-force reference of the audience semantics for tests: people as plain structs, every
// expression evaluated per person straight from the facts (no bitmaps, no aggregates, no timers),
// rule tags evaluated recursively. The engine must agree with it on every count, member list,
// stage and class. It also produces random expressions and rebuilds an engine from its facts.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "domain/audience/audience.h"

namespace siyu::audience::testing {

struct RefEvent {
  std::string type;
  Day day = 0;
  uint32_t count = 1;
  std::map<std::string, int64_t> values;
};

struct RefPerson {
  int64_t id = 0;
  bool alive = true;
  int64_t merged_into = 0;
  PersonAttrs attrs;
  std::vector<OrderFact> orders;
  std::vector<RefEvent> events;
  std::set<int64_t> manual;
  int64_t inviter = 0;  // as recorded (resolved through merges when read)
};

struct RefTag {
  int64_t id = 0;
  std::string group, name;
  bool is_rule = false;
  Expr rule;
};

class Reference {
 public:
  explicit Reference(EngineOptions o) : opts(o), today(o.today) {}

  // Facts, with the engine's semantics (see README).
  void AddPerson(int64_t id, const PersonAttrs& a);
  void AddEvent(int64_t id, const EventFact& e);
  void AddOrder(int64_t id, const OrderFact& o);
  void Refund(int64_t id, int64_t order, int64_t fen);
  void Merge(int64_t survivor, int64_t absorbed);
  void Replace(int64_t id, const PersonFacts& f);
  PersonFacts FactsFor(int64_t id) const;  // raw events, resolved inviter

  // Derived state.
  int64_t ResolveInviter(int64_t id) const;
  Stage StageOf(const RefPerson& p) const;
  RfmClass RfmOf(const RfmThresholds& t, const RefPerson& p) const;
  RfmThresholds Resolve() const;  // the thresholds of opts.rfm over current buyers
  bool Eval(const Expr& e, const RefPerson& p) const;
  bool HasTag(int64_t tag, const RefPerson& p) const;
  std::vector<int64_t> Members(const Expr& e) const;
  int64_t Gmv(const RefPerson& p) const;

  // An engine rebuilt from these facts (bulk load) with `defs` defined.
  std::unique_ptr<AudienceEngine> Rebuild(const std::vector<TagDef>& tags,
                                          const std::vector<SegmentDef>& segments,
                                          const RfmThresholds* pin) const;

  EngineOptions opts;
  Day today;
  RfmThresholds thresholds;  // as the engine resolved them at the last tick
  std::map<int64_t, RefPerson> people;
  std::map<int64_t, RefTag> tags;
};

// Random expressions over the given tags and value domains, in canonical shape (so that
// printing and parsing them back gives the same tree).
struct ExprDomain {
  std::vector<std::pair<int64_t, std::string>> tags;  // id, name as written
  std::vector<std::string> event_types, properties, skus, categories, tiers, touchpoints;
  std::vector<int64_t> channels;
  std::vector<int32_t> windows;
};
Expr RandomExpr(std::mt19937_64& rng, const ExprDomain& d, int depth);

}  // namespace siyu::audience::testing
