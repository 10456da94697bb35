#include "domain/events/events.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <functional>
#include <unordered_set>

#include "common/time.h"
#include "domain/channels/channels.h"

namespace siyu::domain {

using store::Conn;
using store::Params;
using store::Row;
using store::Rows;

namespace {

// Statements over many values are cut into chunks whose sizes are powers of two (IN lists padded
// by repeating their last value), so that the store's per-connection statement caches hold a
// handful of statements rather than one per batch size.
constexpr size_t kMaxChunk = 256;

std::string Placeholders(size_t n) {
  std::string s;
  s.reserve(n * 3);
  for (size_t i = 0; i < n; ++i) s += i ? ", ?" : "?";
  return s;
}

// Runs `prefix` + "(?, …)" with the tenant as the first parameter and `values` in the list; calls
// `each` for every row.
Status QueryIn(Conn& c, std::string_view prefix, int64_t tenant_id,
               const std::vector<std::string>& values,
               const std::function<void(const Row&)>& each) {
  for (size_t pos = 0; pos < values.size();) {
    size_t left = values.size() - pos;
    size_t k = std::min(kMaxChunk, std::bit_ceil(left));
    size_t take = std::min(left, k);
    std::string sql(prefix);
    sql += "(" + Placeholders(k) + ")";
    Params p;
    p.reserve(k + 1);
    p.emplace_back(tenant_id);
    for (size_t i = 0; i < k; ++i) p.emplace_back(values[pos + std::min(i, take - 1)]);
    ASSIGN_OR_RETURN(Rows rows, c.Query(sql, p));
    for (const Row& r : rows) each(r);
    pos += take;
  }
  return Status::Ok();
}

const std::string& InsertEventsSql(size_t rows) {
  // One statement text per power of two up to kMaxChunk, built once.
  static const std::vector<std::string> kSql = [] {
    std::vector<std::string> v;
    for (size_t n = 1; n <= kMaxChunk; n *= 2) {
      std::string s =
          "INSERT INTO events (tenant_id, event_id, person_id, type, ts, touchpoint, channel_id, "
          "ids, properties, received_at) VALUES ";
      for (size_t i = 0; i < n; ++i) {
        s += i ? ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" : "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
      }
      v.push_back(std::move(s));
    }
    return v;
  }();
  return kSql.at(static_cast<size_t>(std::countr_zero(rows)));
}

// The UPDATE that moves a person's last channel for a channel-moving event at `ts`, unless a later
// channel-moving event of that person is already stored: late events must not undo newer touches.
const std::string& MoveLastChannelSql() {
  static const std::string kSql = [] {
    std::string types;
    for (const auto& t : EventCatalogue()) {
      if (!t.moves_last_channel) continue;
      types += (types.empty() ? "'" : ", '") + std::string(t.name) + "'";
    }
    return "UPDATE people SET last_channel_id = ?, first_channel_id = COALESCE(first_channel_id, "
           "?), updated_at = ? WHERE tenant_id = ? AND id = ? AND NOT EXISTS (SELECT 1 FROM events "
           "WHERE tenant_id = ? AND person_id IN (SELECT id FROM people WHERE tenant_id = ? AND "
           "(id = ? OR canonical_id = ?)) AND ts > ? AND channel_id IS NOT NULL AND type IN (" +
           types + "))";
  }();
  return kSql;
}

// ---- the timeline cursor: base64url("<ts>:<event_id>") -----------------------------------------

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64Url(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char ch : in) {
    acc = (acc << 8) | ch;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kB64[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kB64[(acc << (6 - bits)) & 63];
  return out;
}

std::optional<std::string> FromBase64Url(std::string_view in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    const char* p = std::find(kB64, kB64 + 64, ch);
    if (p == kB64 + 64) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(p - kB64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string EncodeCursor(int64_t ts, std::string_view event_id) {
  return Base64Url(std::to_string(ts) + ":" + std::string(event_id));
}

struct Cursor {
  int64_t ts;
  std::string event_id;
};

std::optional<Cursor> DecodeCursor(std::string_view s) {
  if (s.empty() || s.size() > 128) return std::nullopt;
  auto raw = FromBase64Url(s);
  if (!raw) return std::nullopt;
  size_t colon = raw->find(':');
  if (colon == std::string::npos) return std::nullopt;
  Cursor c{};
  auto r = std::from_chars(raw->data(), raw->data() + colon, c.ts);
  if (r.ec != std::errc() || r.ptr != raw->data() + colon) return std::nullopt;
  c.event_id = raw->substr(colon + 1);
  if (!IsEventId(c.event_id)) return std::nullopt;
  return c;
}

constexpr const char* kEventColumns =
    "event_id, person_id, type, ts, touchpoint, channel_id, ids, properties, received_at";

StoredEvent EventFromRow(const Row& r) {
  StoredEvent e;
  e.event_id = r.Text(0);
  e.person_id = r.Int(1);
  e.type = r.Text(2);
  e.ts = r.Int(3);
  e.touchpoint = r.Text(4);
  e.channel_id = r.OptInt(5);
  e.ids_json = r.Text(6);
  e.properties = r.Text(7);
  e.received_at = r.Int(8);
  return e;
}

}  // namespace

bool IsEventId(std::string_view s) {
  if (s.empty() || s.size() > kMaxEventIdLength) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
           c == '-';
  });
}

bool IsEventTouchpoint(std::string_view s) {
  return std::find(std::begin(kEventTouchpoints), std::end(kEventTouchpoints), s) !=
         std::end(kEventTouchpoints);
}

StatusOr<ExternalId> ParseEventPersonId(std::string_view s, const std::string& field) {
  return ParseExternalId(s, field);
}

std::string_view LinkStateName(LinkState s) {
  switch (s) {
    case LinkState::kLinked:
      return "linked";
    case LinkState::kMerged:
      return "merged";
    case LinkState::kQuarantined:
      return "quarantined";
  }
  return "?";
}

std::string_view EventOutcomeName(EventOutcome o) {
  switch (o) {
    case EventOutcome::kAccepted:
      return "accepted";
    case EventOutcome::kDuplicate:
      return "duplicate";
    case EventOutcome::kRejected:
      return "rejected";
  }
  return "?";
}

EventItem ReadEventItem(json::value& item, size_t index, int64_t now_ms) {
  EventItem out;
  const std::string path = "events[" + std::to_string(index) + "]";
  if (!item.is_object()) {
    out.rejected = InvalidField(path, "each element of 'events' must be a JSON object");
    return out;
  }
  json::object& obj = item.as_object();
  // The properties are checked against the catalogue, not by the envelope reader: take them out.
  json::value props;
  if (auto it = obj.find("properties"); it != obj.end()) {
    props = std::move(it->value());
    obj.erase(it);
  }
  FieldReader r(obj, path);
  EventIn& e = out.event;
  e.event_id = r.String("event_id", 1, kMaxEventIdLength);
  if (r.ok() && !IsEventId(e.event_id)) {
    r.Fail(InvalidField(r.Path("event_id"),
                        "event_id may contain only letters, digits, '_', '.', ':' and '-'"));
  }
  if (r.ok()) out.event_id = e.event_id;
  e.type = r.String("type", 1, kCustomEventPrefix.size() + kMaxCustomNameLength);
  const json::array* ids = r.Array("ids", 1, kMaxIdsPerEvent);
  e.ts = r.Int("ts", INT64_MIN, INT64_MAX);
  e.touchpoint = r.String("touchpoint", 1, 32);
  e.channel_state = r.OptString("channel_state", 1, kMaxStateLength);
  Status s = r.Finish();
  auto reject = [&](Status st) {
    out.rejected = std::move(st);
    return std::move(out);
  };
  if (!s.ok()) return reject(std::move(s));

  auto spec = CheckEventType(e.type, r.Path("type"));
  if (!spec.ok()) return reject(spec.status());
  e.spec = *spec;
  if (e.ts < kMinEventTs || e.ts > now_ms + kMaxEventClockSkewMs) {
    return reject(
        InvalidField(r.Path("ts"),
                     "ts must be a UTC millisecond timestamp from 2000-01-01 (946684800000) to "
                     "5 minutes ahead of the server clock (now " +
                         std::to_string(now_ms) + ")"));
  }
  if (!IsEventTouchpoint(e.touchpoint)) {
    return reject(InvalidField(r.Path("touchpoint"),
                               "touchpoint must be official_account, mini_program, wecom, group, "
                               "offline or other"));
  }
  e.ids_json = "[";
  for (size_t i = 0; i < ids->size(); ++i) {
    std::string field = r.Path("ids") + "[" + std::to_string(i) + "]";
    const json::value& v = (*ids)[i];
    if (!v.is_string()) return reject(InvalidField(field, "each id must be a string"));
    auto id = ParseEventPersonId(v.as_string(), field);
    if (!id.ok()) return reject(id.status());
    // The same id twice (e.g. a phone number in two spellings) is one id.
    bool repeat = std::any_of(e.ids.begin(), e.ids.end(),
                              [&](const ExternalId& x) { return x.canonical == id->canonical; });
    if (repeat) continue;
    // Canonical ids are plain ASCII without quotes or backslashes: no escaping needed.
    e.ids_json += (e.ids.empty() ? "\"" : ",\"") + id->canonical + "\"";
    e.ids.push_back(std::move(id).value());
  }
  e.ids_json += "]";

  std::string props_path = r.Path("properties");
  if (props.is_null()) props = json::object();
  if (!props.is_object()) {
    return reject(InvalidField(props_path, "properties must be a JSON object"));
  }
  e.properties = ToJson(props);
  if (e.properties.size() > kMaxPropertiesBytes) {
    return reject(InvalidField(props_path, "properties take " +
                                               std::to_string(e.properties.size()) +
                                               " bytes as compact JSON; at most " +
                                               std::to_string(kMaxPropertiesBytes) + " allowed"));
  }
  Status ps = CheckProperties(e.spec, props.as_object(), props_path);
  if (!ps.ok()) return reject(std::move(ps));
  return out;
}

// ---- person resolution -------------------------------------------------------------------------

Status KnownIds::Load(Conn& c, int64_t tenant_id, const std::vector<std::string>& canonical) {
  return QueryIn(c,
                 "SELECT external_id, person_id FROM person_ids WHERE tenant_id = ? AND "
                 "external_id IN ",
                 tenant_id, canonical, [&](const Row& r) { map_[r.Text(0)] = r.Int(1); });
}

std::optional<int64_t> KnownIds::Find(const std::string& canonical) const {
  auto it = map_.find(canonical);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

StatusOr<Resolution> ResolvePerson(Conn& c, Identity& identity, int64_t tenant_id,
                                   const std::vector<ExternalId>& ids,
                                   std::optional<int64_t> channel_id, int64_t ts, KnownIds& known,
                                   const std::string& reason) {
  Resolution res;
  const ExternalId* home_id = nullptr;
  for (const ExternalId& id : ids) {
    if (auto p = known.Find(id.canonical)) {
      res.origin_person_id = *p;
      home_id = &id;
      break;
    }
  }
  const int64_t now = NowMs();
  if (res.origin_person_id == 0) {
    ASSIGN_OR_RETURN(res.origin_person_id,
                     CreateOriginPerson(c, tenant_id, channel_id, ts, std::nullopt, now));
    res.created = true;
  }
  for (const ExternalId& id : ids) {
    if (known.Find(id.canonical)) continue;
    RETURN_IF_ERROR(AttachId(c, identity, tenant_id, id, res.origin_person_id, now));
    known.Put(id.canonical, res.origin_person_id);
  }
  // Ids that belong to other people: the event says they are one person.
  if (home_id) {
    for (const ExternalId& id : ids) {
      const int64_t other = *known.Find(id.canonical);
      if (other == res.origin_person_id ||
          identity.CanonicalInWrite(c, tenant_id, other) ==
              identity.CanonicalInWrite(c, tenant_id, res.origin_person_id)) {
        continue;
      }
      ASSIGN_OR_RETURN(
          identity::LinkOutcome o,
          identity.LinkInWrite(c, tenant_id, home_id->canonical, id.canonical, reason, now));
      if (o.result == identity::LinkResult::kLinked && res.link != LinkState::kQuarantined) {
        res.link = LinkState::kMerged;
      } else if (o.result == identity::LinkResult::kQuarantined) {
        res.link = LinkState::kQuarantined;
      }
    }
  }
  res.person_id = identity.CanonicalInWrite(c, tenant_id, res.origin_person_id);
  return res;
}

// ---- the service -------------------------------------------------------------------------------

StatusOr<IngestResult> Events::Ingest(int64_t tenant_id, std::vector<EventItem> items) {
  // What the write will look up, gathered before it so the writer does only SQL.
  std::vector<std::string> event_ids, ids, states;
  {
    std::unordered_set<std::string_view> seen_events, seen_ids, seen_states;
    for (const EventItem& item : items) {
      if (!item.rejected.ok()) continue;
      const EventIn& e = item.event;
      if (seen_events.insert(e.event_id).second) event_ids.push_back(e.event_id);
      for (const ExternalId& id : e.ids) {
        if (seen_ids.insert(id.canonical).second) ids.push_back(id.canonical);
      }
      if (e.channel_state && seen_states.insert(*e.channel_state).second) {
        states.push_back(*e.channel_state);
      }
    }
  }

  IngestResult out;
  auto reset = [&] {
    out = IngestResult{};
    out.results.resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      EventResult& res = out.results[i];
      res.event_id = items[i].event_id;
      if (!items[i].rejected.ok()) {
        res.outcome = EventOutcome::kRejected;
        res.error = items[i].rejected;
      }
    }
  };
  reset();
  if (event_ids.empty()) {
    out.rejected = static_cast<int64_t>(items.size());
    return out;
  }

  const int64_t now = NowMs();
  Status s = store_.Write([&](Conn& c) -> Status {
    // A write may run twice (a failed group commit retries each write alone): start afresh.
    reset();
    std::unordered_set<std::string> stored;
    RETURN_IF_ERROR(QueryIn(c, "SELECT event_id FROM events WHERE tenant_id = ? AND event_id IN ",
                            tenant_id, event_ids, [&](const Row& r) { stored.insert(r.Text(0)); }));
    std::unordered_map<std::string, int64_t> channels;
    RETURN_IF_ERROR(QueryIn(c, "SELECT state, id FROM channels WHERE tenant_id = ? AND state IN ",
                            tenant_id, states,
                            [&](const Row& r) { channels[r.Text(0)] = r.Int(1); }));
    KnownIds known;
    RETURN_IF_ERROR(known.Load(c, tenant_id, ids));

    std::unordered_set<std::string_view> taken;  // event ids accepted earlier in this batch
    std::vector<size_t> accepted;
    std::vector<std::optional<int64_t>> channel_of(items.size());
    std::vector<int64_t> origin_of(items.size());  // the person row each event is attached to
    // Per person, the latest channel-moving event of the batch: only it can move the last channel.
    std::unordered_map<int64_t, std::pair<int64_t, int64_t>> moves;  // person → (ts, channel)
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].rejected.ok()) continue;
      const EventIn& e = items[i].event;
      EventResult& res = out.results[i];
      if (stored.count(e.event_id) || taken.count(e.event_id)) {
        res.outcome = EventOutcome::kDuplicate;
        continue;
      }
      if (e.channel_state) {
        auto ch = channels.find(*e.channel_state);
        if (ch == channels.end()) {
          res.outcome = EventOutcome::kRejected;
          res.error = Status(ErrorCode::kUnknownChannelState,
                             "channel_state '" + *e.channel_state +
                                 "' matches no channel of this tenant; create the channel first "
                                 "(POST /v1/channels)",
                             "events[" + std::to_string(i) + "].channel_state");
          continue;
        }
        channel_of[i] = ch->second;
      }
      ASSIGN_OR_RETURN(Resolution who,
                       ResolvePerson(c, identity_, tenant_id, e.ids, channel_of[i], e.ts, known,
                                     "event " + e.type + " " + e.event_id));
      taken.insert(e.event_id);
      accepted.push_back(i);
      origin_of[i] = who.origin_person_id;
      res.outcome = EventOutcome::kAccepted;
      res.person_id = who.person_id;
      res.link = who.link;
      if (channel_of[i] && e.spec && e.spec->moves_last_channel) {
        auto [it, fresh] = moves.try_emplace(who.person_id, e.ts, *channel_of[i]);
        if (!fresh && e.ts >= it->second.first) it->second = {e.ts, *channel_of[i]};
      }
    }

    for (size_t pos = 0; pos < accepted.size();) {
      size_t k = std::bit_floor(std::min(accepted.size() - pos, kMaxChunk));
      Params p;
      p.reserve(k * 10);
      for (size_t j = pos; j < pos + k; ++j) {
        size_t i = accepted[j];
        const EventIn& e = items[i].event;
        p.emplace_back(tenant_id);
        p.emplace_back(e.event_id);
        p.emplace_back(origin_of[i]);
        p.emplace_back(e.type);
        p.emplace_back(e.ts);
        p.emplace_back(e.touchpoint);
        p.emplace_back(channel_of[i] ? store::Value(*channel_of[i]) : store::Value(nullptr));
        p.emplace_back(e.ids_json);
        p.emplace_back(e.properties);
        p.emplace_back(now);
      }
      RETURN_IF_ERROR(c.Exec(InsertEventsSql(k), p).status());
      pos += k;
    }
    // After the insert, so that the "no later touch stored" check sees this batch's events too.
    // A merge later in the batch may have joined the person to another: the touch goes to the
    // person as it is now.
    std::unordered_map<int64_t, std::pair<int64_t, int64_t>> final_moves;
    for (const auto& [person, move] : moves) {
      const int64_t now_person = identity_.CanonicalInWrite(c, tenant_id, person);
      auto [it, fresh] = final_moves.try_emplace(now_person, move);
      if (!fresh && move.first >= it->second.first) it->second = move;
    }
    for (const auto& [person, move] : final_moves) {
      RETURN_IF_ERROR(
          c.Exec(MoveLastChannelSql(), {move.second, move.second, now, tenant_id, person, tenant_id,
                                        tenant_id, person, person, move.first})
              .status());
    }
    out.accepted = static_cast<int64_t>(accepted.size());
    return Status::Ok();
  });
  if (!s.ok()) {
    // Another node inserting the same event or id at the same moment: nothing of this batch was
    // stored, and resending it is safe and will find the other node's rows.
    if (s.code() == ErrorCode::kAlreadyExists) {
      return Status(ErrorCode::kStoreUnavailable,
                    "a concurrent write stored some of these events or ids first; resend the "
                    "batch");
    }
    return s;
  }
  for (const EventResult& r : out.results) {
    if (r.outcome == EventOutcome::kDuplicate) ++out.duplicates;
    if (r.outcome == EventOutcome::kRejected) ++out.rejected;
  }
  return out;
}

StatusOr<TimelinePage> Events::Timeline(int64_t tenant_id, int64_t person_id,
                                        const std::optional<std::string>& before, int limit) {
  if (limit < 1) return InvalidField("limit", "limit must be at least 1");
  std::optional<Cursor> cursor;
  if (before) {
    cursor = DecodeCursor(*before);
    if (!cursor) {
      return Status(ErrorCode::kInvalidQuery,
                    "'before' is not a cursor from a timeline page's next_before", "before");
    }
  }
  // The events of every person row merged into the person.
  const std::vector<int64_t> members =
      identity_.ComponentOf(tenant_id, identity_.CanonicalOf(tenant_id, person_id));
  TimelinePage page;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    page = TimelinePage{};
    ASSIGN_OR_RETURN(Rows who, c.Query("SELECT id FROM people WHERE tenant_id = ? AND id = ?",
                                       {tenant_id, person_id}));
    if (who.empty()) return Status(ErrorCode::kNotFound, "no person " + std::to_string(person_id));
    std::string sql = std::string("SELECT ") + kEventColumns +
                      " FROM events WHERE tenant_id = ? AND person_id IN (";
    Params params{tenant_id};
    for (size_t i = 0; i < members.size(); ++i) {
      sql += i ? ", ?" : "?";
      params.emplace_back(members[i]);
    }
    sql += ")";
    if (cursor) {
      // A row value compares (ts, event_id) as a pair, which the (tenant_id, person_id, ts,
      // event_id) index serves directly.
      sql += " AND (ts, event_id) < (?, ?)";
      params.emplace_back(cursor->ts);
      params.emplace_back(cursor->event_id);
    }
    sql += " ORDER BY ts DESC, event_id DESC LIMIT ?";
    params.emplace_back(int64_t{limit} + 1);
    ASSIGN_OR_RETURN(Rows rows, c.Query(sql, params));
    for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(limit); ++i) {
      page.items.push_back(EventFromRow(rows[i]));
    }
    if (rows.size() > static_cast<size_t>(limit)) {
      const StoredEvent& last = page.items.back();
      page.next_before = EncodeCursor(last.ts, last.event_id);
    }
    return Status::Ok();
  }));
  return page;
}

}  // namespace siyu::domain
