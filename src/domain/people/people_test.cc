#include "domain/people/people.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "domain/channels/channels.h"
#include "domain/testing/store_fixture.h"

namespace siyu::domain {
namespace {

// ---------------------------------------------------------------------------------------------
// ParseExternalId

struct GoodId {
  std::string in;
  std::string kind;
  std::string canonical;
};

TEST(ParseExternalIdTest, AcceptsAndNormalises) {
  const std::vector<GoodId> cases = {
      {"phone:138 0013 8000", "phone", "phone:+8613800138000"},
      {"phone:138-0013-8000", "phone", "phone:+8613800138000"},
      {"phone:13800138000", "phone", "phone:+8613800138000"},
      {"phone:+8613800138000", "phone", "phone:+8613800138000"},
      {"phone:+86 138 0013 8000", "phone", "phone:+8613800138000"},
      {"phone:+14155550100", "phone", "phone:+14155550100"},
      {"openid:wxapp:oABC-_1", "openid", "openid:wxapp:oABC-_1"},
      {"unionid:u1", "unionid", "unionid:u1"},
      {"unionid:" + std::string(128, 'a'), "unionid", "unionid:" + std::string(128, 'a')},
      {"openid:" + std::string(64, 'a') + ":" + std::string(128, 'b'), "openid",
       "openid:" + std::string(64, 'a') + ":" + std::string(128, 'b')},
  };
  for (const auto& c : cases) {
    auto r = ParseExternalId(c.in);
    ASSERT_TRUE(r.ok()) << c.in << ": " << r.status().ToString();
    EXPECT_EQ(r->kind, c.kind) << c.in;
    EXPECT_EQ(r->canonical, c.canonical) << c.in;
    // The canonical form is a fixed point.
    auto again = ParseExternalId(r->canonical);
    ASSERT_TRUE(again.ok()) << r->canonical;
    EXPECT_EQ(again->canonical, r->canonical);
  }
}

TEST(ParseExternalIdTest, RejectsMalformedWithInvalidField) {
  const std::vector<std::string> bad = {
      "",
      "wechat:x",
      "openid:onlyone",
      "openid::id",
      "openid:app:",
      "openid:app:a:b",
      "openid:app:o b",
      "unionid:",
      "unionid:u 1",
      "unionid:u/1",
      "phone:",
      "phone:12345",
      "phone:+86123",
      "phone:abc",
      "phone:23800138000",        // 11 digits but not a mainland mobile
      "phone:138001380001",       // 12 digits without a country code
      "phone:+8623800138000",     // +86 but not a mobile
      "phone:+861380013800",      // +86 with 10 digits
      "phone:+",                  // no digits
      "phone:+0123456789",        // country codes do not start with 0
      "phone:1380013800+0",       // '+' only in front
      "phone:+1234567",           // under 8 digits
      "phone:+1234567890123456",  // over 15 digits
      "PHONE:13800138000",
      "unionid:" + std::string(129, 'a'),
      "openid:" + std::string(65, 'a') + ":x",
      "openid:app:" + std::string(129, 'b'),
  };
  for (const auto& s : bad) {
    auto r = ParseExternalId(s);
    ASSERT_FALSE(r.ok()) << "accepted '" << s << "' as " << r->canonical;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidField) << s;
    EXPECT_EQ(r.status().field(), "external_id") << s;
    EXPECT_FALSE(r.status().message().empty()) << s;
  }
}

TEST(ParseExternalIdTest, ReportsTheCallersFieldName) {
  auto r = ParseExternalId("wechat:x", "people[3].external_id");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidField);
  EXPECT_EQ(r.status().field(), "people[3].external_id");
}

// ---------------------------------------------------------------------------------------------
// People on a store

constexpr int64_t kT0 = 1'700'000'000'000;

// A PersonUpsert with the optional fields left out unless given.
PersonUpsert MakeUpsert(ExternalId id, std::optional<std::string> channel_state = std::nullopt,
                        std::optional<int64_t> acquired_at = std::nullopt,
                        std::optional<std::string> name = std::nullopt) {
  PersonUpsert in;
  in.external_id = std::move(id);
  in.channel_state = std::move(channel_state);
  in.acquired_at = acquired_at;
  in.name = std::move(name);
  return in;
}

class PeopleTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (HasFatalFailure()) return;
    tenant_ = NewTenant("品牌A");
    other_ = NewTenant("品牌B");
    people_ = std::make_unique<People>(db(), identity());
    channels_ = std::make_unique<Channels>(db());
  }
  void TearDown() override {
    people_.reset();
    channels_.reset();
    StoreFixture::TearDown();
  }

  static ExternalId Id(const std::string& s) {
    auto r = ParseExternalId(s);
    EXPECT_TRUE(r.ok()) << s << ": " << r.status().ToString();
    return r.ok() ? *r : ExternalId{};
  }

  Channel NewChannel(int64_t tenant, const std::string& name) {
    auto c = channels_->Create(tenant, {name, "offline", "wecom", 100});
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : Channel{};
  }

  // Upserts and expects success.
  std::pair<Person, bool> Up(int64_t tenant, const PersonUpsert& in) {
    auto r = people_->Upsert(tenant, in);
    EXPECT_TRUE(r.ok()) << in.external_id.canonical << ": " << r.status().ToString();
    return r.ok() ? *r : std::pair<Person, bool>{};
  }

  int64_t CountPeople() { return QueryInt("SELECT COUNT(*) FROM people"); }
  int64_t CountPersonIds() { return QueryInt("SELECT COUNT(*) FROM person_ids"); }

  int64_t tenant_ = 0;
  int64_t other_ = 0;
  std::unique_ptr<People> people_;
  std::unique_ptr<Channels> channels_;
};

TEST_P(PeopleTest, UpsertCreatesOnceThenReturnsTheSamePerson) {
  PersonUpsert in{Id("openid:wxapp:oABC-_1"), std::nullopt, kT0, std::string("小王")};
  auto [first, created] = Up(tenant_, in);
  EXPECT_TRUE(created);
  EXPECT_GT(first.id, 0);
  EXPECT_EQ(first.name, std::optional<std::string>("小王"));
  EXPECT_EQ(first.external_ids, std::vector<std::string>{"openid:wxapp:oABC-_1"});
  EXPECT_EQ(first.first_channel_id, std::nullopt);
  EXPECT_EQ(first.last_channel_id, std::nullopt);
  EXPECT_EQ(first.acquired_at, kT0);

  auto [second, created2] = Up(tenant_, MakeUpsert(Id("openid:wxapp:oABC-_1")));
  EXPECT_FALSE(created2);
  EXPECT_EQ(second.id, first.id);
  EXPECT_EQ(second.name, std::optional<std::string>("小王"));  // not cleared by an upsert without
  EXPECT_EQ(second.external_ids, first.external_ids);
  EXPECT_EQ(second.created_at, first.created_at);
  EXPECT_EQ(CountPeople(), 1);
  EXPECT_EQ(CountPersonIds(), 1);

  auto got = people_->Get(tenant_, first.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, first.id);
  EXPECT_EQ(got->name, first.name);
  EXPECT_EQ(got->external_ids, first.external_ids);
  EXPECT_EQ(got->acquired_at, kT0);
  EXPECT_EQ(got->created_at, first.created_at);

  auto found = people_->FindByExternalId(tenant_, Id("openid:wxapp:oABC-_1"));
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->id, first.id);

  auto missing = people_->FindByExternalId(tenant_, Id("openid:wxapp:other"));
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(people_->Get(tenant_, first.id + 1000).status().code(), ErrorCode::kNotFound);
}

TEST_P(PeopleTest, PhoneSpellingsOfOneNumberAreOnePerson) {
  auto [a, created_a] = Up(tenant_, MakeUpsert(Id("phone:138 0013 8000")));
  auto [b, created_b] = Up(tenant_, MakeUpsert(Id("phone:+8613800138000")));
  auto [c, created_c] = Up(tenant_, MakeUpsert(Id("phone:13800138000")));
  EXPECT_TRUE(created_a);
  EXPECT_FALSE(created_b);
  EXPECT_FALSE(created_c);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.id, c.id);
  EXPECT_EQ(b.external_ids, std::vector<std::string>{"phone:+8613800138000"});
  EXPECT_EQ(CountPeople(), 1);
}

TEST_P(PeopleTest, DifferentExternalIdsAreDifferentPeople) {
  auto [a, ca] = Up(tenant_, MakeUpsert(Id("unionid:u1")));
  auto [b, cb] = Up(tenant_, MakeUpsert(Id("unionid:u2")));
  auto [c, cc] = Up(tenant_, MakeUpsert(Id("openid:wxapp:u1")));
  EXPECT_TRUE(ca && cb && cc);
  EXPECT_NE(a.id, b.id);
  EXPECT_NE(a.id, c.id);
  EXPECT_NE(b.id, c.id);
  EXPECT_EQ(CountPeople(), 3);
}

TEST_P(PeopleTest, FirstChannelIsKeptWhileLastChannelMoves) {
  Channel c1 = NewChannel(tenant_, "门店收银台");
  Channel c2 = NewChannel(tenant_, "公众号菜单");
  ASSERT_NE(c1.id, c2.id);
  const ExternalId id = Id("unionid:traveller");

  auto [p1, created] = Up(tenant_, MakeUpsert(id, c1.state, kT0));
  EXPECT_TRUE(created);
  EXPECT_EQ(p1.first_channel_id, c1.id);
  EXPECT_EQ(p1.last_channel_id, c1.id);

  auto [p2, created2] = Up(tenant_, MakeUpsert(id, c2.state));
  EXPECT_FALSE(created2);
  EXPECT_EQ(p2.id, p1.id);
  EXPECT_EQ(p2.first_channel_id, c1.id);
  EXPECT_EQ(p2.last_channel_id, c2.id);

  // Without a channel nothing moves.
  auto [p3, created3] = Up(tenant_, MakeUpsert(id));
  EXPECT_FALSE(created3);
  EXPECT_EQ(p3.first_channel_id, c1.id);
  EXPECT_EQ(p3.last_channel_id, c2.id);

  // Back through the first channel: last moves back, first stays.
  auto [p4, created4] = Up(tenant_, MakeUpsert(id, c1.state));
  EXPECT_FALSE(created4);
  EXPECT_EQ(p4.first_channel_id, c1.id);
  EXPECT_EQ(p4.last_channel_id, c1.id);

  auto got = people_->Get(tenant_, p1.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->first_channel_id, c1.id);
  EXPECT_EQ(got->last_channel_id, c1.id);
}

TEST_P(PeopleTest, UnknownChannelStateWritesNothing) {
  Channel c1 = NewChannel(tenant_, "门店收银台");
  Channel foreign = NewChannel(other_, "别家的渠道");
  auto [known, created] =
      Up(tenant_, MakeUpsert(Id("unionid:known"), c1.state, kT0, std::string("原名")));
  ASSERT_TRUE(created);
  const int64_t people_before = CountPeople(), ids_before = CountPersonIds();

  // A new person with a state no channel has: nothing created.
  auto r = people_->Upsert(tenant_, MakeUpsert(Id("unionid:new"), std::string("cNoSuchState1"), kT0,
                                               std::string("新人")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnknownChannelState);
  EXPECT_EQ(r.status().field(), "channel_state");
  EXPECT_EQ(CountPeople(), people_before);
  EXPECT_EQ(CountPersonIds(), ids_before);
  EXPECT_EQ(people_->FindByExternalId(tenant_, Id("unionid:new")).status().code(),
            ErrorCode::kNotFound);

  // Another tenant's channel state is unknown here.
  r = people_->Upsert(tenant_, MakeUpsert(Id("unionid:new"), foreign.state));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnknownChannelState);
  EXPECT_EQ(CountPeople(), people_before);

  // A known person with an unknown state: neither the channel nor the name changes.
  r = people_->Upsert(tenant_, MakeUpsert(Id("unionid:known"), std::string("cNoSuchState1"),
                                          std::nullopt, std::string("改名")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnknownChannelState);
  auto got = people_->Get(tenant_, known.id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->name, std::optional<std::string>("原名"));
  EXPECT_EQ(got->first_channel_id, c1.id);
  EXPECT_EQ(got->last_channel_id, c1.id);
  EXPECT_EQ(CountPeople(), people_before);
  EXPECT_EQ(CountPersonIds(), ids_before);
}

TEST_P(PeopleTest, AcquiredAtIsKeptFromTheFirstUpsert) {
  auto [p1, created] = Up(tenant_, MakeUpsert(Id("unionid:early"), std::nullopt, kT0));
  ASSERT_TRUE(created);
  EXPECT_EQ(p1.acquired_at, kT0);
  auto [p2, created2] = Up(tenant_, MakeUpsert(Id("unionid:early"), std::nullopt, kT0 + kMsPerDay));
  EXPECT_FALSE(created2);
  EXPECT_EQ(p2.acquired_at, kT0);
  auto got = people_->Get(tenant_, p1.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->acquired_at, kT0);

  // Without acquired_at it defaults to now.
  int64_t before = NowMs();
  auto [p3, created3] = Up(tenant_, MakeUpsert(Id("unionid:now")));
  int64_t after = NowMs();
  ASSERT_TRUE(created3);
  EXPECT_GE(p3.acquired_at, before);
  EXPECT_LE(p3.acquired_at, after);
  EXPECT_GE(p3.created_at, before);
  EXPECT_LE(p3.created_at, after);
  got = people_->Get(tenant_, p3.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->acquired_at, p3.acquired_at);
}

TEST_P(PeopleTest, TenantsAreIsolated) {
  const ExternalId id = Id("phone:13800138000");
  auto [a, created_a] = Up(tenant_, MakeUpsert(id, std::nullopt, kT0, std::string("A的顾客")));
  ASSERT_TRUE(created_a);

  // Tenant B cannot see A's person by id or by external id.
  EXPECT_EQ(people_->Get(other_, a.id).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(people_->FindByExternalId(other_, id).status().code(), ErrorCode::kNotFound);
  auto list_b = people_->List(other_, 0, 50);
  ASSERT_TRUE(list_b.ok());
  EXPECT_TRUE(list_b->items.empty());

  // The same external id in B makes a second person, leaving A's untouched.
  auto [b, created_b] = Up(other_, MakeUpsert(id, std::nullopt, kT0 + 5, std::string("B的顾客")));
  EXPECT_TRUE(created_b);
  EXPECT_NE(b.id, a.id);
  EXPECT_EQ(CountPeople(), 2);

  auto got_a = people_->FindByExternalId(tenant_, id);
  auto got_b = people_->FindByExternalId(other_, id);
  ASSERT_TRUE(got_a.ok() && got_b.ok());
  EXPECT_EQ(got_a->id, a.id);
  EXPECT_EQ(got_a->name, std::optional<std::string>("A的顾客"));
  EXPECT_EQ(got_a->acquired_at, kT0);
  EXPECT_EQ(got_b->id, b.id);
  EXPECT_EQ(got_b->name, std::optional<std::string>("B的顾客"));
  EXPECT_EQ(people_->Get(tenant_, b.id).status().code(), ErrorCode::kNotFound);

  // A channel of B brings nobody to A: A's upsert with B's state fails.
  Channel cb = NewChannel(other_, "B渠道");
  auto r = people_->Upsert(tenant_, MakeUpsert(id, cb.state));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnknownChannelState);
}

TEST_P(PeopleTest, ListPagesCoverEveryPersonExactlyOnce) {
  // People of two tenants interleaved, so that A's ids are not contiguous.
  std::set<int64_t> want;
  for (int i = 0; i < 7; ++i) {
    auto [p, created] = Up(tenant_, MakeUpsert(Id("unionid:a" + std::to_string(i))));
    ASSERT_TRUE(created);
    want.insert(p.id);
    Up(other_, MakeUpsert(Id("unionid:b" + std::to_string(i))));
  }
  for (int limit : {1, 3, 7, 50}) {
    std::set<int64_t> seen;
    std::vector<size_t> sizes;
    int64_t after = 0, last = 0;
    for (int pages = 0; pages < 20; ++pages) {
      auto page = people_->List(tenant_, after, limit);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      sizes.push_back(page->items.size());
      EXPECT_LE(page->items.size(), static_cast<size_t>(limit));
      for (const auto& p : page->items) {
        EXPECT_GT(p.id, last) << "ids ascend across pages";
        last = p.id;
        EXPECT_TRUE(seen.insert(p.id).second) << "person " << p.id << " listed twice";
        ASSERT_EQ(p.external_ids.size(), 1u);
        EXPECT_EQ(p.external_ids[0].substr(0, 9), "unionid:a");
      }
      if (!page->next_after) break;
      ASSERT_FALSE(page->items.empty());
      EXPECT_EQ(*page->next_after, page->items.back().id);
      after = *page->next_after;
    }
    EXPECT_EQ(seen, want) << "limit " << limit;
    // Exactly ceil(7 / limit) pages: no trailing empty page when the last page is full.
    EXPECT_EQ(sizes.size(), static_cast<size_t>((7 + limit - 1) / limit)) << "limit " << limit;
  }
}

TEST_P(PeopleTest, ConcurrentUpsertsOfOneIdMakeOnePerson) {
  constexpr int kThreads = 16;
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  std::vector<StatusOr<std::pair<Person, bool>>> results(kThreads,
                                                         Status(ErrorCode::kInternal, "not run"));
  const ExternalId id = Id("openid:wxapp:race");
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      results[t] = people_->Upsert(tenant_, MakeUpsert(id, std::nullopt, kT0));
    });
  }
  go = true;
  for (auto& t : ts) t.join();
  int created = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    created += r->second ? 1 : 0;
    EXPECT_EQ(r->first.id, results[0]->first.id);
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(CountPeople(), 1);
  EXPECT_EQ(CountPersonIds(), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, PeopleTest, ::testing::Values("sqlite", "postgres"),
                         testing::BackendName);

}  // namespace
}  // namespace siyu::domain
