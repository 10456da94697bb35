// The schema, as an ordered list of migrations applied at start-up on both backends. `{{ID}}`
// stands for an auto-assigned 64-bit primary key in each dialect; `{{WITHOUT_ROWID}}` after a
// table's closing parenthesis makes it a SQLite WITHOUT ROWID table (its primary key is then its
// only B-tree) and is nothing on PostgreSQL. Every business row carries its tenant_id. Never edit
// a published migration: add a new one.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/id_key.h"
#include "common/time.h"
#include "store/store.h"

namespace siyu::store {
namespace {

struct Migration {
  int version;
  const char* name;
  const char* sql;
  // A migration that moves rows in code: `copy` runs after `sql`, then `after`.
  Status (*copy)(Conn&) = nullptr;
  const char* after = nullptr;
};

// Migration 15 on PostgreSQL: ids stay unique by key in the store too, for several nodes writing
// one store (on SQLite one writer holds the graph, and the index would cost most of the writer's
// time at high ingest).
Status KeepIdsUniqueOnPostgres(Conn& c) {
  if (c.dialect() != Dialect::kPostgres) return Status::Ok();
  return c.ExecScript(
      "CREATE UNIQUE INDEX person_ids_key ON person_ids_by_person(tenant_id, key_hi, key_lo)");
}

// Migration 14: the rows of person_ids into person_ids_keyed with their keys, a page at a time
// in the old key's order.
Status CopyPersonIdsWithKeys(Conn& c) {
  constexpr int64_t kPage = 4096;
  constexpr size_t kRowsPerInsert = 64;
  int64_t tenant = 0;
  std::string after;
  for (;;) {
    ASSIGN_OR_RETURN(Rows rows,
                     c.Query("SELECT tenant_id, external_id, kind, person_id, created_at FROM "
                             "person_ids WHERE (tenant_id, external_id) > (?, ?) ORDER BY "
                             "tenant_id, external_id LIMIT ?",
                             {tenant, after, kPage}));
    for (size_t pos = 0; pos < rows.size(); pos += kRowsPerInsert) {
      const size_t n = std::min(kRowsPerInsert, rows.size() - pos);
      std::string sql =
          "INSERT INTO person_ids_keyed (tenant_id, key_hi, key_lo, external_id, kind, "
          "person_id, created_at) VALUES ";
      Params p;
      p.reserve(n * 7);
      for (size_t i = pos; i < pos + n; ++i) {
        const Row& r = rows[i];
        const IdKey key = IdKeyOf(r.Text(1));
        sql += i == pos ? "(?, ?, ?, ?, ?, ?, ?)" : ", (?, ?, ?, ?, ?, ?, ?)";
        p.emplace_back(r.Int(0));
        p.emplace_back(key.hi);
        p.emplace_back(key.lo);
        p.emplace_back(r.Text(1));
        p.emplace_back(r.Text(2));
        p.emplace_back(r.Int(3));
        p.emplace_back(r.Int(4));
      }
      RETURN_IF_ERROR(c.Exec(sql, p).status());
    }
    if (rows.size() < static_cast<size_t>(kPage)) return Status::Ok();
    tenant = rows.back().Int(0);
    after = rows.back().Text(1);
  }
}

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "foundation", R"SQL(
CREATE TABLE tenants (
  id {{ID}},
  name TEXT NOT NULL,
  timezone TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE operators (
  id {{ID}},
  username TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  superuser INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);
CREATE TABLE memberships (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  operator_id BIGINT NOT NULL REFERENCES operators(id),
  role TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, operator_id)
);
CREATE INDEX memberships_operator ON memberships(operator_id);
CREATE TABLE sessions (
  id {{ID}},
  token_hash TEXT NOT NULL UNIQUE,
  operator_id BIGINT NOT NULL REFERENCES operators(id),
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE TABLE api_keys (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
CREATE TABLE channels (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  source_pool TEXT NOT NULL,
  touchpoint TEXT NOT NULL,
  cost_fen BIGINT NOT NULL,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (tenant_id, name),
  UNIQUE (tenant_id, state)
);
CREATE TABLE people (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT,
  first_channel_id BIGINT REFERENCES channels(id),
  last_channel_id BIGINT REFERENCES channels(id),
  acquired_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX people_tenant_acquired ON people(tenant_id, acquired_at);
CREATE INDEX people_tenant_id ON people(tenant_id, id);
CREATE TABLE person_ids (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  external_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  person_id BIGINT NOT NULL REFERENCES people(id),
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, external_id)
);
CREATE INDEX person_ids_person ON person_ids(person_id);
CREATE TABLE orders (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  order_no TEXT NOT NULL,
  person_id BIGINT NOT NULL REFERENCES people(id),
  status TEXT NOT NULL,
  total_fen BIGINT NOT NULL,
  refunded_fen BIGINT NOT NULL DEFAULT 0,
  content_hash TEXT NOT NULL,
  paid_at BIGINT NOT NULL,
  refunded_at BIGINT,
  created_at BIGINT NOT NULL,
  UNIQUE (tenant_id, order_no)
);
CREATE INDEX orders_tenant_paid ON orders(tenant_id, paid_at);
CREATE INDEX orders_tenant_person ON orders(tenant_id, person_id);
CREATE TABLE order_lines (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  order_id BIGINT NOT NULL REFERENCES orders(id),
  line_no INTEGER NOT NULL,
  sku TEXT NOT NULL,
  quantity BIGINT NOT NULL,
  unit_price_fen BIGINT NOT NULL,
  amount_fen BIGINT NOT NULL,
  PRIMARY KEY (order_id, line_no)
);
CREATE TABLE refunds (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  order_id BIGINT NOT NULL REFERENCES orders(id),
  amount_fen BIGINT NOT NULL,
  reason TEXT,
  refunded_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX refunds_order ON refunds(order_id);
)SQL"},
      // A tenant's lifetime paid total, kept with every order so that no report over any subset
      // of its orders can exceed int64 fen: an order that would pass the bound is refused.
      {2, "tenant_totals", R"SQL(
CREATE TABLE tenant_totals (
  tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
  paid_fen BIGINT NOT NULL
);
INSERT INTO tenant_totals (tenant_id, paid_fen)
  SELECT tenant_id, SUM(total_fen) FROM orders GROUP BY tenant_id;
)SQL"},
      // Behaviour events, stored once per (tenant, client-chosen event_id). `ids` and `properties`
      // are JSON text as ingested (canonical ids; compact properties). The person index carries
      // event_id too, so a timeline page — newest first by (ts, event_id), continued from a
      // cursor — is one index range scan.
      {3, "events", R"SQL(
CREATE TABLE events (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  event_id TEXT NOT NULL,
  person_id BIGINT NOT NULL REFERENCES people(id),
  type TEXT NOT NULL,
  ts BIGINT NOT NULL,
  touchpoint TEXT NOT NULL,
  channel_id BIGINT REFERENCES channels(id),
  ids TEXT NOT NULL,
  properties TEXT NOT NULL,
  received_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX events_person_ts ON events(tenant_id, person_id, ts, event_id);
)SQL"},
      // The brand's WeChat apps whose callbacks siyu receives. The token and EncodingAESKey are
      // what WeChat signs and encrypts callbacks with, so they are kept as given.
      {4, "wechat_apps", R"SQL(
CREATE TABLE wechat_apps (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  kind TEXT NOT NULL,
  app_id TEXT NOT NULL,
  token TEXT NOT NULL,
  encoding_aes_key TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, kind)
);
)SQL"},
      // Mini-program login: the app secret that jscode2session needs (NULL for callback apps),
      // and the sessions handed to mini-program clients. A client holds only the opaque token;
      // the table keeps its SHA-256 and the session_key WeChat returned, which never leaves it.
      {5, "mini_program_sessions", R"SQL(
ALTER TABLE wechat_apps ADD COLUMN secret TEXT;
CREATE TABLE mp_sessions (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  token_hash TEXT NOT NULL,
  openid TEXT NOT NULL,
  session_key TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, token_hash)
);
)SQL"},
      // Identity (docs/decisions/0005): a person row is an origin person; merges do not move its
      // rows but set `canonical_id` (NULL: the person is its own canonical person) on every member
      // of the merged component. `identity_log` is the graph's append-only log — merges,
      // unmerges, quarantines and their approvals or rejections — in the order the tenant's graph
      // numbered them (`seq`); the graph is rebuilt from `person_ids` and this log at start-up.
      {6, "identity", R"SQL(
ALTER TABLE people ADD COLUMN canonical_id BIGINT;
CREATE INDEX people_canonical ON people(tenant_id, canonical_id);
CREATE TABLE identity_log (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  seq BIGINT NOT NULL,
  kind TEXT NOT NULL,
  ts BIGINT NOT NULL,
  reason TEXT NOT NULL,
  id_a TEXT NOT NULL,
  id_b TEXT NOT NULL,
  person_a BIGINT NOT NULL,
  person_b BIGINT NOT NULL,
  target BIGINT NOT NULL,
  hub_id TEXT NOT NULL,
  people TEXT NOT NULL,
  guard_reason TEXT NOT NULL,
  PRIMARY KEY (tenant_id, seq)
);
)SQL"},
      // Channel codes (渠道码): per channel and kind, the code made at WeChat (or the link made
      // locally) with what identifies it there — a contact way's config_id, without which it can
      // never be edited or deleted; an official-account QR code's ticket — and the image WeChat
      // rendered, base64 (PostgreSQL TEXT holds no NUL bytes). `options` is the operator's JSON.
      {7, "channel_codes", R"SQL(
CREATE TABLE channel_codes (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  channel_id BIGINT NOT NULL REFERENCES channels(id),
  kind TEXT NOT NULL,
  options TEXT NOT NULL,
  content TEXT,
  app_id TEXT,
  config_id TEXT,
  contact_type INTEGER,
  ticket TEXT,
  image_url TEXT,
  image_type TEXT,
  image TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, channel_id, kind)
);
)SQL"},
      // The audience engine's definitions and manual facts (the engine itself is derived state,
      // rebuilt from these and the people, orders and events at start). A tag is manual
      // (`rule` NULL: its members are `person_tags` rows) or a rule (its members are computed);
      // `group_name` '' is "no group". A segment is a saved expression in the canonical text form.
      // `person_inviters`: who brought whom (KOC), one inviter per person row.
      {8, "audience", R"SQL(
CREATE TABLE tags (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  group_name TEXT NOT NULL,
  name TEXT NOT NULL,
  rule TEXT,
  source TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (tenant_id, group_name, name)
);
CREATE TABLE person_tags (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  tag_id BIGINT NOT NULL REFERENCES tags(id),
  person_id BIGINT NOT NULL REFERENCES people(id),
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, tag_id, person_id)
);
CREATE INDEX person_tags_person ON person_tags(tenant_id, person_id);
CREATE TABLE segments (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  expression TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (tenant_id, name)
);
CREATE TABLE person_inviters (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  person_id BIGINT NOT NULL REFERENCES people(id),
  inviter_id BIGINT NOT NULL REFERENCES people(id),
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, person_id)
);
)SQL"},
      // A tenant's audience settings (RFM thresholds, lifecycle rules) as JSON; none = defaults.
      // A segment snapshot freezes a segment's members at a moment (a campaign's audience):
      // `members` is the ascending person ids, comma-separated.
      {9, "audience_settings", R"SQL(
CREATE TABLE audience_settings (
  tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
  settings TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE segment_snapshots (
  id {{ID}},
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  segment_id BIGINT NOT NULL,
  name TEXT NOT NULL,
  expression TEXT NOT NULL,
  people BIGINT NOT NULL,
  members TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX segment_snapshots_segment ON segment_snapshots(tenant_id, segment_id);
)SQL"},
      // An order line's product category as the client or import names it (the catalog comes
      // later): what bought(category=…) and orders(category=…) match.
      {10, "order_line_category", R"SQL(
ALTER TABLE order_lines ADD COLUMN category TEXT;
)SQL"},
      // SQLite with the event log: the last log record whose new people, ids, links and channel
      // rows the store has (the events service's applier writes them after the records; a
      // restart applies the records after this mark again). One row, id 1.
      {11, "event_log_applied", R"SQL(
CREATE TABLE event_log_applied (
  id INTEGER PRIMARY KEY,
  seq BIGINT NOT NULL
);
)SQL"},
      // Only merged people (a non-NULL canonical_id) are looked up by canonical_id: a new person,
      // the common case at ingest, then costs no entry in this index.
      {12, "people_canonical_partial", R"SQL(
DROP INDEX people_canonical;
CREATE INDEX people_canonical ON people(tenant_id, canonical_id) WHERE canonical_id IS NOT NULL;
)SQL"},
      // A person's channel touches: one row per stored event with a channel, what the last-touch
      // rule and the channel report read. Keyed by person and time (the rule's look-up) and by
      // event_id within them (a replay skips what it finds), so on SQLite the table is its only
      // B-tree. With the event log, events with a channel are records of the log and rows of
      // this table only, not of `events`.
      {13, "touches", R"SQL(
CREATE TABLE touches (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  person_id BIGINT NOT NULL REFERENCES people(id),
  ts BIGINT NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  channel_id BIGINT NOT NULL REFERENCES channels(id),
  PRIMARY KEY (tenant_id, person_id, ts, event_id)
){{WITHOUT_ROWID}};
INSERT INTO touches (tenant_id, person_id, ts, event_id, type, channel_id)
  SELECT tenant_id, person_id, ts, event_id, type, channel_id FROM events
  WHERE channel_id IS NOT NULL;
)SQL"},
      // person_ids keyed by the 128-bit hash of the id (common/id_key.h) instead of its text:
      // the key index, where every new id lands at a random place, takes ~29 bytes an id, not ~53.
      // Ids are looked up by key and their text compared; the table keeps the text.
      {14, "person_ids_keyed", R"SQL(
CREATE TABLE person_ids_keyed (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  key_hi BIGINT NOT NULL,
  key_lo BIGINT NOT NULL,
  external_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  person_id BIGINT NOT NULL REFERENCES people(id),
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, key_hi, key_lo)
);
)SQL",
       &CopyPersonIdsWithKeys, R"SQL(
DROP TABLE person_ids;
ALTER TABLE person_ids_keyed RENAME TO person_ids;
CREATE INDEX person_ids_person ON person_ids(person_id);
)SQL"},
      // person_ids by person: on SQLite its primary key is its only B-tree, where a new person's
      // ids go at the end. Keyed by the id's hash, every new id landed at a random place of an
      // index as large as all ids, and each transaction rewrote most of its pages. Ids are found by
      // their text in the identity graph (Identity::OwnersInWrite), which the store's writer
      // holds whole; PostgreSQL keeps a unique index by key besides.
      {15, "person_ids_by_person", R"SQL(
CREATE TABLE person_ids_by_person (
  tenant_id BIGINT NOT NULL REFERENCES tenants(id),
  person_id BIGINT NOT NULL REFERENCES people(id),
  key_hi BIGINT NOT NULL,
  key_lo BIGINT NOT NULL,
  external_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, person_id, key_hi, key_lo)
){{WITHOUT_ROWID}};
INSERT INTO person_ids_by_person (tenant_id, person_id, key_hi, key_lo, external_id, kind,
                                  created_at)
  SELECT tenant_id, person_id, key_hi, key_lo, external_id, kind, created_at FROM person_ids
  ORDER BY tenant_id, person_id, key_hi, key_lo;
)SQL",
       &KeepIdsUniqueOnPostgres, R"SQL(
DROP TABLE person_ids;
ALTER TABLE person_ids_by_person RENAME TO person_ids;
)SQL"},
      // People by the day (UTC, 86,400,000 ms) they were acquired, then by id: a new person goes
      // at the end of its day, nearly always today's, where (tenant_id, acquired_at) put each one
      // at a random place of an index of all people (events come late by minutes and days) — 2 µs
      // a row on the store's writer. A period's people are read by their days' range and then
      // their acquired_at (ComputeChannelReport).
      {16, "people_acquired_by_day", R"SQL(
DROP INDEX people_tenant_acquired;
CREATE INDEX people_tenant_acquired_day ON people(tenant_id, (acquired_at / 86400000), id);
)SQL"},
  };
  return kMigrations;
}

std::string Render(const char* sql, Dialect d) {
  std::string s(sql);
  const std::string token = "{{ID}}";
  const std::string id = d == Dialect::kSqlite
                             ? "INTEGER PRIMARY KEY"
                             : "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
  for (size_t pos; (pos = s.find(token)) != std::string::npos;) s.replace(pos, token.size(), id);
  const std::string without_rowid = "{{WITHOUT_ROWID}}";
  const std::string table_option = d == Dialect::kSqlite ? " WITHOUT ROWID" : "";
  for (size_t pos; (pos = s.find(without_rowid)) != std::string::npos;) {
    s.replace(pos, without_rowid.size(), table_option);
  }
  return s;
}

}  // namespace

Status ApplyMigrations(Conn& conn) {
  RETURN_IF_ERROR(conn.ExecScript(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT "
      "NULL, applied_at BIGINT NOT NULL)"));
  ASSIGN_OR_RETURN(Rows rows, conn.Query("SELECT version FROM schema_migrations"));
  std::vector<int64_t> applied;
  for (const Row& r : rows) applied.push_back(r.Int(0));
  for (const Migration& m : Migrations()) {
    if (std::find(applied.begin(), applied.end(), m.version) != applied.end()) continue;
    spdlog::info("store: applying migration {} ({})", m.version, m.name);
    RETURN_IF_ERROR(conn.ExecScript("BEGIN"));
    Status s = conn.ExecScript(Render(m.sql, conn.dialect()));
    if (s.ok() && m.copy) s = m.copy(conn);
    if (s.ok() && m.after) s = conn.ExecScript(Render(m.after, conn.dialect()));
    if (s.ok()) {
      s = conn.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    {int64_t{m.version}, std::string(m.name), NowMs()})
              .status();
    }
    if (!s.ok()) {
      (void)conn.ExecScript("ROLLBACK");
      return s;
    }
    RETURN_IF_ERROR(conn.ExecScript("COMMIT"));
  }
  return Status::Ok();
}

}  // namespace siyu::store
