#include "domain/audience/sql.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <string_view>

namespace siyu::audience {

namespace {

constexpr int64_t kDayMs = 86'400'000;

// The tags of the context as a Catalogue (rules of rule tags are parsed against it).
class ContextCatalogue final : public Catalogue {
 public:
  explicit ContextCatalogue(const std::vector<TagDef>& tags) : tags_(tags) {}
  // As the engine resolves: "group/name" (a grouped tag) first, else a bare name unique across
  // groups.
  StatusOr<int64_t> ResolveTag(std::string_view name) const override {
    int64_t found = 0;
    int matches = 0;
    for (const TagDef& t : tags_) {
      if (!t.group.empty() && t.group + "/" + t.name == name) return t.id;
    }
    for (const TagDef& t : tags_) {
      if (t.name == name) {
        found = t.id;
        ++matches;
      }
    }
    if (matches == 1) return found;
    return Status(ErrorCode::kUnknownTag,
                  matches ? "tag \"" + std::string(name) + "\" is in several groups"
                          : "unknown tag \"" + std::string(name) + "\"",
                  "expression");
  }

 private:
  const std::vector<TagDef>& tags_;
};

std::string_view CmpSql(Cmp c) {
  switch (c) {
    case Cmp::kEq:
      return "=";
    case Cmp::kNe:
      return "<>";
    case Cmp::kLt:
      return "<";
    case Cmp::kLe:
      return "<=";
    case Cmp::kGt:
      return ">";
    case Cmp::kGe:
      return ">=";
  }
  return "=";
}

class Generator {
 public:
  explicit Generator(const SqlContext& ctx) : ctx_(ctx), catalogue_(ctx.tags) {
    for (const TagDef& t : ctx.tags) tags_[t.id] = &t;
  }

  StatusOr<std::string> Select(const Expr& e, bool count) {
    ASSIGN_OR_RETURN(std::string cond, Cond(e));
    std::string sql = With();
    if (count) {
      sql += fmt::format(
          "SELECT COUNT(*) FROM people p WHERE p.tenant_id = {} AND p.canonical_id IS NULL AND "
          "({})",
          ctx_.tenant_id, cond);
    } else {
      sql += fmt::format(
          "SELECT p.id FROM people p WHERE p.tenant_id = {} AND p.canonical_id IS NULL AND ({}) "
          "ORDER BY p.id",
          ctx_.tenant_id, cond);
    }
    return sql;
  }

 private:
  bool pg() const { return ctx_.dialect == SqlDialect::kPostgres; }

  StatusOr<std::string> Quote(std::string_view s) const {
    if (s.find('\0') != std::string_view::npos) {
      return InvalidField("expression", "a string with a NUL character has no SQL form");
    }
    std::string out = "'";
    for (char c : s) {
      if (c == '\'') out += '\'';
      out += c;
    }
    out += '\'';
    return out;
  }

  // The local day of a millisecond column.
  std::string DayOf(std::string_view col) const {
    return fmt::format("(({} + {}) / {})", col, ctx_.tz_offset_ms, kDayMs);
  }

  // FROM/WHERE pieces attributing rows of `table` (alias x, column person_id) to their person.
  std::string PersonCol() const {
    return ctx_.merged_people ? "COALESCE(q.canonical_id, q.id)" : "x.person_id";
  }
  std::string FromWithPerson(std::string_view table) const {
    if (!ctx_.merged_people) return fmt::format("{} x", table);
    return fmt::format("{} x JOIN people q ON q.id = x.person_id", table);
  }

  std::string Window(std::string_view day_col, int32_t window_days) const {
    if (window_days == 0) return "";
    return fmt::format(" AND {} >= {}", day_col, int64_t{ctx_.today} - window_days + 1);
  }

  std::string Greatest(const std::string& a, const std::string& b) const {
    return pg() ? fmt::format("GREATEST({}, {})", a, b) : fmt::format("MAX({}, {})", a, b);
  }
  // max(1, llround(k x c)) for c >= 1 and k >= 0, as the engine computes it in doubles.
  std::string Times(double k, const std::string& c) const {
    const std::string rounded =
        pg() ? fmt::format("CAST(FLOOR(CAST({:.17g} AS DOUBLE PRECISION) * {} + 0.5) AS BIGINT)", k,
                           c)
             : fmt::format("CAST({:.17g} * {} + 0.5 AS INTEGER)", k, c);
    return Greatest("1", rounded);
  }

  // A number's condition, given the per-person aggregate of the rows that have any: the people
  // with rows whose aggregate passes, plus (when the comparison holds for 0) those without rows.
  std::string Aggregate(const std::string& from_where, const std::string& agg, const Expr& e) {
    const bool zero = Compare(0, e.cmp, e.value);
    const std::string test = fmt::format("{} {} {}", agg, CmpSql(e.cmp), e.value);
    if (!zero) {
      return fmt::format("p.id IN (SELECT {} FROM {} GROUP BY {} HAVING {})", PersonCol(),
                         from_where, PersonCol(), test);
    }
    return fmt::format("p.id NOT IN (SELECT {} FROM {} GROUP BY {} HAVING NOT ({}))", PersonCol(),
                       from_where, PersonCol(), test);
  }

  StatusOr<std::string> OrderFilter(const Expr& e) {
    std::string s = Window("sy_o.day", e.window_days);
    if (e.filter == ItemFilter::kSku) {
      ASSIGN_OR_RETURN(std::string sku, Quote(e.name));
      s += fmt::format(
          " AND sy_o.oid IN (SELECT l.order_id FROM order_lines l WHERE l.tenant_id = {} AND "
          "l.sku = {})",
          ctx_.tenant_id, sku);
    } else if (e.filter == ItemFilter::kCategory) {
      ASSIGN_OR_RETURN(std::string category, Quote(e.name));
      s += fmt::format(
          " AND sy_o.oid IN (SELECT l.order_id FROM order_lines l WHERE l.tenant_id = {} AND "
          "l.category = {})",
          ctx_.tenant_id, category);
    }
    return s;
  }

  // The number of counting orders (or their net amount) with the filter, compared.
  StatusOr<std::string> Orders(const Expr& e, bool amount, Cmp cmp, int64_t value) {
    need_orders_ = true;
    ASSIGN_OR_RETURN(std::string filter, OrderFilter(e));
    const std::string agg = amount ? "SUM(sy_o.net)" : "COUNT(*)";
    const bool zero = Compare(0, cmp, value);
    const std::string test = fmt::format("{} {} {}", agg, CmpSql(cmp), value);
    if (!zero) {
      return fmt::format(
          "p.id IN (SELECT sy_o.pid FROM sy_o WHERE 1 = 1{} GROUP BY sy_o.pid "
          "HAVING {})",
          filter, test);
    }
    return fmt::format(
        "p.id NOT IN (SELECT sy_o.pid FROM sy_o WHERE 1 = 1{} GROUP BY sy_o.pid "
        "HAVING NOT ({}))",
        filter, test);
  }

  StatusOr<std::string> EventSumValue(const std::string& property) {
    if (pg()) {
      ASSIGN_OR_RETURN(std::string prop, Quote(property));
      // Integers only (a number written without fraction or exponent: json, not jsonb, keeps
      // the text as written). Nested CASEs: PostgreSQL may evaluate AND operands in any order; no
      // '?' (the store's parameter mark).
      return fmt::format(
          "CASE WHEN json_typeof(x.properties::json -> {0}) = 'number' THEN CASE WHEN "
          "(x.properties::json ->> {0}) ~ '^-{{0,1}}[0-9]{{1,19}}$' THEN CASE WHEN "
          "(x.properties::json "
          "->> {0})::NUMERIC BETWEEN -9223372036854775808 AND 9223372036854775807 THEN "
          "(x.properties::json ->> {0})::BIGINT END END END",
          prop);
    }
    if (property.find('"') != std::string::npos || property.find('\\') != std::string::npos) {
      return InvalidField("expression", "a property name with '\"' or '\\' has no SQLite form");
    }
    ASSIGN_OR_RETURN(std::string path, Quote("$.\"" + property + "\""));
    return fmt::format(
        "CASE WHEN json_type(x.properties, {0}) = 'integer' THEN json_extract(x.properties, {0}) "
        "END",
        path);
  }

  StatusOr<std::string> Cond(const Expr& e) {
    switch (e.kind) {
      case Kind::kAnd:
      case Kind::kOr: {
        std::string out;
        for (const Expr& c : e.children) {
          ASSIGN_OR_RETURN(std::string s, Cond(c));
          if (!out.empty()) out += e.kind == Kind::kAnd ? " AND " : " OR ";
          out += "(" + s + ")";
        }
        return out;
      }
      case Kind::kNot: {
        ASSIGN_OR_RETURN(std::string s, Cond(e.children.at(0)));
        return "NOT (" + s + ")";
      }
      case Kind::kTag:
        return Tag(e);
      case Kind::kRfm:
        return Rfm(static_cast<int>(e.id));
      case Kind::kStage:
        return StageCond(static_cast<Stage>(e.id));
      case Kind::kFirstChannel:
      case Kind::kLastChannel: {
        if (e.id == 0) return std::string("1 = 0");  // "none" matches nobody
        need_attrs_ = true;
        return fmt::format("p.id IN (SELECT sy_a.pid FROM sy_a WHERE sy_a.{} = {})",
                           e.kind == Kind::kFirstChannel ? "first_channel" : "last_channel", e.id);
      }
      case Kind::kTier: {
        if (e.name.empty()) return std::string("1 = 0");
        need_tier_ = true;
        ASSIGN_OR_RETURN(std::string tier, Quote(e.name));
        return fmt::format("p.id IN (SELECT sy_t.pid FROM sy_t WHERE sy_t.tier = {})", tier);
      }
      case Kind::kTouchpoint: {
        ASSIGN_OR_RETURN(std::string tp, Quote(e.name));
        return fmt::format(
            "p.id IN (SELECT {} FROM {} WHERE x.tenant_id = {} AND x.touchpoint = {})", PersonCol(),
            FromWithPerson("events"), ctx_.tenant_id, tp);
      }
      case Kind::kBought:
        return Orders(e, false, Cmp::kGe, 1);
      case Kind::kOrders:
        return Orders(e, false, e.cmp, e.value);
      case Kind::kGmv:
        return Orders(e, true, e.cmp, e.value);
      case Kind::kEvents:
      case Kind::kEventSum: {
        ASSIGN_OR_RETURN(std::string type, Quote(e.name));
        const std::string day = DayOf("x.ts");
        std::string from_where =
            fmt::format("{} WHERE x.tenant_id = {} AND x.type = {}{}", FromWithPerson("events"),
                        ctx_.tenant_id, type, Window(day, e.window_days));
        if (e.kind == Kind::kEvents) return Aggregate(from_where, "COUNT(*)", e);
        ASSIGN_OR_RETURN(std::string v, EventSumValue(e.property));
        return Aggregate(from_where, fmt::format("COALESCE(SUM({}), 0)", v), e);
      }
      case Kind::kLastOrderDays:
        need_orders_ = true;
        return fmt::format(
            "p.id IN (SELECT sy_o.pid FROM sy_o GROUP BY sy_o.pid HAVING {} - MAX(sy_o.day) {} {})",
            ctx_.today, CmpSql(e.cmp), e.value);
      case Kind::kFirstEventDays:
      case Kind::kLastEventDays: {
        // Over the people with events of the type only (no value without one, so NOT includes
        // them).
        ASSIGN_OR_RETURN(std::string type, Quote(e.name));
        return fmt::format(
            "p.id IN (SELECT {0} FROM {1} WHERE x.tenant_id = {2} AND x.type = {3} GROUP BY {0} "
            "HAVING {4} - {5}({6}) {7} {8})",
            PersonCol(), FromWithPerson("events"), ctx_.tenant_id, type, ctx_.today,
            e.kind == Kind::kFirstEventDays ? "MIN" : "MAX", DayOf("x.ts"), CmpSql(e.cmp), e.value);
      }
      case Kind::kFirstSeenDays:
        return fmt::format(
            "p.id IN (SELECT {0} FROM people x{1} WHERE x.tenant_id = {2} GROUP BY {0} HAVING {3} "
            "- MIN({4}) {5} {6})",
            ctx_.merged_people ? "COALESCE(x.canonical_id, x.id)" : "x.id", "", ctx_.tenant_id,
            ctx_.today, DayOf("x.acquired_at"), CmpSql(e.cmp), e.value);
    }
    return Internal("unknown expression kind");
  }

  StatusOr<std::string> Tag(const Expr& e) {
    int64_t id = e.id;
    if (id == 0 || !tags_.count(id)) {
      ASSIGN_OR_RETURN(id, catalogue_.ResolveTag(e.name));
    }
    const TagDef& t = *tags_.at(id);
    if (t.rule.empty()) {
      return fmt::format("p.id IN (SELECT {} FROM {} WHERE x.tenant_id = {} AND x.tag_id = {})",
                         PersonCol(), FromWithPerson("person_tags"), ctx_.tenant_id, id);
    }
    if (expanding_.count(id)) {
      return Status(ErrorCode::kRuleCycle, "rule tag " + t.name + " depends on itself",
                    "expression");
    }
    ASSIGN_OR_RETURN(Expr rule, ParseExpression(t.rule, &catalogue_));
    expanding_.insert(id);
    auto s = Cond(rule);
    expanding_.erase(id);
    if (!s.ok()) return s.status();
    return "(" + *s + ")";
  }

  // The buyers' class by the resolved thresholds (README "RFM").
  StatusOr<std::string> Rfm(int cls) {
    if (cls <= 0 || cls >= kRfmClassCount) return std::string("1 = 0");
    need_buyers_ = true;
    const bool m_high = cls <= 4;
    const int offset = (cls - 1) % 4;
    const bool r_high = offset <= 1;
    const bool f_high = offset == 0 || offset == 2;
    const auto side = [](bool high, const std::string& test) {
      return high ? test : "NOT (" + test + ")";
    };
    return fmt::format(
        "p.id IN (SELECT sy_b.pid FROM sy_b WHERE {} AND {} AND {})",
        side(r_high, fmt::format("{} - sy_b.last < {}", ctx_.today, ctx_.rfm.recency_days)),
        side(f_high, fmt::format("sy_b.n > {}", ctx_.rfm.frequency)),
        side(m_high, fmt::format("sy_b.gmv > {}", ctx_.rfm.monetary_fen)));
  }

  StatusOr<std::string> StageCond(Stage s) {
    need_buyers_ = true;
    if (s == Stage::kProspect) return std::string("p.id NOT IN (SELECT sy_b.pid FROM sy_b)");
    need_stage_ = true;
    return fmt::format("p.id IN (SELECT sy_s.pid FROM sy_s WHERE sy_s.stage = {})",
                       static_cast<int>(s));
  }

  // The common table expressions the conditions used.
  std::string With() const {
    std::vector<std::string> ctes;
    const std::string tenant = std::to_string(ctx_.tenant_id);
    if (need_orders_ || need_buyers_) {
      // Counting orders: paid, not refunded in full (a zero-amount order always counts).
      ctes.push_back(fmt::format(
          "sy_o AS (SELECT {} AS pid, x.id AS oid, {} AS day, x.total_fen - x.refunded_fen AS net "
          "FROM {} WHERE x.tenant_id = {} AND NOT (x.total_fen > 0 AND x.refunded_fen >= "
          "x.total_fen))",
          PersonCol(), DayOf("x.paid_at"), FromWithPerson("orders"), tenant));
    }
    if (need_buyers_) {
      ctes.push_back(
          "sy_b AS (SELECT sy_o.pid, COUNT(*) AS n, SUM(sy_o.net) AS gmv, MAX(sy_o.day) AS last "
          "FROM sy_o GROUP BY sy_o.pid)");
    }
    if (need_stage_) {
      const LifecycleOptions& lo = ctx_.lifecycle;
      // The distinct order days, numbered; gaps between consecutive days.
      ctes.push_back(
          "sy_d AS (SELECT pid, day, day - LAG(day) OVER (PARTITION BY pid ORDER BY day) AS g, "
          "ROW_NUMBER() OVER (PARTITION BY pid ORDER BY day) AS k, COUNT(*) OVER (PARTITION BY "
          "pid) AS m FROM (SELECT DISTINCT sy_o.pid, sy_o.day FROM sy_o) dd)");
      // The cycle c: the median of all gaps (m - 1 of them); c': without the last day (m - 2).
      // Gaps ranked by size; the median averages ranks lo and hi (equal for an odd count).
      ctes.push_back(
          "sy_c AS (SELECT pid, (CAST(SUM(CASE WHEN r = m / 2 THEN g ELSE 0 END) AS BIGINT) + "
          "CAST(SUM(CASE WHEN r = (m - 1) / 2 + 1 THEN g ELSE 0 END) AS BIGINT)) / 2 AS med FROM "
          "(SELECT pid, g, m, ROW_NUMBER() "
          "OVER (PARTITION BY pid ORDER BY g) AS r FROM sy_d WHERE k >= 2) gg GROUP BY pid, m)");
      ctes.push_back(
          "sy_c2 AS (SELECT pid, (CAST(SUM(CASE WHEN r = (m - 1) / 2 THEN g ELSE 0 END) AS BIGINT) "
          "+ "
          "CAST(SUM(CASE WHEN r = m / 2 THEN g ELSE 0 END) AS BIGINT)) / 2 AS med FROM (SELECT "
          "pid, g, m, ROW_NUMBER() OVER "
          "(PARTITION BY pid ORDER BY g) AS r FROM sy_d WHERE k >= 2 AND k < m) gg GROUP BY pid, "
          "m)");
      const std::string dflt = std::to_string(lo.default_cycle_days);
      ctes.push_back(fmt::format(
          "sy_f AS (SELECT sy_b.pid, sy_b.n, {} - sy_b.last AS since, {} AS c, {} AS c2, lg.g AS "
          "last_gap FROM sy_b LEFT JOIN sy_c ON sy_c.pid = sy_b.pid LEFT JOIN sy_c2 ON sy_c2.pid = "
          "sy_b.pid LEFT JOIN sy_d lg ON lg.pid = sy_b.pid AND lg.k = lg.m AND lg.m >= 2)",
          ctx_.today, Greatest("1", "COALESCE(sy_c.med, " + dflt + ")"),
          Greatest("1", "COALESCE(sy_c2.med, " + dflt + ")")));
      ctes.push_back(fmt::format(
          "sy_s AS (SELECT pid, CASE WHEN since > {} THEN {} WHEN since > {} THEN {} WHEN "
          "last_gap IS NOT NULL AND last_gap > {} THEN {} WHEN n = 1 THEN {} WHEN n >= {} AND "
          "since <= c THEN {} ELSE {} END AS stage FROM sy_f)",
          Times(lo.churn_cycles, "c"), static_cast<int>(Stage::kChurned),
          Times(lo.dormant_cycles, "c"), static_cast<int>(Stage::kDormant),
          Times(lo.dormant_cycles, "c2"), static_cast<int>(Stage::kRecalled),
          static_cast<int>(Stage::kNew), lo.active_min_orders, static_cast<int>(Stage::kActive),
          static_cast<int>(Stage::kRepeat)));
    }
    const std::string pid_of_row = ctx_.merged_people ? "COALESCE(r.canonical_id, r.id)" : "r.id";
    if (need_attrs_) {
      // A person's rows (the service folds them): the first channel of the earliest row with
      // one (the smaller id on a tie), the last channel of the first row (ascending id) with one.
      ctes.push_back(fmt::format(
          "sy_r AS (SELECT {0} AS pid, r.id AS rid, COALESCE(r.first_channel_id, 0) AS fc, "
          "COALESCE(r.last_channel_id, 0) AS lc, {1} AS d FROM people r WHERE r.tenant_id = {2})",
          pid_of_row, DayOf("r.acquired_at"), tenant));
      ctes.push_back(
          "sy_a AS (SELECT p0.pid, COALESCE(f.fc, 0) AS first_channel, COALESCE(l.lc, 0) AS "
          "last_channel FROM (SELECT DISTINCT pid FROM sy_r) p0 LEFT JOIN (SELECT pid, fc, "
          "ROW_NUMBER() OVER (PARTITION BY pid ORDER BY d, rid) AS rn FROM sy_r WHERE fc <> 0) f "
          "ON f.pid = p0.pid AND f.rn = 1 LEFT JOIN (SELECT pid, lc, ROW_NUMBER() OVER "
          "(PARTITION BY pid ORDER BY rid) AS rn FROM sy_r WHERE lc <> 0) l ON l.pid = p0.pid AND "
          "l.rn = 1)");
    }
    if (need_tier_) {
      // A person's tier: the level of the latest member_bound event (by ts, then event_id in
      // byte order) of any of its rows that names one.
      const std::string level =
          pg() ? "CASE WHEN jsonb_typeof(x.properties::jsonb -> 'level') = 'string' THEN "
                 "x.properties::jsonb ->> 'level' END"
               : "CASE WHEN json_type(x.properties, '$.level') = 'text' THEN "
                 "json_extract(x.properties, '$.level') END";
      ctes.push_back(fmt::format(
          "sy_t AS (SELECT pid, lv AS tier FROM (SELECT {0} AS pid, {1} AS lv, ROW_NUMBER() OVER "
          "(PARTITION BY {0} ORDER BY x.ts DESC, x.event_id{2} DESC) AS rn FROM events x JOIN "
          "people r ON r.id = x.person_id WHERE x.tenant_id = {3} AND r.tenant_id = {3} AND "
          "x.type = 'member_bound' AND {1} <> '') t WHERE rn = 1)",
          pid_of_row, level, pg() ? " COLLATE \"C\"" : "", tenant));
    }
    if (ctes.empty()) return "";
    std::string out = "WITH ";
    for (size_t i = 0; i < ctes.size(); ++i) out += (i ? ", " : "") + ctes[i];
    return out + " ";
  }

  const SqlContext& ctx_;
  ContextCatalogue catalogue_;
  std::map<int64_t, const TagDef*> tags_;
  std::set<int64_t> expanding_;
  bool need_orders_ = false, need_buyers_ = false, need_stage_ = false, need_attrs_ = false,
       need_tier_ = false;
};

}  // namespace

StatusOr<std::string> ExpressionToSql(const Expr& e, const SqlContext& ctx) {
  Generator g(ctx);
  return g.Select(e, false);
}

StatusOr<std::string> ExpressionToCountSql(const Expr& e, const SqlContext& ctx) {
  Generator g(ctx);
  return g.Select(e, true);
}

}  // namespace siyu::audience
