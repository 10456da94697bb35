#include "domain/identity/graph.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace siyu::identity {
namespace {

using Ids = std::vector<std::string>;
using People = std::vector<int64_t>;

constexpr int64_t kTs = 1'700'000'000'000;

// Adds each id to its person, failing the test on error.
void Add(IdentityGraph& g, const std::vector<std::pair<std::string, int64_t>>& rows) {
  for (const auto& [id, person] : rows) {
    auto r = g.AddId(id, person);
    ASSERT_TRUE(r.ok()) << id << ": " << r.status().ToString();
  }
}

LinkOutcome MustLink(IdentityGraph& g, const std::string& a, const std::string& b,
                     const std::string& reason = "test", int64_t ts = kTs) {
  auto r = g.Link(a, b, reason, ts);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : LinkOutcome{};
}

int64_t R(const IdentityGraph& g, const std::string& id) { return g.Resolve(id).value_or(-1); }

std::string Openid(int i) { return "openid:wxmini:o" + std::to_string(i); }
std::string Unionid(int i) { return "unionid:u" + std::to_string(i); }
std::string Phone(int i) { return "phone:+86138" + std::to_string(10000000 + i); }

// ---- AddId / Resolve ----------------------------------------------------------------------------

TEST(IdentityGraphTest, AddIdIsIdempotentAndIdsNeverMove) {
  IdentityGraph g;
  EXPECT_TRUE(*g.AddId("openid:wxmini:o1", 10));
  EXPECT_FALSE(*g.AddId("openid:wxmini:o1", 10));
  // Another spelling of the same phone is the same id.
  EXPECT_TRUE(*g.AddId("phone:138 0013 8000", 10));
  EXPECT_FALSE(*g.AddId("phone:+8613800138000", 10));
  auto moved = g.AddId("phone:13800138000", 11);
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.status().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(moved.status().message().find("person 10"), std::string::npos);
  EXPECT_EQ(R(g, "phone:+8613800138000"), 10);
  EXPECT_EQ(R(g, "openid:wxmini:o1"), 10);
  EXPECT_FALSE(g.Resolve("openid:wxmini:o2").has_value());
  // Resolve takes canonical forms only.
  EXPECT_FALSE(g.Resolve("phone:13800138000").has_value());
  EXPECT_EQ(*g.IdsOf(10), (Ids{"openid:wxmini:o1", "phone:+8613800138000"}));
  EXPECT_TRUE(g.CheckInvariants().ok());
}

TEST(IdentityGraphTest, AddIdRejectsBadInputAndChangesNothing) {
  IdentityGraph g;
  auto bad_id = g.AddId("wechat:x", 1);
  ASSERT_FALSE(bad_id.ok());
  EXPECT_EQ(bad_id.status().code(), ErrorCode::kInvalidField);
  EXPECT_EQ(bad_id.status().field(), "id");
  for (int64_t person : {0LL, -5LL}) {
    auto bad_person = g.AddId("unionid:u1", person);
    ASSERT_FALSE(bad_person.ok());
    EXPECT_EQ(bad_person.status().field(), "origin_person");
  }
  EXPECT_EQ(g.Stats().ids, 0u);
  EXPECT_EQ(g.Stats().people, 0u);
}

// ---- Link ---------------------------------------------------------------------------------------

TEST(IdentityGraphTest, LinkMergesAndResolvesToTheOldestPerson) {
  IdentityGraph g;
  Add(g, {{Openid(1), 7}, {Unionid(1), 7}, {Phone(1), 3}});
  LinkOutcome o = MustLink(g, Unionid(1), "phone:138-1000-0001", "member_card_bind");
  EXPECT_EQ(o.result, LinkResult::kLinked);
  EXPECT_EQ(o.merge_id, 1u);
  EXPECT_EQ(o.person, 3);
  for (const auto& id : {Openid(1), Unionid(1), Phone(1)}) EXPECT_EQ(R(g, id), 3) << id;
  EXPECT_EQ(*g.ResolvePerson(7), 3);
  EXPECT_EQ(*g.ComponentOf(7), (People{3, 7}));
  EXPECT_EQ(*g.IdsOf(7), (Ids{Phone(1), Openid(1), Unionid(1)}));

  auto log = g.Log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].kind, LogKind::kMerge);
  EXPECT_EQ(log[0].seq, 1u);
  EXPECT_EQ(log[0].ts, kTs);
  EXPECT_EQ(log[0].reason, "member_card_bind");
  EXPECT_EQ(log[0].id_a, Unionid(1));
  EXPECT_EQ(log[0].id_b, Phone(1));
  EXPECT_EQ(log[0].person_a, 7);
  EXPECT_EQ(log[0].person_b, 3);

  LinkOutcome again = MustLink(g, Openid(1), Phone(1));
  EXPECT_EQ(again.result, LinkResult::kAlreadySame);
  EXPECT_EQ(again.person, 3);
  EXPECT_EQ(MustLink(g, Openid(1), Openid(1)).result, LinkResult::kAlreadySame);
  EXPECT_EQ(g.Log().size(), 1u);  // already_same records nothing
  EXPECT_TRUE(g.CheckInvariants().ok());
}

TEST(IdentityGraphTest, TransitiveMergesFormOnePerson) {
  IdentityGraph g;
  for (int i = 1; i <= 6; ++i) Add(g, {{Openid(i), 100 - i}});
  MustLink(g, Openid(1), Openid(2));
  MustLink(g, Openid(3), Openid(4));
  MustLink(g, Openid(2), Openid(3));
  MustLink(g, Openid(5), Openid(4));
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(R(g, Openid(i)), 95) << i;
  EXPECT_EQ(R(g, Openid(6)), 94);
  EXPECT_EQ(*g.ComponentOf(99), (People{95, 96, 97, 98, 99}));
  EXPECT_EQ(MustLink(g, Openid(1), Openid(5)).result, LinkResult::kAlreadySame);
  EXPECT_EQ(g.Stats().components, 2u);
  EXPECT_TRUE(g.CheckInvariants().ok());
}

TEST(IdentityGraphTest, SurvivorIsTheSmallestStoreIdWhateverTheOrder) {
  // The same three links in every order give the same survivor, although union by size picks
  // different roots.
  std::vector<std::pair<int, int>> links = {{1, 2}, {2, 3}, {3, 4}};
  std::sort(links.begin(), links.end());
  do {
    IdentityGraph g;
    Add(g, {{Openid(1), 50}, {Openid(2), 9}, {Openid(3), 30}, {Openid(4), 40}});
    for (auto [a, b] : links) MustLink(g, Openid(a), Openid(b));
    for (int i = 1; i <= 4; ++i) EXPECT_EQ(R(g, Openid(i)), 9);
  } while (std::next_permutation(links.begin(), links.end()));

  // A big component meeting an older singleton takes the singleton's id.
  IdentityGraph g(GraphOptions{0});
  for (int i = 1; i <= 5; ++i) Add(g, {{Openid(i), 10 + i}});
  Add(g, {{Openid(9), 2}});
  for (int i = 2; i <= 5; ++i) MustLink(g, Openid(1), Openid(i));
  EXPECT_EQ(MustLink(g, Openid(9), Openid(3)).person, 2);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(R(g, Openid(i)), 2);
}

TEST(IdentityGraphTest, UnknownIdsNeedANewPerson) {
  IdentityGraph g;
  Add(g, {{Openid(1), 5}});
  LinkOutcome one = MustLink(g, Openid(1), "phone:13800138000");
  EXPECT_EQ(one.result, LinkResult::kNewPersonNeeded);
  EXPECT_EQ(one.unknown_ids, Ids{"phone:+8613800138000"});
  EXPECT_EQ(one.person, 5);
  LinkOutcome both = MustLink(g, Unionid(1), Unionid(2));
  EXPECT_EQ(both.result, LinkResult::kNewPersonNeeded);
  EXPECT_EQ(both.unknown_ids, (Ids{Unionid(1), Unionid(2)}));
  EXPECT_EQ(both.person, 0);
  EXPECT_EQ(MustLink(g, Unionid(1), Unionid(1)).unknown_ids, Ids{Unionid(1)});
  EXPECT_TRUE(g.Log().empty());
}

TEST(IdentityGraphTest, LinkRejectsBadInputWithTheField) {
  IdentityGraph g;
  Add(g, {{Openid(1), 1}, {Openid(2), 2}});
  struct Case {
    std::string a, b, reason;
    int64_t ts;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"wechat:1", Openid(2), "r", kTs, "id_a"},
      {Openid(1), "phone:123", "r", kTs, "id_b"},
      {Openid(1), Openid(2), "", kTs, "reason"},
      {Openid(1), Openid(2), std::string(801, 'r'), kTs, "reason"},
      {Openid(1), Openid(2), "line\nbreak", kTs, "reason"},
      {Openid(1), Openid(2), "r", -1, "ts"},
  };
  for (const auto& c : cases) {
    auto r = g.Link(c.a, c.b, c.reason, c.ts);
    ASSERT_FALSE(r.ok()) << c.field;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidField);
    EXPECT_EQ(r.status().field(), c.field);
  }
  EXPECT_TRUE(g.Log().empty());
  EXPECT_EQ(R(g, Openid(2)), 2);
}

// ---- guard --------------------------------------------------------------------------------------

// With max_people_per_id = N, a shared phone can join N persons; the link that would make it
// N + 1 is quarantined, and exactly that one.
TEST(IdentityGraphTest, QuarantineTriggersExactlyAtTheThreshold) {
  for (uint32_t n : {1u, 2u, 3u, 4u, 6u}) {
    IdentityGraph g(GraphOptions{n});
    const std::string shared = "phone:+8613900000000";
    Add(g, {{shared, 1}});
    for (int i = 2; i <= 10; ++i) Add(g, {{Openid(i), i}});
    int linked = 0;
    LinkOutcome first_held;
    for (int i = 2; i <= 10; ++i) {
      LinkOutcome o = MustLink(g, shared, Openid(i), "member_card_bind");
      if (o.result == LinkResult::kLinked) {
        ASSERT_EQ(first_held.quarantine_id, 0u) << "linked after a quarantine, n=" << n;
        ++linked;
      } else {
        ASSERT_EQ(o.result, LinkResult::kQuarantined) << n;
        if (first_held.quarantine_id == 0) first_held = o;
      }
    }
    // 1 (the phone's own person) + linked persons = exactly n people tied by the phone.
    EXPECT_EQ(linked + 1, static_cast<int>(n)) << n;
    EXPECT_EQ(g.Quarantined().size(), 10u - n) << n;
    EXPECT_EQ(*g.ComponentOf(1), [&] {
      People p;
      for (int i = 1; i <= static_cast<int>(n); ++i) p.push_back(i);
      return p;
    }()) << n;
    // The first quarantine names the phone and the n + 1 persons it would tie.
    Quarantine q = g.Quarantined().front();
    EXPECT_EQ(q.quarantine_id, first_held.quarantine_id);
    EXPECT_EQ(q.hub_id, shared);
    EXPECT_EQ(q.id_a, shared);
    EXPECT_EQ(q.id_b, Openid(n + 1));
    EXPECT_EQ(q.reason, "member_card_bind");
    People expected;
    for (int i = 1; i <= static_cast<int>(n) + 1; ++i) expected.push_back(i);
    EXPECT_EQ(q.people, expected) << n;
    EXPECT_EQ(q.guard_reason, first_held.quarantine_reason);
    EXPECT_NE(q.guard_reason.find("would tie together " + std::to_string(n + 1) + " people"),
              std::string::npos)
        << q.guard_reason;
    EXPECT_TRUE(g.CheckInvariants().ok());
  }
}

TEST(IdentityGraphTest, PersonsAlreadyJoinedByOtherIdsCountOnce) {
  IdentityGraph g(GraphOptions{2});
  const std::string shared = Phone(0);
  Add(g, {{shared, 1}, {Openid(2), 2}, {Unionid(2), 2}, {Openid(3), 3}, {Unionid(3), 3}});
  // 2 and 3 are one person through their unionids (a merge through other ids).
  MustLink(g, Unionid(2), Openid(3));
  // The phone joins that person: 2 people (its own and the 2+3 person), within N = 2.
  EXPECT_EQ(MustLink(g, shared, Openid(2)).result, LinkResult::kLinked);
  EXPECT_EQ(MustLink(g, shared, Openid(3)).result, LinkResult::kAlreadySame);
  EXPECT_EQ(*g.ComponentOf(1), (People{1, 2, 3}));
}

TEST(IdentityGraphTest, EitherIdOfTheLinkCanTripTheGuard) {
  IdentityGraph g(GraphOptions{2});
  Add(g, {{Openid(1), 1}, {Openid(2), 2}, {Openid(3), 3}});
  MustLink(g, Openid(1), Openid(2));
  // Openid(2) already joined two people: as id_b it trips the guard too.
  LinkOutcome o = MustLink(g, Openid(3), Openid(2));
  EXPECT_EQ(o.result, LinkResult::kQuarantined);
  EXPECT_EQ(g.Quarantined().at(0).hub_id, Openid(2));
}

TEST(IdentityGraphTest, TheSameHeldLinkIsOneQuarantine) {
  IdentityGraph g(GraphOptions{2});
  Add(g, {{Phone(0), 1}, {Openid(2), 2}, {Openid(3), 3}});
  MustLink(g, Phone(0), Openid(2));
  LinkOutcome a = MustLink(g, Phone(0), Openid(3));
  LinkOutcome b = MustLink(g, Openid(3), Phone(0));
  EXPECT_EQ(a.result, LinkResult::kQuarantined);
  EXPECT_EQ(b.quarantine_id, a.quarantine_id);
  EXPECT_EQ(g.Quarantined().size(), 1u);
}

TEST(IdentityGraphTest, ApproveAppliesTheHeldLinkAndRejectDropsIt) {
  IdentityGraph g(GraphOptions{2});
  Add(g, {{Phone(0), 1}, {Openid(2), 2}, {Openid(3), 3}, {Openid(4), 4}});
  MustLink(g, Phone(0), Openid(2), "bind");
  uint64_t q3 = MustLink(g, Phone(0), Openid(3), "bind").quarantine_id;
  uint64_t q4 = MustLink(g, Phone(0), Openid(4), "bind").quarantine_id;
  ASSERT_EQ(g.Quarantined().size(), 2u);

  auto approved = g.ApproveQuarantine(q3, "operator 7: same household", kTs + 1);
  ASSERT_TRUE(approved.ok()) << approved.status().ToString();
  EXPECT_EQ(approved->result, LinkResult::kLinked);
  EXPECT_EQ(approved->person, 1);
  EXPECT_EQ(R(g, Openid(3)), 1);
  ASSERT_TRUE(g.RejectQuarantine(q4, "operator 7: shop device", kTs + 2).ok());
  EXPECT_EQ(R(g, Openid(4)), 4);
  EXPECT_TRUE(g.Quarantined().empty());

  auto log = g.Log();
  ASSERT_EQ(log.size(), 6u);  // merge, quarantine, quarantine, approve, merge, reject
  EXPECT_EQ(log[3].kind, LogKind::kApprove);
  EXPECT_EQ(log[3].target, q3);
  EXPECT_EQ(log[3].reason, "operator 7: same household");
  EXPECT_EQ(log[4].kind, LogKind::kMerge);
  EXPECT_EQ(log[4].target, q3);
  EXPECT_EQ(log[4].reason, "bind");
  EXPECT_EQ(approved->merge_id, log[4].seq);
  EXPECT_EQ(log[5].kind, LogKind::kReject);
  EXPECT_EQ(log[5].target, q4);

  // Decided quarantines cannot be decided again; unknown ones are not found.
  EXPECT_EQ(g.ApproveQuarantine(q4, "again", kTs).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(g.RejectQuarantine(q3, "again", kTs).code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(g.ApproveQuarantine(999, "x", kTs).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(g.RejectQuarantine(log[0].seq, "x", kTs).code(), ErrorCode::kNotFound);  // a merge
  // The approved merge counts: the phone still ties too many people.
  EXPECT_EQ(MustLink(g, Phone(0), Openid(4)).result, LinkResult::kQuarantined);
  EXPECT_TRUE(g.CheckInvariants().ok());
}

TEST(IdentityGraphTest, ApprovingWhenAlreadyJoinedRecordsNoMerge) {
  IdentityGraph g(GraphOptions{2});
  Add(g, {{Phone(0), 1}, {Openid(2), 2}, {Unionid(2), 2}, {Openid(3), 3}, {Unionid(3), 3}});
  MustLink(g, Phone(0), Openid(2));
  uint64_t q = MustLink(g, Phone(0), Openid(3)).quarantine_id;
  ASSERT_NE(q, 0u);
  // Meanwhile 3 joins the phone's person through other ids.
  EXPECT_EQ(MustLink(g, Unionid(2), Unionid(3)).result, LinkResult::kLinked);
  size_t events = g.Log().size();
  auto approved = g.ApproveQuarantine(q, "ok", kTs);
  ASSERT_TRUE(approved.ok());
  EXPECT_EQ(approved->result, LinkResult::kAlreadySame);
  EXPECT_EQ(approved->merge_id, 0u);
  EXPECT_EQ(approved->person, 1);
  ASSERT_EQ(g.Log().size(), events + 1);
  EXPECT_EQ(g.Log().back().kind, LogKind::kApprove);
  EXPECT_TRUE(g.Quarantined().empty());
}

TEST(IdentityGraphTest, GuardCanBeDisabled) {
  IdentityGraph g(GraphOptions{0});
  Add(g, {{Phone(0), 1}});
  for (int i = 2; i < 50; ++i) {
    Add(g, {{Openid(i), i}});
    EXPECT_EQ(MustLink(g, Phone(0), Openid(i)).result, LinkResult::kLinked);
  }
  EXPECT_EQ(g.ComponentOf(1)->size(), 49u);
}

TEST(IdentityGraphTest, HubDegreesBeyondOneByteStayExact) {
  IdentityGraph g(GraphOptions{2});
  Add(g, {{Phone(0), 1}});
  for (int i = 2; i < 300; ++i) {
    Add(g, {{Openid(i), i}});
    LinkOutcome o = MustLink(g, Phone(0), Openid(i));
    if (o.result == LinkResult::kQuarantined) {
      ASSERT_TRUE(g.ApproveQuarantine(o.quarantine_id, "ok", kTs).ok());
    }
  }
  ASSERT_TRUE(g.CheckInvariants().ok());
  // Undo most of them again; the degree comes back down through the overflow.
  for (const LogEntry& e : g.Log()) {
    if (e.kind == LogKind::kMerge && e.id_b != Openid(2)) {
      ASSERT_TRUE(g.Unmerge(e.seq, "undo", kTs).ok());
    }
  }
  ASSERT_TRUE(g.CheckInvariants().ok());
  EXPECT_EQ(*g.ComponentOf(1), (People{1, 2}));
}

// ---- Unmerge ------------------------------------------------------------------------------------

TEST(IdentityGraphTest, UnmergeSplitsExactlyAndKeepsLaterMerges) {
  IdentityGraph g;
  Add(g, {{Openid(1), 1}, {Openid(2), 2}, {Openid(3), 3}, {Openid(4), 4}});
  uint64_t m12 = MustLink(g, Openid(2), Openid(1)).merge_id;
  uint64_t m23 = MustLink(g, Openid(2), Openid(3)).merge_id;  // joined through m12's person
  uint64_t m34 = MustLink(g, Openid(3), Openid(4)).merge_id;
  for (int i = 1; i <= 4; ++i) EXPECT_EQ(R(g, Openid(i)), 1);

  auto u = g.Unmerge(m12, "wrong bind", kTs + 5);
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->person_a, 2);  // 2's side: {2, 3, 4} through the later merges
  EXPECT_EQ(u->person_b, 1);
  EXPECT_EQ(R(g, Openid(1)), 1);
  for (int i = 2; i <= 4; ++i) EXPECT_EQ(R(g, Openid(i)), 2);
  EXPECT_EQ(*g.ComponentOf(4), (People{2, 3, 4}));

  // Undoing the middle merge of what is left splits it again.
  ASSERT_TRUE(g.Unmerge(m23, "wrong", kTs).ok());
  EXPECT_EQ(*g.ComponentOf(2), People{2});
  EXPECT_EQ(*g.ComponentOf(3), (People{3, 4}));
  EXPECT_EQ(R(g, Openid(4)), 3);

  EXPECT_EQ(g.Unmerge(m12, "again", kTs).status().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(g.Unmerge(12345, "x", kTs).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(g.Unmerge(u->seq, "an unmerge is not a merge", kTs).status().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(g.Unmerge(m34, "", kTs).status().code(), ErrorCode::kInvalidField);

  auto log = g.Log();
  ASSERT_EQ(log.size(), 5u);
  EXPECT_EQ(log[3].kind, LogKind::kUnmerge);
  EXPECT_EQ(log[3].target, m12);
  EXPECT_EQ(log[3].reason, "wrong bind");
  EXPECT_EQ(log[3].ts, kTs + 5);
  EXPECT_EQ(log[3].id_a, Openid(2));
  EXPECT_EQ(g.Log(log[3].seq).size(), 1u);
  EXPECT_TRUE(g.CheckInvariants().ok());

  // Re-linking after an unmerge is a new merge.
  LinkOutcome again = MustLink(g, Openid(1), Openid(2));
  EXPECT_EQ(again.result, LinkResult::kLinked);
  EXPECT_GT(again.merge_id, log.back().seq);
}

TEST(IdentityGraphTest, UnmergeFreesTheGuard) {
  IdentityGraph g(GraphOptions{2});
  Add(g, {{Phone(0), 1}, {Openid(2), 2}, {Openid(3), 3}});
  uint64_t m = MustLink(g, Phone(0), Openid(2)).merge_id;
  EXPECT_EQ(MustLink(g, Phone(0), Openid(3)).result, LinkResult::kQuarantined);
  ASSERT_TRUE(g.Unmerge(m, "wrong", kTs).ok());
  // The phone ties only its own person now, so the same link passes the guard; the quarantine
  // stays pending until someone decides it, and approving it then merges nothing.
  uint64_t q = g.Quarantined().at(0).quarantine_id;
  EXPECT_EQ(MustLink(g, Phone(0), Openid(3)).result, LinkResult::kLinked);
  EXPECT_EQ(g.ApproveQuarantine(q, "late", kTs)->result, LinkResult::kAlreadySame);
}

TEST(IdentityGraphTest, MergeHistoryCoversTheComponentIncludingUndoneAndHeld) {
  IdentityGraph g(GraphOptions{2});
  Add(g, {{Openid(1), 1}, {Openid(2), 2}, {Openid(3), 3}, {Openid(8), 8}, {Openid(9), 9}});
  uint64_t m12 = MustLink(g, Openid(1), Openid(2)).merge_id;
  Add(g, {{Unionid(2), 2}, {Unionid(3), 3}});
  uint64_t m23 = MustLink(g, Unionid(3), Unionid(2), "r2").merge_id;
  MustLink(g, Openid(8), Openid(9));                             // another person entirely
  uint64_t q = MustLink(g, Openid(9), Openid(3)).quarantine_id;  // held
  ASSERT_TRUE(g.Unmerge(m12, "undo", kTs).ok());
  auto h = g.MergeHistory(3);
  ASSERT_TRUE(h.ok());
  std::vector<uint64_t> seqs;
  for (const auto& e : *h) seqs.push_back(e.seq);
  // 3's person is {2, 3}: the undone m12 touched 2, the quarantine touches 3.
  ASSERT_EQ(seqs, (std::vector<uint64_t>{m12, m23, q, q + 1}));
  EXPECT_EQ((*h)[2].kind, LogKind::kQuarantine);
  EXPECT_EQ((*h)[2].hub_id, Openid(9));
  EXPECT_EQ((*h)[2].people, (People{3, 8, 9}));
  EXPECT_EQ(g.MergeHistory(77).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(g.IdsOf(77).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(g.ComponentOf(77).status().code(), ErrorCode::kNotFound);
}

// ---- Rebuild ------------------------------------------------------------------------------------

TEST(IdentityGraphTest, RebuildEqualsIncrementalAndChecksTheLog) {
  IdentityGraph g(GraphOptions{2});
  std::vector<std::pair<std::string, int64_t>> rows = {{Phone(0), 1},   {Openid(2), 2},
                                                       {Openid(3), 3},  {Openid(4), 4},
                                                       {Unionid(4), 4}, {Openid(5), 5}};
  Add(g, rows);
  uint64_t m = MustLink(g, Phone(0), Openid(2)).merge_id;
  uint64_t q = MustLink(g, Phone(0), Openid(3)).quarantine_id;
  MustLink(g, Phone(0), Openid(4));  // pending
  MustLink(g, Openid(5), Unionid(4));
  ASSERT_TRUE(g.ApproveQuarantine(q, "ok", kTs).ok());
  ASSERT_TRUE(g.Unmerge(m, "undo", kTs).ok());
  Add(g, {{"member_no:M9", 5}});
  rows.push_back({"member_no:M9", 5});

  std::vector<IdRow> id_rows;
  for (const auto& [id, p] : rows) id_rows.push_back({id, p});
  auto log = g.Log();
  auto rebuilt = IdentityGraph::Rebuild(id_rows, log, GraphOptions{2});
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
  std::string why;
  EXPECT_TRUE(rebuilt->Equals(g, &why)) << why;
  EXPECT_TRUE(g.Equals(*rebuilt, &why)) << why;
  EXPECT_TRUE(rebuilt->CheckInvariants().ok());
  EXPECT_EQ(rebuilt->Quarantined(), g.Quarantined());
  EXPECT_EQ(rebuilt->Log(), log);

  // The rebuilt graph carries on like the original.
  LinkOutcome a = MustLink(g, Openid(2), Openid(5));
  LinkOutcome b = MustLink(*rebuilt, Openid(2), Openid(5));
  EXPECT_EQ(a.result, b.result);
  EXPECT_EQ(a.merge_id, b.merge_id);
  EXPECT_TRUE(rebuilt->Equals(g, &why)) << why;

  // Different options, a changed log or a missing row are differences.
  auto other = IdentityGraph::Rebuild(id_rows, log, GraphOptions{3});
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->Equals(g));
  auto shorter =
      IdentityGraph::Rebuild(id_rows, std::span(log).first(log.size() - 1), GraphOptions{2});
  ASSERT_TRUE(shorter.ok());
  EXPECT_FALSE(shorter->Equals(g, &why));
}

TEST(IdentityGraphTest, RebuildRejectsInconsistentInput) {
  std::vector<std::string> ids = {Openid(1), Openid(2)};
  std::vector<IdRow> rows = {{ids[0], 1}, {ids[1], 2}};
  auto merge = [&](uint64_t seq, std::string a, std::string b) {
    LogEntry e;
    e.seq = seq;
    e.kind = LogKind::kMerge;
    e.ts = kTs;
    e.reason = "r";
    e.id_a = std::move(a);
    e.id_b = std::move(b);
    return e;
  };
  auto unmerge = [&](uint64_t seq, uint64_t target) {
    LogEntry e;
    e.seq = seq;
    e.kind = LogKind::kUnmerge;
    e.ts = kTs;
    e.reason = "r";
    e.target = target;
    return e;
  };
  auto expect_bad = [&](std::vector<IdRow> r, std::vector<LogEntry> log, std::string says) {
    auto g = IdentityGraph::Rebuild(r, log);
    ASSERT_FALSE(g.ok()) << says;
    EXPECT_EQ(g.status().code(), ErrorCode::kInternal);
    EXPECT_NE(g.status().message().find(says), std::string::npos) << g.status().message();
  };
  expect_bad(rows, {merge(1, ids[0], Openid(3))}, "an id has no row");
  expect_bad(rows, {merge(1, ids[0], ids[1]), merge(2, ids[1], ids[0])}, "already one person");
  expect_bad(rows, {merge(2, ids[0], ids[1]), merge(2, ids[1], ids[0])}, "must increase");
  expect_bad(rows, {merge(1, ids[0], ids[1]), unmerge(2, 1), unmerge(3, 1)}, "active merge");
  expect_bad(rows, {unmerge(1, 7)}, "active merge");
  std::string phone = "phone:13800138000";
  expect_bad({{phone, 1}}, {}, "not a canonical id");
  expect_bad({{ids[0], 1}, {ids[0], 2}}, {}, "already belongs");
  auto ok = IdentityGraph::Rebuild(rows, {});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(R(*ok, ids[1]), 2);
}

// ---- randomized: the graph against a reference that recomputes everything from scratch ----------

// The specification, written the slow and obvious way: persons are the connected components of
// the active merges; survivors are the smallest store ids; an id's count of tied people is 1 +
// its active merges.
class Reference {
 public:
  explicit Reference(uint32_t max_people) : max_people_(max_people) {}

  std::map<std::string, int64_t> owner;
  struct Merge {
    std::string a, b;
    bool active;
  };
  std::map<uint64_t, Merge> merges;
  struct Held {
    std::string a, b;
    bool pending;
  };
  std::map<uint64_t, Held> held;
  uint64_t next_seq = 1;

  std::map<int64_t, int64_t> Survivors() const {
    std::map<int64_t, std::set<int64_t>> adj;
    for (const auto& [id, p] : owner) adj[p];
    for (const auto& [seq, m] : merges) {
      if (!m.active) continue;
      adj[owner.at(m.a)].insert(owner.at(m.b));
      adj[owner.at(m.b)].insert(owner.at(m.a));
    }
    std::map<int64_t, int64_t> survivor;
    for (const auto& [start, unused] : adj) {
      if (survivor.count(start)) continue;
      std::vector<int64_t> stack = {start}, comp;
      std::set<int64_t> seen = {start};
      while (!stack.empty()) {
        int64_t p = stack.back();
        stack.pop_back();
        comp.push_back(p);
        for (int64_t q : adj[p]) {
          if (seen.insert(q).second) stack.push_back(q);
        }
      }
      int64_t oldest = *std::min_element(comp.begin(), comp.end());
      for (int64_t p : comp) survivor[p] = oldest;
    }
    return survivor;
  }

  uint32_t Degree(const std::string& id) const {
    uint32_t d = 0;
    for (const auto& [seq, m] : merges) d += m.active && (m.a == id || m.b == id);
    return d;
  }

  // The expected outcome of Link(a, b), applied to the reference.
  LinkOutcome Link(const std::string& a, const std::string& b) {
    LinkOutcome o;
    auto sv = Survivors();
    if (!owner.count(a) || !owner.count(b)) {
      o.result = LinkResult::kNewPersonNeeded;
      return o;
    }
    if (sv[owner[a]] == sv[owner[b]]) {
      o.result = LinkResult::kAlreadySame;
      o.person = sv[owner[a]];
      return o;
    }
    if (max_people_ > 0 && std::max(Degree(a), Degree(b)) + 2 > max_people_) {
      o.result = LinkResult::kQuarantined;
      for (const auto& [seq, h] : held) {
        if (h.pending && ((h.a == a && h.b == b) || (h.a == b && h.b == a))) {
          o.quarantine_id = seq;
          return o;
        }
      }
      o.quarantine_id = next_seq++;
      held[o.quarantine_id] = {a, b, true};
      return o;
    }
    o.result = LinkResult::kLinked;
    o.merge_id = next_seq++;
    merges[o.merge_id] = {a, b, true};
    o.person = std::min(sv[owner[a]], sv[owner[b]]);
    return o;
  }

 private:
  uint32_t max_people_;
};

TEST(IdentityGraphRandomTest, MatchesTheReferenceAndRebuildsEqual) {
  int checked_ops = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    const uint32_t max_people = std::vector<uint32_t>{0, 2, 3, 4}[seed % 4];
    IdentityGraph g(GraphOptions{max_people});
    Reference ref(max_people);
    // A small universe so merges, hubs and collisions are frequent.
    std::vector<std::string> universe;
    for (int i = 0; i < 12; ++i) universe.push_back(Openid(i));
    for (int i = 0; i < 10; ++i) universe.push_back(Unionid(i));
    for (int i = 0; i < 6; ++i) universe.push_back(Phone(i));
    for (int i = 0; i < 6; ++i) universe.push_back("custom:crm:c" + std::to_string(i));
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    std::vector<std::pair<std::string, int64_t>> rows;
    int64_t ts = kTs;

    for (int op = 0; op < 500; ++op) {
      ++ts;
      int what = static_cast<int>(pick(100));
      if (what < 25) {  // AddId: people's store ids are scattered, not in creation order
        std::string id = universe[pick(universe.size())];
        int64_t person = 1 + static_cast<int64_t>(pick(18)) * 7 % 19;
        auto r = g.AddId(id, person);
        if (ref.owner.count(id) && ref.owner[id] != person) {
          ASSERT_FALSE(r.ok());
          ASSERT_EQ(r.status().code(), ErrorCode::kAlreadyExists);
        } else {
          ASSERT_TRUE(r.ok()) << r.status().ToString();
          ASSERT_EQ(*r, !ref.owner.count(id));
          if (!ref.owner.count(id)) rows.push_back({id, person});
          ref.owner[id] = person;
        }
      } else if (what < 70) {  // Link
        std::string a = universe[pick(universe.size())], b = universe[pick(universe.size())];
        LinkOutcome want = ref.Link(a, b);
        auto got = g.Link(a, b, "r" + std::to_string(pick(3)), ts);
        ASSERT_TRUE(got.ok());
        ASSERT_EQ(got->result, want.result) << "seed " << seed << " op " << op;
        ASSERT_EQ(got->merge_id, want.merge_id);
        ASSERT_EQ(got->quarantine_id, want.quarantine_id);
        if (want.result == LinkResult::kLinked || want.result == LinkResult::kAlreadySame) {
          ASSERT_EQ(got->person, want.person);
        }
      } else if (what < 85) {  // Unmerge: mostly real merges, sometimes undone or bogus ones
        if (ref.merges.empty()) continue;
        auto it = ref.merges.begin();
        std::advance(it, pick(ref.merges.size()));
        uint64_t target = pick(10) == 0 ? ref.next_seq + 5 : it->first;
        auto got = g.Unmerge(target, "undo", ts);
        if (target != it->first) {
          ASSERT_EQ(got.status().code(), ErrorCode::kNotFound);
        } else if (!it->second.active) {
          ASSERT_EQ(got.status().code(), ErrorCode::kAlreadyExists);
        } else {
          ASSERT_TRUE(got.ok()) << got.status().ToString();
          ASSERT_EQ(got->seq, ref.next_seq);
          ++ref.next_seq;
          it->second.active = false;
          auto sv = ref.Survivors();
          ASSERT_EQ(got->person_a, sv[ref.owner[it->second.a]]);
          ASSERT_EQ(got->person_b, sv[ref.owner[it->second.b]]);
          ASSERT_NE(got->person_a, got->person_b);  // active merges form a forest
        }
      } else {  // decide a quarantine
        if (ref.held.empty()) continue;
        auto it = ref.held.begin();
        std::advance(it, pick(ref.held.size()));
        bool approve = pick(2) == 0;
        if (!it->second.pending) {
          Status st = approve ? g.ApproveQuarantine(it->first, "ok", ts).status()
                              : g.RejectQuarantine(it->first, "no", ts);
          ASSERT_EQ(st.code(), ErrorCode::kAlreadyExists);
          continue;
        }
        it->second.pending = false;
        ++ref.next_seq;  // the approve / reject event
        if (approve) {
          auto sv = ref.Survivors();
          bool same = sv[ref.owner[it->second.a]] == sv[ref.owner[it->second.b]];
          auto got = g.ApproveQuarantine(it->first, "ok", ts);
          ASSERT_TRUE(got.ok());
          ASSERT_EQ(got->result, same ? LinkResult::kAlreadySame : LinkResult::kLinked);
          if (!same) {
            ASSERT_EQ(got->merge_id, ref.next_seq);
            ref.merges[ref.next_seq++] = {it->second.a, it->second.b, true};
          }
        } else {
          ASSERT_TRUE(g.RejectQuarantine(it->first, "no", ts).ok());
        }
      }
      // Every id resolves exactly as the from-scratch reference says.
      auto sv = ref.Survivors();
      for (const auto& [id, person] : ref.owner) {
        ASSERT_EQ(R(g, id), sv[person]) << "seed " << seed << " op " << op << " id " << id;
      }
      size_t pending = 0;
      for (const auto& [seq, h] : ref.held) pending += h.pending;
      ASSERT_EQ(g.Quarantined().size(), pending);
      if (op % 25 == 0) {
        Status st = g.CheckInvariants();
        ASSERT_TRUE(st.ok()) << st.ToString();
      }
      ++checked_ops;
    }
    Status st = g.CheckInvariants();
    ASSERT_TRUE(st.ok()) << st.ToString();

    // Rebuild from the rows (in store order, and shuffled) and the log equals the live graph.
    std::vector<IdRow> id_rows;
    for (const auto& [id, p] : rows) id_rows.push_back({id, p});
    auto log = g.Log();
    for (int shuffle = 0; shuffle < 2; ++shuffle) {
      if (shuffle) std::shuffle(id_rows.begin(), id_rows.end(), rng);
      auto rebuilt = IdentityGraph::Rebuild(id_rows, log, GraphOptions{max_people});
      ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().ToString();
      std::string why;
      ASSERT_TRUE(rebuilt->Equals(g, &why)) << "seed " << seed << ": " << why;
      ASSERT_TRUE(rebuilt->CheckInvariants().ok());
    }
  }
  EXPECT_GT(checked_ops, 15000);
}

TEST(IdentityGraphRandomTest, LinkBatchEqualsLinkingOneByOne) {
  std::map<std::string, int> seen;  // every kind of outcome occurs
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    std::mt19937 rng(seed);
    IdentityGraph one(GraphOptions{3}), batched(GraphOptions{3});
    std::vector<std::string> universe;
    for (int i = 0; i < 40; ++i) {
      std::string id = i % 3 == 0 ? Phone(i) : i % 3 == 1 ? Openid(i) : Unionid(i);
      universe.push_back(id);
      if (i < 34) {  // the last few stay unknown
        Add(one, {{id, 1 + i % 23}});
        Add(batched, {{id, 1 + i % 23}});
      }
    }
    universe.push_back("not-an-id");
    std::vector<std::string> storage;  // keeps the views of the requests alive
    storage.reserve(1000);
    std::vector<LinkRequest> reqs;
    for (int k = 0; k < 300; ++k) {
      storage.push_back(universe[rng() % universe.size()]);
      std::string_view a = storage.back();
      storage.push_back(universe[rng() % universe.size()]);
      std::string_view b = storage.back();
      std::string_view reason = rng() % 50 == 0 ? std::string_view() : "r";
      reqs.push_back({a, b, reason, kTs + k});
    }
    std::vector<StatusOr<LinkOutcome>> want;
    for (const LinkRequest& r : reqs) want.push_back(one.Link(r.id_a, r.id_b, r.reason, r.ts));
    std::vector<StatusOr<LinkOutcome>> got;
    for (size_t i = 0; i < reqs.size();) {  // uneven batches, some longer than one chunk
      size_t n = std::min<size_t>(reqs.size() - i, 1 + rng() % 80);
      for (auto& r : batched.LinkBatch(std::span(reqs).subspan(i, n))) got.push_back(std::move(r));
      i += n;
    }
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(got[k].ok(), want[k].ok()) << k;
      ++seen[want[k].ok() ? std::string(LinkResultName(want[k]->result)) : "error"];
      if (!want[k].ok()) {
        EXPECT_EQ(got[k].status().field(), want[k].status().field());
        continue;
      }
      EXPECT_EQ(got[k]->result, want[k]->result) << k;
      EXPECT_EQ(got[k]->merge_id, want[k]->merge_id) << k;
      EXPECT_EQ(got[k]->quarantine_id, want[k]->quarantine_id) << k;
      EXPECT_EQ(got[k]->person, want[k]->person) << k;
      EXPECT_EQ(got[k]->unknown_ids, want[k]->unknown_ids) << k;
    }
    std::string why;
    EXPECT_TRUE(batched.Equals(one, &why)) << why;
    EXPECT_TRUE(batched.CheckInvariants().ok());
  }
  for (std::string kind : {"linked", "already_same", "quarantined", "new_person_needed", "error"}) {
    EXPECT_GT(seen[kind], 10) << kind;
  }
}

TEST(IdentityGraphRandomTest, AddIdsEqualsAddingOneByOne) {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    std::mt19937 rng(seed);
    IdentityGraph one, batched;
    // Ids of kinds and apps not seen before come in the middle of batches (their prefix is new
    // to the table then), some ids twice, some already someone else's, a few malformed.
    std::vector<std::string> storage;
    storage.reserve(4000);
    std::vector<IdRow> rows;
    for (int k = 0; k < 1500; ++k) {
      int i = static_cast<int>(rng() % 400);
      switch (rng() % 5) {
        case 0:
          storage.push_back(Phone(i));
          break;
        case 1:
          storage.push_back("openid:app" + std::to_string(i % 7) + ":o" + std::to_string(i));
          break;
        case 2:
          storage.push_back("member_no:M" + std::to_string(i));
          break;
        default:
          storage.push_back(Unionid(i));
          break;
      }
      int64_t person = 1 + i % 150;
      if (rng() % 40 == 0) person = 1 + static_cast<int64_t>(rng() % 150);  // may collide
      rows.push_back({storage.back(), person});
    }
    for (size_t i = 0; i < rows.size();) {  // uneven batches
      size_t n = std::min<size_t>(rows.size() - i, 1 + rng() % 120);
      std::vector<IdRow> batch(rows.begin() + static_cast<ptrdiff_t>(i),
                               rows.begin() + static_cast<ptrdiff_t>(i + n));
      i += n;
      if (rng() % 15 == 0) {  // a malformed id somewhere in the batch
        size_t at = rng() % batch.size();
        batch.insert(batch.begin() + static_cast<ptrdiff_t>(at), IdRow{"bogus", 5});
      }
      // One by one, up to the first error: AddIds stops there too.
      size_t want_added = 0;
      Status want;
      for (const IdRow& r : batch) {
        auto one_added = one.AddId(r.id, r.person);
        if (!one_added.ok()) {
          want = one_added.status();
          break;
        }
        want_added += *one_added;
      }
      size_t added = 0;
      Status got = batched.AddIds(batch, &added);
      EXPECT_EQ(got.code(), want.code()) << got.ToString() << " vs " << want.ToString();
      EXPECT_EQ(got.message(), want.message());
      EXPECT_EQ(added, want_added);
      std::string why;
      ASSERT_TRUE(batched.Equals(one, &why)) << "seed " << seed << ": " << why;
    }
    EXPECT_TRUE(batched.CheckInvariants().ok());
  }
}

TEST(IdentityGraphTest, ManyOwnersAndPersonsAtOnceEqualOneByOne) {
  IdentityGraph g(GraphOptions{0});
  std::vector<std::string> ids;
  for (int i = 0; i < 700; ++i) {
    ids.push_back(i % 2 ? Unionid(i) : Openid(i));
    if (i % 5 != 0) Add(g, {{ids.back(), 100 + i / 3}});  // every fifth stays unknown
  }
  for (int i = 0; i + 9 < 600; i += 9) MustLink(g, Unionid(i + 1), Openid(i + 4));
  ids.push_back("openid:never-seen-app:o1");                    // a prefix the table does not have
  std::vector<std::string_view> views(ids.begin(), ids.end());  // more than one chunk of 256
  std::vector<std::optional<IdentityGraph::IdOwner>> owners;
  g.ResolveOwners(views, owners);
  ASSERT_EQ(owners.size(), views.size());
  std::vector<int64_t> rows, persons(ids.size() + 1);
  for (size_t i = 0; i < views.size(); ++i) {
    std::vector<std::optional<IdentityGraph::IdOwner>> single;
    g.ResolveOwners(std::span(views).subspan(i, 1), single);
    ASSERT_EQ(owners[i].has_value(), single[0].has_value()) << ids[i];
    if (!owners[i]) continue;
    EXPECT_EQ(owners[i]->origin_person, single[0]->origin_person) << ids[i];
    EXPECT_EQ(owners[i]->person, single[0]->person) << ids[i];
    EXPECT_EQ(owners[i]->person, R(g, ids[i])) << ids[i];
    rows.push_back(owners[i]->origin_person);
  }
  rows.push_back(999'999);  // unknown: itself
  persons.resize(rows.size());
  g.ResolvePersons(rows, persons);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(persons[i], g.ResolvePerson(rows[i]).value_or(rows[i])) << rows[i];
  }
  EXPECT_EQ(persons.back(), 999'999);
}

// ---- concurrency --------------------------------------------------------------------------------

TEST(IdentityGraphConcurrencyTest, ReadersSeeBeforeOrAfterNeverTorn) {
  IdentityGraph g;
  const int pairs = 3000;
  for (int i = 0; i < pairs; ++i) {
    Add(g, {{Openid(2 * i), 1000 + 2 * i}, {Openid(2 * i + 1), 1000 + 2 * i + 1}});
  }
  std::atomic<bool> done{false};
  std::atomic<long> bad{0}, reads{0};
  auto reader = [&] {
    std::mt19937 rng(7);
    while (!done.load()) {
      int i = static_cast<int>(rng() % pairs);
      int64_t got = R(g, Openid(2 * i + 1));
      // Before the link: its own person; after: the pair's older person. Nothing else.
      if (got != 1000 + 2 * i + 1 && got != 1000 + 2 * i) ++bad;
      ++reads;
    }
  };
  std::thread r1(reader), r2(reader);
  // Start writing once the readers are reading (on a busy machine they may start late).
  while (reads.load() < 100) std::this_thread::yield();
  for (int i = 0; i < pairs; ++i) {
    // Grow the tables while readers read, too.
    Add(g, {{"member_no:m" + std::to_string(i), 1000 + 2 * i}});
    MustLink(g, Openid(2 * i), Openid(2 * i + 1));
  }
  done = true;
  r1.join();
  r2.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_TRUE(g.CheckInvariants().ok());
  for (int i = 0; i < pairs; ++i) EXPECT_EQ(R(g, Openid(2 * i + 1)), 1000 + 2 * i);
}

TEST(IdentityGraphTest, StatsCountAndMeasure) {
  IdentityGraph g;
  Add(g, {{Openid(1), 1}, {Openid(2), 2}, {Unionid(2), 2}});
  MustLink(g, Openid(1), Unionid(2));
  GraphStats s = g.Stats();
  EXPECT_EQ(s.people, 2u);
  EXPECT_EQ(s.ids, 3u);
  EXPECT_EQ(s.components, 1u);
  EXPECT_EQ(s.active_merges, 1u);
  EXPECT_EQ(s.log_events, 1u);
  EXPECT_GT(s.bytes_total(), 0u);
  EXPECT_LT(s.bytes_total(), 64u * 1024);  // a small tenant stays small
}

}  // namespace
}  // namespace siyu::identity
