// Identity over HTTP on both stores: links, the guard's quarantine with approve and reject, exact
// unmerges, merged people in reports, bad input, and the graph rebuilt after a restart (and after
// SIGKILL) matching what was acknowledged.
#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

class IdentityTest : public BackendTest {
 protected:
  // A guard of 2: an id may tie two people; a third is held for review.
  void BeforeStart() override { extra_server_args_ = {"--max-people-per-id", "2"}; }

  int64_t NewPerson(Api& api, const std::string& id, int64_t acquired_at = 0) {
    value body = {{"external_id", id}};
    if (acquired_at) body.as_object()["acquired_at"] = acquired_at;
    Reply r = api.Post("/v1/people", body);
    EXPECT_TRUE(HasStatus(r, 201)) << r.Describe();
    return r.Int("/person/id");
  }
  Reply Link(Api& api, const std::string& a, const std::string& b, const std::string& reason) {
    return api.Post("/v1/identity/links", value{{"id_a", a}, {"id_b", b}, {"reason", reason}});
  }
  int64_t Resolve(Api& api, const std::string& id) {
    Reply r = api.Get("/v1/identity/resolve?id=" + id);
    EXPECT_TRUE(HasStatus(r, 200)) << r.Describe();
    return r.Int("/person_id");
  }
  void ExpectVerified(Api& api) {
    Reply v = api.Post("/v1/identity/verify", value(json::object{}));
    ASSERT_TRUE(HasStatus(v, 200));
    EXPECT_TRUE(v.At("/ok").as_bool()) << v.body;
  }
  std::string Snapshot(Api& api) {
    std::string s;
    for (const auto& p : AllPages(api, "/v1/people", 500)) s += json::serialize(p) + "\n";
    s += api.Get("/v1/identity/quarantine").body + "\n";
    return s;
  }
};

TEST_P(IdentityTest, LinkQuarantineApproveRejectAndUnmerge) {
  Api api = AdminApi();
  const int64_t t0 = NowMs() - 86'400'000;
  const int64_t p1 = NewPerson(api, "unionid:c1", t0);
  const int64_t p2 = NewPerson(api, "unionid:c2", t0);
  const int64_t p3 = NewPerson(api, "unionid:c3", t0);
  const int64_t p4 = NewPerson(api, "unionid:c4", t0);

  // A phone seen first with c1 is attached to c1's person; with c2 it merges them.
  Reply r = Link(api, "phone:13800000009", "unionid:c1", "会员卡绑定");
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Str("/result"), "attached");
  EXPECT_EQ(r.Int("/person_id"), p1);
  r = Link(api, "phone:+86 138-0000-0009", "unionid:c2", "会员卡绑定");
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Str("/result"), "linked") << r.body;
  const int64_t merge_12 = r.Int("/merge_id");
  EXPECT_EQ(Resolve(api, "unionid:c2"), p1);
  r = Link(api, "unionid:c2", "unionid:c1", "again");
  EXPECT_EQ(r.Str("/result"), "already_same");

  // The phone would now tie a third person: quarantined, nothing merged.
  r = Link(api, "phone:13800000009", "unionid:c3", "门店收银");
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Str("/result"), "quarantined") << r.body;
  EXPECT_TRUE(r.At("/person_id").is_null());
  const int64_t q3 = r.Int("/quarantine_id");
  EXPECT_EQ(Resolve(api, "unionid:c3"), p3);
  r = Link(api, "phone:13800000009", "unionid:c4", "门店收银");
  EXPECT_EQ(r.Str("/result"), "quarantined");
  const int64_t q4 = r.Int("/quarantine_id");
  Reply q = api.Get("/v1/identity/quarantine");
  ASSERT_TRUE(HasStatus(q, 200));
  ASSERT_EQ(q.At("/items").as_array().size(), 2u) << q.body;
  EXPECT_EQ(q.Str("/items/0/hub_id"), "phone:+8613800000009");
  EXPECT_EQ(q.At("/items/0/people").as_array().size(), 3u);

  // Reject one, approve the other.
  Reply rej = api.Post("/v1/identity/quarantine/" + std::to_string(q4) + "/reject",
                       value{{"reason", "门店公用手机"}});
  ASSERT_TRUE(HasStatus(rej, 200)) << rej.body;
  EXPECT_EQ(Resolve(api, "unionid:c4"), p4);
  Reply app = api.Post("/v1/identity/quarantine/" + std::to_string(q3) + "/approve",
                       value{{"reason", "核实为同一人"}});
  ASSERT_TRUE(HasStatus(app, 200)) << app.body;
  EXPECT_EQ(app.Str("/result"), "linked");
  EXPECT_EQ(Resolve(api, "unionid:c3"), p1);
  for (int64_t id : {q3, q4}) {
    for (const char* verb : {"approve", "reject"}) {
      EXPECT_TRUE(IsError(api.Post("/v1/identity/quarantine/" + std::to_string(id) + "/" + verb,
                                   value{{"reason", "twice"}}),
                          409, "ALREADY_DECIDED", "quarantine_id"));
    }
  }
  EXPECT_TRUE(api.Get("/v1/identity/quarantine").At("/items").as_array().empty());

  // Orders of every merged row count for the person, in the list and the overview.
  auto order = [&](const std::string& no, const std::string& who, int64_t fen) {
    Reply o = api.Post(
        "/v1/orders",
        value{
            {"order_no", no},
            {"external_id", who},
            {"total_fen", fen},
            {"paid_at", t0 + 1000},
            {"lines", json::array{value{{"sku", "S"}, {"quantity", 1}, {"unit_price_fen", fen}}}}});
    EXPECT_TRUE(HasStatus(o, 201)) << o.Describe();
  };
  order("O1", "unionid:c1", 1000);
  order("O2", "unionid:c2", 2000);
  order("O3", "unionid:c3", 4000);
  order("O4", "unionid:c4", 8000);
  EXPECT_EQ(AllPages(api, "/v1/orders?person_id=" + std::to_string(p2), 10).size(), 3u);
  const std::string window =
      "from=" + std::to_string(t0) + "&to=" + std::to_string(NowMs() + 86'400'000);
  Reply ov = api.Get("/v1/analytics/overview?" + window);
  ASSERT_TRUE(HasStatus(ov, 200));
  EXPECT_EQ(ov.Int("/people"), 2) << "p1 (with p2, p3) and p4: " << ov.body;
  EXPECT_EQ(ov.Int("/buyers"), 2) << ov.body;
  EXPECT_EQ(ov.Int("/orders"), 4);
  EXPECT_EQ(AllPages(api, "/v1/people", 500).size(), 2u);

  // The history names every decision touching the person.
  Reply who = api.Get("/v1/people/" + std::to_string(p3) + "/identity");
  ASSERT_TRUE(HasStatus(who, 200));
  EXPECT_EQ(who.Int("/person_id"), p1);
  EXPECT_EQ(who.At("/person_rows").as_array().size(), 3u);
  std::string kinds;
  for (const auto& e : who.At("/history").as_array()) {
    kinds += std::string(e.at("kind").as_string()) + " ";
  }
  EXPECT_EQ(kinds, "merge quarantine quarantine reject approve merge ") << who.body;

  // Undo the first merge: c2 alone; c1 and c3 stay joined through the approved merge.
  Reply split = api.Post("/v1/identity/merges/" + std::to_string(merge_12) + "/unmerge",
                         value{{"reason", "两个人"}});
  ASSERT_TRUE(HasStatus(split, 200)) << split.body;
  EXPECT_EQ(Resolve(api, "unionid:c2"), p2);
  EXPECT_EQ(Resolve(api, "unionid:c3"), p1);
  EXPECT_EQ(Resolve(api, "phone:13800000009"), p1);
  EXPECT_EQ(AllPages(api, "/v1/orders?person_id=" + std::to_string(p2), 10).size(), 1u);
  ov = api.Get("/v1/analytics/overview?" + window);
  EXPECT_EQ(ov.Int("/people"), 3) << ov.body;
  EXPECT_EQ(ov.Int("/buyers"), 3) << ov.body;
  ExpectVerified(api);

  // A restart rebuilds the graph from the store: the same answers.
  const std::string before = Snapshot(api);
  server_->Stop(SIGTERM, std::chrono::seconds(10));
  server_->Start();
  Api again = AdminApi();
  EXPECT_EQ(Snapshot(again), before);
  EXPECT_EQ(Resolve(again, "unionid:c3"), p1);
  EXPECT_EQ(Resolve(again, "unionid:c2"), p2);
  ExpectVerified(again);
}

TEST_P(IdentityTest, BadInputIsRefusedAndChangesNothing) {
  Api api = AdminApi();
  NewPerson(api, "unionid:x1");
  NewPerson(api, "unionid:x2");
  ASSERT_TRUE(HasStatus(Link(api, "unionid:x1", "unionid:x2", "ok"), 200));
  const std::string before = Snapshot(api);

  struct Case {
    std::string body, code, field;
  };
  const std::vector<Case> links = {
      {R"({"id_a":"unionid:x1"})", "MISSING_FIELD", "id_b"},
      {R"({"id_a":"wechat:abc","id_b":"unionid:x1"})", "INVALID_FIELD", "id_a"},
      {R"({"id_a":"unionid:x1","id_b":"phone:12345"})", "INVALID_FIELD", "id_b"},
      {R"({"id_a":"unionid:x1","id_b":"unionid:x1"})", "INVALID_FIELD", "id_b"},
      {R"({"id_a":"phone:13800138000","id_b":"phone:+8613800138000"})", "INVALID_FIELD", "id_b"},
      {R"({"id_a":"unionid:x1","id_b":"unionid:x3","reason":""})", "INVALID_FIELD", "reason"},
      {R"({"id_a":"unionid:x1","id_b":"unionid:x3","reason":"a\u0001b"})", "INVALID_FIELD",
       "reason"},
      {R"({"id_a":"unionid:x1","id_b":"unionid:x3","extra":1})", "UNKNOWN_FIELD", "extra"},
      {R"({"id_a":1,"id_b":"unionid:x3"})", "INVALID_FIELD", "id_a"},
      {R"([1])", "MALFORMED_JSON", ""},
  };
  for (const auto& c : links) {
    Reply r = api.Send("POST", "/v1/identity/links", c.body);
    EXPECT_TRUE(IsError(r, 400, c.code, c.field)) << c.body << " → " << r.body;
  }
  EXPECT_TRUE(IsError(api.Post("/v1/identity/merges/1/unmerge", value(json::object{})), 400,
                      "MISSING_FIELD", "reason"));
  EXPECT_TRUE(IsError(api.Post("/v1/identity/merges/999/unmerge", value{{"reason", "x"}}), 404,
                      "NOT_FOUND", "merge_id"));
  EXPECT_TRUE(IsError(api.Post("/v1/identity/merges/abc/unmerge", value{{"reason", "x"}}), 404,
                      "NOT_FOUND"));
  EXPECT_TRUE(IsError(api.Post("/v1/identity/merges/-1/unmerge", value{{"reason", "x"}}), 404,
                      "NOT_FOUND"));
  EXPECT_TRUE(IsError(api.Post("/v1/identity/quarantine/1/approve", value{{"reason", "x"}}), 404,
                      "NOT_FOUND", "quarantine_id"));
  EXPECT_TRUE(IsError(api.Get("/v1/identity/resolve"), 400, "INVALID_QUERY", "id"));
  EXPECT_TRUE(IsError(api.Get("/v1/identity/resolve?id=nope"), 400, "INVALID_QUERY", "id"));
  EXPECT_TRUE(IsError(api.Get("/v1/identity/resolve?id=unionid:zz"), 404, "NOT_FOUND", "id"));
  EXPECT_TRUE(IsError(api.Get("/v1/identity/resolve?id=unionid:x1&x=1"), 400, "INVALID_QUERY"));
  EXPECT_TRUE(IsError(api.Get("/v1/people/999999/identity"), 404, "NOT_FOUND"));
  EXPECT_EQ(Snapshot(api), before);

  // Roles: an analyst reads identity but cannot link or unmerge.
  Reply key = api.Post("/v1/api-keys", value{{"name", "analyst"}, {"role", "analyst"}});
  ASSERT_TRUE(HasStatus(key, 201));
  Api analyst(port(), key.Str("/key"));
  EXPECT_TRUE(HasStatus(analyst.Get("/v1/identity/resolve?id=unionid:x1"), 200));
  EXPECT_TRUE(IsError(Link(analyst, "unionid:x1", "unionid:x9", "no"), 403, "FORBIDDEN"));
  EXPECT_TRUE(
      IsError(analyst.Post("/v1/identity/verify", value(json::object{})), 403, "FORBIDDEN"));
  EXPECT_EQ(Snapshot(api), before);
}

TEST_P(IdentityTest, AcknowledgedMergesSurviveSigkill) {
  Api api = AdminApi();
  // Pairs of people merged by events, as fast as they are acknowledged; then SIGKILL.
  std::vector<std::pair<std::string, std::string>> acked;
  for (int i = 0; i < 60; ++i) {
    std::string a = "unionid:k" + std::to_string(i) + "a",
                b = "unionid:k" + std::to_string(i) + "b";
    json::array events;
    for (const auto& [id, ids] : std::vector<std::pair<std::string, json::array>>{
             {"ka" + std::to_string(i), json::array{value(a)}},
             {"kb" + std::to_string(i), json::array{value(b)}},
             {"kab" + std::to_string(i), json::array{value(b), value(a)}}}) {
      events.emplace_back(value{{"event_id", id},
                                {"type", "page_view"},
                                {"ids", ids},
                                {"ts", NowMs() - 1000},
                                {"touchpoint", "mini_program"},
                                {"properties", value{{"path", "/"}}}});
    }
    Reply r = api.Post("/v1/events", value{{"events", events}});
    ASSERT_TRUE(HasStatus(r, 200));
    ASSERT_EQ(r.Str("/results/2/link"), "merged") << r.body;
    acked.emplace_back(a, b);
  }
  server_->Kill();
  server_->Start();
  Api again = AdminApi();
  for (const auto& [a, b] : acked) EXPECT_EQ(Resolve(again, a), Resolve(again, b)) << a;
  EXPECT_EQ(AllPages(again, "/v1/people", 500).size(), acked.size());
  ExpectVerified(again);
}

SIYU_BACKEND_SUITE(IdentityTest);

}  // namespace
}  // namespace siyu::it
