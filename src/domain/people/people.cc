#include "domain/people/people.h"

#include "common/id_key.h"
#include "common/time.h"
#include "domain/channels/channels.h"
#include "domain/identity/external_id.h"
#include "domain/people/identity.h"

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

Status LoadIds(Conn& c, int64_t tenant_id, Person& p, const std::vector<int64_t>& members) {
  if (members.size() <= 1) {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT external_id FROM person_ids WHERE tenant_id = ? AND "
                                     "person_id = ? ORDER BY created_at, external_id",
                                     {tenant_id, p.id}));
    for (const auto& row : r) p.external_ids.push_back(row.Text(0));
    return Status::Ok();
  }
  for (size_t pos = 0; pos < members.size(); pos += 256) {
    size_t n = std::min<size_t>(256, members.size() - pos);
    store::Params params{tenant_id};
    std::string in;
    for (size_t i = 0; i < n; ++i) {
      params.emplace_back(members[pos + i]);
      in += i ? ", ?" : "?";
    }
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT external_id FROM person_ids WHERE tenant_id = ? AND "
                                     "person_id IN (" +
                                         in + ") ORDER BY created_at, external_id",
                                     params));
    for (const auto& row : r) p.external_ids.push_back(row.Text(0));
  }
  for (int64_t m : members) {
    if (m != p.id) p.merged_from.push_back(m);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<ExternalId> ParseExternalId(std::string_view s, const std::string& field) {
  ASSIGN_OR_RETURN(identity::ExternalId id, identity::ParseExternalId(s, field));
  return ExternalId{std::string(id.kind_name()), std::move(id.canonical)};
}

StatusOr<Person> LoadPerson(Conn& c, int64_t tenant_id, int64_t id,
                            const std::vector<int64_t>& members) {
  ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                       " FROM people WHERE tenant_id = ? AND id = ?",
                                   {tenant_id, id}));
  if (r.empty()) return Status(ErrorCode::kNotFound, "no person " + std::to_string(id));
  Person p = FromRow(r[0]);
  RETURN_IF_ERROR(LoadIds(c, tenant_id, p, members));
  return p;
}

StatusOr<int64_t> CreateOriginPerson(Conn& c, int64_t tenant_id, std::optional<int64_t> channel_id,
                                     int64_t acquired_at, const std::optional<std::string>& name,
                                     int64_t now, std::optional<int64_t> id) {
  store::Value ch = channel_id ? store::Value(*channel_id) : store::Value(nullptr);
  store::Value nm = name ? store::Value(*name) : store::Value(nullptr);
  if (id) {
    RETURN_IF_ERROR(c.Exec("INSERT INTO people (id, tenant_id, name, first_channel_id, "
                           "last_channel_id, acquired_at, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           {*id, tenant_id, nm, ch, ch, acquired_at, now, now})
                        .status());
    return *id;
  }
  ASSIGN_OR_RETURN(Rows r, c.Query("INSERT INTO people (tenant_id, name, first_channel_id, "
                                   "last_channel_id, acquired_at, created_at, updated_at) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                                   {tenant_id, nm, ch, ch, acquired_at, now, now}));
  return r.at(0).Int(0);
}

Status AttachId(Conn& c, Identity& identity, int64_t tenant_id, const ExternalId& id,
                int64_t person, int64_t now) {
  const IdKey key = IdKeyOf(id.canonical);
  RETURN_IF_ERROR(c.Exec("INSERT INTO person_ids (tenant_id, key_hi, key_lo, external_id, kind, "
                         "person_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         {tenant_id, key.hi, key.lo, id.canonical, id.kind, person, now})
                      .status());
  return identity.AddIdInWrite(c, tenant_id, id.canonical, person);
}

StatusOr<std::pair<Person, bool>> People::Upsert(int64_t tenant_id, const PersonUpsert& in) {
  std::shared_ptr<void> scope = fact_scope_ ? fact_scope_(tenant_id) : nullptr;
  Person out;
  bool created = false;
  int64_t now = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    created = false;
    ASSIGN_OR_RETURN(Identity::AssignLock sync, identity_.SyncInWrite(c, tenant_id));
    std::optional<int64_t> channel;
    if (in.channel_state) {
      ASSIGN_OR_RETURN(channel, ChannelIdByState(c, tenant_id, *in.channel_state));
    }
    ASSIGN_OR_RETURN(auto existing, identity_.OwnerInWrite(c, tenant_id, in.external_id.canonical));
    if (existing) {
      // The touch and the name go to the person the id belongs to now (the survivor of a merge).
      const int64_t person = identity_.CanonicalInWrite(c, tenant_id, *existing);
      if (channel) {
        RETURN_IF_ERROR(c.Exec("UPDATE people SET last_channel_id = ?, first_channel_id = "
                               "COALESCE(first_channel_id, ?), updated_at = ? WHERE tenant_id = ? "
                               "AND id = ?",
                               {*channel, *channel, now, tenant_id, person})
                            .status());
      }
      if (in.name) {
        RETURN_IF_ERROR(c.Exec("UPDATE people SET name = ?, updated_at = ? WHERE tenant_id = ? "
                               "AND id = ?",
                               {*in.name, now, tenant_id, person})
                            .status());
      }
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(
        int64_t id, CreateOriginPerson(c, tenant_id, channel, in.acquired_at.value_or(now), in.name,
                                       now, identity_.NewPersonRow()));
    RETURN_IF_ERROR(AttachId(c, identity_, tenant_id, in.external_id, id, now));
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
  if (created && created_observer_) created_observer_(tenant_id, out.id);
  if (!created) {
    // Read after the commit, through the graph, so that a merged person shows all its ids.
    ASSIGN_OR_RETURN(auto found, FindByExternalId(tenant_id, in.external_id));
    out = std::move(found);
  }
  return std::make_pair(std::move(out), created);
}

StatusOr<Person> People::Get(int64_t tenant_id, int64_t id) {
  const int64_t person = identity_.CanonicalOf(tenant_id, id);
  const std::vector<int64_t> members = identity_.ComponentOf(tenant_id, person);
  Person out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(out, LoadPerson(c, tenant_id, person, members));
    return Status::Ok();
  }));
  return out;
}

StatusOr<Person> People::FindByExternalId(int64_t tenant_id, const ExternalId& id) {
  // The graph knows every id (and ids the event log assigned ahead of the store: Get's read waits
  // for their rows).
  auto found = identity_.Resolve(tenant_id, id.canonical);
  if (!found.ok()) {
    if (found.status().code() != ErrorCode::kNotFound) return found.status();
    return Status(ErrorCode::kNotFound, "no person with external id " + id.canonical);
  }
  return Get(tenant_id, found->second);
}

StatusOr<PersonPage> People::List(int64_t tenant_id, int64_t after, int limit) {
  if (limit < 1) return InvalidField("limit", "limit must be at least 1");
  PersonPage page;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    page = PersonPage{};
    ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                         " FROM people WHERE tenant_id = ? AND id > ? AND "
                                         "canonical_id IS NULL ORDER BY id LIMIT ?",
                                     {tenant_id, after, int64_t{limit + 1}}));
    for (size_t i = 0; i < r.size() && i < static_cast<size_t>(limit); ++i) {
      Person p = FromRow(r[i]);
      RETURN_IF_ERROR(LoadIds(c, tenant_id, p, identity_.ComponentOf(tenant_id, p.id)));
      page.items.push_back(std::move(p));
    }
    if (r.size() > static_cast<size_t>(limit)) page.next_after = page.items.back().id;
    return Status::Ok();
  }));
  return page;
}

}  // namespace siyu::domain
