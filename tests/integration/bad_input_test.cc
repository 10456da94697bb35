// The bad-input catalogue: every malformed, oversized, unauthenticated or misrouted request gets
// its documented 4xx and error code, never a 500, and leaves the data exactly as it was.
#include <random>

#include "harness.h"

namespace siyu::it {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using json::value;

enum class Auth { kAdmin, kNone, kSession };

struct BadCase {
  std::string name;
  std::string method;
  std::string target;
  std::string body;
  int status;
  std::string code;
  std::optional<std::string> field = std::nullopt;
  std::string content_type = "application/json";
  Auth auth = Auth::kAdmin;
  std::vector<std::pair<std::string, std::string>> headers = {};
};

class BadInputTest : public BackendTest {
 protected:
  // Everything a client could observe about the tenant's data.
  std::string Snapshot() {
    Api api = AdminApi();
    std::string s;
    for (const char* path : {"/v1/channels", "/v1/api-keys", "/v1/tenants",
                             "/v1/analytics/overview?from=0&to=4102444800000"}) {
      Reply r = api.Get(path);
      EXPECT_TRUE(HasStatus(r, 200)) << path;
      s += std::string(path) + " " + r.body + "\n";
    }
    for (const auto& p : AllPages(api, "/v1/people", 500)) s += json::serialize(p) + "\n";
    for (const auto& o : AllPages(api, "/v1/orders", 500)) s += json::serialize(o) + "\n";
    return s;
  }
};

std::string Order(const std::string& fields) { return R"({"order_no":"BAD-1",)" + fields + "}"; }

TEST_P(BadInputTest, CatalogueAnswersDocumentedErrorsAndChangesNothing) {
  Api admin = AdminApi();
  Reply ch = admin.Post(
      "/v1/channels", value{{"name", "Base"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}});
  ASSERT_TRUE(HasStatus(ch, 201));
  Reply person = admin.Post("/v1/people", value{{"external_id", "unionid:base"},
                                                {"channel_state", ch.Str("/state")},
                                                {"acquired_at", NowMs() - 86'400'000}});
  ASSERT_TRUE(HasStatus(person, 201));
  const std::string pid = std::to_string(person.Int("/person/id"));
  Reply base = admin.Post(
      "/v1/orders",
      value{{"order_no", "BASE-1"},
            {"person_id", person.Int("/person/id")},
            {"lines", json::array{value{{"sku", "S"}, {"quantity", 1}, {"unit_price_fen", 100}}}},
            {"total_fen", 100},
            {"paid_at", NowMs() - 3'600'000}});
  ASSERT_TRUE(HasStatus(base, 201));
  // A key that we revoke, to check revoked keys are refused at once.
  Reply doomed = admin.Post("/v1/api-keys", value{{"name", "doomed"}, {"role", "admin"}});
  ASSERT_TRUE(HasStatus(doomed, 201));
  const std::string revoked_key = doomed.Str("/key");
  ASSERT_TRUE(HasStatus(admin.Delete("/v1/api-keys/" + std::to_string(doomed.Int("/id"))), 200));
  Reply login = Api(port()).Post("/v1/auth/login",
                                 value{{"username", boot_.username}, {"password", boot_.password}});
  ASSERT_TRUE(HasStatus(login, 200));
  const std::string session = login.Str("/token");

  const std::string before = Snapshot();

  const std::string line = R"("lines":[{"sku":"S","quantity":1,"unit_price_fen":100}])";
  const std::string good_order =
      Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":100)");
  const std::string future = std::to_string(NowMs() + 86'400'000);
  const std::string key_id = boot_.api_key.substr(5, boot_.api_key.find('_', 5) - 5);
  const std::string secret = boot_.api_key.substr(boot_.api_key.find('_', 5) + 1);
  std::string deep;
  for (int i = 0; i < 64; ++i) deep += R"({"a":)";
  deep += "1";
  for (int i = 0; i < 64; ++i) deep += "}";
  std::string many_lines = "[";
  std::string max_lines = "[";
  for (int i = 0; i < 201; ++i) {
    many_lines += std::string(i ? "," : "") + R"({"sku":"S","quantity":1,"unit_price_fen":1})";
    if (i < 200) {
      max_lines += std::string(i ? "," : "") +
                   R"({"sku":"S","quantity":100000,"unit_price_fen":10000000000})";
    }
  }
  many_lines += "]";
  max_lines += "]";

  std::vector<BadCase> cases = {
      // ---- malformed JSON and non-objects
      {"truncated JSON", "POST", "/v1/orders", R"({"order_no":)", 400, "MALFORMED_JSON"},
      {"JSON array body", "POST", "/v1/orders", "[" + good_order + "]", 400, "MALFORMED_JSON"},
      {"empty array body", "POST", "/v1/people", "[]", 400, "MALFORMED_JSON"},
      {"JSON string body", "POST", "/v1/people", R"("unionid:x")", 400, "MALFORMED_JSON"},
      {"JSON number body", "POST", "/v1/channels", "42", 400, "MALFORMED_JSON"},
      {"JSON null body", "POST", "/v1/channels", "null", 400, "MALFORMED_JSON"},
      {"two objects", "POST", "/v1/orders", good_order + good_order, 400, "MALFORMED_JSON"},
      {"trailing comma", "POST", "/v1/people", R"({"external_id":"unionid:x",})", 400,
       "MALFORMED_JSON"},
      {"invalid UTF-8", "POST", "/v1/people",
       "{\"external_id\":\"unionid:x\",\"name\":\"\xff\xfe\"}", 400, "MALFORMED_JSON"},
      {"nesting too deep", "POST", "/v1/people", deep, 400, "MALFORMED_JSON"},
      {"empty body", "POST", "/v1/people", "", 400, "MALFORMED_JSON"},
      {"not JSON at all", "POST", "/v1/auth/login", "username=admin&password=x", 400,
       "MALFORMED_JSON", std::nullopt, "application/json", Auth::kNone},
      // ---- wrong types
      {"order_no number", "POST", "/v1/orders",
       R"({"order_no":123,"person_id":)" + pid + "," + line + R"(,"total_fen":100})", 400,
       "INVALID_FIELD", "order_no"},
      {"person_id string", "POST", "/v1/orders",
       Order(R"("person_id":")" + pid + "\"," + line + R"(,"total_fen":100)"), 400, "INVALID_FIELD",
       "person_id"},
      {"person_id zero", "POST", "/v1/orders",
       Order(R"("person_id":0,)" + line + R"(,"total_fen":100)"), 400, "INVALID_FIELD",
       "person_id"},
      {"lines object", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + R"(,"lines":{},"total_fen":100)"), 400, "INVALID_FIELD",
       "lines"},
      {"line not object", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + R"(,"lines":[1],"total_fen":100)"), 400, "INVALID_FIELD",
       "lines[0]"},
      {"quantity string", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":"1","unit_price_fen":100}],"total_fen":100)"),
       400, "INVALID_FIELD", "lines[0].quantity"},
      {"quantity fraction", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":1.5,"unit_price_fen":100}],"total_fen":150)"),
       400, "INVALID_FIELD", "lines[0].quantity"},
      {"sku number", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":7,"quantity":1,"unit_price_fen":100}],"total_fen":100)"),
       400, "INVALID_FIELD", "lines[0].sku"},
      {"total string", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":"100")"), 400, "INVALID_FIELD",
       "total_fen"},
      {"total bool", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":true)"), 400, "INVALID_FIELD",
       "total_fen"},
      {"paid_at date string", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":100,"paid_at":"2024-11-01")"),
       400, "INVALID_FIELD", "paid_at"},
      {"order_no with space", "POST", "/v1/orders",
       R"({"order_no":"BAD 1","person_id":)" + pid + "," + line + R"(,"total_fen":100})", 400,
       "INVALID_FIELD", "order_no"},
      {"order_no too long", "POST", "/v1/orders",
       R"({"order_no":")" + std::string(65, 'A') + R"(","person_id":)" + pid + "," + line +
           R"(,"total_fen":100})",
       400, "INVALID_FIELD", "order_no"},
      {"no lines", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + R"(,"lines":[],"total_fen":0)"), 400, "INVALID_FIELD",
       "lines"},
      {"201 lines", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + R"(,"lines":)" + many_lines + R"(,"total_fen":201)"), 400,
       "INVALID_FIELD", "lines"},
      {"external_id number", "POST", "/v1/people", R"({"external_id":5})", 400, "INVALID_FIELD",
       "external_id"},
      {"external_id unknown kind", "POST", "/v1/people", R"({"external_id":"wechat:abc"})", 400,
       "INVALID_FIELD", "external_id"},
      {"external_id short phone", "POST", "/v1/people", R"({"external_id":"phone:12345"})", 400,
       "INVALID_FIELD", "external_id"},
      {"openid without app", "POST", "/v1/people", R"({"external_id":"openid:abc"})", 400,
       "INVALID_FIELD", "external_id"},
      {"person name array", "POST", "/v1/people", R"({"external_id":"unionid:x","name":["x"]})",
       400, "INVALID_FIELD", "name"},
      {"order by bad external id", "POST", "/v1/orders",
       Order(R"("external_id":"nope",)" + line + R"(,"total_fen":100)"), 400, "INVALID_FIELD",
       "external_id"},
      {"channel pool", "POST", "/v1/channels",
       R"({"name":"x","source_pool":"tiktok","touchpoint":"wecom"})", 400, "INVALID_FIELD",
       "source_pool"},
      {"channel touchpoint", "POST", "/v1/channels",
       R"({"name":"x","source_pool":"offline","touchpoint":"email"})", 400, "INVALID_FIELD",
       "touchpoint"},
      {"channel empty name", "POST", "/v1/channels",
       R"({"name":"","source_pool":"offline","touchpoint":"wecom"})", 400, "INVALID_FIELD", "name"},
      {"channel long name", "POST", "/v1/channels",
       R"({"name":")" + std::string(65, 'n') + R"(","source_pool":"offline","touchpoint":"wecom"})",
       400, "INVALID_FIELD", "name"},
      {"channel cost string", "POST", "/v1/channels",
       R"({"name":"x","source_pool":"offline","touchpoint":"wecom","cost_fen":"1"})", 400,
       "INVALID_FIELD", "cost_fen"},
      {"key role", "POST", "/v1/api-keys", R"({"name":"k","role":"god"})", 400, "INVALID_FIELD",
       "role"},
      {"refund reason number", "POST", "/v1/orders/BASE-1/refund", R"({"reason":5})", 400,
       "INVALID_FIELD", "reason"},
      {"login username number", "POST", "/v1/auth/login", R"({"username":5,"password":"x"})", 400,
       "INVALID_FIELD", "username", "application/json", Auth::kNone},
      // ---- unknown fields
      {"unknown top-level field", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":100,"coupon":"X")"), 400,
       "UNKNOWN_FIELD", "coupon"},
      {"unknown field in lines[0]", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":1,"unit_price_fen":100,"discount_fen":5}],)"
             R"("total_fen":100)"),
       400, "UNKNOWN_FIELD", "lines[0].discount_fen"},
      {"unknown field in lines[1]", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":1,"unit_price_fen":100},)"
             R"({"sku":"T","quantity":1,"unit_price_fen":100,"x":null}],"total_fen":200)"),
       400, "UNKNOWN_FIELD", "lines[1].x"},
      {"unknown person field", "POST", "/v1/people", R"({"external_id":"unionid:x","gender":"f"})",
       400, "UNKNOWN_FIELD", "gender"},
      {"unknown channel field", "POST", "/v1/channels",
       R"({"name":"x","source_pool":"offline","touchpoint":"wecom","color":"red"})", 400,
       "UNKNOWN_FIELD", "color"},
      {"partial refund amount", "POST", "/v1/orders/BASE-1/refund", R"({"amount_fen":50})", 400,
       "UNKNOWN_FIELD", "amount_fen"},
      {"key tenant_id", "POST", "/v1/api-keys", R"({"name":"k","role":"admin","tenant_id":2})", 400,
       "UNKNOWN_FIELD", "tenant_id"},
      {"login extra", "POST", "/v1/auth/login",
       R"({"username":"admin","password":"x","remember":true})", 400, "UNKNOWN_FIELD", "remember",
       "application/json", Auth::kNone},
      {"tenant timezone", "POST", "/v1/tenants", R"({"name":"T","timezone":"UTC"})", 400,
       "UNKNOWN_FIELD", "timezone", "application/json", Auth::kSession},
      // ---- missing fields
      {"no order_no", "POST", "/v1/orders",
       R"({"person_id":)" + pid + "," + line + R"(,"total_fen":100})", 400, "MISSING_FIELD",
       "order_no"},
      {"no lines field", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + R"(,"total_fen":100)"), 400, "MISSING_FIELD", "lines"},
      {"no total", "POST", "/v1/orders", Order(R"("person_id":)" + pid + "," + line), 400,
       "MISSING_FIELD", "total_fen"},
      {"no person", "POST", "/v1/orders", Order(line + R"(,"total_fen":100)"), 400, "MISSING_FIELD",
       "person_id"},
      {"no sku", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"quantity":1,"unit_price_fen":100}],"total_fen":100)"),
       400, "MISSING_FIELD", "lines[0].sku"},
      {"no quantity", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","unit_price_fen":100}],"total_fen":100)"),
       400, "MISSING_FIELD", "lines[0].quantity"},
      {"no unit price", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + R"(,"lines":[{"sku":"S","quantity":1}],"total_fen":100)"),
       400, "MISSING_FIELD", "lines[0].unit_price_fen"},
      {"no external_id", "POST", "/v1/people", R"({"name":"x"})", 400, "MISSING_FIELD",
       "external_id"},
      {"null external_id", "POST", "/v1/people", R"({"external_id":null})", 400, "MISSING_FIELD",
       "external_id"},
      {"no channel name", "POST", "/v1/channels",
       R"({"source_pool":"offline","touchpoint":"wecom"})", 400, "MISSING_FIELD", "name"},
      {"no touchpoint", "POST", "/v1/channels", R"({"name":"x","source_pool":"offline"})", 400,
       "MISSING_FIELD", "touchpoint"},
      {"no key role", "POST", "/v1/api-keys", R"({"name":"k"})", 400, "MISSING_FIELD", "role"},
      {"no password", "POST", "/v1/auth/login", R"({"username":"admin"})", 400, "MISSING_FIELD",
       "password", "application/json", Auth::kNone},
      {"empty object order", "POST", "/v1/orders", "{}", 400, "MISSING_FIELD"},
      // ---- money and quantity ranges
      {"negative total", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":-1)"), 400,
       "AMOUNT_OUT_OF_RANGE", "total_fen"},
      {"total 1e30", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":1e30)"), 400,
       "AMOUNT_OUT_OF_RANGE", "total_fen"},
      {"total -1e30", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":-1e30)"), 400,
       "AMOUNT_OUT_OF_RANGE", "total_fen"},
      {"total 20 digits", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":99999999999999999999)"), 400,
       "AMOUNT_OUT_OF_RANGE", "total_fen"},
      {"total uint64 max", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":18446744073709551615)"), 400,
       "AMOUNT_OUT_OF_RANGE", "total_fen"},
      {"total int64 min", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":-9223372036854775808)"), 400,
       "AMOUNT_OUT_OF_RANGE", "total_fen"},
      {"negative price", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":1,"unit_price_fen":-100}],"total_fen":0)"),
       400, "AMOUNT_OUT_OF_RANGE", "lines[0].unit_price_fen"},
      {"price over 1e10", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":1,"unit_price_fen":10000000001}],)"
             R"("total_fen":10000000001)"),
       400, "AMOUNT_OUT_OF_RANGE", "lines[0].unit_price_fen"},
      {"price 1e30", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":1,"unit_price_fen":1e30}],"total_fen":0)"),
       400, "AMOUNT_OUT_OF_RANGE", "lines[0].unit_price_fen"},
      {"quantity zero", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":0,"unit_price_fen":100}],"total_fen":0)"),
       400, "AMOUNT_OUT_OF_RANGE", "lines[0].quantity"},
      {"quantity negative", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":-2,"unit_price_fen":100}],"total_fen":0)"),
       400, "AMOUNT_OUT_OF_RANGE", "lines[0].quantity"},
      {"quantity over 100000", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":100001,"unit_price_fen":1}],"total_fen":100001)"),
       400, "AMOUNT_OUT_OF_RANGE", "lines[0].quantity"},
      {"quantity 20 digits", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":99999999999999999999,"unit_price_fen":1}],)"
             R"("total_fen":1)"),
       400, "AMOUNT_OUT_OF_RANGE", "lines[0].quantity"},
      {"negative channel cost", "POST", "/v1/channels",
       R"({"name":"x","source_pool":"offline","touchpoint":"wecom","cost_fen":-1})", 400,
       "AMOUNT_OUT_OF_RANGE", "cost_fen"},
      {"channel cost 1e30", "POST", "/v1/channels",
       R"({"name":"x","source_pool":"offline","touchpoint":"wecom","cost_fen":1e30})", 400,
       "AMOUNT_OUT_OF_RANGE", "cost_fen"},
      // ---- totals
      {"total mismatch", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid +
             R"(,"lines":[{"sku":"S","quantity":2,"unit_price_fen":100}],"total_fen":201)"),
       400, "TOTAL_MISMATCH", "total_fen"},
      {"total mismatch at the maximum", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + R"(,"lines":)" + max_lines +
             R"(,"total_fen":199999999999999999)"),
       400, "TOTAL_MISMATCH", "total_fen"},
      // ---- references that do not resolve
      {"unknown channel_state", "POST", "/v1/people",
       R"({"external_id":"unionid:new","channel_state":"cNoSuchState01"})", 422,
       "UNKNOWN_CHANNEL_STATE", "channel_state"},
      {"unknown channel_state on a known person", "POST", "/v1/people",
       R"({"external_id":"unionid:base","channel_state":"cNoSuchState01"})", 422,
       "UNKNOWN_CHANNEL_STATE", "channel_state"},
      {"unknown person id", "POST", "/v1/orders",
       Order(R"("person_id":99999999,)" + line + R"(,"total_fen":100)"), 422, "UNKNOWN_PERSON",
       "person_id"},
      {"unknown person external id", "POST", "/v1/orders",
       Order(R"("external_id":"unionid:ghost",)" + line + R"(,"total_fen":100)"), 422,
       "UNKNOWN_PERSON", "external_id"},
      {"refund unknown order", "POST", "/v1/orders/NOPE-1/refund", "{}", 404, "NOT_FOUND"},
      {"duplicate channel name", "POST", "/v1/channels",
       R"({"name":"Base","source_pool":"partner","touchpoint":"group"})", 409, "ALREADY_EXISTS",
       "name"},
      {"conflicting order_no", "POST", "/v1/orders",
       R"({"order_no":"BASE-1","person_id":)" + pid +
           R"(,"lines":[{"sku":"S","quantity":1,"unit_price_fen":101}],"total_fen":101})",
       409, "ORDER_NO_CONFLICT", "order_no"},
      // ---- time stamps
      {"paid_at in the future", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":100,"paid_at":)" + future), 400,
       "INVALID_FIELD", "paid_at"},
      {"paid_at in 1970", "POST", "/v1/orders",
       Order(R"("person_id":)" + pid + "," + line + R"(,"total_fen":100,"paid_at":1)"), 400,
       "INVALID_FIELD", "paid_at"},
      {"acquired_at in the future", "POST", "/v1/people",
       R"({"external_id":"unionid:later","acquired_at":)" + future + "}", 400, "INVALID_FIELD",
       "acquired_at"},
      {"refunded_at in the future", "POST", "/v1/orders/BASE-1/refund",
       R"({"refunded_at":)" + future + "}", 400, "INVALID_FIELD", "refunded_at"},
      {"refunded_at before paid_at", "POST", "/v1/orders/BASE-1/refund",
       R"({"refunded_at":)" + std::to_string(NowMs() - 7 * 86'400'000LL) + "}", 400,
       "INVALID_FIELD", "refunded_at"},
      // ---- credentials
      {"no credentials", "GET", "/v1/channels", "", 401, "UNAUTHENTICATED", std::nullopt, "",
       Auth::kNone},
      {"no credentials on a write", "POST", "/v1/orders", good_order, 401, "UNAUTHENTICATED",
       std::nullopt, "application/json", Auth::kNone},
      {"basic auth",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Basic YWRtaW46YWRtaW4="}}},
      {"bearer without token",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer"}}},
      {"raw key without Bearer",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", boot_.api_key}}},
      {"malformed key",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer siyu_abc"}}},
      {"key with empty id",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer siyu__" + secret}}},
      {"key with huge id",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer siyu_99999999999999999999_" + secret}}},
      {"wrong secret",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer siyu_" + key_id + "_wrongsecret"}}},
      {"secret of another id",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer siyu_987654_" + secret}}},
      {"key with trailing junk",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer " + boot_.api_key + "x"}}},
      {"unknown session",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer sess_0000000000000000000000000000000"}}},
      {"garbage token",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer hello-world"}}},
      {"revoked key reads",
       "GET",
       "/v1/channels",
       "",
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "",
       Auth::kNone,
       {{"Authorization", "Bearer " + revoked_key}}},
      {"revoked key writes",
       "POST",
       "/v1/orders",
       good_order,
       401,
       "UNAUTHENTICATED",
       std::nullopt,
       "application/json",
       Auth::kNone,
       {{"Authorization", "Bearer " + revoked_key}}},
      {"wrong password", "POST", "/v1/auth/login",
       R"({"username":"admin","password":"not the password"})", 401, "INVALID_CREDENTIALS",
       std::nullopt, "application/json", Auth::kNone},
      // ---- content types
      {"text/plain body", "POST", "/v1/orders", good_order, 415, "UNSUPPORTED_MEDIA_TYPE",
       std::nullopt, "text/plain"},
      {"form body", "POST", "/v1/people", "external_id=unionid%3Ax", 415, "UNSUPPORTED_MEDIA_TYPE",
       std::nullopt, "application/x-www-form-urlencoded"},
      {"body without content type", "POST", "/v1/channels",
       R"({"name":"x","source_pool":"offline","touchpoint":"wecom"})", 415,
       "UNSUPPORTED_MEDIA_TYPE", std::nullopt, ""},
      // ---- query parameters
      {"people limit 0", "GET", "/v1/people?limit=0", "", 400, "INVALID_QUERY", "limit", ""},
      {"people limit 501", "GET", "/v1/people?limit=501", "", 400, "INVALID_QUERY", "limit", ""},
      {"people limit abc", "GET", "/v1/people?limit=abc", "", 400, "INVALID_QUERY", "limit", ""},
      {"people limit 1.5", "GET", "/v1/people?limit=1.5", "", 400, "INVALID_QUERY", "limit", ""},
      {"people after -1", "GET", "/v1/people?after=-1", "", 400, "INVALID_QUERY", "after", ""},
      {"people after huge", "GET", "/v1/people?after=99999999999999999999", "", 400,
       "INVALID_QUERY", "after", ""},
      {"people unknown param", "GET", "/v1/people?sort=name", "", 400, "INVALID_QUERY", "sort", ""},
      {"people bad external_id", "GET", "/v1/people?external_id=garbage", "", 400, "INVALID_QUERY",
       "external_id", ""},
      {"people empty external_id", "GET", "/v1/people?external_id=", "", 400, "INVALID_QUERY",
       "external_id", ""},
      {"orders limit 0", "GET", "/v1/orders?limit=0", "", 400, "INVALID_QUERY", "limit", ""},
      {"orders person_id abc", "GET", "/v1/orders?person_id=abc", "", 400, "INVALID_QUERY",
       "person_id", ""},
      {"orders person_id 0", "GET", "/v1/orders?person_id=0", "", 400, "INVALID_QUERY", "person_id",
       ""},
      {"orders unknown param", "GET", "/v1/orders?status=paid", "", 400, "INVALID_QUERY", "status",
       ""},
      {"channels unknown param", "GET", "/v1/channels?x=1", "", 400, "INVALID_QUERY", "x", ""},
      {"overview bad month", "GET", "/v1/analytics/overview?from=2024-13-01", "", 400,
       "INVALID_QUERY", "from", ""},
      {"overview bad day", "GET", "/v1/analytics/overview?from=2024-01-01&to=2024-02-30", "", 400,
       "INVALID_QUERY", "to", ""},
      {"overview short date", "GET", "/v1/analytics/overview?from=2024-1-1", "", 400,
       "INVALID_QUERY", "from", ""},
      {"overview word", "GET", "/v1/analytics/overview?to=tomorrow", "", 400, "INVALID_QUERY", "to",
       ""},
      {"overview negative ms", "GET", "/v1/analytics/overview?from=-5", "", 400, "INVALID_QUERY",
       "from", ""},
      {"overview exponent", "GET", "/v1/analytics/overview?from=1e3", "", 400, "INVALID_QUERY",
       "from", ""},
      {"overview from after to", "GET", "/v1/analytics/overview?from=2024-12-01&to=2024-11-01", "",
       400, "INVALID_QUERY", "from", ""},
      {"overview empty window", "GET", "/v1/analytics/overview?from=1000&to=1000", "", 400,
       "INVALID_QUERY", "from", ""},
      {"overview channel abc", "GET", "/v1/analytics/overview?channel=abc", "", 400,
       "INVALID_QUERY", "channel", ""},
      {"overview channel 0", "GET", "/v1/analytics/overview?channel=0", "", 400, "INVALID_QUERY",
       "channel", ""},
      {"overview unknown param", "GET", "/v1/analytics/overview?group_by=day", "", 400,
       "INVALID_QUERY", "group_by", ""},
      {"overview unknown channel", "GET", "/v1/analytics/overview?channel=99999999", "", 404,
       "NOT_FOUND", "channel", ""},
      // ---- unknown ids, routes and methods
      {"channel id text", "GET", "/v1/channels/abc", "", 404, "NOT_FOUND", std::nullopt, ""},
      {"person id negative", "GET", "/v1/people/-1", "", 404, "NOT_FOUND", std::nullopt, ""},
      {"revoke unknown key", "DELETE", "/v1/api-keys/99999999", "", 404, "NOT_FOUND", std::nullopt,
       ""},
      {"unknown route", "GET", "/v1/nope", "", 404, "ROUTE_NOT_FOUND", std::nullopt, ""},
      {"bare /v1", "GET", "/v1", "", 404, "ROUTE_NOT_FOUND", std::nullopt, ""},
      {"unknown sub-route", "POST", "/v1/orders/BASE-1/cancel", "{}", 404, "ROUTE_NOT_FOUND"},
      {"too deep", "GET", "/v1/people/1/orders", "", 404, "ROUTE_NOT_FOUND", std::nullopt, ""},
      {"unknown version", "DELETE", "/v2/orders/BASE-1", "", 404, "ROUTE_NOT_FOUND", std::nullopt,
       ""},
      {"unknown route without credentials", "GET", "/v1/secret", "", 404, "ROUTE_NOT_FOUND",
       std::nullopt, "", Auth::kNone},
      {"PUT channels", "PUT", "/v1/channels", R"({"name":"x"})", 405, "METHOD_NOT_ALLOWED"},
      {"DELETE order", "DELETE", "/v1/orders/BASE-1", "", 405, "METHOD_NOT_ALLOWED", std::nullopt,
       ""},
      {"PATCH person", "PATCH", "/v1/people/" + pid, R"({"name":"x"})", 405, "METHOD_NOT_ALLOWED"},
      {"DELETE channel", "DELETE", "/v1/channels/" + std::to_string(ch.Int("/id")), "", 405,
       "METHOD_NOT_ALLOWED", std::nullopt, ""},
      {"GET login", "GET", "/v1/auth/login", "", 405, "METHOD_NOT_ALLOWED", std::nullopt, "",
       Auth::kNone},
      {"POST overview", "POST", "/v1/analytics/overview", "{}", 405, "METHOD_NOT_ALLOWED"},
      {"GET refund", "GET", "/v1/orders/BASE-1/refund", "", 405, "METHOD_NOT_ALLOWED", std::nullopt,
       ""},
      {"POST healthz", "POST", "/healthz", "{}", 405, "METHOD_NOT_ALLOWED", std::nullopt,
       "application/json", Auth::kNone},
      {"DELETE api-keys list", "DELETE", "/v1/api-keys", "", 405, "METHOD_NOT_ALLOWED",
       std::nullopt, ""},
      // ---- sessions choosing a tenant
      {"tenant header not a number",
       "GET",
       "/v1/channels",
       "",
       400,
       "INVALID_FIELD",
       "X-Siyu-Tenant",
       "",
       Auth::kSession,
       {{"X-Siyu-Tenant", "brand-a"}}},
      {"tenant header of no membership",
       "GET",
       "/v1/channels",
       "",
       403,
       "FORBIDDEN",
       "X-Siyu-Tenant",
       "",
       Auth::kSession,
       {{"X-Siyu-Tenant", "424242"}}},
  };

  for (const BadCase& c : cases) {
    SCOPED_TRACE("case '" + c.name + "': " + c.method + " " + c.target + " " +
                 (c.body.size() > 300 ? c.body.substr(0, 300) + "…" : c.body));
    std::string token = c.auth == Auth::kAdmin     ? boot_.api_key
                        : c.auth == Auth::kSession ? session
                                                   : "";
    Api api(port(), token);
    Reply r = api.Send(c.method, c.target, c.body, c.content_type, c.headers);
    std::optional<std::string_view> field;
    if (c.field) field = *c.field;
    EXPECT_TRUE(IsError(r, c.status, c.code, field));
  }

  // ---- limits, checked on raw sockets (the server may close before reading everything)
  const std::string auth = "Authorization: Bearer " + boot_.api_key + "\r\n";
  {
    SCOPED_TRACE("body over 1 MiB");
    std::string body =
        R"({"external_id":"unionid:big","name":")" + std::string(1 << 20, 'x') + R"("})";
    std::string req =
        "POST /v1/people HTTP/1.1\r\nHost: t\r\n" + auth +
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    std::string resp = RawExchange(port(), req, false, 10s);
    EXPECT_EQ(RawStatus(resp), 413) << resp.substr(0, 300);
    EXPECT_EQ(RawErrorCode(resp), "BODY_TOO_LARGE") << resp.substr(0, 300);
  }
  {
    SCOPED_TRACE("chunked body over 1 MiB");
    std::string req = "POST /v1/people HTTP/1.1\r\nHost: t\r\n" + auth +
                      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 20; ++i) {
      std::string chunk(64 * 1024, i == 0 ? '{' : ' ');
      char size[16];
      snprintf(size, sizeof size, "%zx\r\n", chunk.size());
      req += size + chunk + "\r\n";
    }
    req += "0\r\n\r\n";
    std::string resp = RawExchange(port(), req, false, 10s);
    EXPECT_EQ(RawStatus(resp), 413) << resp.substr(0, 300);
    EXPECT_EQ(RawErrorCode(resp), "BODY_TOO_LARGE") << resp.substr(0, 300);
  }
  {
    SCOPED_TRACE("body just under 1 MiB is read and judged on its content");
    std::string body =
        R"({"external_id":"unionid:big","name":")" + std::string(1000 * 1000, 'x') + R"("})";
    Reply r = admin.Post("/v1/people", body);
    EXPECT_TRUE(IsError(r, 400, "INVALID_FIELD", "name"));
  }
  {
    SCOPED_TRACE("headers over 16 KiB");
    Reply r = admin.Send("GET", "/v1/channels", "", "", {{"X-Padding", std::string(17000, 'p')}});
    EXPECT_TRUE(IsError(r, 431, "HEADERS_TOO_LARGE"));
    std::string req = "GET /v1/channels HTTP/1.1\r\nHost: t\r\n" + auth;
    for (int i = 0; i < 40; ++i)
      req += "X-Pad-" + std::to_string(i) + ": " + std::string(500, 'q') + "\r\n";
    req += "\r\n";
    std::string resp = RawExchange(port(), req, false, 10s);
    EXPECT_EQ(RawStatus(resp), 431) << resp.substr(0, 300);
    EXPECT_EQ(RawErrorCode(resp), "HEADERS_TOO_LARGE") << resp.substr(0, 300);
  }
  {
    SCOPED_TRACE("headers under 16 KiB are fine");
    Reply r = Api(port(), boot_.api_key)
                  .Send("GET", "/v1/channels", "", "", {{"X-Padding", std::string(12000, 'p')}});
    EXPECT_TRUE(HasStatus(r, 200));
  }

  // ---- garbage on the wire; the server must keep serving
  std::mt19937 rng(12345);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  struct Garbage {
    std::string name;
    std::string bytes;
    bool half_close;
    int want;  // 0: any 4xx or a silent close is fine
    std::string code;
  };
  std::vector<Garbage> garbage = {
      {"not HTTP", "HELLO WORLD\r\n\r\n", false, 400, "BAD_REQUEST"},
      {"TLS client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s + std::string(64, 'B'),
       true, 0, ""},
      {"random bytes", noise, true, 0, ""},
      {"NUL in a header", "GET /healthz HTTP/1.1\r\nX-A: a\0b\r\n\r\n"s, false, 400, "BAD_REQUEST"},
      {"bad version", "GET /healthz HTTP/9.9\r\n\r\n", false, 400, "BAD_REQUEST"},
      {"truncated headers", "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Trunc", true, 400,
       "BAD_REQUEST"},
      {"truncated body",
       "POST /v1/people HTTP/1.1\r\nHost: t\r\n" + auth +
           "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"external_id\":",
       true, 400, "BAD_REQUEST"},
      {"huge request line", "GET /" + std::string(100 * 1024, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n",
       false, 431, "HEADERS_TOO_LARGE"},
      {"bad chunk size",
       "POST /v1/people HTTP/1.1\r\nHost: t\r\n" + auth +
           "Content-Type: application/json\r\nTransfer-Encoding: "
           "chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
       false, 400, "BAD_REQUEST"},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true, 0, ""},
      {"bare newlines", std::string(5000, '\n'), true, 0, ""},
  };
  for (const Garbage& g : garbage) {
    SCOPED_TRACE("garbage: " + g.name);
    std::string resp = RawExchange(port(), g.bytes, g.half_close, 10s);
    int status = RawStatus(resp);
    if (g.want != 0) {
      EXPECT_EQ(status, g.want) << resp.substr(0, 300);
      EXPECT_EQ(RawErrorCode(resp), g.code) << resp.substr(0, 300);
    } else if (!resp.empty()) {
      EXPECT_TRUE(status >= 400 && status < 500) << resp.substr(0, 300);
    }
    Reply h = Api(port()).Get("/healthz");
    EXPECT_TRUE(HasStatus(h, 200)) << "the server stopped answering after " << g.name;
  }
  {
    // Two pipelined requests in one write get two answers, in order.
    std::string req =
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: first\r\n\r\n"
        "GET /v1/nope HTTP/1.1\r\nHost: t\r\nX-Request-Id: second\r\nConnection: close\r\n\r\n";
    std::string resp = RawExchange(port(), req, false, 10s);
    size_t a = resp.find("HTTP/1.1 200"), b = resp.find("HTTP/1.1 404");
    EXPECT_TRUE(a != std::string::npos && b != std::string::npos && a < b) << resp;
  }

  EXPECT_EQ(Snapshot(), before) << "a rejected request changed the data";
}

SIYU_BACKEND_SUITE(BadInputTest);

}  // namespace
}  // namespace siyu::it
