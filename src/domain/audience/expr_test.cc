#include "domain/audience/expr.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "domain/audience/reference.h"

namespace siyu::audience {
namespace {

class MapCatalogue : public Catalogue {
 public:
  std::map<std::string, int64_t, std::less<>> names;
  StatusOr<int64_t> ResolveTag(std::string_view name) const override {
    auto it = names.find(name);
    if (it == names.end()) {
      return Status(ErrorCode::kUnknownTag, "unknown tag \"" + std::string(name) + "\"");
    }
    return it->second;
  }
};

MapCatalogue Cat() {
  MapCatalogue c;
  c.names = {{"会员", 1}, {"vip", 2}, {"group/name", 3}, {"a", 4}, {"b", 5}};
  return c;
}

std::string RoundTrip(std::string_view text) {
  MapCatalogue cat = Cat();
  auto e = ParseExpression(text, &cat);
  EXPECT_TRUE(e.ok()) << text << ": " << e.status().ToString();
  if (!e.ok()) return "";
  std::string printed = PrintExpression(*e);
  auto again = ParseExpression(printed, &cat);
  EXPECT_TRUE(again.ok()) << printed << ": " << again.status().ToString();
  EXPECT_EQ(*again, *e) << printed;
  EXPECT_EQ(PrintExpression(*again), printed);
  // Through JSON and back.
  std::string js = PrintExpressionJson(*e);
  auto from_json = ParseExpressionJson(js, &cat);
  EXPECT_TRUE(from_json.ok()) << js << ": " << from_json.status().ToString();
  if (from_json.ok()) {
    EXPECT_EQ(*from_json, *e) << js;
    EXPECT_EQ(PrintExpression(*from_json), printed) << js;
  }
  return printed;
}

TEST(ExprTest, TheIssueExample) {
  EXPECT_EQ(RoundTrip("tag(\"会员\") AND orders(last 90d) >= 2 AND NOT bought(category=\"清洁\", "
                      "last 30d)"),
            "tag(\"会员\") AND orders(last 90d) >= 2 AND NOT bought(category=\"清洁\", last 30d)");
}

TEST(ExprTest, CanonicalPrinting) {
  EXPECT_EQ(RoundTrip("tag(\"a\")"), "tag(\"a\")");
  EXPECT_EQ(RoundTrip("  tag( \"a\" )and(tag(\"b\")or rfm(\"重要价值\"))"),
            "tag(\"a\") AND (tag(\"b\") OR rfm(\"important_value\"))");
  EXPECT_EQ(RoundTrip("stage(\"沉睡\") or stage(\"churned\")"),
            "stage(\"dormant\") OR stage(\"churned\")");
  EXPECT_EQ(RoundTrip("orders >= 2"), "orders >= 2");
  EXPECT_EQ(RoundTrip("orders() == 2"), "orders = 2");
  EXPECT_EQ(RoundTrip("gmv(sku=\"A1\", last 7D) > 100"), "gmv(sku=\"A1\", last 7d) > 100");
  EXPECT_EQ(RoundTrip("bought"), "bought");
  EXPECT_EQ(RoundTrip("bought()"), "bought");
  EXPECT_EQ(RoundTrip("bought(last 30d)"), "bought(last 30d)");
  EXPECT_EQ(RoundTrip("events(\"view\") != 0"), "events(\"view\") != 0");
  EXPECT_EQ(RoundTrip("event_sum(\"pay\", \"points\", last 3650d) < -5"),
            "event_sum(\"pay\", \"points\", last 3650d) < -5");
  EXPECT_EQ(RoundTrip("last_order_days <= 30 AND first_seen_days() > 7"),
            "last_order_days <= 30 AND first_seen_days > 7");
  EXPECT_EQ(RoundTrip("first_event_days( \"view\" ) >= 3 AND last_event_days(\"加购\") == -1"),
            "first_event_days(\"view\") >= 3 AND last_event_days(\"加购\") = -1");
  EXPECT_EQ(RoundTrip("NOT (last_event_days(\"page_view\") > 30)"),
            "NOT last_event_days(\"page_view\") > 30");
  EXPECT_EQ(RoundTrip("first_channel(12) OR last_channel(13)"),
            "first_channel(12) OR last_channel(13)");
  EXPECT_EQ(RoundTrip("touchpoint(\"wecom\") AND tier(\"gold\")"),
            "touchpoint(\"wecom\") AND tier(\"gold\")");
  EXPECT_EQ(RoundTrip("NOT NOT tag(\"a\")"), "NOT NOT tag(\"a\")");
  EXPECT_EQ(RoundTrip("NOT (tag(\"a\") AND tag(\"b\"))"), "NOT (tag(\"a\") AND tag(\"b\"))");
  EXPECT_EQ(RoundTrip("(tag(\"a\") AND tag(\"b\")) AND tag(\"vip\")"),
            "tag(\"a\") AND tag(\"b\") AND tag(\"vip\")");
  EXPECT_EQ(RoundTrip("tag(\"a\") OR tag(\"b\") AND tag(\"vip\")"),
            "tag(\"a\") OR tag(\"b\") AND tag(\"vip\")");
  EXPECT_EQ(RoundTrip("tag(\"group/name\")"), "tag(\"group/name\")");
  EXPECT_EQ(RoundTrip("tier(\"q\\\"uote\\\\\") OR tier(\"\\u4f1a\")"),
            "tier(\"q\\\"uote\\\\\") OR tier(\"会\")");
}

TEST(ExprTest, PrecedenceIsNotAndOr) {
  auto e = ParseExpression("NOT tag(\"a\") AND tag(\"b\") OR tag(\"vip\")");
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->kind, Kind::kOr);
  ASSERT_EQ(e->children[0].kind, Kind::kAnd);
  EXPECT_EQ(e->children[0].children[0].kind, Kind::kNot);
  auto n = ParseExpression("NOT orders >= 2");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->kind, Kind::kNot);
  EXPECT_EQ(n->children[0].kind, Kind::kOrders);
}

struct ErrorCase {
  std::string text;
  ErrorCode code;
  size_t character;
};

TEST(ExprTest, ErrorsCarryCodeAndPosition) {
  std::vector<ErrorCase> cases = {
      {"orders >= \"abc\"", ErrorCode::kTypeMismatch, 10},
      {"tag(\"会员\") AND", ErrorCode::kExpressionSyntax, 13},
      {"orders(last 0d) >= 1", ErrorCode::kWindowOutOfRange, 12},
      {"orders(last 3651d) >= 1", ErrorCode::kWindowOutOfRange, 12},
      {"events(\"v\", last 9999d) >= 1", ErrorCode::kWindowOutOfRange, 17},
      {"tag(\"nope\")", ErrorCode::kUnknownTag, 4},
      {"tag(\"会员\") AND tag(\"没有\")", ErrorCode::kUnknownTag, 18},
      {"orders", ErrorCode::kTypeMismatch, 6},
      {"events(\"view\") AND tag(\"a\")", ErrorCode::kTypeMismatch, 15},
      {"tag(\"a\") >= 1", ErrorCode::kTypeMismatch, 9},
      {"(tag(\"a\")) = 1", ErrorCode::kTypeMismatch, 11},
      {"foo(1)", ErrorCode::kExpressionSyntax, 0},
      {"(tag(\"a\")", ErrorCode::kExpressionSyntax, 9},
      {"tag(\"a\") tag(\"b\")", ErrorCode::kExpressionSyntax, 9},
      {"orders(last 30) >= 1", ErrorCode::kExpressionSyntax, 12},
      {"orders(30d) >= 1", ErrorCode::kExpressionSyntax, 7},
      {"bought(sku=1)", ErrorCode::kTypeMismatch, 11},
      {"first_channel(\"x\")", ErrorCode::kTypeMismatch, 14},
      {"tier(3)", ErrorCode::kTypeMismatch, 5},
      {"rfm(\"gold\")", ErrorCode::kExpressionSyntax, 4},
      {"stage(\"sleepy\")", ErrorCode::kExpressionSyntax, 6},
      {"tag(\"unterminated", ErrorCode::kExpressionSyntax, 4},
      {"orders >= 99999999999999999999", ErrorCode::kExpressionSyntax, 10},
      {"tag(\"a\") AND # x", ErrorCode::kExpressionSyntax, 13},
      {"tag(\"a\") AND 会", ErrorCode::kExpressionSyntax, 13},
      {"NOT", ErrorCode::kExpressionSyntax, 3},
      {"", ErrorCode::kExpressionSyntax, 0},
      {"AND tag(\"a\")", ErrorCode::kExpressionSyntax, 0},
      {"events(\"view\", last 7d, 3) >= 1", ErrorCode::kExpressionSyntax, 0},
      {"orders(sku=\"a\", category=\"b\") >= 1", ErrorCode::kExpressionSyntax, 16},
      {"orders(color=\"red\") >= 1", ErrorCode::kExpressionSyntax, 7},
      {"last_order_days(last 3d) < 1", ErrorCode::kExpressionSyntax, 16},
      {"orders >= 2d", ErrorCode::kTypeMismatch, 10},
      {"orders >=", ErrorCode::kExpressionSyntax, 9},
      {"tag", ErrorCode::kExpressionSyntax, 3},
      {"tag(\"\")", ErrorCode::kExpressionSyntax, 4},
      {"tag(\"a\", \"b\")", ErrorCode::kExpressionSyntax, 0},
      {"tier(\"\\q\")", ErrorCode::kExpressionSyntax, 6},
      {"orders(last 1d, last 2d) >= 1", ErrorCode::kExpressionSyntax, 16},
      {"first_channel(0)", ErrorCode::kExpressionSyntax, 14},
      {"last_event_days(\"view\")", ErrorCode::kTypeMismatch, 23},
      {"last_event_days(\"view\") AND tag(\"a\")", ErrorCode::kTypeMismatch, 24},
      {"first_event_days(\"view\") > \"3\"", ErrorCode::kTypeMismatch, 27},
      {"first_event_days(\"view\") > 3d", ErrorCode::kTypeMismatch, 27},
      {"last_event_days > 3", ErrorCode::kExpressionSyntax, 15},
      {"last_event_days() > 3", ErrorCode::kExpressionSyntax, 0},
      {"last_event_days(\"\") > 3", ErrorCode::kExpressionSyntax, 16},
      {"last_event_days(7) > 3", ErrorCode::kTypeMismatch, 16},
      {"first_event_days(\"view\", last 7d) > 3", ErrorCode::kExpressionSyntax, 0},
      {"first_event_days(\"a\", \"b\") > 3", ErrorCode::kExpressionSyntax, 0},
      {"12abc", ErrorCode::kExpressionSyntax, 0},
  };
  MapCatalogue cat = Cat();
  for (const ErrorCase& c : cases) {
    ExprErrorAt at{999, 999};
    auto e = ParseExpression(c.text, &cat, &at);
    ASSERT_FALSE(e.ok()) << c.text;
    EXPECT_EQ(ErrorCodeName(e.status().code()), ErrorCodeName(c.code))
        << c.text << " -> " << e.status().message();
    EXPECT_EQ(at.character, c.character) << c.text << " -> " << e.status().message();
    EXPECT_NE(
        e.status().message().find("at character " + std::to_string(c.character) + " (0-based)"),
        std::string::npos)
        << e.status().message();
    EXPECT_EQ(e.status().field(), "expression");
  }
}

TEST(ExprTest, PositionsCountCharactersAndBytes) {
  MapCatalogue cat = Cat();
  ExprErrorAt at;
  auto e = ParseExpression("tag(\"会员\") AND", &cat, &at);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(at.character, 13u);
  EXPECT_EQ(at.byte, 17u);  // 会 and 员 are 3 bytes each
}

TEST(ExprTest, WithoutCatalogueTagsStayUnresolved) {
  auto e = ParseExpression("tag(\"anything\")");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->id, 0);
  EXPECT_EQ(e->name, "anything");
  MapCatalogue cat = Cat();
  EXPECT_EQ(BindTags(*e, cat).code(), ErrorCode::kUnknownTag);
  auto v = ParseExpression("tag(\"vip\")");
  ASSERT_TRUE(BindTags(*v, cat).ok());
  EXPECT_EQ(v->id, 2);
}

TEST(ExprTest, JsonForm) {
  MapCatalogue cat = Cat();
  auto e = ParseExpression(
      "tag(\"会员\") AND orders(last 90d) >= 2 AND NOT bought(category=\"清洁\", last 30d)", &cat);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(PrintExpressionJson(*e),
            "{\"and\":[{\"tag\":\"会员\"},{\"orders\":{\"window_days\":90},\"op\":\">=\","
            "\"value\":2},{\"not\":{\"bought\":{\"category\":\"清洁\",\"window_days\":30}}}]}");
  auto j = ParseExpressionJson(
      R"({"or":[{"rfm":"重要价值"},{"events":{"type":"view","window_days":7},"op":"<","value":3},)"
      R"({"event_sum":{"type":"pay","property":"points"},"op":"=","value":10},)"
      R"({"last_order_days":{},"op":"<=","value":30},{"first_channel":12},{"stage":"dormant"}]})",
      &cat);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(PrintExpression(*j),
            "rfm(\"important_value\") OR events(\"view\", last 7d) < 3 OR event_sum(\"pay\", "
            "\"points\") = 10 OR last_order_days <= 30 OR first_channel(12) OR "
            "stage(\"dormant\")");
  // The event-day conditions: the event type as their argument object, compared like numbers.
  auto d = ParseExpression(
      "last_event_days(\"page_view\") > 30 AND NOT first_event_days(\"注册\") <= 7", &cat);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(PrintExpressionJson(*d),
            "{\"and\":[{\"last_event_days\":{\"type\":\"page_view\"},\"op\":\">\",\"value\":30},"
            "{\"not\":{\"first_event_days\":{\"type\":\"注册\"},\"op\":\"<=\",\"value\":7}}]}");
  auto dj =
      ParseExpressionJson(R"({"last_event_days":{"type":"page_view"},"op":">","value":30})", &cat);
  ASSERT_TRUE(dj.ok()) << dj.status().ToString();
  EXPECT_EQ(PrintExpression(*dj), "last_event_days(\"page_view\") > 30");
}

TEST(ExprTest, JsonErrorsNameTheField) {
  MapCatalogue cat = Cat();
  struct C {
    std::string json;
    ErrorCode code;
    std::string field;
  };
  std::vector<C> cases = {
      {R"({"and":[{"tag":"a"}]})", ErrorCode::kExpressionSyntax, "expression.and"},
      {R"({"and":[{"tag":"a"},{"orders":{"window_days":0},"op":">=","value":1}]})",
       ErrorCode::kWindowOutOfRange, "expression.and[1].orders.window_days"},
      {R"({"orders":{},"op":">=","value":"abc"})", ErrorCode::kTypeMismatch, "expression.value"},
      {R"({"orders":{}})", ErrorCode::kTypeMismatch, "expression.op"},
      {R"({"orders":{},"op":"~","value":1})", ErrorCode::kExpressionSyntax, "expression.op"},
      {R"({"tag":"nope"})", ErrorCode::kUnknownTag, "expression.tag"},
      {R"({"tag":"a","op":">=","value":1})", ErrorCode::kTypeMismatch, "expression"},
      {R"({"tag":1})", ErrorCode::kTypeMismatch, "expression.tag"},
      {R"({"first_channel":"x"})", ErrorCode::kTypeMismatch, "expression.first_channel"},
      {R"({"colour":"red"})", ErrorCode::kExpressionSyntax, "expression.colour"},
      {R"({"tag":"a","tier":"b"})", ErrorCode::kExpressionSyntax, "expression"},
      {R"({"not":{"events":{"window_days":3},"op":">","value":1}})", ErrorCode::kExpressionSyntax,
       "expression.not.events.type"},
      {R"({"last_event_days":{},"op":">","value":3})", ErrorCode::kExpressionSyntax,
       "expression.last_event_days.type"},
      {R"({"first_event_days":{"type":"v"}})", ErrorCode::kTypeMismatch, "expression.op"},
      {R"({"first_event_days":{"type":"v"},"op":">","value":"3"})", ErrorCode::kTypeMismatch,
       "expression.value"},
      {R"({"first_event_days":{"type":1},"op":">","value":3})", ErrorCode::kTypeMismatch,
       "expression.first_event_days.type"},
      {R"({"last_event_days":{"type":"v","window_days":7},"op":">","value":3})",
       ErrorCode::kExpressionSyntax, "expression.last_event_days.window_days"},
      {R"({"last_event_days":"v","op":">","value":3})", ErrorCode::kExpressionSyntax,
       "expression.last_event_days"},
      {R"({"bought":{"sku":"a","category":"b"}})", ErrorCode::kExpressionSyntax,
       "expression.bought.category"},
      {R"([1,2])", ErrorCode::kExpressionSyntax, "expression"},
      {R"(not json)", ErrorCode::kMalformedJson, "expression"},
  };
  for (const C& c : cases) {
    auto e = ParseExpressionJson(c.json, &cat);
    ASSERT_FALSE(e.ok()) << c.json;
    EXPECT_EQ(ErrorCodeName(e.status().code()), ErrorCodeName(c.code))
        << c.json << " -> " << e.status().message();
    EXPECT_EQ(e.status().field(), c.field) << c.json << " -> " << e.status().message();
  }
}

TEST(ExprTest, DepthIsBounded) {
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "(";
  deep += "tag(\"a\")";
  for (int i = 0; i < 200; ++i) deep += ")";
  auto e = ParseExpression(deep);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), ErrorCode::kExpressionSyntax);
  std::string nots;
  for (int i = 0; i < 200; ++i) nots += "NOT ";
  EXPECT_FALSE(ParseExpression(nots + "tag(\"a\")").ok());
  EXPECT_FALSE(ParseExpression(std::string(kMaxExpressionBytes + 1, ' ')).ok());
}

TEST(ExprTest, GarbageNeverCrashes) {
  std::mt19937_64 rng(7);
  const std::string alphabet = "()\",=<>!-0123456789dlastagNOTANDOR _\\u会";
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    int n = std::uniform_int_distribution<int>(0, 30)(rng);
    for (int k = 0; k < n; ++k) {
      s += alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)];
    }
    ExprErrorAt at;
    auto e = ParseExpression(s, nullptr, &at);
    if (e.ok()) {
      auto again = ParseExpression(PrintExpression(*e));
      ASSERT_TRUE(again.ok()) << s;
      EXPECT_EQ(*again, *e) << s;
    } else {
      EXPECT_LE(at.byte, s.size());
    }
  }
}

TEST(ExprTest, RandomTreesRoundTrip) {
  std::mt19937_64 rng(42);
  testing::ExprDomain d;
  d.tags = {{1, "会员"}, {2, "vip"}, {3, "group/name"}};
  d.event_types = {"view", "share", "加购"};
  d.properties = {"points", "sec"};
  d.skus = {"A1", "B\"2"};
  d.categories = {"清洁", "food"};
  d.tiers = {"gold", "silver"};
  d.touchpoints = {"wecom", "oa"};
  d.channels = {1, 7};
  d.windows = {1, 7, 30, 3650};
  MapCatalogue cat = Cat();
  for (int i = 0; i < 3000; ++i) {
    Expr e = testing::RandomExpr(rng, d, 4);
    std::string text = PrintExpression(e);
    auto back = ParseExpression(text, &cat);
    ASSERT_TRUE(back.ok()) << text << ": " << back.status().ToString();
    ASSERT_EQ(*back, e) << text;
    auto js = ParseExpressionJson(PrintExpressionJson(e), &cat);
    ASSERT_TRUE(js.ok()) << PrintExpressionJson(e) << ": " << js.status().ToString();
    ASSERT_EQ(*js, e) << PrintExpressionJson(e);
  }
}

TEST(ExprTest, TimeDependence) {
  EXPECT_TRUE(IsTimeDependent(*ParseExpression("tag(\"a\") OR orders(last 3d) >= 1")));
  EXPECT_TRUE(IsTimeDependent(*ParseExpression("last_order_days < 3")));
  EXPECT_TRUE(IsTimeDependent(*ParseExpression("first_event_days(\"v\") >= 3")));
  EXPECT_TRUE(IsTimeDependent(*ParseExpression("tag(\"a\") AND NOT last_event_days(\"v\") < 3")));
  EXPECT_FALSE(IsTimeDependent(*ParseExpression("orders >= 1 AND NOT events(\"v\") > 2")));
}

}  // namespace
}  // namespace siyu::audience
