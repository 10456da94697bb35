// WeChat's servers calling siyu: URL verification, encrypted WeCom customer-contact callbacks and
// official-account events, turned into events on the right person with channel attribution,
// exactly once across WeChat's retries. Callbacks are built with siyu's own WeChat crypto, which
// tests/wechat cross-checks against the npm peers.
#include "domain/wechat/callback_crypto.h"
#include "harness.h"

namespace siyu::it {
namespace {

using json::value;

// The published WeCom sample app (workweixin/weworkapi_cplusplus): token, key, corp id.
const std::string kToken = "QDG6eK";
const std::string kKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const std::string kCorp = "wx5823bf96d3bd56c7";

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

class WechatCallbackTest : public BackendTest {
 protected:
  // Signs and encrypts `xml` as WeCom would, and posts it to `tenant`'s callback.
  Reply PostWeCom(int64_t tenant, const std::string& xml, const std::string& ts,
                  const std::string& nonce, bool tamper = false) {
    auto crypto = wechat::CallbackCrypto::Create(kToken, kKey, kCorp);
    EXPECT_TRUE(crypto.ok());
    auto enc = crypto->Encrypt(xml);
    EXPECT_TRUE(enc.ok());
    std::string sig = crypto->Signature(ts, nonce, *enc);
    if (tamper) sig[0] = sig[0] == 'a' ? 'b' : 'a';
    std::string body = "<xml><ToUserName><![CDATA[" + kCorp + "]]></ToUserName><Encrypt><![CDATA[" +
                       *enc + "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>";
    Api raw(port());
    return raw.Send("POST",
                    "/v1/wechat/wecom/" + std::to_string(tenant) +
                        "/callback?msg_signature=" + sig + "&timestamp=" + ts + "&nonce=" + nonce,
                    body, "text/xml");
  }
  static std::string AddContact(const std::string& external, const std::string& state,
                                const std::string& create_time) {
    return "<xml><ToUserName><![CDATA[" + kCorp +
           "]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>" +
           create_time +
           "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_"
           "contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><!"
           "[CDATA[guide_lili]]></UserID><ExternalUserID><![CDATA[" +
           external + "]]></ExternalUserID><State><![CDATA[" + state +
           "]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>";
  }
  int64_t Tenant() { return boot_.tenant_id; }
};

TEST_P(WechatCallbackTest, WeComVerifyAddContactDedupAndTamper) {
  Api api = AdminApi();
  Reply put = api.Send(
      "PUT", "/v1/wechat/apps/wecom",
      json::serialize(value{{"app_id", kCorp}, {"token", kToken}, {"encoding_aes_key", kKey}}));
  ASSERT_TRUE(HasStatus(put, 200));
  EXPECT_EQ(put.Str("/callback_path"),
            "/v1/wechat/wecom/" + std::to_string(Tenant()) + "/callback");
  EXPECT_EQ(put.body.find(kKey), std::string::npos) << "the key is never shown back";

  // URL verification with the published vector.
  Api raw(port());
  Reply verify = raw.Get(
      "/v1/wechat/wecom/" + std::to_string(Tenant()) +
      "/callback?msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&"
      "nonce=263014780&echostr=" +
      UrlEncode("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+"
                "FZXvnaqQ=="));
  ASSERT_TRUE(HasStatus(verify, 200));
  EXPECT_EQ(verify.body, "1616140317555161061");
  EXPECT_TRUE(IsError(raw.Get("/v1/wechat/wecom/" + std::to_string(Tenant()) +
                              "/callback?msg_signature=0000&timestamp=1&nonce=2&echostr=abc"),
                      401, "BAD_SIGNATURE"));

  Reply ch =
      api.Post("/v1/channels",
               value{{"name", "门店活码"}, {"source_pool", "offline"}, {"touchpoint", "wecom"}});
  ASSERT_TRUE(HasStatus(ch, 201));
  std::string state = ch.Str("/state");
  std::string ts = std::to_string(NowMs() / 1000 - 60);
  std::string xml = AddContact("woAJ2GCAAAXtWyujaWJHDDGi0mAAAA", state, ts);

  Reply tampered = PostWeCom(Tenant(), xml, ts, "1372623149", /*tamper=*/true);
  EXPECT_TRUE(IsError(tampered, 401, "BAD_SIGNATURE"));
  std::string ext = "external_userid:" + kCorp + ":woAJ2GCAAAXtWyujaWJHDDGi0mAAAA";
  EXPECT_TRUE(IsError(api.Get("/v1/people?external_id=" + ext), 404, "NOT_FOUND"))
      << "a refused callback stores nothing";

  Reply ok = PostWeCom(Tenant(), xml, ts, "1372623149");
  ASSERT_TRUE(HasStatus(ok, 200));
  EXPECT_EQ(ok.body, "success");
  Reply person = api.Get("/v1/people?external_id=" + ext);
  ASSERT_TRUE(HasStatus(person, 200));
  EXPECT_EQ(person.Int("/first_channel_id"), ch.Int("/id"));
  int64_t pid = person.Int("/id");

  // WeChat retries (same callback, new nonce): acknowledged, stored once.
  ASSERT_TRUE(HasStatus(PostWeCom(Tenant(), xml, ts, "99999"), 200));
  Reply tl = api.Get("/v1/people/" + std::to_string(pid) + "/timeline");
  ASSERT_TRUE(HasStatus(tl, 200));
  ASSERT_EQ(tl.At("/items").as_array().size(), 1u) << tl.body;
  EXPECT_EQ(tl.Str("/items/0/type"), "contact_added");
  EXPECT_EQ(tl.Str("/items/0/properties/user_id"), "guide_lili");
  EXPECT_EQ(tl.Int("/items/0/channel_id"), ch.Int("/id"));

  // An unknown state is kept on the event, not refused (WeChat cannot fix it).
  std::string ts2 = std::to_string(NowMs() / 1000 - 30);
  ASSERT_TRUE(
      HasStatus(PostWeCom(Tenant(), AddContact("wmOther", "nosuchstate", ts2), ts2, "7"), 200));
  Reply other = api.Get("/v1/people?external_id=external_userid:" + kCorp + ":wmOther");
  ASSERT_TRUE(HasStatus(other, 200));
  EXPECT_TRUE(other.At("/first_channel_id").is_null());

  // Another tenant's URL: nothing configured there, nothing stored anywhere.
  EXPECT_TRUE(IsError(PostWeCom(Tenant() + 1000, xml, ts, "5"), 404, "NOT_FOUND"));
}

TEST_P(WechatCallbackTest, OfficialAccountSubscribeWithSceneAndUnsubscribe) {
  Api api = AdminApi();
  const std::string app = "wx49f0ab532d5d035a", token = "oatoken1";
  ASSERT_TRUE(HasStatus(
      api.Send(
          "PUT", "/v1/wechat/apps/official_account",
          json::serialize(value{{"app_id", app}, {"token", token}, {"encoding_aes_key", kKey}})),
      200));
  Reply ch = api.Post("/v1/channels", value{{"name", "公众号海报"},
                                            {"source_pool", "wechat_public"},
                                            {"touchpoint", "official_account"}});
  ASSERT_TRUE(HasStatus(ch, 201));
  std::string state = ch.Str("/state");
  auto post = [&](const std::string& event, const std::string& key, int64_t t) {
    std::string ts = std::to_string(t), nonce = "n" + ts;
    std::string sig = wechat::SortedSha1({token, ts, nonce});
    std::string xml =
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA["
        "oFan1]]></FromUserName><CreateTime>" +
        ts + "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[" + event +
        "]]></Event><EventKey><![CDATA[" + key + "]]></EventKey></xml>";
    Api raw(port());
    return raw.Send("POST",
                    "/v1/wechat/official_account/" + std::to_string(Tenant()) +
                        "/callback?signature=" + sig + "&timestamp=" + ts + "&nonce=" + nonce +
                        "&openid=oFan1",
                    xml, "text/xml");
  };
  int64_t t = NowMs() / 1000 - 100;
  ASSERT_TRUE(HasStatus(post("subscribe", "qrscene_" + state, t), 200));
  ASSERT_TRUE(HasStatus(post("unsubscribe", "", t + 10), 200));
  Reply person = api.Get("/v1/people?external_id=openid:" + app + ":oFan1");
  ASSERT_TRUE(HasStatus(person, 200));
  EXPECT_EQ(person.Int("/first_channel_id"), ch.Int("/id"));
  Reply tl = api.Get("/v1/people/" + std::to_string(person.Int("/id")) + "/timeline");
  ASSERT_TRUE(HasStatus(tl, 200));
  std::vector<std::string> types;
  for (const auto& e : tl.At("/items").as_array()) types.emplace_back(e.at("type").as_string());
  std::sort(types.begin(), types.end());
  EXPECT_EQ(types, (std::vector<std::string>{"follow", "qr_scanned", "unfollow"}));
  // The channel report counts the scan and the follow.
  Reply rep = api.Get("/v1/analytics/channels?from=0&to=" + std::to_string(NowMs() + 86'400'000));
  ASSERT_TRUE(HasStatus(rep, 200));
  for (const auto& row : rep.At("/rows").as_array()) {
    if (!row.at("channel_id").is_null() && row.at("channel_id").as_int64() == ch.Int("/id")) {
      EXPECT_EQ(row.at("scans").as_int64(), 1);
      EXPECT_EQ(row.at("adds").as_int64(), 1);
      EXPECT_EQ(row.at("new_people").as_int64(), 1);
    }
  }
}

TEST_P(WechatCallbackTest, AppConfigIsValidatedAndAdminOnly) {
  Api api = AdminApi();
  EXPECT_TRUE(IsError(api.Send("PUT", "/v1/wechat/apps/wecom",
                               json::serialize(value{{"app_id", kCorp},
                                                     {"token", kToken},
                                                     {"encoding_aes_key", std::string(42, 'A')}})),
                      400, "INVALID_FIELD", "encoding_aes_key"));
  EXPECT_TRUE(IsError(
      api.Send(
          "PUT", "/v1/wechat/apps/sms",
          json::serialize(value{{"app_id", kCorp}, {"token", kToken}, {"encoding_aes_key", kKey}})),
      404, "NOT_FOUND"));
  Reply key = api.Post("/v1/api-keys", value{{"name", "ops"}, {"role", "operator"}});
  ASSERT_TRUE(HasStatus(key, 201));
  Api op(port(), key.Str("/key"));
  EXPECT_TRUE(IsError(op.Get("/v1/wechat/apps"), 403, "FORBIDDEN"));
  Reply list = api.Get("/v1/wechat/apps");
  ASSERT_TRUE(HasStatus(list, 200));
  EXPECT_TRUE(list.At("/items").as_array().empty());
}

SIYU_BACKEND_SUITE(WechatCallbackTest);

}  // namespace
}  // namespace siyu::it
