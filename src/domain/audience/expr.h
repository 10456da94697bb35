// The segment expression language: the syntax tree, the text form (parser with positioned errors,
// printer), the JSON form the console's builder edits, and type checking. Rule tags and segments
// are both written in it; README.md holds the grammar and every predicate.
//
//   tag("会员") AND orders(last 90d) >= 2 AND NOT bought(category="清洁", last 30d)
//
// Parsing checks everything that can be checked without data: syntax (EXPRESSION_SYNTAX), types
// (TYPE_MISMATCH: `orders >= "abc"`, a number left uncompared, a comparison of a yes/no predicate),
// windows (WINDOW_OUT_OF_RANGE outside 1..3650 days) and, when a Catalogue is given, tag names
// (UNKNOWN_TAG). Every error message starts "at character N (0-based): ", and `ExprErrorAt` gives
// N in a structured way (in Unicode code points, and as a byte offset).
//
// Printing is canonical: PrintExpression(ParseExpression(PrintExpression(e))) == PrintExpression(e)
// and the tree parsed back equals e (positions aside). The JSON form maps one-to-one onto the tree,
// so text -> tree -> JSON -> tree -> text round-trips too.
//
// Thread-safety: pure functions over values; a Catalogue is only read.
// Ownership: trees are plain values.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "domain/audience/types.h"

namespace siyu::audience {

enum class Kind : uint8_t {
  kAnd,
  kOr,
  kNot,
  // Yes/no predicates.
  kTag,           // tag("name") | tag("group/name")
  kRfm,           // rfm("important_value" | "重要价值")
  kStage,         // stage("dormant" | "沉睡")
  kFirstChannel,  // first_channel(<channel id>)
  kLastChannel,   // last_channel(<channel id>)
  kTouchpoint,    // touchpoint("wecom")
  kTier,          // tier("gold")
  kBought,        // bought([sku="…" | category="…"][, last Nd])  ==  orders(…) >= 1
  // Numbers, always compared: <number> <op> <integer>.
  kOrders,    // orders([sku=…|category=…][, last Nd])       paid orders, not fully refunded
  kGmv,       // gmv([sku=…|category=…][, last Nd])          net amount in fen
  kEvents,    // events("type"[, last Nd])                   event count
  kEventSum,  // event_sum("type", "property"[, last Nd])    sum of an integer property
  kLastOrderDays,   // last_order_days                             today - day of the last order
  kFirstSeenDays,   // first_seen_days                             today - first_seen_day
  kFirstEventDays,  // first_event_days("type")   today - day of the first event of the type
  kLastEventDays,   // last_event_days("type")    today - day of the last event of the type
};
enum class Cmp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };
enum class ItemFilter : uint8_t { kAny, kSku, kCategory };

inline constexpr int32_t kMaxWindowDays = 3650;
inline constexpr size_t kMaxExpressionBytes = 64 * 1024;
inline constexpr int kMaxExpressionDepth = 64;

struct Expr {
  Kind kind = Kind::kAnd;
  std::vector<Expr> children;  // kAnd/kOr: two or more (flattened); kNot: one
  // kTag: the name as written; kTouchpoint/kTier: the value; kEvents/kEventSum/kFirstEventDays/
  // kLastEventDays: the event type;
  // kOrders/kGmv/kBought with a filter: the sku or category.
  std::string name;
  std::string property;  // kEventSum
  ItemFilter filter = ItemFilter::kAny;
  // kTag: the tag id the catalogue resolved (0 when parsed without one); kFirstChannel/
  // kLastChannel: the channel id; kRfm: RfmClass; kStage: Stage.
  int64_t id = 0;
  int32_t window_days = 0;  // 0: all time
  Cmp cmp = Cmp::kGe;       // numbers only
  int64_t value = 0;        // numbers only
  uint32_t position = 0;    // where it started in the parsed text, code points (not compared)

  bool operator==(const Expr& o) const;
};

bool IsNumeric(Kind k);
// True if the value can change with the passage of days alone (a window, *_days).
bool IsTimeDependent(const Expr& e);
std::string_view CmpText(Cmp c);
bool Compare(int64_t lhs, Cmp c, int64_t rhs);

// Resolves names the language refers to. The engine is one (its own tags); a caller may wrap it.
class Catalogue {
 public:
  virtual ~Catalogue() = default;
  // tag("name") or tag("group/name") -> the tag's id. UNKNOWN_TAG (with a message naming it) when
  // there is none, or when a bare name is ambiguous between groups.
  virtual StatusOr<int64_t> ResolveTag(std::string_view name) const = 0;
};

// Where a parse error is: `character` counts Unicode code points, `byte` bytes, both 0-based.
struct ExprErrorAt {
  size_t character = 0;
  size_t byte = 0;
};

// Parses the text form. `catalogue` may be null (tags stay unresolved, id 0). On error `at` (if
// given) receives the position also written in the message; the Status's field is "expression".
StatusOr<Expr> ParseExpression(std::string_view text, const Catalogue* catalogue = nullptr,
                               ExprErrorAt* at = nullptr);
// The canonical text form.
std::string PrintExpression(const Expr& e);

// The JSON form (README "JSON form"). Errors name the offending field as a path, e.g.
// "expression.and[1].window_days", and use the same codes as the text form.
StatusOr<Expr> ExpressionFromJson(const boost::json::value& v,
                                  const Catalogue* catalogue = nullptr);
StatusOr<Expr> ParseExpressionJson(std::string_view json_text,
                                   const Catalogue* catalogue = nullptr);
boost::json::value ExpressionToJson(const Expr& e);
std::string PrintExpressionJson(const Expr& e);

// Resolves (again) every tag of `e` through `catalogue`: UNKNOWN_TAG naming it if one is gone.
Status BindTags(Expr& e, const Catalogue& catalogue);
// Calls f(expr) for every node, pre-order.
template <typename F>
void VisitExpr(const Expr& e, F&& f) {
  f(e);
  for (const Expr& c : e.children) VisitExpr(c, f);
}

}  // namespace siyu::audience
