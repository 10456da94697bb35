#include "domain/people/people.h"

#include "common/time.h"
#include "domain/channels/channels.h"
#include "domain/identity/external_id.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {

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
  ASSIGN_OR_RETURN(identity::ExternalId id, identity::ParseExternalId(s, field));
  return ExternalId{std::string(id.kind_name()), std::move(id.canonical)};
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
