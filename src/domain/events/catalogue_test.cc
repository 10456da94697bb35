#include "domain/events/catalogue.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <set>
#include <string>
#include <vector>

namespace siyu::domain {
namespace {

json::object Obj(std::string_view text) { return json::parse(text).as_object(); }

Status Check(std::string_view type, std::string_view props) {
  auto spec = CheckEventType(type, "type");
  if (!spec.ok()) return spec.status();
  return CheckProperties(*spec, Obj(props), "properties");
}

TEST(EventCatalogueTest, HasEveryStandardTypeOnce) {
  const std::vector<std::string> want = {
      "page_view",    "product_view",    "add_to_cart",   "order_paid",      "order_refunded",
      "share",        "invite_accepted", "contact_added", "contact_removed", "group_joined",
      "group_left",   "message_read",    "qr_scanned",    "follow",          "unfollow",
      "member_bound", "coupon_received", "coupon_used",   "live_watch"};
  std::set<std::string> names;
  for (const auto& t : EventCatalogue()) {
    EXPECT_TRUE(names.insert(std::string(t.name)).second) << "listed twice: " << t.name;
    EXPECT_FALSE(t.description.empty()) << t.name;
    std::set<std::string> props;
    for (const auto& p : t.properties) {
      EXPECT_TRUE(props.insert(std::string(p.name)).second) << t.name << "." << p.name;
      EXPECT_FALSE(p.description.empty()) << t.name << "." << p.name;
      EXPECT_LE(p.min, p.max) << t.name << "." << p.name;
    }
  }
  EXPECT_EQ(names, std::set<std::string>(want.begin(), want.end()));
  for (const auto& n : want) EXPECT_NE(FindEventType(n), nullptr) << n;
  EXPECT_EQ(FindEventType("pageview"), nullptr);
}

TEST(EventCatalogueTest, ChannelMovingTypes) {
  std::set<std::string> moving;
  for (const auto& t : EventCatalogue()) {
    if (t.moves_last_channel) moving.insert(std::string(t.name));
  }
  EXPECT_EQ(moving, (std::set<std::string>{"follow", "contact_added", "qr_scanned"}));
}

TEST(EventCatalogueTest, AcceptsMinimalAndFullProperties) {
  const std::vector<std::pair<std::string, std::string>> ok = {
      {"page_view", R"({"path":"/pages/index"})"},
      {"page_view", R"({"path":"/p","title":"首页","referrer":"/q"})"},
      {"product_view", R"({"sku":"SKU-1"})"},
      {"product_view", R"({"sku":"SKU-1","spu":"S","price_fen":0})"},
      {"add_to_cart", R"({"sku":"SKU-1","quantity":2})"},
      {"order_paid", R"({"order_no":"SO1","amount_fen":1990})"},
      {"order_refunded", R"({"order_no":"SO1","amount_fen":1990,"reason":"size"})"},
      {"share", R"({})"},
      {"share", R"({"content":"/pages/p?id=1","target":"moments"})"},
      {"invite_accepted", R"({"inviter_id":"unionid:u9"})"},
      {"contact_added", R"({"user_id":"zhangsan"})"},
      {"contact_added", R"({"user_id":"zhangsan","welcome_code":"W1"})"},
      {"contact_removed", R"({"user_id":"zhangsan"})"},
      {"group_joined", R"({"chat_id":"wrOgAAA"})"},
      {"group_left", R"({"chat_id":"wrOgAAA"})"},
      {"message_read", R"({"message_id":"m1"})"},
      {"qr_scanned", R"({})"},
      {"qr_scanned", R"({"scene":"store-12"})"},
      {"follow", R"({})"},
      {"unfollow", R"({"app_id":"wx123"})"},
      {"member_bound", R"({"member_no":"M0001"})"},
      {"coupon_received", R"({"coupon_id":"C1"})"},
      {"coupon_used", R"({"coupon_id":"C1","order_no":"SO1"})"},
      {"live_watch", R"({"live_id":"L1","seconds":3600})"},
      // Undeclared properties are kept as sent; null counts as absent for optional ones.
      {"product_view", R"({"sku":"S","utm_source":"moments","extra":{"a":[1,2]}})"},
      {"page_view", R"({"path":"/p","title":null})"},
      {"custom:lottery_draw", R"({"prize":"cup","n":1.5,"nested":{"x":null}})"},
      {"custom:A.b-c_9", R"({})"},
  };
  for (const auto& [type, props] : ok) {
    Status s = Check(type, props);
    EXPECT_TRUE(s.ok()) << type << " " << props << ": " << s.ToString();
  }
}

struct Bad {
  std::string type;
  std::string props;
  ErrorCode code;
  std::string field;
};

TEST(EventCatalogueTest, RejectsWithCodeAndField) {
  const std::vector<Bad> bad = {
      {"product_view", R"({})", ErrorCode::kMissingField, "properties.sku"},
      {"product_view", R"({"sku":null})", ErrorCode::kMissingField, "properties.sku"},
      {"product_view", R"({"sku":12})", ErrorCode::kInvalidField, "properties.sku"},
      {"product_view", R"({"sku":""})", ErrorCode::kInvalidField, "properties.sku"},
      {"product_view", R"({"sku":"S","price_fen":"100"})", ErrorCode::kInvalidField,
       "properties.price_fen"},
      {"add_to_cart", R"({"sku":"S"})", ErrorCode::kMissingField, "properties.quantity"},
      {"add_to_cart", R"({"sku":"S","quantity":"2"})", ErrorCode::kInvalidField,
       "properties.quantity"},
      {"add_to_cart", R"({"sku":"S","quantity":2.0})", ErrorCode::kInvalidField,
       "properties.quantity"},
      {"add_to_cart", R"({"sku":"S","quantity":0})", ErrorCode::kInvalidField,
       "properties.quantity"},
      {"add_to_cart", R"({"sku":"S","quantity":18446744073709551615})", ErrorCode::kInvalidField,
       "properties.quantity"},
      {"order_paid", R"({"order_no":"SO1","amount_fen":-1})", ErrorCode::kInvalidField,
       "properties.amount_fen"},
      {"order_paid", R"({"order_no":"SO1","amount_fen":true})", ErrorCode::kInvalidField,
       "properties.amount_fen"},
      {"order_paid", R"({"amount_fen":1})", ErrorCode::kMissingField, "properties.order_no"},
      {"order_refunded", R"({"order_no":"SO1"})", ErrorCode::kMissingField,
       "properties.amount_fen"},
      {"invite_accepted", R"({"inviter_id":["unionid:u9"]})", ErrorCode::kInvalidField,
       "properties.inviter_id"},
      {"contact_added", R"({"welcome_code":"W"})", ErrorCode::kMissingField, "properties.user_id"},
      {"contact_added", R"({"user_id":"u","welcome_code":{}})", ErrorCode::kInvalidField,
       "properties.welcome_code"},
      {"group_joined", R"({"chat_id":1})", ErrorCode::kInvalidField, "properties.chat_id"},
      {"message_read", R"({})", ErrorCode::kMissingField, "properties.message_id"},
      {"qr_scanned", R"({"scene":7})", ErrorCode::kInvalidField, "properties.scene"},
      {"member_bound", R"({"member_no":")" + std::string(65, 'm') + R"("})",
       ErrorCode::kInvalidField, "properties.member_no"},
      {"coupon_used", R"({})", ErrorCode::kMissingField, "properties.coupon_id"},
      {"live_watch", R"({"live_id":"L1"})", ErrorCode::kMissingField, "properties.seconds"},
      {"live_watch", R"({"live_id":"L1","seconds":86401})", ErrorCode::kInvalidField,
       "properties.seconds"},
      {"pageview", R"({})", ErrorCode::kInvalidField, "type"},
      {"Page_View", R"({})", ErrorCode::kInvalidField, "type"},
      {"custom:", R"({})", ErrorCode::kInvalidField, "type"},
      {"custom:a b", R"({})", ErrorCode::kInvalidField, "type"},
      {"custom:a:b", R"({})", ErrorCode::kInvalidField, "type"},
      {"custom:" + std::string(65, 'a'), R"({})", ErrorCode::kInvalidField, "type"},
      {"x_custom", R"({})", ErrorCode::kInvalidField, "type"},
  };
  for (const auto& b : bad) {
    Status s = Check(b.type, b.props);
    EXPECT_EQ(s.code(), b.code) << b.type << " " << b.props << ": " << s.ToString();
    EXPECT_EQ(s.field(), b.field) << b.type << " " << b.props;
    EXPECT_FALSE(s.message().empty());
  }
}

TEST(EventCatalogueTest, StringLengthsCountCharactersNotBytes) {
  // 64 CJK characters are 192 bytes, and still a valid sku.
  std::string sku;
  for (int i = 0; i < 64; ++i) sku += "货";
  EXPECT_TRUE(Check("product_view", R"({"sku":")" + sku + R"("})").ok());
  EXPECT_EQ(Check("product_view", R"({"sku":")" + sku + R"(货"})").code(),
            ErrorCode::kInvalidField);
}

}  // namespace
}  // namespace siyu::domain
