// Imports of people and orders from CSV files (brands moving from another platform). Each row is
// turned into the JSON body the HTTP API would receive and validated by the same codec, so a row
// fails exactly as the API request would, with the same code and field. Valid rows are committed
// through the domain services (group commit, several rows in flight); invalid rows are reported
// with their line numbers. Importing the same file again changes nothing: people are upserted by
// external id and orders are idempotent by order_no.
//
// Columns: a header row names them. By default a column named like a field feeds that field;
// `mapping` maps field → column for other names (e.g. external_id → 会员ID); a kind before the
// column (external_id → phone:手机号) reads a column of bare numbers as ids of that kind.
//   people: external_id (required), name, channel_state, acquired_at
//   orders: order_no (required), external_id | person_id, sku, quantity, unit_price_fen |
//   unit_price
//           (yuan with up to 2 decimals), total_fen (optional, checked), paid_at, refunded_at
//           Rows with the same order_no are the lines of one order.
//   tags:   tag (required: "group/name", or a name; a tag missing is created, manual, in that
//           group), external_id | person_id. One row puts one person in one manual tag; a person
//           in the tag already is "unchanged".
// Times: milliseconds, YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] (tenant time zone).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/orders/orders.h"
#include "domain/people/audience.h"
#include "domain/people/people.h"

namespace siyu::api {

struct ImportRowError {
  int64_t line = 0;
  std::string code;
  std::string field;
  std::string message;
};

struct ImportSummary {
  int64_t rows = 0;       // data rows read (orders: orders, not lines)
  int64_t created = 0;    // new people / orders
  int64_t updated = 0;    // present, and changed now (an order refunded by this import)
  int64_t unchanged = 0;  // already present with the same content
  int64_t failed = 0;
  std::vector<ImportRowError> errors;  // in file order
};

struct ImportOptions {
  std::map<std::string, std::string> mapping;  // field → column header
  int concurrency = 16;
  // Called now and then with (done, total) items.
  std::function<void(int64_t, int64_t)> progress;
};

StatusOr<ImportSummary> ImportPeople(domain::People& people, int64_t tenant_id, std::string csv,
                                     const ImportOptions& options);
StatusOr<ImportSummary> ImportOrders(domain::Orders& orders, int64_t tenant_id, std::string csv,
                                     const ImportOptions& options);
StatusOr<ImportSummary> ImportTags(domain::Audience& audience, domain::People& people,
                                   int64_t tenant_id, std::string csv,
                                   const ImportOptions& options);

}  // namespace siyu::api
