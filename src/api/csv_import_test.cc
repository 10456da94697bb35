#include "api/csv_import.h"

#include <gtest/gtest.h>

#include "domain/channels/channels.h"
#include "domain/testing/store_fixture.h"

namespace siyu::api {
namespace {

class CsvImportTest : public domain::testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    tenant_ = NewTenant("导入品牌");
    other_ = NewTenant("other");
    people_ = std::make_unique<domain::People>(db(), identity());
    orders_ = std::make_unique<domain::Orders>(db(), identity());
    domain::Channels channels(db());
    auto ch = channels.Create(tenant_, {"门店", "offline", "wecom", 0});
    ASSERT_TRUE(ch.ok());
    state_ = ch->state;
  }
  int64_t Count(const std::string& table) {
    return QueryInt("SELECT COUNT(*) FROM " + table + " WHERE tenant_id = ?", {tenant_});
  }
  int64_t tenant_ = 0, other_ = 0;
  std::string state_;
  std::unique_ptr<domain::People> people_;
  std::unique_ptr<domain::Orders> orders_;
};

TEST_P(CsvImportTest, PeopleWithMappingErrorsAndIdempotentRerun) {
  std::string csv =
      "手机号,姓名,渠道,注册时间\n"
      "13800138000,小王," +
      state_ +
      ",2026-11-01 09:30\n"
      "13800138001,小李,,2026-11-02\n"
      "12345,坏号码,,\n"
      "13800138002,小张,nosuchstate,\n"
      "13800138003,,,not-a-date\n"
      "13800138000,小王," +
      state_ + ",2026-11-01 09:30\n";  // the same person again
  ImportOptions opt;
  opt.mapping = {{"external_id", "phone:手机号"},
                 {"name", "姓名"},
                 {"channel_state", "渠道"},
                 {"acquired_at", "注册时间"}};
  auto sum = ImportPeople(*people_, tenant_, csv, opt);
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(sum->rows, 6);
  EXPECT_EQ(sum->created, 2);
  EXPECT_EQ(sum->unchanged, 1);
  EXPECT_EQ(sum->failed, 3);
  ASSERT_EQ(sum->errors.size(), 3u);
  EXPECT_EQ(sum->errors[0].line, 4);
  EXPECT_EQ(sum->errors[0].field, "external_id");
  EXPECT_EQ(sum->errors[1].line, 5);
  EXPECT_EQ(sum->errors[1].code, "UNKNOWN_CHANNEL_STATE");
  EXPECT_EQ(sum->errors[2].line, 6);
  EXPECT_EQ(sum->errors[2].field, "acquired_at");
  EXPECT_EQ(Count("people"), 2);
  // 2026-11-01 09:30 Asia/Shanghai
  EXPECT_EQ(QueryInt("SELECT acquired_at FROM people p JOIN person_ids i ON i.person_id = p.id "
                     "WHERE i.external_id = ?",
                     {std::string("phone:+8613800138000")}),
            1793462400000 + (9 * 60 + 30) * 60000);

  auto again = ImportPeople(*people_, tenant_, csv, opt);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->created, 0);
  EXPECT_EQ(again->unchanged, 3);
  EXPECT_EQ(again->failed, 3);
  EXPECT_EQ(Count("people"), 2);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM people WHERE tenant_id = ?", {other_}), 0);
}

TEST_P(CsvImportTest, OrdersGroupLinesRefundsAndRerunChangesNothing) {
  ASSERT_TRUE(people_->Upsert(tenant_, {{"unionid", "unionid:u1"}, {}, {}, {}}).ok());
  std::string csv =
      "order_no,external_id,sku,quantity,unit_price,paid_at,refunded_at\n"
      "A1,unionid:u1,洗衣液,2,49.90,2026-11-03 10:00,\n"
      "A1,unionid:u1,抽纸,1,59.9,2026-11-03 10:00,\n"
      "A2,unionid:u1,牙膏,3,12.9,2026-11-04,2026-11-05\n"
      "A3,unionid:nobody,牙膏,1,12.9,2026-11-04,\n"
      "A4,unionid:u1,牙膏,1,12.999,2026-11-04,\n"
      "A5,unionid:u1,牙膏,1,1,2026-11-04,\n"
      "A5,unionid:u1,牙膏,1,1,2026-11-06,\n";
  auto sum = ImportOrders(*orders_, tenant_, csv, {});
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(sum->rows, 5);
  EXPECT_EQ(sum->created, 2);
  EXPECT_EQ(sum->failed, 3);
  ASSERT_EQ(sum->errors.size(), 3u);
  EXPECT_EQ(sum->errors[0].code, "UNKNOWN_PERSON");
  EXPECT_EQ(sum->errors[0].line, 5);
  EXPECT_EQ(sum->errors[1].field, "unit_price");
  EXPECT_EQ(sum->errors[2].field, "paid_at");  // A5's lines disagree on paid_at
  auto a1 = orders_->Get(tenant_, "A1");
  ASSERT_TRUE(a1.ok());
  EXPECT_EQ(a1->total_fen, 2 * 4990 + 5990);
  EXPECT_EQ(a1->lines.size(), 2u);
  auto a2 = orders_->Get(tenant_, "A2");
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a2->status, "refunded");
  EXPECT_EQ(a2->refunded_fen, 3 * 1290);

  auto again = ImportOrders(*orders_, tenant_, csv, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->created, 0);
  EXPECT_EQ(again->updated, 0);
  EXPECT_EQ(again->unchanged, 2);
  EXPECT_EQ(Count("orders"), 2);
  EXPECT_EQ(Count("refunds"), 1);
}

TEST_P(CsvImportTest, MappingToAMissingColumnFailsBeforeAnyWrite) {
  ImportOptions opt;
  opt.mapping = {{"external_id", "手机"}};
  auto sum = ImportPeople(*people_, tenant_, "phone\nphone:13800138000\n", opt);
  ASSERT_FALSE(sum.ok());
  EXPECT_EQ(sum.status().field(), "mapping");
  EXPECT_EQ(Count("people"), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, CsvImportTest, ::testing::Values("sqlite", "postgres"),
                         domain::testing::BackendName);

}  // namespace
}  // namespace siyu::api
