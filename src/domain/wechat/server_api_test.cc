#include "domain/wechat/server_api.h"

#include <gtest/gtest.h>

#include "common/json.h"

namespace siyu::wechat {
namespace {

json::object Parsed(const std::string& body) {
  auto o = ParseJsonObject(body);
  EXPECT_TRUE(o.ok()) << body;
  return o.ok() ? *o : json::object{};
}

TEST(ServerApi, TokenPathsCarryPercentEncodedCredentials) {
  EXPECT_EQ(AccessTokenPath(Platform::kWeCom, "ww1234", "s/e+c=r&t"),
            "/cgi-bin/gettoken?corpid=ww1234&corpsecret=s%2Fe%2Bc%3Dr%26t");
  EXPECT_EQ(AccessTokenPath(Platform::kWeixin, "wx1234", "abc"),
            "/cgi-bin/token?grant_type=client_credential&appid=wx1234&secret=abc");
}

TEST(ServerApi, ParsesTokensAndTheirFaults) {
  auto t = ParseAccessToken(R"({"errcode":0,"errmsg":"ok","access_token":"T1","expires_in":7200})",
                            "wecom");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->token, "T1");
  EXPECT_EQ(t->expires_in, 7200);
  auto bad = ParseAccessToken(R"({"errcode":40001,"errmsg":"invalid credential"})", "wecom");
  EXPECT_EQ(bad.status().code(), ErrorCode::kWechatSecretRejected);
  EXPECT_NE(bad.status().message().find("PUT /v1/wechat/apps/wecom"), std::string::npos);
  EXPECT_NE(bad.status().message().find("errcode 40001"), std::string::npos);
  EXPECT_EQ(
      ParseAccessToken(R"({"errcode":40164,"errmsg":"invalid ip 1.2.3.4"})", "official_account")
          .status()
          .code(),
      ErrorCode::kWechatIpNotAllowed);
  EXPECT_EQ(ParseAccessToken(R"({"expires_in":7200})", "wecom").status().code(),
            ErrorCode::kWechatApiError);
  EXPECT_EQ(ParseAccessToken("<html>", "wecom").status().code(), ErrorCode::kWechatApiError);
}

TEST(ServerApi, FaultsMapToStableCodesWithTheirField) {
  struct Case {
    int64_t errcode;
    const char* kind;
    ErrorCode code;
    const char* field;
  } cases[] = {
      {60020, "wecom", ErrorCode::kWechatIpNotAllowed, ""},
      {48002, "wecom", ErrorCode::kWechatNoPermission, ""},
      {48001, "official_account", ErrorCode::kWechatNoPermission, ""},
      {45009, "mini_program", ErrorCode::kWechatRateLimited, ""},
      {40003, "wecom", ErrorCode::kWechatInvalidUsers, "users"},
      {84074, "wecom", ErrorCode::kWechatInvalidUsers, "users"},
      {41030, "mini_program", ErrorCode::kWechatInvalidPage, "page"},
      {-1, "mini_program", ErrorCode::kWechatApiError, ""},
      {99999, "wecom", ErrorCode::kWechatApiError, ""},
  };
  for (const auto& c : cases) {
    Status s = FaultStatus("api", ApiFault{c.errcode, "msg"}, c.kind);
    EXPECT_EQ(s.code(), c.code) << c.errcode;
    EXPECT_EQ(s.field(), c.field) << c.errcode;
    EXPECT_TRUE(s.message().starts_with("api errcode " + std::to_string(c.errcode) + ": msg; "))
        << s.message();
  }
  // Only the token faults are retried with a new token.
  EXPECT_TRUE(IsTokenFault(40014));
  EXPECT_TRUE(IsTokenFault(42001));
  EXPECT_TRUE(IsTokenFault(40001));
  EXPECT_FALSE(IsTokenFault(40013));
}

TEST(ServerApi, FaultOfReadsOnlyJsonFaults) {
  EXPECT_FALSE(FaultOf(R"({"errcode":0,"errmsg":"ok"})"));
  EXPECT_FALSE(FaultOf("\x89PNG\r\n\x1a\n...."));
  EXPECT_FALSE(FaultOf(R"({"config_id":"x"})"));
  auto f = FaultOf(R"( {"errcode":-1,"errmsg":"system \u0001 busy"})");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->errcode, -1);
  EXPECT_EQ(f->errmsg, "system ? busy") << "control characters are not passed on";
}

TEST(ServerApi, ContactWayBodies) {
  ContactWayRequest r;
  r.type = 2;
  r.state = "cAbC123xyZ789";
  r.users = {"zhangsan", "lisi"};
  r.skip_verify = false;
  r.remark = std::string(40, 'x');
  json::object add = Parsed(AddContactWayBody(r));
  EXPECT_EQ(add.at("type").as_int64(), 2);
  EXPECT_EQ(add.at("scene").as_int64(), 2);
  EXPECT_EQ(add.at("state").as_string(), "cAbC123xyZ789");
  EXPECT_EQ(add.at("skip_verify").as_bool(), false);
  EXPECT_EQ(add.at("user").as_array().size(), 2u);
  EXPECT_EQ(add.at("remark").as_string().size(), 30u) << "remark is cut to WeCom's 30";
  // Cut by characters, not bytes.
  r.remark = "门店收银台扫码门店收银台扫码门店收银台扫码门店收银台扫码门店收银台扫码";
  EXPECT_EQ(Utf8Length(Parsed(AddContactWayBody(r)).at("remark").as_string()), 30);

  json::object upd = Parsed(UpdateContactWayBody("42a4d6", r));
  EXPECT_EQ(upd.at("config_id").as_string(), "42a4d6");
  EXPECT_FALSE(upd.contains("type")) << "WeCom fixes the type at creation";
  EXPECT_EQ(upd.at("state").as_string(), "cAbC123xyZ789");

  auto way = ParseAddContactWay(
      R"({"errcode":0,"errmsg":"ok","config_id":"42b34949e138eb6e027c123cba77fAAA","qr_code":"https://p.qpic.cn/wwhead/x"})");
  ASSERT_TRUE(way.ok());
  EXPECT_EQ(way->config_id, "42b34949e138eb6e027c123cba77fAAA");
  EXPECT_EQ(way->qr_code, "https://p.qpic.cn/wwhead/x");
  EXPECT_EQ(ParseAddContactWay(R"({"errcode":0})").status().code(), ErrorCode::kWechatApiError);
  EXPECT_EQ(ParseAddContactWay(R"({"errcode":41054,"errmsg":"user not active"})").status().field(),
            "users");
  EXPECT_TRUE(ParseUpdateContactWay(R"({"errcode":0,"errmsg":"ok"})").ok());
}

TEST(ServerApi, OfficialAccountQrcode) {
  json::object body = Parsed(PermanentQrcodeBody("cAbC123xyZ789"));
  EXPECT_EQ(body.at("action_name").as_string(), "QR_LIMIT_STR_SCENE");
  EXPECT_EQ(body.at("action_info").at("scene").at("scene_str").as_string(), "cAbC123xyZ789");
  EXPECT_FALSE(body.contains("expire_seconds"));
  auto q = ParseQrcodeCreate(
      R"({"ticket":"gQH47joAAAAAAAAAASxod+HR=","url":"http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI"})");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->url, "http://weixin.qq.com/q/kZgfwMTm72WWPkovabbI");
  EXPECT_EQ(ShowQrcodeUrl(q->ticket),
            "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH47joAAAAAAAAAASxod%2BHR%3D");
  EXPECT_EQ(ParseQrcodeCreate(R"({"ticket":"t"})").status().code(), ErrorCode::kWechatApiError);
}

TEST(ServerApi, MiniProgramCode) {
  json::object body = Parsed(WxacodeUnlimitBody("cAbC123xyZ789", ""));
  EXPECT_EQ(body.at("scene").as_string(), "cAbC123xyZ789");
  EXPECT_FALSE(body.contains("page")) << "no page: the home page";
  EXPECT_EQ(Parsed(WxacodeUnlimitBody("s", "pages/shop/index")).at("page").as_string(),
            "pages/shop/index");
  auto png = ParseWxacode(std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png->mime, "image/png");
  auto jpeg = ParseWxacode("\xFF\xD8\xFF\xE0....");
  ASSERT_TRUE(jpeg.ok());
  EXPECT_EQ(jpeg->mime, "image/jpeg");
  EXPECT_EQ(ParseWxacode(R"({"errcode":41030,"errmsg":"invalid page"})").status().code(),
            ErrorCode::kWechatInvalidPage);
  EXPECT_EQ(ParseWxacode("GIF89a").status().code(), ErrorCode::kWechatApiError);
}

}  // namespace
}  // namespace siyu::wechat
