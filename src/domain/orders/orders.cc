#include "domain/orders/orders.h"

#include "common/crypto.h"
#include "common/time.h"
#include "domain/people/identity.h"
#include "domain/people/people.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {

constexpr const char* kColumns =
    "id, order_no, person_id, status, total_fen, refunded_fen, paid_at, refunded_at, created_at";

Order FromRow(const store::Row& r) {
  Order o;
  o.id = r.Int(0);
  o.order_no = r.Text(1);
  o.person_id = r.Int(2);
  o.status = r.Text(3);
  o.total_fen = r.Int(4);
  o.refunded_fen = r.Int(5);
  o.paid_at = r.Int(6);
  o.refunded_at = r.OptInt(7);
  o.created_at = r.Int(8);
  return o;
}

Status LoadLines(Conn& c, Order& o) {
  ASSIGN_OR_RETURN(Rows r, c.Query("SELECT sku, quantity, unit_price_fen, amount_fen, category "
                                   "FROM order_lines WHERE order_id = ? ORDER BY line_no",
                                   {o.id}));
  for (const auto& row : r) {
    o.lines.push_back({row.Text(0), row.Int(1), row.Int(2), row.Int(3),
                       row.IsNull(4) ? std::nullopt : std::optional<std::string>(row.Text(4))});
  }
  return Status::Ok();
}

StatusOr<std::optional<Order>> LoadOrder(Conn& c, int64_t tenant_id, const std::string& no) {
  ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                       " FROM orders WHERE tenant_id = ? AND order_no = ?",
                                   {tenant_id, no}));
  if (r.empty()) return std::optional<Order>();
  Order o = FromRow(r[0]);
  RETURN_IF_ERROR(LoadLines(c, o));
  return std::optional<Order>(std::move(o));
}

// What makes two submissions of one order_no "the same order". A defaulted paid_at is left out
// so that a retry without paid_at matches.
std::string ContentHash(int64_t person_id, const NewOrder& in) {
  std::string s = std::to_string(person_id) + "|" + std::to_string(in.total_fen) + "|" +
                  (in.paid_at ? std::to_string(*in.paid_at) : "-");
  for (const auto& l : in.lines) {
    s += "|" + std::to_string(l.sku.size()) + ":" + l.sku + "," + std::to_string(l.quantity) + "," +
         std::to_string(l.unit_price_fen);
    if (l.category) s += "," + std::to_string(l.category->size()) + ":" + *l.category;
  }
  return Sha256Hex(s);
}

}  // namespace

StatusOr<std::pair<Order, bool>> Orders::Create(int64_t tenant_id, NewOrder in) {
  std::shared_ptr<void> scope = fact_scope_ ? fact_scope_(tenant_id) : nullptr;
  if (in.person_id.has_value() == in.external_id.has_value()) {
    return Status(ErrorCode::kMissingField, "give exactly one of person_id and external_id",
                  "person_id");
  }
  int64_t sum = 0;
  for (size_t i = 0; i < in.lines.size(); ++i) {
    auto& l = in.lines[i];
    l.amount_fen = l.quantity * l.unit_price_fen;  // ≤ 1e15 by the input limits
    sum += l.amount_fen;                           // ≤ 2e17
  }
  if (sum != in.total_fen) {
    return Status(ErrorCode::kTotalMismatch,
                  "total_fen is " + std::to_string(in.total_fen) + " but the lines sum to " +
                      std::to_string(sum) + " fen",
                  "total_fen");
  }
  int64_t now = NowMs();
  Order out;
  bool created = false;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    created = false;
    // The people and ids the event log assigned ahead of the store are written first.
    ASSIGN_OR_RETURN(Identity::AssignLock sync, identity_.SyncInWrite(c, tenant_id));
    int64_t person_id = 0;
    if (in.person_id) {
      ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id FROM people WHERE tenant_id = ? AND id = ?",
                                       {tenant_id, *in.person_id}));
      if (r.empty()) {
        return Status(ErrorCode::kUnknownPerson,
                      "no person " + std::to_string(*in.person_id) +
                          " in this tenant; create the person first (POST /v1/people)",
                      "person_id");
      }
      person_id = *in.person_id;
    } else {
      ASSIGN_OR_RETURN(auto pid, identity_.OwnerInWrite(c, tenant_id, *in.external_id));
      if (!pid) {
        return Status(ErrorCode::kUnknownPerson,
                      "no person with external id " + *in.external_id +
                          "; create the person first (POST /v1/people)",
                      "external_id");
      }
      person_id = *pid;
    }
    std::string hash = ContentHash(person_id, in);
    ASSIGN_OR_RETURN(auto existing, LoadOrder(c, tenant_id, in.order_no));
    if (existing) {
      ASSIGN_OR_RETURN(Rows r,
                       c.Query("SELECT content_hash FROM orders WHERE id = ?", {existing->id}));
      if (r.at(0).Text(0) != hash) {
        return Status(ErrorCode::kOrderNoConflict,
                      "order_no '" + in.order_no +
                          "' was already used for a different order; use a new order_no",
                      "order_no");
      }
      out = std::move(*existing);
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(int64_t counted,
                     c.Exec("INSERT INTO tenant_totals (tenant_id, paid_fen) VALUES (?, ?) "
                            "ON CONFLICT (tenant_id) DO UPDATE SET paid_fen = "
                            "tenant_totals.paid_fen + excluded.paid_fen WHERE "
                            "tenant_totals.paid_fen <= ?",
                            {tenant_id, in.total_fen, INT64_MAX - in.total_fen}));
    if (counted == 0) {
      return Status(ErrorCode::kAmountOutOfRange,
                    "this order would take the brand's lifetime paid total past 2^63 fen, which "
                    "siyu cannot report exactly",
                    "total_fen");
    }
    int64_t paid_at = in.paid_at.value_or(now);
    ASSIGN_OR_RETURN(
        Rows r, c.Query("INSERT INTO orders (tenant_id, order_no, person_id, status, "
                        "total_fen, refunded_fen, content_hash, paid_at, created_at) VALUES "
                        "(?, ?, ?, 'paid', ?, 0, ?, ?, ?) RETURNING id",
                        {tenant_id, in.order_no, person_id, in.total_fen, hash, paid_at, now}));
    int64_t id = r.at(0).Int(0);
    for (size_t i = 0; i < in.lines.size(); ++i) {
      const auto& l = in.lines[i];
      RETURN_IF_ERROR(
          c.Exec("INSERT INTO order_lines (tenant_id, order_id, line_no, sku, "
                 "quantity, unit_price_fen, amount_fen, category) VALUES (?, ?, ?, ?, "
                 "?, ?, ?, ?)",
                 {tenant_id, id, static_cast<int64_t>(i), l.sku, l.quantity, l.unit_price_fen,
                  l.amount_fen, l.category ? store::Value(*l.category) : store::Value(nullptr)})
              .status());
    }
    out = Order{id,           in.order_no, person_id, "paid",       in.lines,
                in.total_fen, 0,           paid_at,   std::nullopt, now};
    created = true;
    return Status::Ok();
  }));
  if (created && observer_) observer_(tenant_id, out, false);
  return std::make_pair(std::move(out), created);
}

StatusOr<Order> Orders::Get(int64_t tenant_id, const std::string& order_no) {
  std::optional<Order> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(out, LoadOrder(c, tenant_id, order_no));
    return Status::Ok();
  }));
  if (!out) return Status(ErrorCode::kNotFound, "no order '" + order_no + "'");
  return std::move(*out);
}

StatusOr<OrderPage> Orders::List(int64_t tenant_id,
                                 const std::optional<std::vector<int64_t>>& people, int64_t after,
                                 int limit) {
  OrderPage page;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    std::string sql =
        std::string("SELECT ") + kColumns + " FROM orders WHERE tenant_id = ? AND id > ?";
    store::Params params{tenant_id, after};
    if (people) {
      sql += " AND person_id IN (";
      for (size_t i = 0; i < people->size(); ++i) {
        sql += i ? ", ?" : "?";
        params.emplace_back((*people)[i]);
      }
      sql += ")";
    }
    sql += " ORDER BY id LIMIT ?";
    params.push_back(int64_t{limit + 1});
    ASSIGN_OR_RETURN(Rows r, c.Query(sql, params));
    for (size_t i = 0; i < r.size() && i < static_cast<size_t>(limit); ++i) {
      Order o = FromRow(r[i]);
      RETURN_IF_ERROR(LoadLines(c, o));
      page.items.push_back(std::move(o));
    }
    if (r.size() > static_cast<size_t>(limit)) page.next_after = page.items.back().id;
    return Status::Ok();
  }));
  return page;
}

StatusOr<Order> Orders::Refund(int64_t tenant_id, const std::string& order_no,
                               std::optional<std::string> reason,
                               std::optional<int64_t> refunded_at) {
  std::shared_ptr<void> scope = fact_scope_ ? fact_scope_(tenant_id) : nullptr;
  int64_t now = NowMs();
  Order out;
  bool refunded = false;
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    refunded = false;
    ASSIGN_OR_RETURN(auto o, LoadOrder(c, tenant_id, order_no));
    if (!o) return Status(ErrorCode::kNotFound, "no order '" + order_no + "'");
    if (o->status == "refunded") {
      out = std::move(*o);
      return Status::Ok();
    }
    int64_t at = refunded_at.value_or(now);
    if (at < o->paid_at) {
      return InvalidField("refunded_at", "refunded_at is before the order was paid");
    }
    store::Value why = reason ? store::Value(*reason) : store::Value(nullptr);
    RETURN_IF_ERROR(c.Exec("INSERT INTO refunds (tenant_id, order_id, amount_fen, reason, "
                           "refunded_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           {tenant_id, o->id, o->total_fen, why, at, now})
                        .status());
    RETURN_IF_ERROR(c.Exec("UPDATE orders SET status = 'refunded', refunded_fen = total_fen, "
                           "refunded_at = ? WHERE id = ?",
                           {at, o->id})
                        .status());
    o->status = "refunded";
    o->refunded_fen = o->total_fen;
    o->refunded_at = at;
    out = std::move(*o);
    refunded = true;
    return Status::Ok();
  }));
  if (refunded && observer_) observer_(tenant_id, out, true);
  return out;
}

}  // namespace siyu::domain
