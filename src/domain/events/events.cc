#include "domain/events/events.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "common/crypto.h"
#include "common/error_codes.h"
#include "common/id_key.h"
#include "common/threads.h"
#include "common/time.h"
#include "domain/channels/channels.h"
#include "domain/events/event_id_set.h"
#include "domain/events/event_record.h"
#include "domain/identity/external_id.h"
#include "domain/per_row.h"
#include "store/eventlog/log.h"

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
template <typename T>
Status QueryIn(Conn& c, std::string_view prefix, int64_t tenant_id, const std::vector<T>& values,
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
// The person's rows are the survivor and the rows naming it canonical, as a UNION of two index
// look-ups (an `id = ? OR canonical_id = ?` would read every person of the tenant).
const std::string& MoveLastChannelSql() {
  static const std::string kSql = [] {
    std::string types;
    for (const auto& t : EventCatalogue()) {
      if (!t.moves_last_channel) continue;
      types += (types.empty() ? "'" : ", '") + std::string(t.name) + "'";
    }
    return "UPDATE people SET last_channel_id = ?, first_channel_id = COALESCE(first_channel_id, "
           "?), updated_at = ? WHERE tenant_id = ? AND id = ? AND NOT EXISTS (SELECT 1 FROM "
           "touches WHERE tenant_id = ? AND person_id IN (SELECT CAST(? AS BIGINT) UNION ALL "
           "SELECT id FROM people WHERE tenant_id = ? AND canonical_id = ?) AND ts > ? AND type "
           "IN (" +
           types + "))";
  }();
  return kSql;
}

// A multi-row INSERT, "<head>(…), (…), …", with 1, 2, 4, … kMaxRows rows: one statement text per
// power of two, built once, so that the store's statement cache holds a handful.
class MultiRowInsert {
 public:
  static constexpr size_t kMaxRows = 64;
  MultiRowInsert(std::string_view head, std::string_view row, std::string_view tail = {}) {
    for (size_t n = 1; n <= kMaxRows; n *= 2) {
      std::string s(head);
      for (size_t i = 0; i < n; ++i) {
        if (i) s += ", ";
        s += row;
      }
      s += tail;
      sql_.push_back(std::move(s));
    }
  }
  // Inserts `values` (`columns` per row) in statements of powers of two rows.
  Status Run(Conn& c, size_t columns, std::span<const store::Value> values) const {
    const size_t rows = values.size() / columns;
    for (size_t pos = 0; pos < rows;) {
      size_t k = std::bit_floor(std::min(rows - pos, kMaxRows));
      RETURN_IF_ERROR(c.ExecSlice(For(k), values.subspan(pos * columns, k * columns)).status());
      pos += k;
    }
    return Status::Ok();
  }
  // `rows` is a power of two, at most kMaxRows.
  const std::string& For(size_t rows) const {
    return sql_.at(static_cast<size_t>(std::countr_zero(rows)));
  }

 private:
  std::vector<std::string> sql_;
};

// The applier's inserts: what it writes may be there already (a replay after a crash).
const MultiRowInsert& InsertOwedPeople() {
  static const MultiRowInsert k(
      "INSERT INTO people (id, tenant_id, first_channel_id, last_channel_id, acquired_at, "
      "created_at, updated_at) VALUES ",
      "(?, ?, ?, ?, ?, ?, ?)", " ON CONFLICT DO NOTHING");
  return k;
}
const MultiRowInsert& InsertOwedIds() {
  static const MultiRowInsert k(
      "INSERT INTO person_ids (tenant_id, key_hi, key_lo, external_id, kind, person_id, "
      "created_at) VALUES ",
      "(?, ?, ?, ?, ?, ?, ?)", " ON CONFLICT DO NOTHING");
  return k;
}
// A person's touch for each event with a channel (the store path's events and the applier's).
const MultiRowInsert& InsertTouches() {
  static const MultiRowInsert k(
      "INSERT INTO touches (tenant_id, person_id, ts, event_id, type, channel_id) VALUES ",
      "(?, ?, ?, ?, ?, ?)", " ON CONFLICT DO NOTHING");
  return k;
}

// Inserts the events `rows` of `items` into `events`, in chunks.
Status InsertEventRows(Conn& c, int64_t tenant_id, const std::vector<EventItem>& items,
                       const std::vector<size_t>& rows, const std::vector<int64_t>& origin_of,
                       const std::vector<std::optional<int64_t>>& channel_of, int64_t now) {
  for (size_t pos = 0; pos < rows.size();) {
    size_t k = std::bit_floor(std::min(rows.size() - pos, kMaxChunk));
    Params p;
    p.reserve(k * 10);
    for (size_t j = pos; j < pos + k; ++j) {
      size_t i = rows[j];
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
  // Events with a channel are also the people's touches.
  std::vector<store::Value> touches;
  for (size_t i : rows) {
    if (!channel_of[i]) continue;
    const EventIn& e = items[i].event;
    touches.emplace_back(tenant_id);
    touches.emplace_back(origin_of[i]);
    touches.emplace_back(e.ts);
    touches.emplace_back(store::TextRef{e.event_id});
    touches.emplace_back(store::TextRef{e.type});
    touches.emplace_back(*channel_of[i]);
  }
  return InsertTouches().Run(c, 6, touches);
}

// Per person, the latest channel-moving event of a batch: (ts, channel).
using ChannelMoves = std::unordered_map<int64_t, std::pair<int64_t, int64_t>>;

void NoteMove(ChannelMoves& moves, int64_t person, int64_t ts, int64_t channel) {
  auto [it, fresh] = moves.try_emplace(person, ts, channel);
  if (!fresh && ts >= it->second.first) it->second = {ts, channel};
}

// Moves the last channel of the batch's people, after its events are inserted (so that the "no
// later touch stored" check sees them too). A merge later in the batch may have joined a person to
// another: the touch goes to the person as it is now.
Status MoveLastChannels(Conn& c, Identity& identity, int64_t tenant_id, const ChannelMoves& moves,
                        int64_t now) {
  ChannelMoves final_moves;
  for (const auto& [person, move] : moves) {
    NoteMove(final_moves, identity.CanonicalInWrite(c, tenant_id, person), move.first, move.second);
  }
  for (const auto& [person, move] : final_moves) {
    RETURN_IF_ERROR(c.Exec(MoveLastChannelSql(), {move.second, move.second, now, tenant_id, person,
                                                  tenant_id, person, tenant_id, person, move.first})
                        .status());
  }
  return Status::Ok();
}

Status UnknownChannelState(const std::string& state, size_t index) {
  return Status(ErrorCode::kUnknownChannelState,
                "channel_state '" + state +
                    "' matches no channel of this tenant; create the channel first "
                    "(POST /v1/channels)",
                "events[" + std::to_string(index) + "].channel_state");
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
  // A table instead of comparisons: every event of every batch passes here.
  static constexpr std::array<bool, 256> kAllowed = [] {
    std::array<bool, 256> t{};
    for (unsigned char c = 0; c < 128; ++c) {
      t[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '.' || c == ':' || c == '-';
    }
    return t;
  }();
  if (s.empty() || s.size() > kMaxEventIdLength) return false;
  bool ok = true;
  for (char c : s) ok &= kAllowed[static_cast<unsigned char>(c)];
  return ok;
}

bool IsSystemEventType(std::string_view type) {
  return std::find(std::begin(kSystemEventTypes), std::end(kSystemEventTypes), type) !=
         std::end(kSystemEventTypes);
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
  // Field paths are made only for errors: the accepted path allocates no message or path text.
  char path_buf[32] = "events[";
  char* end = std::to_chars(path_buf + 7, path_buf + sizeof path_buf - 1, index).ptr;
  *end++ = ']';
  const std::string path(path_buf, end);
  if (!item.is_object()) {
    out.rejected = InvalidField(path, "each element of 'events' must be a JSON object");
    return out;
  }
  json::object& obj = item.as_object();
  // The properties are checked against the catalogue, not by the envelope reader: take them out
  // (into a value on the same memory, so that they move rather than copy).
  json::value props(obj.storage());
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

  e.spec = FindEventType(e.type);
  if (!e.spec && !IsCustomEventType(e.type)) {
    return reject(CheckEventType(e.type, r.Path("type")).status());
  }
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
  e.ids.reserve(ids->size());
  e.ids_json.reserve(2 + ids->size() * 48);
  e.ids_json = "[";
  for (size_t i = 0; i < ids->size(); ++i) {
    auto field = [&] { return r.Path("ids") + "[" + std::to_string(i) + "]"; };
    const json::value& v = (*ids)[i];
    if (!v.is_string()) return reject(InvalidField(field(), "each id must be a string"));
    ExternalId id;
    identity::IdKind kind;
    if (!identity::CanonicalizeExternalId(v.as_string(), {}, &id.canonical, &kind).ok()) {
      return reject(ParseEventPersonId(v.as_string(), field()).status());
    }
    AddCanonicalId(e, id.canonical, identity::IdKindName(kind));
  }
  e.ids_json += ']';

  if (props.is_null()) props = json::object();
  if (!props.is_object()) {
    return reject(InvalidField(r.Path("properties"), "properties must be a JSON object"));
  }
  e.properties = ToJson(props);
  if (e.properties.size() > kMaxPropertiesBytes) {
    return reject(InvalidField(r.Path("properties"),
                               "properties take " + std::to_string(e.properties.size()) +
                                   " bytes as compact JSON; at most " +
                                   std::to_string(kMaxPropertiesBytes) + " allowed"));
  }
  if (e.spec) {
    Status ps = CheckProperties(e.spec, props.as_object(), r.Path("properties"));
    if (!ps.ok()) return reject(std::move(ps));
  }
  e.integer_properties = IntegerProperties(props.as_object());
  return out;
}

void AddCanonicalId(EventIn& e, size_t& used, std::string_view canonical, std::string_view kind) {
  // The same id twice (e.g. a phone number in two spellings) is one id.
  for (size_t k = 0; k < used; ++k) {
    if (e.ids[k].canonical == canonical) return;
  }
  // Canonical ids are plain ASCII without quotes or backslashes: no escaping needed.
  if (used > 0) e.ids_json += ',';
  e.ids_json += '"';
  e.ids_json += canonical;
  e.ids_json += '"';
  if (used < e.ids.size()) {
    e.ids[used].kind.assign(kind);
    e.ids[used].canonical.assign(canonical);
  } else {
    e.ids.push_back(ExternalId{std::string(kind), std::string(canonical)});
  }
  ++used;
}

void AddCanonicalId(EventIn& e, std::string_view canonical, std::string_view kind) {
  size_t used = e.ids.size();
  AddCanonicalId(e, used, canonical, kind);
}

void IntegerProperties(const json::object& properties,
                       std::vector<std::pair<std::string, int64_t>>& out) {
  for (const auto& kv : properties) {
    if (kv.value().is_int64()) {
      out.emplace_back(std::string(kv.key()), kv.value().as_int64());
    } else if (kv.value().is_uint64() &&
               kv.value().as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      out.emplace_back(std::string(kv.key()), static_cast<int64_t>(kv.value().as_uint64()));
    }
  }
}

std::vector<std::pair<std::string, int64_t>> IntegerProperties(const json::object& properties) {
  std::vector<std::pair<std::string, int64_t>> out;
  IntegerProperties(properties, out);
  return out;
}

StatusOr<std::vector<EventItem>> ReadEventBatch(std::string_view body, int64_t now_ms) {
  if (auto items = ReadEventBatchFast(body, now_ms)) return std::move(*items);
  return ReadEventBatchTree(body, now_ms);
}

Status ReadEventBatch(std::string_view body, int64_t now_ms, std::vector<EventItem>& items) {
  if (ReadEventBatchFast(body, now_ms, items)) return Status::Ok();
  ASSIGN_OR_RETURN(items, ReadEventBatchTree(body, now_ms));
  return Status::Ok();
}

StatusOr<std::vector<EventItem>> ReadEventBatchTree(std::string_view body, int64_t now_ms) {
  // A batch of 100 events is ~35 KB of JSON and a few times that as a tree; bigger bodies spill
  // into blocks the resource takes from the heap and frees with it.
  constexpr size_t kArenaBytes = 512 * 1024;
  thread_local std::unique_ptr<unsigned char[]> arena(new unsigned char[kArenaBytes]);
  json::monotonic_resource mr(arena.get(), kArenaBytes);
  ASSIGN_OR_RETURN(json::object obj, ParseJsonObject(body, &mr));
  FieldReader r(obj);
  r.Array("events", 1, kMaxEventsPerBatch);
  RETURN_IF_ERROR(r.Finish());
  // ReadEventItem takes each element's properties out rather than copying them.
  json::array& events = obj.at("events").as_array();
  std::vector<EventItem> items;
  items.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    items.push_back(ReadEventItem(events[i], i, now_ms));
  }
  return items;
}

std::string IngestResultJson(const IngestResult& result) {
  std::string out;
  out.reserve(80 + result.results.size() * 72);
  out += "{\"results\":[";
  for (size_t i = 0; i < result.results.size(); ++i) {
    const EventResult& e = result.results[i];
    out += i ? ",{\"event_id\":" : "{\"event_id\":";
    if (e.event_id.empty()) {
      out += "null";
    } else {
      AppendJsonString(out, e.event_id);
    }
    out += ",\"status\":\"";
    out += EventOutcomeName(e.outcome);
    out += '"';
    if (e.outcome == EventOutcome::kAccepted) {
      out += ",\"person_id\":";
      AppendJsonInt(out, e.person_id);
      if (e.link != LinkState::kLinked) {
        out += ",\"link\":\"";
        out += LinkStateName(e.link);
        out += '"';
      }
    } else if (e.outcome == EventOutcome::kRejected) {
      out += ",\"code\":";
      AppendJsonString(out, ErrorCodeName(e.error.code()));
      out += ",\"message\":";
      AppendJsonString(out, e.error.message());
      if (!e.error.field().empty()) {
        out += ",\"field\":";
        AppendJsonString(out, e.error.field());
      }
    }
    out += '}';
  }
  out += "],\"accepted\":";
  AppendJsonInt(out, result.accepted);
  out += ",\"duplicates\":";
  AppendJsonInt(out, result.duplicates);
  out += ",\"rejected\":";
  AppendJsonInt(out, result.rejected);
  out += '}';
  return out;
}

// ---- person resolution -------------------------------------------------------------------------

Status KnownIds::Load(Conn& c, Identity& identity, int64_t tenant_id,
                      const std::vector<std::string>& canonical) {
  std::vector<std::string_view> ids(canonical.begin(), canonical.end());
  std::vector<std::optional<int64_t>> owners;
  RETURN_IF_ERROR(identity.OwnersInWrite(c, tenant_id, ids, owners));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (owners[i]) map_[canonical[i]] = *owners[i];
  }
  return Status::Ok();
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
                     CreateOriginPerson(c, tenant_id, channel_id, ts, std::nullopt, now,
                                        identity.NewPersonRow()));
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
  return IngestItems(tenant_id, items);
}

StatusOr<IngestResult> Events::IngestItems(int64_t tenant_id, std::vector<EventItem>& items) {
  if (log_) RETURN_IF_ERROR(WaitForRoom());  // before any lock is taken
  std::shared_ptr<void> scope = fact_scope_ ? fact_scope_(tenant_id) : nullptr;
  const int64_t started_at = NowMs();
  auto r = log_ ? IngestToLog(tenant_id, items) : IngestToStore(tenant_id, items);
  if (r.ok()) r->started_at = started_at;
  if (r.ok() && observer_ && r->accepted > 0) observer_(tenant_id, items, *r);
  return r;
}

StatusOr<IngestResult> Events::IngestToStore(int64_t tenant_id, std::vector<EventItem>& items) {
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
    RETURN_IF_ERROR(known.Load(c, identity_, tenant_id, ids));

    std::unordered_set<std::string_view> taken;  // event ids accepted earlier in this batch
    std::vector<size_t> accepted;
    std::vector<std::optional<int64_t>> channel_of(items.size());
    std::vector<int64_t> origin_of(items.size());  // the person row each event is attached to
    // Per person, the latest channel-moving event of the batch: only it can move the last channel.
    ChannelMoves moves;
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
          res.error = UnknownChannelState(*e.channel_state, i);
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
      res.channel_id = channel_of[i];
      if (channel_of[i] && e.spec && e.spec->moves_last_channel) {
        NoteMove(moves, who.person_id, e.ts, *channel_of[i]);
      }
    }

    RETURN_IF_ERROR(InsertEventRows(c, tenant_id, items, accepted, origin_of, channel_of, now));
    // After the insert, so that the "no later touch stored" check sees this batch's events too.
    RETURN_IF_ERROR(MoveLastChannels(c, identity_, tenant_id, moves, now));
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

// ---- the event log (SQLite deployments, decision 0007) ----------------------------------------

namespace {

struct TimelineEntry {
  int64_t ts;
  eventlog::Locator locator;
};

// Where each person row's log events are: per row, a list of entries linked newest to oldest
// arrival, the entries appended to chunks one after another. A vector per row instead grew by
// doubling for every few events of a person — an allocation, a copy and a freed block at random
// in the ingest path — and its header alone took as much as the row's map slot does now.
class TimelineIndex {
 public:
  void Prefetch(int64_t row) const { heads_.Prefetch(row); }
  void Add(int64_t row, const TimelineEntry& e) {
    if (size_ % kChunkEntries == 0) chunks_.emplace_back(new Linked[kChunkEntries]);
    uint64_t& head = heads_[row];
    chunks_.back()[size_ % kChunkEntries] = Linked{e, head};
    head = ++size_;
  }
  // Every entry of `row`, newest arrival first.
  template <typename Fn>
  void ForEach(int64_t row, Fn&& fn) const {
    const uint64_t* head = heads_.find(row);
    if (!head) return;
    for (uint64_t n = *head; n != 0;) {
      const Linked& l = chunks_[(n - 1) / kChunkEntries][(n - 1) % kChunkEntries];
      fn(l.entry);
      n = l.next;
    }
  }
  size_t rows() const { return heads_.size(); }

 private:
  // 24 KiB: what a tenant with a few events costs (the index is per tenant).
  static constexpr size_t kChunkEntries = 1024;
  struct Linked {
    TimelineEntry entry;
    uint64_t next;  // the row's previous entry, numbered from 1; 0: none
  };
  std::vector<std::unique_ptr<Linked[]>> chunks_;
  size_t size_ = 0;
  PerRow<uint64_t> heads_;  // row → its newest entry's number
};

StoredEvent StoredFromRecord(const EventRecord& r) {
  StoredEvent e;
  e.event_id = std::string(r.event_id);
  e.person_id = r.person_id;
  e.type = std::string(r.type);
  e.ts = r.ts;
  e.touchpoint = std::string(r.touchpoint);
  e.channel_id = r.channel_id;
  e.ids_json = std::string(r.ids_json);
  e.properties = std::string(r.properties);
  e.received_at = r.received_at;
  return e;
}

// Encodes `records` and appends them to the log as one batch (durable when this returns).
StatusOr<eventlog::AppendResult> AppendRecords(
    eventlog::Log& log, const std::vector<EventRecord>& records,
    const std::function<void(uint64_t first_seq)>& queued = {}) {
  // The thread's buffers of its last batch, reused (the log copies the payloads before Append
  // returns): a batch's records are tens of kilobytes.
  thread_local std::string buf;
  thread_local std::vector<size_t> ends;
  thread_local std::vector<std::string_view> payloads;
  buf.clear();
  ends.clear();
  payloads.clear();
  for (const EventRecord& r : records) {
    EncodeEventRecord(r, buf);
    ends.push_back(buf.size());
  }
  for (size_t j = 0, start = 0; j < ends.size(); start = ends[j++]) {
    payloads.emplace_back(buf.data() + start, ends[j] - start);
  }
  return log.Append(payloads, queued);
}

// Newest first by (ts, event_id), as timelines are ordered.
bool NewerFirst(const StoredEvent& a, const StoredEvent& b) {
  if (a.ts != b.ts) return a.ts > b.ts;
  return a.event_id > b.event_id;
}

}  // namespace

// One tenant's deduplication set and timeline index.
struct Events::TenantLog {
  std::mutex mu;
  std::condition_variable done;  // notified when events in flight become durable or are dropped
  EventIdSet stored;             // durable events: in the log or the table
  boost::unordered_flat_set<EventIdHash, EventIdHashHasher> in_flight;  // reserved by a batch
  TimelineIndex timeline;                                               // row → its log events
  uint64_t records = 0;
  std::mutex channels_mu;
  std::unordered_map<std::string, int64_t> channels;  // state → channel, as found in the store
};

// One batch's work owed to the store (decision 0007): what its ingest decided in memory.
struct Events::Owed {
  int64_t tenant_id = 0;
  uint64_t last_seq = 0;  // its last log record (0: none reached the log)
  int64_t now = 0;
  struct NewRow {
    int64_t id;
    std::optional<int64_t> channel;
    int64_t acquired_at;
  };
  struct NewId {  // its canonical id and kind are in `id_text`
    size_t at;
    uint32_t canonical_size, kind_size;
    int64_t row;
  };
  struct ChannelEvent {  // a `touches` row
    std::string event_id, type;
    int64_t row, ts, channel;
    bool moves;
  };
  struct Link {
    std::string home, other, reason;
    size_t item;  // the batch element it came from
  };
  std::vector<NewRow> rows;
  std::vector<NewId> ids;
  std::string id_text;  // the new ids' strings, one after another: one allocation, not one an id
  std::vector<ChannelEvent> channel_events;
  std::vector<Link> links;
  std::vector<LinkState> link_results;  // per link, once applied
  enum class State { kQueued, kApplying, kApplied } state = State::kQueued;
  void AddId(std::string_view canonical, std::string_view kind, int64_t row) {
    ids.push_back({id_text.size(), static_cast<uint32_t>(canonical.size()),
                   static_cast<uint32_t>(kind.size()), row});
    id_text += canonical;
    id_text += kind;
  }
  // Valid while the batch is not added to (once it is owed, it is not).
  std::string_view canonical(const NewId& n) const {
    return std::string_view(id_text).substr(n.at, n.canonical_size);
  }
  std::string_view kind(const NewId& n) const {
    return std::string_view(id_text).substr(n.at + n.canonical_size, n.kind_size);
  }
  bool empty() const {
    return rows.empty() && ids.empty() && channel_events.empty() && links.empty();
  }
  size_t row_count() const {
    return rows.size() + ids.size() + channel_events.size() + links.size();
  }
};

struct Events::LogState {
  std::unique_ptr<eventlog::Log> log;
  std::mutex mu;  // guards the map (each TenantLog has its own lock)
  std::unordered_map<int64_t, std::unique_ptr<TenantLog>> tenants;

  // The applier. `owed` holds, in log order, every batch's work not yet durable in the store.
  std::mutex apply_mu;
  std::condition_variable applier_cv;  // wakes the applier thread
  std::condition_variable applied_cv;  // notified when work becomes durable in the store
  std::deque<std::shared_ptr<Owed>> owed;
  // WriteOwed's parameters, kept from one transaction to the next (only the writer uses them):
  // a transaction's are megabytes, which a fresh vector would fault in page by page.
  std::vector<store::Value> write_values;
  uint64_t owed_total = 0;     // batches ever owed
  uint64_t applied_total = 0;  // of them, durable in the store (a prefix of `owed_total`)
  size_t queued = 0;           // of them, waiting for a write to take them
  size_t owed_rows = 0;        // rows of the batches not yet durable in the store
  size_t max_owed_rows = Events::kDefaultMaxOwedRows;
  bool flush_asked = false;
  bool stopping = false;
  bool paused = false;
  std::thread applier;
};

Events::Events(store::Store& store, Identity& identity) : store_(store), identity_(identity) {}
Events::~Events() { Close(); }

Events::TenantLog& Events::TenantLogOf(int64_t tenant_id) {
  std::lock_guard lock(log_->mu);
  auto& t = log_->tenants[tenant_id];
  if (!t) t = std::make_unique<TenantLog>();
  return *t;
}

Status Events::OpenLog(const std::string& dir) {
  if (log_) return Status(ErrorCode::kInternal, "the event log is open already");
  auto state = std::make_unique<LogState>();
  ASSIGN_OR_RETURN(state->log, eventlog::Log::Open(dir));
  // The last record whose people, ids and rows the store has. A store that never had a mark had
  // them all: ingest wrote them before its records, then.
  const uint64_t durable = state->log->durable_seq();
  std::optional<uint64_t> mark;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT seq FROM event_log_applied WHERE id = 1"));
    if (!r.empty()) mark = static_cast<uint64_t>(r[0].Int(0));
    return Status::Ok();
  }));
  // A mark past the log's end: records the store applied were lost with the log's torn tail (they
  // were never acknowledged); the log numbers its next records from its end again.
  if (!mark || *mark > durable) {
    RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
      return c
          .Exec(mark ? "UPDATE event_log_applied SET seq = ? WHERE id = 1"
                     : "INSERT INTO event_log_applied (id, seq) VALUES (1, ?)",
                {static_cast<int64_t>(durable)})
          .status();
    }));
    mark = durable;
  }
  std::vector<std::string> replay;
  std::vector<uint64_t> replay_seqs;
  auto tenant = [&](int64_t id) -> TenantLog& {
    auto& t = state->tenants[id];
    if (!t) t = std::make_unique<TenantLog>();
    return *t;
  };
  RETURN_IF_ERROR(state->log->Scan(
      1, [&](uint64_t seq, eventlog::Locator locator, std::string_view payload) -> Status {
        auto r = DecodeEventRecord(payload);
        if (!r.ok()) {
          return Status(
              ErrorCode::kInternal,
              "event log " + dir + ", record " + std::to_string(seq) + ": " + r.status().message());
        }
        TenantLog& t = tenant(r->tenant_id);
        t.stored.Insert(HashEventId(r->event_id));
        t.timeline.Add(r->person_id, {r->ts, locator});
        ++t.records;
        if (seq > *mark) {
          replay.emplace_back(payload);
          replay_seqs.push_back(seq);
        }
        return Status::Ok();
      }));
  // Events stored as rows: those with a channel (also in the log) and any stored before the log.
  int64_t last_rowid = 0;
  for (;;) {
    size_t got = 0;
    RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
      ASSIGN_OR_RETURN(Rows rows, c.Query("SELECT rowid, tenant_id, event_id FROM events WHERE "
                                          "rowid > ? ORDER BY rowid LIMIT 50000",
                                          {last_rowid}));
      got = rows.size();
      for (const Row& r : rows) {
        last_rowid = r.Int(0);
        tenant(r.Int(1)).stored.Insert(HashEventId(r.Text(2)));
      }
      return Status::Ok();
    }));
    if (got == 0) break;
  }
  log_ = std::move(state);
  log_->applier = std::thread([this] {
    NameThisThread("siyu-applier");
    ApplierLoop();
  });
  store_.SetDeferredWork([this](Conn& c) { return ApplyOwed(c); }, [this] { Barrier(); });
  identity_.SetDeferred([this](Conn& c) { return ApplyOwed(c); },
                        [this](int64_t tenant_id, std::vector<identity::IdRow>& out) {
                          std::lock_guard lock(log_->apply_mu);
                          for (const auto& o : log_->owed) {
                            if (o->tenant_id != tenant_id || o->state == Owed::State::kApplied) {
                              continue;
                            }
                            for (const Owed::NewId& n : o->ids) {
                              out.push_back({o->canonical(n), n.row});
                            }
                          }
                        });
  RETURN_IF_ERROR(Replay(*mark, replay, replay_seqs));
  // New person rows are numbered here from now on, after every row of the store.
  int64_t max_row = 0;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT MAX(id) FROM people"));
    max_row = r.at(0).Int(0);
    return Status::Ok();
  }));
  identity_.StartPersonRows(max_row + 1);
  return Status::Ok();
}

EventLogStats Events::LogStats() const {
  EventLogStats st;
  if (!log_) return st;
  st.enabled = true;
  eventlog::Stats ls = log_->log->stats();
  st.bytes = ls.bytes;
  st.recovered_bytes = log_->log->recovery().dropped_bytes;
  std::lock_guard lock(log_->mu);
  for (const auto& [id, t] : log_->tenants) {
    std::lock_guard tl(t->mu);
    st.records += t->records;
    st.dedup_ids += t->stored.size();
    st.dedup_bytes += t->stored.memory_bytes();
    st.timeline_rows += t->timeline.rows();
  }
  return st;
}

// ---- the applier (decision 0007) ---------------------------------------------------------------

namespace {
// A batch's work waits at most this (a read or a link asks for it at once). Longer transactions
// share more of their random-key index pages: 0.5 s → 2 s took the writer from 5.1 to 4.6 µs an
// event over a 60 s run.
constexpr auto kApplyEvery = std::chrono::milliseconds(2000);
constexpr size_t kApplyAtOnce = 4096;                    // ...or until this many batches wait
constexpr auto kAppliedWait = std::chrono::seconds(30);  // the longest a batch waits for it
// The longest the applier lets the store make ready for its transaction
// (Store::WaitBeforeLargeWrite).
constexpr auto kApplierWaitsForStoreAtMost = std::chrono::milliseconds(2000);
}  // namespace

Status Events::ApplyOwed(Conn& c) {
  LogState& ls = *log_;
  std::vector<std::shared_ptr<Owed>> take;
  {
    std::lock_guard lock(ls.apply_mu);
    if (ls.paused) return Status::Ok();
    for (const auto& o : ls.owed) {
      if (o->state != Owed::State::kQueued) continue;
      o->state = Owed::State::kApplying;
      take.push_back(o);
    }
    ls.queued = 0;
  }
  if (take.empty()) return Status::Ok();
  auto requeue = [this, take] {
    std::lock_guard lock(log_->apply_mu);
    for (const auto& o : take) {
      if (o->state != Owed::State::kApplying) continue;
      o->state = Owed::State::kQueued;
      ++log_->queued;
    }
  };
  Status s = WriteOwed(c, take);
  if (!s.ok()) {
    requeue();
    return s;
  }
  c.OnRollback([requeue](Conn&) { requeue(); });
  c.OnDurable([this, take, requeue](const Status& durable) {
    if (!durable.ok()) {
      requeue();
      return;
    }
    LogState& st = *log_;
    {
      std::lock_guard lock(st.apply_mu);
      for (const auto& o : take) {
        o->state = Owed::State::kApplied;
        st.owed_rows -= o->row_count();
      }
      while (!st.owed.empty() && st.owed.front()->state == Owed::State::kApplied) {
        st.owed.pop_front();
        ++st.applied_total;
      }
    }
    st.applied_cv.notify_all();
  });
  return Status::Ok();
}

Status Events::WriteOwed(Conn& c, const std::vector<std::shared_ptr<Owed>>& owed) {
  // People first, then their ids, then links, then the rows of events with a channel and the
  // last-channel moves they make (which read those rows).
  std::vector<store::Value>& v = log_->write_values;
  auto put = [&v](auto&&... values) {
    (v.emplace_back(std::forward<decltype(values)>(values)), ...);
  };
  v.clear();
  for (const auto& o : owed) {
    for (const Owed::NewRow& r : o->rows) {
      store::Value ch = r.channel ? store::Value(*r.channel) : store::Value(nullptr);
      put(r.id, o->tenant_id, ch, ch, r.acquired_at, o->now, o->now);
    }
  }
  RETURN_IF_ERROR(InsertOwedPeople().Run(c, 7, v));
  v.clear();
  // Ids in the table's key order (person, then the id's hash): a new person's ids go at its end,
  // and the pages they land on are visited in order, each while it is at hand.
  struct KeyedId {
    int64_t tenant_id;
    IdKey key;
    const Owed* owed;
    const Owed::NewId* id;
  };
  std::vector<KeyedId> ids;
  for (const auto& o : owed) {
    for (const Owed::NewId& n : o->ids) {
      ids.push_back({o->tenant_id, IdKeyOf(o->canonical(n)), o.get(), &n});
    }
  }
  std::sort(ids.begin(), ids.end(), [](const KeyedId& a, const KeyedId& b) {
    if (a.tenant_id != b.tenant_id) return a.tenant_id < b.tenant_id;
    if (a.id->row != b.id->row) return a.id->row < b.id->row;
    return a.key < b.key;
  });
  for (const KeyedId& k : ids) {
    put(k.tenant_id, k.key.hi, k.key.lo, store::TextRef{k.owed->canonical(*k.id)},
        store::TextRef{k.owed->kind(*k.id)}, k.id->row, k.owed->now);
  }
  RETURN_IF_ERROR(InsertOwedIds().Run(c, 7, v));
  v.clear();
  // Then batch by batch, as ingest ordered them: its links, its rows of events with a channel and
  // the last-channel moves they make (a move reads the rows stored before it).
  const int64_t now = NowMs();
  for (const auto& o : owed) {
    o->link_results.assign(o->links.size(), LinkState::kLinked);
    for (size_t k = 0; k < o->links.size(); ++k) {
      const Owed::Link& l = o->links[k];
      ASSIGN_OR_RETURN(identity::LinkOutcome out,
                       identity_.LinkInWrite(c, o->tenant_id, l.home, l.other, l.reason, o->now));
      if (out.result == identity::LinkResult::kLinked) o->link_results[k] = LinkState::kMerged;
      if (out.result == identity::LinkResult::kQuarantined) {
        o->link_results[k] = LinkState::kQuarantined;
      }
    }
    if (o->channel_events.empty()) continue;
    ChannelMoves moves;
    for (const Owed::ChannelEvent& e : o->channel_events) {
      put(o->tenant_id, e.row, e.ts, store::TextRef{e.event_id}, store::TextRef{e.type}, e.channel);
      if (e.moves) {
        NoteMove(moves, identity_.CanonicalInWrite(c, o->tenant_id, e.row), e.ts, e.channel);
      }
    }
    RETURN_IF_ERROR(InsertTouches().Run(c, 6, v));
    v.clear();
    RETURN_IF_ERROR(MoveLastChannels(c, identity_, o->tenant_id, moves, now));
  }
  uint64_t last = 0;
  for (const auto& o : owed) last = std::max(last, o->last_seq);
  if (last > 0) {
    RETURN_IF_ERROR(c.Exec("UPDATE event_log_applied SET seq = ? WHERE id = 1 AND seq < ?",
                           {static_cast<int64_t>(last), static_cast<int64_t>(last)})
                        .status());
  }
  return Status::Ok();
}

void Events::Owe(std::shared_ptr<Owed> o) {
  LogState& ls = *log_;
  bool wake;
  {
    std::lock_guard lock(ls.apply_mu);
    ls.owed_rows += o->row_count();
    ls.owed.push_back(std::move(o));
    ++ls.owed_total;
    // The applier waits for the first batch, then for a full transaction's worth (or the clock).
    wake = ++ls.queued == 1 || ls.queued == kApplyAtOnce;
  }
  if (wake) ls.applier_cv.notify_one();
}

void Events::ApplierLoop() {
  LogState& ls = *log_;
  std::unique_lock lock(ls.apply_mu);
  for (;;) {
    ls.applier_cv.wait(lock, [&] { return ls.stopping || (!ls.paused && ls.queued > 0); });
    if (ls.stopping) return;
    // A little more work makes a larger transaction: more rows share each page written.
    ls.applier_cv.wait_for(lock, kApplyEvery, [&] {
      return ls.stopping || ls.flush_asked || ls.queued >= kApplyAtOnce;
    });
    ls.flush_asked = false;
    lock.unlock();
    // The store may first make ready for a large write (a SQLite WAL that is to start over).
    store_.WaitBeforeLargeWrite(kApplierWaitsForStoreAtMost);
    // A transaction of the store's prologue (ApplyOwed) alone.
    Status s = store_.WriteDeferredWork();
    if (!s.ok()) {
      spdlog::error("events: writing the event log's people and ids to the store failed: {}",
                    s.ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    lock.lock();
  }
}

uint64_t Events::OwedTicket() const {
  if (!log_) return 0;
  std::lock_guard lock(log_->apply_mu);
  return log_->owed_total;
}

bool Events::StoreHas(uint64_t ticket) const {
  if (!log_) return true;
  std::lock_guard lock(log_->apply_mu);
  return log_->applied_total >= ticket;
}

void Events::Barrier() {
  LogState& ls = *log_;
  std::unique_lock lock(ls.apply_mu);
  if (ls.paused) return;
  const uint64_t ticket = ls.owed_total;
  if (ls.applied_total >= ticket) return;
  ls.flush_asked = true;
  ls.applier_cv.notify_one();
  if (!ls.applied_cv.wait_for(lock, kAppliedWait, [&] { return ls.applied_total >= ticket; })) {
    spdlog::warn("events: a store read waited {} s for the event log's people to be written",
                 std::chrono::duration_cast<std::chrono::seconds>(kAppliedWait).count());
  }
}

Status Events::WaitForRoom() {
  LogState& ls = *log_;
  // A write cannot wait for the applier, which runs in the store's writes.
  if (store::Store::OnWriterThread()) return Status::Ok();
  std::unique_lock lock(ls.apply_mu);
  auto room = [&] { return ls.stopping || ls.paused || ls.owed_rows <= ls.max_owed_rows; };
  if (room()) return Status::Ok();
  ls.flush_asked = true;
  ls.applier_cv.notify_one();
  if (!ls.applied_cv.wait_for(lock, kAppliedWait, room)) {
    return Status(ErrorCode::kStoreUnavailable,
                  "the store is behind the event log; retry the batch in a few seconds");
  }
  return Status::Ok();
}

void Events::SetMaxOwedRows(size_t rows) {
  if (!log_) return;
  {
    std::lock_guard lock(log_->apply_mu);
    log_->max_owed_rows = rows;
  }
  log_->applied_cv.notify_all();
}

void Events::PauseApplierForTest(bool paused) {
  if (!log_) return;
  {
    std::lock_guard lock(log_->apply_mu);
    log_->paused = paused;
    log_->flush_asked = true;
  }
  log_->applier_cv.notify_one();
  log_->applied_cv.notify_all();  // ingest does not wait for a paused applier
}

void Events::Close() {
  if (!log_ || !log_->applier.joinable()) return;
  bool paused;
  {
    std::lock_guard lock(log_->apply_mu);
    paused = log_->paused;
  }
  // What is owed goes to the store now (a paused applier leaves it to the next OpenLog).
  if (!paused) (void)store_.Write([](Conn&) { return Status::Ok(); });
  {
    std::lock_guard lock(log_->apply_mu);
    log_->stopping = true;
  }
  log_->applier_cv.notify_one();
  log_->applied_cv.notify_all();
  log_->applier.join();
  store_.SetDeferredWork(nullptr, nullptr);
  identity_.SetDeferred(nullptr, nullptr);
}

Status Events::Replay(uint64_t applied, const std::vector<std::string>& payloads,
                      const std::vector<uint64_t>& seqs) {
  if (payloads.empty()) return Status::Ok();
  // Which of the records' person rows the store has (rows are named within their tenant).
  std::unordered_map<int64_t, std::unordered_set<std::string>> rows_needed;  // tenant → rows
  std::unordered_set<int64_t> rows_stored;
  std::vector<EventRecord> records;
  records.reserve(payloads.size());
  for (const std::string& p : payloads) {
    ASSIGN_OR_RETURN(EventRecord r, DecodeEventRecord(p));
    rows_needed[r.tenant_id].insert(std::to_string(r.person_id));
    records.push_back(r);
  }
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    rows_stored.clear();
    for (const auto& [tenant_id, rows] : rows_needed) {
      RETURN_IF_ERROR(QueryIn(c, "SELECT id FROM people WHERE tenant_id = ? AND id IN ", tenant_id,
                              std::vector<std::string>(rows.begin(), rows.end()),
                              [&](const Row& r) { rows_stored.insert(r.Int(0)); }));
    }
    return Status::Ok();
  }));
  // Record by record, as ingest decided them: a row the store lacks is created by the first
  // record naming it; ids the graph lacks go to the record's row; ids of other people are linked.
  const int64_t now = NowMs();
  for (size_t k = 0; k < records.size(); ++k) {
    const EventRecord& r = records[k];
    auto o = std::make_shared<Owed>();
    o->tenant_id = r.tenant_id;
    o->last_seq = seqs[k];
    o->now = now;
    if (rows_stored.insert(r.person_id).second) {
      o->rows.push_back({r.person_id, r.channel_id, r.ts});
    }
    boost::system::error_code ec;
    json::value ids = json::parse(r.ids_json, ec);
    if (ec || !ids.is_array()) {
      return Internal("event log record " + std::to_string(seqs[k]) + ": its ids are not a list");
    }
    std::vector<ExternalId> parsed;
    for (const json::value& v : ids.as_array()) {
      if (!v.is_string())
        return Internal("event log record " + std::to_string(seqs[k]) + ": an id is not text");
      ASSIGN_OR_RETURN(ExternalId id, ParseEventPersonId(std::string_view(v.as_string()), "ids"));
      parsed.push_back(std::move(id));
    }
    std::vector<std::string_view> views;
    for (const ExternalId& id : parsed) views.push_back(id.canonical);
    RETURN_IF_ERROR(identity_.Assign(
        r.tenant_id, [&](identity::IdentityGraph& g, Identity::AssignLock&) -> Status {
          std::vector<std::optional<identity::IdentityGraph::IdOwner>> owners;
          g.ResolveOwners(views, owners);
          const int64_t home_person = g.ResolvePerson(r.person_id).value_or(r.person_id);
          std::optional<size_t> home, first_new;
          std::vector<identity::IdRow> added;
          for (size_t i = 0; i < parsed.size(); ++i) {
            if (!owners[i]) {
              o->AddId(parsed[i].canonical, parsed[i].kind, r.person_id);
              added.push_back({parsed[i].canonical, r.person_id});
              if (!first_new) first_new = i;
            } else if (owners[i]->origin_person == r.person_id && !home) {
              home = i;
            }
          }
          RETURN_IF_ERROR(g.AddIds(added));
          if (!home) home = first_new;
          for (size_t i = 0; i < parsed.size(); ++i) {
            if (home && owners[i] && owners[i]->person != home_person) {
              o->links.push_back({parsed[*home].canonical, parsed[i].canonical,
                                  "event " + std::string(r.type) + " " + std::string(r.event_id),
                                  0});
            }
          }
          return Status::Ok();
        }));
    if (r.channel_id) {
      const EventTypeSpec* spec = FindEventType(r.type);
      o->channel_events.push_back({std::string(r.event_id), std::string(r.type), r.person_id, r.ts,
                                   *r.channel_id, spec && spec->moves_last_channel});
    }
    Owe(std::move(o));
  }
  spdlog::info("events: {} event log records after the store's mark {} applied again",
               records.size(), applied);
  return store_.Write([](Conn&) { return Status::Ok(); });
}

StatusOr<IngestResult> Events::IngestToLog(int64_t tenant_id, std::vector<EventItem>& items) {
  IngestResult out;
  out.results.resize(items.size());
  std::vector<char> live(items.size(), 0);  // valid so far, not yet decided
  std::vector<std::string> states;
  for (size_t i = 0; i < items.size(); ++i) {
    EventResult& res = out.results[i];
    // The item's copy of its id goes to the answer; the event keeps its own.
    res.event_id = std::move(items[i].event_id);
    if (!items[i].rejected.ok()) {
      res.outcome = EventOutcome::kRejected;
      res.error = items[i].rejected;
      continue;
    }
    live[i] = 1;
    const auto& st = items[i].event.channel_state;
    if (st && std::find(states.begin(), states.end(), *st) == states.end()) states.push_back(*st);
  }

  TenantLog& tl = TenantLogOf(tenant_id);

  // The channels the batch names. A channel's state never changes and channels are not deleted,
  // so what was found once is kept; states not known yet are read from the store (channels are
  // created before their events arrive).
  std::vector<std::optional<int64_t>> channel_of(items.size());
  if (!states.empty()) {
    std::unordered_map<std::string, int64_t> channels;
    std::vector<std::string> unknown;
    {
      std::lock_guard lock(tl.channels_mu);
      for (const std::string& st : states) {
        if (auto it = tl.channels.find(st); it != tl.channels.end()) {
          channels.emplace(st, it->second);
        } else {
          unknown.push_back(st);
        }
      }
    }
    if (!unknown.empty()) {
      std::unordered_map<std::string, int64_t> found;
      RETURN_IF_ERROR(store_.ReadNow([&](Conn& c) -> Status {
        found.clear();
        return QueryIn(c, "SELECT state, id FROM channels WHERE tenant_id = ? AND state IN ",
                       tenant_id, unknown, [&](const Row& r) { found[r.Text(0)] = r.Int(1); });
      }));
      std::lock_guard lock(tl.channels_mu);
      for (const auto& [st, id] : found) {
        tl.channels.emplace(st, id);
        channels.emplace(st, id);
      }
    }
    for (size_t i = 0; i < items.size(); ++i) {
      const auto& st = items[i].event.channel_state;
      if (!live[i] || !st) continue;
      auto ch = channels.find(*st);
      if (ch == channels.end()) {
        live[i] = 0;
        out.results[i].outcome = EventOutcome::kRejected;
        out.results[i].error = UnknownChannelState(*st, i);
      } else {
        channel_of[i] = ch->second;
      }
    }
  }

  // Reserve the new event ids. An id stored already, or reserved earlier in this batch, is a
  // duplicate; one that another batch has in flight is answered once that batch is done.
  std::vector<EventIdHash> hash(items.size());
  // For each live event, the previous live event of the batch with the same id (or none).
  constexpr size_t kNoEarlier = SIZE_MAX;
  std::vector<size_t> earlier(items.size(), kNoEarlier);
  {
    std::vector<std::pair<EventIdHash, size_t>> by_hash;
    by_hash.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      if (!live[i]) continue;
      hash[i] = HashEventId(items[i].event.event_id);
      by_hash.emplace_back(hash[i], i);
    }
    std::sort(by_hash.begin(), by_hash.end(), [](const auto& a, const auto& b) {
      if (a.first.hi != b.first.hi) return a.first.hi < b.first.hi;
      if (a.first.lo != b.first.lo) return a.first.lo < b.first.lo;
      return a.second < b.second;
    });
    for (size_t k = 1; k < by_hash.size(); ++k) {
      if (by_hash[k].first == by_hash[k - 1].first)
        earlier[by_hash[k].second] = by_hash[k - 1].second;
    }
  }
  std::vector<size_t> mine, waiting;
  {
    std::vector<char> reserved(items.size(), 0);
    std::lock_guard lock(tl.mu);
    for (size_t i = 0; i < items.size(); ++i) {
      if (live[i]) tl.stored.Prefetch(hash[i]);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (!live[i]) continue;
      if (tl.stored.Contains(hash[i]) || (earlier[i] != kNoEarlier && reserved[earlier[i]])) {
        out.results[i].outcome = EventOutcome::kDuplicate;
      } else if (tl.in_flight.count(hash[i])) {
        waiting.push_back(i);
      } else {
        tl.in_flight.insert(hash[i]);
        reserved[i] = 1;
        mine.push_back(i);
      }
    }
  }

  std::vector<int64_t> origin_of(items.size());
  eventlog::AppendResult appended;
  bool durable = false;
  // Whatever happens below, the reservations end: as stored events, or dropped.
  struct Release {
    TenantLog& tl;
    const std::vector<size_t>& mine;
    const std::vector<EventIdHash>& hash;
    const std::vector<EventItem>& items;
    const std::vector<int64_t>& origin_of;
    const eventlog::AppendResult& appended;
    const bool& durable;
    ~Release() {
      {
        std::lock_guard lock(tl.mu);
        if (durable) {
          for (size_t i : mine) {
            tl.stored.Prefetch(hash[i]);
            tl.timeline.Prefetch(origin_of[i]);
          }
        }
        for (size_t j = 0; j < mine.size(); ++j) {
          const size_t i = mine[j];
          tl.in_flight.erase(hash[i]);
          if (!durable) continue;
          tl.stored.Insert(hash[i]);
          tl.timeline.Add(origin_of[i], {items[i].event.ts, appended.locators[j]});
        }
        if (durable) tl.records += mine.size();
      }
      tl.done.notify_all();
    }
  };
  {
    Release release{tl, mine, hash, items, origin_of, appended, durable};

    // Who each event belongs to, decided in the graph under the tenant's assign lock: the row of
    // its first known id, or a new row; its unknown ids go to that row; ids of other people are
    // links. What the store must learn of it is owed (written by the applier), and the records
    // are queued in the log before the lock is let go, so that a batch that sees this batch's
    // new people in the graph comes after it in the log: acknowledged only once this one is
    // durable too.
    auto owed = std::make_shared<Owed>();
    owed->tenant_id = tenant_id;
    const int64_t now = NowMs();
    owed->now = now;
    // Room for a new id every other event, more than a batch usually brings: the list is not
    // regrown as it fills, and an owed batch, kept until the store has it, wastes little.
    owed->ids.reserve(mine.size() / 2 + 8);
    owed->id_text.reserve(owed->ids.capacity() * 48);
    std::vector<EventRecord> records;
    records.reserve(mine.size());
    std::vector<size_t> first_link(mine.size() + 1, 0);
    Status assigned = identity_.Assign(
        tenant_id, [&](identity::IdentityGraph& g, Identity::AssignLock& lock) -> Status {
          std::vector<std::string_view> ids;
          for (size_t i : mine) {
            for (const ExternalId& id : items[i].event.ids) ids.push_back(id.canonical);
          }
          std::vector<std::optional<identity::IdentityGraph::IdOwner>> owners;
          g.ResolveOwners(ids, owners);
          // Ids this batch attaches: their row (and person, which is the row's at the start).
          boost::unordered_flat_map<std::string_view, identity::IdentityGraph::IdOwner> fresh;
          fresh.reserve(ids.size());
          std::vector<identity::IdRow> added;
          size_t k = 0;
          for (size_t j = 0; j < mine.size(); ++j) {
            const size_t i = mine[j];
            const EventIn& e = items[i].event;
            auto owner_of = [&](size_t at) -> std::optional<identity::IdentityGraph::IdOwner> {
              if (owners[at]) return owners[at];
              if (auto it = fresh.find(ids[at]); it != fresh.end()) return it->second;
              return std::nullopt;
            };
            std::optional<size_t> home;
            for (size_t at = k; at < k + e.ids.size(); ++at) {
              if (owner_of(at)) {
                home = at;
                break;
              }
            }
            identity::IdentityGraph::IdOwner who;
            if (home) {
              who = *owner_of(*home);
            } else {
              std::optional<int64_t> row = identity_.NewPersonRow();
              if (!row) return Internal("person rows are not numbered by the event log");
              who = {*row, *row};
              owed->rows.push_back({*row, channel_of[i], e.ts});
            }
            first_link[j] = owed->links.size();
            for (size_t at = k; at < k + e.ids.size(); ++at) {
              auto o = owner_of(at);
              if (!o) {
                fresh.emplace(ids[at], who);
                const ExternalId& id = e.ids[at - k];
                owed->AddId(id.canonical, id.kind, who.origin_person);
                added.push_back({id.canonical, who.origin_person});
              } else if (o->person != who.person) {
                owed->links.push_back({std::string(ids[*home]), std::string(ids[at]),
                                       "event " + e.type + " " + e.event_id, i});
              }
            }
            k += e.ids.size();
            origin_of[i] = who.origin_person;
            if (channel_of[i]) {
              owed->channel_events.push_back({e.event_id, e.type, who.origin_person, e.ts,
                                              *channel_of[i],
                                              e.spec && e.spec->moves_last_channel});
            }
            records.push_back(EventRecord{tenant_id, who.origin_person, e.ts, now, channel_of[i],
                                          e.event_id, e.type, e.touchpoint, e.ids_json,
                                          e.properties});
          }
          first_link[mine.size()] = owed->links.size();
          RETURN_IF_ERROR(g.AddIds(added));
          auto owe = [&] {
            if (!owed->empty()) Owe(owed);
          };
          if (records.empty()) {
            owe();
            return Status::Ok();
          }
          bool queued = false;
          auto r = AppendRecords(*log_->log, records, [&](uint64_t first_seq) {
            owed->last_seq = first_seq + records.size() - 1;
            owe();
            queued = true;
            lock.unlock();
          });
          // The graph took the batch's people: the store takes them even if the log did not.
          if (!queued) owe();
          if (!r.ok()) return r.status();
          appended = std::move(r).value();
          durable = true;
          return Status::Ok();
        });
    RETURN_IF_ERROR(assigned);
    if (!owed->links.empty()) {
      // Links are decided by the applier (the guard reads the store's state): wait for them.
      std::unique_lock lock(log_->apply_mu);
      log_->flush_asked = true;
      log_->applier_cv.notify_one();
      if (!log_->applied_cv.wait_for(lock, kAppliedWait,
                                     [&] { return owed->state == Owed::State::kApplied; })) {
        return Status(ErrorCode::kStoreUnavailable,
                      "the events are stored but the links they make could not be written yet; "
                      "send the batch again later (its events will be answered duplicate)");
      }
      for (size_t j = 0; j < mine.size(); ++j) {
        LinkState st = LinkState::kLinked;
        for (size_t l = first_link[j]; l < first_link[j + 1]; ++l) {
          if (owed->link_results[l] == LinkState::kQuarantined) {
            st = LinkState::kQuarantined;
          } else if (owed->link_results[l] == LinkState::kMerged && st != LinkState::kQuarantined) {
            st = LinkState::kMerged;
          }
        }
        out.results[mine[j]].link = st;
      }
    }
  }
  {
    // The person each accepted event belongs to now (after any merge meanwhile).
    std::vector<int64_t> rows, persons(mine.size());
    rows.reserve(mine.size());
    for (size_t i : mine) rows.push_back(origin_of[i]);
    identity_.CanonicalOfMany(tenant_id, rows, persons);
    for (size_t j = 0; j < mine.size(); ++j) {
      const size_t i = mine[j];
      out.results[i].outcome = EventOutcome::kAccepted;
      out.results[i].person_id = persons[j];
      out.results[i].channel_id = channel_of[i];
    }
  }

  // Events another batch had in flight: duplicates once it made them durable. If it failed, this
  // batch cannot know them stored: they are refused, to be sent again.
  if (!waiting.empty()) {
    std::unique_lock lock(tl.mu);
    tl.done.wait(lock, [&] {
      return std::none_of(waiting.begin(), waiting.end(),
                          [&](size_t i) { return tl.in_flight.count(hash[i]) > 0; });
    });
    for (size_t i : waiting) {
      if (tl.stored.Contains(hash[i])) {
        out.results[i].outcome = EventOutcome::kDuplicate;
      } else {
        out.results[i].outcome = EventOutcome::kRejected;
        out.results[i].error =
            Status(ErrorCode::kStoreUnavailable,
                   "the same event_id was being stored by another request, which failed; send "
                   "this event again",
                   "events[" + std::to_string(i) + "].event_id");
      }
    }
  }
  for (const EventResult& r : out.results) {
    if (r.outcome == EventOutcome::kAccepted) ++out.accepted;
    if (r.outcome == EventOutcome::kDuplicate) ++out.duplicates;
    if (r.outcome == EventOutcome::kRejected) ++out.rejected;
  }
  return out;
}

Status Events::AppendSystem(int64_t tenant_id, const std::vector<SystemEvent>& events) {
  if (events.empty()) return Status::Ok();
  static std::atomic<uint64_t> counter{0};
  const int64_t now = NowMs();
  // Unique without a look-up: the process's start, a counter and the time.
  static const std::string prefix = "sys-" + RandomBase62(8) + "-";
  std::vector<std::string> ids;
  ids.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    ids.push_back(prefix + std::to_string(now) + "-" + std::to_string(counter.fetch_add(1)));
  }
  if (!log_) {
    return store_.Write([&](Conn& c) -> Status {
      for (size_t i = 0; i < events.size(); ++i) {
        const SystemEvent& e = events[i];
        RETURN_IF_ERROR(c.Exec("INSERT INTO events (tenant_id, event_id, person_id, type, ts, "
                               "touchpoint, channel_id, ids, properties, received_at) VALUES (?, "
                               "?, ?, ?, ?, 'other', NULL, '[]', ?, ?)",
                               {tenant_id, ids[i], e.person_id, e.type, e.ts, e.properties, now})
                            .status());
      }
      return Status::Ok();
    });
  }
  std::vector<EventRecord> records;
  records.reserve(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const SystemEvent& e = events[i];
    records.push_back(EventRecord{tenant_id, e.person_id, e.ts, now, std::nullopt, ids[i], e.type,
                                  "other", "[]", e.properties});
  }
  ASSIGN_OR_RETURN(eventlog::AppendResult appended, AppendRecords(*log_->log, records));
  TenantLog& tl = TenantLogOf(tenant_id);
  std::lock_guard lock(tl.mu);
  for (size_t i = 0; i < events.size(); ++i) {
    tl.stored.Insert(HashEventId(ids[i]));
    tl.timeline.Add(events[i].person_id, {events[i].ts, appended.locators[i]});
  }
  tl.records += events.size();
  return Status::Ok();
}

StatusOr<std::vector<StoredEvent>> Events::LogTimeline(
    int64_t tenant_id, const std::vector<int64_t>& members,
    const std::optional<std::pair<int64_t, std::string>>& before, size_t limit) {
  std::vector<TimelineEntry> entries, ties;  // ties: at the cursor's ts, sorted out by event_id
  {
    TenantLog& tl = TenantLogOf(tenant_id);
    std::lock_guard lock(tl.mu);
    for (int64_t m : members) {
      tl.timeline.ForEach(m, [&](const TimelineEntry& e) {
        if (!before || e.ts < before->first) {
          entries.push_back(e);
        } else if (e.ts == before->first) {
          ties.push_back(e);
        }
      });
    }
  }
  std::vector<StoredEvent> out;
  auto read = [&](const TimelineEntry& e) -> StatusOr<StoredEvent> {
    ASSIGN_OR_RETURN(std::string payload, log_->log->Read(e.locator));
    ASSIGN_OR_RETURN(EventRecord r, DecodeEventRecord(payload));
    return StoredFromRecord(r);
  };
  for (const TimelineEntry& e : ties) {
    ASSIGN_OR_RETURN(StoredEvent ev, read(e));
    if (ev.event_id < before->second) out.push_back(std::move(ev));
  }
  // Of the older ones, the newest that can still make the page, and every entry sharing the
  // oldest ts among them (ties are ordered by event_id, which only the records know).
  const size_t want = limit + 1 > out.size() ? limit + 1 - out.size() : 0;
  auto newer = [](const TimelineEntry& a, const TimelineEntry& b) { return a.ts > b.ts; };
  if (want == 0) {
    entries.clear();
  } else if (entries.size() > want) {
    std::nth_element(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(want - 1),
                     entries.end(), newer);
    const int64_t edge = entries[want - 1].ts;
    auto keep = std::partition(entries.begin(), entries.end(),
                               [&](const TimelineEntry& e) { return e.ts >= edge; });
    entries.erase(keep, entries.end());
  }
  for (const TimelineEntry& e : entries) {
    ASSIGN_OR_RETURN(StoredEvent ev, read(e));
    out.push_back(std::move(ev));
  }
  return out;
}

Status Events::ForEachStored(int64_t tenant_id,
                             const std::function<Status(const StoredEvent&)>& fn) {
  std::unordered_set<std::string> in_table;
  std::string after;  // keyset paging by event_id (the primary key on every backend)
  for (;;) {
    std::vector<StoredEvent> page;
    RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
      page.clear();
      ASSIGN_OR_RETURN(Rows rows, c.Query(std::string("SELECT ") + kEventColumns +
                                              " FROM events WHERE tenant_id = ? AND event_id > ? "
                                              "ORDER BY event_id LIMIT 20000",
                                          {tenant_id, after}));
      for (const Row& r : rows) page.push_back(EventFromRow(r));
      return Status::Ok();
    }));
    if (page.empty()) break;
    after = page.back().event_id;
    for (const StoredEvent& e : page) {
      if (log_) in_table.insert(e.event_id);
      RETURN_IF_ERROR(fn(e));
    }
  }
  if (!log_) return Status::Ok();
  return log_->log->Scan(1, [&](uint64_t, eventlog::Locator, std::string_view payload) -> Status {
    ASSIGN_OR_RETURN(EventRecord r, DecodeEventRecord(payload));
    if (r.tenant_id != tenant_id || in_table.count(std::string(r.event_id))) return Status::Ok();
    return fn(StoredFromRecord(r));
  });
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
  std::vector<StoredEvent> found;  // newest first: limit + 1 of the table's, then the log's
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    found.clear();
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
    for (const Row& r : rows) found.push_back(EventFromRow(r));
    return Status::Ok();
  }));
  if (log_) {
    // Events with a channel are both rows and records: each once.
    std::unordered_set<std::string> seen;
    for (const StoredEvent& e : found) seen.insert(e.event_id);
    std::optional<std::pair<int64_t, std::string>> from;
    if (cursor) from.emplace(cursor->ts, cursor->event_id);
    ASSIGN_OR_RETURN(std::vector<StoredEvent> logged,
                     LogTimeline(tenant_id, members, from, static_cast<size_t>(limit)));
    for (StoredEvent& e : logged) {
      if (seen.insert(e.event_id).second) found.push_back(std::move(e));
    }
    std::sort(found.begin(), found.end(), NewerFirst);
  }
  for (size_t i = 0; i < found.size() && i < static_cast<size_t>(limit); ++i) {
    page.items.push_back(std::move(found[i]));
  }
  if (found.size() > static_cast<size_t>(limit)) {
    const StoredEvent& last = page.items.back();
    page.next_before = EncodeCursor(last.ts, last.event_id);
  }
  return page;
}

}  // namespace siyu::domain
