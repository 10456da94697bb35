// The SQL form's shape (its results are proven against the engine by
// audience_differential_test, on SQLite and PostgreSQL).
#include "domain/audience/sql.h"

#include <gtest/gtest.h>

namespace siyu::audience {
namespace {

SqlContext Ctx(SqlDialect d) {
  SqlContext ctx;
  ctx.dialect = d;
  ctx.tenant_id = 7;
  ctx.today = 20000;
  ctx.tags = {
      {1, "身份", "会员", ""}, {2, "", "vip", ""}, {3, "rules", "r", "tag(\"vip\") AND bought"}};
  ctx.rfm = {30, 1, 5000};
  return ctx;
}

std::string Sql(std::string_view text, SqlDialect d = SqlDialect::kSqlite) {
  SqlContext ctx = Ctx(d);
  auto e = ParseExpression(text);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  auto s = ExpressionToSql(*e, ctx);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : "";
}

bool Has(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

TEST(AudienceSql, SelectsSurvivorsOfTheTenantInOrder) {
  std::string s = Sql("tag(\"会员\")");
  EXPECT_TRUE(
      s.starts_with("SELECT p.id FROM people p WHERE p.tenant_id = 7 AND "
                    "p.canonical_id IS NULL AND ("))
      << s;
  EXPECT_TRUE(s.ends_with("ORDER BY p.id")) << s;
  EXPECT_TRUE(Has(s, "COALESCE(q.canonical_id, q.id)")) << s;  // tags of any row count
  EXPECT_TRUE(Has(s, "x.tag_id = 1")) << s;
  EXPECT_FALSE(Has(s, "WITH ")) << s;  // no aggregates, no common table expressions
}

TEST(AudienceSql, RuleTagsExpandAndNamesResolve) {
  std::string s = Sql("tag(\"r\")");
  EXPECT_TRUE(Has(s, "x.tag_id = 2")) << s;  // the rule's tag("vip")
  EXPECT_TRUE(Has(s, "sy_o AS (")) << s;     // and its bought
  EXPECT_TRUE(Has(s, "HAVING COUNT(*) >= 1")) << s;
  SqlContext ctx = Ctx(SqlDialect::kSqlite);
  auto e = ParseExpression("tag(\"nope\")");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(ExpressionToSql(*e, ctx).status().code(), ErrorCode::kUnknownTag);
  ctx.tags.push_back({4, "rules", "loop", "tag(\"loop\")"});
  e = ParseExpression("tag(\"loop\")");
  EXPECT_EQ(ExpressionToSql(*e, ctx).status().code(), ErrorCode::kRuleCycle);
}

TEST(AudienceSql, NumbersThatHoldForZeroIncludePeopleWithoutRows) {
  // orders(last 7d) <= 1 holds for non-buyers: the complement of those with more.
  std::string s = Sql("orders(last 7d) <= 1");
  EXPECT_TRUE(Has(s, "p.id NOT IN (SELECT sy_o.pid FROM sy_o WHERE 1 = 1 AND sy_o.day >= 19994"))
      << s;
  EXPECT_TRUE(Has(s, "HAVING NOT (COUNT(*) <= 1)")) << s;
  // last_order_days has no value for non-buyers: never the complement.
  s = Sql("NOT last_order_days > 30");
  EXPECT_TRUE(Has(s,
                  "NOT (p.id IN (SELECT sy_o.pid FROM sy_o GROUP BY sy_o.pid HAVING 20000 - "
                  "MAX(sy_o.day) > 30))"))
      << s;
  // Refunded in full: out; gmv is net.
  EXPECT_TRUE(Has(s, "NOT (x.total_fen > 0 AND x.refunded_fen >= x.total_fen)")) << s;
  s = Sql("gmv(sku=\"a'b\") > 100");
  EXPECT_TRUE(Has(s, "l.sku = 'a''b'")) << s;
  EXPECT_TRUE(Has(s, "SUM(sy_o.net) > 100")) << s;
  EXPECT_TRUE(Has(Sql("bought(category=\"c'd\")"), "l.category = 'c''d'"));
}

TEST(AudienceSql, EventDaysHaveNoValueWithoutEvents) {
  // Over the people with events of the type only: NOT includes those without any.
  std::string s = Sql("NOT last_event_days(\"page_view\") > 30");
  EXPECT_TRUE(Has(s,
                  "NOT (p.id IN (SELECT COALESCE(q.canonical_id, q.id) FROM events x JOIN people "
                  "q ON q.id = x.person_id WHERE x.tenant_id = 7 AND x.type = 'page_view' GROUP "
                  "BY COALESCE(q.canonical_id, q.id) HAVING 20000 - MAX(((x.ts + 28800000) / "
                  "86400000)) > 30))"))
      << s;
  s = Sql("first_event_days(\"a'b\") <= -1", SqlDialect::kPostgres);
  EXPECT_TRUE(Has(s, "x.type = 'a''b'")) << s;
  EXPECT_TRUE(Has(s, "HAVING 20000 - MIN(((x.ts + 28800000) / 86400000)) <= -1")) << s;
  EXPECT_FALSE(Has(s, "WITH ")) << s;
}

TEST(AudienceSql, DialectsAndDerivedState) {
  std::string lite = Sql("stage(\"dormant\") AND rfm(\"important_value\")");
  std::string pg = Sql("stage(\"dormant\") AND rfm(\"important_value\")", SqlDialect::kPostgres);
  EXPECT_TRUE(Has(lite, "sy_s AS (")) << lite;
  EXPECT_TRUE(Has(lite, "MAX(1, CAST(")) << lite;
  EXPECT_TRUE(Has(pg, "GREATEST(1, CAST(FLOOR(")) << pg;
  EXPECT_TRUE(Has(pg, "20000 - sy_b.last < 30 AND sy_b.n > 1 AND sy_b.gmv > 5000")) << pg;
  EXPECT_TRUE(Has(Sql("tier(\"gold\")"), "json_extract(x.properties, '$.level')"));
  EXPECT_TRUE(Has(Sql("tier(\"gold\")", SqlDialect::kPostgres), "x.properties::jsonb ->> 'level'"));
  EXPECT_TRUE(Has(Sql("event_sum(\"pay\", \"points\", last 1d) >= 5", SqlDialect::kPostgres),
                  "COALESCE(SUM(CASE WHEN json_typeof(x.properties::json -> 'points') = "
                  "'number' THEN CASE WHEN"));
  EXPECT_TRUE(Has(Sql("stage(\"prospect\")"), "p.id NOT IN (SELECT sy_b.pid FROM sy_b)"));
}

TEST(AudienceSql, UnmergedPeopleSkipTheCanonicalJoin) {
  SqlContext ctx = Ctx(SqlDialect::kPostgres);
  ctx.merged_people = false;
  auto e = ParseExpression("tag(\"会员\") AND NOT tag(\"vip\")");
  ASSERT_TRUE(e.ok());
  auto s = ExpressionToCountSql(*e, ctx);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->starts_with("SELECT COUNT(*) FROM people p")) << *s;
  EXPECT_FALSE(Has(*s, "canonical_id, q.id")) << *s;
  EXPECT_TRUE(
      Has(*s, "SELECT x.person_id FROM person_tags x WHERE x.tenant_id = 7 AND x.tag_id = 2"))
      << *s;
}

}  // namespace
}  // namespace siyu::audience
