// The SQL form of an audience expression: one SELECT over the store's tables (people, orders,
// order_lines, events, person_tags) returning the ids of the tenant's people who match, with the
// engine's semantics (README "Conditions", "Lifecycle", "RFM"). It is the executable definition
// the differential test holds the engine to, and the form a SQL peer runs in `siyu bench
// audience`.
//
// The query returns one column, the person id (the survivor row's id, `COALESCE(canonical_id,
// id)` of people: every row of a merged person contributes its facts), ascending. Facts are read
// as the service feeds them to the engine (src/domain/people/audience.cc):
//   - first_seen_day: the local day of each row's `acquired_at`, the earliest over the person's
//     rows; first channel: that of the earliest row (then smallest id) that has one; last channel:
//     that of the first row in ascending id (the survivor first) that has one;
//   - tier: the string `level` of the person's latest member_bound event (by ts, then event_id in
//     byte order) that names one, over all its rows; touchpoints: every event's touchpoint;
//   - orders: paid_at's local day, total_fen, refunded_fen (an order refunded in full stops
//     counting; gmv is net of refunds), skus and categories from order_lines;
//   - events: type and local day of `ts`; event_sum sums the property where it is a JSON integer
//     (written without fraction or exponent, within int64), as the service feeds the engine;
//   - manual tags: person_tags on any row of the person; a rule tag is its rule, expanded.
// RFM classes use the thresholds the engine resolved (`rfm`); lifecycle stages are computed in SQL
// from the counting orders' distinct days (median gaps, window functions), per the README.
//
// Local days are (ms + tz_offset_ms) / 86400000 in integer arithmetic: exact for a fixed offset
// (Asia/Shanghai, UTC+8, no DST) and timestamps after 1970.
//
// Thread-safety: a pure function. Ownership: returns a value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/audience/audience.h"
#include "domain/audience/expr.h"

namespace siyu::audience {

enum class SqlDialect : uint8_t { kSqlite, kPostgres };

struct SqlContext {
  SqlDialect dialect = SqlDialect::kSqlite;
  int64_t tenant_id = 0;
  Day today = 0;                         // the engine's today()
  int64_t tz_offset_ms = 8 * 3'600'000;  // the tenant's fixed UTC offset
  std::vector<TagDef> tags;              // every tag of the tenant (rules are expanded)
  RfmThresholds rfm;                     // the engine's ResolvedRfmThresholds()
  LifecycleOptions lifecycle;            // the engine's options().lifecycle
  // False when person rows are never merged (a benchmark load): facts are attributed to
  // `person_id` directly, without the join through people.canonical_id.
  bool merged_people = true;
};

// The SELECT (ids ascending). Tags are resolved by id when the tree carries one, else by name
// through ctx.tags; UNKNOWN_TAG, RULE_CYCLE or INVALID_FIELD (a string the SQL form cannot carry,
// e.g. a NUL character) otherwise.
StatusOr<std::string> ExpressionToSql(const Expr& e, const SqlContext& ctx);
// SELECT COUNT(*) of the same.
StatusOr<std::string> ExpressionToCountSql(const Expr& e, const SqlContext& ctx);

}  // namespace siyu::audience
