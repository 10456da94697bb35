#include "domain/analytics/channel_report.h"

#include <map>

#include "common/time.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

StatusOr<ChannelReport> ComputeChannelReport(store::Store& store, int64_t tenant_id, int64_t from,
                                             int64_t to, Attribution model) {
  ChannelReport rep;
  rep.from = from;
  rep.to = to;
  rep.model = model;
  // The attribution column is one of two fixed names, never client text.
  const std::string col =
      model == Attribution::kFirstTouch ? "p.first_channel_id" : "p.last_channel_id";
  RETURN_IF_ERROR(store.Read([&](Conn& c) -> Status {
    std::map<int64_t, ChannelFunnel> rows;  // key -1: no channel
    auto key = [](const store::Row& r) { return r.IsNull(0) ? int64_t{-1} : r.Int(0); };

    ASSIGN_OR_RETURN(Rows ch, c.Query("SELECT id, name, source_pool, touchpoint, cost_fen FROM "
                                      "channels WHERE tenant_id = ? ORDER BY id",
                                      {tenant_id}));
    for (const auto& r : ch) {
      ChannelFunnel& f = rows[r.Int(0)];
      f.channel_id = r.Int(0);
      f.name = r.Text(1);
      f.source_pool = r.Text(2);
      f.touchpoint = r.Text(3);
      f.cost_fen = r.Int(4);
    }

    ASSIGN_OR_RETURN(Rows ev,
                     c.Query("SELECT e.channel_id, "
                             "SUM(CASE WHEN e.type = 'qr_scanned' THEN 1 ELSE 0 END), "
                             "COUNT(DISTINCT CASE WHEN e.type IN ('follow', 'contact_added', "
                             "'group_joined') THEN COALESCE(ep.canonical_id, ep.id) END) "
                             "FROM touches e JOIN people ep ON ep.id = e.person_id "
                             "WHERE e.tenant_id = ? AND e.ts >= ? AND e.ts < ? "
                             "GROUP BY e.channel_id",
                             {tenant_id, from, to}));
    for (const auto& r : ev) {
      ChannelFunnel& f = rows[key(r)];
      f.scans = r.Int(1);
      f.adds = r.Int(2);
    }

    // Per attributed channel: the cohort acquired in the period, how many of them bought once
    // and twice before `to`. The period's people are found by their days' range, what the index
    // people_tenant_acquired_day (tenant_id, acquired_at / 86400000, id) reads, then by the exact
    // bounds; C++'s division truncates as SQLite's and PostgreSQL's do.
    static_assert(kMsPerDay == 86'400'000, "the index people_tenant_acquired_day");
    const int64_t first_day = from / kMsPerDay;
    const int64_t last_day = to > from ? (to - 1) / kMsPerDay : first_day - 1;
    ASSIGN_OR_RETURN(
        Rows ppl, c.Query("SELECT " + col +
                              ", COUNT(*), "
                              "SUM(CASE WHEN n >= 1 THEN 1 ELSE 0 END), "
                              "SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) FROM ("
                              "SELECT p.first_channel_id, p.last_channel_id, "
                              "(SELECT COUNT(*) FROM orders o WHERE o.tenant_id = p.tenant_id AND "
                              "o.person_id IN (SELECT m.id FROM people m WHERE m.tenant_id = "
                              "p.tenant_id AND (m.id = p.id OR m.canonical_id = p.id)) AND "
                              "o.paid_at < ?) AS n "
                              "FROM people p WHERE p.tenant_id = ? AND p.acquired_at / 86400000 "
                              "BETWEEN ? AND ? AND p.acquired_at >= ? AND p.acquired_at < ? AND "
                              "p.canonical_id IS NULL) p GROUP BY " +
                              col,
                          {to, tenant_id, first_day, last_day, from, to}));
    for (const auto& r : ppl) {
      ChannelFunnel& f = rows[key(r)];
      f.new_people = r.Int(1);
      f.first_buyers = r.Int(2);
      f.repeat_buyers = r.Int(3);
    }

    ASSIGN_OR_RETURN(Rows ord, c.Query("SELECT " + col +
                                           ", COUNT(*), COALESCE(SUM(o.total_fen), 0), "
                                           "COALESCE(SUM(o.refunded_fen), 0) FROM orders o "
                                           "JOIN people op ON op.id = o.person_id JOIN people p "
                                           "ON p.id = COALESCE(op.canonical_id, op.id) WHERE "
                                           "o.tenant_id = ? AND o.paid_at >= ? AND o.paid_at < ? "
                                           "AND p.acquired_at >= ? AND p.acquired_at < ? "
                                           "GROUP BY " +
                                           col,
                                       {tenant_id, from, to, from, to}));
    for (const auto& r : ord) {
      ChannelFunnel& f = rows[key(r)];
      f.orders = r.Int(1);
      f.paid_fen = r.Int(2);
      f.refunded_fen = r.Int(3);
    }

    for (auto& [k, f] : rows) {
      ChannelFunnel& t = rep.total;
      t.cost_fen += f.cost_fen;
      t.scans += f.scans;
      t.adds += f.adds;
      t.new_people += f.new_people;
      t.first_buyers += f.first_buyers;
      t.repeat_buyers += f.repeat_buyers;
      t.orders += f.orders;
      t.paid_fen += f.paid_fen;
      t.refunded_fen += f.refunded_fen;
      rep.rows.push_back(std::move(f));
    }
    return Status::Ok();
  }));
  return rep;
}

}  // namespace siyu::domain
