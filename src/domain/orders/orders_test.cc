#include "domain/orders/orders.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "domain/people/people.h"
#include "domain/testing/store_fixture.h"

namespace siyu::domain {
namespace {

constexpr int64_t kPaidAt = 1'700'000'000'000;

// A PersonUpsert with the optional fields left out unless given.
PersonUpsert MakeUpsert(ExternalId id, std::optional<std::string> channel_state = std::nullopt,
                        std::optional<int64_t> acquired_at = std::nullopt,
                        std::optional<std::string> name = std::nullopt) {
  PersonUpsert in;
  in.external_id = std::move(id);
  in.channel_state = std::move(channel_state);
  in.acquired_at = acquired_at;
  in.name = std::move(name);
  return in;
}

class OrdersTest : public testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (HasFatalFailure()) return;
    tenant_ = NewTenant("品牌A");
    other_ = NewTenant("品牌B");
    people_ = std::make_unique<People>(db(), identity());
    orders_ = std::make_unique<Orders>(db(), identity());
    alice_ = NewPerson(tenant_, "unionid:alice");
    bob_ = NewPerson(tenant_, "unionid:bob");
    stranger_ = NewPerson(other_, "unionid:stranger");
  }
  void TearDown() override {
    orders_.reset();
    people_.reset();
    StoreFixture::TearDown();
  }

  int64_t NewPerson(int64_t tenant, const std::string& external_id) {
    auto id = ParseExternalId(external_id);
    EXPECT_TRUE(id.ok());
    auto r = people_->Upsert(tenant, MakeUpsert(*id, std::nullopt, kPaidAt - kMsPerDay));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->first.id : 0;
  }

  // Two lines: 2 × 1990 + 1 × 500 = 4480 fen.
  NewOrder Sample(const std::string& order_no, int64_t person_id) {
    NewOrder o;
    o.order_no = order_no;
    o.person_id = person_id;
    o.lines = {{"SKU-1", 2, 1990, 0}, {"SKU-2", 1, 500, 0}};
    o.total_fen = 4480;
    o.paid_at = kPaidAt;
    return o;
  }

  Order MustCreate(int64_t tenant, const NewOrder& in, bool want_created = true) {
    auto r = orders_->Create(tenant, in);
    EXPECT_TRUE(r.ok()) << in.order_no << ": " << r.status().ToString();
    if (!r.ok()) return Order{};
    EXPECT_EQ(r->second, want_created) << in.order_no;
    return r->first;
  }

  int64_t CountOrders() { return QueryInt("SELECT COUNT(*) FROM orders"); }
  int64_t CountLines() { return QueryInt("SELECT COUNT(*) FROM order_lines"); }
  int64_t CountRefunds() { return QueryInt("SELECT COUNT(*) FROM refunds"); }

  static void ExpectSameLines(const std::vector<OrderLine>& a, const std::vector<OrderLine>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].sku, b[i].sku) << "line " << i;
      EXPECT_EQ(a[i].quantity, b[i].quantity) << "line " << i;
      EXPECT_EQ(a[i].unit_price_fen, b[i].unit_price_fen) << "line " << i;
      EXPECT_EQ(a[i].amount_fen, b[i].amount_fen) << "line " << i;
    }
  }

  int64_t tenant_ = 0, other_ = 0;
  int64_t alice_ = 0, bob_ = 0, stranger_ = 0;
  std::unique_ptr<People> people_;
  std::unique_ptr<Orders> orders_;
};

TEST_P(OrdersTest, CreateThenIdenticalRetryReturnsTheStoredOrder) {
  int64_t before = NowMs();
  Order o = MustCreate(tenant_, Sample("SO-1", alice_), /*want_created=*/true);
  int64_t after = NowMs();
  EXPECT_GT(o.id, 0);
  EXPECT_EQ(o.order_no, "SO-1");
  EXPECT_EQ(o.person_id, alice_);
  EXPECT_EQ(o.status, "paid");
  EXPECT_EQ(o.total_fen, 4480);
  EXPECT_EQ(o.refunded_fen, 0);
  EXPECT_EQ(o.paid_at, kPaidAt);
  EXPECT_EQ(o.refunded_at, std::nullopt);
  EXPECT_GE(o.created_at, before);
  EXPECT_LE(o.created_at, after);
  ExpectSameLines(o.lines, {{"SKU-1", 2, 1990, 3980}, {"SKU-2", 1, 500, 500}});

  Order again = MustCreate(tenant_, Sample("SO-1", alice_), /*want_created=*/false);
  EXPECT_EQ(again.id, o.id);
  EXPECT_EQ(again.person_id, alice_);
  EXPECT_EQ(again.status, "paid");
  EXPECT_EQ(again.total_fen, 4480);
  EXPECT_EQ(again.paid_at, kPaidAt);
  EXPECT_EQ(again.created_at, o.created_at);
  ExpectSameLines(again.lines, o.lines);

  EXPECT_EQ(CountOrders(), 1);
  EXPECT_EQ(CountLines(), 2);

  auto got = orders_->Get(tenant_, "SO-1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, o.id);
  EXPECT_EQ(got->person_id, alice_);
  EXPECT_EQ(got->total_fen, 4480);
  EXPECT_EQ(got->paid_at, kPaidAt);
  ExpectSameLines(got->lines, o.lines);
  EXPECT_EQ(orders_->Get(tenant_, "SO-2").status().code(), ErrorCode::kNotFound);
}

TEST_P(OrdersTest, RetryNamingThePersonByExternalIdIsTheSameOrder) {
  Order o = MustCreate(tenant_, Sample("SO-1", alice_));
  NewOrder by_ext = Sample("SO-1", 0);
  by_ext.person_id.reset();
  by_ext.external_id = "unionid:alice";
  Order again = MustCreate(tenant_, by_ext, /*want_created=*/false);
  EXPECT_EQ(again.id, o.id);
  EXPECT_EQ(again.person_id, alice_);
  EXPECT_EQ(CountOrders(), 1);

  // And an order created by external id lands on that person.
  NewOrder fresh = by_ext;
  fresh.order_no = "SO-2";
  Order o2 = MustCreate(tenant_, fresh);
  EXPECT_EQ(o2.person_id, alice_);
}

TEST_P(OrdersTest, SameOrderNoWithDifferentContentConflictsAndChangesNothing) {
  Order o = MustCreate(tenant_, Sample("SO-1", alice_));

  std::vector<std::pair<std::string, NewOrder>> variants;
  {
    NewOrder v = Sample("SO-1", alice_);
    v.lines[0].quantity = 3;
    v.total_fen = 3 * 1990 + 500;
    variants.emplace_back("quantity", v);
  }
  {
    NewOrder v = Sample("SO-1", alice_);
    v.lines[1].sku = "SKU-3";
    variants.emplace_back("sku", v);
  }
  {
    NewOrder v = Sample("SO-1", alice_);
    v.lines[0].unit_price_fen = 1000;
    v.lines[0].quantity = 1;
    v.lines[1].unit_price_fen = 3480;
    variants.emplace_back("prices with the same total", v);
  }
  {
    NewOrder v = Sample("SO-1", alice_);
    std::swap(v.lines[0], v.lines[1]);
    variants.emplace_back("line order", v);
  }
  {
    NewOrder v = Sample("SO-1", alice_);
    v.lines.pop_back();
    v.total_fen = 3980;
    variants.emplace_back("fewer lines", v);
  }
  variants.emplace_back("person", Sample("SO-1", bob_));
  {
    NewOrder v = Sample("SO-1", alice_);
    v.paid_at = kPaidAt + 1000;
    variants.emplace_back("paid_at", v);
  }

  for (const auto& [what, v] : variants) {
    auto r = orders_->Create(tenant_, v);
    ASSERT_FALSE(r.ok()) << "a different " << what << " was accepted as a retry";
    EXPECT_EQ(r.status().code(), ErrorCode::kOrderNoConflict)
        << what << ": " << r.status().ToString();
    EXPECT_EQ(r.status().field(), "order_no") << what;
  }

  EXPECT_EQ(CountOrders(), 1);
  EXPECT_EQ(CountLines(), 2);
  auto got = orders_->Get(tenant_, "SO-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->id, o.id);
  EXPECT_EQ(got->person_id, alice_);
  EXPECT_EQ(got->total_fen, 4480);
  EXPECT_EQ(got->paid_at, kPaidAt);
  ExpectSameLines(got->lines, o.lines);
}

TEST_P(OrdersTest, TotalMismatchIsRejectedAndNothingStored) {
  NewOrder o = Sample("SO-1", alice_);
  o.total_fen = 4481;
  auto r = orders_->Create(tenant_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTotalMismatch);
  EXPECT_EQ(r.status().field(), "total_fen");

  o.total_fen = 0;
  r = orders_->Create(tenant_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTotalMismatch);

  EXPECT_EQ(CountOrders(), 0);
  EXPECT_EQ(CountLines(), 0);
  EXPECT_EQ(orders_->Get(tenant_, "SO-1").status().code(), ErrorCode::kNotFound);
  // The order_no is still free.
  MustCreate(tenant_, Sample("SO-1", alice_));
}

TEST_P(OrdersTest, UnknownPersonByIdOrExternalIdIncludingAnotherTenants) {
  struct Case {
    std::string what;
    std::optional<int64_t> person_id;
    std::optional<std::string> external_id;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"no such person id", alice_ + bob_ + stranger_ + 1000, std::nullopt, "person_id"},
      {"another tenant's person id", stranger_, std::nullopt, "person_id"},
      {"no such external id", std::nullopt, "unionid:nobody", "external_id"},
      {"another tenant's external id", std::nullopt, "unionid:stranger", "external_id"},
  };
  for (const auto& c : cases) {
    NewOrder o = Sample("SO-X", alice_);
    o.person_id = c.person_id;
    o.external_id = c.external_id;
    auto r = orders_->Create(tenant_, o);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.status().code(), ErrorCode::kUnknownPerson)
        << c.what << ": " << r.status().ToString();
    EXPECT_EQ(r.status().field(), c.field) << c.what;
  }
  EXPECT_EQ(CountOrders(), 0);
  EXPECT_EQ(CountLines(), 0);
}

TEST_P(OrdersTest, ConcurrentCreatesOfOneOrderNoMakeOneOrder) {
  constexpr int kThreads = 16;
  std::atomic<bool> go{false};
  std::vector<StatusOr<std::pair<Order, bool>>> results(kThreads,
                                                        Status(ErrorCode::kInternal, "not run"));
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      results[t] = orders_->Create(tenant_, Sample("SO-RACE", alice_));
    });
  }
  go = true;
  for (auto& t : ts) t.join();
  int created = 0;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(results[t].ok()) << "thread " << t << ": " << results[t].status().ToString();
    created += results[t]->second ? 1 : 0;
    EXPECT_EQ(results[t]->first.id, results[0]->first.id) << "thread " << t;
    EXPECT_EQ(results[t]->first.total_fen, 4480);
    EXPECT_EQ(results[t]->first.lines.size(), 2u);
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(CountOrders(), 1);
  EXPECT_EQ(CountLines(), 2);
}

TEST_P(OrdersTest, RefundReturnsTheWholeOrderOnce) {
  Order o = MustCreate(tenant_, Sample("SO-1", alice_));
  const int64_t at = kPaidAt + 3600'000;
  auto r = orders_->Refund(tenant_, "SO-1", std::string("尺码不合适"), at);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->id, o.id);
  EXPECT_EQ(r->status, "refunded");
  EXPECT_EQ(r->refunded_fen, 4480);
  EXPECT_EQ(r->total_fen, 4480);
  EXPECT_EQ(r->refunded_at, at);
  EXPECT_EQ(r->paid_at, kPaidAt);
  ExpectSameLines(r->lines, o.lines);

  auto got = orders_->Get(tenant_, "SO-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, "refunded");
  EXPECT_EQ(got->refunded_fen, 4480);
  EXPECT_EQ(got->refunded_at, at);
  EXPECT_EQ(CountRefunds(), 1);
  EXPECT_EQ(QueryInt("SELECT amount_fen FROM refunds WHERE order_id = ?", {o.id}), 4480);

  // Again (even with another time): the same refunded order, no second refund.
  auto again = orders_->Refund(tenant_, "SO-1", std::nullopt, at + 5000);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->id, o.id);
  EXPECT_EQ(again->status, "refunded");
  EXPECT_EQ(again->refunded_fen, 4480);
  EXPECT_EQ(again->refunded_at, at);
  EXPECT_EQ(CountRefunds(), 1);

  // An identical create retry after the refund still answers with the (refunded) order.
  auto retry = orders_->Create(tenant_, Sample("SO-1", alice_));
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_FALSE(retry->second);
  EXPECT_EQ(retry->first.id, o.id);
  EXPECT_EQ(retry->first.status, "refunded");
}

TEST_P(OrdersTest, RefundWithoutTimeDefaultsToNow) {
  MustCreate(tenant_, Sample("SO-1", alice_));
  int64_t before = NowMs();
  auto r = orders_->Refund(tenant_, "SO-1", std::nullopt, std::nullopt);
  int64_t after = NowMs();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->refunded_at.has_value());
  EXPECT_GE(*r->refunded_at, before);
  EXPECT_LE(*r->refunded_at, after);
}

TEST_P(OrdersTest, RefundOfAnUnknownOrAnotherTenantsOrderIsNotFound) {
  auto r = orders_->Refund(tenant_, "SO-NONE", std::nullopt, kPaidAt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);

  Order theirs = MustCreate(other_, Sample("SO-B", stranger_));
  r = orders_->Refund(tenant_, "SO-B", std::nullopt, kPaidAt + 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  auto got = orders_->Get(other_, "SO-B");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, "paid");
  EXPECT_EQ(got->refunded_fen, 0);
  EXPECT_EQ(got->id, theirs.id);
  EXPECT_EQ(CountRefunds(), 0);
}

TEST_P(OrdersTest, RefundBeforePaymentIsInvalid) {
  MustCreate(tenant_, Sample("SO-1", alice_));
  auto r = orders_->Refund(tenant_, "SO-1", std::nullopt, kPaidAt - 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidField);
  EXPECT_EQ(r.status().field(), "refunded_at");
  auto got = orders_->Get(tenant_, "SO-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, "paid");
  EXPECT_EQ(got->refunded_fen, 0);
  EXPECT_EQ(got->refunded_at, std::nullopt);
  EXPECT_EQ(CountRefunds(), 0);

  // At the very moment of payment is fine.
  r = orders_->Refund(tenant_, "SO-1", std::nullopt, kPaidAt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->refunded_at, kPaidAt);
}

TEST_P(OrdersTest, OrderNumbersAreScopedToTheTenant) {
  Order a = MustCreate(tenant_, Sample("SO-1", alice_));
  EXPECT_EQ(orders_->Get(other_, "SO-1").status().code(), ErrorCode::kNotFound);
  // The same order_no in another tenant is another order, not a conflict nor a retry.
  Order b = MustCreate(other_, Sample("SO-1", stranger_));
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(b.person_id, stranger_);
  EXPECT_EQ(CountOrders(), 2);
  auto list_b = orders_->List(other_, std::nullopt, 0, 50);
  ASSERT_TRUE(list_b.ok());
  ASSERT_EQ(list_b->items.size(), 1u);
  EXPECT_EQ(list_b->items[0].id, b.id);
}

TEST_P(OrdersTest, ListFiltersByPersonAndPagesCoverEveryOrderOnce) {
  std::set<int64_t> all, of_bob;
  for (int i = 0; i < 5; ++i) {
    Order a = MustCreate(tenant_, Sample("A-" + std::to_string(i), alice_));
    Order b = MustCreate(tenant_, Sample("B-" + std::to_string(i), bob_));
    MustCreate(other_, Sample("X-" + std::to_string(i), stranger_));
    all.insert(a.id);
    all.insert(b.id);
    of_bob.insert(b.id);
  }
  auto collect = [&](std::optional<int64_t> person, int limit) {
    std::set<int64_t> seen;
    int64_t after = 0;
    for (int pages = 0; pages < 20; ++pages) {
      std::optional<std::vector<int64_t>> people;
      if (person) people = std::vector<int64_t>{*person};
      auto page = orders_->List(tenant_, people, after, limit);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      EXPECT_LE(page->items.size(), static_cast<size_t>(limit));
      for (const auto& o : page->items) {
        EXPECT_TRUE(seen.insert(o.id).second) << "order " << o.id << " listed twice";
        EXPECT_EQ(o.lines.size(), 2u);
        if (person) {
          EXPECT_EQ(o.person_id, *person);
        }
      }
      if (!page->next_after) break;
      after = *page->next_after;
    }
    return seen;
  };
  EXPECT_EQ(collect(std::nullopt, 3), all);
  EXPECT_EQ(collect(std::nullopt, 10), all);
  EXPECT_EQ(collect(bob_, 2), of_bob);
  EXPECT_TRUE(collect(stranger_, 5).empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, OrdersTest, ::testing::Values("sqlite", "postgres"),
                         testing::BackendName);

}  // namespace
}  // namespace siyu::domain
