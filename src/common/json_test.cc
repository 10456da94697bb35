#include "common/json.h"

#include <gtest/gtest.h>

namespace siyu {
namespace {

TEST(ParseJsonObject, RejectsNonObjectsAndGarbage) {
  EXPECT_EQ(ParseJsonObject("[1,2]").status().code(), ErrorCode::kMalformedJson);
  EXPECT_EQ(ParseJsonObject("{\"a\":").status().code(), ErrorCode::kMalformedJson);
  EXPECT_EQ(ParseJsonObject("").status().code(), ErrorCode::kMalformedJson);
  std::string deep(100, '[');
  EXPECT_EQ(ParseJsonObject("{\"a\":" + deep).status().code(), ErrorCode::kMalformedJson);
  EXPECT_TRUE(ParseJsonObject("{\"a\":1}").ok());
}

TEST(FieldReader, ReadsTypedFieldsAndRejectsUnknown) {
  auto obj = ParseJsonObject(R"({"name":"门店","n":5,"extra":true})");
  ASSERT_TRUE(obj.ok());
  FieldReader r(*obj);
  EXPECT_EQ(r.String("name", 1, 2), "门店");
  EXPECT_EQ(r.Int("n", 0, 10), 5);
  Status s = r.Finish();
  EXPECT_EQ(s.code(), ErrorCode::kUnknownField);
  EXPECT_EQ(s.field(), "extra");
}

TEST(FieldReader, FirstErrorWinsWithFieldPath) {
  auto obj = ParseJsonObject(R"({"q":"x","n":-1})");
  FieldReader r(*obj, "lines[3]");
  r.Int("q", 0, 10);
  r.Int("n", 0, 10, ErrorCode::kAmountOutOfRange);
  EXPECT_EQ(r.Finish().code(), ErrorCode::kInvalidField);
  EXPECT_EQ(r.status().field(), "lines[3].q");
}

TEST(FieldReader, RangeAndOverflow) {
  auto obj = ParseJsonObject(R"({"a":-5,"b":18446744073709551615,"c":1e300,"d":1.5})");
  for (const char* k : {"a", "b", "c"}) {
    FieldReader r(*obj);
    r.Int(k, 0, 100, ErrorCode::kAmountOutOfRange);
    EXPECT_EQ(r.status().code(), ErrorCode::kAmountOutOfRange) << k;
  }
  FieldReader r(*obj);
  r.Int("d", 0, 100, ErrorCode::kAmountOutOfRange);
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidField);
}

TEST(FieldReader, MissingAndLength) {
  auto obj = ParseJsonObject(R"({"s":"abcdef"})");
  FieldReader r1(*obj);
  r1.String("t", 1, 5);
  EXPECT_EQ(r1.status().code(), ErrorCode::kMissingField);
  FieldReader r2(*obj);
  r2.String("s", 1, 5);
  EXPECT_EQ(r2.status().code(), ErrorCode::kInvalidField);
}

TEST(Utf8Length, CountsCodePointsAndRejectsInvalid) {
  EXPECT_EQ(Utf8Length("abc"), 3);
  EXPECT_EQ(Utf8Length("私域"), 2);
  EXPECT_EQ(Utf8Length("\xff"), -1);
  EXPECT_EQ(Utf8Length("\xe7\xa7"), -1);
}

}  // namespace
}  // namespace siyu
