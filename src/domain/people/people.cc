#include "domain/people/people.h"

#include "common/time.h"
#include "domain/channels/channels.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {

bool IsIdChars(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty();
}

constexpr const char* kColumns =
    "id, name, first_channel_id, last_channel_id, acquired_at, created_at";

Person FromRow(const store::Row& r) {
  Person p;
  p.id = r.Int(0);
  if (!r.IsNull(1)) p.name = r.Text(1);
  p.first_channel_id = r.OptInt(2);
  p.last_channel_id = r.OptInt(3);
  p.acquired_at = r.Int(4);
  p.created_at = r.Int(5);
  return p;
}

Status LoadIds(Conn& c, int64_t tenant_id, Person& p) {
  ASSIGN_OR_RETURN(Rows r, c.Query("SELECT external_id FROM person_ids WHERE tenant_id = ? AND "
                                   "person_id = ? ORDER BY created_at, external_id",
                                   {tenant_id, p.id}));
  for (const auto& row : r) p.external_ids.push_back(row.Text(0));
  return Status::Ok();
}

}  // namespace

StatusOr<ExternalId> ParseExternalId(std::string_view s, const std::string& field) {
  auto bad = [&](std::string why) {
    return InvalidField(field,
                        "external id '" + std::string(s.substr(0, 80)) + "' " + why +
                            "; use openid:<app>:<id>, unionid:<id>, external_userid:<corp>:<id> or "
                            "phone:<number>");
  };
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return bad("has no kind");
  std::string_view kind = s.substr(0, colon), rest = s.substr(colon + 1);
  if (kind == "openid") {
    size_t c2 = rest.find(':');
    if (c2 == std::string_view::npos) return bad("needs an app id");
    std::string_view app = rest.substr(0, c2), id = rest.substr(c2 + 1);
    if (!IsIdChars(app, 64) || !IsIdChars(id, 128)) return bad("is malformed");
    return ExternalId{"openid", "openid:" + std::string(app) + ":" + std::string(id)};
  }
  if (kind == "external_userid") {  // a WeCom customer, per corp: external_userid:<corpid>:<id>
    size_t c2 = rest.find(':');
    if (c2 == std::string_view::npos) return bad("needs a corp id");
    std::string_view corp = rest.substr(0, c2), id = rest.substr(c2 + 1);
    if (!IsIdChars(corp, 64) || !IsIdChars(id, 128)) return bad("is malformed");
    return ExternalId{"external_userid",
                      "external_userid:" + std::string(corp) + ":" + std::string(id)};
  }
  if (kind == "unionid") {
    if (!IsIdChars(rest, 128)) return bad("is malformed");
    return ExternalId{"unionid", "unionid:" + std::string(rest)};
  }
  if (kind == "phone") {
    std::string digits;
    bool plus = false;
    for (size_t i = 0; i < rest.size(); ++i) {
      char c = rest[i];
      if (c == '+' && i == 0) {
        plus = true;
      } else if (c == ' ' || c == '-') {
        continue;
      } else if (c >= '0' && c <= '9') {
        digits.push_back(c);
      } else {
        return bad("has a malformed number");
      }
    }
    if (!plus) {
      if (digits.size() != 11 || digits[0] != '1') return bad("is not an 11-digit mainland number");
      digits = "86" + digits;
    }
    if (!AllDigits(digits) || digits.size() < 8 || digits.size() > 15 || digits[0] == '0') {
      return bad("is not a valid international number");
    }
    if (digits.starts_with("86") && (digits.size() != 13 || digits[2] != '1')) {
      return bad("is not a valid mainland number");
    }
    return ExternalId{"phone", "phone:+" + digits};
  }
  return bad("has an unknown kind '" + std::string(kind.substr(0, 20)) + "'");
}

StatusOr<Person> LoadPerson(Conn& c, int64_t tenant_id, int64_t id) {
  ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                       " FROM people WHERE tenant_id = ? AND id = ?",
                                   {tenant_id, id}));
  if (r.empty()) return Status(ErrorCode::kNotFound, "no person " + std::to_string(id));
  Person p = FromRow(r[0]);
  RETURN_IF_ERROR(LoadIds(c, tenant_id, p));
  return p;
}

StatusOr<std::optional<int64_t>> PersonIdByExternalId(Conn& c, int64_t tenant_id,
                                                      const std::string& canonical) {
  ASSIGN_OR_RETURN(Rows r, c.Query("SELECT person_id FROM person_ids WHERE tenant_id = ? AND "
                                   "external_id = ?",
                                   {tenant_id, canonical}));
  if (r.empty()) return std::optional<int64_t>();
  return std::optional<int64_t>(r[0].Int(0));
}

StatusOr<std::pair<Person, bool>> People::Upsert(int64_t tenant_id, const PersonUpsert& in) {
  Person out;
  bool created = false;
  int64_t now = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    created = false;
    std::optional<int64_t> channel;
    if (in.channel_state) {
      ASSIGN_OR_RETURN(channel, ChannelIdByState(c, tenant_id, *in.channel_state));
    }
    ASSIGN_OR_RETURN(auto existing, PersonIdByExternalId(c, tenant_id, in.external_id.canonical));
    if (existing) {
      if (channel) {
        RETURN_IF_ERROR(c.Exec("UPDATE people SET last_channel_id = ?, first_channel_id = "
                               "COALESCE(first_channel_id, ?), updated_at = ? WHERE tenant_id = ? "
                               "AND id = ?",
                               {*channel, *channel, now, tenant_id, *existing})
                            .status());
      }
      if (in.name) {
        RETURN_IF_ERROR(c.Exec("UPDATE people SET name = ?, updated_at = ? WHERE tenant_id = ? "
                               "AND id = ?",
                               {*in.name, now, tenant_id, *existing})
                            .status());
      }
      ASSIGN_OR_RETURN(out, LoadPerson(c, tenant_id, *existing));
      return Status::Ok();
    }
    store::Value ch = channel ? store::Value(*channel) : store::Value(nullptr);
    store::Value name = in.name ? store::Value(*in.name) : store::Value(nullptr);
    ASSIGN_OR_RETURN(Rows r,
                     c.Query("INSERT INTO people (tenant_id, name, first_channel_id, "
                             "last_channel_id, acquired_at, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                             {tenant_id, name, ch, ch, in.acquired_at.value_or(now), now, now}));
    int64_t id = r.at(0).Int(0);
    RETURN_IF_ERROR(c.Exec("INSERT INTO person_ids (tenant_id, external_id, kind, person_id, "
                           "created_at) VALUES (?, ?, ?, ?, ?)",
                           {tenant_id, in.external_id.canonical, in.external_id.kind, id, now})
                        .status());
    out = Person{};
    out.id = id;
    out.name = in.name;
    out.external_ids = {in.external_id.canonical};
    out.first_channel_id = channel;
    out.last_channel_id = channel;
    out.acquired_at = in.acquired_at.value_or(now);
    out.created_at = now;
    created = true;
    return Status::Ok();
  }));
  return std::make_pair(std::move(out), created);
}

StatusOr<Person> People::Get(int64_t tenant_id, int64_t id) {
  Person out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(out, LoadPerson(c, tenant_id, id));
    return Status::Ok();
  }));
  return out;
}

StatusOr<Person> People::FindByExternalId(int64_t tenant_id, const ExternalId& id) {
  Person out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(auto pid, PersonIdByExternalId(c, tenant_id, id.canonical));
    if (!pid) return Status(ErrorCode::kNotFound, "no person with external id " + id.canonical);
    ASSIGN_OR_RETURN(out, LoadPerson(c, tenant_id, *pid));
    return Status::Ok();
  }));
  return out;
}

StatusOr<PersonPage> People::List(int64_t tenant_id, int64_t after, int limit) {
  if (limit < 1) return InvalidField("limit", "limit must be at least 1");
  PersonPage page;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                         " FROM people WHERE tenant_id = ? AND id > ? ORDER BY id "
                                         "LIMIT ?",
                                     {tenant_id, after, int64_t{limit + 1}}));
    for (size_t i = 0; i < r.size() && i < static_cast<size_t>(limit); ++i) {
      Person p = FromRow(r[i]);
      RETURN_IF_ERROR(LoadIds(c, tenant_id, p));
      page.items.push_back(std::move(p));
    }
    if (r.size() > static_cast<size_t>(limit)) page.next_after = page.items.back().id;
    return Status::Ok();
  }));
  return page;
}

}  // namespace siyu::domain
