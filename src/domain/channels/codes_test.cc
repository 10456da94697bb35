#include "domain/channels/codes.h"

#include <gtest/gtest.h>

#include "common/crypto.h"

namespace siyu::domain {
namespace {

std::string Get(const Payload& p, const std::string& name) {
  for (const auto& [k, v] : p) {
    if (k == name) return v;
  }
  return "(absent)";
}

// A state as Channels::Create makes them.
std::string ChannelState() { return "c" + RandomBase62(12); }

TEST(ChannelCodeKinds, FollowTheTouchpoint) {
  using K = CodeKind;
  EXPECT_EQ(CodeKindsFor("wecom"), (std::vector<K>{K::kWecomContactWay, K::kLink}));
  EXPECT_EQ(CodeKindsFor("official_account"), (std::vector<K>{K::kOaQrcode, K::kLink}));
  EXPECT_EQ(CodeKindsFor("mini_program"), (std::vector<K>{K::kMpCode, K::kLink}));
  EXPECT_EQ(CodeKindsFor("group"), (std::vector<K>{K::kLink}));
  for (K k : {K::kWecomContactWay, K::kOaQrcode, K::kMpCode, K::kLink}) {
    EXPECT_EQ(ParseCodeKind(CodeKindName(k)), k);
  }
  EXPECT_FALSE(ParseCodeKind("qr"));
  EXPECT_EQ(CodeAppKind(K::kWecomContactWay), "wecom");
  EXPECT_EQ(CodeAppKind(K::kLink), "");
}

TEST(ChannelCodePayload, CarriesTheStateWithinWechatLimits) {
  for (int i = 0; i < 100; ++i) {
    const std::string state = ChannelState();
    auto wecom = CodePayload(CodeKind::kWecomContactWay, state, {});
    ASSERT_TRUE(wecom.ok());
    EXPECT_EQ(Get(*wecom, "state"), state);
    EXPECT_LE(Get(*wecom, "state").size(), 30u);

    auto oa = CodePayload(CodeKind::kOaQrcode, state, {});
    ASSERT_TRUE(oa.ok());
    EXPECT_EQ(Get(*oa, "scene_str"), state);
    EXPECT_LE(Get(*oa, "scene_str").size(), 64u);
    EXPECT_EQ(Get(*oa, "event_key"), "qrscene_" + state);

    auto mp = CodePayload(CodeKind::kMpCode, state, {});
    ASSERT_TRUE(mp.ok());
    const std::string scene = Get(*mp, "scene");
    EXPECT_EQ(scene, state);
    EXPECT_LE(scene.size(), 32u);
    for (char c : scene) EXPECT_TRUE(c > 0x20 && c < 0x7f) << "scene must be visible ASCII";
    EXPECT_EQ(Get(*mp, "page"), "(absent)") << "no page: the mini-program's home page";
  }
  const std::string state = ChannelState();
  CodeOptions o;
  o.page = "pages/shop/index";
  EXPECT_EQ(Get(*CodePayload(CodeKind::kMpCode, state, o), "page"), "pages/shop/index");
  o.url = "https://m.example.com/landing?from=poster#top";
  auto link = CodePayload(CodeKind::kLink, state, o);
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(Get(*link, "path"), "pages/shop/index?state=" + state);
  EXPECT_EQ(Get(*link, "url"), "https://m.example.com/landing?from=poster&state=" + state + "#top");
  // Before it is made, a link shows the mini-program path only.
  auto bare = CodePayload(CodeKind::kLink, state, {});
  EXPECT_EQ(Get(*bare, "path"), "pages/index/index?state=" + state);
  EXPECT_EQ(Get(*bare, "url"), "(absent)");
}

TEST(ChannelCodePayload, RefusesStatesThatDoNotFit) {
  EXPECT_EQ(CodePayload(CodeKind::kWecomContactWay, std::string(31, 'a'), {}).status().code(),
            ErrorCode::kInternal);
  EXPECT_TRUE(CodePayload(CodeKind::kWecomContactWay, std::string(30, 'a'), {}).ok());
  EXPECT_EQ(CodePayload(CodeKind::kMpCode, std::string(33, 'a'), {}).status().code(),
            ErrorCode::kInternal);
  EXPECT_TRUE(CodePayload(CodeKind::kMpCode, std::string(32, 'a'), {}).ok());
  EXPECT_EQ(CodePayload(CodeKind::kOaQrcode, "a b", {}).status().code(), ErrorCode::kInternal);
  EXPECT_EQ(CodePayload(CodeKind::kLink, "", {}).status().code(), ErrorCode::kInternal);
}

TEST(ChannelCodeLinks, AddTheStateToTheQuery) {
  EXPECT_EQ(WithState("https://a.cn", "cX"), "https://a.cn?state=cX");
  EXPECT_EQ(WithState("https://a.cn/p", "cX"), "https://a.cn/p?state=cX");
  EXPECT_EQ(WithState("https://a.cn/p?", "cX"), "https://a.cn/p?state=cX");
  EXPECT_EQ(WithState("https://a.cn/p?a=1", "cX"), "https://a.cn/p?a=1&state=cX");
  EXPECT_EQ(WithState("https://a.cn/p?a=1&", "cX"), "https://a.cn/p?a=1&state=cX");
  EXPECT_EQ(WithState("https://a.cn/#/shop?x=1", "cX"), "https://a.cn/?state=cX#/shop?x=1");
}

Status Check(CodeKind kind, CodeOptions o) { return CheckCodeOptions(kind, o); }

TEST(ChannelCodeOptions, NameTheFieldAtFault) {
  using K = CodeKind;
  auto users = [](std::vector<std::string> u) {
    CodeOptions o;
    o.users = std::move(u);
    return o;
  };
  EXPECT_TRUE(Check(K::kWecomContactWay, users({"zhangsan"})).ok());
  Status missing = Check(K::kWecomContactWay, {});
  EXPECT_EQ(missing.code(), ErrorCode::kMissingField);
  EXPECT_EQ(missing.field(), "users");
  EXPECT_EQ(Check(K::kWecomContactWay, users({})).field(), "users");
  EXPECT_EQ(Check(K::kWecomContactWay, users({"a", "b", "a"})).field(), "users[2]");
  EXPECT_EQ(Check(K::kWecomContactWay, users({"a", "has space"})).field(), "users[1]");
  EXPECT_EQ(Check(K::kWecomContactWay, users(std::vector<std::string>(101, "x"))).field(), "users");
  EXPECT_EQ(Check(K::kWecomContactWay, users({std::string(65, 'x')})).field(), "users[0]");

  // Options of another kind are refused, not ignored.
  EXPECT_EQ(Check(K::kOaQrcode, users({"a"})).field(), "users");
  CodeOptions url;
  url.url = "https://m.example.com";
  EXPECT_EQ(Check(K::kMpCode, url).field(), "url");
  EXPECT_TRUE(Check(K::kLink, url).ok());
  CodeOptions page;
  page.page = "pages/index/index";
  EXPECT_EQ(Check(K::kOaQrcode, page).field(), "page");
  EXPECT_TRUE(Check(K::kMpCode, page).ok());
  CodeOptions skip;
  skip.skip_verify = false;
  EXPECT_EQ(Check(K::kLink, skip).field(), "skip_verify");

  for (std::string bad : std::vector<std::string>{"/pages/index", "pages/index?x=1", "pages//index",
                                                  "../x", "页面", std::string(129, 'a')}) {
    CodeOptions o;
    o.page = bad;
    Status s = Check(K::kMpCode, o);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidField) << bad;
    EXPECT_EQ(s.field(), "page") << bad;
  }
  Status no_url = Check(K::kLink, {});
  EXPECT_EQ(no_url.code(), ErrorCode::kMissingField);
  EXPECT_EQ(no_url.field(), "url");
  for (std::string bad : std::vector<std::string>{
           "ftp://a.cn", "m.example.com/landing", "https://", "https://a.cn/x y", "https://a.cn/\"",
           "https://a.cn/?state=c1", "https://a.cn/?a=1&state=", "https://user@a.cn/",
           "https://a.cn/" + std::string(600, 'x'), "https://例子.cn/"}) {
    CodeOptions o;
    o.url = bad;
    Status s = Check(K::kLink, o);
    EXPECT_EQ(s.code(), ErrorCode::kInvalidField) << bad;
    EXPECT_EQ(s.field(), "url") << bad;
  }
  CodeOptions ok;
  ok.url = "http://m.example.com:8080/s?campaign=1111&states=x";
  EXPECT_TRUE(Check(K::kLink, ok).ok()) << "'states' is not 'state'";
}

}  // namespace
}  // namespace siyu::domain
