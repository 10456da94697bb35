#include "api/codec.h"

#include <gtest/gtest.h>

namespace siyu::api {
namespace {

constexpr int64_t kNow = 1'800'000'000'000;

TEST(ParseNewOrder, AcceptsAWellFormedOrder) {
  auto o = ParseNewOrder(
      R"({"order_no":"SO-1","person_id":7,"lines":[{"sku":"A","quantity":2,"unit_price_fen":1990}],"total_fen":3980})",
      kNow);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->order_no, "SO-1");
  EXPECT_EQ(o->lines.at(0).quantity, 2);
  EXPECT_FALSE(o->paid_at.has_value());
}

struct BadCase {
  const char* body;
  ErrorCode code;
  const char* field;
};

class ParseNewOrderBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(ParseNewOrderBad, NamesCodeAndField) {
  auto o = ParseNewOrder(GetParam().body, kNow);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), GetParam().code) << o.status().ToString();
  EXPECT_EQ(o.status().field(), GetParam().field);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseNewOrderBad,
    ::testing::Values(
        BadCase{"not json", ErrorCode::kMalformedJson, ""},
        BadCase{
            R"({"person_id":1,"lines":[{"sku":"A","quantity":1,"unit_price_fen":1}],"total_fen":1})",
            ErrorCode::kMissingField, "order_no"},
        BadCase{
            R"({"order_no":"x","person_id":1,"lines":[{"sku":"A","quantity":-1,"unit_price_fen":1}],"total_fen":1})",
            ErrorCode::kAmountOutOfRange, "lines[0].quantity"},
        BadCase{
            R"({"order_no":"x","person_id":1,"lines":[{"sku":"A","quantity":1,"unit_price_fen":99999999999999999999}],"total_fen":1})",
            ErrorCode::kAmountOutOfRange, "lines[0].unit_price_fen"},
        BadCase{
            R"({"order_no":"x","person_id":1,"lines":[{"sku":"A","quantity":"1","unit_price_fen":1}],"total_fen":1})",
            ErrorCode::kInvalidField, "lines[0].quantity"},
        BadCase{
            R"({"order_no":"x","person_id":1,"lines":[{"sku":"A","quantity":1,"unit_price_fen":1,"x":1}],"total_fen":1})",
            ErrorCode::kUnknownField, "lines[0].x"},
        BadCase{R"({"order_no":"x","person_id":1,"lines":[],"total_fen":0})",
                ErrorCode::kInvalidField, "lines"},
        BadCase{R"({"order_no":"x","person_id":1,"lines":[1],"total_fen":0})",
                ErrorCode::kInvalidField, "lines[0]"},
        BadCase{
            R"({"order_no":"x y","person_id":1,"lines":[{"sku":"A","quantity":1,"unit_price_fen":1}],"total_fen":1})",
            ErrorCode::kInvalidField, "order_no"},
        BadCase{
            R"({"order_no":"x","lines":[{"sku":"A","quantity":1,"unit_price_fen":1}],"total_fen":1})",
            ErrorCode::kMissingField, "person_id"},
        BadCase{
            R"({"order_no":"x","person_id":1,"lines":[{"sku":"A","quantity":1,"unit_price_fen":1}],"total_fen":-5})",
            ErrorCode::kAmountOutOfRange, "total_fen"},
        BadCase{
            R"({"order_no":"x","person_id":1,"lines":[{"sku":"A","quantity":1,"unit_price_fen":1}],"total_fen":1,"paid_at":4000000000000})",
            ErrorCode::kInvalidField, "paid_at"},
        BadCase{
            R"({"order_no":"x","external_id":"bogus","lines":[{"sku":"A","quantity":1,"unit_price_fen":1}],"total_fen":1})",
            ErrorCode::kInvalidField, "external_id"},
        BadCase{
            R"({"order_no":"x","person_id":1,"lines":[{"sku":"A","quantity":1,"unit_price_fen":1}],"total_fen":1,"extra":0})",
            ErrorCode::kUnknownField, "extra"}));

TEST(ParseNewChannel, ValidatesEnums) {
  EXPECT_TRUE(ParseNewChannel(R"({"name":"a","source_pool":"offline","touchpoint":"wecom"})").ok());
  auto bad = ParseNewChannel(R"({"name":"a","source_pool":"tv","touchpoint":"wecom"})");
  EXPECT_EQ(bad.status().field(), "source_pool");
  bad =
      ParseNewChannel(R"({"name":"a","source_pool":"offline","touchpoint":"wecom","cost_fen":-1})");
  EXPECT_EQ(bad.status().code(), ErrorCode::kAmountOutOfRange);
}

TEST(ErrorBody, HasCodeMessageField) {
  std::string b = ErrorBody(Status(ErrorCode::kTotalMismatch, "m", "total_fen"));
  EXPECT_EQ(b, R"({"error":{"code":"TOTAL_MISMATCH","message":"m","field":"total_fen"}})");
}

TEST(OverviewJson, DecompositionReconciles) {
  domain::Overview ov;
  ov.total.people = 1200;
  ov.total.buyers = 300;
  ov.total.orders = 450;
  ov.total.paid_fen = 2'394'567;
  ov.total.refunded_fen = 1'234;
  json::object o = ToJson(ov);
  const auto& d = o["decomposition"].as_object();
  int64_t p = d.at("people").as_int64();
  int64_t bn = d.at("conversion").at("num").as_int64(),
          bd = d.at("conversion").at("den").as_int64();
  int64_t an = d.at("aov_fen").at("num").as_int64(), ad = d.at("aov_fen").at("den").as_int64();
  int64_t fn = d.at("frequency").at("num").as_int64(), fd = d.at("frequency").at("den").as_int64();
  // P·(B/P)·(G/O)·(O/B) == G exactly: cross-multiplied in integers.
  EXPECT_EQ(p * bn * an * fn, d.at("gmv_fen").as_int64() * bd * ad * fd);
  EXPECT_EQ(d.at("gmv_fen").as_int64(), 2'393'333);
}

}  // namespace
}  // namespace siyu::api
