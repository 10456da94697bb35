// The audience over HTTP on both stores: rule tags and segments current the moment an order,
// refund, event or merge is acknowledged; manual tags; the expression errors; TAG_IN_USE; member
// paging and CSV; and the same answers after a restart (rebuilt from the store).
#include <map>
#include <set>
#include <thread>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

class AudienceTest : public BackendTest {
 protected:
  int64_t NewPerson(Api& api, const std::string& id, int64_t acquired_at) {
    Reply r = api.Post("/v1/people", value{{"external_id", id}, {"acquired_at", acquired_at}});
    EXPECT_TRUE(HasStatus(r, 201)) << r.Describe();
    return r.Int("/person/id");
  }
  void Order(Api& api, const std::string& no, int64_t person, int64_t fen, int64_t paid_at) {
    value body = {
        {"order_no", no},
        {"person_id", person},
        {"lines", json::array{value{{"sku", "SKU-1"}, {"quantity", 1}, {"unit_price_fen", fen}}}},
        {"total_fen", fen},
        {"paid_at", paid_at}};
    Reply r = api.Post("/v1/orders", body);
    EXPECT_TRUE(HasStatus(r, 201)) << r.Describe();
  }
  int64_t Count(Api& api, const std::string& expression) {
    Reply r = api.Post("/v1/audience/count", value{{"expression", expression}});
    EXPECT_TRUE(HasStatus(r, 200)) << r.Describe();
    return r.Int("/people");
  }
  int64_t SegmentPeople(Api& api, int64_t id) {
    Reply r = api.Get("/v1/segments/" + std::to_string(id));
    EXPECT_TRUE(HasStatus(r, 200)) << r.Describe();
    return r.Int("/people");
  }
  std::string Snapshot(Api& api) {
    std::string s;
    for (const char* path : {"/v1/tags", "/v1/segments", "/v1/audience/rfm",
                             "/v1/audience/lifecycle", "/v1/audience/koc?limit=50"}) {
      s += api.Get(path).body + "\n";
    }
    return s;
  }
};

TEST_P(AudienceTest, RuleTagsAndSegmentsFollowEveryFact) {
  Api api = AdminApi();
  const int64_t now = NowMs();
  const int64_t day = 86'400'000;
  const int64_t p1 = NewPerson(api, "unionid:a1", now - 100 * day);
  const int64_t p2 = NewPerson(api, "unionid:a2", now - 100 * day);
  NewPerson(api, "unionid:a3", now - 100 * day);

  Reply tag = api.Post(
      "/v1/tags", value{{"group", "会员"}, {"name", "复购"}, {"rule", "orders(last 90d) >= 2"}});
  ASSERT_TRUE(HasStatus(tag, 201));
  EXPECT_EQ(tag.Str("/kind"), "rule");
  EXPECT_EQ(tag.Int("/people"), 0);
  Reply seg = api.Post(
      "/v1/segments",
      value{{"name", "复购未读"},
            {"expression", "tag(\"复购\") AND NOT events(\"message_read\", last 7d) >= 1"}});
  ASSERT_TRUE(HasStatus(seg, 201)) << seg.body;
  const int64_t s = seg.Int("/id");
  EXPECT_EQ(seg.Int("/people"), 0);

  // Orders: p1 buys twice and enters the tag and the segment as soon as the order is answered.
  Order(api, "O-1", p1, 1000, now - 10 * day);
  EXPECT_EQ(SegmentPeople(api, s), 0);
  Order(api, "O-2", p1, 2500, now - 5 * day);
  EXPECT_EQ(SegmentPeople(api, s), 1);
  EXPECT_EQ(Count(api, "orders(last 90d) >= 2"), 1);
  EXPECT_EQ(Count(api, "gmv(last 90d) >= 3500"), 1);
  EXPECT_EQ(Count(api, "gmv(last 90d) >= 3501"), 0);
  // The changes are the person's events too (recorded just after the answer).
  std::set<std::string> changes;
  for (int tries = 0; tries < 100 && changes.size() < 3; ++tries) {
    changes.clear();
    Reply tl = api.Get("/v1/people/" + std::to_string(p1) + "/timeline?limit=50");
    ASSERT_TRUE(HasStatus(tl, 200));
    for (const auto& e : tl.At("/items").as_array()) {
      const std::string type(e.at("type").as_string());
      if (type == "tag_added" || type == "segment_entered" || type == "stage_changed") {
        changes.insert(type + " " + json::serialize(e.at("properties")));
      }
    }
    if (changes.size() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(changes.count("tag_added {\"tag_id\":" + std::to_string(tag.Int("/id")) +
                            ",\"tag\":\"会员/复购\"}"))
      << ::testing::PrintToString(changes);
  EXPECT_TRUE(changes.count("segment_entered {\"segment_id\":" + std::to_string(s) +
                            ",\"segment\":\"复购未读\"}"))
      << ::testing::PrintToString(changes);
  EXPECT_TRUE(changes.count("stage_changed {\"from\":\"new\",\"to\":\"repeat\"}"))
      << ::testing::PrintToString(changes);
  Reply view = api.Get("/v1/people/" + std::to_string(p1) + "/audience");
  ASSERT_TRUE(HasStatus(view, 200));
  EXPECT_EQ(view.Str("/stage"), "repeat") << view.body;
  EXPECT_EQ(view.At("/tags").as_array().size(), 1u) << view.body;
  EXPECT_EQ(view.At("/segments").as_array().size(), 1u) << view.body;

  // An event leaves the segment (read a message), at once.
  Reply ev =
      api.Post("/v1/events",
               value{{"events", json::array{value{{"event_id", "mr-1"},
                                                  {"type", "message_read"},
                                                  {"ids", json::array{"unionid:a1"}},
                                                  {"ts", now - 1000},
                                                  {"touchpoint", "official_account"},
                                                  {"properties", value{{"message_id", "m1"}}}}}}});
  ASSERT_TRUE(HasStatus(ev, 200));
  EXPECT_EQ(ev.Int("/accepted"), 1);
  EXPECT_EQ(SegmentPeople(api, s), 0);
  EXPECT_EQ(Count(api, "touchpoint(\"official_account\")"), 1);

  // A refund in full stops an order counting.
  ASSERT_TRUE(HasStatus(api.Post("/v1/orders/O-2/refund", value{{"reason", "退货"}}), 200));
  EXPECT_EQ(Count(api, "orders(last 90d) >= 2"), 0);
  EXPECT_EQ(Count(api, "tag(\"复购\")"), 0);

  // A merge: p2's order joins p1's person, which is a repeat buyer again.
  Order(api, "O-3", p2, 4000, now - 2 * day);
  EXPECT_EQ(Count(api, "tag(\"会员/复购\")"), 0);
  Reply link =
      api.Post("/v1/identity/links",
               value{{"id_a", "unionid:a1"}, {"id_b", "unionid:a2"}, {"reason", "同一人"}});
  ASSERT_TRUE(HasStatus(link, 200));
  ASSERT_EQ(link.Str("/result"), "linked") << link.body;
  EXPECT_EQ(Count(api, "tag(\"复购\")"), 1);
  Reply lc = api.Get("/v1/audience/lifecycle");
  ASSERT_TRUE(HasStatus(lc, 200));
  int64_t people = 0;
  for (const auto& st : lc.At("/stages").as_array()) people += st.at("people").as_int64();
  EXPECT_EQ(people, 2) << "three people, two of them merged: " << lc.body;
  // Unmerged, exactly as before.
  Reply un = api.Post("/v1/identity/merges/" + std::to_string(link.Int("/merge_id")) + "/unmerge",
                      value{{"reason", "两个人"}});
  ASSERT_TRUE(HasStatus(un, 200));
  EXPECT_EQ(Count(api, "tag(\"复购\")"), 0);
  EXPECT_EQ(Count(api, "orders(last 3650d) >= 1"), 2);

  // The same answers after a restart: the engine is rebuilt from the store.
  const std::string before = Snapshot(api);
  server_->Stop(SIGTERM, std::chrono::seconds(10));
  server_->Start();
  Api again = AdminApi();
  EXPECT_EQ(Snapshot(again), before);
  EXPECT_EQ(Count(again, "tag(\"复购\")"), 0);
  EXPECT_EQ(Count(again, "touchpoint(\"official_account\")"), 1);
}

TEST_P(AudienceTest, ManualTagsMembersAndBadInput) {
  Api api = AdminApi();
  const int64_t now = NowMs();
  std::vector<int64_t> people;
  for (int i = 0; i < 7; ++i)
    people.push_back(NewPerson(api, "unionid:m" + std::to_string(i), now - 1000));
  Reply vip = api.Post("/v1/tags", value{{"name", "门店VIP"}});
  ASSERT_TRUE(HasStatus(vip, 201));
  const std::string vip_path = "/v1/tags/" + std::to_string(vip.Int("/id"));
  Reply add = api.Post(vip_path + "/people",
                       value{{"add", json::array{people[0], people[2], people[4], 999999}}});
  ASSERT_TRUE(HasStatus(add, 200));
  EXPECT_EQ(add.Int("/changed"), 3);
  EXPECT_EQ(add.Int("/skipped"), 1);
  Reply seg = api.Post("/v1/segments", value{{"name", "VIP"}, {"json", value{{"tag", "门店VIP"}}}});
  ASSERT_TRUE(HasStatus(seg, 201)) << seg.body;
  EXPECT_EQ(seg.Str("/expression"), "tag(\"门店VIP\")");
  EXPECT_EQ(seg.Int("/people"), 3);
  const std::string seg_path = "/v1/segments/" + std::to_string(seg.Int("/id"));
  // Paging and CSV list the same people, ascending.
  std::vector<int64_t> paged;
  std::string after = "0";
  for (int i = 0; i < 10; ++i) {
    Reply page = api.Get(seg_path + "/members?limit=2&after=" + after);
    ASSERT_TRUE(HasStatus(page, 200));
    for (const auto& p : page.At("/items").as_array()) paged.push_back(p.as_int64());
    if (page.At("/next_after").is_null()) break;
    after = std::to_string(page.Int("/next_after"));
  }
  EXPECT_EQ(paged, (std::vector<int64_t>{people[0], people[2], people[4]}));
  Reply csv = api.Get(seg_path + "/members.csv");
  ASSERT_TRUE(HasStatus(csv, 200));
  EXPECT_EQ(csv.body, "person_id\n" + std::to_string(people[0]) + "\n" + std::to_string(people[2]) +
                          "\n" + std::to_string(people[4]) + "\n");
  Reply rm = api.Post(vip_path + "/people", value{{"remove", json::array{people[2]}}});
  ASSERT_TRUE(HasStatus(rm, 200));
  EXPECT_EQ(SegmentPeople(api, seg.Int("/id")), 2);

  // Bad input changes nothing.
  const std::string before = Snapshot(api);
  EXPECT_TRUE(IsError(
      api.Post("/v1/audience/count", value{{"expression", "tag(\"门店VIP\") AND (orders >= 2"}}),
      400, "EXPRESSION_SYNTAX", "expression"));
  Reply syn = api.Post("/v1/segments",
                       value{{"name", "bad"}, {"expression", "orders(last 30d) >= \"abc\""}});
  EXPECT_TRUE(IsError(syn, 400, "TYPE_MISMATCH", "expression")) << syn.body;
  EXPECT_TRUE(IsError(
      api.Post("/v1/segments", value{{"name", "bad"}, {"expression", "orders(last 99999d) >= 1"}}),
      400, "WINDOW_OUT_OF_RANGE", "expression"));
  EXPECT_TRUE(IsError(api.Post("/v1/tags", value{{"name", "x"}, {"rule", "tag(\"没有\")"}}), 422,
                      "UNKNOWN_TAG", "rule"));
  EXPECT_TRUE(
      IsError(api.Post("/v1/tags", value{{"name", "门店VIP"}}), 409, "ALREADY_EXISTS", "name"));
  EXPECT_TRUE(
      IsError(api.Post("/v1/segments", value{{"name", "VIP"}, {"expression", "tag(\"门店VIP\")"}}),
              409, "ALREADY_EXISTS", "name"));
  EXPECT_TRUE(IsError(api.Delete(vip_path), 409, "TAG_IN_USE"));
  Reply rule = api.Post("/v1/tags", value{{"name", "rule"}, {"rule", "orders(last 30d) >= 1"}});
  ASSERT_TRUE(HasStatus(rule, 201));
  EXPECT_TRUE(IsError(api.Post("/v1/tags/" + std::to_string(rule.Int("/id")) + "/people",
                               value{{"add", json::array{people[1]}}}),
                      400, "INVALID_FIELD", "tag_id"));
  ASSERT_TRUE(HasStatus(api.Delete("/v1/tags/" + std::to_string(rule.Int("/id"))), 200));
  EXPECT_EQ(Snapshot(api), before);
  EXPECT_TRUE(IsError(api.Post("/v1/segments", value{{"name", "both"},
                                                     {"expression", "tag(\"门店VIP\")"},
                                                     {"json", value{{"tag", "门店VIP"}}}}),
                      400, "MISSING_FIELD"));

  // Deleting the segment frees the tag.
  ASSERT_TRUE(HasStatus(api.Delete(seg_path), 200));
  ASSERT_TRUE(HasStatus(api.Delete(vip_path), 200));
  EXPECT_TRUE(IsError(api.Get(seg_path), 404, "NOT_FOUND"));
}

TEST_P(AudienceTest, SettingsSnapshotsAndVerify) {
  Api api = AdminApi();
  const int64_t now = NowMs();
  const int64_t day = 86'400'000;
  std::vector<int64_t> people;
  for (int i = 0; i < 6; ++i) {
    people.push_back(NewPerson(api, "unionid:s" + std::to_string(i), now - 200 * day));
  }
  // Person i ordered (i + 1) times, the last one 10 * i days ago.
  for (int i = 0; i < 6; ++i) {
    for (int k = 0; k <= i; ++k) {
      Order(api, "S-" + std::to_string(i) + "-" + std::to_string(k), people[i], 1000 * (i + 1),
            now - (10 * i + 3 * k) * day);
    }
  }
  Reply def = api.Get("/v1/audience/settings");
  ASSERT_TRUE(HasStatus(def, 200));
  EXPECT_EQ(def.Str("/rfm/recency/mode"), "quantile");
  // Fixed thresholds: recent = under 25 days, frequent = over 3 orders, valuable = over ¥20.
  Reply put =
      api.Put("/v1/audience/settings",
              value{{"rfm", value{{"recency", value{{"mode", "fixed"}, {"value", 25}}},
                                  {"frequency", value{{"mode", "fixed"}, {"value", 3}}},
                                  {"monetary", value{{"mode", "fixed"}, {"value", 2000}}}}}});
  ASSERT_TRUE(HasStatus(put, 200)) << put.body;
  Reply rfm = api.Get("/v1/audience/rfm");
  ASSERT_TRUE(HasStatus(rfm, 200));
  EXPECT_EQ(rfm.Int("/thresholds/recency_days"), 25);
  std::map<std::string, int64_t> cells;
  for (const auto& c : rfm.At("/cells").as_array()) {
    cells[std::string(c.at("class").as_string())] = c.at("people").as_int64();
  }
  // Recency days 0, 10, 20, 30, 40, 50; orders 1..6; GMV 1000, 4000, 9000, … fen.
  EXPECT_EQ(cells["general_develop"], 1);    // s0: recent, 1 order, ¥10
  EXPECT_EQ(cells["important_develop"], 2);  // s1, s2: recent, 2-3 orders, over ¥20
  EXPECT_EQ(cells["important_keep"], 3);     // s3, s4, s5: not recent, 4+ orders, over ¥20
  EXPECT_TRUE(IsError(
      api.Put("/v1/audience/settings",
              value{{"rfm", value{{"recency", value{{"mode", "quantile"}, {"quantile", 1.5}}}}}}),
      400, "INVALID_FIELD", "rfm.recency.quantile"));
  EXPECT_TRUE(
      IsError(api.Put("/v1/audience/settings",
                      value{{"lifecycle", value{{"dormant_cycles", 5}, {"churn_cycles", 3}}}}),
              400, "INVALID_FIELD", "lifecycle.churn_cycles"));
  EXPECT_TRUE(IsError(api.Put("/v1/audience/settings", value{{"rfm", value{{"speed", 1}}}}), 400,
                      "UNKNOWN_FIELD", "rfm.speed"));
  EXPECT_EQ(api.Get("/v1/audience/rfm").body, rfm.body) << "a refused setting changed nothing";

  // A snapshot keeps its members when the segment changes.
  Reply seg = api.Post("/v1/segments", value{{"name", "常客"}, {"expression", "orders >= 4"}});
  ASSERT_TRUE(HasStatus(seg, 201));
  const std::string seg_path = "/v1/segments/" + std::to_string(seg.Int("/id"));
  Reply snap = api.Post(seg_path + "/snapshots", value{{"name", "十一月名单"}});
  ASSERT_TRUE(HasStatus(snap, 201)) << snap.body;
  EXPECT_EQ(snap.Int("/people"), 3);
  Order(api, "S-extra", people[0], 500, now);
  Order(api, "S-extra2", people[0], 500, now);
  Order(api, "S-extra3", people[0], 500, now);
  EXPECT_EQ(SegmentPeople(api, seg.Int("/id")), 4);
  Reply csv = api.Get("/v1/segment-snapshots/" + std::to_string(snap.Int("/id")) + "/members.csv");
  ASSERT_TRUE(HasStatus(csv, 200));
  EXPECT_EQ(csv.body, "person_id\n" + std::to_string(people[3]) + "\n" + std::to_string(people[4]) +
                          "\n" + std::to_string(people[5]) + "\n");
  Reply list = api.Get(seg_path + "/snapshots");
  ASSERT_TRUE(HasStatus(list, 200));
  ASSERT_EQ(list.At("/items").as_array().size(), 1u);
  EXPECT_EQ(list.Str("/items/0/name"), "十一月名单");

  // The live audience equals one built afresh from the store.
  Reply v = api.Post("/v1/audience/verify", value(json::object{}));
  ASSERT_TRUE(HasStatus(v, 200));
  EXPECT_TRUE(v.At("/ok").as_bool()) << v.body;
  EXPECT_EQ(v.Int("/people"), 6);

  // Categories on order lines: what bought(category=…) matches, read back with the order.
  value body = {
      {"order_no", "S-cat"},
      {"person_id", people[1]},
      {"lines",
       json::array{
           value{{"sku", "SKU-9"}, {"category", "清洁"}, {"quantity", 2}, {"unit_price_fen", 990}},
           value{{"sku", "SKU-8"}, {"quantity", 1}, {"unit_price_fen", 10}}}},
      {"total_fen", 1990},
      {"paid_at", now - day}};
  Reply cat = api.Post("/v1/orders", body);
  ASSERT_TRUE(HasStatus(cat, 201)) << cat.body;
  EXPECT_EQ(cat.Str("/lines/0/category"), "清洁");
  EXPECT_FALSE(cat.At("/lines/1").as_object().contains("category"));
  EXPECT_TRUE(HasStatus(api.Post("/v1/orders", body), 200)) << "the same order again";
  EXPECT_EQ(Count(api, "bought(category=\"清洁\", last 30d)"), 1);
  EXPECT_EQ(Count(api, "bought(category=\"洗护\")"), 0);
  body.as_object()["order_no"] = "S-cat-bad";
  body.as_object()["lines"].as_array()[0].as_object()["category"] = "";
  EXPECT_TRUE(IsError(api.Post("/v1/orders", body), 400, "INVALID_FIELD", "lines[0].category"));

  // `siyu admin verify`: the identity and every segment and tag of the audience built from the
  // store agree with the store's own SQL answer (beside the running server).
  ASSERT_TRUE(HasStatus(
      api.Post("/v1/tags", value{{"name", "洗护买家"}, {"rule", "bought(category=\"清洁\")"}}),
      201));
  std::vector<std::string> argv = {SIYU_BINARY, "admin", "verify"};
  for (const auto& a : store_->StoreArgs()) argv.push_back(a);
  CommandResult cli = RunCommand(argv);
  EXPECT_EQ(cli.exit_code, 0) << cli.out << cli.err;
  boost::system::error_code ec;
  value out = json::parse(cli.out, ec);
  ASSERT_FALSE(ec) << cli.out;
  EXPECT_TRUE(out.at("ok").as_bool()) << cli.out;
  ASSERT_EQ(out.at("audience").as_array().size(), 1u) << cli.out;
  EXPECT_EQ(out.at("audience").at(0).at("people").as_int64(), 6) << cli.out;
  EXPECT_TRUE(out.at("audience").at(0).at("differences").as_array().empty()) << cli.out;
}

// Tag members from a CSV file (a brand bringing its tags from another platform): tags created as
// needed, rows with errors reported by line, a rerun changes nothing, only writers may import.
TEST_P(AudienceTest, TagMembersImportedFromCsv) {
  Api api = AdminApi();
  const int64_t now = NowMs();
  const int64_t p1 = NewPerson(api, "unionid:t1", now);
  NewPerson(api, "unionid:t2", now);
  const int64_t p3 = NewPerson(api, "unionid:t3", now);
  ASSERT_TRUE(HasStatus(
      api.Post("/v1/tags", value{{"group", "会员"}, {"name", "复购"}, {"rule", "orders >= 2"}}),
      201));
  const std::string csv =
      "tag,external_id,person_id\n"
      "会员/金卡,unionid:t1,\n"
      "会员/金卡,unionid:t2,\n"
      "老客,," +
      std::to_string(p3) +
      "\n"
      "会员/金卡,unionid:t1,\n"
      ",unionid:t2,\n"
      "会员/金卡,unionid:nobody,\n"
      "复购,unionid:t1,\n"
      "老客,unionid:t1," +
      std::to_string(p1) + "\n";
  Reply r = api.Send("POST", "/v1/imports/tags", csv, "text/csv");
  ASSERT_TRUE(HasStatus(r, 200)) << r.body;
  EXPECT_EQ(r.Int("/rows"), 8);
  EXPECT_EQ(r.Int("/created"), 3) << r.body;
  EXPECT_EQ(r.Int("/unchanged"), 1) << r.body;
  EXPECT_EQ(r.Int("/failed"), 4) << r.body;
  const auto& errors = r.At("/errors").as_array();
  ASSERT_EQ(errors.size(), 4u) << r.body;
  EXPECT_EQ(errors[0].at("line").as_int64(), 6);
  EXPECT_EQ(errors[0].at("code").as_string(), "MISSING_FIELD");
  EXPECT_EQ(errors[0].at("field").as_string(), "tag");
  EXPECT_EQ(errors[1].at("code").as_string(), "UNKNOWN_PERSON");
  EXPECT_EQ(errors[2].at("code").as_string(), "INVALID_FIELD");
  EXPECT_EQ(errors[2].at("field").as_string(), "tag");
  EXPECT_EQ(errors[3].at("code").as_string(), "MISSING_FIELD");
  EXPECT_EQ(Count(api, "tag(\"会员/金卡\")"), 2);
  EXPECT_EQ(Count(api, "tag(\"老客\")"), 1);
  // Created as manual tags, in the group named.
  Reply tags = api.Get("/v1/tags");
  int found = 0;
  for (const auto& t : tags.At("/items").as_array()) {
    if (t.at("name").as_string() == "金卡") {
      EXPECT_EQ(t.at("group").as_string(), "会员");
      EXPECT_EQ(t.at("kind").as_string(), "manual");
      ++found;
    }
  }
  EXPECT_EQ(found, 1) << tags.body;
  // Again: nothing changes.
  Reply again = api.Send("POST", "/v1/imports/tags", csv, "text/csv");
  ASSERT_TRUE(HasStatus(again, 200));
  EXPECT_EQ(again.Int("/created"), 0) << again.body;
  EXPECT_EQ(again.Int("/unchanged"), 4) << again.body;
  EXPECT_EQ(Count(api, "tag(\"会员/金卡\")"), 2);
  // An ingest key imports people and orders, not tags.
  Reply key = api.Post("/v1/api-keys", value{{"name", "sdk"}, {"role", "ingest"}});
  ASSERT_TRUE(HasStatus(key, 201));
  Api ingest(port(), key.Str("/key"));
  EXPECT_TRUE(IsError(ingest.Send("POST", "/v1/imports/tags", csv, "text/csv"), 403, "FORBIDDEN"));
}

SIYU_BACKEND_SUITE(AudienceTest);

}  // namespace
}  // namespace siyu::it
