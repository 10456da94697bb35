#include "domain/inbound/miniprogram_login.h"

#include "common/crypto.h"
#include "common/json.h"
#include "common/time.h"
#include "domain/events/events.h"
#include "domain/people/people.h"
#include "domain/wechat/miniprogram.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {

constexpr std::string_view kWechatOrigin = "https://api.weixin.qq.com";

// Resolves `ids` inside a write: they are one person (linked through the identity graph).
StatusOr<Resolution> Link(Conn& c, Identity& identity, int64_t tenant_id,
                          const std::vector<ExternalId>& ids, int64_t now,
                          const std::string& reason) {
  ASSIGN_OR_RETURN(Identity::AssignLock sync, identity.SyncInWrite(c, tenant_id));
  KnownIds known;
  std::vector<std::string> canonical;
  for (const auto& id : ids) canonical.push_back(id.canonical);
  RETURN_IF_ERROR(known.Load(c, identity, tenant_id, canonical));
  return ResolvePerson(c, identity, tenant_id, ids, std::nullopt, now, known, reason);
}

// The phone of getPhoneNumber's decrypted JSON as an external id text, "+<cc><number>".
StatusOr<std::string> PhoneOf(const std::string& data) {
  auto bad = [](std::string why) {
    return Status(ErrorCode::kInvalidField, "the decrypted data " + why, "encrypted_data");
  };
  auto parsed = ParseJsonObject(data);
  if (!parsed.ok()) return bad("is not a JSON object");
  const json::object* o = &*parsed;
  auto str = [&](std::string_view k) -> std::string {
    auto it = o->find(k);
    if (it == o->end()) return {};
    if (it->value().is_string()) return std::string(it->value().get_string());
    if (it->value().is_int64()) return std::to_string(it->value().get_int64());
    return {};
  };
  auto digits = [](const std::string& s) {
    std::string d;
    for (char ch : s) {
      if (ch >= '0' && ch <= '9') d.push_back(ch);
    }
    return d;
  };
  std::string cc = digits(str("countryCode"));
  std::string pure = digits(str("purePhoneNumber"));
  std::string full = str("phoneNumber");
  if (!pure.empty() && !cc.empty()) return "+" + cc + pure;
  if (!full.empty() && full.front() == '+') return "+" + digits(full);
  if (!full.empty() && !cc.empty()) return "+" + cc + digits(full);
  if (!full.empty()) return digits(full);  // no country: the id grammar's mainland rule decides
  return bad("has no phoneNumber");
}

}  // namespace

StatusOr<MiniProgramLoginResult> MiniProgramLogin::Login(int64_t tenant_id,
                                                         const std::string& js_code) {
  ASSIGN_OR_RETURN(WechatApp app, apps_.App(tenant_id, kMiniProgram));
  ASSIGN_OR_RETURN(std::string url,
                   wechat::Code2SessionRequest(app.app_id, app.secret.value_or(""), js_code));
  if (url.starts_with(kWechatOrigin)) url = api_base_ + url.substr(kWechatOrigin.size());
  ASSIGN_OR_RETURN(HttpResponse resp, http_.Get(url));
  if (resp.status != 200) {
    return Status(ErrorCode::kWechatApiError,
                  "jscode2session answered HTTP " + std::to_string(resp.status));
  }
  ASSIGN_OR_RETURN(wechat::Code2Session cs, wechat::ParseCode2SessionResponse(resp.body));

  std::vector<ExternalId> ids;
  ASSIGN_OR_RETURN(ExternalId oid, ParseExternalId("openid:" + app.app_id + ":" + cs.openid));
  ids.push_back(std::move(oid));
  if (cs.unionid && !cs.unionid->empty()) {
    ASSIGN_OR_RETURN(ExternalId uid, ParseExternalId("unionid:" + *cs.unionid));
    ids.push_back(std::move(uid));
  }

  MiniProgramLoginResult out;
  out.openid = cs.openid;
  out.unionid = cs.unionid;
  out.session = "mps_" + RandomBase62(32);
  const std::string token_hash = Sha256Hex(out.session);
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    const int64_t now = NowMs();
    ASSIGN_OR_RETURN(Resolution res, Link(c, identity_, tenant_id, ids, now, "mini-program login"));
    out.person_id = res.person_id;
    out.link = res.link;
    return c
        .Exec(
            "INSERT INTO mp_sessions (tenant_id, token_hash, openid, session_key, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            {tenant_id, token_hash, cs.openid, cs.session_key, now, now + kMiniProgramSessionTtlMs})
        .status();
  }));
  return out;
}

StatusOr<MiniProgramPhoneResult> MiniProgramLogin::LinkPhone(int64_t tenant_id,
                                                             const MiniProgramPhoneInput& in) {
  auto unknown = [] {
    return Status(ErrorCode::kNotFound,
                  "unknown or expired mini-program session; log in again with "
                  "POST /v1/wechat/mini_program/login",
                  "session");
  };
  if (!in.session.starts_with("mps_")) return unknown();
  const std::string token_hash = Sha256Hex(in.session);
  std::string openid, session_key;
  bool found = false;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT openid, session_key FROM mp_sessions WHERE "
                                     "tenant_id = ? AND token_hash = ? AND expires_at > ?",
                                     {tenant_id, token_hash, NowMs()}));
    if (!r.empty()) {
      found = true;
      openid = r[0].Text(0);
      session_key = r[0].Text(1);
    }
    return Status::Ok();
  }));
  if (!found) return unknown();
  ASSIGN_OR_RETURN(WechatApp app, apps_.App(tenant_id, kMiniProgram));
  ASSIGN_OR_RETURN(wechat::UserData data,
                   wechat::DecryptUserData(in.encrypted_data, in.iv, session_key, app.app_id));
  ASSIGN_OR_RETURN(std::string number, PhoneOf(data.json));
  auto phone = ParseExternalId("phone:" + number, "encrypted_data");
  if (!phone.ok()) {
    return Status(ErrorCode::kInvalidField, "the decrypted phone number is not a valid phone",
                  "encrypted_data");
  }
  ASSIGN_OR_RETURN(ExternalId oid, ParseExternalId("openid:" + app.app_id + ":" + openid));
  std::vector<ExternalId> ids{std::move(oid), *phone};

  MiniProgramPhoneResult out;
  out.phone = phone->canonical;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Resolution res,
                     Link(c, identity_, tenant_id, ids, NowMs(), "mini-program phone number"));
    out.person_id = res.person_id;
    out.link = res.link;
    return Status::Ok();
  }));
  return out;
}

}  // namespace siyu::domain
