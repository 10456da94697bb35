#include "api/csv.h"

#include <gtest/gtest.h>

namespace siyu::api {
namespace {

std::vector<CsvRecord> ReadAll(std::string text) {
  CsvReader r(std::move(text));
  std::vector<CsvRecord> out;
  for (;;) {
    auto rec = r.Next();
    EXPECT_TRUE(rec.ok()) << rec.status().ToString();
    if (!rec.ok() || !*rec) break;
    out.push_back(std::move(**rec));
  }
  return out;
}

TEST(CsvReader, QuotesNewlinesCrlfAndBom) {
  auto recs =
      ReadAll("\xEF\xBB\xBFname,note\r\n\"王, 小明\",\"说\"\"你好\"\"\nsecond line\"\r\n\r\nx,\n");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].fields, (std::vector<std::string>{"name", "note"}));
  EXPECT_EQ(recs[1].fields, (std::vector<std::string>{"王, 小明", "说\"你好\"\nsecond line"}));
  EXPECT_EQ(recs[1].line, 2);
  EXPECT_EQ(recs[2].line, 5);  // after the embedded newline and a blank line
  EXPECT_EQ(recs[2].fields, (std::vector<std::string>{"x", ""}));
}

TEST(CsvReader, MalformedQuotesNameTheLine) {
  for (const char* bad : {"a,b\nc\"d,e\n", "a,b\n\"open,e\n", "a,b\n\"x\"y,z\n"}) {
    CsvReader r(bad);
    ASSERT_TRUE(r.Next().ok());
    auto rec = r.Next();
    ASSERT_FALSE(rec.ok()) << bad;
    EXPECT_EQ(rec.status().code(), ErrorCode::kInvalidField);
    EXPECT_NE(rec.status().message().find("line 2"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace siyu::api
