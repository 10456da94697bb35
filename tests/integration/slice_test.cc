// The business slice end to end: channels, people, orders, refunds, reads and paging, and the
// overview checked against figures this test computes from what it sent.
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

constexpr int64_t kHour = 3'600'000;
int64_t At(int y, unsigned m, unsigned d, int64_t hours = 10) {
  return ShanghaiDayMs(y, m, d) + hours * kHour;
}

// What the overview should say, from the rules in docs/api.md applied to what we sent.
struct Model {
  struct Person {
    int64_t id;
    std::optional<int64_t> first_channel;
    int64_t acquired_at;
  };
  struct Order {
    std::string no;
    int64_t person_id;
    int64_t total;
    int64_t paid_at;
    bool refunded = false;
  };
  struct Figures {
    int64_t people = 0, buyers = 0, orders = 0, paid = 0, refunded = 0;
  };
  std::vector<Person> people;
  std::vector<Order> orders;

  // Keyed by first channel id, -1 for "no channel".
  std::map<int64_t, Figures> ByChannel(int64_t from, int64_t to,
                                       std::optional<int64_t> channel) const {
    std::map<int64_t, Figures> out;
    std::map<int64_t, const Person*> eligible;
    for (const auto& p : people) {
      if (p.acquired_at >= to) continue;
      if (channel && p.first_channel != channel) continue;
      eligible[p.id] = &p;
      out[p.first_channel.value_or(-1)].people++;
    }
    std::map<int64_t, std::set<int64_t>> buyers;
    for (const auto& o : orders) {
      auto it = eligible.find(o.person_id);
      if (it == eligible.end() || o.paid_at < from || o.paid_at >= to) continue;
      int64_t key = it->second->first_channel.value_or(-1);
      Figures& f = out[key];
      f.orders++;
      f.paid += o.total;
      if (o.refunded) f.refunded += o.total;
      buyers[key].insert(o.person_id);
    }
    for (auto& [k, s] : buyers) out[k].buyers = static_cast<int64_t>(s.size());
    return out;
  }
  Figures Total(int64_t from, int64_t to, std::optional<int64_t> channel) const {
    Figures t;
    for (const auto& [k, f] : ByChannel(from, to, channel)) {
      t.people += f.people;
      t.buyers += f.buyers;
      t.orders += f.orders;
      t.paid += f.paid;
      t.refunded += f.refunded;
    }
    return t;
  }
};

class SliceTest : public BackendTest {
 protected:
  // Asks for the overview with `query` and compares it with the model for [from, to).
  value ExpectOverview(Api& api, const std::string& query, const Model& m, int64_t from, int64_t to,
                       std::optional<int64_t> channel) {
    SCOPED_TRACE("GET /v1/analytics/overview?" + query);
    Reply r = api.Get("/v1/analytics/overview?" + query);
    EXPECT_TRUE(HasStatus(r, 200));
    if (r.status != 200) return nullptr;
    EXPECT_EQ(r.Int("/from"), from);
    EXPECT_EQ(r.Int("/to"), to);
    if (channel) {
      EXPECT_EQ(r.Int("/channel_id"), *channel);
    } else {
      EXPECT_TRUE(r.At("/channel_id").is_null());
    }
    Model::Figures t = m.Total(from, to, channel);
    EXPECT_EQ(r.Int("/people"), t.people);
    EXPECT_EQ(r.Int("/buyers"), t.buyers);
    EXPECT_EQ(r.Int("/orders"), t.orders);
    EXPECT_EQ(r.Int("/paid_fen"), t.paid);
    EXPECT_EQ(r.Int("/refunded_fen"), t.refunded);
    EXPECT_EQ(r.Int("/gmv_fen"), t.paid - t.refunded);

    auto want = m.ByChannel(from, to, channel);
    std::set<int64_t> listed;
    for (const auto& row : r.At("/by_channel").as_array()) {
      const value& id = row.at("channel_id");
      int64_t key = id.is_null() ? -1 : id.as_int64();
      listed.insert(key);
      if (channel) {
        EXPECT_EQ(key, *channel) << "a row of another channel under channel=";
      }
      Model::Figures f = want.count(key) ? want.at(key) : Model::Figures{};
      SCOPED_TRACE("by_channel row " + json::serialize(row));
      EXPECT_EQ(row.at("people").as_int64(), f.people);
      EXPECT_EQ(row.at("buyers").as_int64(), f.buyers);
      EXPECT_EQ(row.at("orders").as_int64(), f.orders);
      EXPECT_EQ(row.at("gmv_fen").as_int64(), f.paid - f.refunded);
      if (id.is_null()) {
        EXPECT_TRUE(row.at("channel_name").is_null());
      }
    }
    for (const auto& [k, f] : want) {
      if (f.people > 0 || f.orders > 0) {
        EXPECT_TRUE(listed.count(k)) << "no row for channel " << k;
      }
    }
    ExpectOverviewConsistent(r.json);
    return r.json;
  }
};

value Channel(const std::string& name, const std::string& pool, const std::string& touch,
              int64_t cost) {
  return {{"name", name}, {"source_pool", pool}, {"touchpoint", touch}, {"cost_fen", cost}};
}

value Line(const std::string& sku, int64_t qty, int64_t price) {
  return {{"sku", sku}, {"quantity", qty}, {"unit_price_fen", price}};
}

TEST_P(SliceTest, EndToEnd) {
  Api api = AdminApi();
  Model model;

  // ---- channels
  std::map<std::string, value> channels;
  for (const auto& [name, pool, touch, cost] :
       std::vector<std::tuple<std::string, std::string, std::string, int64_t>>{
           {"门店收银台", "offline", "wecom", 50000},
           {"公众号菜单", "wechat_public", "official_account", 0},
           {"合作社群", "partner", "group", 1200}}) {
    Reply r = api.Post("/v1/channels", Channel(name, pool, touch, cost));
    ASSERT_TRUE(HasStatus(r, 201));
    EXPECT_GT(r.Int("/id"), 0);
    EXPECT_EQ(r.Str("/name"), name);
    EXPECT_EQ(r.Str("/source_pool"), pool);
    EXPECT_EQ(r.Str("/touchpoint"), touch);
    EXPECT_EQ(r.Int("/cost_fen"), cost);
    std::string state = r.Str("/state");
    EXPECT_TRUE(!state.empty() && state.size() <= 30 &&
                state.find_first_not_of("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                                        "wxyz") == std::string::npos)
        << "state is not ≤ 30 base62 characters: " << state;
    Reply g = api.Get("/v1/channels/" + std::to_string(r.Int("/id")));
    ASSERT_TRUE(HasStatus(g, 200));
    EXPECT_EQ(g.json, r.json);
    channels[name] = r.json;
  }
  const int64_t ch1 = channels["门店收银台"].at("id").as_int64();
  const int64_t ch2 = channels["公众号菜单"].at("id").as_int64();
  const int64_t ch3 = channels["合作社群"].at("id").as_int64();
  const std::string st1 = json::value_to<std::string>(channels["门店收银台"].at("state"));
  const std::string st2 = json::value_to<std::string>(channels["公众号菜单"].at("state"));
  EXPECT_NE(st1, st2);
  {
    Reply r = api.Get("/v1/channels");
    ASSERT_TRUE(HasStatus(r, 200));
    const auto& items = r.At("/items").as_array();
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[0], channels["门店收银台"]);
    EXPECT_EQ(items[1], channels["公众号菜单"]);
    EXPECT_EQ(items[2], channels["合作社群"]);
    EXPECT_TRUE(IsError(api.Post("/v1/channels", Channel("合作社群", "partner", "group", 0)), 409,
                        "ALREADY_EXISTS", "name"));
  }

  // ---- people: upsert by openid / unionid / phone, first touch kept, last touch moves
  auto upsert = [&](value body, int status) -> value {
    Reply r = api.Post("/v1/people", body);
    EXPECT_TRUE(HasStatus(r, status)) << json::serialize(body);
    if (r.status != status) return nullptr;
    EXPECT_EQ(r.At("/created").as_bool(), status == 201);
    return r.At("/person");
  };
  value p1 = upsert({{"external_id", "openid:wxapp1:oP1"},
                     {"channel_state", st1},
                     {"acquired_at", At(2024, 10, 15)},
                     {"name", "小王"}},
                    201);
  ASSERT_TRUE(p1.is_object());
  const int64_t p1id = p1.at("id").as_int64();
  EXPECT_EQ(p1.at("first_channel_id").as_int64(), ch1);
  EXPECT_EQ(p1.at("last_channel_id").as_int64(), ch1);
  EXPECT_EQ(p1.at("acquired_at").as_int64(), At(2024, 10, 15));
  EXPECT_EQ(p1.at("name"), "小王");
  EXPECT_EQ(p1.at("external_ids"), (json::array{"openid:wxapp1:oP1"}));
  {
    value again = upsert({{"external_id", "openid:wxapp1:oP1"},
                          {"channel_state", st1},
                          {"acquired_at", At(2024, 10, 15)},
                          {"name", "小王"}},
                         200);
    EXPECT_EQ(again, p1);
  }
  value p1b = upsert({{"external_id", "openid:wxapp1:oP1"},
                      {"channel_state", st2},
                      {"acquired_at", At(2024, 11, 20)},
                      {"name", "王小明"}},
                     200);
  ASSERT_TRUE(p1b.is_object());
  EXPECT_EQ(p1b.at("id").as_int64(), p1id);
  EXPECT_EQ(p1b.at("first_channel_id").as_int64(), ch1) << "first touch must be kept";
  EXPECT_EQ(p1b.at("last_channel_id").as_int64(), ch2) << "last touch must move";
  EXPECT_EQ(p1b.at("acquired_at").as_int64(), At(2024, 10, 15)) << "acquired_at is kept";
  EXPECT_EQ(p1b.at("name"), "王小明");
  value p1c = upsert({{"external_id", "openid:wxapp1:oP1"}}, 200);
  ASSERT_TRUE(p1c.is_object());
  EXPECT_EQ(p1c.at("last_channel_id").as_int64(), ch2) << "an upsert without state moves nothing";
  EXPECT_EQ(p1c, p1b);
  model.people.push_back({p1id, ch1, At(2024, 10, 15)});

  value p2 = upsert(
      {{"external_id", "unionid:uP2"}, {"channel_state", st2}, {"acquired_at", At(2024, 11, 5)}},
      201);
  ASSERT_TRUE(p2.is_object());
  EXPECT_TRUE(p2.at("name").is_null());
  const int64_t p2id = p2.at("id").as_int64();
  model.people.push_back({p2id, ch2, At(2024, 11, 5)});

  value p3 =
      upsert({{"external_id", "phone:138 0013-8000"}, {"acquired_at", At(2024, 11, 10)}}, 201);
  ASSERT_TRUE(p3.is_object());
  const int64_t p3id = p3.at("id").as_int64();
  EXPECT_EQ(p3.at("external_ids"), (json::array{"phone:+8613800138000"}));
  EXPECT_TRUE(p3.at("first_channel_id").is_null());
  EXPECT_TRUE(p3.at("last_channel_id").is_null());
  {
    value same = upsert({{"external_id", "phone:+8613800138000"}}, 200);
    ASSERT_TRUE(same.is_object());
    EXPECT_EQ(same.at("id").as_int64(), p3id) << "phone numbers are normalised before matching";
  }
  model.people.push_back({p3id, std::nullopt, At(2024, 11, 10)});

  value p4 = upsert({{"external_id", "openid:wxapp1:oP4"},
                     {"channel_state", st1},
                     {"acquired_at", At(2024, 11, 20)}},
                    201);
  ASSERT_TRUE(p4.is_object());
  const int64_t p4id = p4.at("id").as_int64();
  model.people.push_back({p4id, ch1, At(2024, 11, 20)});

  value p5 = upsert(
      {{"external_id", "unionid:uP5"}, {"channel_state", st2}, {"acquired_at", At(2024, 12, 5)}},
      201);
  ASSERT_TRUE(p5.is_object());
  const int64_t p5id = p5.at("id").as_int64();
  model.people.push_back({p5id, ch2, At(2024, 12, 5)});

  value p6 = upsert({{"external_id", "phone:+85291234567"},
                     {"channel_state", st1},
                     {"acquired_at", At(2024, 9, 1)}},
                    201);
  ASSERT_TRUE(p6.is_object());
  const int64_t p6id = p6.at("id").as_int64();
  EXPECT_EQ(p6.at("external_ids"), (json::array{"phone:+85291234567"}));
  model.people.push_back({p6id, ch1, At(2024, 9, 1)});

  {
    Reply r = api.Get("/v1/people/" + std::to_string(p1id));
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.json, p1b);
    r = api.Get("/v1/people?external_id=openid%3Awxapp1%3AoP1");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.json, p1b);
    r = api.Get("/v1/people?external_id=phone%3A13800138000");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/id"), p3id);
    r = api.Get("/v1/people?external_id=phone%3A%2B8613800138000");
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Int("/id"), p3id);
    EXPECT_TRUE(IsError(api.Get("/v1/people?external_id=unionid%3Anobody"), 404, "NOT_FOUND"));
    EXPECT_TRUE(IsError(api.Get("/v1/people/99999999"), 404, "NOT_FOUND"));
  }

  // ---- orders
  std::map<std::string, value> stored;
  auto order = [&](const std::string& no, value who, json::array lines,
                   std::optional<int64_t> paid_at, int status) -> Reply {
    json::object body{{"order_no", no}, {"lines", lines}};
    int64_t total = 0;
    for (const auto& l : lines) {
      total += l.at("quantity").as_int64() * l.at("unit_price_fen").as_int64();
    }
    body["total_fen"] = total;
    if (paid_at) body["paid_at"] = *paid_at;
    if (who.is_int64()) {
      body["person_id"] = who;
    } else {
      body["external_id"] = who;
    }
    Reply r = api.Post("/v1/orders", value(body));
    EXPECT_TRUE(HasStatus(r, status)) << json::serialize(body);
    return r;
  };
  auto record = [&](const Reply& r) {
    if (r.status / 100 != 2) return;
    stored[r.Str("/order_no")] = r.json;
    model.orders.push_back(
        {r.Str("/order_no"), r.Int("/person_id"), r.Int("/total_fen"), r.Int("/paid_at")});
  };

  {
    Reply r = order("SO-1", p1id, {Line("SKU-1", 2, 1990)}, At(2024, 11, 2), 201);
    ASSERT_EQ(r.status, 201);
    EXPECT_EQ(r.Str("/status"), "paid");
    EXPECT_EQ(r.Int("/person_id"), p1id);
    EXPECT_EQ(r.Int("/total_fen"), 3980);
    EXPECT_EQ(r.Int("/refunded_fen"), 0);
    EXPECT_EQ(r.Int("/paid_at"), At(2024, 11, 2));
    EXPECT_TRUE(r.At("/refunded_at").is_null());
    EXPECT_EQ(r.Int("/lines/0/amount_fen"), 3980);
    EXPECT_EQ(r.Int("/lines/0/quantity"), 2);
    EXPECT_EQ(r.Str("/lines/0/sku"), "SKU-1");
    record(r);
    // Idempotent retries: the very same order again, and again naming the person differently.
    Reply again = order("SO-1", p1id, {Line("SKU-1", 2, 1990)}, At(2024, 11, 2), 200);
    EXPECT_EQ(again.json, r.json);
    Reply by_ext =
        order("SO-1", "openid:wxapp1:oP1", {Line("SKU-1", 2, 1990)}, At(2024, 11, 2), 200);
    EXPECT_EQ(by_ext.json, r.json);
    // Different content under the same order_no.
    for (const auto& [what, reply] : std::vector<std::pair<std::string, Reply>>{
             {"lines", order("SO-1", p1id, {Line("SKU-1", 1, 3980)}, At(2024, 11, 2), 409)},
             {"paid_at", order("SO-1", p1id, {Line("SKU-1", 2, 1990)}, At(2024, 11, 3), 409)},
             {"person", order("SO-1", p2id, {Line("SKU-1", 2, 1990)}, At(2024, 11, 2), 409)},
             {"sku", order("SO-1", p1id, {Line("SKU-2", 2, 1990)}, At(2024, 11, 2), 409)}}) {
      EXPECT_TRUE(IsError(reply, 409, "ORDER_NO_CONFLICT", "order_no")) << "changed " << what;
    }
    Reply g = api.Get("/v1/orders/SO-1");
    ASSERT_TRUE(HasStatus(g, 200));
    EXPECT_EQ(g.json, r.json) << "a conflicting retry must not change the stored order";
  }
  {
    Reply r = order("SO-2", "openid:wxapp1:oP1", {Line("SKU-A", 1, 10000), Line("SKU-B", 3, 500)},
                    At(2024, 11, 15), 201);
    EXPECT_EQ(r.Int("/person_id"), p1id);
    EXPECT_EQ(r.Int("/total_fen"), 11500);
    EXPECT_EQ(r.Int("/lines/1/amount_fen"), 1500);
    record(r);
  }
  record(order("SO-3", p2id, {Line("SKU-3", 1, 2990)}, At(2024, 11, 6), 201));
  record(order("SO-4", "phone:13800138000", {Line("SKU-4", 1, 5000)}, At(2024, 10, 20), 201));
  // The window's edges: the last millisecond before `to`, `to` itself, `from` itself.
  record(order("SO-5", p4id, {Line("SKU-5", 1, 8800)}, ShanghaiDayMs(2024, 12, 1) - 1, 201));
  record(order("SO-6", p4id, {Line("SKU-6", 1, 1200)}, ShanghaiDayMs(2024, 12, 1), 201));
  // Paid inside the window by someone acquired after it: not counted.
  record(order("SO-7", p5id, {Line("SKU-7", 1, 7700)}, At(2024, 11, 28), 201));
  record(order("SO-8", p2id, {Line("SKU-8", 2, 2500)}, ShanghaiDayMs(2024, 11, 1), 201));
  // A free order: a buyer and an order, no money.
  record(order("SO-10", p6id, {Line("GIFT", 1, 0)}, At(2024, 11, 3), 201));
  {
    // paid_at defaults to now, and a retry without paid_at is the same order.
    int64_t before = NowMs();
    Reply r = order("SO-9", p2id, {Line("SKU-9", 1, 100)}, std::nullopt, 201);
    ASSERT_EQ(r.status, 201);
    EXPECT_GE(r.Int("/paid_at"), before - 1000);
    EXPECT_LE(r.Int("/paid_at"), NowMs() + 1000);
    Reply again = order("SO-9", p2id, {Line("SKU-9", 1, 100)}, std::nullopt, 200);
    EXPECT_EQ(again.json, r.json);
    record(r);
  }

  // ---- refunds
  auto refunded = [&](const std::string& no) {
    for (auto& o : model.orders) {
      if (o.no == no) o.refunded = true;
    }
  };
  {
    int64_t before = NowMs();
    Reply r = api.Post("/v1/orders/SO-3/refund", value{{"reason", "不想要了"}});
    ASSERT_TRUE(HasStatus(r, 200));
    EXPECT_EQ(r.Str("/status"), "refunded");
    EXPECT_EQ(r.Int("/refunded_fen"), r.Int("/total_fen"));
    EXPECT_GE(r.Int("/refunded_at"), before - 1000);
    Reply again = api.Post("/v1/orders/SO-3/refund", value{{"reason", "不想要了"}});
    ASSERT_TRUE(HasStatus(again, 200));
    EXPECT_EQ(again.json, r.json) << "a refund retry returns the refunded order unchanged";
    Reply g = api.Get("/v1/orders/SO-3");
    EXPECT_EQ(g.json, r.json);
    stored["SO-3"] = r.json;
    refunded("SO-3");

    Reply r2 = api.Post("/v1/orders/SO-2/refund", value{{"refunded_at", At(2024, 11, 16)}});
    ASSERT_TRUE(HasStatus(r2, 200));
    EXPECT_EQ(r2.Int("/refunded_at"), At(2024, 11, 16));
    EXPECT_EQ(r2.Int("/refunded_fen"), 11500);
    stored["SO-2"] = r2.json;
    refunded("SO-2");

    Reply r5 = api.Post("/v1/orders/SO-5/refund", "");  // the body is optional
    ASSERT_TRUE(HasStatus(r5, 200));
    EXPECT_EQ(r5.Str("/status"), "refunded");
    stored["SO-5"] = r5.json;
    refunded("SO-5");
    EXPECT_TRUE(
        IsError(api.Post("/v1/orders/NOPE/refund", value{{"reason", "x"}}), 404, "NOT_FOUND"));
  }

  // ---- reads and paging
  for (const auto& [no, body] : stored) {
    Reply g = api.Get("/v1/orders/" + no);
    ASSERT_TRUE(HasStatus(g, 200));
    EXPECT_EQ(g.json, body) << no;
  }
  EXPECT_TRUE(IsError(api.Get("/v1/orders/SO-404"), 404, "NOT_FOUND"));
  for (int limit : {1, 2, 3, 500}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    auto people = AllPages(api, "/v1/people", limit);
    ASSERT_EQ(people.size(), model.people.size());
    for (size_t i = 0; i < people.size(); ++i) {
      EXPECT_EQ(people[i].at("id").as_int64(), model.people[i].id) << "people come in id order";
    }
    auto orders = AllPages(api, "/v1/orders", limit);
    std::set<std::string> nos;
    for (const auto& o : orders) {
      std::string no(o.at("order_no").as_string());
      EXPECT_TRUE(nos.insert(no).second) << "order listed twice: " << no;
      EXPECT_EQ(o, stored[no]);
    }
    EXPECT_EQ(nos.size(), stored.size());
  }
  {
    auto mine = AllPages(api, "/v1/orders?person_id=" + std::to_string(p1id), 1);
    std::set<std::string> nos;
    for (const auto& o : mine) nos.insert(std::string(o.at("order_no").as_string()));
    EXPECT_EQ(nos, (std::set<std::string>{"SO-1", "SO-2"}));
    EXPECT_TRUE(AllPages(api, "/v1/orders?person_id=99999999", 10).empty());
  }

  // ---- the overview
  const int64_t nov1 = ShanghaiDayMs(2024, 11, 1), dec1 = ShanghaiDayMs(2024, 12, 1);
  value by_date = ExpectOverview(api, "from=2024-11-01&to=2024-12-01", model, nov1, dec1, {});
  value by_ms = ExpectOverview(api, "from=" + std::to_string(nov1) + "&to=" + std::to_string(dec1),
                               model, nov1, dec1, {});
  EXPECT_EQ(by_date, by_ms) << "dates and milliseconds must mean the same window";
  {
    // Spot-check the model itself on this window, so a shared mistake cannot hide.
    Model::Figures t = model.Total(nov1, dec1, {});
    EXPECT_EQ(t.people, 5);  // p1 p2 p3 p4 p6 (p5 came in December)
    EXPECT_EQ(t.buyers, 4);  // p1 p2 p4 p6
    EXPECT_EQ(t.orders, 6);  // SO-1 2 3 5 8 10; not 4 (October), 6 (at `to`), 7 (p5), 9 (now)
    EXPECT_EQ(t.paid, 3980 + 11500 + 2990 + 8800 + 5000 + 0);
    EXPECT_EQ(t.refunded, 11500 + 2990 + 8800);
  }
  for (int64_t ch : {ch1, ch2, ch3}) {
    ExpectOverview(api, "from=2024-11-01&to=2024-12-01&channel=" + std::to_string(ch), model, nov1,
                   dec1, ch);
    ExpectOverview(api,
                   "channel=" + std::to_string(ch) + "&from=" + std::to_string(nov1) +
                       "&to=" + std::to_string(dec1),
                   model, nov1, dec1, ch);
  }
  ExpectOverview(api, "from=2024-01-01&to=2025-01-01", model, ShanghaiDayMs(2024, 1, 1),
                 ShanghaiDayMs(2025, 1, 1), {});
  ExpectOverview(api, "from=2024-01-01&to=2025-01-01&channel=" + std::to_string(ch1), model,
                 ShanghaiDayMs(2024, 1, 1), ShanghaiDayMs(2025, 1, 1), ch1);
  {
    // A millisecond window around the edge orders only.
    int64_t from = dec1 - 1, to = dec1 + 1;
    value v = ExpectOverview(api, "from=" + std::to_string(from) + "&to=" + std::to_string(to),
                             model, from, to, {});
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.at("orders").as_int64(), 2);  // SO-5 and SO-6
  }
  {
    // People but no buyers: zero denominators for aov and frequency.
    value v = ExpectOverview(api, "from=2024-09-01&to=2024-09-02", model, ShanghaiDayMs(2024, 9, 1),
                             ShanghaiDayMs(2024, 9, 2), {});
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.at("people").as_int64(), 1);
    EXPECT_EQ(v.at("orders").as_int64(), 0);
    // Nobody at all.
    v = ExpectOverview(api, "from=2020-01-01&to=2020-02-01", model, ShanghaiDayMs(2020, 1, 1),
                       ShanghaiDayMs(2020, 2, 1), {});
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.at("people").as_int64(), 0);
  }
  {
    // The default window: the 30 local days up to the end of today.
    Reply r = api.Get("/v1/analytics/overview");
    ASSERT_TRUE(HasStatus(r, 200));
    int64_t from = r.Int("/from"), to = r.Int("/to"), now = NowMs();
    EXPECT_EQ(to - from, 30 * 86'400'000LL);
    EXPECT_EQ((to + 8 * kHour) % 86'400'000, 0) << "to is not a Shanghai midnight";
    EXPECT_GT(to, now);
    EXPECT_LE(to - now, 86'400'000 + 60'000);
    ExpectOverview(api, "", model, from, to, {});
    EXPECT_GE(model.Total(from, to, {}).orders, 1);  // SO-9, paid now
  }
}

// The same write sent by several clients at once lands once: one 201, the rest 200 with the same
// body (writes of one group commit see each other).
TEST_P(SliceTest, ConcurrentDuplicatesLandOnce) {
  constexpr int kClients = 8;
  auto race = [&](const std::string& target, const value& body) {
    std::vector<Reply> replies(kClients);
    std::vector<std::thread> ts;
    std::atomic<int> ready{0};
    for (int i = 0; i < kClients; ++i) {
      ts.emplace_back([&, i] {
        Api api(port(), boot_.api_key);
        ASSERT_TRUE(HasStatus(api.Get("/healthz"), 200));  // connect first, then start together
        ready++;
        while (ready < kClients) std::this_thread::yield();
        replies[i] = api.Post(target, body);
      });
    }
    for (auto& t : ts) t.join();
    return replies;
  };
  Api api = AdminApi();
  Reply ch = api.Post("/v1/channels", Channel("Race", "offline", "wecom", 0));
  ASSERT_TRUE(HasStatus(ch, 201));
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string ext = "unionid:race-" + std::to_string(round);
    auto people =
        race("/v1/people", value{{"external_id", ext}, {"channel_state", ch.Str("/state")}});
    int created = 0;
    for (const auto& r : people) {
      ASSERT_TRUE(r.status == 201 || r.status == 200) << r.Describe();
      created += r.status == 201;
      EXPECT_EQ(r.At("/person"), people[0].At("/person"));
    }
    EXPECT_EQ(created, 1);
    const std::string no = "RACE-" + std::to_string(round);
    value order{{"order_no", no},
                {"external_id", ext},
                {"lines", json::array{Line("R", 3, 333)}},
                {"total_fen", 999},
                {"paid_at", NowMs() - 60'000}};
    auto orders = race("/v1/orders", order);
    created = 0;
    for (const auto& r : orders) {
      ASSERT_TRUE(r.status == 201 || r.status == 200) << r.Describe();
      created += r.status == 201;
      EXPECT_EQ(r.json, orders[0].json);
    }
    EXPECT_EQ(created, 1);
    auto refunds = race("/v1/orders/" + no + "/refund", value{{"reason", "race"}});
    for (const auto& r : refunds) {
      ASSERT_TRUE(HasStatus(r, 200));
      EXPECT_EQ(r.json, refunds[0].json) << "every refund retry sees the one refund";
    }
  }
  Reply ov = api.Get("/v1/analytics/overview?from=0&to=" + std::to_string(NowMs() + 86'400'000));
  ASSERT_TRUE(HasStatus(ov, 200));
  EXPECT_EQ(ov.Int("/people"), 5);
  EXPECT_EQ(ov.Int("/orders"), 5);
  EXPECT_EQ(ov.Int("/paid_fen"), 5 * 999);
  EXPECT_EQ(ov.Int("/refunded_fen"), 5 * 999);
  EXPECT_EQ(ov.Int("/gmv_fen"), 0);
  ExpectOverviewConsistent(ov.json);
}

// Every order may be as large as the limits allow (200 lines × 100000 × 10^10 fen = 2·10^17), so
// 47 of them exceed int64 in sum. The server must either refuse the order that would overflow or
// report the exact sums: never a 500, never a wrong figure.
TEST_P(SliceTest, LargestOrdersDoNotBreakTheOverview) {
  Api api = AdminApi();
  ASSERT_TRUE(HasStatus(api.Post("/v1/people", value{{"external_id", "unionid:whale"}}), 201));
  json::array lines;
  for (int i = 0; i < 200; ++i) lines.push_back(Line("MAX", 100000, 10'000'000'000));
  unsigned __int128 accepted = 0;
  int n_accepted = 0;
  for (int i = 0; i < 50; ++i) {
    value body{{"order_no", "MAX-" + std::to_string(i)},
               {"external_id", "unionid:whale"},
               {"lines", lines},
               {"total_fen", 200'000'000'000'000'000LL},
               {"paid_at", NowMs() - 60'000}};
    Reply r = api.Post("/v1/orders", body);
    if (r.status == 201) {
      accepted += 200'000'000'000'000'000ULL;
      ++n_accepted;
    } else {
      EXPECT_TRUE(IsError(r, 400, "AMOUNT_OUT_OF_RANGE")) << "order " << i;
    }
  }
  Reply ov = api.Get("/v1/analytics/overview?from=0&to=" + std::to_string(NowMs() + 86'400'000));
  ASSERT_TRUE(HasStatus(ov, 200)) << "the overview of " << n_accepted << " accepted orders fails";
  EXPECT_EQ(ov.Int("/orders"), n_accepted);
  auto decimal = [](unsigned __int128 v) {
    std::string s;
    do {
      s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
      v /= 10;
    } while (v != 0);
    return s;
  };
  EXPECT_EQ(json::serialize(ov.At("/paid_fen")), decimal(accepted));
  EXPECT_EQ(json::serialize(ov.At("/gmv_fen")), decimal(accepted));
}

SIYU_BACKEND_SUITE(SliceTest);

}  // namespace
}  // namespace siyu::it
