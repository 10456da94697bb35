#include "domain/identity/external_id.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace siyu::identity {
namespace {

struct Good {
  std::string in;
  IdKind kind;
  std::string canonical;
};

TEST(ExternalIdTest, AcceptsEveryKindAndNormalises) {
  const std::string a64(64, 'a'), b128(128, 'b');
  const std::vector<Good> cases = {
      // openid
      {"openid:wxapp:oABC-_1", IdKind::kOpenid, "openid:wxapp:oABC-_1"},
      {"openid:wx1234567890abcdef:o6_bmjrPTlm6_2sgVt7hMZOPfL2M", IdKind::kOpenid,
       "openid:wx1234567890abcdef:o6_bmjrPTlm6_2sgVt7hMZOPfL2M"},
      {"openid:" + a64 + ":" + b128, IdKind::kOpenid, "openid:" + a64 + ":" + b128},
      // unionid
      {"unionid:u1", IdKind::kUnionid, "unionid:u1"},
      {"unionid:" + b128, IdKind::kUnionid, "unionid:" + b128},
      // external_userid
      {"external_userid:ww0123456789abcdef:wmAbC_-1", IdKind::kExternalUserid,
       "external_userid:ww0123456789abcdef:wmAbC_-1"},
      {"external_userid:" + a64 + ":" + b128, IdKind::kExternalUserid,
       "external_userid:" + a64 + ":" + b128},
      // phone: the rules of people.cc
      {"phone:138 0013 8000", IdKind::kPhone, "phone:+8613800138000"},
      {"phone:138-0013-8000", IdKind::kPhone, "phone:+8613800138000"},
      {"phone:13800138000", IdKind::kPhone, "phone:+8613800138000"},
      {"phone:+8613800138000", IdKind::kPhone, "phone:+8613800138000"},
      {"phone:+86 138 0013 8000", IdKind::kPhone, "phone:+8613800138000"},
      {"phone:+14155550100", IdKind::kPhone, "phone:+14155550100"},
      {"phone:+85212345678", IdKind::kPhone, "phone:+85212345678"},
      {"phone:+12345678", IdKind::kPhone, "phone:+12345678"},                // 8 digits
      {"phone:+123456789012345", IdKind::kPhone, "phone:+123456789012345"},  // 15 digits
      // member_no
      {"member_no:M0001", IdKind::kMemberNo, "member_no:M0001"},
      {"member_no:" + a64, IdKind::kMemberNo, "member_no:" + a64},
      // custom
      {"custom:crm:C-42", IdKind::kCustom, "custom:crm:C-42"},
      {"custom:tmall_buyer:nick.name@example.com", IdKind::kCustom,
       "custom:tmall_buyer:nick.name@example.com"},
      {"custom:" + std::string(32, 'n') + ":" + b128, IdKind::kCustom,
       "custom:" + std::string(32, 'n') + ":" + b128},
  };
  for (const auto& c : cases) {
    auto r = ParseExternalId(c.in);
    ASSERT_TRUE(r.ok()) << c.in << ": " << r.status().ToString();
    EXPECT_EQ(r->kind, c.kind) << c.in;
    EXPECT_EQ(r->canonical, c.canonical) << c.in;
    EXPECT_EQ(r->kind_name(), c.canonical.substr(0, c.canonical.find(':'))) << c.in;
    // The canonical form is a fixed point.
    auto again = ParseExternalId(r->canonical);
    ASSERT_TRUE(again.ok()) << r->canonical;
    EXPECT_EQ(again->canonical, r->canonical);
  }
}

struct Bad {
  std::string in;
  std::string says;  // a fragment the message must contain
};

TEST(ExternalIdTest, RejectsMalformedWithInvalidFieldAndTheForm) {
  const std::string a65(65, 'a'), b129(129, 'b');
  const std::vector<Bad> cases = {
      {"", "has no kind"},
      {"openid", "has no kind"},
      // openid
      {"openid:onlyone", "needs its app id"},
      {"openid::id", "malformed app id"},
      {"openid:app:", "malformed id"},
      {"openid:app:a:b", "malformed id"},
      {"openid:app:o b", "malformed id"},
      {"openid:" + a65 + ":x", "openid:<appid>:<id>"},
      {"openid:app:" + b129, "openid:<appid>:<id>"},
      // unionid
      {"unionid:", "unionid:<id>"},
      {"unionid:u 1", "unionid:<id>"},
      {"unionid:u/1", "unionid:<id>"},
      {"unionid:" + b129, "unionid:<id>"},
      // external_userid
      {"external_userid:wm1", "external_userid:<corpid>:<id>"},
      {"external_userid::wm1", "corp id"},
      {"external_userid:ww1:", "malformed id"},
      {"external_userid:ww1:wm.1", "malformed id"},
      {"external_userid:" + a65 + ":wm1", "corp id"},
      // phone: the rules of people.cc
      {"phone:", "11-digit mainland"},
      {"phone:12345", "11-digit mainland"},
      {"phone:+86123", "mainland"},
      {"phone:abc", "malformed number"},
      {"phone:23800138000", "11-digit mainland"},
      {"phone:138001380001", "11-digit mainland"},
      {"phone:+8623800138000", "mainland"},
      {"phone:+861380013800", "mainland"},
      {"phone:+", "international"},
      {"phone:+0123456789", "international"},
      {"phone:1380013800+0", "malformed number"},
      {"phone:+1234567", "international"},
      {"phone:+1234567890123456", "international"},
      {"phone:+" + std::string(40, '1'), "too many digits"},
      // member_no
      {"member_no:", "member_no:<id>"},
      {"member_no:M 1", "member_no:<id>"},
      {"member_no:" + a65, "member_no:<id>"},
      // custom
      {"custom:crm", "needs a namespace"},
      {"custom::C1", "namespace"},
      {"custom:CRM:C1", "namespace"},
      {"custom:1crm:C1", "namespace"},
      {"custom:crm-x:C1", "namespace"},
      {"custom:" + std::string(33, 'n') + ":C1", "namespace"},
      {"custom:crm:", "malformed id"},
      {"custom:crm:a:b", "malformed id"},
      {"custom:crm:a b", "malformed id"},
      {"custom:crm:" + b129, "malformed id"},
  };
  for (const auto& c : cases) {
    auto r = ParseExternalId(c.in);
    ASSERT_FALSE(r.ok()) << "accepted '" << c.in << "' as " << r->canonical;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidField) << c.in;
    EXPECT_EQ(r.status().field(), "external_id") << c.in;
    EXPECT_NE(r.status().message().find(c.says), std::string::npos)
        << c.in << ": " << r.status().message();
  }
}

TEST(ExternalIdTest, UnknownKindListsTheSupportedKinds) {
  for (std::string s : {"wechat:x", "PHONE:13800138000", "OpenID:app:o1", "email:a@b.c"}) {
    auto r = ParseExternalId(s);
    ASSERT_FALSE(r.ok()) << s;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidField);
    const std::string& m = r.status().message();
    EXPECT_NE(m.find("unknown kind"), std::string::npos) << m;
    for (std::string_view form :
         {"openid:<appid>:<id>", "unionid:<id>", "external_userid:<corpid>:<id>", "phone:<number>",
          "member_no:<id>", "custom:<namespace>:<id>"}) {
      EXPECT_NE(m.find(form), std::string::npos) << m << " lacks " << form;
    }
  }
}

TEST(ExternalIdTest, ReportsTheCallersFieldName) {
  auto r = ParseExternalId("wechat:x", "people[3].external_id");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().field(), "people[3].external_id");
}

TEST(ExternalIdTest, LongInputIsTruncatedInTheMessage) {
  auto r = ParseExternalId("unionid:" + std::string(5000, '!'));
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 400u);
}

TEST(ExternalIdTest, KindNamesRoundTrip) {
  for (IdKind k : kAllIdKinds) {
    auto back = IdKindFromName(IdKindName(k));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, k);
  }
  EXPECT_FALSE(IdKindFromName("Phone").has_value());
  EXPECT_FALSE(IdKindFromName("").has_value());
}

TEST(ExternalIdTest, CanonicalizeReusesTheBuffer) {
  std::string out = "left over";
  IdKind kind;
  ASSERT_TRUE(CanonicalizeExternalId("phone:13800138000", "f", &out, &kind).ok());
  EXPECT_EQ(out, "phone:+8613800138000");
  EXPECT_EQ(kind, IdKind::kPhone);
  Status st = CanonicalizeExternalId("nope", "f", &out, &kind);
  EXPECT_EQ(st.field(), "f");
}

}  // namespace
}  // namespace siyu::identity
