// Imports over HTTP: a CSV body, the API's validation per row, line-numbered errors, valid rows
// committed, and a second import of the same file changing nothing.
#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

class ImportTest : public BackendTest {};

TEST_P(ImportTest, PeopleThenOrdersRerunAndErrors) {
  Api api = AdminApi();
  Reply key = api.Post("/v1/api-keys", value{{"name", "migration"}, {"role", "ingest"}});
  ASSERT_TRUE(HasStatus(key, 201));
  Api ingest(port(), key.Str("/key"));

  const std::string people =
      "手机号,昵称,注册时间\n"
      "13800000001,甲,2026-11-01 08:00\n"
      "13800000002,\"乙, 二号\",2026-11-02\n"
      "12345,坏号,2026-11-02\n";
  const std::string map =
      "?map=external_id%3Dphone:%E6%89%8B%E6%9C%BA%E5%8F%B7"
      "&map=name%3D%E6%98%B5%E7%A7%B0&map=acquired_at%3D%E6%B3%A8%E5%86%8C%E6%97%B6%E9%97%B4";
  Reply r = ingest.Send("POST", "/v1/imports/people" + map, people, "text/csv");
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Int("/rows"), 3);
  EXPECT_EQ(r.Int("/created"), 2);
  EXPECT_EQ(r.Int("/failed"), 1);
  EXPECT_EQ(r.Int("/errors/0/line"), 4);
  EXPECT_EQ(r.Str("/errors/0/field"), "external_id");
  Reply p2 = api.Get("/v1/people?external_id=phone:13800000002");
  ASSERT_TRUE(HasStatus(p2, 200));
  EXPECT_EQ(p2.Str("/name"), "乙, 二号");

  const std::string orders =
      "order_no,external_id,sku,quantity,unit_price,paid_at,refunded_at\n"
      "M-1,phone:13800000001,洗衣液,2,49.90,2026-11-03 10:00,\n"
      "M-1,phone:13800000001,抽纸,1,59.90,2026-11-03 10:00,\n"
      "M-2,phone:13800000002,牙膏,1,12.90,2026-11-04,2026-11-05\n"
      "M-3,phone:13900000000,牙膏,1,12.90,2026-11-04,\n";
  r = ingest.Send("POST", "/v1/imports/orders", orders, "text/csv");
  ASSERT_TRUE(HasStatus(r, 200));
  EXPECT_EQ(r.Int("/rows"), 3);
  EXPECT_EQ(r.Int("/created"), 2);
  EXPECT_EQ(r.Int("/failed"), 1);
  EXPECT_EQ(r.Str("/errors/0/code"), "UNKNOWN_PERSON");
  EXPECT_EQ(r.Int("/errors/0/line"), 5);
  Reply m1 = api.Get("/v1/orders/M-1");
  ASSERT_TRUE(HasStatus(m1, 200));
  EXPECT_EQ(m1.Int("/total_fen"), 2 * 4990 + 5990);
  EXPECT_EQ(api.Get("/v1/orders/M-2").Str("/status"), "refunded");

  Reply ov = api.Get("/v1/analytics/overview?from=2026-11-01&to=2026-12-01");
  ASSERT_TRUE(HasStatus(ov, 200));
  EXPECT_EQ(ov.Int("/orders"), 2);
  EXPECT_EQ(ov.Int("/gmv_fen"), 2 * 4990 + 5990);

  // The same files again: nothing changes.
  r = ingest.Send("POST", "/v1/imports/people" + map, people, "text/csv");
  EXPECT_EQ(r.Int("/created"), 0);
  EXPECT_EQ(r.Int("/unchanged"), 2);
  r = ingest.Send("POST", "/v1/imports/orders", orders, "text/csv");
  EXPECT_EQ(r.Int("/created"), 0);
  EXPECT_EQ(r.Int("/updated"), 0);
  EXPECT_EQ(r.Int("/unchanged"), 2);
  EXPECT_EQ(api.Get("/v1/analytics/overview?from=2026-11-01&to=2026-12-01").body, ov.body);
}

TEST_P(ImportTest, BadRequestsChangeNothing) {
  Api api = AdminApi();
  EXPECT_TRUE(IsError(
      api.Send("POST", "/v1/imports/people", "external_id\nunionid:x\n", "application/json"), 415,
      "UNSUPPORTED_MEDIA_TYPE"));
  EXPECT_TRUE(IsError(api.Send("POST", "/v1/imports/people?map=external_id%3Dnope",
                               "external_id\nunionid:x\n", "text/csv"),
                      400, "INVALID_FIELD", "mapping"));
  EXPECT_TRUE(IsError(
      api.Send("POST", "/v1/imports/people?map=broken", "external_id\nunionid:x\n", "text/csv"),
      400, "INVALID_QUERY", "map"));
  EXPECT_TRUE(
      IsError(api.Send("POST", "/v1/imports/pets", "a\n1\n", "text/csv"), 404, "NOT_FOUND"));
  EXPECT_TRUE(IsError(api.Get("/v1/people?external_id=unionid:x"), 404, "NOT_FOUND"));
  Reply key = api.Post("/v1/api-keys", value{{"name", "bi"}, {"role", "analyst"}});
  ASSERT_TRUE(HasStatus(key, 201));
  Api analyst(port(), key.Str("/key"));
  EXPECT_TRUE(
      IsError(analyst.Send("POST", "/v1/imports/people", "external_id\nunionid:x\n", "text/csv"),
              403, "FORBIDDEN"));
}

SIYU_BACKEND_SUITE(ImportTest);

}  // namespace
}  // namespace siyu::it
