// Events over HTTP: batches with per-item outcomes, idempotent resends, the bad-input catalogue of
// an event, person resolution, timelines, the catalogue, roles, and SIGKILL during ingestion.
#include <atomic>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;
using namespace std::chrono_literals;

const int64_t kDay = 86'400'000;

value Event(const std::string& id, const std::string& type, json::array ids, int64_t ts,
            json::object props = {}, std::optional<std::string> state = std::nullopt,
            const std::string& touchpoint = "mini_program") {
  json::object o{{"event_id", id},           {"type", type},
                 {"ids", std::move(ids)},    {"ts", ts},
                 {"touchpoint", touchpoint}, {"properties", std::move(props)}};
  if (state) o["channel_state"] = *state;
  return o;
}

value View(const std::string& id, json::array ids, int64_t ts,
           std::optional<std::string> state = std::nullopt) {
  return Event(id, "product_view", std::move(ids), ts, {{"sku", "SKU-1"}}, std::move(state));
}

value Batch(std::vector<value> events) {
  return value{{"events", json::array(events.begin(), events.end())}};
}

// Every event of a person's timeline, checking the paging contract on the way.
std::vector<value> WholeTimeline(Api& api, int64_t person, int limit) {
  std::vector<value> out;
  std::optional<std::string> before;
  std::set<std::string> cursors;
  for (int page = 0; page < 100000; ++page) {
    std::string target =
        "/v1/people/" + std::to_string(person) + "/timeline?limit=" + std::to_string(limit);
    if (before) target += "&before=" + *before;
    Reply r = api.Get(target);
    if (r.status != 200) {
      ADD_FAILURE() << "GET " << target << ": " << r.Describe();
      break;
    }
    const auto& items = r.At("/items").as_array();
    EXPECT_LE(items.size(), static_cast<size_t>(limit)) << target;
    out.insert(out.end(), items.begin(), items.end());
    const value& next = r.At("/next_before");
    if (next.is_null()) break;
    EXPECT_EQ(items.size(), static_cast<size_t>(limit)) << "a short page that is not last";
    if (!next.is_string() || !cursors.insert(std::string(next.as_string())).second) {
      ADD_FAILURE() << "bad or repeated next_before at " << target << ": " << r.body;
      break;
    }
    before = std::string(next.as_string());
  }
  return out;
}

std::vector<std::string> EventIds(const std::vector<value>& events) {
  std::vector<std::string> ids;
  for (const auto& e : events) ids.emplace_back(e.at("event_id").as_string());
  return ids;
}

class EventsTest : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (HasFatalFailure()) return;
    Api admin = AdminApi();
    Reply ch = admin.Post(
        "/v1/channels",
        value{{"name", "海报扫码"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}});
    ASSERT_TRUE(HasStatus(ch, 201));
    channel_id_ = ch.Int("/id");
    state_ = ch.Str("/state");
  }

  int64_t PersonId(Api& api, const std::string& external_id) {
    Reply r = api.Get("/v1/people?external_id=" + external_id);
    return r.status == 200 ? r.Int("/id") : 0;
  }

  int64_t channel_id_ = 0;
  std::string state_;
  const int64_t t0_ = NowMs() - 7 * kDay;
};

TEST_P(EventsTest, BatchAnswersPerItemAndResendingIsIdempotent) {
  Api api = AdminApi();
  value batch = Batch({
      View("ev-1", {"openid:wxapp:o1", "unionid:u1"}, t0_, state_),
      View("ev-1", {"unionid:u1"}, t0_ + 1),
      View("ev-3", {"unionid:u3"}, NowMs() + kDay),
      View("ev-4", {"unionid:u4"}, t0_, std::string("noSuchState")),
      Event("ev-5", "add_to_cart", {"openid:wxapp:o1"}, t0_ + 5, {{"sku", "S"}, {"quantity", 2}}),
      Event("ev-6", "custom:lucky_draw", {"phone:13800138000"}, t0_ + 6, {{"prize", "cup"}}),
  });
  Reply r = api.Post("/v1/events", batch);
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Int("/accepted"), 3);
  EXPECT_EQ(r.Int("/duplicates"), 1);
  EXPECT_EQ(r.Int("/rejected"), 2);
  ASSERT_EQ(r.At("/results").as_array().size(), 6u);
  EXPECT_EQ(r.Str("/results/0/status"), "accepted");
  EXPECT_EQ(r.Str("/results/0/event_id"), "ev-1");
  EXPECT_EQ(r.Str("/results/1/status"), "duplicate");
  EXPECT_EQ(r.Str("/results/1/event_id"), "ev-1");
  EXPECT_EQ(r.Str("/results/2/status"), "rejected");
  EXPECT_EQ(r.Str("/results/2/code"), "INVALID_FIELD");
  EXPECT_EQ(r.Str("/results/2/field"), "events[2].ts");
  EXPECT_FALSE(r.Str("/results/2/message").empty());
  EXPECT_EQ(r.Str("/results/3/code"), "UNKNOWN_CHANNEL_STATE");
  EXPECT_EQ(r.Str("/results/3/field"), "events[3].channel_state");
  EXPECT_EQ(r.Str("/results/4/status"), "accepted");
  EXPECT_EQ(r.Str("/results/5/status"), "accepted");
  const int64_t p1 = r.Int("/results/0/person_id");
  EXPECT_EQ(r.Int("/results/4/person_id"), p1);
  EXPECT_NE(r.Int("/results/5/person_id"), p1);
  for (size_t i : {0u, 4u, 5u}) {
    EXPECT_FALSE(r.At("/results/" + std::to_string(i)).as_object().contains("code"));
    EXPECT_FALSE(r.At("/results/" + std::to_string(i)).as_object().contains("link"));
  }

  // The person made by ev-1: both ids, the channel of its channel_state, acquired at its ts.
  Reply person = api.Get("/v1/people/" + std::to_string(p1));
  ASSERT_TRUE(HasStatus(person, 200));
  EXPECT_EQ(person.Int("/first_channel_id"), channel_id_);
  EXPECT_EQ(person.Int("/acquired_at"), t0_);
  std::set<std::string> ext;
  for (const auto& e : person.At("/external_ids").as_array()) ext.emplace(e.as_string());
  EXPECT_EQ(ext, (std::set<std::string>{"openid:wxapp:o1", "unionid:u1"}));
  EXPECT_EQ(PersonId(api, "unionid:u4"), 0) << "a refused event created a person";
  EXPECT_EQ(PersonId(api, "unionid:u3"), 0) << "a refused event created a person";
  const size_t people = AllPages(api, "/v1/people", 100).size();
  EXPECT_EQ(people, 2u);

  auto timeline = WholeTimeline(api, p1, 10);
  EXPECT_EQ(EventIds(timeline), (std::vector<std::string>{"ev-5", "ev-1"}));
  const value& stored = timeline.at(1);
  EXPECT_EQ(stored.at("type"), "product_view");
  EXPECT_EQ(stored.at("ts"), t0_);
  EXPECT_EQ(stored.at("channel_id"), channel_id_);
  EXPECT_EQ(stored.at("touchpoint"), "mini_program");
  EXPECT_EQ(stored.at("ids"), (json::array{"openid:wxapp:o1", "unionid:u1"}));
  EXPECT_EQ(stored.at("properties"), (value{{"sku", "SKU-1"}}));

  // The whole batch again: everything once stored is a duplicate, nothing is stored twice.
  Reply again = api.Post("/v1/events", batch);
  ASSERT_TRUE(HasStatus(again, 200));
  EXPECT_EQ(again.Int("/accepted"), 0);
  EXPECT_EQ(again.Int("/duplicates"), 4);
  EXPECT_EQ(again.Int("/rejected"), 2);
  for (int i : {0, 1, 4, 5})
    EXPECT_EQ(again.Str("/results/" + std::to_string(i) + "/status"), "duplicate");
  EXPECT_EQ(EventIds(WholeTimeline(api, p1, 10)), (std::vector<std::string>{"ev-5", "ev-1"}));
  EXPECT_EQ(AllPages(api, "/v1/people", 100).size(), people);
}

// Batches of every size on one keep-alive connection, small after large and with "Expect:
// 100-continue": each body arrives whole however the reads split it (a connection's read buffer
// grows for a large body and keeps that room).
TEST_P(EventsTest, BatchesOfEverySizeArriveWholeOnOneConnection) {
  Api api = AdminApi();
  const int64_t now = NowMs();
  int n = 0;
  for (int size : {1, 400, 3, 1000, 150, 1}) {
    std::vector<value> events;
    for (int i = 0; i < size; ++i, ++n) {
      events.push_back(
          View("sz-" + std::to_string(n), {"unionid:sz" + std::to_string(n % 97)}, now - n));
    }
    std::string body = json::serialize(Batch(std::move(events)));
    if (size == 150) {
      // Raw: the interim "100 Continue", then the answer.
      std::string raw = RawExchange(
          port(),
          "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + boot_.api_key +
              "\r\nContent-Type: application/json\r\nExpect: "
              "100-continue\r\nConnection: close\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body,
          false, 10s);
      ASSERT_TRUE(raw.starts_with("HTTP/1.1 100 Continue\r\n\r\n")) << raw.substr(0, 200);
      std::string rest = raw.substr(raw.find("\r\n\r\n") + 4);
      EXPECT_EQ(RawStatus(rest), 200) << rest.substr(0, 300);
      json::value v = json::parse(rest.substr(rest.find("\r\n\r\n") + 4));
      EXPECT_EQ(v.at("accepted").as_int64(), size);
      continue;
    }
    Reply r = api.Post("/v1/events", body);
    ASSERT_TRUE(HasStatus(r, 200)) << "a batch of " << size;
    EXPECT_EQ(r.Int("/accepted"), size) << "a batch of " << size;
    EXPECT_EQ(r.At("/results").as_array().size(), static_cast<size_t>(size));
  }
  EXPECT_EQ(api.Get("/v1/identity/resolve?id=unionid:sz5").status, 200);
}

TEST_P(EventsTest, ResolutionAttachesIdsMergesPeopleAndUnmergeSplitsThem) {
  Api api = AdminApi();
  Reply r = api.Post("/v1/events",
                     Batch({View("a", {"unionid:alice"}, t0_), View("b", {"unionid:bob"}, t0_)}));
  ASSERT_TRUE(HasStatus(r, 200));
  const int64_t alice = r.Int("/results/0/person_id"), bob = r.Int("/results/1/person_id");
  ASSERT_LT(alice, bob);
  r = api.Post("/v1/events",
               Batch({View("c", {"phone:138 0013 8000", "unionid:alice"}, t0_ + 1),
                      View("d", {"unionid:bob", "unionid:alice", "openid:wxapp:ob"}, t0_ + 2)}));
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Int("/results/0/person_id"), alice);
  EXPECT_FALSE(r.At("/results/0").as_object().contains("link"));
  // The event says bob and alice are one person: merged into the older row.
  EXPECT_EQ(r.Int("/results/1/person_id"), alice);
  EXPECT_EQ(r.Str("/results/1/link"), "merged");
  EXPECT_EQ(PersonId(api, "phone:%2B8613800138000"), alice);
  EXPECT_EQ(PersonId(api, "openid:wxapp:ob"), alice);
  auto people = AllPages(api, "/v1/people", 100);
  ASSERT_EQ(people.size(), 1u);
  EXPECT_EQ(people[0].at("merged_from").as_array().size(), 1u);
  EXPECT_EQ(people[0].at("external_ids").as_array().size(), 4u);
  EXPECT_EQ(WholeTimeline(api, bob, 10).size(), 4u) << "bob's row shows the merged timeline";

  Reply who = api.Get("/v1/people/" + std::to_string(bob) + "/identity");
  ASSERT_TRUE(HasStatus(who, 200));
  EXPECT_EQ(who.Int("/person_id"), alice);
  ASSERT_EQ(who.At("/history").as_array().size(), 1u) << who.body;
  EXPECT_EQ(who.Str("/history/0/kind"), "merge");
  EXPECT_EQ(who.Str("/history/0/reason"), "event product_view d");
  const int64_t merge_id = who.Int("/history/0/seq");
  Reply resolved = api.Get("/v1/identity/resolve?id=openid:wxapp:ob");
  ASSERT_TRUE(HasStatus(resolved, 200));
  EXPECT_EQ(resolved.Int("/person_id"), alice);
  EXPECT_EQ(resolved.Int("/person_row"), bob) << "ids stay with the row they came with";

  // Unmerge: exactly the two people again, each with its own ids and events.
  Reply split = api.Post("/v1/identity/merges/" + std::to_string(merge_id) + "/unmerge",
                         value{{"reason", "两个人"}});
  ASSERT_TRUE(HasStatus(split, 200)) << split.body;
  EXPECT_EQ(PersonId(api, "openid:wxapp:ob"), bob);
  EXPECT_EQ(PersonId(api, "unionid:alice"), alice);
  EXPECT_EQ(AllPages(api, "/v1/people", 100).size(), 2u);
  EXPECT_EQ(WholeTimeline(api, bob, 10).size(), 2u);
  EXPECT_TRUE(IsError(api.Post("/v1/identity/merges/" + std::to_string(merge_id) + "/unmerge",
                               value{{"reason", "again"}}),
                      409, "ALREADY_DECIDED", "merge_id"));
  Reply verify = api.Post("/v1/identity/verify", value(json::object{}));
  ASSERT_TRUE(HasStatus(verify, 200));
  EXPECT_TRUE(verify.At("/ok").as_bool()) << verify.body;

  // A follow through the channel moves the last channel; a page view does not.
  Reply ch2 = api.Post("/v1/channels", value{{"name", "公众号菜单"},
                                             {"source_pool", "wechat_public"},
                                             {"touchpoint", "official_account"}});
  ASSERT_TRUE(HasStatus(ch2, 201));
  ASSERT_TRUE(
      HasStatus(api.Post("/v1/events", Batch({Event("f", "follow", {"unionid:alice"}, t0_ + 10, {},
                                                    ch2.Str("/state"), "official_account"),
                                              Event("g", "page_view", {"unionid:alice"}, t0_ + 20,
                                                    {{"path", "/"}}, state_)})),
                200));
  // Alice came without a channel: the follow is her first touch as well as her last.
  Reply person = api.Get("/v1/people/" + std::to_string(alice));
  EXPECT_EQ(person.Int("/first_channel_id"), ch2.Int("/id"));
  EXPECT_EQ(person.Int("/last_channel_id"), ch2.Int("/id"));
}

struct BadEvent {
  std::string name;
  std::string element;  // one element of `events`, as raw JSON
  std::string code;
  std::string field;
};

TEST_P(EventsTest, BadInputIsRefusedWithItsCodeAndChangesNothing) {
  Api api = AdminApi();
  Reply base = api.Post("/v1/events", Batch({View("base", {"unionid:base"}, t0_)}));
  ASSERT_TRUE(HasStatus(base, 200));
  const int64_t base_person = base.Int("/results/0/person_id");
  auto snapshot = [&] {
    std::string s;
    for (const auto& p : AllPages(api, "/v1/people", 500)) s += json::serialize(p) + "\n";
    for (const auto& e : WholeTimeline(api, base_person, 500)) s += json::serialize(e) + "\n";
    return s;
  };
  const std::string before = snapshot();

  const std::string ts = std::to_string(t0_);
  const std::string future = std::to_string(NowMs() + 10 * 60 * 1000);
  auto el = [&](const std::string& id, const std::string& rest) {
    return R"({"event_id":")" + id + R"(",)" + rest + "}";
  };
  const std::string ok_ids = R"("ids":["unionid:bad-person"],)";
  const std::string ok_view =
      R"("type":"product_view","ts":)" + ts + R"(,"touchpoint":"wecom","properties":{"sku":"S"})";
  const std::vector<BadEvent> cases = {
      {"invalid openid", el("b1", R"("ids":["openid:wxapp"],)" + ok_view), "INVALID_FIELD",
       "events[0].ids[0]"},
      {"invalid phone", el("b2", R"("ids":["unionid:ok","phone:12345"],)" + ok_view),
       "INVALID_FIELD", "events[0].ids[1]"},
      {"unknown id kind", el("b3", R"("ids":["wechat:abc"],)" + ok_view), "INVALID_FIELD",
       "events[0].ids[0]"},
      {"id not a string", el("b4", R"("ids":[12345],)" + ok_view), "INVALID_FIELD",
       "events[0].ids[0]"},
      {"no ids", el("b5", ok_view), "MISSING_FIELD", "events[0].ids"},
      {"empty ids", el("b6", R"("ids":[],)" + ok_view), "INVALID_FIELD", "events[0].ids"},
      {"too many ids",
       el("b7", R"("ids":["unionid:1","unionid:2","unionid:3","unionid:4","unionid:5",)"
                R"("unionid:6","unionid:7","unionid:8","unionid:9","unionid:10","unionid:11"],)" +
                    ok_view),
       "INVALID_FIELD", "events[0].ids"},
      {"ts far in the future",
       el("b8", ok_ids + R"("type":"product_view","ts":)" + future +
                    R"(,"touchpoint":"wecom","properties":{"sku":"S"})"),
       "INVALID_FIELD", "events[0].ts"},
      {"ts before 2000",
       el("b9", ok_ids + R"("type":"product_view","ts":900000000000,"touchpoint":"wecom",)" +
                    R"("properties":{"sku":"S"})"),
       "INVALID_FIELD", "events[0].ts"},
      {"ts as a string",
       el("b10", ok_ids + R"("type":"product_view","ts":")" + ts +
                     R"(","touchpoint":"wecom","properties":{"sku":"S"})"),
       "INVALID_FIELD", "events[0].ts"},
      {"wrong property type",
       el("b11", ok_ids + R"("type":"add_to_cart","ts":)" + ts +
                     R"(,"touchpoint":"wecom","properties":{"sku":"S","quantity":"2"})"),
       "INVALID_FIELD", "events[0].properties.quantity"},
      {"money as a float",
       el("b12", ok_ids + R"("type":"order_paid","ts":)" + ts +
                     R"(,"touchpoint":"wecom","properties":{"order_no":"SO1","amount_fen":19.9})"),
       "INVALID_FIELD", "events[0].properties.amount_fen"},
      {"missing required property",
       el("b13", ok_ids + R"("type":"live_watch","ts":)" + ts +
                     R"(,"touchpoint":"wecom","properties":{"live_id":"L1"})"),
       "MISSING_FIELD", "events[0].properties.seconds"},
      {"unknown type",
       el("b14", ok_ids + R"("type":"view_product","ts":)" + ts + R"(,"touchpoint":"wecom")"),
       "INVALID_FIELD", "events[0].type"},
      {"malformed custom type",
       el("b15", ok_ids + R"("type":"custom:a b","ts":)" + ts + R"(,"touchpoint":"wecom")"),
       "INVALID_FIELD", "events[0].type"},
      {"unknown touchpoint",
       el("b16", ok_ids + R"("type":"follow","ts":)" + ts + R"(,"touchpoint":"tiktok")"),
       "INVALID_FIELD", "events[0].touchpoint"},
      {"properties not an object",
       el("b17",
          ok_ids + R"("type":"follow","ts":)" + ts + R"(,"touchpoint":"wecom","properties":"{}")"),
       "INVALID_FIELD", "events[0].properties"},
      {"properties over 8 KiB",
       el("b18", ok_ids + R"("type":"custom:big","ts":)" + ts +
                     R"(,"touchpoint":"wecom","properties":{"blob":")" + std::string(8200, 'x') +
                     R"("})"),
       "INVALID_FIELD", "events[0].properties"},
      {"unknown field",
       el("b19",
          ok_ids + R"("person_id":1,"type":"follow","ts":)" + ts + R"(,"touchpoint":"wecom")"),
       "UNKNOWN_FIELD", "events[0].person_id"},
      {"unknown channel_state",
       el("b20", ok_ids + R"("channel_state":"nope","type":"follow","ts":)" + ts +
                     R"(,"touchpoint":"wecom")"),
       "UNKNOWN_CHANNEL_STATE", "events[0].channel_state"},
      {"bad event_id", el("b 21", ok_ids + ok_view), "INVALID_FIELD", "events[0].event_id"},
      {"no event_id", "{" + ok_ids + ok_view + "}", "MISSING_FIELD", "events[0].event_id"},
      {"not an object", R"("b23")", "INVALID_FIELD", "events[0]"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Reply r = api.Post("/v1/events", R"({"events":[)" + c.element + "]}");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/accepted"), 0);
    EXPECT_EQ(r.Int("/rejected"), 1);
    EXPECT_EQ(r.Str("/results/0/status"), "rejected");
    EXPECT_EQ(r.Str("/results/0/code"), c.code) << r.body;
    EXPECT_EQ(r.Str("/results/0/field"), c.field) << r.body;
    EXPECT_FALSE(r.Str("/results/0/message").empty());
  }
  // Bad envelopes fail the whole request.
  std::string too_many = R"({"events":[)";
  for (int i = 0; i < 1001; ++i) {
    too_many +=
        (i ? "," : "") + el("many-" + std::to_string(i), R"("ids":["unionid:base"],)" + ok_view);
  }
  too_many += "]}";
  const std::vector<std::tuple<std::string, std::string, std::string, std::string>> envelopes = {
      {"not JSON", R"({"events":[)", "MALFORMED_JSON", ""},
      {"an array", "[]", "MALFORMED_JSON", ""},
      {"no events", "{}", "MISSING_FIELD", "events"},
      {"events not an array", R"({"events":{}})", "INVALID_FIELD", "events"},
      {"empty batch", R"({"events":[]})", "INVALID_FIELD", "events"},
      {"1,001 events", too_many, "INVALID_FIELD", "events"},
      {"unknown field",
       R"({"events":[)" + el("env-1", R"("ids":["unionid:base"],)" + ok_view) +
           R"(],"tenant_id":2})",
       "UNKNOWN_FIELD", "tenant_id"},
  };
  for (const auto& [name, body, code, field] : envelopes) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(IsError(api.Post("/v1/events", body), 400, code, field));
  }
  EXPECT_TRUE(IsError(api.Send("POST", "/v1/events", R"({"events":[]})", "text/plain"), 415,
                      "UNSUPPORTED_MEDIA_TYPE"));
  EXPECT_TRUE(IsError(api.Post("/v1/events?dry_run=1", Batch({View("q", {"unionid:q"}, t0_)})), 400,
                      "INVALID_QUERY", "dry_run"));
  EXPECT_EQ(snapshot(), before) << "a refused event or batch changed the data";

  // A bad element next to a good one: the good one is stored, at its own index.
  Reply mixed =
      api.Post("/v1/events", R"({"events":[)" + cases[0].element + "," +
                                 el("good-1", R"("ids":["unionid:base"],)" + ok_view) + "]}");
  ASSERT_TRUE(HasStatus(mixed, 200));
  EXPECT_EQ(mixed.Str("/results/0/status"), "rejected");
  EXPECT_EQ(mixed.Str("/results/1/status"), "accepted");
  EXPECT_EQ(mixed.Str("/results/1/event_id"), "good-1");
  EXPECT_EQ(mixed.Int("/results/1/person_id"), base_person);
  EXPECT_EQ(EventIds(WholeTimeline(api, base_person, 500)),
            (std::vector<std::string>{"good-1", "base"}));

  // The refused events' event_ids were never taken: valid events under them are accepted.
  std::vector<value> retry;
  for (int i = 1; i <= 20; ++i) {
    retry.push_back(View("b" + std::to_string(i), {"unionid:base"}, t0_));
  }
  retry.push_back(View("env-1", {"unionid:base"}, t0_));
  retry.push_back(View("many-0", {"unionid:base"}, t0_));
  Reply r = api.Post("/v1/events", Batch(retry));
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Int("/accepted"), 22) << "a refused event's event_id was stored: " << r.body;
  EXPECT_EQ(AllPages(api, "/v1/people", 500).size(), 1u) << "a refused event created a person";
}

TEST_P(EventsTest, TimelineIsByTsNewestFirstAndPages) {
  Api api = AdminApi();
  // Three batches, out of order, one event late by a month, several sharing a ts.
  ASSERT_TRUE(HasStatus(api.Post("/v1/events", Batch({View("m3", {"unionid:tl"}, t0_ + 3000),
                                                      View("m1", {"unionid:tl"}, t0_ + 1000),
                                                      View("m2-b", {"unionid:tl"}, t0_ + 2000)})),
                        200));
  ASSERT_TRUE(HasStatus(api.Post("/v1/events", Batch({View("m2-a", {"unionid:tl"}, t0_ + 2000),
                                                      View("x", {"unionid:other"}, t0_ + 2500),
                                                      View("m5", {"unionid:tl"}, t0_ + 5000)})),
                        200));
  ASSERT_TRUE(HasStatus(api.Post("/v1/events", Batch({View("late", {"unionid:tl"}, t0_ - 30 * kDay),
                                                      View("m2-c", {"unionid:tl"}, t0_ + 2000),
                                                      View("m4", {"unionid:tl"}, t0_ + 4000)})),
                        200));
  const int64_t p = PersonId(api, "unionid:tl");
  ASSERT_GT(p, 0);
  const std::vector<std::string> want = {"m5", "m4", "m3", "m2-c", "m2-b", "m2-a", "m1", "late"};
  for (int limit : {1, 2, 3, 8, 500}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    EXPECT_EQ(EventIds(WholeTimeline(api, p, limit)), want);
  }
  Reply first = api.Get("/v1/people/" + std::to_string(p) + "/timeline");
  ASSERT_TRUE(HasStatus(first, 200));
  EXPECT_EQ(first.At("/items").as_array().size(), want.size()) << "default limit 50";
  EXPECT_TRUE(first.At("/next_before").is_null());

  const std::string base = "/v1/people/" + std::to_string(p) + "/timeline";
  EXPECT_TRUE(IsError(api.Get(base + "?limit=0"), 400, "INVALID_QUERY", "limit"));
  EXPECT_TRUE(IsError(api.Get(base + "?limit=501"), 400, "INVALID_QUERY", "limit"));
  EXPECT_TRUE(IsError(api.Get(base + "?before=nonsense!"), 400, "INVALID_QUERY", "before"));
  EXPECT_TRUE(IsError(api.Get(base + "?after=1"), 400, "INVALID_QUERY", "after"));
  EXPECT_TRUE(IsError(api.Get("/v1/people/999999/timeline"), 404, "NOT_FOUND"));
  EXPECT_TRUE(IsError(api.Get("/v1/people/abc/timeline"), 404, "NOT_FOUND"));
}

TEST_P(EventsTest, CatalogueDescribesTheStandardTypes) {
  Api api = AdminApi();
  Reply ingest_key = api.Post("/v1/api-keys", value{{"name", "sdk"}, {"role", "ingest"}});
  ASSERT_TRUE(HasStatus(ingest_key, 201));
  Api sdk(port(), ingest_key.Str("/key"));
  Reply r = sdk.Get("/v1/events/catalogue");
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.body, api.Get("/v1/events/catalogue").body);
  std::map<std::string, json::object> types;
  for (const auto& t : r.At("/types").as_array()) {
    types[std::string(t.at("name").as_string())] = t.as_object();
  }
  EXPECT_EQ(types.size(), 19u);
  for (const char* name :
       {"page_view", "product_view", "add_to_cart", "order_paid", "order_refunded", "share",
        "invite_accepted", "contact_added", "contact_removed", "group_joined", "group_left",
        "message_read", "qr_scanned", "follow", "unfollow", "member_bound", "coupon_received",
        "coupon_used", "live_watch"}) {
    EXPECT_TRUE(types.count(name)) << name;
  }
  const auto& cart = types["add_to_cart"];
  ASSERT_EQ(cart.at("properties").as_array().size(), 3u);
  EXPECT_EQ(cart.at("properties").as_array()[1], (value{{"name", "quantity"},
                                                        {"type", "integer"},
                                                        {"required", true},
                                                        {"minimum", 1},
                                                        {"maximum", 100000},
                                                        {"description", "how many were added"}}));
  EXPECT_EQ(types["follow"].at("moves_last_channel"), true);
  EXPECT_EQ(types["page_view"].at("moves_last_channel"), false);
  EXPECT_EQ(r.Str("/custom/prefix"), "custom:");
  EXPECT_EQ(r.Int("/limits/events_per_batch"), 1000);
  EXPECT_EQ(r.Int("/limits/properties_max_bytes"), 8192);
  EXPECT_EQ(r.At("/touchpoints").as_array().size(), 6u);
  EXPECT_TRUE(IsError(Api(port()).Get("/v1/events/catalogue"), 401, "UNAUTHENTICATED"));
}

TEST_P(EventsTest, RolesForEventRoutes) {
  Api admin = AdminApi();
  std::map<std::string, std::string> keys;
  for (const char* role : {"operator", "analyst", "ingest"}) {
    Reply k = admin.Post("/v1/api-keys", value{{"name", role}, {"role", role}});
    ASSERT_TRUE(HasStatus(k, 201));
    keys[role] = k.Str("/key");
  }
  int n = 0;
  for (const auto& [role, key] : keys) {
    Api api(port(), key);
    Reply r = api.Post("/v1/events",
                       Batch({View("role-" + std::to_string(n++), {"unionid:" + role}, t0_)}));
    if (role == "analyst") {
      EXPECT_TRUE(IsError(r, 403, "FORBIDDEN")) << role;
      EXPECT_EQ(PersonId(admin, "unionid:" + role), 0) << "a refused call stored something";
    } else {
      ASSERT_TRUE(HasStatus(r, 200)) << role;
      EXPECT_EQ(r.Int("/accepted"), 1) << role;
    }
  }
  const int64_t p = PersonId(admin, "unionid:ingest");
  ASSERT_GT(p, 0);
  const std::string tl = "/v1/people/" + std::to_string(p) + "/timeline";
  EXPECT_TRUE(IsError(Api(port(), keys["ingest"]).Get(tl), 403, "FORBIDDEN"));
  EXPECT_TRUE(HasStatus(Api(port(), keys["analyst"]).Get(tl), 200));
  EXPECT_TRUE(HasStatus(Api(port(), keys["operator"]).Get(tl), 200));
  EXPECT_TRUE(IsError(Api(port()).Post("/v1/events", Batch({View("anon", {"unionid:z"}, t0_)})),
                      401, "UNAUTHENTICATED"));
}

SIYU_BACKEND_SUITE(EventsTest);

// ---- durability --------------------------------------------------------------------------------

struct SentBatch {
  value body;
  std::vector<std::string> event_ids;
};

struct IngestLog {
  std::vector<SentBatch> acked;    // answered 200: every event accepted or duplicate
  std::vector<SentBatch> unacked;  // no answer seen: may or may not be stored
  std::vector<std::string> unexpected;
};

class EventsDurabilityTest : public BackendTest {};

// Writers post batches of 25 events for a handful of people each until the server dies; after a
// restart every acknowledged event is in its person's timeline exactly once, and resending the
// unacknowledged batches completes the set without duplicates.
TEST_P(EventsDurabilityTest, AcknowledgedEventsSurviveSigkill) {
  constexpr int kWriters = 8, kPeoplePerWriter = 4, kPerBatch = 25;
  std::mt19937 rng(std::random_device{}());
  auto kill_after = std::chrono::milliseconds(300 + rng() % 2400);
  std::cerr << "[          ] SIGKILL after " << kill_after.count() << " ms\n";
  const int64_t t0 = NowMs() - kDay;
  const uint16_t p = port();
  const std::string key = boot_.api_key;
  std::vector<IngestLog> logs(kWriters);
  std::vector<std::thread> ts;
  for (int w = 0; w < kWriters; ++w) {
    ts.emplace_back([&, w] {
      Api api(p, key);
      for (int b = 0; b < 100000; ++b) {
        SentBatch sent;
        json::array events;
        for (int j = 0; j < kPerBatch; ++j) {
          std::string id =
              "w" + std::to_string(w) + "-" + std::to_string(b) + "-" + std::to_string(j);
          std::string who =
              "unionid:w" + std::to_string(w) + "-p" + std::to_string((b + j) % kPeoplePerWriter);
          events.push_back(View(id, {who}, t0 + b * 100 + j));
          sent.event_ids.push_back(id);
        }
        sent.body = value{{"events", std::move(events)}};
        Reply r = api.Post("/v1/events", sent.body);
        if (r.status == 200 && r.Int("/accepted") + r.Int("/duplicates") == kPerBatch) {
          logs[w].acked.push_back(std::move(sent));
          continue;
        }
        if (r.status != 0 && r.status != 503) logs[w].unexpected.push_back(r.Describe());
        logs[w].unacked.push_back(std::move(sent));
        if (r.status == 0) return;
      }
    });
  }
  std::this_thread::sleep_for(kill_after);
  server_->Kill();
  for (auto& t : ts) t.join();
  server_->Start();

  Api api = AdminApi();
  auto stored_ids = [&] {
    std::multiset<std::string> ids;
    for (int w = 0; w < kWriters; ++w) {
      for (int k = 0; k < kPeoplePerWriter; ++k) {
        Reply r = api.Get("/v1/people?external_id=unionid:w" + std::to_string(w) + "-p" +
                          std::to_string(k));
        if (r.status == 404) continue;
        EXPECT_TRUE(HasStatus(r, 200));
        for (const auto& e : WholeTimeline(api, r.Int("/id"), 500)) {
          ids.emplace(e.at("event_id").as_string());
        }
      }
    }
    return ids;
  };
  std::multiset<std::string> stored = stored_ids();
  size_t acked = 0, unacked = 0;
  for (const auto& log : logs) {
    for (const auto& u : log.unexpected) ADD_FAILURE() << "unexpected answer: " << u;
    for (const auto& b : log.acked) {
      for (const auto& id : b.event_ids) {
        ++acked;
        EXPECT_EQ(stored.count(id), 1u) << "acknowledged event " << id;
      }
    }
    unacked += log.unacked.size();
  }
  std::cerr << "[          ] " << acked << " events acknowledged, " << unacked
            << " batches unacknowledged, " << stored.size() << " stored\n";
  EXPECT_GT(acked, 200u) << "the writers barely wrote; the test proves little";

  // Resending what was not acknowledged completes the set, each event once.
  std::set<std::string> all;
  for (const auto& log : logs) {
    for (const auto* list : {&log.acked, &log.unacked}) {
      for (const auto& b : *list) all.insert(b.event_ids.begin(), b.event_ids.end());
    }
    for (const auto& b : log.unacked) {
      Reply r = api.Post("/v1/events", b.body);
      ASSERT_TRUE(HasStatus(r, 200));
      EXPECT_EQ(r.Int("/rejected"), 0);
    }
  }
  std::multiset<std::string> final_ids = stored_ids();
  EXPECT_EQ(std::set<std::string>(final_ids.begin(), final_ids.end()), all);
  EXPECT_EQ(final_ids.size(), all.size()) << "some event is stored twice";
}

SIYU_BACKEND_SUITE(EventsDurabilityTest);

}  // namespace
}  // namespace siyu::it
