// Mini-program login against a local stand-in for api.weixin.qq.com: siyu exchanges the wx.login
// code at jscode2session, links the person by openid (and unionid), keeps the session_key to
// itself, and later decrypts getPhoneNumber's encryptedData (built here with OpenSSL) to link the
// phone. WeChat's errcodes and a dead upstream map to the documented error codes.
#include <openssl/evp.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "harness.h"

namespace siyu::it {
namespace {

using json::value;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

const std::string kAppId = "wx4f4bc4dec97d474b";
const std::string kSecret = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
// Session keys (base64 of 16 bytes) the stand-in hands out, and their raw bytes.
const std::string kKey1Raw = "0123456789abcdef";
const std::string kKey1 = "MDEyMzQ1Njc4OWFiY2RlZg==";
const std::string kKey2 = "ZmVkY2JhOTg3NjU0MzIxMA==";
const std::string kOpenId1 = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";
const std::string kUnionId1 = "ocMvos6NjeKLIBqg5Mr9QjxrP1FA";
const std::string kOpenId2 = "oGZUI0egBJY1zhBYw2KhdUfwVJJF";
const std::string kOpenId3 = "oGZUI0egBJY1zhBYw2KhdUfwVJJG";
const std::string kTakenUnion = "ocMvos6NjeKLIBqg5Mr9QjxrTAKEN";

// A tiny synchronous HTTP server standing in for api.weixin.qq.com, one connection at a time.
class FakeWechat {
 public:
  FakeWechat() : acceptor_(ioc_, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeWechat() {
    stop_ = true;
    boost::asio::io_context wake_ioc;
    tcp::socket wake(wake_ioc);
    boost::system::error_code ec;
    wake.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_), ec);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  std::vector<std::map<std::string, std::string>> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  static std::map<std::string, std::string> Query(const std::string& target, std::string* path) {
    std::map<std::string, std::string> q;
    size_t qm = target.find('?');
    *path = target.substr(0, qm);
    if (qm == std::string::npos) return q;
    std::string qs = target.substr(qm + 1);
    size_t pos = 0;
    while (pos <= qs.size()) {
      size_t amp = qs.find('&', pos);
      std::string kv = qs.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      size_t eq = kv.find('=');
      if (!kv.empty()) q[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
    return q;
  }

  // The canned answer for a js_code; nullopt: hang up without answering.
  static std::optional<std::string> Answer(const std::string& code) {
    if (code == "code_union") {
      return R"({"openid":")" + kOpenId1 + R"(","session_key":")" + kKey1 + R"(","unionid":")" +
             kUnionId1 + R"("})";
    }
    if (code == "code_plain") {
      return R"({"openid":")" + kOpenId2 + R"(","session_key":")" + kKey2 + R"("})";
    }
    if (code == "code_conflict") {
      return R"({"openid":")" + kOpenId3 + R"(","session_key":")" + kKey2 + R"(","unionid":")" +
             kTakenUnion + R"("})";
    }
    if (code == "code_invalid") return R"({"errcode":40029,"errmsg":"invalid code"})";
    if (code == "code_busy") return R"({"errcode":45011,"errmsg":"api minute-quota reach limit"})";
    if (code == "code_risky") return R"({"errcode":40226,"errmsg":"high risk user"})";
    if (code == "code_system") return R"({"errcode":-1,"errmsg":"system error"})";
    if (code == "code_hangup") return std::nullopt;
    return R"({"errcode":40029,"errmsg":"invalid code"})";
  }

  void Run() {
    while (!stop_) {
      tcp::socket sock(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) break;
      beast::flat_buffer buf;
      http::request<http::string_body> req;
      http::read(sock, buf, req, ec);
      if (ec) continue;
      std::string path;
      auto q = Query(std::string(req.target()), &path);
      q["(path)"] = path;
      q["(method)"] = std::string(req.method_string());
      {
        std::lock_guard lock(mu_);
        requests_.push_back(q);
      }
      auto body = path == "/sns/jscode2session" ? Answer(q["js_code"])
                                                : std::optional<std::string>(R"({"errcode":-1})");
      if (!body) {
        sock.shutdown(tcp::socket::shutdown_both, ec);
        continue;
      }
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, "text/plain");  // what WeChat sends
      res.keep_alive(false);
      res.body() = *body;
      res.prepare_payload();
      http::write(sock, res, ec);
      sock.shutdown(tcp::socket::shutdown_both, ec);
    }
  }

  boost::asio::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::map<std::string, std::string>> requests_;
};

std::string Base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(n);
  return out;
}

// encryptedData as WeChat builds it: AES-128-CBC, PKCS#7, base64.
std::string Seal(const std::string& key_raw, const std::string& iv_raw, const std::string& plain) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::string out(plain.size() + 32, '\0');
  int n1 = 0, n2 = 0;
  EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), nullptr,
                     reinterpret_cast<const unsigned char*>(key_raw.data()),
                     reinterpret_cast<const unsigned char*>(iv_raw.data()));
  EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &n1,
                    reinterpret_cast<const unsigned char*>(plain.data()),
                    static_cast<int>(plain.size()));
  EVP_EncryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + n1, &n2);
  EVP_CIPHER_CTX_free(ctx);
  out.resize(n1 + n2);
  return Base64(out);
}

std::string PhoneJson(const std::string& watermark_appid) {
  return R"({"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86",)"
         R"("watermark":{"timestamp":1700000000,"appid":")" +
         watermark_appid + R"("}})";
}

class MiniProgramTest : public BackendTest {
 protected:
  void BeforeStart() override {
    wechat_ = std::make_unique<FakeWechat>();
    extra_server_args_ = {"--wechat-api-base",
                          "http://127.0.0.1:" + std::to_string(wechat_->port())};
  }
  void ConfigureApp(Api& api) {
    Reply put = api.Send("PUT", "/v1/wechat/apps/mini_program",
                         json::serialize(value{{"app_id", kAppId}, {"secret", kSecret}}));
    ASSERT_TRUE(HasStatus(put, 200));
    EXPECT_EQ(put.Str("/kind"), "mini_program");
    EXPECT_EQ(put.Str("/app_id"), kAppId);
    EXPECT_EQ(put.body.find(kSecret), std::string::npos) << "the secret is never shown back";
    EXPECT_EQ(api.Get("/v1/wechat/apps").body.find(kSecret), std::string::npos);
  }
  Reply Login(Api& api, const std::string& code) {
    return api.Post("/v1/wechat/mini_program/login", value{{"code", code}});
  }

  std::unique_ptr<FakeWechat> wechat_;
};

TEST_P(MiniProgramTest, LoginLinksOpenidAndUnionidAndKeepsTheSessionKey) {
  Api api = AdminApi();
  // Not configured yet: nothing is sent to WeChat.
  EXPECT_TRUE(IsError(Login(api, "code_union"), 404, "NOT_FOUND"));
  EXPECT_TRUE(wechat_->requests().empty());
  ConfigureApp(api);

  Reply first = Login(api, "code_union");
  ASSERT_TRUE(HasStatus(first, 200));
  EXPECT_EQ(first.Str("/openid"), kOpenId1);
  EXPECT_EQ(first.Str("/unionid"), kUnionId1);
  EXPECT_EQ(first.Str("/link"), "linked");
  const std::string session = first.Str("/session");
  EXPECT_TRUE(session.starts_with("mps_")) << session;
  EXPECT_GT(session.size(), 20u);
  EXPECT_EQ(first.body.find(kKey1), std::string::npos) << "session_key leaked: " << first.body;
  EXPECT_EQ(first.body.find("session_key"), std::string::npos);
  const int64_t person = first.Int("/person_id");

  // The stand-in saw the app's credentials and the code, as jscode2session wants them.
  auto reqs = wechat_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0]["(method)"], "GET");
  EXPECT_EQ(reqs[0]["(path)"], "/sns/jscode2session");
  EXPECT_EQ(reqs[0]["appid"], kAppId);
  EXPECT_EQ(reqs[0]["secret"], kSecret);
  EXPECT_EQ(reqs[0]["js_code"], "code_union");
  EXPECT_EQ(reqs[0]["grant_type"], "authorization_code");

  // Both ids lead to the person.
  Reply p = api.Get("/v1/people/" + std::to_string(person));
  ASSERT_TRUE(HasStatus(p, 200));
  std::set<std::string> ids;
  for (const auto& id : p.At("/external_ids").as_array()) ids.insert(std::string(id.as_string()));
  EXPECT_TRUE(ids.count("openid:" + kAppId + ":" + kOpenId1)) << p.body;
  EXPECT_TRUE(ids.count("unionid:" + kUnionId1)) << p.body;
  EXPECT_EQ(api.Get("/v1/people?external_id=unionid:" + kUnionId1).Int("/id"), person);

  // Logging in again maps to the same person with a fresh session.
  Reply again = Login(api, "code_union");
  ASSERT_TRUE(HasStatus(again, 200));
  EXPECT_EQ(again.Int("/person_id"), person);
  EXPECT_NE(again.Str("/session"), session);

  // Without a unionid: a new person, unionid null.
  Reply plain = Login(api, "code_plain");
  ASSERT_TRUE(HasStatus(plain, 200));
  EXPECT_TRUE(plain.At("/unionid").is_null());
  EXPECT_NE(plain.Int("/person_id"), person);
  EXPECT_EQ(api.Get("/v1/people?external_id=openid:" + kAppId + ":" + kOpenId2).Int("/id"),
            plain.Int("/person_id"));

  // An openid new to siyu whose unionid is known (from the official account, say) joins the
  // unionid's person.
  Reply known = api.Post("/v1/people", value{{"external_id", "unionid:" + kTakenUnion}});
  ASSERT_TRUE(HasStatus(known, 201));
  const int64_t union_person = known.Int("/person/id");
  Reply joined = Login(api, "code_conflict");
  ASSERT_TRUE(HasStatus(joined, 200));
  EXPECT_EQ(joined.Int("/person_id"), union_person);
  EXPECT_EQ(joined.Str("/link"), "linked");
}

TEST_P(MiniProgramTest, OpenidAndUnionidOfDifferentPeopleAreMerged) {
  Api api = AdminApi();
  ConfigureApp(api);
  Reply by_openid =
      api.Post("/v1/people", value{{"external_id", "openid:" + kAppId + ":" + kOpenId3}});
  ASSERT_TRUE(HasStatus(by_openid, 201));
  Reply by_union = api.Post("/v1/people", value{{"external_id", "unionid:" + kTakenUnion}});
  ASSERT_TRUE(HasStatus(by_union, 201));
  const int64_t x = by_openid.Int("/person/id"), y = by_union.Int("/person/id");
  ASSERT_LT(x, y);
  // WeChat says the openid and the unionid are one user: the people merge into the older row.
  Reply conflict = Login(api, "code_conflict");
  ASSERT_TRUE(HasStatus(conflict, 200));
  EXPECT_EQ(conflict.Str("/link"), "merged");
  EXPECT_EQ(conflict.Int("/person_id"), x);
  EXPECT_EQ(api.Get("/v1/people?external_id=unionid:" + kTakenUnion).Int("/id"), x);
  Reply row = api.Get("/v1/identity/resolve?id=unionid:" + kTakenUnion);
  EXPECT_EQ(row.Int("/person_row"), y) << "the unionid stays with the row it came with";
  Reply who = api.Get("/v1/people/" + std::to_string(y) + "/identity");
  EXPECT_EQ(who.Str("/history/0/reason"), "mini-program login") << who.body;
  EXPECT_EQ(AllPages(api, "/v1/people", 100).size(), 1u);
}

TEST_P(MiniProgramTest, WechatErrorsMapToErrorCodes) {
  Api api = AdminApi();
  ConfigureApp(api);
  EXPECT_TRUE(IsError(Login(api, "code_invalid"), 400, "WECHAT_INVALID_CODE"));
  EXPECT_TRUE(IsError(Login(api, "code_busy"), 429, "WECHAT_RATE_LIMITED"));
  EXPECT_TRUE(IsError(Login(api, "code_risky"), 403, "WECHAT_RISKY_USER"));
  EXPECT_TRUE(IsError(Login(api, "code_system"), 502, "WECHAT_API_ERROR"));
  Reply hangup = Login(api, "code_hangup");
  EXPECT_TRUE(IsError(hangup, 502, "UPSTREAM_UNAVAILABLE"));
  EXPECT_EQ(hangup.body.find(kSecret), std::string::npos) << "the secret leaked: " << hangup.body;
  EXPECT_TRUE(IsError(api.Post("/v1/wechat/mini_program/login", value{{"code", ""}}), 400,
                      "INVALID_FIELD", "code"));
  EXPECT_TRUE(
      IsError(api.Post("/v1/wechat/mini_program/login", "{}"), 400, "MISSING_FIELD", "code"));
  // No person was created by any of these.
  EXPECT_TRUE(AllPages(api, "/v1/people", 100).empty());

  // The ingest role may log users in; an analyst may not.
  Reply ingest_key = api.Post("/v1/api-keys", value{{"name", "mp backend"}, {"role", "ingest"}});
  ASSERT_TRUE(HasStatus(ingest_key, 201));
  Api ingest(port(), ingest_key.Str("/key"));
  EXPECT_TRUE(HasStatus(Login(ingest, "code_plain"), 200));
  Reply analyst_key = api.Post("/v1/api-keys", value{{"name", "bi"}, {"role", "analyst"}});
  ASSERT_TRUE(HasStatus(analyst_key, 201));
  Api analyst(port(), analyst_key.Str("/key"));
  EXPECT_TRUE(IsError(Login(analyst, "code_plain"), 403, "FORBIDDEN"));
}

TEST_P(MiniProgramTest, PhoneIsDecryptedWithTheSessionKeyAndLinked) {
  Api api = AdminApi();
  ConfigureApp(api);
  Reply login = Login(api, "code_union");
  ASSERT_TRUE(HasStatus(login, 200));
  const int64_t person = login.Int("/person_id");
  const std::string session = login.Str("/session");
  const std::string iv_raw = "abcdefghijklmnop";
  const std::string phone_id = "phone:+8613800138000";

  // Sealed for another app: refused, nothing linked.
  Reply wrong = api.Post("/v1/wechat/mini_program/phone",
                         value{{"session", session},
                               {"encrypted_data", Seal(kKey1Raw, iv_raw, PhoneJson("wxOTHERAPP"))},
                               {"iv", Base64(iv_raw)}});
  EXPECT_TRUE(IsError(wrong, 400, "BAD_RECEIVE_ID"));
  EXPECT_TRUE(IsError(api.Get("/v1/people?external_id=phone:%2B8613800138000"), 404, "NOT_FOUND"));

  // An unknown session.
  value good{{"session", "mps_doesnotexist0000000000000000000"},
             {"encrypted_data", Seal(kKey1Raw, iv_raw, PhoneJson(kAppId))},
             {"iv", Base64(iv_raw)}};
  EXPECT_TRUE(
      IsError(api.Post("/v1/wechat/mini_program/phone", good), 404, "NOT_FOUND", "session"));

  // The session of another tenant is unknown here.
  Api anon(port());
  Reply admin_login = anon.Post("/v1/auth/login",
                                value{{"username", boot_.username}, {"password", boot_.password}});
  ASSERT_TRUE(HasStatus(admin_login, 200));
  const std::string admin_session = admin_login.Str("/token");
  Reply tb = Api(port(), admin_session).Post("/v1/tenants", value{{"name", "Brand B"}});
  ASSERT_TRUE(HasStatus(tb, 201));
  Reply kb = Api(port(), admin_session, std::to_string(tb.Int("/id")))
                 .Post("/v1/api-keys", value{{"name", "b"}, {"role", "admin"}});
  ASSERT_TRUE(HasStatus(kb, 201));
  Api b(port(), kb.Str("/key"));
  ConfigureApp(b);
  good.as_object()["session"] = session;
  EXPECT_TRUE(IsError(b.Post("/v1/wechat/mini_program/phone", good), 404, "NOT_FOUND", "session"));
  EXPECT_TRUE(IsError(b.Get("/v1/people?external_id=phone:%2B8613800138000"), 404, "NOT_FOUND"));

  // The right data: the phone joins the session's person.
  Reply ok = api.Post("/v1/wechat/mini_program/phone", good);
  ASSERT_TRUE(HasStatus(ok, 200));
  EXPECT_EQ(ok.Int("/person_id"), person);
  EXPECT_EQ(ok.Str("/phone"), phone_id);
  EXPECT_EQ(ok.Str("/link"), "linked");
  EXPECT_EQ(api.Get("/v1/people?external_id=phone:%2B8613800138000").Int("/id"), person);
  // Again: idempotent.
  Reply ok2 = api.Post("/v1/wechat/mini_program/phone", good);
  ASSERT_TRUE(HasStatus(ok2, 200));
  EXPECT_EQ(ok2.Int("/person_id"), person);

  // Another user's session with a phone that is already someone's: WeChat vouches that the phone
  // is this user's, so the two people merge (into the older row).
  Reply login2 = Login(api, "code_plain");
  ASSERT_TRUE(HasStatus(login2, 200));
  const std::string key2_raw = "fedcba9876543210";
  Reply clash = api.Post("/v1/wechat/mini_program/phone",
                         value{{"session", login2.Str("/session")},
                               {"encrypted_data", Seal(key2_raw, iv_raw, PhoneJson(kAppId))},
                               {"iv", Base64(iv_raw)}});
  ASSERT_TRUE(HasStatus(clash, 200));
  ASSERT_LT(person, login2.Int("/person_id"));
  EXPECT_EQ(clash.Int("/person_id"), person);
  EXPECT_EQ(clash.Str("/link"), "merged");
  EXPECT_EQ(api.Get("/v1/people?external_id=phone:%2B8613800138000").Int("/id"), person);
  EXPECT_EQ(api.Get("/v1/people/" + std::to_string(login2.Int("/person_id"))).Int("/id"), person);

  // Data sealed with another key does not open.
  Reply stale = api.Post("/v1/wechat/mini_program/phone",
                         value{{"session", session},
                               {"encrypted_data", Seal(key2_raw, iv_raw, PhoneJson(kAppId))},
                               {"iv", Base64(iv_raw)}});
  EXPECT_EQ(stale.status, 400) << stale.Describe();
}

SIYU_BACKEND_SUITE(MiniProgramTest);

}  // namespace
}  // namespace siyu::it
