// Orders (订单): paid orders of a person, idempotent by `order_no` within a tenant. Amounts are
// integer fen; a line's amount is quantity × unit price and the total must equal the sum of the
// lines. A refund in this version returns the whole order. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/fact_scope.h"
#include "store/store.h"

namespace siyu::domain {

inline constexpr int64_t kMaxQuantity = 100'000;
inline constexpr int64_t kMaxUnitPriceFen = 10'000'000'000;  // ¥100,000,000
inline constexpr size_t kMaxLines = 200;

struct OrderLine {
  std::string sku;
  int64_t quantity = 0;
  int64_t unit_price_fen = 0;
  int64_t amount_fen = 0;
  std::optional<std::string> category;  // the product's category, as the client names it
};

struct Order {
  int64_t id = 0;
  std::string order_no;
  int64_t person_id = 0;
  std::string status;  // "paid" | "refunded"
  std::vector<OrderLine> lines;
  int64_t total_fen = 0;
  int64_t refunded_fen = 0;
  int64_t paid_at = 0;
  std::optional<int64_t> refunded_at;
  int64_t created_at = 0;
};

struct NewOrder {
  std::string order_no;
  std::optional<int64_t> person_id;
  std::optional<std::string> external_id;  // canonical, parsed by the caller
  std::vector<OrderLine> lines;            // amount_fen computed here
  int64_t total_fen = 0;
  std::optional<int64_t> paid_at;
};

struct OrderPage {
  std::vector<Order> items;
  std::optional<int64_t> next_after;
};

class Identity;

class Orders {
 public:
  // `identity`: an order given by external id finds its person there.
  Orders(store::Store& store, Identity& identity) : store_(store), identity_(identity) {}
  // Returns the order and whether it was created (false: an identical retry).
  StatusOr<std::pair<Order, bool>> Create(int64_t tenant_id, NewOrder in);
  StatusOr<Order> Get(int64_t tenant_id, const std::string& order_no);
  // Orders by id; with `people`, only the orders of those person rows (a merged person's rows).
  StatusOr<OrderPage> List(int64_t tenant_id, const std::optional<std::vector<int64_t>>& people,
                           int64_t after, int limit);
  StatusOr<Order> Refund(int64_t tenant_id, const std::string& order_no,
                         std::optional<std::string> reason, std::optional<int64_t> refunded_at);
  // Called after an order is created (refund false) or refunded (true), once committed.
  using Observer = std::function<void(int64_t tenant_id, const Order&, bool refund)>;
  void SetObserver(Observer fn) { observer_ = std::move(fn); }
  // Held from before an order or refund is written until the observer has run.
  void SetFactScope(FactScope fn) { fact_scope_ = std::move(fn); }

 private:
  store::Store& store_;
  Identity& identity_;
  Observer observer_;
  FactScope fact_scope_;
};

}  // namespace siyu::domain
