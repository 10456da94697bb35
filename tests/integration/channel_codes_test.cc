// Channel codes (渠道码) against a local stand-in for WeChat's APIs: siyu fetches access tokens
// with the tenant's secrets and keeps them, makes a WeCom contact way, an official-account
// parametric QR code and a mini-program code carrying the channel's state within WeChat's limits,
// keeps what WeChat answered, and renders QR images; links need no WeChat at all. WeChat's
// errcodes, a dead upstream and missing configuration map to the documented error codes.
#include <atomic>
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

const std::string kCorpId = "ww5823bf96d3bd56c7";
const std::string kWecomSecret = "wecom-contact-secret-0f1e2d3c4b5a6978";
const std::string kOaAppId = "wx2a1b3c4d5e6f7081";
const std::string kOaSecret = "oa-app-secret-8796a5b4c3d2e1f0";
const std::string kUnverifiedOa = "wxUNVERIFIED000001";
const std::string kMpAppId = "wx4f4bc4dec97d474b";
const std::string kMpSecret = "mp-app-secret-00112233445566778899";
const std::string kAesKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
// A 1×1 PNG; the stand-in's images are it plus a marker, so that pass-through can be checked.
const std::string kTinyPng(
    "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\n"
    "IDAT\x78\x9c\x63\0\x01\0\0\x05\0\x01\x0d\x0a\x2d\xb4\0\0\0\0IEND\xae\x42\x60\x82",
    67);
const std::string kContactWayPng = kTinyPng + "contact-way";
const std::string kMpCodePng = kTinyPng + "mini-program";

struct Seen {
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;
  std::string body;
  json::value json;  // the body as JSON, or null
};

// api.weixin.qq.com and qyapi.weixin.qq.com in one, one connection at a time. Tokens it issues
// stay valid until DropTokens(); the answers are chosen by the inputs (see Answer()).
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
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Seen> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<Seen> requests(const std::string& path) {
    std::vector<Seen> out;
    for (auto& r : requests()) {
      if (r.path == path) out.push_back(r);
    }
    return out;
  }
  // WeChat forgets every token issued so far: calls with them answer 42001.
  void DropTokens() {
    std::lock_guard lock(mu_);
    valid_tokens_.clear();
  }

 private:
  struct Answer {
    std::string body;
    std::string content_type = "application/json; encoding=utf-8";
  };

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

  static Answer Fault(int code, const std::string& msg) {
    return {R"({"errcode":)" + std::to_string(code) + R"(,"errmsg":")" + msg + R"("})"};
  }

  std::string Issue(const std::string& app) {
    std::lock_guard lock(mu_);
    std::string token = "TOKEN-" + app + "-" + std::to_string(++issued_);
    valid_tokens_[token] = app;
    return token;
  }

  // The app a token was issued for; nullopt when it is not valid (any more).
  std::optional<std::string> AppOf(const std::string& token) {
    std::lock_guard lock(mu_);
    auto it = valid_tokens_.find(token);
    if (it == valid_tokens_.end()) return std::nullopt;
    return it->second;
  }

  static bool HasUser(const Seen& s, const std::string& who) {
    if (!s.json.is_object() || !s.json.as_object().contains("user")) return false;
    for (const auto& u : s.json.at("user").as_array()) {
      if (u.is_string() && u.as_string() == who) return true;
    }
    return false;
  }

  // nullopt: hang up without answering.
  std::optional<Answer> Respond(const Seen& s) {
    auto token_answer = [&](const std::string& app) {
      return Answer{R"({"errcode":0,"errmsg":"ok","access_token":")" + Issue(app) +
                    R"(","expires_in":7200})"};
    };
    if (s.path == "/cgi-bin/gettoken") {
      auto corp = s.query.at("corpid"), secret = s.query.at("corpsecret");
      if (secret == "ip-blocked") return Fault(60020, "not allow to access from your ip");
      if (corp == kCorpId && secret == kWecomSecret) return token_answer(corp);
      return Fault(40001, "invalid credential");
    }
    if (s.path == "/cgi-bin/token") {
      auto app = s.query.at("appid"), secret = s.query.at("secret");
      if (s.query.at("grant_type") != "client_credential") return Fault(40002, "invalid grant");
      if (secret == "ip-blocked") return Fault(40164, "invalid ip 10.0.0.1, not in whitelist");
      if ((app == kOaAppId || app == kUnverifiedOa) && secret == kOaSecret)
        return token_answer(app);
      if (app == kMpAppId && secret == kMpSecret) return token_answer(app);
      return Fault(40125, "invalid appsecret");
    }
    if (s.path.starts_with("/qr/")) return Answer{kContactWayPng, "image/png"};
    if (s.path.starts_with("/qr-flaky/")) {
      // The first fetch of each image fails.
      std::lock_guard lock(mu_);
      if (flaky_seen_.insert(s.path).second) return std::nullopt;
      return Answer{kContactWayPng, "image/png"};
    }
    if (s.method != "POST") return Fault(-1, "system error");
    auto it = s.query.find("access_token");
    auto app = AppOf(it == s.query.end() ? "" : it->second);
    if (!app) return Fault(42001, "access_token expired");
    if (s.path == "/cgi-bin/externalcontact/add_contact_way" ||
        s.path == "/cgi-bin/externalcontact/update_contact_way") {
      if (*app != kCorpId) return Fault(48002, "api forbidden");
      if (HasUser(s, "hangup")) return std::nullopt;
      if (HasUser(s, "inactive")) return Fault(41054, "user not active");
      if (s.path.ends_with("update_contact_way")) return Fault(0, "ok");
      std::string id;
      {
        std::lock_guard lock(mu_);
        id = "cfg" + std::to_string(++configs_);
      }
      std::string qr = base() + "/qr/" + id + ".png";
      if (HasUser(s, "flaky")) qr = base() + "/qr-flaky/" + id + ".png";
      if (HasUser(s, "elsewhere")) qr = "http://169.254.169.254/latest/meta-data";
      return Answer{R"({"errcode":0,"errmsg":"ok","config_id":")" + id + R"(","qr_code":")" + qr +
                    R"("})"};
    }
    if (s.path == "/cgi-bin/qrcode/create") {
      if (*app == kUnverifiedOa) return Fault(48001, "api unauthorized");
      std::string scene(s.json.at("action_info").at("scene").at("scene_str").as_string());
      return Answer{R"({"ticket":"gQH47joAAAAAAAAAASxod2+HR=)" + scene +
                    R"(","url":"http://weixin.qq.com/q/)" + scene + R"("})"};
    }
    if (s.path == "/wxa/getwxacodeunlimit") {
      if (s.json.as_object().contains("page") && s.json.at("page").as_string() == "pages/missing") {
        return Fault(41030, "invalid page rid: 6650a1b2");
      }
      return Answer{kMpCodePng, "image/png"};
    }
    return Fault(-1, "system error");
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
      Seen s;
      s.method = std::string(req.method_string());
      s.query = Query(std::string(req.target()), &s.path);
      s.body = req.body();
      boost::system::error_code jec;
      s.json = json::parse(s.body, jec);
      if (jec) s.json = nullptr;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(s);
      }
      auto answer = Respond(s);
      if (!answer) {
        sock.shutdown(tcp::socket::shutdown_both, ec);
        continue;
      }
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, answer->content_type);
      res.keep_alive(false);
      res.body() = answer->body;
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
  std::vector<Seen> requests_;
  std::map<std::string, std::string> valid_tokens_;
  int issued_ = 0;
  int configs_ = 0;
  std::set<std::string> flaky_seen_;
};

struct Channel {
  int64_t id = 0;
  std::string state;
  std::string codes;  // "/v1/channels/{id}/codes"
};

class ChannelCodesTest : public BackendTest {
 protected:
  void BeforeStart() override {
    wechat_ = std::make_unique<FakeWechat>();
    extra_server_args_ = {"--wechat-api-base", wechat_->base()};
  }
  Channel MakeChannel(Api& api, const std::string& name, const std::string& touchpoint) {
    Reply r =
        api.Post("/v1/channels",
                 value{{"name", name}, {"source_pool", "offline"}, {"touchpoint", touchpoint}});
    EXPECT_TRUE(HasStatus(r, 201));
    Channel ch{r.Int("/id"), r.Str("/state"),
               "/v1/channels/" + std::to_string(r.Int("/id")) + "/codes"};
    EXPECT_LE(ch.state.size(), 30u);
    return ch;
  }
  void PutApp(Api& api, const std::string& kind, value body) {
    Reply r = api.Send("PUT", "/v1/wechat/apps/" + kind, json::serialize(body));
    ASSERT_TRUE(HasStatus(r, 200));
  }
  void ConfigureWecom(Api& api, const std::string& secret = kWecomSecret) {
    PutApp(api, "wecom",
           value{{"app_id", kCorpId},
                 {"token", "QDG6eK"},
                 {"encoding_aes_key", kAesKey},
                 {"secret", secret}});
  }
  void ConfigureOa(Api& api, const std::string& app_id = kOaAppId,
                   const std::string& secret = kOaSecret) {
    PutApp(api, "official_account",
           value{{"app_id", app_id},
                 {"token", "oatoken"},
                 {"encoding_aes_key", kAesKey},
                 {"secret", secret}});
  }
  void ConfigureMp(Api& api) {
    PutApp(api, "mini_program", value{{"app_id", kMpAppId}, {"secret", kMpSecret}});
  }
  // Nothing a response or the server log says may contain a secret or an access token.
  void ExpectNoSecrets(const std::string& text, const std::string& where) {
    for (const std::string& s : {kWecomSecret, kOaSecret, kMpSecret, std::string("TOKEN-")}) {
      EXPECT_EQ(text.find(s), std::string::npos) << where << " shows '" << s << "'";
    }
  }

  std::unique_ptr<FakeWechat> wechat_;
};

TEST_P(ChannelCodesTest, LinksNeedNoWechat) {
  Api api = AdminApi();
  Channel ch = MakeChannel(api, "社群团购", "group");

  // Before anything is made, the list shows the payloads with default options.
  Reply before = api.Get(ch.codes);
  ASSERT_TRUE(HasStatus(before, 200));
  EXPECT_EQ(before.Str("/state"), ch.state);
  EXPECT_EQ(before.Str("/touchpoint"), "group");
  ASSERT_EQ(before.At("/items").as_array().size(), 1u) << "a group channel has only a link";
  EXPECT_EQ(before.Str("/items/0/kind"), "link");
  EXPECT_FALSE(before.At("/items/0/made").as_bool());
  EXPECT_EQ(before.Str("/items/0/payload/path"), "pages/index/index?state=" + ch.state);
  EXPECT_TRUE(IsError(api.Get(ch.codes + "/link.svg"), 404, "NOT_FOUND"));

  Reply made =
      api.Post(ch.codes, value{{"kind", "link"}, {"url", "https://m.example.com/landing?from=a"}});
  ASSERT_TRUE(HasStatus(made, 201));
  const std::string url = "https://m.example.com/landing?from=a&state=" + ch.state;
  EXPECT_TRUE(made.At("/made").as_bool());
  EXPECT_EQ(made.Str("/payload/url"), url);
  EXPECT_EQ(made.Str("/content"), url);
  EXPECT_TRUE(made.At("/app_id").is_null());
  EXPECT_EQ(made.Str("/svg"), ch.codes + "/link.svg");

  // Asked again: the stored code, whatever the options; refresh applies new ones.
  Reply again = api.Post(ch.codes, value{{"kind", "link"}, {"url", "https://other.example.com/"}});
  ASSERT_TRUE(HasStatus(again, 200));
  EXPECT_EQ(again.Str("/content"), url);
  EXPECT_EQ(again.Int("/created_at"), made.Int("/created_at"));

  Reply svg = api.Get(ch.codes + "/link.svg");
  ASSERT_TRUE(HasStatus(svg, 200));
  EXPECT_EQ(svg.Header("Content-Type"), "image/svg+xml");
  EXPECT_TRUE(svg.body.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  EXPECT_EQ(svg.Header("Content-Disposition"),
            "inline; filename=\"channel-" + std::to_string(ch.id) + "-link.svg\"");
  Reply png = api.Get(ch.codes + "/link.png?scale=4");
  ASSERT_TRUE(HasStatus(png, 200));
  EXPECT_EQ(png.Header("Content-Type"), "image/png");
  EXPECT_TRUE(png.body.starts_with("\x89PNG\r\n\x1a\n"));
  Reply big = api.Get(ch.codes + "/link.png?scale=8");
  EXPECT_GT(big.body.size(), 0u);
  EXPECT_NE(big.body, png.body) << "scale changes the image";

  Reply refreshed = api.Post(ch.codes, value{{"kind", "link"},
                                             {"url", "https://other.example.com/#/shop"},
                                             {"page", "pages/shop/index"},
                                             {"refresh", true}});
  ASSERT_TRUE(HasStatus(refreshed, 200));
  EXPECT_EQ(refreshed.Str("/content"), "https://other.example.com/?state=" + ch.state + "#/shop");
  EXPECT_EQ(refreshed.Str("/payload/path"), "pages/shop/index?state=" + ch.state);
  EXPECT_EQ(refreshed.Int("/created_at"), made.Int("/created_at"));
  EXPECT_NE(api.Get(ch.codes + "/link.svg").body, svg.body);
  EXPECT_EQ(api.Get(ch.codes + "/link").Str("/content"), refreshed.Str("/content"));

  EXPECT_TRUE(wechat_->requests().empty()) << "a link called WeChat";
}

TEST_P(ChannelCodesTest, WecomContactWayIsMadeOnceKeptAndUpdatedInPlace) {
  Api api = AdminApi();
  ConfigureWecom(api);
  Reply apps = api.Get("/v1/wechat/apps");
  ExpectNoSecrets(apps.body, "GET /v1/wechat/apps");
  EXPECT_EQ(apps.Str("/items/0/secret_hint"), "wec…");
  Channel ch = MakeChannel(api, "门店收银台扫码", "wecom");

  Reply made = api.Post(ch.codes, value{{"kind", "wecom_contact_way"}, {"users", {"zhangsan"}}});
  ASSERT_TRUE(HasStatus(made, 201));
  EXPECT_EQ(made.Str("/payload/state"), ch.state);
  EXPECT_EQ(made.Str("/config_id"), "cfg1");
  EXPECT_EQ(made.Int("/contact_type"), 1);
  EXPECT_EQ(made.Str("/qr_code"), wechat_->base() + "/qr/cfg1.png");
  EXPECT_EQ(made.Str("/app_id"), kCorpId);
  EXPECT_TRUE(made.At("/content").is_null()) << "WeChat renders this one";
  ExpectNoSecrets(made.body, "the contact way");

  // What siyu sent: a token for the corp's secret, then the contact way with it.
  auto tokens = wechat_->requests("/cgi-bin/gettoken");
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].query["corpid"], kCorpId);
  EXPECT_EQ(tokens[0].query["corpsecret"], kWecomSecret);
  auto adds = wechat_->requests("/cgi-bin/externalcontact/add_contact_way");
  ASSERT_EQ(adds.size(), 1u);
  Seen& add = adds[0];
  EXPECT_TRUE(add.query["access_token"].starts_with("TOKEN-" + kCorpId));
  ASSERT_TRUE(add.json.is_object()) << add.body;
  EXPECT_EQ(add.json.at("type").as_int64(), 1);
  EXPECT_EQ(add.json.at("scene").as_int64(), 2);
  EXPECT_EQ(add.json.at("state").as_string(), ch.state);
  EXPECT_LE(add.json.at("state").as_string().size(), 30u);
  EXPECT_EQ(add.json.at("user"), value(json::array{"zhangsan"}));
  EXPECT_TRUE(add.json.at("skip_verify").as_bool());
  EXPECT_EQ(add.json.at("remark").as_string(), "门店收银台扫码");
  // And fetched WeChat's QR image once.
  EXPECT_EQ(wechat_->requests("/qr/cfg1.png").size(), 1u);

  // Asked again: the stored contact way, no call to WeChat.
  const size_t calls = wechat_->requests().size();
  Reply again = api.Post(ch.codes, value{{"kind", "wecom_contact_way"}, {"users", {"lisi"}}});
  ASSERT_TRUE(HasStatus(again, 200));
  EXPECT_EQ(again.Str("/config_id"), "cfg1");
  EXPECT_EQ(again.At("/options/users"), value(json::array{"zhangsan"}));
  EXPECT_EQ(wechat_->requests().size(), calls);

  // The image is WeChat's, as WeChat sent it, without asking WeChat again.
  Reply png = api.Get(ch.codes + "/wecom_contact_way.png");
  ASSERT_TRUE(HasStatus(png, 200));
  EXPECT_EQ(png.Header("Content-Type"), "image/png");
  EXPECT_EQ(png.body, kContactWayPng);
  Reply svg = api.Get(ch.codes + "/wecom_contact_way.svg");
  ASSERT_TRUE(HasStatus(svg, 200));
  EXPECT_NE(svg.body.find("href=\"data:image/png;base64,"), std::string::npos);
  EXPECT_NE(svg.body.find("viewBox=\"0 0 1 1\""), std::string::npos) << "the PNG's own size";
  EXPECT_EQ(wechat_->requests().size(), calls);

  // Refresh updates the same contact way with the new member; the token is reused.
  Reply refreshed = api.Post(ch.codes, value{{"kind", "wecom_contact_way"},
                                             {"users", {"lisi"}},
                                             {"skip_verify", false},
                                             {"refresh", true}});
  ASSERT_TRUE(HasStatus(refreshed, 200));
  EXPECT_EQ(refreshed.Str("/config_id"), "cfg1");
  EXPECT_EQ(refreshed.At("/options/users"), value(json::array{"lisi"}));
  auto updates = wechat_->requests("/cgi-bin/externalcontact/update_contact_way");
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].json.at("config_id").as_string(), "cfg1");
  EXPECT_EQ(updates[0].json.at("state").as_string(), ch.state);
  EXPECT_FALSE(updates[0].json.at("skip_verify").as_bool());
  EXPECT_EQ(wechat_->requests("/cgi-bin/gettoken").size(), 1u) << "the token was not reused";
  EXPECT_EQ(wechat_->requests("/cgi-bin/externalcontact/add_contact_way").size(), 1u);
  // A single-member contact way cannot become a multi-member one.
  EXPECT_TRUE(IsError(
      api.Post(ch.codes,
               value{{"kind", "wecom_contact_way"}, {"users", {"a", "b"}}, {"refresh", true}}),
      400, "INVALID_FIELD", "users"));

  // A multi-member code on another channel is type 2.
  Channel multi = MakeChannel(api, "天猫包裹卡", "wecom");
  Reply two =
      api.Post(multi.codes, value{{"kind", "wecom_contact_way"}, {"users", {"zhangsan", "lisi"}}});
  ASSERT_TRUE(HasStatus(two, 201));
  EXPECT_EQ(two.Int("/contact_type"), 2);
  EXPECT_EQ(wechat_->requests("/cgi-bin/externalcontact/add_contact_way").back().json.at("type"),
            value(2));

  // The listing: the contact way and the (unmade) link, no image bytes.
  Reply list = api.Get(ch.codes);
  ASSERT_TRUE(HasStatus(list, 200));
  ASSERT_EQ(list.At("/items").as_array().size(), 2u);
  EXPECT_EQ(list.Str("/items/0/kind"), "wecom_contact_way");
  EXPECT_EQ(list.Str("/items/0/config_id"), "cfg1");
  EXPECT_EQ(list.Str("/items/1/kind"), "link");
  EXPECT_FALSE(list.At("/items/1/made").as_bool());
  ExpectNoSecrets(server_->LogTail(2000), "the server log");

  // Analysts see codes; only writers make them.
  Reply analyst_key = api.Post("/v1/api-keys", value{{"name", "bi"}, {"role", "analyst"}});
  Api analyst(port(), analyst_key.Str("/key"));
  EXPECT_TRUE(HasStatus(analyst.Get(ch.codes + "/wecom_contact_way.png"), 200));
  EXPECT_TRUE(IsError(analyst.Post(ch.codes, value{{"kind", "link"}, {"url", "https://a.cn"}}), 403,
                      "FORBIDDEN"));
}

TEST_P(ChannelCodesTest, OfficialAccountAndMiniProgramCodes) {
  Api api = AdminApi();
  ConfigureOa(api);
  ConfigureMp(api);
  Channel oa = MakeChannel(api, "公众号关注", "official_account");
  Channel mp = MakeChannel(api, "小红书达人合作", "mini_program");

  Reply q = api.Post(oa.codes, value{{"kind", "oa_qrcode"}});
  ASSERT_TRUE(HasStatus(q, 201));
  EXPECT_EQ(q.Str("/payload/scene_str"), oa.state);
  EXPECT_EQ(q.Str("/payload/event_key"), "qrscene_" + oa.state);
  EXPECT_EQ(q.Str("/content"), "http://weixin.qq.com/q/" + oa.state);
  EXPECT_EQ(q.Str("/ticket"), "gQH47joAAAAAAAAAASxod2+HR=" + oa.state);
  EXPECT_EQ(q.Str("/image_url"), "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" +
                                     std::string("gQH47joAAAAAAAAAASxod2%2BHR%3D") + oa.state);
  auto creates = wechat_->requests("/cgi-bin/qrcode/create");
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].json.at("action_name").as_string(), "QR_LIMIT_STR_SCENE");
  EXPECT_EQ(creates[0].json.at("action_info").at("scene").at("scene_str").as_string(), oa.state);
  EXPECT_FALSE(creates[0].json.as_object().contains("expire_seconds"));
  auto oa_tokens = wechat_->requests("/cgi-bin/token");
  ASSERT_EQ(oa_tokens.size(), 1u);
  EXPECT_EQ(oa_tokens[0].query["appid"], kOaAppId);
  EXPECT_EQ(oa_tokens[0].query["secret"], kOaSecret);
  EXPECT_EQ(oa_tokens[0].query["grant_type"], "client_credential");
  // siyu renders the QR code of WeChat's url itself.
  Reply png = api.Get(oa.codes + "/oa_qrcode.png");
  ASSERT_TRUE(HasStatus(png, 200));
  EXPECT_TRUE(png.body.starts_with("\x89PNG\r\n\x1a\n"));
  EXPECT_EQ(api.Get(oa.codes + "/oa_qrcode.svg").Header("Content-Type"), "image/svg+xml");
  EXPECT_EQ(wechat_->requests().size(), 2u) << "rendering asked WeChat";

  Reply m = api.Post(mp.codes, value{{"kind", "mp_code"}, {"page", "pages/shop/index"}});
  ASSERT_TRUE(HasStatus(m, 201));
  EXPECT_EQ(m.Str("/payload/scene"), mp.state);
  EXPECT_EQ(m.Str("/payload/page"), "pages/shop/index");
  EXPECT_EQ(m.Str("/app_id"), kMpAppId);
  auto codes = wechat_->requests("/wxa/getwxacodeunlimit");
  ASSERT_EQ(codes.size(), 1u);
  const std::string scene(codes[0].json.at("scene").as_string());
  EXPECT_EQ(scene, mp.state);
  EXPECT_LE(scene.size(), 32u);
  for (char c : scene) EXPECT_TRUE(c > 0x20 && c < 0x7f) << "scene must be visible ASCII";
  EXPECT_EQ(codes[0].json.at("page").as_string(), "pages/shop/index");
  EXPECT_TRUE(codes[0].query["access_token"].starts_with("TOKEN-" + kMpAppId))
      << "each app calls with its own token";
  Reply mpng = api.Get(mp.codes + "/mp_code.png");
  ASSERT_TRUE(HasStatus(mpng, 200));
  EXPECT_EQ(mpng.body, kMpCodePng);
  EXPECT_EQ(mpng.Header("Content-Type"), "image/png");

  // The channel's other kinds are not its: refused by name.
  EXPECT_TRUE(
      IsError(api.Post(mp.codes, value{{"kind", "oa_qrcode"}}), 400, "INVALID_FIELD", "kind"));
  EXPECT_TRUE(IsError(api.Get(mp.codes + "/oa_qrcode"), 404, "NOT_FOUND"));
  ExpectNoSecrets(server_->LogTail(2000), "the server log");
}

TEST_P(ChannelCodesTest, ContactWayImagesAreFetchedLaterAndOnlyFromWechat) {
  Api api = AdminApi();
  ConfigureWecom(api);
  // The image cannot be fetched when the contact way is made: the contact way is kept (WeCom has
  // it now), and the image is fetched, and kept, when it is first asked for.
  Channel flaky = MakeChannel(api, "flaky", "wecom");
  Reply made = api.Post(flaky.codes, value{{"kind", "wecom_contact_way"}, {"users", {"flaky"}}});
  ASSERT_TRUE(HasStatus(made, 201));
  const std::string image_path = "/qr-flaky/" + made.Str("/config_id") + ".png";
  EXPECT_EQ(wechat_->requests(image_path).size(), 1u);
  Reply png = api.Get(flaky.codes + "/wecom_contact_way.png");
  ASSERT_TRUE(HasStatus(png, 200));
  EXPECT_EQ(png.body, kContactWayPng);
  EXPECT_TRUE(HasStatus(api.Get(flaky.codes + "/wecom_contact_way.svg"), 200));
  EXPECT_EQ(wechat_->requests(image_path).size(), 2u) << "fetched once more, then kept";

  // An image URL off WeChat's hosts is never fetched.
  Channel odd = MakeChannel(api, "odd", "wecom");
  Reply made2 = api.Post(odd.codes, value{{"kind", "wecom_contact_way"}, {"users", {"elsewhere"}}});
  ASSERT_TRUE(HasStatus(made2, 201));
  EXPECT_TRUE(IsError(api.Get(odd.codes + "/wecom_contact_way.png"), 502, "WECHAT_API_ERROR"));
}

TEST_P(ChannelCodesTest, TokensAreCachedAndFetchedAgainWhenWechatDropsThem) {
  Api api = AdminApi();
  ConfigureWecom(api);
  Channel a = MakeChannel(api, "A", "wecom");
  Channel b = MakeChannel(api, "B", "wecom");
  Channel c = MakeChannel(api, "C", "wecom");
  ASSERT_TRUE(
      HasStatus(api.Post(a.codes, value{{"kind", "wecom_contact_way"}, {"users", {"u1"}}}), 201));
  ASSERT_TRUE(
      HasStatus(api.Post(b.codes, value{{"kind", "wecom_contact_way"}, {"users", {"u1"}}}), 201));
  EXPECT_EQ(wechat_->requests("/cgi-bin/gettoken").size(), 1u);

  // WeChat drops the token (42001): siyu fetches a new one and the call succeeds.
  wechat_->DropTokens();
  Reply r = api.Post(c.codes, value{{"kind", "wecom_contact_way"}, {"users", {"u1"}}});
  ASSERT_TRUE(HasStatus(r, 201));
  EXPECT_EQ(wechat_->requests("/cgi-bin/gettoken").size(), 2u);
  auto adds = wechat_->requests("/cgi-bin/externalcontact/add_contact_way");
  ASSERT_EQ(adds.size(), 4u) << "the refused call, then the retry";
  EXPECT_NE(adds[2].query["access_token"], adds[3].query["access_token"]);

  // A new secret gets its own token.
  ConfigureWecom(api, kWecomSecret);
  Channel d = MakeChannel(api, "D", "wecom");
  ASSERT_TRUE(
      HasStatus(api.Post(d.codes, value{{"kind", "wecom_contact_way"}, {"users", {"u1"}}}), 201));
  EXPECT_EQ(wechat_->requests("/cgi-bin/gettoken").size(), 2u) << "same secret, same token";
  ConfigureWecom(api, "a-wrong-secret");
  Channel e = MakeChannel(api, "E", "wecom");
  EXPECT_TRUE(IsError(api.Post(e.codes, value{{"kind", "wecom_contact_way"}, {"users", {"u1"}}}),
                      422, "WECHAT_SECRET_REJECTED"));
  EXPECT_EQ(wechat_->requests("/cgi-bin/gettoken").size(), 3u);
}

TEST_P(ChannelCodesTest, WechatErrorsAreClearAndStoreNothing) {
  Api api = AdminApi();
  Channel wc = MakeChannel(api, "企微", "wecom");
  Channel oa = MakeChannel(api, "公众号", "official_account");
  Channel mp = MakeChannel(api, "小程序", "mini_program");
  auto contact_way = [&](std::vector<std::string> users) {
    json::array a;
    for (auto& u : users) a.emplace_back(u);
    return api.Post(wc.codes, value{{"kind", "wecom_contact_way"}, {"users", a}});
  };

  // Not configured: nothing is sent to WeChat.
  Reply none = contact_way({"zhangsan"});
  EXPECT_TRUE(IsError(none, 422, "WECHAT_NOT_CONFIGURED"));
  EXPECT_NE(none.body.find("PUT /v1/wechat/apps/wecom"), std::string::npos)
      << "the message says what to do: " << none.body;
  EXPECT_TRUE(
      IsError(api.Post(oa.codes, value{{"kind", "oa_qrcode"}}), 422, "WECHAT_NOT_CONFIGURED"));
  EXPECT_TRUE(
      IsError(api.Post(mp.codes, value{{"kind", "mp_code"}}), 422, "WECHAT_NOT_CONFIGURED"));
  // Configured for callbacks only: no secret to call WeChat with.
  PutApp(api, "wecom",
         value{{"app_id", kCorpId}, {"token", "QDG6eK"}, {"encoding_aes_key", kAesKey}});
  Reply no_secret = contact_way({"zhangsan"});
  EXPECT_TRUE(IsError(no_secret, 422, "WECHAT_NOT_CONFIGURED"));
  EXPECT_NE(no_secret.body.find("secret"), std::string::npos) << no_secret.body;
  EXPECT_TRUE(wechat_->requests().empty());

  ConfigureWecom(api, "ip-blocked");
  EXPECT_TRUE(IsError(contact_way({"zhangsan"}), 422, "WECHAT_IP_NOT_ALLOWED"));
  ConfigureWecom(api);
  Reply inactive = contact_way({"zhangsan", "inactive"});
  EXPECT_TRUE(IsError(inactive, 422, "WECHAT_INVALID_USERS", "users"));
  EXPECT_NE(inactive.body.find("41054"), std::string::npos) << "WeChat's errcode is quoted";
  Reply down = contact_way({"hangup"});
  EXPECT_TRUE(IsError(down, 502, "UPSTREAM_UNAVAILABLE"));
  ExpectNoSecrets(down.body, "UPSTREAM_UNAVAILABLE");

  ConfigureOa(api, kUnverifiedOa);
  EXPECT_TRUE(
      IsError(api.Post(oa.codes, value{{"kind", "oa_qrcode"}}), 422, "WECHAT_NO_PERMISSION"));
  ConfigureOa(api, kOaAppId, "wrong");
  EXPECT_TRUE(
      IsError(api.Post(oa.codes, value{{"kind", "oa_qrcode"}}), 422, "WECHAT_SECRET_REJECTED"));
  ConfigureMp(api);
  EXPECT_TRUE(IsError(api.Post(mp.codes, value{{"kind", "mp_code"}, {"page", "pages/missing"}}),
                      422, "WECHAT_INVALID_PAGE", "page"));

  // None of it was stored.
  for (const Channel& ch : {wc, oa, mp}) {
    Reply list = api.Get(ch.codes);
    ASSERT_TRUE(HasStatus(list, 200));
    for (const auto& item : list.At("/items").as_array()) {
      EXPECT_FALSE(item.at("made").as_bool()) << list.body;
    }
  }
  ExpectNoSecrets(server_->LogTail(2000), "the server log");
}

TEST_P(ChannelCodesTest, BadInputNamesTheField) {
  Api api = AdminApi();
  Channel wc = MakeChannel(api, "企微", "wecom");
  Channel link = MakeChannel(api, "群", "group");
  struct Case {
    const char* name;
    const Channel* ch;
    std::string body;
    int status;
    const char* code;
    const char* field;
  } cases[] = {
      {"no kind", &link, R"({"url":"https://a.cn"})", 400, "MISSING_FIELD", "kind"},
      {"unknown kind", &link, R"({"kind":"poster"})", 400, "INVALID_FIELD", "kind"},
      {"kind of another touchpoint", &link, R"({"kind":"oa_qrcode"})", 400, "INVALID_FIELD",
       "kind"},
      {"kind not a string", &link, R"({"kind":1})", 400, "INVALID_FIELD", "kind"},
      {"unknown field", &link, R"({"kind":"link","url":"https://a.cn","x":1})", 400,
       "UNKNOWN_FIELD", "x"},
      {"no url", &link, R"({"kind":"link"})", 400, "MISSING_FIELD", "url"},
      {"url not http", &link, R"j({"kind":"link","url":"javascript:alert(1)"})j", 400,
       "INVALID_FIELD", "url"},
      {"url with state", &link, R"({"kind":"link","url":"https://a.cn/?state=x"})", 400,
       "INVALID_FIELD", "url"},
      {"page with slash", &link, R"({"kind":"link","url":"https://a.cn","page":"/pages/a"})", 400,
       "INVALID_FIELD", "page"},
      {"refresh not bool", &link, R"({"kind":"link","url":"https://a.cn","refresh":"yes"})", 400,
       "INVALID_FIELD", "refresh"},
      {"users on a link", &link, R"({"kind":"link","url":"https://a.cn","users":["a"]})", 400,
       "INVALID_FIELD", "users"},
      {"no users", &wc, R"({"kind":"wecom_contact_way"})", 400, "MISSING_FIELD", "users"},
      {"empty users", &wc, R"({"kind":"wecom_contact_way","users":[]})", 400, "INVALID_FIELD",
       "users"},
      {"user not a string", &wc, R"({"kind":"wecom_contact_way","users":["a",2]})", 400,
       "INVALID_FIELD", "users[1]"},
      {"repeated user", &wc, R"({"kind":"wecom_contact_way","users":["a","a"]})", 400,
       "INVALID_FIELD", "users[1]"},
      {"url on a contact way", &wc,
       R"({"kind":"wecom_contact_way","users":["a"],"url":"https://a.cn"})", 400, "INVALID_FIELD",
       "url"},
      {"not JSON", &link, "kind=link", 400, "MALFORMED_JSON", ""},
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(IsError(api.Post(c.ch->codes, c.body), c.status, c.code, c.field)) << c.name;
  }
  EXPECT_TRUE(IsError(
      api.Post("/v1/channels/999999/codes", value{{"kind", "link"}, {"url", "https://a.cn"}}), 404,
      "NOT_FOUND"));
  EXPECT_TRUE(IsError(api.Post("/v1/channels/x/codes", value{{"kind", "link"}}), 404, "NOT_FOUND"));
  EXPECT_TRUE(IsError(api.Get("/v1/channels/999999/codes"), 404, "NOT_FOUND"));
  EXPECT_TRUE(
      IsError(api.Post(link.codes + "?refresh=1", value{{"kind", "link"}, {"url", "https://a.cn"}}),
              400, "INVALID_QUERY", "refresh"));

  ASSERT_TRUE(
      HasStatus(api.Post(link.codes, value{{"kind", "link"}, {"url", "https://a.cn"}}), 201));
  for (const char* path : {"/link.gif", "/link.svg.png", "/poster.svg", "/LINK", "/.png"}) {
    EXPECT_TRUE(IsError(api.Get(link.codes + path), 404, "NOT_FOUND")) << path;
  }
  EXPECT_TRUE(IsError(api.Get(link.codes + "/link.png?scale=0"), 400, "INVALID_QUERY", "scale"));
  EXPECT_TRUE(IsError(api.Get(link.codes + "/link.png?scale=33"), 400, "INVALID_QUERY", "scale"));
  EXPECT_TRUE(IsError(api.Get(link.codes + "/link.svg?scale=2"), 400, "INVALID_QUERY", "scale"));
  EXPECT_TRUE(HasStatus(api.Get(link.codes + "/link.png?scale=32"), 200));
  // The image of a code not made yet.
  EXPECT_TRUE(IsError(api.Get(wc.codes + "/wecom_contact_way.png"), 404, "NOT_FOUND"));
  EXPECT_TRUE(wechat_->requests().empty());
}

SIYU_BACKEND_SUITE(ChannelCodesTest);

}  // namespace
}  // namespace siyu::it
