#include "domain/analytics/channel_report.h"

#include <gtest/gtest.h>

#include "domain/channels/channels.h"
#include "domain/orders/orders.h"
#include "domain/people/people.h"
#include "domain/testing/store_fixture.h"

namespace siyu::domain {
namespace {

constexpr int64_t kDay = 86'400'000;
constexpr int64_t kFrom = 1'793'462'400'000;  // 2026-11-01 00:00 +08:00
constexpr int64_t kTo = kFrom + 30 * kDay;

class ChannelReportTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    t_ = NewTenant("渠道品牌");
    Channels channels(db());
    store_ch_ = *channels.Create(t_, {"门店", "offline", "wecom", 100'000});
    oa_ch_ = *channels.Create(t_, {"公众号", "wechat_public", "official_account", 30'000});
  }
  int64_t Person(const std::string& id, std::optional<std::string> state, int64_t at) {
    People people(db(), identity());
    auto p = people.Upsert(t_, {*ParseExternalId(id), state, at, std::nullopt});
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p->first.id;
  }
  void Order(const std::string& no, int64_t person, int64_t fen, int64_t at, bool refund = false) {
    Orders orders(db(), identity());
    NewOrder o;
    o.order_no = no;
    o.person_id = person;
    o.lines = {{"SKU", 1, fen, 0}};
    o.total_fen = fen;
    o.paid_at = at;
    ASSERT_TRUE(orders.Create(t_, o).ok());
    if (refund) ASSERT_TRUE(orders.Refund(t_, no, std::nullopt, at + 1).ok());
  }
  void Event(const std::string& id, int64_t person, const std::string& type, int64_t ts,
             std::optional<int64_t> channel) {
    // As the events service stores an event: its row, and with a channel the person's touch.
    ASSERT_TRUE(db().Write([&](store::Conn& c) -> Status {
                      RETURN_IF_ERROR(
                          c.Exec("INSERT INTO events (tenant_id, event_id, person_id, type, ts, "
                                 "touchpoint, channel_id, ids, properties, received_at) VALUES "
                                 "(?, ?, ?, ?, ?, 'wecom', ?, '[]', '{}', ?)",
                                 {t_, id, person, type, ts,
                                  channel ? store::Value(*channel) : store::Value(nullptr), ts})
                              .status());
                      if (!channel) return Status::Ok();
                      return c
                          .Exec(
                              "INSERT INTO touches (tenant_id, person_id, ts, event_id, type, "
                              "channel_id) VALUES (?, ?, ?, ?, ?, ?)",
                              {t_, person, ts, id, type, *channel})
                          .status();
                    })
                    .ok());
  }
  const ChannelFunnel& Row(const ChannelReport& r, std::optional<int64_t> ch) {
    for (const auto& f : r.rows) {
      if (f.channel_id == ch) return f;
    }
    ADD_FAILURE() << "no row";
    return r.rows.front();
  }
  int64_t t_ = 0;
  Channel store_ch_, oa_ch_;
};

TEST_P(ChannelReportTest, FunnelCacRoiAndReconciliation) {
  // Store channel: 3 people in the period (one buys twice, one once with a refund), 1 before it.
  int64_t a = Person("phone:13800000001", store_ch_.state, kFrom + kDay);
  int64_t b = Person("phone:13800000002", store_ch_.state, kFrom + 2 * kDay);
  Person("phone:13800000003", store_ch_.state, kFrom + 3 * kDay);
  int64_t old = Person("phone:13800000004", store_ch_.state, kFrom - 5 * kDay);
  // Official account: 1 person, buys once; later re-touched by the store channel (last touch).
  int64_t d = Person("phone:13800000005", oa_ch_.state, kFrom + kDay);
  Person("phone:13800000005", store_ch_.state, kFrom + 4 * kDay);
  int64_t e = Person("unionid:nochannel", std::nullopt, kFrom + kDay);

  Order("A1", a, 10'000, kFrom + 2 * kDay);
  Order("A2", a, 5'000, kFrom + 3 * kDay);
  Order("B1", b, 8'000, kFrom + 3 * kDay, /*refund=*/true);
  Order("D1", d, 2'000, kFrom + 5 * kDay);
  Order("E1", e, 1'000, kFrom + 5 * kDay);
  Order("OLD", old, 99'000, kFrom + 5 * kDay);  // acquired before the period: not in the cohort
  Order("LATE", a, 7'000, kTo + kDay);          // after the period: not counted

  for (int i = 0; i < 5; ++i)
    Event("s" + std::to_string(i), a, "qr_scanned", kFrom + kDay, store_ch_.id);
  Event("add-a", a, "contact_added", kFrom + kDay, store_ch_.id);
  Event("add-a2", a, "contact_added", kFrom + kDay + 1, store_ch_.id);  // same person: one add
  Event("add-b", b, "contact_added", kFrom + 2 * kDay, store_ch_.id);
  Event("out", b, "contact_added", kTo + kDay, store_ch_.id);  // outside the period
  Event("f-d", d, "follow", kFrom + kDay, oa_ch_.id);

  auto r = ComputeChannelReport(db(), t_, kFrom, kTo, Attribution::kFirstTouch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const ChannelFunnel& s = Row(*r, store_ch_.id);
  EXPECT_EQ(s.scans, 5);
  EXPECT_EQ(s.adds, 2);
  EXPECT_EQ(s.new_people, 3);
  EXPECT_EQ(s.first_buyers, 2);
  EXPECT_EQ(s.repeat_buyers, 1);
  EXPECT_EQ(s.orders, 3);
  EXPECT_EQ(s.paid_fen, 23'000);
  EXPECT_EQ(s.refunded_fen, 8'000);
  EXPECT_EQ(s.gmv_fen(), 15'000);
  EXPECT_EQ(s.cost_fen, 100'000);
  const ChannelFunnel& o = Row(*r, oa_ch_.id);
  EXPECT_EQ(o.adds, 1);
  EXPECT_EQ(o.new_people, 1);
  EXPECT_EQ(o.gmv_fen(), 2'000);
  const ChannelFunnel& none = Row(*r, std::nullopt);
  EXPECT_EQ(none.new_people, 1);
  EXPECT_EQ(none.gmv_fen(), 1'000);
  // Reconciles to the orders table: every order paid in the period by people acquired in it.
  EXPECT_EQ(r->total.gmv_fen(),
            QueryInt("SELECT SUM(o.total_fen - o.refunded_fen) FROM orders o JOIN people p ON "
                     "p.id = o.person_id WHERE o.tenant_id = ? AND o.paid_at >= ? AND o.paid_at "
                     "< ? AND p.acquired_at >= ? AND p.acquired_at < ?",
                     {t_, kFrom, kTo, kFrom, kTo}));
  EXPECT_EQ(r->total.gmv_fen(), 18'000);
  EXPECT_EQ(r->total.cost_fen, 130'000);

  // Last touch moves person d (and their order) to the store channel.
  auto last = ComputeChannelReport(db(), t_, kFrom, kTo, Attribution::kLastTouch);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(Row(*last, store_ch_.id).new_people, 4);
  EXPECT_EQ(Row(*last, store_ch_.id).gmv_fen(), 17'000);
  EXPECT_EQ(Row(*last, oa_ch_.id).new_people, 0);
  EXPECT_EQ(last->total.gmv_fen(), r->total.gmv_fen());
}

TEST_P(ChannelReportTest, TenantsAreIsolated) {
  int64_t other = NewTenant("other");
  Channels channels(db());
  auto ch = channels.Create(other, {"门店", "offline", "wecom", 1});
  ASSERT_TRUE(ch.ok());
  People people(db(), identity());
  auto p = people.Upsert(other, {*ParseExternalId("unionid:x"), ch->state, kFrom + kDay, {}});
  ASSERT_TRUE(p.ok());
  auto r = ComputeChannelReport(db(), t_, kFrom, kTo, Attribution::kFirstTouch);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->total.new_people, 0);
  EXPECT_EQ(r->total.cost_fen, 130'000);
  EXPECT_EQ(r->rows.size(), 2u);
}

// A period's people are found by the UTC days they were acquired on, then by the exact times: a
// period that starts and ends inside days, people at its edges and on the days' boundaries, and
// an empty and an inverted period.
TEST_P(ChannelReportTest, NewPeopleAreThoseAcquiredInThePeriodToTheMillisecond) {
  const int64_t day0 = (kFrom / kDay + 3) * kDay;  // a UTC midnight inside the test month
  const int64_t from = day0 - 1'000;               // a second before it
  const int64_t to = day0 + 2 * kDay + 1'000;      // a second after the midnight two days on
  const std::vector<std::pair<int64_t, bool>> people = {
      {from - 1, false},       {from, true},         {day0 - 1, true}, {day0, true},
      {day0 + kDay - 1, true}, {day0 + kDay, true},  {to - 1, true},   {to, false},
      {to + kDay, false},      {from - kDay, false},
  };
  int64_t want = 0;
  for (size_t i = 0; i < people.size(); ++i) {
    Person("member_no:EDGE" + std::to_string(i), store_ch_.state, people[i].first);
    want += people[i].second;
  }
  auto r = ComputeChannelReport(db(), t_, from, to, Attribution::kFirstTouch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Row(*r, store_ch_.id).new_people, want);
  EXPECT_EQ(r->total.new_people, want);
  auto one = ComputeChannelReport(db(), t_, day0 - 1, day0 + 1, Attribution::kFirstTouch);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->total.new_people, 2);  // day0 - 1 and day0, on either side of midnight
  auto empty = ComputeChannelReport(db(), t_, day0, day0, Attribution::kFirstTouch);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->total.new_people, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, ChannelReportTest, ::testing::Values("sqlite", "postgres"),
                         testing::BackendName);

}  // namespace
}  // namespace siyu::domain
