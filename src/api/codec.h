// The wire format of the v1 API: request bodies parsed and validated into domain inputs, domain
// results rendered as JSON, and Status rendered as the error envelope. No transport here: the
// server layer calls these.
#pragma once

#include <string>
#include <string_view>

#include "api/csv_import.h"
#include "common/json.h"
#include "domain/analytics/channel_report.h"
#include "domain/analytics/overview.h"
#include "domain/channels/channel_codes.h"
#include "domain/channels/channels.h"
#include "domain/events/events.h"
#include "domain/inbound/miniprogram_login.h"
#include "domain/inbound/wechat_inbound.h"
#include "domain/orders/orders.h"
#include "domain/people/audience.h"
#include "domain/people/identity.h"
#include "domain/people/people.h"
#include "domain/tenancy/tenancy.h"

namespace siyu::api {

// {"error":{"code","message","field"?}}
std::string ErrorBody(const Status& s);

struct LoginInput {
  std::string username;
  std::string password;
};
struct KeyInput {
  std::string name;
  domain::Role role;
};
struct RefundInput {
  std::optional<std::string> reason;
  std::optional<int64_t> refunded_at;
};

StatusOr<LoginInput> ParseLogin(std::string_view body);
StatusOr<std::string> ParseTenantName(std::string_view body);
StatusOr<KeyInput> ParseKeyInput(std::string_view body);
StatusOr<domain::NewChannel> ParseNewChannel(std::string_view body);
// POST /v1/channels/{id}/codes {"kind", "users"?, "skip_verify"?, "page"?, "url"?, "refresh"?}:
// types and sizes here, the options' rules per kind in domain::CheckCodeOptions.
StatusOr<domain::CodeRequest> ParseCodeRequest(std::string_view body);
StatusOr<domain::PersonUpsert> ParsePersonUpsert(std::string_view body, int64_t now_ms);
StatusOr<domain::NewOrder> ParseNewOrder(std::string_view body, int64_t now_ms);
StatusOr<RefundInput> ParseRefund(std::string_view body, int64_t now_ms);
// POST /v1/events. The envelope is strict — a JSON object whose only field is `events`, an array
// of 1–1,000 elements — and a bad envelope fails the request. Each element is validated on its own
// (domain::ReadEventItem): a bad element is refused alone, in its item of the answer.
StatusOr<std::vector<domain::EventItem>> ParseEventBatch(std::string_view body, int64_t now_ms);

json::object ToJson(const domain::Tenant& t);
json::object ToJson(const domain::Operator& o);
json::object ToJson(const domain::ApiKey& k);
json::object ToJson(const domain::Channel& c);
// A channel code; `svg` and `png` are the paths of its images once it is made.
json::object ToJson(const domain::ChannelCode& c);
// GET /v1/channels/{id}/codes: the channel's state and touchpoint, and every code it can have.
json::object CodesJson(const domain::Channel& ch, const std::vector<domain::ChannelCode>& codes);
json::object ToJson(const domain::Person& p);
json::object ToJson(const domain::Order& o);
json::object ToJson(const domain::Overview& ov);
json::object ToJson(const domain::ChannelReport& r);
StatusOr<domain::WechatApp> ParseWechatApp(std::string_view body, const std::string& kind);
// Secrets are shown only in part; `callback_path` tells the brand what to enter at WeChat.
json::object ToJson(const domain::WechatApp& app, int64_t tenant_id);
// POST /v1/wechat/mini_program/login {"code"} → the js_code.
StatusOr<std::string> ParseMiniProgramLogin(std::string_view body);
StatusOr<domain::MiniProgramPhoneInput> ParseMiniProgramPhone(std::string_view body);
// Never carries the session_key.
json::object ToJson(const domain::MiniProgramLoginResult& res);
json::object ToJson(const domain::MiniProgramPhoneResult& res);
json::object ToJson(const ImportSummary& s);
json::object SessionJson(const domain::Session& s, bool with_token);
json::object ToJson(const domain::IngestResult& r);
json::object ToJson(const domain::StoredEvent& e);
// GET /v1/events/catalogue: the standard types, the custom type rule and the ingest limits.
json::object EventCatalogueJson();

// ---- identity ----------------------------------------------------------------------------------

struct LinkInput {
  std::string id_a, id_b;  // canonical
  std::string reason;
};
// POST /v1/identity/links: {"id_a", "id_b", "reason"?}; the ids in any accepted spelling.
StatusOr<LinkInput> ParseLinkInput(std::string_view body);
// {"reason"} of unmerge / approve / reject (1-200 characters).
StatusOr<std::string> ParseReason(std::string_view body);
json::object ToJson(const domain::LinkAnswer& a);
json::object ToJson(const identity::LogEntry& e);
json::object ToJson(const identity::Quarantine& q);
json::object ToJson(const domain::PersonIdentity& p);

// ---- audience ----
StatusOr<domain::NewTag> ParseNewTag(std::string_view body);
StatusOr<domain::TagMembersChange> ParseTagMembersChange(std::string_view body);
StatusOr<domain::NewSegment> ParseNewSegment(std::string_view body);
// {"expression": "…"} or {"json": {…}}: (expression, json text).
StatusOr<std::pair<std::optional<std::string>, std::optional<std::string>>> ParseCountInput(
    std::string_view body);
// PUT /v1/audience/settings: {"rfm":{"recency"|"frequency"|"monetary":{"mode":"quantile",
// "quantile":q} | {"mode":"fixed","value":n}},"lifecycle":{…}}; absent parts take the defaults.
StatusOr<domain::AudienceSettings> ParseAudienceSettings(std::string_view body);
json::object ToJson(const domain::SegmentSnapshotInfo& s);
json::object ToJson(const domain::AudienceTag& t);
json::object ToJson(const domain::AudienceSegment& s);

}  // namespace siyu::api
