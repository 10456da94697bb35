#include "server/routes.h"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <charconv>
#include <span>
#include <tuple>
#include <vector>

#include "api/codec.h"
#include "api/csv_import.h"
#include "common/metrics.h"
#include "common/time.h"
#include "domain/analytics/channel_report.h"
#include "domain/analytics/overview.h"
#include "domain/channels/qr_image.h"

namespace siyu::server {

namespace {

using domain::Role;

enum class Access {
  kPublic,         // no credentials
  kAuthenticated,  // any valid key or session, tenant optional
  kSession,        // a console session (not an API key)
  kRead,           // admin, operator, analyst
  kWrite,          // admin, operator
  kIngest,         // admin, operator, ingest
  kAdmin,          // admin
  kSuperuser,      // a superuser's console session
};

struct Ctx {
  engine::Engine& engine;
  const HttpIn& in;
  domain::Principal principal;
  std::string token;
  std::vector<std::string> params;
  std::vector<std::pair<std::string, std::string>> query;
  int64_t now = 0;
  domain::ChannelCodes* codes = nullptr;

  std::optional<std::string> Query(std::string_view name) const {
    for (const auto& [k, v] : query) {
      if (k == name) return v;
    }
    return std::nullopt;
  }
  int64_t tenant() const { return principal.tenant_id; }
};

using HandlerFn = HttpOut (*)(Ctx&);

enum class Body { kJson, kXml, kCsv };

struct Route {
  std::string_view method;
  std::string_view pattern;
  Access access;
  HandlerFn fn;
  Body body = Body::kJson;
};

HttpOut Json(int status, const json::value& v) {
  HttpOut out;
  out.status = status;
  out.body = siyu::ToJson(v);
  return out;
}

HttpOut Items(const json::array& items, std::optional<int64_t> next_after = std::nullopt,
              bool paged = false) {
  json::object o;
  o["items"] = items;
  if (paged) o["next_after"] = next_after ? json::value(*next_after) : json::value(nullptr);
  return Json(200, o);
}

// ---- parameter helpers -------------------------------------------------------------------------

StatusOr<int64_t> PathId(const Ctx& c, size_t i, std::string_view what) {
  const std::string& s = c.params.at(i);
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v <= 0) {
    return Status(ErrorCode::kNotFound, "no " + std::string(what) + " '" + s.substr(0, 64) + "'");
  }
  return v;
}

StatusOr<int64_t> QueryInt(const Ctx& c, std::string_view name, int64_t def, int64_t min,
                           int64_t max) {
  auto v = c.Query(name);
  if (!v) return def;
  int64_t x = 0;
  auto r = std::from_chars(v->data(), v->data() + v->size(), x);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size() || x < min || x > max) {
    return Status(ErrorCode::kInvalidQuery,
                  "query parameter '" + std::string(name) + "' must be an integer from " +
                      std::to_string(min) + " to " + std::to_string(max),
                  std::string(name));
  }
  return x;
}

Status CheckQuery(const Ctx& c, std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : c.query) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return Status(ErrorCode::kInvalidQuery, "unknown query parameter '" + k.substr(0, 64) + "'",
                    k.substr(0, 64));
    }
  }
  return Status::Ok();
}

#define TRY(expr)                        \
  do {                                   \
    ::siyu::Status s_ = (expr);          \
    if (!s_.ok()) return Api::Error(s_); \
  } while (0)
#define TRY_ASSIGN(lhs, expr) TRY_ASSIGN_IMPL(SIYU_CONCAT(t_, __LINE__), lhs, expr)
#define TRY_ASSIGN_IMPL(tmp, lhs, expr)           \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return Api::Error(tmp.status()); \
  lhs = std::move(tmp).value()

// ---- handlers ----------------------------------------------------------------------------------

HttpOut Healthz(Ctx& c) {
  json::object o;
  o["status"] = "ok";
  o["store"] = c.engine.store().name();
  return Json(200, o);
}

HttpOut MetricsText(Ctx& c) {
  HttpOut out;
  out.body = Metrics::Global().Render();
  // The event log and its in-memory indexes (SQLite deployments).
  if (domain::EventLogStats st = c.engine.events().LogStats(); st.enabled) {
    for (auto [name, help, v] : {
             std::tuple{"siyu_eventlog_records", "events in the event log", st.records},
             std::tuple{"siyu_eventlog_bytes", "durable bytes of the event log", st.bytes},
             std::tuple{"siyu_events_dedup_ids", "event ids known to deduplication", st.dedup_ids},
             std::tuple{"siyu_events_dedup_bytes", "memory of the deduplication sets",
                        st.dedup_bytes},
             std::tuple{"siyu_events_timeline_rows", "person rows in the timeline index",
                        st.timeline_rows},
         }) {
      out.body += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help, v);
    }
  }
  const domain::Audience::ChangeStats ch = c.engine.audience().Changes();
  for (auto [name, help, type, v] : {
           std::tuple{"siyu_audience_changes_total", "tag, segment, stage and RFM changes",
                      "counter", ch.deltas},
           std::tuple{"siyu_audience_changes_recorded_total",
                      "changes recorded as the people's events", "counter", ch.recorded},
           std::tuple{"siyu_audience_changes_dropped_total", "changes not recorded", "counter",
                      ch.dropped},
           std::tuple{"siyu_audience_changes_pending", "changes waiting to be recorded", "gauge",
                      ch.pending},
       }) {
    out.body += fmt::format("# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type, v);
  }
  out.content_type = "text/plain; version=0.0.4";
  return out;
}

HttpOut Login(Ctx& c) {
  TRY_ASSIGN(api::LoginInput in, api::ParseLogin(c.in.body));
  TRY_ASSIGN(domain::Session s, c.engine.tenancy().Login(in.username, in.password));
  return Json(200, api::SessionJson(s, true));
}

HttpOut Logout(Ctx& c) {
  TRY(c.engine.tenancy().Logout(c.token));
  json::object o;
  o["ok"] = true;
  return Json(200, o);
}

HttpOut Me(Ctx& c) {
  TRY_ASSIGN(domain::Session s, c.engine.tenancy().SessionOf(c.token));
  return Json(200, api::SessionJson(s, false));
}

HttpOut ListTenants(Ctx& c) {
  json::array items;
  if (c.principal.operator_id) {
    TRY_ASSIGN(auto ts, c.engine.tenancy().TenantsOf(c.principal.operator_id));
    for (const auto& t : ts) items.emplace_back(api::ToJson(t));
  } else {
    TRY_ASSIGN(domain::Tenant t, c.engine.tenancy().GetTenant(c.tenant()));
    t.role = domain::RoleName(c.principal.role);
    items.emplace_back(api::ToJson(t));
  }
  return Items(items);
}

HttpOut CreateTenant(Ctx& c) {
  TRY_ASSIGN(std::string name, api::ParseTenantName(c.in.body));
  TRY_ASSIGN(domain::Tenant t, c.engine.tenancy().CreateTenant(name, c.principal.operator_id));
  return Json(201, api::ToJson(t));
}

HttpOut CreateKey(Ctx& c) {
  TRY_ASSIGN(api::KeyInput in, api::ParseKeyInput(c.in.body));
  TRY_ASSIGN(domain::ApiKey k, c.engine.tenancy().CreateKey(c.tenant(), in.name, in.role));
  return Json(201, api::ToJson(k));
}

HttpOut ListKeys(Ctx& c) {
  TRY_ASSIGN(auto keys, c.engine.tenancy().ListKeys(c.tenant()));
  json::array items;
  for (const auto& k : keys) items.emplace_back(api::ToJson(k));
  return Items(items);
}

HttpOut RevokeKey(Ctx& c) {
  TRY_ASSIGN(int64_t id, PathId(c, 0, "API key"));
  TRY_ASSIGN(domain::ApiKey k, c.engine.tenancy().RevokeKey(c.tenant(), id));
  return Json(200, api::ToJson(k));
}

HttpOut CreateChannel(Ctx& c) {
  TRY_ASSIGN(domain::NewChannel in, api::ParseNewChannel(c.in.body));
  TRY_ASSIGN(domain::Channel ch, c.engine.channels().Create(c.tenant(), in));
  return Json(201, api::ToJson(ch));
}

HttpOut ListChannels(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(auto chs, c.engine.channels().List(c.tenant()));
  json::array items;
  for (const auto& ch : chs) items.emplace_back(api::ToJson(ch));
  return Items(items);
}

HttpOut GetChannel(Ctx& c) {
  TRY_ASSIGN(int64_t id, PathId(c, 0, "channel"));
  TRY_ASSIGN(domain::Channel ch, c.engine.channels().Get(c.tenant(), id));
  return Json(200, api::ToJson(ch));
}

HttpOut MakeChannelCode(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "channel"));
  TRY_ASSIGN(domain::CodeRequest req, api::ParseCodeRequest(c.in.body));
  TRY_ASSIGN(auto res, c.codes->Make(c.tenant(), id, req));
  return Json(res.second ? 201 : 200, api::ToJson(res.first));
}

HttpOut ListChannelCodes(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "channel"));
  TRY_ASSIGN(domain::Channel ch, c.engine.channels().Get(c.tenant(), id));
  TRY_ASSIGN(auto codes, c.codes->List(c.tenant(), id));
  return Json(200, api::CodesJson(ch, codes));
}

// `{kind}` is a code's JSON; `{kind}.svg` and `{kind}.png` are its image.
HttpOut GetChannelCode(Ctx& c) {
  TRY_ASSIGN(int64_t id, PathId(c, 0, "channel"));
  std::string name = c.params.at(1);
  std::optional<domain::ImageFormat> format;
  if (name.ends_with(".svg")) {
    format = domain::ImageFormat::kSvg;
  } else if (name.ends_with(".png")) {
    format = domain::ImageFormat::kPng;
  }
  if (format) name.resize(name.size() - 4);
  auto kind = domain::ParseCodeKind(name);
  if (!kind) {
    return Api::Error(Status(ErrorCode::kNotFound,
                             "no code '" + c.params.at(1).substr(0, 64) +
                                 "'; use wecom_contact_way, oa_qrcode, mp_code or link, with "
                                 ".svg or .png for its image"));
  }
  if (!format) {
    TRY(CheckQuery(c, {}));
    TRY_ASSIGN(domain::ChannelCode code, c.codes->Get(c.tenant(), id, *kind));
    return Json(200, api::ToJson(code));
  }
  int64_t scale = domain::kQrDefaultScale;
  if (*format == domain::ImageFormat::kPng) {
    TRY(CheckQuery(c, {"scale"}));
    TRY_ASSIGN(scale, QueryInt(c, "scale", domain::kQrDefaultScale, 1, domain::kQrMaxScale));
  } else {
    TRY(CheckQuery(c, {}));
  }
  TRY_ASSIGN(domain::CodeImage img,
             c.codes->Image(c.tenant(), id, *kind, *format, static_cast<int>(scale)));
  HttpOut out;
  out.body = std::move(img.body);
  out.content_type = std::move(img.content_type);
  out.headers.emplace_back(
      "Content-Disposition",
      "inline; filename=\"channel-" + std::to_string(id) + "-" + name + "." + img.extension + "\"");
  // A code belongs to one tenant: no shared caches.
  out.headers.emplace_back("Cache-Control", "private, no-cache");
  return out;
}

HttpOut UpsertPerson(Ctx& c) {
  TRY_ASSIGN(domain::PersonUpsert in, api::ParsePersonUpsert(c.in.body, c.now));
  TRY_ASSIGN(auto res, c.engine.people().Upsert(c.tenant(), in));
  json::object o;
  o["created"] = res.second;
  o["person"] = api::ToJson(res.first);
  return Json(res.second ? 201 : 200, o);
}

HttpOut ListPeople(Ctx& c) {
  TRY(CheckQuery(c, {"external_id", "limit", "after"}));
  if (auto ext = c.Query("external_id")) {
    auto id = domain::ParseExternalId(*ext, "external_id");
    if (!id.ok()) {
      return Api::Error(Status(ErrorCode::kInvalidQuery, id.status().message(), "external_id"));
    }
    TRY_ASSIGN(domain::Person p, c.engine.people().FindByExternalId(c.tenant(), *id));
    return Json(200, api::ToJson(p));
  }
  TRY_ASSIGN(int64_t limit, QueryInt(c, "limit", 50, 1, 500));
  TRY_ASSIGN(int64_t after, QueryInt(c, "after", 0, 0, INT64_MAX));
  TRY_ASSIGN(domain::PersonPage page,
             c.engine.people().List(c.tenant(), after, static_cast<int>(limit)));
  json::array items;
  for (const auto& p : page.items) items.emplace_back(api::ToJson(p));
  return Items(items, page.next_after, true);
}

HttpOut GetPerson(Ctx& c) {
  TRY_ASSIGN(int64_t id, PathId(c, 0, "person"));
  TRY_ASSIGN(domain::Person p, c.engine.people().Get(c.tenant(), id));
  return Json(200, api::ToJson(p));
}

HttpOut CreateOrder(Ctx& c) {
  TRY_ASSIGN(domain::NewOrder in, api::ParseNewOrder(c.in.body, c.now));
  TRY_ASSIGN(auto res, c.engine.orders().Create(c.tenant(), std::move(in)));
  return Json(res.second ? 201 : 200, api::ToJson(res.first));
}

HttpOut ListOrders(Ctx& c) {
  TRY(CheckQuery(c, {"person_id", "limit", "after"}));
  TRY_ASSIGN(int64_t limit, QueryInt(c, "limit", 50, 1, 500));
  TRY_ASSIGN(int64_t after, QueryInt(c, "after", 0, 0, INT64_MAX));
  // A person's orders are those of every person row merged into it.
  std::optional<std::vector<int64_t>> people;
  if (c.Query("person_id")) {
    TRY_ASSIGN(int64_t person, QueryInt(c, "person_id", 0, 1, INT64_MAX));
    auto& identity = c.engine.identity();
    people = identity.ComponentOf(c.tenant(), identity.CanonicalOf(c.tenant(), person));
  }
  TRY_ASSIGN(domain::OrderPage page,
             c.engine.orders().List(c.tenant(), people, after, static_cast<int>(limit)));
  json::array items;
  for (const auto& o : page.items) items.emplace_back(api::ToJson(o));
  return Items(items, page.next_after, true);
}

HttpOut GetOrder(Ctx& c) {
  TRY_ASSIGN(domain::Order o, c.engine.orders().Get(c.tenant(), c.params.at(0)));
  return Json(200, api::ToJson(o));
}

HttpOut RefundOrder(Ctx& c) {
  TRY_ASSIGN(api::RefundInput in, api::ParseRefund(c.in.body, c.now));
  TRY_ASSIGN(domain::Order o,
             c.engine.orders().Refund(c.tenant(), c.params.at(0), in.reason, in.refunded_at));
  return Json(200, api::ToJson(o));
}

// The report period from `from`/`to` (dates in the tenant zone or ms); default: the last 30 days
// including today.
StatusOr<std::pair<int64_t, int64_t>> Period(const Ctx& c) {
  int64_t to = StartOfLocalDay(c.now) + kMsPerDay, from = to - 30 * kMsPerDay;
  for (auto [name, target] : {std::pair{"from", &from}, std::pair{"to", &to}}) {
    if (auto v = c.Query(name)) {
      auto t = ParseTimeParam(*v);
      if (!t) {
        return Status(
            ErrorCode::kInvalidQuery,
            std::string("'") + name + "' must be a date YYYY-MM-DD or a millisecond timestamp",
            name);
      }
      *target = *t;
    }
  }
  if (from >= to) return Status(ErrorCode::kInvalidQuery, "'from' must be before 'to'", "from");
  return std::make_pair(from, to);
}

HttpOut Overview(Ctx& c) {
  TRY(CheckQuery(c, {"from", "to", "channel"}));
  domain::OverviewQuery q;
  TRY_ASSIGN(std::tie(q.from, q.to), Period(c));
  if (c.Query("channel")) {
    TRY_ASSIGN(q.channel_id, QueryInt(c, "channel", 0, 1, INT64_MAX));
    auto ch = c.engine.channels().Get(c.tenant(), *q.channel_id);
    if (!ch.ok()) {
      return Api::Error(Status(ch.status().code(), ch.status().message(), "channel"));
    }
  }
  TRY_ASSIGN(domain::Overview ov, domain::ComputeOverview(c.engine.store(), c.tenant(), q));
  return Json(200, api::ToJson(ov));
}

HttpOut ChannelReport(Ctx& c) {
  TRY(CheckQuery(c, {"from", "to", "model"}));
  int64_t from, to;
  TRY_ASSIGN(std::tie(from, to), Period(c));
  domain::Attribution model = domain::Attribution::kFirstTouch;
  if (auto m = c.Query("model")) {
    if (*m == "last") {
      model = domain::Attribution::kLastTouch;
    } else if (*m != "first") {
      return Api::Error(Status(ErrorCode::kInvalidQuery, "'model' must be first or last", "model"));
    }
  }
  TRY_ASSIGN(domain::ChannelReport r,
             domain::ComputeChannelReport(c.engine.store(), c.tenant(), from, to, model));
  return Json(200, api::ToJson(r));
}

HttpOut IngestEvents(Ctx& c) {
  TRY(CheckQuery(c, {}));
  // The hot path: the batch is read and answered by the events service's own reader and writer
  // (the wire format of api::ParseEventBatch and api::ToJson(IngestResult), without building a
  // JSON tree per answer).
  // Each thread reads its batches into the same items, whose memory serves batch after batch.
  thread_local std::vector<domain::EventItem> items;
  TRY(domain::ReadEventBatch(c.in.body, c.now, items));
  TRY_ASSIGN(domain::IngestResult r, c.engine.events().IngestItems(c.tenant(), items));
  // 200 even when items were refused: the batch was processed, and each item says how it went.
  HttpOut out;
  out.status = 200;
  out.body = domain::IngestResultJson(r);
  return out;
}

HttpOut EventCatalogue(Ctx& c) {
  TRY(CheckQuery(c, {}));
  return Json(200, api::EventCatalogueJson());
}

HttpOut PersonTimeline(Ctx& c) {
  TRY_ASSIGN(int64_t id, PathId(c, 0, "person"));
  TRY(CheckQuery(c, {"limit", "before"}));
  TRY_ASSIGN(int64_t limit, QueryInt(c, "limit", 50, 1, 500));
  TRY_ASSIGN(
      domain::TimelinePage page,
      c.engine.events().Timeline(c.tenant(), id, c.Query("before"), static_cast<int>(limit)));
  json::array items;
  for (const auto& e : page.items) items.emplace_back(api::ToJson(e));
  json::object o;
  o["items"] = std::move(items);
  o["next_before"] = page.next_before ? json::value(*page.next_before) : json::value(nullptr);
  return Json(200, o);
}

// ---- identity ----------------------------------------------------------------------------------

HttpOut ResolveId(Ctx& c) {
  TRY(CheckQuery(c, {"id"}));
  auto raw = c.Query("id");
  if (!raw) {
    return Api::Error(Status(ErrorCode::kInvalidQuery,
                             "give the id to resolve as ?id=<kind>:<value> (e.g. "
                             "?id=unionid:o6_bmasdasdsad6_2sgVt7hMZOPfL)",
                             "id"));
  }
  auto id = domain::ParseExternalId(*raw, "id");
  if (!id.ok()) return Api::Error(Status(ErrorCode::kInvalidQuery, id.status().message(), "id"));
  TRY_ASSIGN(auto who, c.engine.identity().Resolve(c.tenant(), id->canonical));
  json::object o;
  o["id"] = id->canonical;
  o["person_id"] = who.first;
  o["person_row"] = who.second;
  return Json(200, o);
}

HttpOut PersonIdentity(Ctx& c) {
  TRY_ASSIGN(int64_t id, PathId(c, 0, "person"));
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(domain::PersonIdentity p, c.engine.identity().Describe(c.tenant(), id));
  return Json(200, api::ToJson(p));
}

HttpOut LinkIds(Ctx& c) {
  TRY_ASSIGN(api::LinkInput in, api::ParseLinkInput(c.in.body));
  TRY_ASSIGN(domain::LinkAnswer a,
             c.engine.identity().Link(c.tenant(), in.id_a, in.id_b, in.reason));
  // The audience follows the merge (the ticker would, within a minute).
  (void)c.engine.audience().Reconcile(c.tenant());
  return Json(200, api::ToJson(a));
}

HttpOut UnmergePeople(Ctx& c) {
  TRY_ASSIGN(int64_t merge_id, PathId(c, 0, "merge"));
  TRY_ASSIGN(std::string reason, api::ParseReason(c.in.body));
  TRY_ASSIGN(domain::UnmergeAnswer a,
             c.engine.identity().Unmerge(c.tenant(), static_cast<uint64_t>(merge_id), reason));
  // Split people get their own facts back: the tenant's audience is rebuilt from the store.
  TRY(c.engine.audience().Rebuild(c.tenant()));
  json::object o;
  o["seq"] = a.seq;
  o["person_a"] = a.person_a;
  o["person_b"] = a.person_b;
  return Json(200, o);
}

HttpOut ListQuarantine(Ctx& c) {
  TRY(CheckQuery(c, {}));
  json::array items;
  for (const auto& q : c.engine.identity().Quarantined(c.tenant()))
    items.emplace_back(api::ToJson(q));
  return Items(items);
}

HttpOut ApproveQuarantine(Ctx& c) {
  TRY_ASSIGN(int64_t qid, PathId(c, 0, "quarantined link"));
  TRY_ASSIGN(std::string reason, api::ParseReason(c.in.body));
  TRY_ASSIGN(domain::LinkAnswer a,
             c.engine.identity().Approve(c.tenant(), static_cast<uint64_t>(qid), reason));
  (void)c.engine.audience().Reconcile(c.tenant());
  return Json(200, api::ToJson(a));
}

HttpOut RejectQuarantine(Ctx& c) {
  TRY_ASSIGN(int64_t qid, PathId(c, 0, "quarantined link"));
  TRY_ASSIGN(std::string reason, api::ParseReason(c.in.body));
  TRY(c.engine.identity().Reject(c.tenant(), static_cast<uint64_t>(qid), reason));
  json::object o;
  o["quarantine_id"] = qid;
  o["result"] = "rejected";
  return Json(200, o);
}

HttpOut VerifyIdentity(Ctx& c) {
  // The live graph of the caller's tenant against one rebuilt from the store, its invariants and
  // people.canonical_id. A difference is a finding about the data, reported, not a failed call.
  Status s = c.engine.identity().Verify(c.tenant());
  json::object o;
  o["ok"] = s.ok();
  if (!s.ok()) o["error"] = s.message();
  for (const auto& st : c.engine.identity().Stats()) {
    if (st.tenant_id != c.tenant()) continue;
    o["ids"] = st.graph.ids;
    o["person_rows"] = st.graph.people;
    o["persons"] = st.graph.components;
    o["active_merges"] = st.graph.active_merges;
    o["pending_quarantines"] = st.graph.pending_quarantines;
  }
  return Json(200, o);
}

// WeChat signs its query values as sent: read them percent-decoded but with '+' kept (base64).
std::string RawQuery(const Ctx& c, std::string_view name);

domain::CallbackQuery CallbackParams(const Ctx& c) {
  domain::CallbackQuery q;
  q.msg_signature = RawQuery(c, "msg_signature");
  q.signature = RawQuery(c, "signature");
  q.timestamp = RawQuery(c, "timestamp");
  q.nonce = RawQuery(c, "nonce");
  q.echostr = RawQuery(c, "echostr");
  q.encrypt_type = RawQuery(c, "encrypt_type");
  return q;
}

HttpOut WechatVerify(Ctx& c) {
  TRY_ASSIGN(int64_t tenant, PathId(c, 1, "tenant"));
  TRY_ASSIGN(std::string echo, c.engine.wechat().VerifyUrl(tenant, c.params[0], CallbackParams(c)));
  HttpOut out;
  out.body = std::move(echo);
  out.content_type = "text/plain; charset=utf-8";
  return out;
}

HttpOut WechatCallback(Ctx& c) {
  TRY_ASSIGN(int64_t tenant, PathId(c, 1, "tenant"));
  TRY_ASSIGN(domain::CallbackOutcome r,
             c.engine.wechat().Handle(tenant, c.params[0], CallbackParams(c), c.in.body));
  // "success" tells WeChat the callback was taken and that there is no passive reply.
  HttpOut out;
  out.body = "success";
  out.content_type = "text/plain; charset=utf-8";
  return out;
}

HttpOut PutWechatApp(Ctx& c) {
  TRY_ASSIGN(domain::WechatApp in, api::ParseWechatApp(c.in.body, c.params.at(0)));
  TRY_ASSIGN(domain::WechatApp app, c.engine.wechat().PutApp(c.tenant(), in));
  return Json(200, api::ToJson(app, c.tenant()));
}

HttpOut ListWechatApps(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(auto apps, c.engine.wechat().ListApps(c.tenant()));
  json::array items;
  for (const auto& a : apps) items.emplace_back(api::ToJson(a, c.tenant()));
  return Items(items);
}

HttpOut MiniProgramLogin(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(std::string code, api::ParseMiniProgramLogin(c.in.body));
  TRY_ASSIGN(domain::MiniProgramLoginResult r, c.engine.mini_program().Login(c.tenant(), code));
  return Json(200, api::ToJson(r));
}

HttpOut MiniProgramPhone(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(domain::MiniProgramPhoneInput in, api::ParseMiniProgramPhone(c.in.body));
  TRY_ASSIGN(domain::MiniProgramPhoneResult r, c.engine.mini_program().LinkPhone(c.tenant(), in));
  return Json(200, api::ToJson(r));
}

HttpOut Import(Ctx& c) {
  api::ImportOptions opt;
  for (const auto& [k, v] : c.query) {
    if (k != "map") {
      return Api::Error(
          Status(ErrorCode::kInvalidQuery,
                 "unknown query parameter '" + k.substr(0, 64) + "'; only map=field=column",
                 k.substr(0, 64)));
    }
    // The same form as `siyu import --map`: field=column.
    size_t eq = v.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
      return Api::Error(Status(ErrorCode::kInvalidQuery,
                               "map takes field=column, e.g. map=external_id%3Dphone:手机号",
                               "map"));
    }
    opt.mapping[v.substr(0, eq)] = v.substr(eq + 1);
  }
  const std::string& kind = c.params.at(0);
  // Tag members change what operators target: an ingest key may not (it creates tags).
  if (kind == "tags" && c.principal.role != Role::kAdmin && c.principal.role != Role::kOperator) {
    return Api::Error(
        Status(ErrorCode::kForbidden, "role '" + std::string(domain::RoleName(c.principal.role)) +
                                          "' may not import tags (admin or operator)"));
  }
  StatusOr<api::ImportSummary> sum =
      kind == "people"   ? api::ImportPeople(c.engine.people(), c.tenant(), c.in.body, opt)
      : kind == "orders" ? api::ImportOrders(c.engine.orders(), c.tenant(), c.in.body, opt)
      : kind == "tags"
          ? api::ImportTags(c.engine.audience(), c.engine.people(), c.tenant(), c.in.body, opt)
          : StatusOr<api::ImportSummary>(
                Status(ErrorCode::kNotFound,
                       "no import of '" + kind.substr(0, 32) + "'; use people, orders or tags"));
  TRY(sum.status());
  return Json(200, api::ToJson(*sum));
}

// ---- audience ----------------------------------------------------------------------------------

HttpOut ListTags(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(auto tags, c.engine.audience().Tags(c.tenant()));
  json::array items;
  for (const auto& t : tags) items.emplace_back(api::ToJson(t));
  return Items(items);
}

HttpOut CreateTag(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(domain::NewTag in, api::ParseNewTag(c.in.body));
  TRY_ASSIGN(domain::AudienceTag t, c.engine.audience().CreateTag(c.tenant(), in));
  return Json(201, api::ToJson(t));
}

HttpOut DeleteTag(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "tag"));
  TRY(c.engine.audience().DeleteTag(c.tenant(), id));
  json::object o;
  o["id"] = id;
  o["deleted"] = true;
  return Json(200, o);
}

HttpOut ChangeTagPeople(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "tag"));
  TRY_ASSIGN(domain::TagMembersChange in, api::ParseTagMembersChange(c.in.body));
  TRY_ASSIGN(domain::TagMembersResult r, c.engine.audience().ChangeTagMembers(c.tenant(), id, in));
  json::object o;
  o["tag_id"] = r.tag_id;
  o["changed"] = r.changed;
  o["skipped"] = r.skipped;
  return Json(200, o);
}

HttpOut ListSegments(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(auto segs, c.engine.audience().Segments(c.tenant()));
  json::array items;
  for (const auto& s : segs) items.emplace_back(api::ToJson(s));
  return Items(items);
}

HttpOut CreateSegment(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(domain::NewSegment in, api::ParseNewSegment(c.in.body));
  TRY_ASSIGN(domain::AudienceSegment s, c.engine.audience().CreateSegment(c.tenant(), in));
  return Json(201, api::ToJson(s));
}

HttpOut GetSegment(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "segment"));
  TRY_ASSIGN(domain::AudienceSegment s, c.engine.audience().Segment(c.tenant(), id));
  return Json(200, api::ToJson(s));
}

HttpOut DeleteSegment(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "segment"));
  TRY(c.engine.audience().DeleteSegment(c.tenant(), id));
  json::object o;
  o["id"] = id;
  o["deleted"] = true;
  return Json(200, o);
}

HttpOut SegmentMembers(Ctx& c) {
  TRY(CheckQuery(c, {"after", "limit"}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "segment"));
  TRY_ASSIGN(int64_t after, QueryInt(c, "after", 0, 0, INT64_MAX));
  TRY_ASSIGN(int64_t limit, QueryInt(c, "limit", 100, 1, 1000));
  TRY_ASSIGN(audience::MembersPage page,
             c.engine.audience().SegmentMembers(c.tenant(), id, after, static_cast<size_t>(limit)));
  json::array items;
  for (int64_t p : page.people) items.emplace_back(p);
  return Items(items, page.next_after ? std::optional<int64_t>(page.next_after) : std::nullopt,
               true);
}

// A CSV of person ids, one per line under a `person_id` header.
HttpOut PersonIdsCsv(const std::vector<int64_t>& people) {
  HttpOut out;
  out.body = "person_id\n";
  for (int64_t p : people) {
    out.body += std::to_string(p);
    out.body += '\n';
  }
  out.content_type = "text/csv; charset=utf-8";
  return out;
}

HttpOut SegmentMembersCsv(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "segment"));
  TRY_ASSIGN(std::vector<int64_t> people, c.engine.audience().AllSegmentMembers(c.tenant(), id));
  return PersonIdsCsv(people);
}

HttpOut CountAudience(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(auto in, api::ParseCountInput(c.in.body));
  TRY_ASSIGN(domain::CountAnswer a, c.engine.audience().Count(c.tenant(), in.first, in.second));
  json::object o;
  o["people"] = a.people;
  o["expression"] = a.expression;
  boost::system::error_code ec;
  o["json"] = boost::json::parse(a.json, ec);
  return Json(200, o);
}

HttpOut RfmMatrix(Ctx& c) {
  TRY(CheckQuery(c, {}));
  auto r = c.engine.audience().Rfm(c.tenant());
  json::object th;
  th["recency_days"] = r.thresholds.recency_days;
  th["frequency"] = r.thresholds.frequency;
  th["monetary_fen"] = r.thresholds.monetary_fen;
  json::array cells;
  for (const auto& cell : r.cells) {
    json::object o;
    o["class"] = audience::RfmClassKey(cell.cls);
    o["label"] = audience::RfmClassLabel(cell.cls);
    o["people"] = cell.people;
    o["gmv_fen"] = cell.gmv_fen;
    cells.emplace_back(std::move(o));
  }
  json::object o;
  o["thresholds"] = std::move(th);
  o["cells"] = std::move(cells);
  return Json(200, o);
}

HttpOut LifecycleStages(Ctx& c) {
  TRY(CheckQuery(c, {}));
  auto counts = c.engine.audience().Lifecycle(c.tenant());
  json::array stages;
  for (int i = 0; i < audience::kStageCount; ++i) {
    auto st = static_cast<audience::Stage>(i);
    json::object o;
    o["stage"] = audience::StageKey(st);
    o["label"] = audience::StageLabel(st);
    o["people"] = counts[static_cast<size_t>(i)];
    stages.emplace_back(std::move(o));
  }
  json::object o;
  o["stages"] = std::move(stages);
  return Json(200, o);
}

HttpOut KocList(Ctx& c) {
  TRY(CheckQuery(c, {"limit", "top_percent"}));
  TRY_ASSIGN(int64_t limit, QueryInt(c, "limit", 20, 1, 500));
  TRY_ASSIGN(int64_t top, QueryInt(c, "top_percent", 20, 1, 100));
  auto r = c.engine.audience().Koc(c.tenant(), static_cast<size_t>(limit),
                                   static_cast<double>(top) / 100.0);
  json::array items;
  for (const auto& k : r.items) {
    json::object o;
    o["person_id"] = k.person;
    o["own_gmv_fen"] = k.own_gmv_fen;
    o["invited_gmv_fen"] = k.invited_gmv_fen;
    o["score_fen"] = k.score_fen;
    o["invitees"] = k.invitees;
    items.emplace_back(std::move(o));
  }
  json::object share;
  share["top_percent"] = top;
  share["people"] = r.share.people;
  share["top_people"] = r.share.top_people;
  share["top_gmv_fen"] = r.share.top_gmv_fen;
  share["total_gmv_fen"] = r.share.total_gmv_fen;
  share["share"] = r.share.share;
  json::object o;
  o["items"] = std::move(items);
  o["share"] = std::move(share);
  return Json(200, o);
}

HttpOut PersonAudience(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "person"));
  TRY_ASSIGN(auto pv, c.engine.audience().PersonOf(c.tenant(), id));
  const audience::PersonView& v = pv.second;
  json::object o;
  o["person_id"] = pv.first;
  o["stage"] = audience::StageKey(v.stage);
  if (v.rfm.cls == audience::RfmClass::kNone) {
    o["rfm"] = nullptr;
  } else {
    json::object r;
    r["class"] = audience::RfmClassKey(v.rfm.cls);
    r["label"] = audience::RfmClassLabel(v.rfm.cls);
    r["recency_days"] = v.rfm.recency_days;
    r["frequency"] = v.rfm.frequency;
    r["monetary_fen"] = v.rfm.monetary_fen;
    o["rfm"] = std::move(r);
  }
  o["cycle_days"] = v.cycle_days;
  json::array tags, segs;
  for (int64_t t : v.tags) tags.emplace_back(t);
  for (int64_t s : v.segments) segs.emplace_back(s);
  o["tags"] = std::move(tags);
  o["segments"] = std::move(segs);
  return Json(200, o);
}

HttpOut GetAudienceSettings(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(domain::AudienceSettings st, c.engine.audience().Settings(c.tenant()));
  boost::system::error_code ec;
  return Json(200, boost::json::parse(domain::AudienceSettingsJson(st), ec));
}

HttpOut PutAudienceSettings(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(domain::AudienceSettings in, api::ParseAudienceSettings(c.in.body));
  TRY_ASSIGN(domain::AudienceSettings st, c.engine.audience().PutSettings(c.tenant(), in));
  boost::system::error_code ec;
  return Json(200, boost::json::parse(domain::AudienceSettingsJson(st), ec));
}

HttpOut VerifyAudience(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(domain::AudienceVerifyReport r, c.engine.audience().Verify(c.tenant()));
  json::object o;
  o["ok"] = r.ok;
  json::array diffs;
  for (const auto& d : r.differences) diffs.emplace_back(d);
  o["differences"] = std::move(diffs);
  o["people"] = r.people;
  o["seconds"] = r.seconds;
  return Json(200, o);
}

HttpOut MakeSegmentSnapshot(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "segment"));
  TRY_ASSIGN(json::object obj, ParseJsonObject(c.in.body));
  FieldReader r(obj);
  std::string name = r.String("name", 1, 32);
  TRY(r.Finish());
  TRY_ASSIGN(domain::SegmentSnapshotInfo s, c.engine.audience().Snapshot(c.tenant(), id, name));
  return Json(201, api::ToJson(s));
}

HttpOut ListSegmentSnapshots(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "segment"));
  TRY_ASSIGN(auto list, c.engine.audience().Snapshots(c.tenant(), id));
  json::array items;
  for (const auto& s : list) items.emplace_back(api::ToJson(s));
  return Items(items);
}

HttpOut SnapshotMembersCsv(Ctx& c) {
  TRY(CheckQuery(c, {}));
  TRY_ASSIGN(int64_t id, PathId(c, 0, "snapshot"));
  TRY_ASSIGN(std::vector<int64_t> people, c.engine.audience().SnapshotMembers(c.tenant(), id));
  return PersonIdsCsv(people);
}

// ---- the route table ---------------------------------------------------------------------------

const Route kRoutes[] = {
    {"GET", "/healthz", Access::kPublic, Healthz},
    {"GET", "/metrics", Access::kPublic, MetricsText},
    {"POST", "/v1/auth/login", Access::kPublic, Login},
    {"POST", "/v1/auth/logout", Access::kSession, Logout},
    {"GET", "/v1/auth/me", Access::kSession, Me},
    {"GET", "/v1/tenants", Access::kAuthenticated, ListTenants},
    {"POST", "/v1/tenants", Access::kSuperuser, CreateTenant},
    {"POST", "/v1/api-keys", Access::kAdmin, CreateKey},
    {"GET", "/v1/api-keys", Access::kAdmin, ListKeys},
    {"DELETE", "/v1/api-keys/{id}", Access::kAdmin, RevokeKey},
    {"POST", "/v1/channels", Access::kWrite, CreateChannel},
    {"GET", "/v1/channels", Access::kRead, ListChannels},
    {"GET", "/v1/channels/{id}", Access::kRead, GetChannel},
    {"POST", "/v1/channels/{id}/codes", Access::kWrite, MakeChannelCode},
    {"GET", "/v1/channels/{id}/codes", Access::kRead, ListChannelCodes},
    {"GET", "/v1/channels/{id}/codes/{kind}", Access::kRead, GetChannelCode},
    {"POST", "/v1/people", Access::kIngest, UpsertPerson},
    {"GET", "/v1/people", Access::kRead, ListPeople},
    {"GET", "/v1/people/{id}", Access::kRead, GetPerson},
    {"GET", "/v1/people/{id}/timeline", Access::kRead, PersonTimeline},
    {"GET", "/v1/people/{id}/identity", Access::kRead, PersonIdentity},
    {"GET", "/v1/identity/resolve", Access::kRead, ResolveId},
    {"POST", "/v1/identity/links", Access::kWrite, LinkIds},
    {"POST", "/v1/identity/merges/{id}/unmerge", Access::kWrite, UnmergePeople},
    {"GET", "/v1/identity/quarantine", Access::kRead, ListQuarantine},
    {"POST", "/v1/identity/quarantine/{id}/approve", Access::kWrite, ApproveQuarantine},
    {"POST", "/v1/identity/quarantine/{id}/reject", Access::kWrite, RejectQuarantine},
    {"POST", "/v1/identity/verify", Access::kAdmin, VerifyIdentity},
    {"GET", "/v1/people/{id}/audience", Access::kRead, PersonAudience},
    {"GET", "/v1/tags", Access::kRead, ListTags},
    {"POST", "/v1/tags", Access::kWrite, CreateTag},
    {"DELETE", "/v1/tags/{id}", Access::kWrite, DeleteTag},
    {"POST", "/v1/tags/{id}/people", Access::kWrite, ChangeTagPeople},
    {"GET", "/v1/segments", Access::kRead, ListSegments},
    {"POST", "/v1/segments", Access::kWrite, CreateSegment},
    {"GET", "/v1/segments/{id}", Access::kRead, GetSegment},
    {"DELETE", "/v1/segments/{id}", Access::kWrite, DeleteSegment},
    {"GET", "/v1/segments/{id}/members", Access::kRead, SegmentMembers},
    {"GET", "/v1/segments/{id}/members.csv", Access::kRead, SegmentMembersCsv},
    {"POST", "/v1/audience/count", Access::kRead, CountAudience},
    {"GET", "/v1/audience/rfm", Access::kRead, RfmMatrix},
    {"GET", "/v1/audience/lifecycle", Access::kRead, LifecycleStages},
    {"GET", "/v1/audience/koc", Access::kRead, KocList},
    {"GET", "/v1/audience/settings", Access::kRead, GetAudienceSettings},
    {"PUT", "/v1/audience/settings", Access::kAdmin, PutAudienceSettings},
    {"POST", "/v1/audience/verify", Access::kAdmin, VerifyAudience},
    {"POST", "/v1/segments/{id}/snapshots", Access::kWrite, MakeSegmentSnapshot},
    {"GET", "/v1/segments/{id}/snapshots", Access::kRead, ListSegmentSnapshots},
    {"GET", "/v1/segment-snapshots/{id}/members.csv", Access::kRead, SnapshotMembersCsv},
    {"POST", "/v1/orders", Access::kIngest, CreateOrder},
    {"GET", "/v1/orders", Access::kRead, ListOrders},
    {"GET", "/v1/orders/{order_no}", Access::kRead, GetOrder},
    {"POST", "/v1/orders/{order_no}/refund", Access::kIngest, RefundOrder},
    {"GET", "/v1/analytics/overview", Access::kRead, Overview},
    {"GET", "/v1/analytics/channels", Access::kRead, ChannelReport},
    {"POST", "/v1/events", Access::kIngest, IngestEvents},
    {"GET", "/v1/events/catalogue", Access::kAuthenticated, EventCatalogue},
    {"POST", "/v1/imports/{kind}", Access::kIngest, Import, Body::kCsv},
    {"GET", "/v1/wechat/apps", Access::kAdmin, ListWechatApps},
    {"PUT", "/v1/wechat/apps/{kind}", Access::kAdmin, PutWechatApp},
    // A brand's mini-program backend relays its users' wx.login codes and encrypted data.
    {"POST", "/v1/wechat/mini_program/login", Access::kIngest, MiniProgramLogin},
    {"POST", "/v1/wechat/mini_program/phone", Access::kIngest, MiniProgramPhone},
    // WeChat's servers call these; the signature over the body is the credential.
    {"GET", "/v1/wechat/{kind}/{tenant}/callback", Access::kPublic, WechatVerify},
    {"POST", "/v1/wechat/{kind}/{tenant}/callback", Access::kPublic, WechatCallback, Body::kXml},
};

bool RoleAllows(Access a, Role r) {
  switch (a) {
    case Access::kRead:
      return r == Role::kAdmin || r == Role::kOperator || r == Role::kAnalyst;
    case Access::kWrite:
      return r == Role::kAdmin || r == Role::kOperator;
    case Access::kIngest:
      return r == Role::kAdmin || r == Role::kOperator || r == Role::kIngest;
    case Access::kAdmin:
      return r == Role::kAdmin;
    default:
      return true;
  }
}

// HTTP tokens (media types, auth schemes) are case-insensitive.
bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int h = HexVal(s[i + 1]), l = HexVal(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

std::string RawQuery(const Ctx& c, std::string_view name) {
  std::string_view target = c.in.target;
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view qs = target.substr(q + 1);
  while (!qs.empty()) {
    size_t amp = qs.find('&');
    std::string_view kv = qs.substr(0, amp);
    size_t eq = kv.find('=');
    if (PercentDecode(kv.substr(0, eq), false) == name) {
      return eq == std::string_view::npos ? "" : PercentDecode(kv.substr(eq + 1), false);
    }
    if (amp == std::string_view::npos) break;
    qs.remove_prefix(amp + 1);
  }
  return {};
}

// The next non-empty '/'-separated segment of `path` at or after `*pos` (empty at the end).
std::string_view NextSegment(std::string_view path, size_t* pos) {
  while (*pos < path.size() && path[*pos] == '/') ++*pos;
  size_t end = path.find('/', *pos);
  if (end == std::string_view::npos) end = path.size();
  std::string_view seg = path.substr(*pos, end - *pos);
  *pos = end;
  return seg;
}

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  for (std::string_view seg; !(seg = NextSegment(path, &pos)).empty();) parts.push_back(seg);
  return parts;
}

// Walks the pattern's segments in place: every request tries the routes in turn, and splitting
// each pattern into a new vector cost an allocation per route tried.
bool Match(std::string_view pattern, const std::vector<std::string_view>& parts,
           std::vector<std::string>* params) {
  params->clear();
  size_t pos = 0, n = 0;
  for (std::string_view seg; !(seg = NextSegment(pattern, &pos)).empty(); ++n) {
    if (n == parts.size()) return false;
    if (seg.starts_with('{')) {
      params->push_back(PercentDecode(parts[n], false));
    } else if (seg != parts[n]) {
      return false;
    }
  }
  return n == parts.size();
}

}  // namespace

Api::Api(engine::Engine& engine, const StaticFiles* console, std::string wechat_api_base)
    : engine_(engine),
      console_(console),
      wechat_api_(std::make_unique<domain::WechatApi>(std::move(wechat_api_base))),
      codes_(std::make_unique<domain::ChannelCodes>(engine.store(), engine.channels(),
                                                    engine.wechat(), *wechat_api_)) {}

HttpOut Api::Error(const Status& s) {
  HttpOut out;
  out.status = ErrorCodeHttpStatus(s.code());
  out.body = api::ErrorBody(s);
  return out;
}

HttpOut Api::Dispatch(const HttpIn& in) {
  std::string_view target = in.target;
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  auto parts = Split(path);

  const Route* route = nullptr;
  bool path_matched = false;
  std::vector<std::string> params;
  for (const Route& r : kRoutes) {
    if (!Match(r.pattern, parts, &params)) continue;
    path_matched = true;
    if (r.method == in.method) {
      route = &r;
      break;
    }
  }
  if (!route) {
    bool api_path =
        path.starts_with("/v1/") || path == "/v1" || path == "/healthz" || path == "/metrics";
    if (!api_path && console_ && (in.method == "GET" || in.method == "HEAD")) {
      const auto& f = console_->Find(path);
      HttpOut out;
      out.body = f.body;
      out.content_type = f.content_type;
      out.route = "(console)";
      if (path.starts_with("/assets/")) {
        out.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
      }
      return out;
    }
    HttpOut out =
        path_matched
            ? Error(Status(ErrorCode::kMethodNotAllowed,
                           "method " + in.method.substr(0, 16) + " is not allowed on this route"))
            : Error(Status(ErrorCode::kRouteNotFound,
                           "no route " + std::string(path.substr(0, 128)) + "; see docs/api.md"));
    out.route = "(unmatched)";
    return out;
  }

  Ctx c{engine_, in, {}, {}, std::move(params), {}, NowMs(), codes_.get()};
  auto finish = [&](HttpOut out) {
    out.route = std::string(route->pattern);
    return out;
  };
  if (q != std::string_view::npos) {
    std::string_view qs = target.substr(q + 1);
    while (!qs.empty()) {
      size_t amp = qs.find('&');
      std::string_view kv = qs.substr(0, amp);
      size_t eq = kv.find('=');
      if (!kv.empty()) {
        c.query.emplace_back(
            PercentDecode(kv.substr(0, eq), true),
            eq == std::string_view::npos ? "" : PercentDecode(kv.substr(eq + 1), true));
      }
      if (amp == std::string_view::npos) break;
      qs.remove_prefix(amp + 1);
    }
  }
  if (!in.body.empty() && in.method != "GET" && route->body == Body::kCsv &&
      !StartsWithNoCase(in.content_type, "text/csv")) {
    return finish(Error(Status(ErrorCode::kUnsupportedMediaType,
                               "send the file as CSV with Content-Type: text/csv")));
  }
  if (!in.body.empty() && in.method != "GET" && route->body == Body::kJson) {
    std::string_view ct = in.content_type;
    if (!StartsWithNoCase(ct, "application/json")) {
      return finish(Error(Status(ErrorCode::kUnsupportedMediaType,
                                 "send the body as JSON with Content-Type: application/json")));
    }
  }
  if (route->access != Access::kPublic) {
    std::string_view auth = in.authorization;
    if (!StartsWithNoCase(auth, "bearer ") || auth.size() == 7) {
      return finish(Error(Status(ErrorCode::kUnauthenticated,
                                 "send Authorization: Bearer <API key or session token>")));
    }
    c.token = std::string(auth.substr(7));
    auto p = engine_.tenancy().Authenticate(c.token, in.tenant);
    if (!p.ok()) return finish(Error(p.status()));
    c.principal = *p;
    bool session = c.principal.operator_id != 0;
    switch (route->access) {
      case Access::kSession:
        if (!session) {
          return finish(Error(Status(ErrorCode::kForbidden, "this route needs a console session")));
        }
        break;
      case Access::kSuperuser:
        if (!session || !c.principal.superuser) {
          return finish(Error(Status(ErrorCode::kForbidden, "only a superuser may do this")));
        }
        break;
      case Access::kAuthenticated:
        break;
      default:
        if (c.principal.tenant_id == 0) {
          return finish(Error(
              Status(ErrorCode::kForbidden, "you belong to no tenant yet; create one first")));
        }
        if (!RoleAllows(route->access, c.principal.role)) {
          return finish(Error(Status(ErrorCode::kForbidden,
                                     "role '" + std::string(domain::RoleName(c.principal.role)) +
                                         "' may not use " + std::string(route->method) + " " +
                                         std::string(route->pattern))));
        }
    }
  }
  return finish(route->fn(c));
}

}  // namespace siyu::server
