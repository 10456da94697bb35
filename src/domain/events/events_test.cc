#include "domain/events/events.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/crypto.h"
#include "common/error_codes.h"
#include "common/time.h"
#include "domain/channels/channels.h"
#include "domain/orders/orders.h"
#include "domain/people/audience.h"
#include "domain/testing/store_fixture.h"

namespace siyu::domain {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

// An event element as a client sends it.
json::value Ev(const std::string& event_id, const std::string& type, json::array ids, int64_t ts,
               json::object props = {}, std::optional<std::string> state = std::nullopt) {
  json::object o{{"event_id", event_id},         {"type", type},
                 {"ids", std::move(ids)},        {"ts", ts},
                 {"touchpoint", "mini_program"}, {"properties", std::move(props)}};
  if (state) o["channel_state"] = *state;
  return o;
}

json::value PageView(const std::string& event_id, json::array ids, int64_t ts,
                     std::optional<std::string> state = std::nullopt) {
  return Ev(event_id, "page_view", std::move(ids), ts, {{"path", "/pages/index"}},
            std::move(state));
}

EventItem Read(json::value v, size_t index = 0, int64_t now = NowMs()) {
  return ReadEventItem(v, index, now);
}

std::vector<EventItem> Batch(std::vector<json::value> events) {
  std::vector<EventItem> items;
  int64_t now = NowMs();
  for (size_t i = 0; i < events.size(); ++i) items.push_back(Read(std::move(events[i]), i, now));
  return items;
}

// ---------------------------------------------------------------------------------------------
// ReadEventItem: the validation of one element, without a store.

TEST(ReadEventItemTest, ParsesAndCanonicalises) {
  EventItem it = Read(
      Ev("e-1:a.b_C", "add_to_cart", {"phone:138 0013 8000", "unionid:u1", "phone:+8613800138000"},
         kT0, {{"sku", "SKU-1"}, {"quantity", 2}, {"utm", json::object{{"a", 1}}}}, "cState1"));
  ASSERT_TRUE(it.rejected.ok()) << it.rejected.ToString();
  EXPECT_EQ(it.event_id, "e-1:a.b_C");
  const EventIn& e = it.event;
  EXPECT_EQ(e.type, "add_to_cart");
  ASSERT_NE(e.spec, nullptr);
  EXPECT_EQ(e.spec->name, "add_to_cart");
  ASSERT_EQ(e.ids.size(), 2u) << "the same phone in two spellings is one id";
  EXPECT_EQ(e.ids[0].canonical, "phone:+8613800138000");
  EXPECT_EQ(e.ids[0].kind, "phone");
  EXPECT_EQ(e.ids[1].canonical, "unionid:u1");
  EXPECT_EQ(e.ids_json, R"(["phone:+8613800138000","unionid:u1"])");
  EXPECT_EQ(e.ts, kT0);
  EXPECT_EQ(e.touchpoint, "mini_program");
  EXPECT_EQ(e.channel_state, "cState1");
  EXPECT_EQ(e.properties, R"({"sku":"SKU-1","quantity":2,"utm":{"a":1}})");

  json::value custom = json::parse(
      R"({"event_id":"c1","type":"custom:spin_wheel","ids":["unionid:u1"],"ts":1700000000000,
          "touchpoint":"offline"})");
  EventItem c = Read(custom);
  ASSERT_TRUE(c.rejected.ok()) << c.rejected.ToString();
  EXPECT_EQ(c.event.spec, nullptr);
  EXPECT_EQ(c.event.properties, "{}") << "absent properties are an empty object";
  EXPECT_FALSE(c.event.channel_state);
}

TEST(ReadEventItemTest, TimestampBounds) {
  const int64_t now = 1'800'000'000'000;
  EXPECT_TRUE(Read(PageView("a", {"unionid:u"}, now + kMaxEventClockSkewMs), 0, now).rejected.ok());
  EXPECT_TRUE(Read(PageView("a", {"unionid:u"}, kMinEventTs), 0, now).rejected.ok());
  for (int64_t ts : {now + kMaxEventClockSkewMs + 1, kMinEventTs - 1, int64_t{0}, int64_t{-5}}) {
    EventItem it = Read(PageView("a", {"unionid:u"}, ts), 7, now);
    EXPECT_EQ(it.rejected.code(), ErrorCode::kInvalidField) << ts;
    EXPECT_EQ(it.rejected.field(), "events[7].ts") << ts;
    EXPECT_EQ(it.event_id, "a") << "a valid event_id is echoed even when the event is refused";
  }
}

struct BadItem {
  std::string name;
  std::string json;
  ErrorCode code;
  std::string field;
  std::string echoed_id;  // "" when the event_id itself is the problem
};

TEST(ReadEventItemTest, RejectsBadInputWithCodeAndField) {
  const std::string ok_tail =
      R"("type":"page_view","ts":1700000000000,"touchpoint":"wecom","properties":{"path":"/"})";
  auto with = [&](const std::string& fields) { return "{" + fields + "}"; };
  const std::string id = R"("event_id":"e1",)";
  const std::string ids = R"("ids":["unionid:u1"],)";
  std::string big(kMaxPropertiesBytes, 'x');
  const std::vector<BadItem> cases = {
      {"not an object", "3", ErrorCode::kInvalidField, "events[0]", ""},
      {"array element", "[]", ErrorCode::kInvalidField, "events[0]", ""},
      {"no event_id", with(ids + ok_tail), ErrorCode::kMissingField, "events[0].event_id", ""},
      {"empty event_id", with(R"("event_id":"",)" + ids + ok_tail), ErrorCode::kInvalidField,
       "events[0].event_id", ""},
      {"long event_id", with(R"("event_id":")" + std::string(65, 'e') + R"(",)" + ids + ok_tail),
       ErrorCode::kInvalidField, "events[0].event_id", ""},
      {"event_id with space", with(R"("event_id":"e 1",)" + ids + ok_tail),
       ErrorCode::kInvalidField, "events[0].event_id", ""},
      {"event_id with slash", with(R"("event_id":"e/1",)" + ids + ok_tail),
       ErrorCode::kInvalidField, "events[0].event_id", ""},
      {"numeric event_id", with(R"("event_id":5,)" + ids + ok_tail), ErrorCode::kInvalidField,
       "events[0].event_id", ""},
      {"no ids", with(id + ok_tail), ErrorCode::kMissingField, "events[0].ids", "e1"},
      {"null ids", with(id + R"("ids":null,)" + ok_tail), ErrorCode::kMissingField, "events[0].ids",
       "e1"},
      {"empty ids", with(id + R"("ids":[],)" + ok_tail), ErrorCode::kInvalidField, "events[0].ids",
       "e1"},
      {"ids not an array", with(id + R"("ids":"unionid:u1",)" + ok_tail), ErrorCode::kInvalidField,
       "events[0].ids", "e1"},
      {"eleven ids",
       with(id +
            R"("ids":["unionid:1","unionid:2","unionid:3","unionid:4","unionid:5","unionid:6",)"
            R"("unionid:7","unionid:8","unionid:9","unionid:10","unionid:11"],)" +
            ok_tail),
       ErrorCode::kInvalidField, "events[0].ids", "e1"},
      {"id without kind", with(id + R"("ids":["u1"],)" + ok_tail), ErrorCode::kInvalidField,
       "events[0].ids[0]", "e1"},
      {"unknown id kind", with(id + R"("ids":["unionid:u1","wechat:x"],)" + ok_tail),
       ErrorCode::kInvalidField, "events[0].ids[1]", "e1"},
      {"malformed openid", with(id + R"("ids":["openid:app"],)" + ok_tail),
       ErrorCode::kInvalidField, "events[0].ids[0]", "e1"},
      {"malformed phone", with(id + R"("ids":["phone:12345"],)" + ok_tail),
       ErrorCode::kInvalidField, "events[0].ids[0]", "e1"},
      {"numeric id", with(id + R"("ids":[42],)" + ok_tail), ErrorCode::kInvalidField,
       "events[0].ids[0]", "e1"},
      {"no type", with(id + ids + R"("ts":1700000000000,"touchpoint":"wecom")"),
       ErrorCode::kMissingField, "events[0].type", "e1"},
      {"unknown type",
       with(id + ids + R"("type":"pageview","ts":1700000000000,"touchpoint":"wecom")"),
       ErrorCode::kInvalidField, "events[0].type", "e1"},
      {"no ts", with(id + ids + R"("type":"follow","touchpoint":"wecom")"),
       ErrorCode::kMissingField, "events[0].ts", "e1"},
      {"string ts", with(id + ids + R"("type":"follow","ts":"1700000000000","touchpoint":"wecom")"),
       ErrorCode::kInvalidField, "events[0].ts", "e1"},
      {"fractional ts",
       with(id + ids + R"("type":"follow","ts":1700000000000.5,"touchpoint":"wecom")"),
       ErrorCode::kInvalidField, "events[0].ts", "e1"},
      {"far future ts",
       with(id + ids + R"("type":"follow","ts":4102444800000,"touchpoint":"wecom")"),
       ErrorCode::kInvalidField, "events[0].ts", "e1"},
      {"seconds not milliseconds",
       with(id + ids + R"("type":"follow","ts":1700000000,"touchpoint":"wecom")"),
       ErrorCode::kInvalidField, "events[0].ts", "e1"},
      {"no touchpoint", with(id + ids + R"("type":"follow","ts":1700000000000)"),
       ErrorCode::kMissingField, "events[0].touchpoint", "e1"},
      {"unknown touchpoint",
       with(id + ids + R"("type":"follow","ts":1700000000000,"touchpoint":"web")"),
       ErrorCode::kInvalidField, "events[0].touchpoint", "e1"},
      {"empty channel_state", with(id + ids + R"("channel_state":"",)" + ok_tail),
       ErrorCode::kInvalidField, "events[0].channel_state", "e1"},
      {"long channel_state",
       with(id + ids + R"("channel_state":")" + std::string(31, 'c') + R"(",)" + ok_tail),
       ErrorCode::kInvalidField, "events[0].channel_state", "e1"},
      {"unknown field", with(id + ids + R"("person_id":3,)" + ok_tail), ErrorCode::kUnknownField,
       "events[0].person_id", "e1"},
      {"properties an array",
       with(id + ids + R"("type":"follow","ts":1700000000000,"touchpoint":"wecom",)" +
            R"("properties":[1])"),
       ErrorCode::kInvalidField, "events[0].properties", "e1"},
      {"properties a string",
       with(id + ids + R"("type":"follow","ts":1700000000000,"touchpoint":"wecom",)" +
            R"("properties":"{}")"),
       ErrorCode::kInvalidField, "events[0].properties", "e1"},
      {"properties over 8 KiB",
       with(id + ids + R"("type":"custom:big","ts":1700000000000,"touchpoint":"wecom",)" +
            R"("properties":{"x":")" + big + R"("})"),
       ErrorCode::kInvalidField, "events[0].properties", "e1"},
      {"missing required property",
       with(id + ids + R"("type":"product_view","ts":1700000000000,"touchpoint":"wecom",)" +
            R"("properties":{"spu":"S"})"),
       ErrorCode::kMissingField, "events[0].properties.sku", "e1"},
      {"required property absent with no properties",
       with(id + ids + R"("type":"order_paid","ts":1700000000000,"touchpoint":"wecom")"),
       ErrorCode::kMissingField, "events[0].properties.order_no", "e1"},
      {"property of the wrong type",
       with(id + ids + R"("type":"order_paid","ts":1700000000000,"touchpoint":"wecom",)" +
            R"("properties":{"order_no":"SO1","amount_fen":"19.90"})"),
       ErrorCode::kInvalidField, "events[0].properties.amount_fen", "e1"},
  };
  const int64_t now = NowMs();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EventItem it = Read(json::parse(c.json), 0, now);
    EXPECT_EQ(it.rejected.code(), c.code) << it.rejected.ToString();
    EXPECT_EQ(it.rejected.field(), c.field) << it.rejected.ToString();
    EXPECT_FALSE(it.rejected.message().empty());
    EXPECT_EQ(it.event_id, c.echoed_id);
  }
  // Exactly at the limit is fine.
  std::string fits(kMaxPropertiesBytes - std::string(R"({"x":""})").size(), 'x');
  EventItem at_limit = Read(json::parse(
      with(id + ids + R"("type":"custom:big","ts":1700000000000,"touchpoint":"wecom",)" +
           R"("properties":{"x":")" + fits + R"("})")));
  EXPECT_TRUE(at_limit.rejected.ok()) << at_limit.rejected.ToString();
}

TEST(ReadEventItemTest, EventIdCharacters) {
  for (const std::string& ok :
       std::vector<std::string>{"a", "A-z_0.9:x", std::string(64, 'z'), "550e8400-e29b-41d4"}) {
    EXPECT_TRUE(IsEventId(ok)) << ok;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "a b", "a/b", "a+b", "é", std::string(65, 'z'), "a\""}) {
    EXPECT_FALSE(IsEventId(bad)) << bad;
  }
  // Every byte, alone and after a good one: ASCII letters, digits and _ . : - only.
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') ||
                         std::string_view("_.:-").find(ch) != std::string_view::npos;
    EXPECT_EQ(IsEventId(std::string(1, ch)), allowed) << c;
    EXPECT_EQ(IsEventId(std::string("ok") + ch), allowed) << c;
  }
}

// ---------------------------------------------------------------------------------------------
// ReadEventBatch: the request body of POST /v1/events; IngestResultJson: its answer.

// Two readings of one element agree: its id, its refusal, and every field of its event.
void ExpectSameItem(const EventItem& g, const EventItem& w) {
  EXPECT_EQ(g.event_id, w.event_id);
  EXPECT_EQ(g.rejected.code(), w.rejected.code());
  EXPECT_EQ(g.rejected.message(), w.rejected.message());
  EXPECT_EQ(g.rejected.field(), w.rejected.field());
  if (!w.rejected.ok()) return;
  EXPECT_EQ(g.event.event_id, w.event.event_id);
  EXPECT_EQ(g.event.type, w.event.type);
  EXPECT_EQ(g.event.spec, w.event.spec);
  EXPECT_EQ(g.event.ts, w.event.ts);
  EXPECT_EQ(g.event.touchpoint, w.event.touchpoint);
  EXPECT_EQ(g.event.channel_state, w.event.channel_state);
  EXPECT_EQ(g.event.ids_json, w.event.ids_json);
  EXPECT_EQ(g.event.properties, w.event.properties);
  EXPECT_EQ(g.event.integer_properties, w.event.integer_properties);
  ASSERT_EQ(g.event.ids.size(), w.event.ids.size());
  for (size_t k = 0; k < w.event.ids.size(); ++k) {
    EXPECT_EQ(g.event.ids[k].canonical, w.event.ids[k].canonical);
    EXPECT_EQ(g.event.ids[k].kind, w.event.ids[k].kind);
  }
}

void ExpectSameItems(const std::vector<EventItem>& got, const std::vector<EventItem>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE("element " + std::to_string(i));
    ExpectSameItem(got[i], want[i]);
  }
}

TEST(ReadEventBatchTest, TheEnvelopeIsStrict) {
  const int64_t now = NowMs();
  const std::string one = R"({"event_id":"e1","type":"follow","ts":1700000000000,)"
                          R"("touchpoint":"wecom","ids":["unionid:u1"]})";
  std::string many = R"({"events":[)";
  for (size_t i = 0; i <= kMaxEventsPerBatch; ++i) many += (i ? "," : "") + one;
  many += "]}";
  const std::vector<std::tuple<std::string, ErrorCode, std::string>> cases = {
      {"not json", ErrorCode::kMalformedJson, ""},
      {R"({"events":[)", ErrorCode::kMalformedJson, ""},
      {"[" + one + "]", ErrorCode::kMalformedJson, ""},
      {"{}", ErrorCode::kMissingField, "events"},
      {R"({"events":null})", ErrorCode::kMissingField, "events"},
      {R"({"events":[]})", ErrorCode::kInvalidField, "events"},
      {R"({"events":{}})", ErrorCode::kInvalidField, "events"},
      {many, ErrorCode::kInvalidField, "events"},
      {R"({"events":[)" + one + R"(],"tenant":1})", ErrorCode::kUnknownField, "tenant"},
  };
  for (const auto& [body, code, field] : cases) {
    SCOPED_TRACE(body.substr(0, 60));
    auto r = ReadEventBatch(body, now);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    EXPECT_EQ(r.status().field(), field);
  }
}

TEST(ReadEventBatchTest, ReadsEveryElementAsReadEventItemDoes) {
  const int64_t now = NowMs();
  // Good and bad elements side by side; each is read alone, as ReadEventItem reads it.
  const std::vector<std::string> elements = {
      R"({"event_id":"a","type":"page_view","ts":1700000000000,"touchpoint":"mini_program",)"
      R"("ids":["phone:138 0013 8000","unionid:u1","phone:+8613800138000"],)"
      R"("properties":{"path":"/p?id=1","title":"商品 \"详情\"\n","n":[1,{"x":null}]}})",
      R"({"event_id":"b","type":"custom:x","ts":1700000000001,"touchpoint":"other",)"
      R"("ids":["openid:wxapp:o1"],"channel_state":"cX"})",
      R"(7)",
      R"({"event_id":"c d","type":"follow","ts":1700000000000,"touchpoint":"wecom","ids":["u"]})",
      R"({"event_id":"e","type":"order_paid","ts":1700000000000,"touchpoint":"wecom",)"
      R"("ids":["unionid:u2"],"properties":{"order_no":"SO1","amount_fen":"x"}})",
      R"({"event_id":"f","type":"follow","ts":1700000000000,"touchpoint":"wecom",)"
      R"("ids":["unionid:u2",5]})",
      R"({"event_id":"g","type":"nope","ts":1700000000000,"touchpoint":"wecom","ids":["unionid:u"]})",
  };
  std::string body = R"({"events":[)";
  for (size_t i = 0; i < elements.size(); ++i) body += (i ? "," : "") + elements[i];
  body += "]}";
  auto items = ReadEventBatch(body, now);
  ASSERT_TRUE(items.ok()) << items.status().ToString();
  ASSERT_EQ(items->size(), elements.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    SCOPED_TRACE(elements[i]);
    EventItem want = Read(json::parse(elements[i]), i, now);
    ExpectSameItem((*items)[i], want);
  }
  EXPECT_EQ((*items)[0].event.ids_json, R"(["phone:+8613800138000","unionid:u1"])");
  EXPECT_EQ((*items)[0].event.ids[0].kind, "phone");
}

TEST(ReadEventBatchTest, BodiesLargerThanTheArenaAndOneAfterAnother) {
  const int64_t now = NowMs();
  // 1,000 events with 1 KiB of properties each: well past the per-thread arena.
  std::string body = R"({"events":[)";
  const std::string filler(1000, 'z');
  for (int i = 0; i < 1000; ++i) {
    body += (i ? "," : "") + std::string(R"({"event_id":"big-)") + std::to_string(i) +
            R"(","type":"custom:x","ts":1700000000000,"touchpoint":"other",)" +
            R"("ids":["unionid:u)" + std::to_string(i) + R"("],"properties":{"i":)" +
            std::to_string(i) + R"(,"f":")" + filler + R"("}})";
  }
  body += "]}";
  for (int round = 0; round < 3; ++round) {
    auto items = ReadEventBatch(body, now);
    ASSERT_TRUE(items.ok()) << items.status().ToString();
    ASSERT_EQ(items->size(), 1000u);
    for (int i = 0; i < 1000; ++i) {
      const EventItem& it = (*items)[i];
      ASSERT_TRUE(it.rejected.ok()) << it.rejected.ToString();
      EXPECT_EQ(it.event.event_id, "big-" + std::to_string(i));
      EXPECT_EQ(it.event.properties,
                R"({"i":)" + std::to_string(i) + R"(,"f":")" + filler + R"("})");
    }
    // A small batch in between, on the same thread's arena.
    auto small =
        ReadEventBatch(R"({"events":[{"event_id":"s","type":"custom:x","ts":1700000000000,)"
                       R"("touchpoint":"other","ids":["unionid:s"]}]})",
                       now);
    ASSERT_TRUE(small.ok());
    EXPECT_EQ((*small)[0].event.properties, "{}");
  }
}

// A random JSON value for properties: nested containers, escapes, non-ASCII text, decimals,
// integers past INT64_MAX, booleans and nulls, and now and then a key twice.
std::string RandomJson(std::mt19937_64& rng, int depth, bool* dup_key) {
  auto below = [&](uint64_t n) { return rng() % n; };
  static const char* kStrings[] = {
      "\"sku-1\"",          "\"a\\\"b\"",  "\"line\\nnext\\t\"", "\"商品 详情\"",
      "\"\\u00e9\\u4e2d\"", "\"\\/path\"", "\"\\u0001\\u001f\"", "\"\"",
      "\"x\\\\y\""};
  static const char* kNumbers[] = {"0",
                                   "-0",
                                   "7",
                                   "-42",
                                   "9223372036854775807",
                                   "9223372036854775808",
                                   "18446744073709551615",
                                   "1.5",
                                   "-2.25e3",
                                   "1e400",
                                   "3.0",
                                   "0.1",
                                   "12345678901234567890123"};
  switch (depth > 3 ? below(4) : below(6)) {
    case 0:
      return kStrings[below(std::size(kStrings))];
    case 1:
      return kNumbers[below(std::size(kNumbers))];
    case 2:
      return below(3) == 0 ? "null" : below(2) ? "true" : "false";
    case 3:
      return std::to_string(static_cast<int64_t>(rng()) >> below(60));
    case 4: {
      std::string out = "[";
      for (uint64_t i = 0, n = below(4); i < n; ++i) {
        out += (i ? ", " : "") + RandomJson(rng, depth + 1, dup_key);
      }
      return out + "]";
    }
    default: {
      std::string out = "{";
      std::vector<std::string> keys;
      for (uint64_t i = 0, n = below(5); i < n; ++i) {
        std::string key = below(20) == 0 && !keys.empty() ? keys[0]
                          : below(10) == 0                ? "k\\u00e9" + std::to_string(i)
                                                          : "k" + std::to_string(i);
        if (!keys.empty() && key == keys[0]) *dup_key = true;
        keys.push_back(key);
        out += (i ? "," : "") + std::string("\"") + key +
               "\" : " + RandomJson(rng, depth + 1, dup_key);
      }
      return out + "}";
    }
  }
}

// The one-pass reader against the tree reader: whenever the one-pass reader answers, it answers
// exactly what the tree reader does; and it does answer for well-formed batches.
TEST(ReadEventBatchTest, OnePassReaderReadsAsTheTreeReader) {
  const int64_t now = NowMs();
  std::mt19937_64 rng(20261124);
  auto below = [&](uint64_t n) { return rng() % n; };
  // Elements the one-pass reader takes; their properties follow the catalogue.
  const std::vector<std::string> heads = {
      R"("type":"page_view","touchpoint":"mini_program","properties":{"path":"/p","n":1,"m":)",
      R"("type":"order_paid","touchpoint":"wecom","properties":{"order_no":"SO1","amount_fen":990,"m":)",
      R"("type":"custom:lucky_draw","touchpoint":"other","properties":{"m":)",
      R"("type":"follow","touchpoint":"official_account","channel_state":"c1","properties":{"m":)",
  };
  const std::vector<std::string> ids = {
      R"(["unionid:u1"])", R"(["phone:138 0013 8000","unionid:u1","phone:+8613800138000"])",
      R"(["openid:wxmp:o1", "unionid:u\u0031"])", R"(["unionid:u2","unionid:u2"])"};
  int answered = 0, good = 0;
  // One vector for every round, as an HTTP thread reads its batches: each round's items are
  // written over the last round's (more or fewer of them, with more or fewer ids and properties).
  std::vector<EventItem> reused, reused_either;
  for (int round = 0; round < 400; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string body = R"({ "events" : [)";
    bool dup_key = false;
    const size_t n = 1 + below(20);
    for (size_t i = 0; i < n; ++i) {
      body += i ? " ,\n" : "";
      body += R"({"event_id":"e-)" + std::to_string(round) + "-" + std::to_string(i) + "\"," +
              R"("ts":)" + std::to_string(now - static_cast<int64_t>(below(1000000))) + "," +
              R"("ids":)" + ids[below(ids.size())] + "," + heads[below(heads.size())] +
              RandomJson(rng, 1, &dup_key) + "}}";
    }
    body += "]}";
    // Now and then one mutation that the one-pass reader must leave to the tree reader.
    static const std::vector<std::pair<std::string, std::string>> kMutations = {
        {R"("ts":)", R"("ts":"x",)"},
        {R"("ts":)", R"("ts":1.5,"t":)"},
        {R"("type":"page_view")", R"("type":"page_view","type":"follow")"},
        {R"("type":"order_paid")", R"("type":"nope")"},
        {R"("amount_fen":990)", R"("amount_fen":"990")"},
        {R"("path":"/p")", R"("path":null)"},
        {R"("ids":)", R"("ids":[],"x":)"},
        {R"("touchpoint":"wecom")", R"("touchpoint":"phone")"},
        {R"("event_id":"e-)", R"("event_id":"bad id-)"},
        {R"("channel_state":"c1")", R"("channel_state":"0123456789012345678901234567890")"},
        {R"("channel_state":"c1")", R"("channel_state":null)"},
        {R"({ "events" : [)", R"({ "events" : [ 7,)"},
        {R"(]})", R"(],"more":1})"},
        {R"(]})", R"(]} x)"},
        {R"("ids":)", R"("ids":["unionid:a"],"ids":)"},
    };
    bool mutated = below(3) == 0;
    if (mutated) {
      const auto& [from, to] = kMutations[below(kMutations.size())];
      size_t at = body.find(from);
      if (at == std::string::npos) {
        mutated = false;
      } else {
        body.replace(at, from.size(), to);
      }
    }
    SCOPED_TRACE(body.substr(0, 400));
    auto tree = ReadEventBatchTree(body, now);
    auto fast = ReadEventBatchFast(body, now);
    bool all_good = tree.ok() && std::all_of(tree->begin(), tree->end(),
                                             [](const EventItem& it) { return it.rejected.ok(); });
    if (fast) {
      ++answered;
      ASSERT_TRUE(tree.ok()) << tree.status().ToString();
      ExpectSameItems(*fast, *tree);
    }
    if (all_good && !dup_key && !mutated) {
      ++good;
      EXPECT_TRUE(fast.has_value()) << "a well-formed batch was left to the tree reader";
    }
    if (!all_good) {
      EXPECT_FALSE(fast.has_value()) << "a batch with errors was read in one pass";
    }
    // Read over the items of earlier rounds, it reads the same.
    const bool fast_reused = ReadEventBatchFast(body, now, reused);
    EXPECT_EQ(fast_reused, fast.has_value());
    if (fast_reused && tree.ok()) ExpectSameItems(reused, *tree);
    // ReadEventBatch answers as the tree reader, whichever reads it.
    auto either = ReadEventBatch(body, now);
    ASSERT_EQ(either.ok(), tree.ok());
    Status either_reused = ReadEventBatch(body, now, reused_either);
    ASSERT_EQ(either_reused.ok(), tree.ok());
    if (tree.ok()) {
      ExpectSameItems(*either, *tree);
      ExpectSameItems(reused_either, *tree);
    } else {
      EXPECT_EQ(either.status().message(), tree.status().message());
      EXPECT_EQ(either_reused.message(), tree.status().message());
    }
  }
  EXPECT_GT(good, 150);
  EXPECT_GE(answered, good);
}

TEST(IngestResultJsonTest, IsTheCodecsAnswerByteForByte) {
  // The answer as api::ToJson(IngestResult) builds it, serialised.
  auto reference = [](const IngestResult& r) {
    json::array results;
    for (const EventResult& e : r.results) {
      json::object o;
      o["event_id"] = e.event_id.empty() ? json::value(nullptr) : json::value(e.event_id);
      o["status"] = EventOutcomeName(e.outcome);
      if (e.outcome == EventOutcome::kAccepted) {
        o["person_id"] = e.person_id;
        if (e.link != LinkState::kLinked) o["link"] = LinkStateName(e.link);
      } else if (e.outcome == EventOutcome::kRejected) {
        o["code"] = ErrorCodeName(e.error.code());
        o["message"] = e.error.message();
        if (!e.error.field().empty()) o["field"] = e.error.field();
      }
      results.emplace_back(std::move(o));
    }
    json::object o;
    o["results"] = std::move(results);
    o["accepted"] = r.accepted;
    o["duplicates"] = r.duplicates;
    o["rejected"] = r.rejected;
    return json::serialize(o);
  };
  IngestResult r;
  auto add = [&](std::string id, EventOutcome out, int64_t person = 0,
                 LinkState link = LinkState::kLinked, Status err = Status::Ok()) {
    EventResult e;
    e.event_id = std::move(id);
    e.outcome = out;
    e.person_id = person;
    e.link = link;
    e.error = std::move(err);
    e.channel_id = 7;  // not part of the answer
    r.results.push_back(std::move(e));
  };
  add("550e8400-e29b-41d4-a716-446655440000", EventOutcome::kAccepted, 123456789012);
  add("m", EventOutcome::kAccepted, 1, LinkState::kMerged);
  add("q", EventOutcome::kAccepted, 2, LinkState::kQuarantined);
  add("d:1.x_y", EventOutcome::kDuplicate, 5);
  add("", EventOutcome::kRejected, 0, LinkState::kLinked,
      InvalidField("events[4]", "each element of 'events' must be a JSON object"));
  add("r", EventOutcome::kRejected, 0, LinkState::kLinked,
      InvalidField("events[5].type", "unknown event type 'a\"b\\c\n\t\x01\x7f é 事件'"));
  add("s", EventOutcome::kRejected, 0, LinkState::kLinked,
      Status(ErrorCode::kStoreUnavailable, "send this event again"));
  add("t", EventOutcome::kRejected, 0, LinkState::kLinked,
      Status(ErrorCode::kUnknownChannelState, "channel_state 'x' matches no channel",
             "events[7].channel_state"));
  r.accepted = 3;
  r.duplicates = 1;
  r.rejected = 4;
  EXPECT_EQ(IngestResultJson(r), reference(r));
  EXPECT_EQ(IngestResultJson(IngestResult{}), reference(IngestResult{}));
  EXPECT_TRUE(json::parse(IngestResultJson(r)).is_object());
}

// ---------------------------------------------------------------------------------------------
// The service, on SQLite and PostgreSQL.

class EventsTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (HasFatalFailure()) return;
    tenant_ = NewTenant("品牌A");
    other_ = NewTenant("品牌B");
    events_ = std::make_unique<Events>(db(), identity());
    if (GetParam() == "sqlitelog") {
      Status s = events_->OpenLog((dir_ / "events").string());
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    channel_a_ = MakeChannel(tenant_, "A");
    channel_b_ = MakeChannel(tenant_, "B");
    other_channel_ = MakeChannel(other_, "A");
  }
  void TearDown() override {
    events_.reset();
    StoreFixture::TearDown();
  }

  Channel MakeChannel(int64_t tenant, const std::string& name) {
    Channels channels(db());
    auto ch = channels.Create(tenant, NewChannel{name, "offline", "wecom", 0});
    EXPECT_TRUE(ch.ok()) << ch.status().ToString();
    return ch.ok() ? *ch : Channel{};
  }

  IngestResult Ingest(std::vector<json::value> events, int64_t tenant = 0) {
    auto r = events_->Ingest(tenant ? tenant : tenant_, Batch(std::move(events)));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : IngestResult{};
  }

  // Every stored event of the tenant (table rows and log records), each once.
  std::vector<StoredEvent> Stored(int64_t tenant = 0) {
    std::vector<StoredEvent> out;
    Status s = events_->ForEachStored(tenant ? tenant : tenant_, [&](const StoredEvent& e) {
      out.push_back(e);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  int64_t StoredCount(int64_t tenant = 0) { return static_cast<int64_t>(Stored(tenant).size()); }
  StoredEvent StoredById(const std::string& event_id) {
    for (auto& e : Stored()) {
      if (e.event_id == event_id) return e;
    }
    ADD_FAILURE() << "no stored event " << event_id;
    return {};
  }

  int64_t Count(const std::string& table, int64_t tenant = 0) {
    return QueryInt("SELECT COUNT(*) FROM " + table + " WHERE tenant_id = ?",
                    {tenant ? tenant : tenant_});
  }
  int64_t PersonOf(const std::string& canonical, int64_t tenant = 0) {
    return QueryInt("SELECT person_id FROM person_ids WHERE tenant_id = ? AND external_id = ?",
                    {tenant ? tenant : tenant_, canonical});
  }
  int64_t Column(const std::string& column, int64_t person) {
    return QueryInt("SELECT COALESCE(" + column + ", -1) FROM people WHERE id = ?", {person});
  }

  std::vector<StoredEvent> WholeTimeline(int64_t person, int limit) {
    std::vector<StoredEvent> all;
    std::optional<std::string> before;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = events_->Timeline(tenant_, person, before, limit);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      EXPECT_LE(page->items.size(), static_cast<size_t>(limit));
      all.insert(all.end(), page->items.begin(), page->items.end());
      if (!page->next_before) break;
      EXPECT_EQ(page->items.size(), static_cast<size_t>(limit)) << "a short page that is not last";
      before = page->next_before;
    }
    return all;
  }

  int64_t tenant_ = 0, other_ = 0;
  Channel channel_a_, channel_b_, other_channel_;
  std::unique_ptr<Events> events_;
};

TEST_P(EventsTest, AcceptedDuplicateAndRejectedInOneBatch) {
  std::vector<json::value> batch = {
      PageView("e1", {"unionid:u1", "openid:wxapp:o1"}, kT0, channel_a_.state),
      PageView("e1", {"unionid:u1"}, kT0 + 1),  // the same event_id again in the batch
      PageView("e3", {"unionid:u3"}, NowMs() + kMsPerDay),
      PageView("e4", {"unionid:u4"}, kT0, "noSuchState"),
      Ev("e5", "add_to_cart", {"openid:wxapp:o1"}, kT0 + 5, {{"sku", "S"}, {"quantity", 1}}),
      PageView("e6", {"unionid:u6"}, kT0, other_channel_.state),  // another tenant's channel
  };
  IngestResult r = Ingest(batch);
  ASSERT_EQ(r.results.size(), 6u);
  EXPECT_EQ(r.accepted, 2);
  EXPECT_EQ(r.duplicates, 1);
  EXPECT_EQ(r.rejected, 3);
  EXPECT_EQ(r.results[0].outcome, EventOutcome::kAccepted);
  EXPECT_EQ(r.results[1].outcome, EventOutcome::kDuplicate);
  EXPECT_EQ(r.results[1].event_id, "e1");
  EXPECT_EQ(r.results[2].outcome, EventOutcome::kRejected);
  EXPECT_EQ(r.results[2].error.field(), "events[2].ts");
  EXPECT_EQ(r.results[3].outcome, EventOutcome::kRejected);
  EXPECT_EQ(r.results[3].error.code(), ErrorCode::kUnknownChannelState);
  EXPECT_EQ(r.results[3].error.field(), "events[3].channel_state");
  EXPECT_EQ(r.results[4].outcome, EventOutcome::kAccepted);
  EXPECT_EQ(r.results[5].error.code(), ErrorCode::kUnknownChannelState);
  const int64_t p = r.results[0].person_id;
  EXPECT_GT(p, 0);
  EXPECT_EQ(r.results[4].person_id, p) << "the openid attached by e1 resolves to its person";
  EXPECT_EQ(r.results[0].link, LinkState::kLinked);

  EXPECT_EQ(StoredCount(), 2);
  EXPECT_EQ(Count("people"), 1) << "rejected events create nobody";
  EXPECT_EQ(Count("person_ids"), 2);
  EXPECT_EQ(PersonOf("unionid:u1"), p);
  EXPECT_EQ(PersonOf("openid:wxapp:o1"), p);
  EXPECT_EQ(Column("first_channel_id", p), channel_a_.id);
  EXPECT_EQ(Column("last_channel_id", p), channel_a_.id);
  EXPECT_EQ(Column("acquired_at", p), kT0) << "a person made by an event is acquired at its ts";
  EXPECT_EQ(StoredCount(other_), 0);

  // Resending the whole batch stores nothing new and answers the same outcome per item.
  IngestResult again = Ingest(batch);
  EXPECT_EQ(again.accepted, 0);
  EXPECT_EQ(again.duplicates, 3);
  EXPECT_EQ(again.rejected, 3);
  for (size_t i : {0u, 1u, 4u}) EXPECT_EQ(again.results[i].outcome, EventOutcome::kDuplicate);
  EXPECT_EQ(StoredCount(), 2);
  EXPECT_EQ(Count("people"), 1);
  EXPECT_EQ(Count("person_ids"), 2);

  // The same event_id in another tenant is another event.
  IngestResult b = Ingest({PageView("e1", {"unionid:u1"}, kT0)}, other_);
  EXPECT_EQ(b.accepted, 1);
  EXPECT_NE(b.results[0].person_id, p);
  EXPECT_EQ(StoredCount(other_), 1);
}

TEST_P(EventsTest, AnEarlierRefusedCopyDoesNotMakeADuplicate) {
  IngestResult r = Ingest(
      {PageView("d1", {"unionid:u1"}, NowMs() + kMsPerDay), PageView("d1", {"unionid:u1"}, kT0),
       PageView("d2", {"unionid:u2"}, kT0, "noSuchState"), PageView("d2", {"unionid:u2"}, kT0)});
  EXPECT_EQ(r.results[0].outcome, EventOutcome::kRejected);
  EXPECT_EQ(r.results[1].outcome, EventOutcome::kAccepted);
  EXPECT_EQ(r.results[2].outcome, EventOutcome::kRejected);
  EXPECT_EQ(r.results[3].outcome, EventOutcome::kAccepted);
  EXPECT_EQ(StoredCount(), 2);
}

TEST_P(EventsTest, AllRejectedChangesNothing) {
  IngestResult r = Ingest(
      {PageView("x1", {"unionid:new1"}, kT0, "noSuchState"), PageView("x2", {"wechat:x"}, kT0)});
  EXPECT_EQ(r.rejected, 2);
  EXPECT_EQ(r.results[1].error.field(), "events[1].ids[0]");
  EXPECT_EQ(StoredCount(), 0);
  EXPECT_EQ(Count("people"), 0);
  EXPECT_EQ(Count("person_ids"), 0);
}

TEST_P(EventsTest, ResolvesByTheFirstKnownIdAndMergesThroughTheGraph) {
  IngestResult r = Ingest({PageView("a", {"unionid:u1"}, kT0), PageView("b", {"unionid:u2"}, kT0)});
  const int64_t p1 = r.results[0].person_id, p2 = r.results[1].person_id;
  ASSERT_LT(p1, p2);

  // An unknown id first, a known one second: the known one's person, and the new id joins it.
  r = Ingest({PageView("c", {"unionid:new", "unionid:u1"}, kT0 + 1)});
  EXPECT_EQ(r.results[0].person_id, p1);
  EXPECT_EQ(r.results[0].link, LinkState::kLinked);
  EXPECT_EQ(PersonOf("unionid:new"), p1);

  // Ids of two different people: the event says they are one. The rows stay (the event is
  // attached to the first id's row), the people merge into the oldest row, and the merge is
  // logged with its reason.
  r = Ingest({PageView("d", {"unionid:u2", "unionid:u1", "unionid:u3"}, kT0 + 2)});
  EXPECT_EQ(r.results[0].outcome, EventOutcome::kAccepted);
  EXPECT_EQ(r.results[0].person_id, p1) << "the survivor is the oldest row";
  EXPECT_EQ(r.results[0].link, LinkState::kMerged);
  EXPECT_EQ(PersonOf("unionid:u1"), p1) << "ids never move";
  EXPECT_EQ(PersonOf("unionid:u3"), p2) << "the unknown id joins the first known id's row";
  EXPECT_EQ(Count("people"), 2);
  EXPECT_EQ(Column("canonical_id", p2), p1);
  EXPECT_EQ(Column("canonical_id", p1), -1) << "the survivor is its own canonical person";
  EXPECT_EQ(StoredById("d").person_id, p2);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM identity_log WHERE tenant_id = ? AND kind = 'merge' "
                     "AND reason = 'event page_view d'",
                     {tenant_}),
            1);
  // Either row's timeline is the merged person's: all four events.
  EXPECT_EQ(WholeTimeline(p1, 2).size(), 4u);
  EXPECT_EQ(WholeTimeline(p2, 3).size(), 4u);
  EXPECT_EQ(*identity().Resolve(tenant_, "unionid:u3"), std::make_pair(p1, p2));

  // Sending the same ids again changes nothing more.
  r = Ingest({PageView("d2", {"unionid:u1", "unionid:u2"}, kT0 + 3)});
  EXPECT_EQ(r.results[0].link, LinkState::kLinked);
  EXPECT_EQ(r.results[0].person_id, p1);
  EXPECT_EQ(Count("identity_log"), 1);

  // Within one batch: the second event finds the person the first one created.
  r = Ingest({PageView("e", {"unionid:fresh"}, kT0),
              PageView("f", {"phone:13800138000", "unionid:fresh"}, kT0)});
  EXPECT_EQ(r.results[0].person_id, r.results[1].person_id);
  EXPECT_EQ(PersonOf("phone:+8613800138000"), r.results[0].person_id);
  EXPECT_EQ(Count("people"), 3);
  EXPECT_TRUE(identity().Verify().ok()) << identity().Verify().ToString();
}

TEST_P(EventsTest, TheGuardQuarantinesAHubIdInsteadOfMerging) {
  // A shop's shared phone seen with the unionids of three different customers.
  IdentityOptions strict;
  strict.max_people_per_id = 2;
  Identity guarded(db(), strict);
  Events events(db(), guarded);
  auto ingest = [&](std::vector<json::value> batch) {
    auto r = events.Ingest(tenant_, Batch(std::move(batch)));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : IngestResult{};
  };
  ingest({PageView("a", {"unionid:c1"}, kT0), PageView("b", {"unionid:c2"}, kT0),
          PageView("c", {"unionid:c3"}, kT0)});
  IngestResult r = ingest({PageView("s1", {"phone:13800000001", "unionid:c1"}, kT0 + 1)});
  EXPECT_EQ(r.results[0].link, LinkState::kLinked) << "a new id joins c1's person";
  r = ingest({PageView("s2", {"phone:13800000001", "unionid:c2"}, kT0 + 2)});
  EXPECT_EQ(r.results[0].link, LinkState::kMerged) << "the phone ties two people: allowed";
  r = ingest({PageView("s3", {"phone:13800000001", "unionid:c3"}, kT0 + 3)});
  EXPECT_EQ(r.results[0].outcome, EventOutcome::kAccepted) << "the event itself is kept";
  EXPECT_EQ(r.results[0].link, LinkState::kQuarantined);
  EXPECT_NE(*guarded.Resolve(tenant_, "unionid:c3"), *guarded.Resolve(tenant_, "unionid:c1"));
  auto held = guarded.Quarantined(tenant_);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].hub_id, "phone:+8613800000001");
  EXPECT_EQ(held[0].people.size(), 3u);
  EXPECT_EQ(Count("identity_log"), 2) << "one merge, one quarantine";

  // Rejected: nothing merges; the store and a rebuilt graph agree.
  ASSERT_TRUE(guarded.Reject(tenant_, held[0].quarantine_id, "shop device").ok());
  EXPECT_TRUE(guarded.Quarantined(tenant_).empty());
  EXPECT_EQ(guarded.Reject(tenant_, held[0].quarantine_id, "again").code(),
            ErrorCode::kAlreadyDecided);
  EXPECT_EQ(guarded.Reject(tenant_, 999, "none").code(), ErrorCode::kNotFound);
  EXPECT_TRUE(guarded.Verify().ok()) << guarded.Verify().ToString();
  Identity reloaded(db(), strict);
  ASSERT_TRUE(reloaded.LoadAll().ok());
  EXPECT_TRUE(reloaded.Quarantined(tenant_).empty());
  EXPECT_EQ(reloaded.CanonicalOf(tenant_, PersonOf("unionid:c2")), PersonOf("unionid:c1"));
}

TEST_P(EventsTest, UnmergeSplitsThePersonExactlyAndApproveMerges) {
  IdentityOptions strict;
  strict.max_people_per_id = 2;
  Identity guarded(db(), strict);
  Events events(db(), guarded);
  auto ingest = [&](std::vector<json::value> batch) {
    auto r = events.Ingest(tenant_, Batch(std::move(batch)));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : IngestResult{};
  };
  ingest({PageView("a", {"unionid:c1"}, kT0), PageView("b", {"unionid:c2"}, kT0),
          PageView("c", {"unionid:c3"}, kT0)});
  const int64_t c1 = PersonOf("unionid:c1"), c2 = PersonOf("unionid:c2"),
                c3 = PersonOf("unionid:c3");
  ingest({PageView("m1", {"unionid:c1", "unionid:c2"}, kT0 + 1)});
  EXPECT_EQ(guarded.CanonicalOf(tenant_, c2), c1);
  ingest({PageView("m2", {"unionid:c2", "unionid:c3"}, kT0 + 2)});
  auto held = guarded.Quarantined(tenant_);
  ASSERT_EQ(held.size(), 1u) << "c2 would tie three people";
  auto approved = guarded.Approve(tenant_, held[0].quarantine_id, "same customer, checked");
  ASSERT_TRUE(approved.ok()) << approved.status().ToString();
  EXPECT_EQ(approved->result, identity::LinkResult::kLinked);
  EXPECT_EQ(Column("canonical_id", c3), c1);

  // Undo the first merge: c1 alone, c2 and c3 together (the approved merge stays).
  auto history = guarded.Describe(tenant_, c3);
  ASSERT_TRUE(history.ok());
  uint64_t first_merge = 0;
  for (const auto& e : history->history) {
    if (e.kind == identity::LogKind::kMerge && !first_merge) first_merge = e.seq;
  }
  ASSERT_NE(first_merge, 0u);
  auto split = guarded.Unmerge(tenant_, first_merge, "two people after all");
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ(guarded.CanonicalOf(tenant_, c1), c1);
  EXPECT_EQ(guarded.CanonicalOf(tenant_, c3), c2);
  EXPECT_EQ(Column("canonical_id", c1), -1);
  EXPECT_EQ(Column("canonical_id", c2), -1);
  EXPECT_EQ(Column("canonical_id", c3), c2);
  EXPECT_EQ(guarded.Unmerge(tenant_, first_merge, "again").status().code(),
            ErrorCode::kAlreadyDecided);
  EXPECT_EQ(WholeTimeline(c1, 10).size(), 2u) << "a, m1 (attached to c1's row)";
  EXPECT_TRUE(guarded.Verify().ok()) << guarded.Verify().ToString();
}

TEST_P(EventsTest, ChannelMovingEventsMoveTheLastChannelByTs) {
  const std::string a = channel_a_.state, b = channel_b_.state;
  IngestResult r = Ingest({Ev("p1", "page_view", {"unionid:u"}, kT0, {{"path", "/"}})});
  const int64_t p = r.results[0].person_id;
  EXPECT_EQ(Column("first_channel_id", p), -1);

  // A follow through channel A: first touch and last touch.
  Ingest({Ev("f1", "follow", {"unionid:u"}, kT0 + 10, {}, a)});
  EXPECT_EQ(Column("first_channel_id", p), channel_a_.id);
  EXPECT_EQ(Column("last_channel_id", p), channel_a_.id);
  // A scan of channel B later: the last touch moves, the first stays.
  Ingest({Ev("q1", "qr_scanned", {"unionid:u"}, kT0 + 20, {}, b)});
  EXPECT_EQ(Column("first_channel_id", p), channel_a_.id);
  EXPECT_EQ(Column("last_channel_id", p), channel_b_.id);
  // A late contact_added through A, older than the scan, does not undo the newer touch.
  Ingest({Ev("c1", "contact_added", {"unionid:u"}, kT0 + 15, {{"user_id", "zhang"}}, a)});
  EXPECT_EQ(Column("last_channel_id", p), channel_b_.id);
  // A page view through A is not a touch that moves channels.
  Ingest({Ev("p2", "page_view", {"unionid:u"}, kT0 + 30, {{"path", "/"}}, a)});
  EXPECT_EQ(Column("last_channel_id", p), channel_b_.id);
  // A newer contact_added through A does.
  Ingest({Ev("c2", "contact_added", {"unionid:u"}, kT0 + 40, {{"user_id", "zhang"}}, a)});
  EXPECT_EQ(Column("last_channel_id", p), channel_a_.id);
  // Two moves in one batch, the newer one sent first: the newer one wins.
  Ingest({Ev("q2", "qr_scanned", {"unionid:u"}, kT0 + 60, {}, b),
          Ev("q3", "qr_scanned", {"unionid:u"}, kT0 + 50, {}, a)});
  EXPECT_EQ(Column("last_channel_id", p), channel_b_.id);
  EXPECT_EQ(Column("first_channel_id", p), channel_a_.id);

  // A new person brought by a scan is attributed to its channel.
  r = Ingest({Ev("n1", "qr_scanned", {"unionid:newcomer"}, kT0, {}, b)});
  const int64_t n = r.results[0].person_id;
  EXPECT_EQ(Column("first_channel_id", n), channel_b_.id);
  EXPECT_EQ(Column("last_channel_id", n), channel_b_.id);
  // The stored event carries its channel.
  EXPECT_EQ(StoredById("n1").channel_id, channel_b_.id);
  auto stored = Stored();
  EXPECT_EQ(std::count_if(stored.begin(), stored.end(),
                          [](const domain::StoredEvent& e) { return !e.channel_id; }),
            1);
  // Events with a channel are the people's touches (the channel report and the last-touch rule
  // read them) on every backend.
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM touches WHERE tenant_id = ?", {tenant_}),
            static_cast<int64_t>(stored.size()) - 1);
  EXPECT_EQ(QueryInt("SELECT COUNT(*) FROM touches WHERE tenant_id = ? AND event_id = 'n1' AND "
                     "channel_id = ? AND type = 'qr_scanned' AND ts = ?",
                     {tenant_, channel_b_.id, kT0}),
            1);
}

TEST_P(EventsTest, TimelineIsNewestFirstByTsAndPages) {
  // Sent out of order, one of them late by a day, three with the same ts.
  IngestResult r = Ingest(
      {PageView("t3", {"unionid:u"}, kT0 + 3000), PageView("t1", {"unionid:u"}, kT0 + 1000),
       PageView("t2b", {"unionid:u"}, kT0 + 2000), PageView("t2a", {"unionid:u"}, kT0 + 2000),
       PageView("other", {"unionid:someone"}, kT0 + 2500)});
  const int64_t p = r.results[0].person_id;
  Ingest({PageView("late", {"unionid:u"}, kT0 - kMsPerDay),
          PageView("t2c", {"unionid:u"}, kT0 + 2000),
          Ev("t4", "custom:quiz", {"unionid:u"}, kT0 + 4000, {{"score", 9}})});
  const std::vector<std::string> want = {"t4", "t3", "t2c", "t2b", "t2a", "t1", "late"};
  for (int limit : {1, 2, 3, 7, 50}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    std::vector<std::string> got;
    for (const auto& e : WholeTimeline(p, limit)) got.push_back(e.event_id);
    EXPECT_EQ(got, want);
  }
  auto first = events_->Timeline(tenant_, p, std::nullopt, 1);
  ASSERT_TRUE(first.ok());
  const StoredEvent& e = first->items.at(0);
  EXPECT_EQ(e.type, "custom:quiz");
  EXPECT_EQ(e.ts, kT0 + 4000);
  EXPECT_EQ(e.person_id, p);
  EXPECT_EQ(e.touchpoint, "mini_program");
  EXPECT_EQ(e.ids_json, R"(["unionid:u"])");
  EXPECT_EQ(e.properties, R"({"score":9})");
  EXPECT_FALSE(e.channel_id);
  EXPECT_GT(e.received_at, kT0);

  // Cursors are checked; other tenants' people do not exist; a person without events is empty.
  for (std::string bad : {"", "x", "!!!", "MTIz", "YWJjOmRlZg"}) {
    auto page = events_->Timeline(tenant_, p, bad, 10);
    EXPECT_EQ(page.status().code(), ErrorCode::kInvalidQuery) << bad;
    EXPECT_EQ(page.status().field(), "before") << bad;
  }
  auto stranger = Ingest({PageView("s", {"unionid:u"}, kT0)}, other_);
  EXPECT_EQ(
      events_->Timeline(tenant_, stranger.results[0].person_id, std::nullopt, 10).status().code(),
      ErrorCode::kNotFound);
  EXPECT_EQ(events_->Timeline(other_, p, std::nullopt, 10).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(events_->Timeline(tenant_, 999999, std::nullopt, 10).status().code(),
            ErrorCode::kNotFound);
  Status add = db().Write([&](store::Conn& c) -> Status {
    return c
        .Exec(
            "INSERT INTO people (tenant_id, acquired_at, created_at, updated_at) VALUES (?, "
            "1, 1, 1)",
            {tenant_})
        .status();
  });
  ASSERT_TRUE(add.ok());
  int64_t quiet = QueryInt("SELECT MAX(id) FROM people WHERE tenant_id = ?", {tenant_});
  auto empty = events_->Timeline(tenant_, quiet, std::nullopt, 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->items.empty());
  EXPECT_FALSE(empty->next_before);
}

TEST_P(EventsTest, LargeBatchesCrossEveryChunkSize) {
  // 1,000 events over 300 people (so the id look-ups span several IN chunks), half of them new.
  Ingest({PageView("seed", {"unionid:p0"}, kT0)});
  for (int i = 0; i < 150; ++i) {
    Ingest({PageView("known" + std::to_string(i), {"unionid:p" + std::to_string(i * 2)}, kT0)});
  }
  std::vector<json::value> batch;
  for (int i = 0; i < 1000; ++i) {
    int person = i % 300;
    batch.push_back(
        PageView("big-" + std::to_string(i),
                 {"unionid:p" + std::to_string(person), "openid:wxapp:o" + std::to_string(person)},
                 kT0 + i));
  }
  IngestResult r = Ingest(batch);
  EXPECT_EQ(r.accepted, 1000);
  EXPECT_EQ(StoredCount(), 1151);
  EXPECT_EQ(Count("people"), 300);
  EXPECT_EQ(Count("person_ids"), 600);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(r.results[i].person_id, r.results[i % 300].person_id) << i;
  }
  IngestResult again = Ingest(batch);
  EXPECT_EQ(again.duplicates, 1000);
  EXPECT_EQ(StoredCount(), 1151);
}

TEST_P(EventsTest, ConcurrentCopiesOfABatchStoreEachEventOnce) {
  // Two requests carry the same events at the same moment (a client resending on a timeout while
  // the first send is still in flight): every event is accepted by exactly one of them and a
  // duplicate for the other, and stored once.
  for (int round = 0; round < 10; ++round) {
    std::vector<json::value> batch;
    for (int i = 0; i < 120; ++i) {
      const std::string n = std::to_string(round) + "-" + std::to_string(i);
      batch.push_back(PageView("c" + n, {"unionid:c" + std::to_string(i % 40)}, kT0 + i));
    }
    IngestResult a, b;
    std::thread other([&] { b = Ingest(batch); });
    a = Ingest(batch);
    other.join();
    EXPECT_EQ(a.accepted + b.accepted, 120) << "round " << round;
    EXPECT_EQ(a.duplicates + b.duplicates, 120) << "round " << round;
    for (size_t i = 0; i < batch.size(); ++i) {
      EXPECT_NE(a.results[i].outcome == EventOutcome::kAccepted,
                b.results[i].outcome == EventOutcome::kAccepted)
          << "round " << round << " event " << i;
    }
  }
  EXPECT_EQ(StoredCount(), 1200);
  EXPECT_EQ(Count("people"), 40);
}

// The same random batches into a SQLite store without the log (every event through
// ResolvePerson, one by one) and into one with the log (known people from the graph, the rest
// through the batch resolver, whose multi-row writes number new people themselves): both must
// attach every event to the same person row, create the same people and ids with the same
// numbers, merge and quarantine alike, and answer alike.
TEST(EventsDifferentialTest, TheLogPathResolvesPeopleAsTheStorePathDoes) {
  struct World {
    std::filesystem::path dir;
    std::unique_ptr<store::Store> store;
    std::unique_ptr<Identity> identity;
    std::unique_ptr<Events> events;
    int64_t tenant = 0;

    explicit World(bool log) {
      dir = std::filesystem::temp_directory_path() / ("siyu-events-diff-" + RandomBase62(10));
      store::Options o;
      o.url = dir.string();
      auto s = store::Store::Open(o);
      EXPECT_TRUE(s.ok()) << s.status().ToString();
      store = std::move(s).value();
      identity = std::make_unique<Identity>(*store);  // the guard holds hubs of > 3 people
      Status w = store->Write([&](store::Conn& c) -> Status {
        ASSIGN_OR_RETURN(store::Rows r,
                         c.Query("INSERT INTO tenants (name, timezone, created_at) VALUES (?, "
                                 "'Asia/Shanghai', 1) RETURNING id",
                                 {std::string("diff")}));
        tenant = r.at(0).Int(0);
        for (const char* st : {"cA", "cB"}) {
          RETURN_IF_ERROR(c.Exec("INSERT INTO channels (tenant_id, name, source_pool, touchpoint, "
                                 "cost_fen, state, created_at) VALUES (?, ?, 'offline', 'wecom', "
                                 "0, ?, 1)",
                                 {tenant, std::string(st), std::string(st)})
                              .status());
        }
        return Status::Ok();
      });
      EXPECT_TRUE(w.ok()) << w.ToString();
      events = std::make_unique<Events>(*store, *identity);
      if (log) {
        Status l = events->OpenLog((dir / "events").string());
        EXPECT_TRUE(l.ok()) << l.ToString();
      }
    }
    ~World() {
      events.reset();
      identity.reset();
      store.reset();
      std::filesystem::remove_all(dir);
    }
    std::vector<std::string> Rows(const std::string& sql) {
      std::vector<std::string> out;
      Status s = store->Read([&](store::Conn& c) -> Status {
        ASSIGN_OR_RETURN(store::Rows rows, c.Query(sql, {tenant}));
        for (const auto& r : rows) {
          std::string line;
          for (size_t i = 0; i < r.size(); ++i) line += (r.IsNull(i) ? "NULL" : r.Text(i)) + "|";
          out.push_back(line);
        }
        return Status::Ok();
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
      return out;
    }
  };

  std::map<std::string, int> seen;  // what the random batches exercised
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    World plain(false), logged(true);
    std::vector<std::string> universe;
    for (int i = 0; i < 90; ++i) {
      universe.push_back(i % 3 == 0   ? "unionid:u" + std::to_string(i)
                         : i % 3 == 1 ? "openid:wxapp:o" + std::to_string(i)
                                      : "phone:+86138" + std::to_string(10000000 + i));
    }
    int next_event = 0;
    std::vector<std::pair<int64_t, int64_t>> answered;  // person ids of each accepted event
    for (int batch = 0; batch < 60; ++batch) {
      std::vector<json::value> events;
      const int n = 1 + static_cast<int>(rng() % 40);
      for (int k = 0; k < n; ++k) {
        std::string event_id = "e" + std::to_string(next_event++);
        const bool resend = next_event > 5 && rng() % 20 == 0;
        if (resend) event_id = "e" + std::to_string(rng() % next_event);  // sent before
        json::array ids;
        // Mostly people seen before (a few ids early in the universe), sometimes new ones,
        // sometimes ids of several people at once (merges, and hubs the guard holds back).
        const int m = 1 + static_cast<int>(rng() % (rng() % 4 == 0 ? 3 : 1));
        const size_t reach = std::min<size_t>(universe.size(), 10 + batch * 2);
        for (int j = 0; j < m; ++j) ids.emplace_back(universe[rng() % reach]);
        const int64_t ts = kT0 + static_cast<int64_t>(rng() % 100'000);
        switch (rng() % 6) {
          case 0:
            events.push_back(Ev(event_id, "follow", ids, ts, {}, rng() % 5 ? "cA" : "cB"));
            break;
          case 1:
            // (An unknown channel_state on a resent event: the store path answers duplicate, the
            // log path, which checks channels first, rejected. Both are right; not compared.)
            events.push_back(PageView(event_id, ids, ts, rng() % 8 || resend ? "cB" : "nope"));
            break;
          case 2:
            events.push_back(Ev(event_id, "custom:x", ids, ts, {{"n", k}}));
            break;
          default:
            events.push_back(PageView(event_id, ids, ts));
        }
      }
      auto a = plain.events->Ingest(plain.tenant, Batch(events));
      auto b = logged.events->Ingest(logged.tenant, Batch(events));
      ASSERT_TRUE(a.ok()) << a.status().ToString();
      ASSERT_TRUE(b.ok()) << b.status().ToString();
      ASSERT_EQ(a->results.size(), b->results.size());
      EXPECT_EQ(a->accepted, b->accepted);
      EXPECT_EQ(a->duplicates, b->duplicates);
      EXPECT_EQ(a->rejected, b->rejected);
      for (size_t i = 0; i < a->results.size(); ++i) {
        const EventResult &x = a->results[i], &y = b->results[i];
        SCOPED_TRACE("batch " + std::to_string(batch) + " item " + std::to_string(i));
        ASSERT_EQ(x.outcome, y.outcome);
        ++seen[std::string(EventOutcomeName(x.outcome))];
        if (x.outcome != EventOutcome::kAccepted) continue;
        EXPECT_EQ(x.link, y.link);
        EXPECT_EQ(x.channel_id, y.channel_id);
        ++seen[std::string(LinkStateName(x.link))];
        answered.emplace_back(x.person_id, y.person_id);
      }
    }
    // The answers name the same persons (the store path names the person as it was at the
    // event, the log path as it is after the batch: both are the same person now).
    for (const auto& [x, y] : answered) {
      EXPECT_EQ(plain.identity->CanonicalOf(plain.tenant, x),
                logged.identity->CanonicalOf(logged.tenant, y));
    }
    // Every event on the same person row, with the same content.
    auto stored = [](World& w) {
      std::map<std::string, std::string> out;
      Status s = w.events->ForEachStored(w.tenant, [&](const StoredEvent& e) {
        out[e.event_id] = std::to_string(e.person_id) + "|" + e.type + "|" + std::to_string(e.ts) +
                          "|" + (e.channel_id ? std::to_string(*e.channel_id) : "-") + "|" +
                          e.ids_json + "|" + e.properties;
        return Status::Ok();
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
      return out;
    };
    EXPECT_EQ(stored(plain), stored(logged));
    // The same people, ids and identity log.
    for (const char* sql :
         {"SELECT id, acquired_at, first_channel_id, last_channel_id, canonical_id FROM people "
          "WHERE tenant_id = ? ORDER BY id",
          "SELECT external_id, kind, person_id FROM person_ids WHERE tenant_id = ? ORDER BY "
          "external_id",
          "SELECT seq, kind, reason, id_a, id_b, person_a, person_b, target, hub_id, people, "
          "guard_reason FROM identity_log WHERE tenant_id = ? ORDER BY seq"}) {
      EXPECT_EQ(plain.Rows(sql), logged.Rows(sql)) << sql;
    }
    // The log's applier writes with SQLite's foreign keys unchecked (Store::WriteDeferredWork):
    // its references hold by construction, and the check finds no row that breaks one.
    Status fk = logged.store->Read([&](store::Conn& c) -> Status {
      ASSIGN_OR_RETURN(store::Rows r, c.Query("PRAGMA foreign_key_check"));
      EXPECT_EQ(r.size(), 0u) << "a row of " << (r.empty() ? "" : r[0].Text(0))
                              << " references a missing row";
      return Status::Ok();
    });
    EXPECT_TRUE(fk.ok()) << fk.ToString();
    Status va = plain.identity->Verify(), vb = logged.identity->Verify();
    EXPECT_TRUE(va.ok()) << va.ToString();
    EXPECT_TRUE(vb.ok()) << vb.ToString();
  }
  for (const char* what :
       {"accepted", "duplicate", "rejected", "linked", "merged", "quarantined"}) {
    EXPECT_GT(seen[what], 5) << what;
  }
}

// The event log's own behaviour: only a SQLite store with the log has it.
class EventLogTest : public EventsTest {};

TEST_P(EventLogTest, TheLogKeepsBehaviourOutOfTheTableAndIsRebuiltOnOpen) {
  IngestResult r = Ingest({PageView("v1", {"unionid:u", "openid:wxapp:o"}, kT0),
                           Ev("f1", "follow", {"unionid:u"}, kT0 + 10, {}, channel_a_.state),
                           PageView("v2", {"openid:wxapp:o"}, kT0 + 20)});
  ASSERT_EQ(r.accepted, 3);
  const int64_t p = r.results[0].person_id;
  EXPECT_EQ(r.results[2].person_id, p);
  // All three are records of the log; the event with a channel is also a touch, and none is a
  // row of `events`.
  EXPECT_EQ(Count("events"), 0);
  EXPECT_EQ(Count("touches"), 1);
  EventLogStats st = events_->LogStats();
  EXPECT_TRUE(st.enabled);
  EXPECT_EQ(st.records, 3u);
  EXPECT_EQ(st.dedup_ids, 3u);
  EXPECT_EQ(StoredCount(), 3);
  EXPECT_EQ(Column("last_channel_id", p), channel_a_.id);

  // A restart: a new service over the same store and log knows every event and timeline.
  events_ = std::make_unique<Events>(db(), identity());
  ASSERT_TRUE(events_->OpenLog((dir_ / "events").string()).ok());
  EXPECT_EQ(events_->LogStats().dedup_ids, 3u);
  IngestResult again = Ingest({PageView("v1", {"unionid:u"}, kT0),
                               Ev("f1", "follow", {"unionid:u"}, kT0 + 10, {}, channel_a_.state),
                               PageView("v3", {"unionid:u"}, kT0 + 30)});
  EXPECT_EQ(again.duplicates, 2);
  EXPECT_EQ(again.accepted, 1);
  std::vector<std::string> got;
  for (const auto& e : WholeTimeline(p, 2)) got.push_back(e.event_id);
  EXPECT_EQ(got, (std::vector<std::string>{"v3", "v2", "f1", "v1"}));
  EXPECT_EQ(StoredCount(), 4);
  EXPECT_EQ(Count("events"), 0);
  EXPECT_EQ(Count("touches"), 1);
  // Opening twice is refused (the log is locked by its owner).
  EXPECT_FALSE(events_->OpenLog((dir_ / "events").string()).ok());
}

// The log's timeline index keeps each row's entries in chunks of 1,024 shared by all rows: two
// people's events interleaved over 36 chunks come back whole and in order, before and after the
// index is rebuilt from the log.
TEST_P(EventLogTest, TimelinesSpanTheIndexsChunks) {
  constexpr int kEvents = 36000;
  std::vector<std::string> want_a, want_b;  // newest first
  for (int start = 0; start < kEvents; start += 1000) {
    std::vector<json::value> batch;
    for (int i = start; i < start + 1000; ++i) {
      // Mostly person a; every third event is b's; ts out of arrival order within a batch.
      const bool b = i % 3 == 0;
      const std::string id = (b ? "b-" : "a-") + std::to_string(i);
      batch.push_back(PageView(id, {b ? "unionid:b" : "unionid:a"}, kT0 + (i ^ 7) * 1000));
      (b ? want_b : want_a).push_back(id);
    }
    ASSERT_EQ(Ingest(std::move(batch)).accepted, 1000);
  }
  auto newest_first = [](std::vector<std::string>& ids) {
    auto ts_key = [](const std::string& id) { return std::stoi(id.substr(2)) ^ 7; };
    std::sort(ids.begin(), ids.end(),
              [&](const std::string& x, const std::string& y) { return ts_key(x) > ts_key(y); });
  };
  newest_first(want_a);
  newest_first(want_b);
  const int64_t a = PersonOf("unionid:a"), b = PersonOf("unionid:b");
  auto ids_of = [&](int64_t person) {
    std::vector<std::string> got;
    for (const auto& e : WholeTimeline(person, 500)) got.push_back(e.event_id);
    return got;
  };
  EXPECT_EQ(ids_of(a), want_a);
  EXPECT_EQ(ids_of(b), want_b);
  events_ = std::make_unique<Events>(db(), identity());
  ASSERT_TRUE(events_->OpenLog((dir_ / "events").string()).ok());
  EXPECT_EQ(events_->LogStats().timeline_rows, 2u);
  EXPECT_EQ(ids_of(a), want_a);
  EXPECT_EQ(ids_of(b), want_b);
}

// The audience engine follows channel touches (the store's last-touch rule) without making ingest
// wait for the store: an answer from the engine reads them back first, and ingest itself leaves
// the applier to write when it would.
TEST_P(EventLogTest, TheAudienceReadsChannelTouchesBackWithoutHurryingTheStore) {
  Audience audience(db(), identity(), *events_);
  events_->SetObserver([&](int64_t tenant, const std::vector<EventItem>& items,
                           const IngestResult& r) { audience.OnEvents(tenant, items, r); });
  ASSERT_TRUE(audience.LoadAll().ok());
  auto count = [&](int64_t channel) {
    auto n = audience.Count(tenant_, "last_channel(" + std::to_string(channel) + ")", std::nullopt);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? n->people : uint64_t{999};
  };
  IngestResult r = Ingest({Ev("f1", "follow", {"unionid:u"}, kT0, {}, channel_a_.state)});
  ASSERT_EQ(r.accepted, 1);
  EXPECT_EQ(count(channel_a_.id), 1u);
  // A later touch through another channel moves the person's last channel.
  r = Ingest({Ev("f2", "follow", {"unionid:u"}, kT0 + 10, {}, channel_b_.state)});
  ASSERT_EQ(r.accepted, 1);
  EXPECT_FALSE(events_->StoreHas(events_->OwedTicket()))
      << "ingest made the event log's applier write at once";
  EXPECT_EQ(count(channel_b_.id), 1u);
  EXPECT_EQ(count(channel_a_.id), 0u);
  EXPECT_EQ(Column("last_channel_id", r.results[0].person_id), channel_b_.id);
  events_->SetObserver(nullptr);
  audience.Stop();
}

// New people, their ids and the rows of events with a channel are acknowledged with the log and
// written to the store afterwards; a crash before that loses none of them: the next OpenLog
// replays the records after the store's mark.
TEST_P(EventLogTest, WorkOwedToTheStoreIsReplayedAfterACrash) {
  events_->PauseApplierForTest(true);
  IngestResult r = Ingest({PageView("v1", {"unionid:u1", "openid:wxapp:o1"}, kT0),
                           Ev("f1", "follow", {"unionid:u2"}, kT0 + 10, {}, channel_a_.state),
                           PageView("v2", {"openid:wxapp:o1", "phone:+8613800000001"}, kT0 + 20),
                           Ev("f2", "follow", {"unionid:u1"}, kT0 + 30, {}, channel_b_.state)});
  ASSERT_EQ(r.accepted, 4);
  const int64_t p1 = r.results[0].person_id, p2 = r.results[1].person_id;
  EXPECT_NE(p1, p2);
  EXPECT_EQ(r.results[2].person_id, p1);
  EXPECT_EQ(r.results[3].person_id, p1);
  // Acknowledged, and not in the store yet.
  EXPECT_EQ(Count("people"), 0);
  EXPECT_EQ(Count("person_ids"), 0);
  EXPECT_EQ(Count("events"), 0);

  // The process dies with that work owed: a new identity graph (from the store) and service.
  events_.reset();
  identity_ = std::make_unique<Identity>(db());
  events_ = std::make_unique<Events>(db(), identity());
  ASSERT_TRUE(events_->OpenLog((dir_ / "events").string()).ok());
  EXPECT_EQ(Count("people"), 2);
  EXPECT_EQ(PersonOf("unionid:u1"), p1);
  EXPECT_EQ(PersonOf("openid:wxapp:o1"), p1);
  EXPECT_EQ(PersonOf("phone:+8613800000001"), p1);
  EXPECT_EQ(PersonOf("unionid:u2"), p2);
  EXPECT_EQ(Column("acquired_at", p1), kT0);
  EXPECT_EQ(Column("first_channel_id", p2), channel_a_.id);
  EXPECT_EQ(Column("last_channel_id", p1), channel_b_.id);
  EXPECT_EQ(Count("touches"), 2);
  EXPECT_EQ(Count("events"), 0);
  EXPECT_EQ(StoredCount(), 4);
  Status v = identity().Verify();
  EXPECT_TRUE(v.ok()) << v.ToString();

  // Ingest goes on from there: known ids find their people, new people are numbered after them.
  IngestResult again = Ingest({PageView("v3", {"phone:+8613800000001"}, kT0 + 40),
                               PageView("v4", {"unionid:u3"}, kT0 + 50)});
  ASSERT_EQ(again.accepted, 2);
  EXPECT_EQ(again.results[0].person_id, p1);
  EXPECT_GT(again.results[1].person_id, std::max(p1, p2));
  EXPECT_EQ(PersonOf("unionid:u3"), again.results[1].person_id);
  // A second restart replays nothing more: the store's mark passed the records.
  events_.reset();
  identity_ = std::make_unique<Identity>(db());
  events_ = std::make_unique<Events>(db(), identity());
  ASSERT_TRUE(events_->OpenLog((dir_ / "events").string()).ok());
  EXPECT_EQ(Count("people"), 3);
  EXPECT_EQ(Count("person_ids"), 5);
  EXPECT_EQ(QueryInt("SELECT seq FROM event_log_applied WHERE id = 1"), 6);
}

// Ids are found by their text in the identity graph, not the store: an order given by an id that
// an event brought a moment ago goes to that event's person, also an id added by a later event,
// and to the
// right tenant (another has the same id); an id nobody has is refused as before.
TEST_P(EventsTest, AnOrderByExternalIdFindsThePersonAnEventBrought) {
  IngestResult r = Ingest({PageView("o1", {"unionid:buyer", "openid:wxapp:b1"}, kT0),
                           PageView("o2", {"unionid:other"}, kT0 + 1),
                           PageView("o3", {"unionid:other", "phone:+8613800000009"}, kT0 + 2)});
  ASSERT_EQ(r.accepted, 3);
  ASSERT_EQ(Ingest({PageView("t1", {"unionid:buyer"}, kT0)}, other_).accepted, 1);
  Orders orders(db(), identity());
  auto order = [&](const std::string& no, const std::string& id) {
    NewOrder o;
    o.order_no = no;
    o.external_id = id;
    o.lines = {OrderLine{"SKU-1", 1, 990, 0, std::nullopt}};
    o.total_fen = 990;
    return orders.Create(tenant_, std::move(o));
  };
  auto a = order("SO-1", "openid:wxapp:b1");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->first.person_id, r.results[0].person_id);
  auto b = order("SO-2", "phone:+8613800000009");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(identity().CanonicalOf(tenant_, b->first.person_id), r.results[2].person_id);
  auto c = order("SO-4", "unionid:buyer");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->first.person_id, r.results[0].person_id);
  auto none = order("SO-3", "unionid:nobody");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), ErrorCode::kUnknownPerson);
  EXPECT_EQ(none.status().field(), "external_id");
}

TEST_P(EventLogTest, IngestWaitsWhileTheStoreIsOwedMoreThanItsLimit) {
  events_->SetMaxOwedRows(1);
  // A first batch loads the tenant's identity graph; a read waits until its work is in the store.
  ASSERT_EQ(Ingest({PageView("b0", {"unionid:w0"}, kT0 - 10)}).accepted, 1);
  ASSERT_EQ(Count("people"), 1);
  // A write holds the store's writer, so that the applier cannot write what is owed.
  std::promise<void> holding, release;
  std::shared_future<void> released = release.get_future().share();
  std::thread writer([&] {
    (void)db().Write([&](store::Conn&) {
      holding.set_value();
      released.wait();
      return Status::Ok();
    });
  });
  holding.get_future().wait();
  // The first batch finds nothing owed; it owes a person and an id.
  IngestResult first = Ingest({PageView("b1", {"unionid:w1"}, kT0)});
  ASSERT_EQ(first.accepted, 1);
  // The next waits for the applier instead of adding to its backlog...
  auto second = std::async(std::launch::async,
                           [&] { return Ingest({PageView("b2", {"unionid:w2"}, kT0 + 10)}); });
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  // ...and goes on once the store has caught up.
  release.set_value();
  writer.join();
  IngestResult r = second.get();
  ASSERT_EQ(r.accepted, 1);
  EXPECT_EQ(PersonOf("unionid:w1"), first.results[0].person_id);
  EXPECT_EQ(PersonOf("unionid:w2"), r.results[0].person_id);
  EXPECT_EQ(StoredCount(), 3);
}

INSTANTIATE_TEST_SUITE_P(Backends, EventLogTest, ::testing::Values("sqlitelog"),
                         testing::BackendName);
INSTANTIATE_TEST_SUITE_P(Backends, EventsTest, ::testing::Values("sqlite", "sqlitelog", "postgres"),
                         testing::BackendName);

}  // namespace
}  // namespace siyu::domain
