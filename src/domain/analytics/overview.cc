#include "domain/analytics/overview.h"

#include <map>

namespace siyu::domain {

using store::Conn;
using store::Rows;

void Figures::Add(const Figures& o) {
  people += o.people;
  buyers += o.buyers;
  orders += o.orders;
  paid_fen += o.paid_fen;
  refunded_fen += o.refunded_fen;
}

StatusOr<Overview> ComputeOverview(store::Store& store, int64_t tenant_id, const OverviewQuery& q) {
  Overview ov;
  ov.query = q;
  RETURN_IF_ERROR(store.Read([&](Conn& c) -> Status {
    // Key -1 stands for "no channel".
    std::map<int64_t, ChannelFigures> rows;
    auto key = [](const store::Row& r) { return r.IsNull(0) ? int64_t{-1} : r.Int(0); };
    std::string filter;
    store::Params people_params{tenant_id, q.to};
    if (q.channel_id) {
      filter = " AND p.first_channel_id = ?";
      people_params.push_back(*q.channel_id);
    }
    // People as callers see them: a merged person counts once, as its survivor row (whose first
    // touch and acquisition it keeps); orders of every merged row count for it.
    ASSIGN_OR_RETURN(Rows pr, c.Query("SELECT p.first_channel_id, COUNT(*) FROM people p WHERE "
                                      "p.tenant_id = ? AND p.acquired_at < ? AND "
                                      "p.canonical_id IS NULL" +
                                          filter + " GROUP BY p.first_channel_id",
                                      people_params));
    for (const auto& r : pr) rows[key(r)].figures.people = r.Int(1);

    store::Params order_params{tenant_id, q.from, q.to, q.to};
    if (q.channel_id) order_params.push_back(*q.channel_id);
    ASSIGN_OR_RETURN(Rows orr,
                     c.Query("SELECT p.first_channel_id, COUNT(DISTINCT p.id), COUNT(*), "
                             "COALESCE(SUM(o.total_fen), 0), COALESCE(SUM(o.refunded_fen), 0) "
                             "FROM orders o JOIN people op ON op.id = o.person_id JOIN people p "
                             "ON p.id = COALESCE(op.canonical_id, op.id) WHERE "
                             "o.tenant_id = ? AND o.paid_at >= ? AND o.paid_at < ? AND "
                             "p.acquired_at < ?" +
                                 filter + " GROUP BY p.first_channel_id",
                             order_params));
    for (const auto& r : orr) {
      Figures& f = rows[key(r)].figures;
      f.buyers = r.Int(1);
      f.orders = r.Int(2);
      f.paid_fen = r.Int(3);
      f.refunded_fen = r.Int(4);
    }
    ASSIGN_OR_RETURN(Rows ch, c.Query("SELECT id, name, source_pool, touchpoint FROM channels "
                                      "WHERE tenant_id = ? ORDER BY id",
                                      {tenant_id}));
    for (const auto& r : ch) {
      if (q.channel_id && r.Int(0) != *q.channel_id) continue;
      ChannelFigures& cf = rows[r.Int(0)];
      cf.channel_id = r.Int(0);
      cf.name = r.Text(1);
      cf.source_pool = r.Text(2);
      cf.touchpoint = r.Text(3);
    }
    for (auto& [k, cf] : rows) {
      ov.total.Add(cf.figures);
      ov.by_channel.push_back(std::move(cf));
    }
    return Status::Ok();
  }));
  return ov;
}

}  // namespace siyu::domain
