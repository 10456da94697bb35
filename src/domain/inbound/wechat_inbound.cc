#include "domain/inbound/wechat_inbound.h"

#include <spdlog/spdlog.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/time.h"
#include "domain/wechat/callback_crypto.h"
#include "domain/wechat/events.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {

Status UnknownKind(std::string_view kind) {
  return Status(ErrorCode::kNotFound, "no WeChat app kind '" + std::string(kind.substr(0, 32)) +
                                          "'; use wecom, official_account or mini_program");
}

Status UnknownCallbackKind(std::string_view kind) {
  return Status(ErrorCode::kNotFound, "no WeChat callback kind '" +
                                          std::string(kind.substr(0, 32)) +
                                          "'; use wecom or official_account");
}

bool IsKind(std::string_view k) { return k == kWeCom || k == kOfficialAccount; }
bool IsAppKind(std::string_view k) { return IsKind(k) || k == kMiniProgram; }

// The event id for one fact of one callback: stable across WeChat's retries of it.
std::string EventId(std::string_view source, const std::string& dedup_key,
                    std::string_view part = {}) {
  return "wx:" +
         Sha256Hex(std::string(source) + "|" + dedup_key + "|" + std::string(part)).substr(0, 40);
}

// WeCom external contacts' ids start with "wm" or "wo"; staff user ids are the corp's own names.
bool IsExternalContact(const std::string& id) {
  return id.starts_with("wm") || id.starts_with("wo");
}

}  // namespace

StatusOr<WechatApp> WechatInbound::PutApp(int64_t tenant_id, const WechatApp& in) {
  if (!IsAppKind(in.kind)) return UnknownKind(in.kind);
  WechatApp app = in;
  if (in.kind == kMiniProgram) {
    if (!in.secret || in.secret->empty()) {
      return Status(ErrorCode::kMissingField, "a mini_program app needs its secret", "secret");
    }
    app.token.clear();
    app.encoding_aes_key.clear();
  } else {
    auto crypto = wechat::CallbackCrypto::Create(in.token, in.encoding_aes_key, in.app_id);
    if (!crypto.ok()) return crypto.status();
    // Optional here: callbacks need none, calls to WeChat (channel codes) do.
    if (app.secret && app.secret->empty()) app.secret.reset();
  }
  app.updated_at = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT created_at FROM wechat_apps WHERE tenant_id = ? AND "
                                     "kind = ?",
                                     {tenant_id, app.kind}));
    app.created_at = r.empty() ? app.updated_at : r[0].Int(0);
    return c
        .Exec(
            "INSERT INTO wechat_apps (tenant_id, kind, app_id, token, encoding_aes_key, "
            "secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(tenant_id, kind) DO UPDATE SET app_id = excluded.app_id, token = excluded.token, "
            "encoding_aes_key = excluded.encoding_aes_key, secret = excluded.secret, "
            "updated_at = excluded.updated_at",
            {tenant_id, app.kind, app.app_id, app.token, app.encoding_aes_key,
             app.secret ? store::Value(*app.secret) : store::Value(nullptr), app.created_at,
             app.updated_at})
        .status();
  }));
  return app;
}

StatusOr<std::vector<WechatApp>> WechatInbound::ListApps(int64_t tenant_id) {
  std::vector<WechatApp> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT kind, app_id, token, encoding_aes_key, secret, "
                                     "created_at, updated_at FROM wechat_apps WHERE tenant_id = ? "
                                     "ORDER BY kind",
                                     {tenant_id}));
    for (const auto& row : r) {
      WechatApp a{row.Text(0), row.Text(1), row.Text(2), row.Text(3), std::nullopt};
      if (!row.IsNull(4)) a.secret = row.Text(4);
      a.created_at = row.Int(5);
      a.updated_at = row.Int(6);
      out.push_back(std::move(a));
    }
    return Status::Ok();
  }));
  return out;
}

StatusOr<WechatApp> WechatInbound::App(int64_t tenant_id, std::string_view kind) {
  if (!IsAppKind(kind)) return UnknownKind(kind);
  ASSIGN_OR_RETURN(auto apps, ListApps(tenant_id));
  for (auto& a : apps) {
    if (a.kind == kind) return a;
  }
  // Unconfigured and unknown tenants answer alike, so a caller learns nothing about tenants.
  return Status(ErrorCode::kNotFound, "no " + std::string(kind) +
                                          " app is configured for this tenant; configure it with "
                                          "PUT /v1/wechat/apps/" +
                                          std::string(kind));
}

StatusOr<bool> WechatInbound::StateExists(int64_t tenant_id, const std::string& state) {
  bool found = false;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT 1 FROM channels WHERE tenant_id = ? AND state = ?",
                                     {tenant_id, state}));
    found = !r.empty();
    return Status::Ok();
  }));
  return found;
}

StatusOr<std::string> WechatInbound::VerifyUrl(int64_t tenant_id, std::string_view kind,
                                               const CallbackQuery& q) {
  if (!IsKind(kind)) return UnknownCallbackKind(kind);
  ASSIGN_OR_RETURN(WechatApp app, App(tenant_id, kind));
  if (kind == kOfficialAccount) {
    // Official accounts verify the URL in plain mode and expect echostr back unchanged.
    RETURN_IF_ERROR(wechat::VerifyPlainSignature(app.token, q.timestamp, q.nonce, q.signature));
    return q.echostr;
  }
  ASSIGN_OR_RETURN(auto crypto,
                   wechat::CallbackCrypto::Create(app.token, app.encoding_aes_key, app.app_id));
  return crypto.VerifyUrl(q.msg_signature, q.timestamp, q.nonce, q.echostr);
}

StatusOr<CallbackOutcome> WechatInbound::Handle(int64_t tenant_id, std::string_view kind,
                                                const CallbackQuery& q, std::string_view body) {
  if (!IsKind(kind)) return UnknownCallbackKind(kind);
  ASSIGN_OR_RETURN(WechatApp app, App(tenant_id, kind));
  std::string xml;
  if (kind == kOfficialAccount && q.encrypt_type != "aes") {
    RETURN_IF_ERROR(wechat::VerifyPlainSignature(app.token, q.timestamp, q.nonce, q.signature));
    xml = std::string(body);
  } else {
    ASSIGN_OR_RETURN(auto crypto,
                     wechat::CallbackCrypto::Create(app.token, app.encoding_aes_key, app.app_id));
    ASSIGN_OR_RETURN(xml, crypto.DecryptMessage(q.msg_signature, q.timestamp, q.nonce, body));
  }

  CallbackOutcome out;
  std::vector<json::value> events;
  auto base = [&](const std::string& id, std::string_view type, int64_t ts,
                  std::string_view touchpoint, std::string ext_id) {
    json::object e;
    e["event_id"] = id;
    e["type"] = type;
    e["ids"] = json::array{json::value(ext_id)};
    e["ts"] = ts;
    e["touchpoint"] = touchpoint;
    e["properties"] = json::object();
    return e;
  };
  // A state or scene that names a channel attributes the event; any other is kept as a property.
  auto attribute = [&](json::object& e, const std::string& state) -> Status {
    if (state.empty()) return Status::Ok();
    ASSIGN_OR_RETURN(bool known, StateExists(tenant_id, state));
    if (known) {
      e["channel_state"] = state;
    } else {
      e["properties"].as_object()["state"] = state;
    }
    return Status::Ok();
  };

  if (kind == kWeCom) {
    ASSIGN_OR_RETURN(wechat::WeComEvent ev, wechat::ParseWeComEvent(xml));
    out.event_kind = ev.change_type.empty() ? ev.event : ev.change_type;
    int64_t ts = ev.create_time * 1000;
    std::string corp = app.app_id;
    const auto& ct = ev.contact;
    using K = wechat::WeComEventKind;
    switch (ev.kind) {
      case K::kAddExternalContact:
      case K::kAddHalfExternalContact: {
        json::object e = base(EventId(kWeCom, ev.dedup_key), "contact_added", ts, "wecom",
                              "external_userid:" + corp + ":" + ct.external_user_id);
        auto& p = e["properties"].as_object();
        p["user_id"] = ct.user_id;
        if (!ct.welcome_code.empty()) p["welcome_code"] = ct.welcome_code;
        if (ev.kind == K::kAddHalfExternalContact) p["half"] = true;
        RETURN_IF_ERROR(attribute(e, ct.state));
        events.emplace_back(std::move(e));
        break;
      }
      case K::kDelExternalContact:
      case K::kDelFollowUser: {
        json::object e = base(EventId(kWeCom, ev.dedup_key), "contact_removed", ts, "wecom",
                              "external_userid:" + corp + ":" + ct.external_user_id);
        auto& p = e["properties"].as_object();
        p["user_id"] = ct.user_id;
        p["by"] = ev.kind == K::kDelExternalContact ? "staff" : "customer";
        events.emplace_back(std::move(e));
        break;
      }
      case K::kEditExternalContact: {
        json::object e = base(EventId(kWeCom, ev.dedup_key), "custom:contact_edited", ts, "wecom",
                              "external_userid:" + corp + ":" + ct.external_user_id);
        e["properties"].as_object()["user_id"] = ct.user_id;
        events.emplace_back(std::move(e));
        break;
      }
      case K::kExternalChatUpdate: {
        const auto& chat = ev.chat;
        std::string type = chat.update_detail == "add_member"   ? "group_joined"
                           : chat.update_detail == "del_member" ? "group_left"
                                                                : "";
        if (type.empty()) break;
        for (const auto& member : chat.mem_change_list) {
          if (!IsExternalContact(member)) continue;
          json::object e = base(EventId(kWeCom, ev.dedup_key, member), type, ts, "group",
                                "external_userid:" + corp + ":" + member);
          auto& p = e["properties"].as_object();
          p["chat_id"] = chat.chat_id;
          if (chat.join_scene) p["join_scene"] = *chat.join_scene;
          events.emplace_back(std::move(e));
        }
        break;
      }
      default:
        break;  // chat created or dismissed, transfer failures: no person to record them for
    }
  } else {
    ASSIGN_OR_RETURN(wechat::OfficialAccountEvent ev, wechat::ParseOfficialAccountEvent(xml));
    out.event_kind = ev.event;
    int64_t ts = ev.create_time * 1000;
    std::string id = "openid:" + app.app_id + ":" + ev.openid;
    using K = wechat::OfficialAccountEventKind;
    if (ev.kind == K::kSubscribe || ev.kind == K::kScan) {
      if (!ev.scene.empty()) {
        json::object e = base(EventId(kOfficialAccount, ev.dedup_key, "scan"), "qr_scanned", ts,
                              "official_account", id);
        e["properties"].as_object()["scene"] = ev.scene;
        RETURN_IF_ERROR(attribute(e, ev.scene));
        events.emplace_back(std::move(e));
      }
      if (ev.kind == K::kSubscribe) {
        json::object e =
            base(EventId(kOfficialAccount, ev.dedup_key), "follow", ts, "official_account", id);
        auto& p = e["properties"].as_object();
        p["app_id"] = app.app_id;
        if (!ev.scene.empty()) p["scene"] = ev.scene;
        RETURN_IF_ERROR(attribute(e, ev.scene));
        events.emplace_back(std::move(e));
      }
    } else if (ev.kind == K::kUnsubscribe) {
      json::object e =
          base(EventId(kOfficialAccount, ev.dedup_key), "unfollow", ts, "official_account", id);
      e["properties"].as_object()["app_id"] = app.app_id;
      events.emplace_back(std::move(e));
    }
  }

  if (events.empty()) return out;
  std::vector<EventItem> items;
  int64_t now = NowMs();
  for (size_t i = 0; i < events.size(); ++i) items.push_back(ReadEventItem(events[i], i, now));
  ASSIGN_OR_RETURN(IngestResult r, events_.Ingest(tenant_id, std::move(items)));
  for (const auto& res : r.results) {
    if (res.outcome == EventOutcome::kRejected) {
      // WeChat cannot fix what it sent; record why and acknowledge, or it retries forever.
      spdlog::warn("wechat {} callback of tenant {}: event refused: {}", kind, tenant_id,
                   res.error.ToString());
    }
  }
  out.accepted = r.accepted;
  out.duplicates = r.duplicates;
  out.rejected = r.rejected;
  return out;
}

}  // namespace siyu::domain
