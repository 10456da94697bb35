#include "api/codec.h"

#include <algorithm>
#include <boost/json/parse.hpp>

namespace siyu::api {

namespace {

// Timestamps from clients: not before 2000-01-01 and at most 5 minutes ahead of the server clock.
constexpr int64_t kMinTimestamp = 946'684'800'000;
constexpr int64_t kMaxClockSkewMs = 5 * 60 * 1000;

json::value OptInt(const std::optional<int64_t>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

bool IsOrderNo(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

std::optional<int64_t> Timestamp(FieldReader& r, std::string_view key, int64_t now_ms) {
  return r.OptInt(key, kMinTimestamp, now_ms + kMaxClockSkewMs);
}

// Ratio for display; 0 when the denominator is 0.
double Ratio(int64_t num, int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

json::object FiguresJson(const domain::Figures& f) {
  json::object o;
  o["people"] = f.people;
  o["buyers"] = f.buyers;
  o["orders"] = f.orders;
  o["paid_fen"] = f.paid_fen;
  o["refunded_fen"] = f.refunded_fen;
  o["gmv_fen"] = f.gmv_fen();
  o["conversion"] = Ratio(f.buyers, f.people);
  o["aov_fen"] = Ratio(f.gmv_fen(), f.orders);
  o["frequency"] = Ratio(f.orders, f.buyers);
  return o;
}

json::object Fraction(int64_t num, int64_t den) {
  json::object o;
  o["num"] = num;
  o["den"] = den;
  return o;
}

}  // namespace

std::string ErrorBody(const Status& s) {
  json::object e;
  e["code"] = ErrorCodeName(s.code());
  e["message"] = s.message();
  if (!s.field().empty()) e["field"] = s.field();
  json::object root;
  root["error"] = std::move(e);
  return siyu::ToJson(root);
}

StatusOr<LoginInput> ParseLogin(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  LoginInput in;
  in.username = r.String("username", 1, 64);
  in.password = r.String("password", 1, 256);
  RETURN_IF_ERROR(r.Finish());
  return in;
}

StatusOr<std::string> ParseTenantName(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  std::string name = r.String("name", 1, 64);
  RETURN_IF_ERROR(r.Finish());
  return name;
}

StatusOr<KeyInput> ParseKeyInput(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  KeyInput in;
  in.name = r.String("name", 1, 64);
  std::string role = r.String("role", 1, 16);
  RETURN_IF_ERROR(r.Finish());
  auto parsed = domain::ParseRole(role);
  if (!parsed) {
    return InvalidField("role", "role must be one of admin, operator, analyst, ingest");
  }
  in.role = *parsed;
  return in;
}

StatusOr<domain::NewChannel> ParseNewChannel(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  domain::NewChannel in;
  in.name = r.String("name", 1, 64);
  in.source_pool = r.String("source_pool", 1, 32);
  in.touchpoint = r.String("touchpoint", 1, 32);
  in.cost_fen =
      r.OptInt("cost_fen", 0, int64_t{1'000'000'000'000}, ErrorCode::kAmountOutOfRange).value_or(0);
  RETURN_IF_ERROR(r.Finish());
  if (!domain::IsSourcePool(in.source_pool)) {
    return InvalidField(
        "source_pool", "source_pool must be wechat_public, ecommerce_platform, offline or partner");
  }
  if (!domain::IsTouchpoint(in.touchpoint)) {
    return InvalidField("touchpoint",
                        "touchpoint must be official_account, mini_program, wecom or group");
  }
  return in;
}

StatusOr<domain::CodeRequest> ParseCodeRequest(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  domain::CodeRequest req;
  std::string kind = r.String("kind", 1, 32);
  if (const json::array* users = r.OptArray("users", 1, domain::kMaxCodeUsers)) {
    req.options.users.emplace();
    for (size_t i = 0; i < users->size(); ++i) {
      const std::string field = "users[" + std::to_string(i) + "]";
      if (!(*users)[i].is_string()) {
        r.Fail(InvalidField(field, field + " must be a string (a WeCom member user id)"));
        break;
      }
      req.options.users->emplace_back((*users)[i].as_string());
    }
  }
  req.options.skip_verify = r.OptBool("skip_verify");
  req.options.page = r.OptString("page", 1, 128);
  req.options.url = r.OptString("url", 1, domain::kMaxLinkUrl);
  req.refresh = r.OptBool("refresh").value_or(false);
  RETURN_IF_ERROR(r.Finish());
  auto parsed = domain::ParseCodeKind(kind);
  if (!parsed) {
    return InvalidField("kind", "kind must be wecom_contact_way, oa_qrcode, mp_code or link");
  }
  req.kind = *parsed;
  return req;
}

StatusOr<domain::PersonUpsert> ParsePersonUpsert(std::string_view body, int64_t now_ms) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  std::string ext = r.String("external_id", 1, 256);
  domain::PersonUpsert in;
  in.channel_state = r.OptString("channel_state", 1, domain::kMaxStateLength);
  in.acquired_at = Timestamp(r, "acquired_at", now_ms);
  in.name = r.OptString("name", 1, 64);
  RETURN_IF_ERROR(r.Finish());
  ASSIGN_OR_RETURN(in.external_id, domain::ParseExternalId(ext));
  return in;
}

StatusOr<domain::NewOrder> ParseNewOrder(std::string_view body, int64_t now_ms) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  domain::NewOrder in;
  in.order_no = r.String("order_no", 1, 64);
  in.person_id = r.OptInt("person_id", 1, INT64_MAX);
  std::optional<std::string> ext = r.OptString("external_id", 1, 256);
  in.total_fen =
      r.Int("total_fen", 0, int64_t{200'000'000'000'000'000}, ErrorCode::kAmountOutOfRange);
  in.paid_at = Timestamp(r, "paid_at", now_ms);
  const json::array* lines = r.Array("lines", 1, domain::kMaxLines);
  if (lines) {
    for (size_t i = 0; i < lines->size() && r.ok(); ++i) {
      const json::object* lo = r.ObjectAt(*lines, "lines", i);
      if (!lo) break;
      FieldReader lr(*lo, "lines[" + std::to_string(i) + "]");
      domain::OrderLine line;
      line.sku = lr.String("sku", 1, 64);
      line.category = lr.OptString("category", 1, 64);
      line.quantity = lr.Int("quantity", 1, domain::kMaxQuantity, ErrorCode::kAmountOutOfRange);
      line.unit_price_fen =
          lr.Int("unit_price_fen", 0, domain::kMaxUnitPriceFen, ErrorCode::kAmountOutOfRange);
      Status ls = lr.Finish();
      if (!ls.ok()) r.Fail(ls);
      in.lines.push_back(std::move(line));
    }
  }
  RETURN_IF_ERROR(r.Finish());
  if (!IsOrderNo(in.order_no)) {
    return InvalidField("order_no", "order_no may contain only letters, digits, '_' and '-'");
  }
  if (in.person_id.has_value() == ext.has_value()) {
    return Status(ErrorCode::kMissingField, "give exactly one of person_id and external_id",
                  "person_id");
  }
  if (ext) {
    ASSIGN_OR_RETURN(domain::ExternalId id, domain::ParseExternalId(*ext));
    in.external_id = id.canonical;
  }
  return in;
}

StatusOr<RefundInput> ParseRefund(std::string_view body, int64_t now_ms) {
  if (body.empty()) return RefundInput{};
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  RefundInput in;
  in.reason = r.OptString("reason", 1, 256);
  in.refunded_at = Timestamp(r, "refunded_at", now_ms);
  RETURN_IF_ERROR(r.Finish());
  return in;
}

StatusOr<std::vector<domain::EventItem>> ParseEventBatch(std::string_view body, int64_t now_ms) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  r.Array("events", 1, domain::kMaxEventsPerBatch);
  RETURN_IF_ERROR(r.Finish());
  // ReadEventItem takes each element's properties out rather than copying them.
  json::array& events = obj.at("events").as_array();
  std::vector<domain::EventItem> items;
  items.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    items.push_back(domain::ReadEventItem(events[i], i, now_ms));
  }
  return items;
}

json::object ToJson(const domain::Tenant& t) {
  json::object o;
  o["id"] = t.id;
  o["name"] = t.name;
  o["timezone"] = t.timezone;
  o["created_at"] = t.created_at;
  if (!t.role.empty()) o["role"] = t.role;
  return o;
}

json::object ToJson(const domain::Operator& op) {
  json::object o;
  o["id"] = op.id;
  o["username"] = op.username;
  o["display_name"] = op.display_name;
  o["superuser"] = op.superuser;
  return o;
}

json::object ToJson(const domain::ApiKey& k) {
  json::object o;
  o["id"] = k.id;
  o["name"] = k.name;
  o["role"] = domain::RoleName(k.role);
  o["created_at"] = k.created_at;
  o["revoked_at"] = OptInt(k.revoked_at);
  if (!k.plaintext.empty()) o["key"] = k.plaintext;
  return o;
}

json::object ToJson(const domain::Channel& c) {
  json::object o;
  o["id"] = c.id;
  o["name"] = c.name;
  o["source_pool"] = c.source_pool;
  o["touchpoint"] = c.touchpoint;
  o["cost_fen"] = c.cost_fen;
  o["state"] = c.state;
  o["created_at"] = c.created_at;
  return o;
}

json::object ToJson(const domain::ChannelCode& c) {
  auto opt = [](const std::string& s) { return s.empty() ? json::value(nullptr) : json::value(s); };
  json::object o;
  o["channel_id"] = c.channel_id;
  o["kind"] = domain::CodeKindName(c.kind);
  o["made"] = c.made;
  json::object payload;
  for (const auto& [name, value] : c.payload) payload[name] = value;
  o["payload"] = std::move(payload);
  if (!c.made) return o;
  json::object options;
  if (c.options.users) {
    json::array users;
    for (const auto& u : *c.options.users) users.emplace_back(u);
    options["users"] = std::move(users);
  }
  if (c.options.skip_verify) options["skip_verify"] = *c.options.skip_verify;
  if (c.options.page) options["page"] = *c.options.page;
  if (c.options.url) options["url"] = *c.options.url;
  o["options"] = std::move(options);
  o["content"] = opt(c.content);
  o["app_id"] = opt(c.app_id);
  if (c.kind == domain::CodeKind::kWecomContactWay) {
    o["config_id"] = c.config_id;
    o["contact_type"] = c.contact_type;
    o["qr_code"] = opt(c.image_url);
  }
  if (c.kind == domain::CodeKind::kOaQrcode) {
    o["ticket"] = c.ticket;
    o["image_url"] = opt(c.image_url);
  }
  const std::string base = "/v1/channels/" + std::to_string(c.channel_id) + "/codes/" +
                           std::string(domain::CodeKindName(c.kind));
  o["svg"] = base + ".svg";
  o["png"] = base + ".png";
  o["created_at"] = c.created_at;
  o["updated_at"] = c.updated_at;
  return o;
}

json::object CodesJson(const domain::Channel& ch, const std::vector<domain::ChannelCode>& codes) {
  json::object o;
  o["channel_id"] = ch.id;
  o["state"] = ch.state;
  o["touchpoint"] = ch.touchpoint;
  json::array items;
  for (const auto& c : codes) items.emplace_back(ToJson(c));
  o["items"] = std::move(items);
  return o;
}

json::object ToJson(const domain::Person& p) {
  json::object o;
  o["id"] = p.id;
  o["name"] = p.name ? json::value(*p.name) : json::value(nullptr);
  json::array ids;
  for (const auto& e : p.external_ids) ids.emplace_back(e);
  o["external_ids"] = std::move(ids);
  o["first_channel_id"] = OptInt(p.first_channel_id);
  o["last_channel_id"] = OptInt(p.last_channel_id);
  o["acquired_at"] = p.acquired_at;
  o["created_at"] = p.created_at;
  json::array merged;
  for (int64_t m : p.merged_from) merged.emplace_back(m);
  o["merged_from"] = std::move(merged);
  return o;
}

json::object ToJson(const domain::Order& ord) {
  json::object o;
  o["order_no"] = ord.order_no;
  o["person_id"] = ord.person_id;
  o["status"] = ord.status;
  json::array lines;
  for (const auto& l : ord.lines) {
    json::object lo;
    lo["sku"] = l.sku;
    if (l.category) lo["category"] = *l.category;
    lo["quantity"] = l.quantity;
    lo["unit_price_fen"] = l.unit_price_fen;
    lo["amount_fen"] = l.amount_fen;
    lines.emplace_back(std::move(lo));
  }
  o["lines"] = std::move(lines);
  o["total_fen"] = ord.total_fen;
  o["refunded_fen"] = ord.refunded_fen;
  o["paid_at"] = ord.paid_at;
  o["refunded_at"] = OptInt(ord.refunded_at);
  o["created_at"] = ord.created_at;
  return o;
}

json::object ToJson(const domain::Overview& ov) {
  json::object o = FiguresJson(ov.total);
  o["from"] = ov.query.from;
  o["to"] = ov.query.to;
  o["channel_id"] = OptInt(ov.query.channel_id);
  const auto& f = ov.total;
  json::object d;
  d["formula"] = "gmv_fen = people × conversion × aov_fen × frequency";
  d["people"] = f.people;
  d["conversion"] = Fraction(f.buyers, f.people);
  d["aov_fen"] = Fraction(f.gmv_fen(), f.orders);
  d["frequency"] = Fraction(f.orders, f.buyers);
  d["gmv_fen"] = f.gmv_fen();
  o["decomposition"] = std::move(d);
  json::array rows;
  for (const auto& cf : ov.by_channel) {
    json::object row = FiguresJson(cf.figures);
    row["channel_id"] = OptInt(cf.channel_id);
    row["channel_name"] = cf.channel_id ? json::value(cf.name) : json::value(nullptr);
    row["source_pool"] = cf.channel_id ? json::value(cf.source_pool) : json::value(nullptr);
    row["touchpoint"] = cf.channel_id ? json::value(cf.touchpoint) : json::value(nullptr);
    rows.emplace_back(std::move(row));
  }
  o["by_channel"] = std::move(rows);
  return o;
}

namespace {
json::object FunnelJson(const domain::ChannelFunnel& f) {
  json::object o;
  o["channel_id"] = OptInt(f.channel_id);
  o["channel_name"] = f.channel_id ? json::value(f.name) : json::value(nullptr);
  o["source_pool"] = f.channel_id ? json::value(f.source_pool) : json::value(nullptr);
  o["touchpoint"] = f.channel_id ? json::value(f.touchpoint) : json::value(nullptr);
  o["cost_fen"] = f.cost_fen;
  o["scans"] = f.scans;
  o["adds"] = f.adds;
  o["new_people"] = f.new_people;
  o["first_buyers"] = f.first_buyers;
  o["repeat_buyers"] = f.repeat_buyers;
  o["orders"] = f.orders;
  o["paid_fen"] = f.paid_fen;
  o["refunded_fen"] = f.refunded_fen;
  o["gmv_fen"] = f.gmv_fen();
  // Exact fractions; the console divides for display (den 0: not defined).
  o["cac_fen"] = Fraction(f.cost_fen, f.new_people);
  o["roi"] = Fraction(f.gmv_fen(), f.cost_fen);
  return o;
}
}  // namespace

json::object ToJson(const domain::ChannelReport& r) {
  json::object o;
  o["from"] = r.from;
  o["to"] = r.to;
  o["model"] = r.model == domain::Attribution::kFirstTouch ? "first" : "last";
  json::array rows;
  for (const auto& f : r.rows) rows.emplace_back(FunnelJson(f));
  o["rows"] = std::move(rows);
  o["total"] = FunnelJson(r.total);
  return o;
}

StatusOr<domain::WechatApp> ParseWechatApp(std::string_view body, const std::string& kind) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  domain::WechatApp app;
  app.kind = kind;
  app.app_id = r.String("app_id", 1, 64);
  if (kind == domain::kMiniProgram) {
    app.secret = r.String("secret", 1, 128);
  } else {
    app.token = r.String("token", 3, 32);
    app.encoding_aes_key = r.String("encoding_aes_key", 43, 43);
    app.secret = r.OptString("secret", 1, 128);
  }
  RETURN_IF_ERROR(r.Finish());
  return app;
}

StatusOr<std::string> ParseMiniProgramLogin(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  std::string code = r.String("code", 1, 128);
  RETURN_IF_ERROR(r.Finish());
  return code;
}

StatusOr<domain::MiniProgramPhoneInput> ParseMiniProgramPhone(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  domain::MiniProgramPhoneInput in;
  in.session = r.String("session", 1, 128);
  in.encrypted_data = r.String("encrypted_data", 1, 16384);
  in.iv = r.String("iv", 1, 64);
  RETURN_IF_ERROR(r.Finish());
  return in;
}

json::object ToJson(const domain::MiniProgramLoginResult& res) {
  json::object o;
  o["person_id"] = res.person_id;
  o["openid"] = res.openid;
  o["unionid"] = res.unionid ? json::value(*res.unionid) : json::value(nullptr);
  o["session"] = res.session;
  o["link"] = domain::LinkStateName(res.link);
  return o;
}

json::object ToJson(const domain::MiniProgramPhoneResult& res) {
  json::object o;
  o["person_id"] = res.person_id;
  o["phone"] = res.phone;
  o["link"] = domain::LinkStateName(res.link);
  return o;
}

json::object ToJson(const domain::WechatApp& app, int64_t tenant_id) {
  auto hint = [](const std::string& secret) { return secret.substr(0, 3) + "…"; };
  json::object o;
  o["kind"] = app.kind;
  o["app_id"] = app.app_id;
  if (app.kind == domain::kMiniProgram) {
    o["secret_hint"] = hint(app.secret.value_or(""));
  } else {
    o["token_hint"] = hint(app.token);
    o["encoding_aes_key_hint"] = hint(app.encoding_aes_key);
    o["secret_hint"] = app.secret ? json::value(hint(*app.secret)) : json::value(nullptr);
    o["callback_path"] = "/v1/wechat/" + app.kind + "/" + std::to_string(tenant_id) + "/callback";
  }
  o["created_at"] = app.created_at;
  o["updated_at"] = app.updated_at;
  return o;
}

json::object ToJson(const ImportSummary& s) {
  json::object o;
  o["rows"] = s.rows;
  o["created"] = s.created;
  o["updated"] = s.updated;
  o["unchanged"] = s.unchanged;
  o["failed"] = s.failed;
  json::array errors;
  for (const auto& e : s.errors) {
    json::object eo;
    eo["line"] = e.line;
    eo["code"] = e.code;
    eo["field"] = e.field;
    eo["message"] = e.message;
    errors.emplace_back(std::move(eo));
  }
  o["errors"] = std::move(errors);
  return o;
}

json::object SessionJson(const domain::Session& s, bool with_token) {
  json::object o;
  if (with_token) o["token"] = s.token;
  o["operator"] = ToJson(s.op);
  json::array ts;
  for (const auto& t : s.tenants) ts.emplace_back(ToJson(t));
  o["tenants"] = std::move(ts);
  return o;
}

json::object ToJson(const domain::IngestResult& r) {
  json::array results;
  results.reserve(r.results.size());
  for (const domain::EventResult& e : r.results) {
    json::object o;
    o["event_id"] = e.event_id.empty() ? json::value(nullptr) : json::value(e.event_id);
    o["status"] = domain::EventOutcomeName(e.outcome);
    if (e.outcome == domain::EventOutcome::kAccepted) {
      o["person_id"] = e.person_id;
      if (e.link != domain::LinkState::kLinked) o["link"] = domain::LinkStateName(e.link);
    } else if (e.outcome == domain::EventOutcome::kRejected) {
      o["code"] = ErrorCodeName(e.error.code());
      o["message"] = e.error.message();
      if (!e.error.field().empty()) o["field"] = e.error.field();
    }
    results.emplace_back(std::move(o));
  }
  json::object o;
  o["results"] = std::move(results);
  o["accepted"] = r.accepted;
  o["duplicates"] = r.duplicates;
  o["rejected"] = r.rejected;
  return o;
}

json::object ToJson(const domain::StoredEvent& e) {
  // Stored as JSON text by the events service; a row that does not parse is a defect, shown as
  // null rather than failing the whole timeline.
  auto parsed = [](const std::string& text) {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    return ec ? json::value(nullptr) : v;
  };
  json::object o;
  o["event_id"] = e.event_id;
  o["type"] = e.type;
  o["ts"] = e.ts;
  o["person_id"] = e.person_id;
  o["touchpoint"] = e.touchpoint;
  o["channel_id"] = OptInt(e.channel_id);
  o["ids"] = parsed(e.ids_json);
  o["properties"] = parsed(e.properties);
  o["received_at"] = e.received_at;
  return o;
}

json::object EventCatalogueJson() {
  json::array types;
  for (const domain::EventTypeSpec& t : domain::EventCatalogue()) {
    json::array props;
    for (const domain::PropertySpec& p : t.properties) {
      json::object po;
      po["name"] = p.name;
      po["type"] = domain::PropertyTypeName(p.type);
      po["required"] = p.required;
      if (p.type == domain::PropertyType::kString) {
        po["min_length"] = p.min;
        po["max_length"] = p.max;
      } else if (p.type == domain::PropertyType::kInteger) {
        po["minimum"] = p.min;
        po["maximum"] = p.max;
      }
      po["description"] = p.description;
      props.emplace_back(std::move(po));
    }
    json::object to;
    to["name"] = t.name;
    to["description"] = t.description;
    to["moves_last_channel"] = t.moves_last_channel;
    to["properties"] = std::move(props);
    types.emplace_back(std::move(to));
  }
  json::object custom;
  custom["prefix"] = domain::kCustomEventPrefix;
  custom["name_pattern"] = "[A-Za-z0-9_.-]{1,64}";
  custom["properties"] = "any JSON object";
  json::array touchpoints;
  for (std::string_view tp : domain::kEventTouchpoints) touchpoints.emplace_back(tp);
  json::object limits;
  limits["events_per_batch"] = domain::kMaxEventsPerBatch;
  limits["ids_per_event"] = domain::kMaxIdsPerEvent;
  limits["event_id_max_length"] = domain::kMaxEventIdLength;
  limits["properties_max_bytes"] = domain::kMaxPropertiesBytes;
  limits["min_ts"] = domain::kMinEventTs;
  limits["max_clock_skew_ms"] = domain::kMaxEventClockSkewMs;
  json::object o;
  o["types"] = std::move(types);
  o["custom"] = std::move(custom);
  o["touchpoints"] = std::move(touchpoints);
  o["limits"] = std::move(limits);
  return o;
}

// ---- identity ----------------------------------------------------------------------------------

namespace {

// 1-200 characters of reason, no control characters (they go to the audit log as written).
std::string ReadReason(FieldReader& r, bool required) {
  std::optional<std::string> reason;
  if (required) {
    reason = r.String("reason", 1, 200);
  } else {
    reason = r.OptString("reason", 1, 200);
  }
  if (r.ok() && reason && std::any_of(reason->begin(), reason->end(), [](char ch) {
        return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f;
      })) {
    r.Fail(InvalidField("reason", "reason must not contain control characters"));
  }
  return reason.value_or("");
}

}  // namespace

StatusOr<LinkInput> ParseLinkInput(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  std::string a = r.String("id_a", 1, 300);
  std::string b = r.String("id_b", 1, 300);
  std::string reason = ReadReason(r, false);
  RETURN_IF_ERROR(r.Finish());
  LinkInput in;
  ASSIGN_OR_RETURN(domain::ExternalId ea, domain::ParseExternalId(a, "id_a"));
  ASSIGN_OR_RETURN(domain::ExternalId eb, domain::ParseExternalId(b, "id_b"));
  if (ea.canonical == eb.canonical) {
    return InvalidField("id_b", "id_a and id_b are the same id (" + ea.canonical + ")");
  }
  in.id_a = std::move(ea.canonical);
  in.id_b = std::move(eb.canonical);
  in.reason = reason.empty() ? "manual link" : std::move(reason);
  return in;
}

StatusOr<std::string> ParseReason(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  std::string reason = ReadReason(r, true);
  RETURN_IF_ERROR(r.Finish());
  return reason;
}

json::object ToJson(const domain::LinkAnswer& a) {
  json::object o;
  // "linked": two people were merged; "already_same": the ids were one person already;
  // "attached": new ids joined a person; "quarantined": held back for review.
  std::string_view result = identity::LinkResultName(a.result);
  if (a.result == identity::LinkResult::kAlreadySame && !a.created_ids.empty()) {
    result = "attached";
  }
  o["result"] = result;
  o["person_id"] = a.person_id ? json::value(a.person_id) : json::value(nullptr);
  if (a.merge_id) o["merge_id"] = a.merge_id;
  if (a.quarantine_id) {
    o["quarantine_id"] = a.quarantine_id;
    o["quarantine_reason"] = a.quarantine_reason;
  }
  if (!a.created_ids.empty()) {
    json::array ids;
    for (const auto& id : a.created_ids) ids.emplace_back(id);
    o["attached_ids"] = std::move(ids);
  }
  return o;
}

json::object ToJson(const identity::LogEntry& e) {
  json::object o;
  o["seq"] = e.seq;
  o["kind"] = identity::LogKindName(e.kind);
  o["ts"] = e.ts;
  o["reason"] = e.reason;
  o["id_a"] = e.id_a;
  o["id_b"] = e.id_b;
  if (e.kind == identity::LogKind::kMerge || e.kind == identity::LogKind::kUnmerge) {
    o["person_a"] = e.person_a;
    o["person_b"] = e.person_b;
  }
  if (e.target) o["target"] = e.target;
  if (e.kind == identity::LogKind::kQuarantine) {
    o["hub_id"] = e.hub_id;
    json::array people;
    for (int64_t p : e.people) people.emplace_back(p);
    o["people"] = std::move(people);
    o["guard_reason"] = e.guard_reason;
  }
  return o;
}

json::object ToJson(const identity::Quarantine& q) {
  json::object o;
  o["quarantine_id"] = q.quarantine_id;
  o["ts"] = q.ts;
  o["reason"] = q.reason;
  o["id_a"] = q.id_a;
  o["id_b"] = q.id_b;
  o["hub_id"] = q.hub_id;
  json::array people;
  for (int64_t p : q.people) people.emplace_back(p);
  o["people"] = std::move(people);
  o["guard_reason"] = q.guard_reason;
  return o;
}

json::object ToJson(const domain::PersonIdentity& p) {
  json::object o;
  o["person_id"] = p.person_id;
  json::array origin;
  for (int64_t id : p.origin_people) origin.emplace_back(id);
  o["person_rows"] = std::move(origin);
  json::array ids;
  for (const auto& id : p.ids) {
    json::object io;
    io["id"] = id.id;
    io["kind"] = id.kind;
    io["person_row"] = id.origin_person_id;
    ids.emplace_back(std::move(io));
  }
  o["ids"] = std::move(ids);
  json::array history;
  for (const auto& e : p.history) history.emplace_back(ToJson(e));
  o["history"] = std::move(history);
  return o;
}

// ---- audience ----------------------------------------------------------------------------------

namespace {

// An expression's JSON form, taken out of `obj` as text (the audience engine parses it).
std::optional<std::string> TakeJsonForm(json::object& obj) {
  auto it = obj.find("json");
  if (it == obj.end() || it->value().is_null()) {
    if (it != obj.end()) obj.erase(it);
    return std::nullopt;
  }
  std::string text = siyu::ToJson(it->value());
  obj.erase(it);
  return text;
}

}  // namespace

StatusOr<domain::NewTag> ParseNewTag(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  domain::NewTag in;
  in.group = r.OptString("group", 0, 32).value_or("");
  in.name = r.String("name", 1, 32);
  in.rule = r.OptString("rule", 1, 4000);
  RETURN_IF_ERROR(r.Finish());
  return in;
}

StatusOr<domain::TagMembersChange> ParseTagMembersChange(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  FieldReader r(obj);
  domain::TagMembersChange in;
  auto ids = [&](const char* key, std::vector<int64_t>& out) {
    const json::array* a = r.OptArray(key, 1, 10'000);
    if (!a) return;
    for (size_t i = 0; i < a->size(); ++i) {
      const json::value& v = (*a)[i];
      if (!v.is_int64() || v.as_int64() <= 0) {
        r.Fail(InvalidField(std::string(key) + "[" + std::to_string(i) + "]",
                            "person ids are positive integers"));
        return;
      }
      out.push_back(v.as_int64());
    }
  };
  ids("add", in.add);
  ids("remove", in.remove);
  in.segment_id = r.OptInt("segment_id", 1, INT64_MAX);
  RETURN_IF_ERROR(r.Finish());
  if (in.add.empty() && in.remove.empty() && !in.segment_id) {
    return Status(ErrorCode::kMissingField, "give 'add', 'remove' or 'segment_id'", "add");
  }
  return in;
}

StatusOr<domain::NewSegment> ParseNewSegment(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  domain::NewSegment in;
  in.json = TakeJsonForm(obj);
  FieldReader r(obj);
  in.name = r.String("name", 1, 32);
  in.expression = r.OptString("expression", 1, 4000);
  RETURN_IF_ERROR(r.Finish());
  return in;
}

StatusOr<std::pair<std::optional<std::string>, std::optional<std::string>>> ParseCountInput(
    std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  std::optional<std::string> json_form = TakeJsonForm(obj);
  FieldReader r(obj);
  std::optional<std::string> text = r.OptString("expression", 1, 4000);
  RETURN_IF_ERROR(r.Finish());
  return std::make_pair(std::move(text), std::move(json_form));
}

namespace {

// A nested object `key` of `r`'s object, or nullptr (absent); a non-object is an error in `r`.
const json::object* OptObject(FieldReader& r, std::string_view key) {
  const json::value* v = r.OptValue(key);
  if (!v) return nullptr;
  if (!v->is_object()) {
    r.Fail(InvalidField(r.Path(key), std::string(key) + " must be a JSON object"));
    return nullptr;
  }
  return &v->as_object();
}

std::optional<double> OptNumber(FieldReader& r, std::string_view key) {
  const json::value* v = r.OptValue(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) {
    r.Fail(InvalidField(r.Path(key), std::string(key) + " must be a number"));
    return std::nullopt;
  }
  return v->to_number<double>();
}

}  // namespace

StatusOr<domain::AudienceSettings> ParseAudienceSettings(std::string_view body) {
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body));
  domain::AudienceSettings s = domain::DefaultAudienceSettings();
  FieldReader top(obj);
  const json::object* rfm = OptObject(top, "rfm");
  const json::object* lc = OptObject(top, "lifecycle");
  RETURN_IF_ERROR(top.Finish());
  if (rfm) {
    FieldReader r(*rfm, "rfm");
    for (auto [key, into] :
         {std::pair{"recency", &s.rfm.recency}, std::pair{"frequency", &s.rfm.frequency},
          std::pair{"monetary", &s.rfm.monetary}}) {
      const json::object* t = OptObject(r, key);
      if (!t) continue;
      FieldReader tr(*t, r.Path(key));
      std::string mode = tr.String("mode", 1, 16);
      if (mode == "quantile") {
        into->mode = audience::RfmThreshold::Mode::kQuantile;
        std::optional<double> q = OptNumber(tr, "quantile");
        if (tr.ok() && !q) {
          tr.Fail(Status(ErrorCode::kMissingField, "a quantile threshold needs 'quantile'",
                         tr.Path("quantile")));
        }
        into->quantile = q.value_or(0.5);
      } else if (mode == "fixed") {
        into->mode = audience::RfmThreshold::Mode::kFixed;
        into->value = tr.Int("value", 0, int64_t{1'000'000'000'000});
      } else if (tr.ok()) {
        tr.Fail(InvalidField(tr.Path("mode"), "mode is quantile or fixed"));
      }
      RETURN_IF_ERROR(tr.Finish());
    }
    RETURN_IF_ERROR(r.Finish());
  }
  if (lc) {
    FieldReader r(*lc, "lifecycle");
    if (auto v = r.OptInt("default_cycle_days", 1, 3650)) {
      s.lifecycle.default_cycle_days = static_cast<int32_t>(*v);
    }
    if (auto v = OptNumber(r, "dormant_cycles")) s.lifecycle.dormant_cycles = *v;
    if (auto v = OptNumber(r, "churn_cycles")) s.lifecycle.churn_cycles = *v;
    if (auto v = r.OptInt("active_min_orders", 2, 1000)) {
      s.lifecycle.active_min_orders = static_cast<uint32_t>(*v);
    }
    RETURN_IF_ERROR(r.Finish());
  }
  RETURN_IF_ERROR(domain::CheckAudienceSettings(s));
  return s;
}

json::object ToJson(const domain::SegmentSnapshotInfo& s) {
  json::object o;
  o["id"] = s.id;
  o["segment_id"] = s.segment_id;
  o["name"] = s.name;
  o["expression"] = s.expression;
  o["people"] = s.people;
  o["created_at"] = s.created_at;
  return o;
}

json::object ToJson(const domain::AudienceTag& t) {
  json::object o;
  o["id"] = t.id;
  o["group"] = t.group;
  o["name"] = t.name;
  o["kind"] = t.rule ? "rule" : "manual";
  if (t.rule) {
    o["rule"] = *t.rule;
  } else {
    o["rule"] = nullptr;
  }
  o["people"] = t.people;
  o["created_at"] = t.created_at;
  o["updated_at"] = t.updated_at;
  return o;
}

json::object ToJson(const domain::AudienceSegment& s) {
  json::object o;
  o["id"] = s.id;
  o["name"] = s.name;
  o["expression"] = s.expression;
  o["people"] = s.people;
  o["created_at"] = s.created_at;
  o["updated_at"] = s.updated_at;
  return o;
}

}  // namespace siyu::api
