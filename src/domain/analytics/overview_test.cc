#include "domain/analytics/overview.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/time.h"
#include "domain/channels/channels.h"
#include "domain/orders/orders.h"
#include "domain/people/people.h"
#include "domain/testing/store_fixture.h"

namespace siyu::domain {
namespace {

// The period under test: [kFrom, kTo).
constexpr int64_t kFrom = 1'700'000'000'000;
constexpr int64_t kTo = kFrom + 30 * kMsPerDay;
constexpr int64_t kHour = 3'600'000;

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

void ExpectFigures(const Figures& got, const Figures& want, const std::string& what) {
  EXPECT_EQ(got.people, want.people) << what << ": people";
  EXPECT_EQ(got.buyers, want.buyers) << what << ": buyers";
  EXPECT_EQ(got.orders, want.orders) << what << ": orders";
  EXPECT_EQ(got.paid_fen, want.paid_fen) << what << ": paid_fen";
  EXPECT_EQ(got.refunded_fen, want.refunded_fen) << what << ": refunded_fen";
  EXPECT_EQ(got.gmv_fen(), want.paid_fen - want.refunded_fen) << what << ": gmv_fen";
}

Figures F(int64_t people, int64_t buyers, int64_t orders, int64_t paid, int64_t refunded) {
  Figures f;
  f.people = people;
  f.buyers = buyers;
  f.orders = orders;
  f.paid_fen = paid;
  f.refunded_fen = refunded;
  return f;
}

// The data set (tenant A):
//   channels C1 (offline/wecom), C2 (wechat_public/official_account), C3 (nobody came through it)
//   p1 C1, acquired before the period    orders: o1 2000 in, o2 3000 in (refunded), o8 4444 before
//   p2 C1, acquired in the period        orders: o3 1500 in
//   p3 C2, acquired in the period        orders: o4 10000 in
//   p7 C2, acquired in the period        orders: o7 8888 before the period (refunded in it)
//   p4 no channel, acquired before       orders: o5 700 at exactly `from`, o6 9999 at exactly `to`
//   p5 no channel, acquired in the period, no orders
//   p6 C1, acquired at exactly `to`      orders: o9 5555 in the period (not counted: p6 is not
//                                        one of the period's people)
// Tenant B has its own channel, people and orders in the period, none of which may show in A.
class OverviewTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (HasFatalFailure()) return;
    tenant_ = NewTenant("品牌A");
    other_ = NewTenant("品牌B");
    people_ = std::make_unique<People>(db(), identity());
    orders_ = std::make_unique<Orders>(db(), identity());
    Channels channels(db());

    auto c1 = channels.Create(tenant_, {"门店收银台", "offline", "wecom", 50000});
    auto c2 = channels.Create(tenant_, {"公众号菜单", "wechat_public", "official_account", 0});
    auto c3 = channels.Create(tenant_, {"空渠道", "partner", "group", 100});
    auto cb = channels.Create(other_, {"B的渠道", "offline", "wecom", 0});
    ASSERT_TRUE(c1.ok() && c2.ok() && c3.ok() && cb.ok());
    c1_ = *c1;
    c2_ = *c2;
    c3_ = *c3;
    cb_ = *cb;

    int64_t p1 = AddPerson(tenant_, "unionid:p1", c1_.state, kFrom - 10 * kMsPerDay);
    int64_t p2 = AddPerson(tenant_, "unionid:p2", c1_.state, kFrom + kMsPerDay);
    int64_t p3 = AddPerson(tenant_, "unionid:p3", c2_.state, kFrom + 2 * kMsPerDay);
    int64_t p4 = AddPerson(tenant_, "unionid:p4", std::nullopt, kFrom - kMsPerDay);
    AddPerson(tenant_, "unionid:p5", std::nullopt, kFrom + 3 * kMsPerDay);
    int64_t p6 = AddPerson(tenant_, "unionid:p6", c1_.state, kTo);
    int64_t p7 = AddPerson(tenant_, "unionid:p7", c2_.state, kFrom + 5 * kMsPerDay);
    // p1 comes back through C2 later: the first channel (C1) is what counts.
    AddPerson(tenant_, "unionid:p1", c2_.state, kFrom);

    AddOrder(tenant_, "o1", p1, 2, 1000, kFrom + kHour);
    AddOrder(tenant_, "o2", p1, 1, 3000, kFrom + 5 * kMsPerDay);
    AddOrder(tenant_, "o3", p2, 3, 500, kFrom + 2 * kMsPerDay);
    AddOrder(tenant_, "o4", p3, 1, 10000, kFrom + 3 * kMsPerDay);
    AddOrder(tenant_, "o5", p4, 1, 700, kFrom);
    AddOrder(tenant_, "o6", p4, 1, 9999, kTo);
    AddOrder(tenant_, "o7", p7, 1, 8888, kFrom - 1);
    AddOrder(tenant_, "o8", p1, 1, 4444, kFrom - 2 * kMsPerDay);
    AddOrder(tenant_, "o9", p6, 1, 5555, kTo - 1);
    RefundOrder(tenant_, "o2", kFrom + 6 * kMsPerDay);
    RefundOrder(tenant_, "o7", kFrom + kMsPerDay);  // refund of an order paid before the period

    int64_t b1 = AddPerson(other_, "unionid:p1", cb_.state, kFrom - kMsPerDay);
    int64_t b2 = AddPerson(other_, "unionid:b2", std::nullopt, kFrom + kMsPerDay);
    AddOrder(other_, "o1", b1, 10, 100000, kFrom + kHour);
    AddOrder(other_, "b2", b2, 1, 777, kFrom + 2 * kHour);
    RefundOrder(other_, "o1", kFrom + 2 * kHour);
  }
  void TearDown() override {
    orders_.reset();
    people_.reset();
    StoreFixture::TearDown();
  }

  int64_t AddPerson(int64_t tenant, const std::string& ext, std::optional<std::string> state,
                    int64_t acquired_at) {
    auto id = ParseExternalId(ext);
    EXPECT_TRUE(id.ok()) << ext;
    auto r = people_->Upsert(tenant, MakeUpsert(*id, state, acquired_at));
    EXPECT_TRUE(r.ok()) << ext << ": " << r.status().ToString();
    return r.ok() ? r->first.id : 0;
  }

  void AddOrder(int64_t tenant, const std::string& no, int64_t person, int64_t qty, int64_t price,
                int64_t paid_at) {
    NewOrder o;
    o.order_no = no;
    o.person_id = person;
    o.lines = {{"SKU", qty, price, 0}};
    o.total_fen = qty * price;
    o.paid_at = paid_at;
    auto r = orders_->Create(tenant, o);
    ASSERT_TRUE(r.ok()) << no << ": " << r.status().ToString();
    ASSERT_TRUE(r->second) << no;
  }

  void RefundOrder(int64_t tenant, const std::string& no, int64_t at) {
    auto r = orders_->Refund(tenant, no, std::nullopt, at);
    ASSERT_TRUE(r.ok()) << no << ": " << r.status().ToString();
  }

  Overview Compute(int64_t tenant, int64_t from, int64_t to,
                   std::optional<int64_t> channel = std::nullopt) {
    auto r = ComputeOverview(db(), tenant, OverviewQuery{from, to, channel});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Overview{};
  }

  // by_channel keyed by channel id (-1: no channel); fails on a repeated row.
  static std::map<int64_t, ChannelFigures> ByChannel(const Overview& ov) {
    std::map<int64_t, ChannelFigures> out;
    for (const auto& cf : ov.by_channel) {
      int64_t k = cf.channel_id.value_or(-1);
      EXPECT_TRUE(out.emplace(k, cf).second) << "channel " << k << " reported twice";
    }
    return out;
  }

  static void ExpectRowsSumToTotal(const Overview& ov) {
    Figures sum;
    for (const auto& cf : ov.by_channel) sum.Add(cf.figures);
    ExpectFigures(sum, ov.total, "sum of by_channel");
  }

  int64_t tenant_ = 0, other_ = 0;
  Channel c1_, c2_, c3_, cb_;
  std::unique_ptr<People> people_;
  std::unique_ptr<Orders> orders_;
};

TEST_P(OverviewTest, EveryFigureOfTheKnownDataSet) {
  Overview ov = Compute(tenant_, kFrom, kTo);
  EXPECT_EQ(ov.query.from, kFrom);
  EXPECT_EQ(ov.query.to, kTo);
  EXPECT_EQ(ov.query.channel_id, std::nullopt);

  const Figures want_c1 = F(/*people=*/2, /*buyers=*/2, /*orders=*/3, 2000 + 3000 + 1500, 3000);
  const Figures want_c2 = F(2, 1, 1, 10000, 0);
  const Figures want_none = F(2, 1, 1, 700, 0);
  const Figures want_c3 = F(0, 0, 0, 0, 0);
  const Figures want_total = F(6, 4, 5, 17200, 3000);

  ExpectFigures(ov.total, want_total, "total");
  EXPECT_EQ(ov.total.gmv_fen(), 14200);

  auto rows = ByChannel(ov);
  ASSERT_EQ(rows.size(), 4u) << "C1, C2, C3 and no channel; nothing of tenant B";
  ASSERT_TRUE(rows.count(c1_.id) && rows.count(c2_.id) && rows.count(c3_.id) && rows.count(-1));
  ExpectFigures(rows[c1_.id].figures, want_c1, "C1");
  ExpectFigures(rows[c2_.id].figures, want_c2, "C2");
  ExpectFigures(rows[c3_.id].figures, want_c3, "C3");
  ExpectFigures(rows[-1].figures, want_none, "no channel");
  EXPECT_EQ(rows[c1_.id].figures.gmv_fen(), 3500);

  EXPECT_EQ(rows[c1_.id].name, "门店收银台");
  EXPECT_EQ(rows[c1_.id].source_pool, "offline");
  EXPECT_EQ(rows[c1_.id].touchpoint, "wecom");
  EXPECT_EQ(rows[c2_.id].name, "公众号菜单");
  EXPECT_EQ(rows[c2_.id].source_pool, "wechat_public");
  EXPECT_EQ(rows[c2_.id].touchpoint, "official_account");
  EXPECT_EQ(rows[c3_.id].name, "空渠道");
  EXPECT_EQ(rows[c3_.id].source_pool, "partner");
  EXPECT_EQ(rows[c3_.id].touchpoint, "group");
  EXPECT_EQ(rows[-1].channel_id, std::nullopt);

  ExpectRowsSumToTotal(ov);
}

TEST_P(OverviewTest, FromIsInclusiveAndToExclusive) {
  // [kTo, kTo + 1 day): o6 (paid at exactly kTo) counts; p6 (acquired at kTo) is now a person.
  Overview ov = Compute(tenant_, kTo, kTo + kMsPerDay);
  ExpectFigures(ov.total, F(7, 1, 1, 9999, 0), "next day");
  auto rows = ByChannel(ov);
  ExpectFigures(rows[-1].figures, F(2, 1, 1, 9999, 0), "next day, no channel");
  ExpectFigures(rows[c1_.id].figures, F(3, 0, 0, 0, 0), "next day, C1");
  ExpectRowsSumToTotal(ov);

  // A period ending one millisecond after kFrom: only o5 (paid at exactly kFrom).
  ov = Compute(tenant_, kFrom, kFrom + 1);
  // People acquired before kFrom + 1: p1 (C1), p4 (none).
  ExpectFigures(ov.total, F(2, 1, 1, 700, 0), "first millisecond");
  ExpectRowsSumToTotal(ov);
}

TEST_P(OverviewTest, ChannelFilterReturnsOnlyThatChannel) {
  Overview ov = Compute(tenant_, kFrom, kTo, c1_.id);
  EXPECT_EQ(ov.query.channel_id, c1_.id);
  ExpectFigures(ov.total, F(2, 2, 3, 6500, 3000), "C1 total");
  ASSERT_EQ(ov.by_channel.size(), 1u);
  EXPECT_EQ(ov.by_channel[0].channel_id, c1_.id);
  EXPECT_EQ(ov.by_channel[0].name, "门店收银台");
  ExpectFigures(ov.by_channel[0].figures, F(2, 2, 3, 6500, 3000), "C1 row");

  ov = Compute(tenant_, kFrom, kTo, c2_.id);
  ExpectFigures(ov.total, F(2, 1, 1, 10000, 0), "C2 total");
  ASSERT_EQ(ov.by_channel.size(), 1u);
  EXPECT_EQ(ov.by_channel[0].channel_id, c2_.id);

  ov = Compute(tenant_, kFrom, kTo, c3_.id);
  ExpectFigures(ov.total, F(0, 0, 0, 0, 0), "C3 total");
  ASSERT_EQ(ov.by_channel.size(), 1u);
  EXPECT_EQ(ov.by_channel[0].channel_id, c3_.id);
  EXPECT_EQ(ov.by_channel[0].name, "空渠道");
}

TEST_P(OverviewTest, AnotherTenantsDataIsNeverCounted) {
  // Tenant B: b1 (channel B, 1,000,000 fen, refunded) and b2 (no channel, 777 fen).
  Overview b = Compute(other_, kFrom, kTo);
  ExpectFigures(b.total, F(2, 2, 2, 1'000'000 + 777, 1'000'000), "tenant B");
  auto rows = ByChannel(b);
  ASSERT_EQ(rows.size(), 2u);
  ExpectFigures(rows[cb_.id].figures, F(1, 1, 1, 1'000'000, 1'000'000), "tenant B, its channel");
  ExpectFigures(rows[-1].figures, F(1, 1, 1, 777, 0), "tenant B, no channel");
  ExpectRowsSumToTotal(b);

  // A, filtered by B's channel: nothing at all.
  Overview a = Compute(tenant_, kFrom, kTo, cb_.id);
  ExpectFigures(a.total, F(0, 0, 0, 0, 0), "A filtered by B's channel");
  EXPECT_TRUE(a.by_channel.empty());

  // B, filtered by A's channel: nothing at all.
  b = Compute(other_, kFrom, kTo, c1_.id);
  ExpectFigures(b.total, F(0, 0, 0, 0, 0), "B filtered by A's channel");
  EXPECT_TRUE(b.by_channel.empty());

  // A tenant with no data.
  int64_t empty = NewTenant("空品牌");
  Overview e = Compute(empty, kFrom, kTo);
  ExpectFigures(e.total, F(0, 0, 0, 0, 0), "empty tenant");
  EXPECT_TRUE(e.by_channel.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, OverviewTest, ::testing::Values("sqlite", "postgres"),
                         testing::BackendName);

}  // namespace
}  // namespace siyu::domain
