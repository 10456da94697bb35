#include "domain/audience/expr.h"

#include <fmt/format.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <limits>
#include <optional>

namespace siyu::audience {
namespace json = boost::json;

bool Expr::operator==(const Expr& o) const {
  return kind == o.kind && children == o.children && name == o.name && property == o.property &&
         filter == o.filter && id == o.id && window_days == o.window_days && cmp == o.cmp &&
         value == o.value;
}

bool IsNumeric(Kind k) {
  switch (k) {
    case Kind::kOrders:
    case Kind::kGmv:
    case Kind::kEvents:
    case Kind::kEventSum:
    case Kind::kLastOrderDays:
    case Kind::kFirstSeenDays:
    case Kind::kFirstEventDays:
    case Kind::kLastEventDays:
      return true;
    default:
      return false;
  }
}

bool IsTimeDependent(const Expr& e) {
  bool t = false;
  VisitExpr(e, [&](const Expr& n) {
    if (n.window_days > 0 || n.kind == Kind::kLastOrderDays || n.kind == Kind::kFirstSeenDays ||
        n.kind == Kind::kFirstEventDays || n.kind == Kind::kLastEventDays) {
      t = true;
    }
  });
  return t;
}

std::string_view CmpText(Cmp c) {
  switch (c) {
    case Cmp::kEq:
      return "=";
    case Cmp::kNe:
      return "!=";
    case Cmp::kLt:
      return "<";
    case Cmp::kLe:
      return "<=";
    case Cmp::kGt:
      return ">";
    case Cmp::kGe:
      return ">=";
  }
  return "?";
}

bool Compare(int64_t lhs, Cmp c, int64_t rhs) {
  switch (c) {
    case Cmp::kEq:
      return lhs == rhs;
    case Cmp::kNe:
      return lhs != rhs;
    case Cmp::kLt:
      return lhs < rhs;
    case Cmp::kLe:
      return lhs <= rhs;
    case Cmp::kGt:
      return lhs > rhs;
    case Cmp::kGe:
      return lhs >= rhs;
  }
  return false;
}

namespace {

std::optional<Cmp> CmpFromText(std::string_view s) {
  if (s == "=" || s == "==") return Cmp::kEq;
  if (s == "!=") return Cmp::kNe;
  if (s == "<") return Cmp::kLt;
  if (s == "<=") return Cmp::kLe;
  if (s == ">") return Cmp::kGt;
  if (s == ">=") return Cmp::kGe;
  return std::nullopt;
}

// The predicates: name, kind, and which arguments they take.
enum class Args : uint8_t {
  kOneString,  // tag, rfm, stage, touchpoint, tier
  kOneInt,     // first_channel, last_channel
  kItems,      // orders, gmv, bought: [sku=…|category=…][, last Nd]
  kEventType,  // events: "type"[, last Nd]
  kEventProp,  // event_sum: "type", "property"[, last Nd]
  kNone,       // last_order_days, first_seen_days
  kEventDays,  // first_event_days, last_event_days: "type"
};
struct PredicateInfo {
  std::string_view name;
  Kind kind;
  Args args;
};
constexpr PredicateInfo kPredicates[] = {
    {"tag", Kind::kTag, Args::kOneString},
    {"rfm", Kind::kRfm, Args::kOneString},
    {"stage", Kind::kStage, Args::kOneString},
    {"first_channel", Kind::kFirstChannel, Args::kOneInt},
    {"last_channel", Kind::kLastChannel, Args::kOneInt},
    {"touchpoint", Kind::kTouchpoint, Args::kOneString},
    {"tier", Kind::kTier, Args::kOneString},
    {"bought", Kind::kBought, Args::kItems},
    {"orders", Kind::kOrders, Args::kItems},
    {"gmv", Kind::kGmv, Args::kItems},
    {"events", Kind::kEvents, Args::kEventType},
    {"event_sum", Kind::kEventSum, Args::kEventProp},
    {"last_order_days", Kind::kLastOrderDays, Args::kNone},
    {"first_seen_days", Kind::kFirstSeenDays, Args::kNone},
    {"first_event_days", Kind::kFirstEventDays, Args::kEventDays},
    {"last_event_days", Kind::kLastEventDays, Args::kEventDays},
};
constexpr std::string_view kPredicateList =
    "tag, rfm, stage, first_channel, last_channel, touchpoint, tier, bought, orders, gmv, events, "
    "event_sum, last_order_days, first_seen_days, first_event_days, last_event_days";

const PredicateInfo* FindPredicate(std::string_view name) {
  for (const auto& p : kPredicates) {
    if (p.name == name) return &p;
  }
  return nullptr;
}
const PredicateInfo& InfoOf(Kind k) {
  for (const auto& p : kPredicates) {
    if (p.kind == k) return p;
  }
  return kPredicates[0];
}

std::string RfmKeys() {
  std::string s;
  for (int i = 1; i < kRfmClassCount; ++i) {
    if (!s.empty()) s += ", ";
    s += RfmClassKey(static_cast<RfmClass>(i));
  }
  return s;
}
std::string StageKeys() {
  std::string s;
  for (int i = 0; i < kStageCount; ++i) {
    if (!s.empty()) s += ", ";
    s += StageKey(static_cast<Stage>(i));
  }
  return s;
}

size_t CodePoints(std::string_view s, size_t byte) {
  size_t n = 0;
  for (size_t i = 0; i < byte && i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

void AppendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

// Flattens nested AND/OR of the same kind, so every tree has one canonical shape.
void Flatten(Expr& e) {
  if (e.kind != Kind::kAnd && e.kind != Kind::kOr) return;
  std::vector<Expr> flat;
  for (Expr& c : e.children) {
    if (c.kind == e.kind) {
      for (Expr& g : c.children) flat.push_back(std::move(g));
    } else {
      flat.push_back(std::move(c));
    }
  }
  e.children = std::move(flat);
}

// ---------------------------------------------------------------------------------------------
// Lexer

enum class Tok : uint8_t {
  kEnd,
  kLParen,
  kRParen,
  kComma,
  kAssign,
  kCmp,
  kString,
  kInt,
  kDays,
  kIdent
};

struct Token {
  Tok type = Tok::kEnd;
  size_t begin = 0, end = 0;  // bytes
  std::string text;           // kString: the unescaped value; kIdent: the name; kCmp: the operator
  int64_t num = 0;            // kInt, kDays
};

std::string_view TokName(Tok t) {
  switch (t) {
    case Tok::kEnd:
      return "the end";
    case Tok::kLParen:
      return "'('";
    case Tok::kRParen:
      return "')'";
    case Tok::kComma:
      return "','";
    case Tok::kAssign:
      return "'='";
    case Tok::kCmp:
      return "a comparison";
    case Tok::kString:
      return "a string";
    case Tok::kInt:
      return "a number";
    case Tok::kDays:
      return "a number of days";
    case Tok::kIdent:
      return "a name";
  }
  return "?";
}

class Parser {
 public:
  Parser(std::string_view text, const Catalogue* cat, ExprErrorAt* at)
      : text_(text), cat_(cat), at_(at) {}

  StatusOr<Expr> Run() {
    if (text_.size() > kMaxExpressionBytes) {
      return Fail(ErrorCode::kExpressionSyntax, 0,
                  fmt::format("the expression is longer than {} bytes", kMaxExpressionBytes));
    }
    if (!Next()) return error_;
    Expr e;
    if (!ParseOr(e, 0)) return error_;
    if (tok_.type != Tok::kEnd) {
      return Fail(ErrorCode::kExpressionSyntax, tok_.begin,
                  fmt::format("expected AND, OR or the end, found {}", Describe(tok_)));
    }
    return e;
  }

 private:
  Status Fail(ErrorCode code, size_t byte, std::string msg) {
    size_t ch = CodePoints(text_, byte);
    if (at_) *at_ = ExprErrorAt{ch, byte};
    error_ = Status(code, fmt::format("at character {} (0-based): {}", ch, msg), "expression");
    return error_;
  }
  bool FailB(ErrorCode code, size_t byte, std::string msg) {
    (void)Fail(code, byte, std::move(msg));
    return false;
  }

  std::string Describe(const Token& t) const {
    switch (t.type) {
      case Tok::kEnd:
        return "the end of the expression";
      case Tok::kString:
      case Tok::kIdent:
      case Tok::kInt:
      case Tok::kDays:
      case Tok::kCmp:
        return fmt::format("'{}'", text_.substr(t.begin, std::min<size_t>(t.end - t.begin, 40)));
      default:
        return std::string(TokName(t.type));
    }
  }

  bool Next() {
    size_t i = pos_;
    while (i < text_.size() &&
           (text_[i] == ' ' || text_[i] == '\t' || text_[i] == '\n' || text_[i] == '\r')) {
      ++i;
    }
    tok_ = Token{};
    tok_.begin = i;
    if (i >= text_.size()) {
      tok_.end = pos_ = i;
      return true;
    }
    char c = text_[i];
    auto one = [&](Tok t, size_t len) {
      tok_.type = t;
      tok_.text = std::string(text_.substr(i, len));
      tok_.end = pos_ = i + len;
      return true;
    };
    auto peek = [&](size_t k) { return i + k < text_.size() ? text_[i + k] : '\0'; };
    switch (c) {
      case '(':
        return one(Tok::kLParen, 1);
      case ')':
        return one(Tok::kRParen, 1);
      case ',':
        return one(Tok::kComma, 1);
      case '=':
        return peek(1) == '=' ? one(Tok::kCmp, 2) : one(Tok::kAssign, 1);
      case '!':
        if (peek(1) == '=') return one(Tok::kCmp, 2);
        break;
      case '<':
      case '>':
        return peek(1) == '=' ? one(Tok::kCmp, 2) : one(Tok::kCmp, 1);
      case '"':
        return LexString(i);
      default:
        break;
    }
    if (IsDigit(c) || (c == '-' && IsDigit(peek(1)))) return LexNumber(i);
    if (IsIdentStart(c)) {
      size_t j = i;
      while (j < text_.size() && IsIdentChar(text_[j])) ++j;
      return one(Tok::kIdent, j - i);
    }
    // Show the whole (possibly multi-byte) character.
    size_t len = 1;
    while (i + len < text_.size() && (static_cast<unsigned char>(text_[i + len]) & 0xC0) == 0x80) {
      ++len;
    }
    return FailB(ErrorCode::kExpressionSyntax, i,
                 fmt::format("unexpected character '{}'", text_.substr(i, len)));
  }

  bool LexNumber(size_t i) {
    size_t j = i;
    if (text_[j] == '-') ++j;
    while (j < text_.size() && IsDigit(text_[j])) ++j;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text_.data() + i, text_.data() + j, v);
    if (ec != std::errc() || p != text_.data() + j) {
      return FailB(ErrorCode::kExpressionSyntax, i, "the number does not fit a 64-bit integer");
    }
    tok_.num = v;
    tok_.type = Tok::kInt;
    if (j < text_.size() && (text_[j] == 'd' || text_[j] == 'D') &&
        !(j + 1 < text_.size() && IsIdentChar(text_[j + 1]))) {
      tok_.type = Tok::kDays;
      ++j;
    } else if (j < text_.size() && IsIdentChar(text_[j])) {
      return FailB(ErrorCode::kExpressionSyntax, i,
                   "a number must be followed by a space, an operator or 'd' (days)");
    }
    tok_.end = pos_ = j;
    return true;
  }

  bool LexString(size_t i) {
    std::string out;
    size_t j = i + 1;
    while (true) {
      if (j >= text_.size()) {
        return FailB(ErrorCode::kExpressionSyntax, i, "the string is not closed (missing '\"')");
      }
      char c = text_[j];
      if (c == '"') break;
      if (c == '\\') {
        if (j + 1 >= text_.size()) {
          return FailB(ErrorCode::kExpressionSyntax, j, "the string is not closed (missing '\"')");
        }
        char e = text_[j + 1];
        switch (e) {
          case '"':
          case '\\':
          case '/':
            out += e;
            break;
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case 'u': {
            uint32_t cp = 0;
            if (j + 6 > text_.size()) {
              return FailB(ErrorCode::kExpressionSyntax, j, "\\u needs four hex digits");
            }
            auto [p, ec] = std::from_chars(text_.data() + j + 2, text_.data() + j + 6, cp, 16);
            if (ec != std::errc() || p != text_.data() + j + 6 || (cp >= 0xD800 && cp < 0xE000)) {
              return FailB(ErrorCode::kExpressionSyntax, j,
                           "\\u needs four hex digits of a character outside the surrogates");
            }
            AppendUtf8(out, cp);
            j += 4;
            break;
          }
          default:
            return FailB(ErrorCode::kExpressionSyntax, j,
                         fmt::format("unknown escape '\\{}' (use \\\" \\\\ \\n \\t \\r \\uXXXX)",
                                     text_.substr(j + 1, 1)));
        }
        j += 2;
        continue;
      }
      out += c;
      ++j;
    }
    tok_.type = Tok::kString;
    tok_.text = std::move(out);
    tok_.end = pos_ = j + 1;
    return true;
  }

  bool IsKeyword(std::string_view kw) const {
    return tok_.type == Tok::kIdent && EqualsIgnoreCase(tok_.text, kw);
  }

  bool Expect(Tok t, std::string_view what) {
    if (tok_.type != t) {
      return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                   fmt::format("expected {}, found {}", what, Describe(tok_)));
    }
    return Next();
  }

  // or := and ("OR" and)*
  bool ParseOr(Expr& out, int depth) {
    if (depth > kMaxExpressionDepth) {
      return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                   fmt::format("the expression nests deeper than {} levels", kMaxExpressionDepth));
    }
    size_t start = tok_.begin;
    Expr first;
    if (!ParseAnd(first, depth)) return false;
    if (!IsKeyword("or")) {
      out = std::move(first);
      return true;
    }
    Expr e;
    e.kind = Kind::kOr;
    e.position = static_cast<uint32_t>(CodePoints(text_, start));
    e.children.push_back(std::move(first));
    while (IsKeyword("or")) {
      if (!Next()) return false;
      Expr c;
      if (!ParseAnd(c, depth)) return false;
      e.children.push_back(std::move(c));
    }
    Flatten(e);
    out = std::move(e);
    return true;
  }

  // and := unary ("AND" unary)*
  bool ParseAnd(Expr& out, int depth) {
    size_t start = tok_.begin;
    Expr first;
    if (!ParseUnary(first, depth)) return false;
    if (!IsKeyword("and")) {
      out = std::move(first);
      return true;
    }
    Expr e;
    e.kind = Kind::kAnd;
    e.position = static_cast<uint32_t>(CodePoints(text_, start));
    e.children.push_back(std::move(first));
    while (IsKeyword("and")) {
      if (!Next()) return false;
      Expr c;
      if (!ParseUnary(c, depth)) return false;
      e.children.push_back(std::move(c));
    }
    Flatten(e);
    out = std::move(e);
    return true;
  }

  // unary := "NOT" unary | "(" or ")" | predicate
  bool ParseUnary(Expr& out, int depth) {
    if (depth > kMaxExpressionDepth) {
      return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                   fmt::format("the expression nests deeper than {} levels", kMaxExpressionDepth));
    }
    if (IsKeyword("not")) {
      Expr e;
      e.kind = Kind::kNot;
      e.position = static_cast<uint32_t>(CodePoints(text_, tok_.begin));
      if (!Next()) return false;
      Expr c;
      if (!ParseUnary(c, depth + 1)) return false;
      e.children.push_back(std::move(c));
      out = std::move(e);
      return true;
    }
    if (tok_.type == Tok::kLParen) {
      size_t open = tok_.begin;
      if (!Next()) return false;
      if (!ParseOr(out, depth + 1)) return false;
      if (tok_.type != Tok::kRParen) {
        return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                     fmt::format("expected ')' to close the '(' at character {}, found {}",
                                 CodePoints(text_, open), Describe(tok_)));
      }
      if (!Next()) return false;
      if (tok_.type == Tok::kCmp || tok_.type == Tok::kAssign) {
        return FailB(ErrorCode::kTypeMismatch, tok_.begin,
                     "a parenthesised condition is yes/no and cannot be compared");
      }
      return true;
    }
    return ParsePredicate(out);
  }

  struct Arg {
    enum Type { kString, kInt, kWindow, kNamed } type = kString;
    std::string key;  // kNamed
    bool value_is_string = true;
    std::string s;
    int64_t n = 0;
    size_t begin = 0;        // bytes, the argument
    size_t value_begin = 0;  // bytes, its value
  };

  bool ParseArgs(std::vector<Arg>& args) {
    // At '('.
    if (!Next()) return false;
    if (tok_.type == Tok::kRParen) return Next();
    while (true) {
      Arg a;
      a.begin = a.value_begin = tok_.begin;
      if (tok_.type == Tok::kString) {
        a.type = Arg::kString;
        a.s = tok_.text;
        if (!Next()) return false;
      } else if (tok_.type == Tok::kInt) {
        a.type = Arg::kInt;
        a.n = tok_.num;
        if (!Next()) return false;
      } else if (IsKeyword("last")) {
        a.type = Arg::kWindow;
        if (!Next()) return false;
        a.value_begin = tok_.begin;
        if (tok_.type == Tok::kInt) {
          return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                       fmt::format("write the window with its unit: last {}d", tok_.num));
        }
        if (tok_.type != Tok::kDays) {
          return FailB(
              ErrorCode::kExpressionSyntax, tok_.begin,
              fmt::format("expected a number of days after 'last' (e.g. last 30d), found {}",
                          Describe(tok_)));
        }
        a.n = tok_.num;
        if (!Next()) return false;
      } else if (tok_.type == Tok::kIdent) {
        a.type = Arg::kNamed;
        a.key = tok_.text;
        if (!Next()) return false;
        if (tok_.type != Tok::kAssign && !(tok_.type == Tok::kCmp && tok_.text == "==")) {
          return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                       fmt::format("expected '=' after '{}', found {}", a.key, Describe(tok_)));
        }
        if (!Next()) return false;
        a.value_begin = tok_.begin;
        if (tok_.type == Tok::kString) {
          a.s = tok_.text;
        } else if (tok_.type == Tok::kInt) {
          a.value_is_string = false;
          a.n = tok_.num;
        } else {
          return FailB(
              ErrorCode::kExpressionSyntax, tok_.begin,
              fmt::format("expected a value after '{}=', found {}", a.key, Describe(tok_)));
        }
        if (!Next()) return false;
      } else if (tok_.type == Tok::kDays) {
        return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                     fmt::format("write a window as 'last {}d'", tok_.num));
      } else {
        return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                     fmt::format("expected an argument, found {}", Describe(tok_)));
      }
      args.push_back(std::move(a));
      if (tok_.type == Tok::kComma) {
        if (!Next()) return false;
        continue;
      }
      if (tok_.type == Tok::kRParen) return Next();
      return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                   fmt::format("expected ',' or ')' in the arguments, found {}", Describe(tok_)));
    }
  }

  bool ParsePredicate(Expr& out) {
    if (tok_.type != Tok::kIdent) {
      return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                   fmt::format("expected a condition (one of {}, NOT or '('), found {}",
                               kPredicateList, Describe(tok_)));
    }
    if (IsKeyword("and") || IsKeyword("or")) {
      return FailB(ErrorCode::kExpressionSyntax, tok_.begin,
                   fmt::format("expected a condition before {}", Describe(tok_)));
    }
    const PredicateInfo* info = FindPredicate(tok_.text);
    if (!info) {
      return FailB(
          ErrorCode::kExpressionSyntax, tok_.begin,
          fmt::format("unknown condition '{}'; the conditions are {}", tok_.text, kPredicateList));
    }
    size_t name_begin = tok_.begin;
    size_t name_end = tok_.end;
    Expr e;
    e.kind = info->kind;
    e.position = static_cast<uint32_t>(CodePoints(text_, name_begin));
    if (!Next()) return false;
    std::vector<Arg> args;
    bool has_parens = tok_.type == Tok::kLParen;
    if (has_parens) {
      if (!ParseArgs(args)) return false;
    } else if (info->args != Args::kItems && info->args != Args::kNone) {
      return FailB(ErrorCode::kExpressionSyntax, name_end,
                   fmt::format("expected '(' after {}", info->name));
    }
    if (!BuildArgs(*info, name_begin, args, e)) return false;
    // The comparison.
    if (IsNumeric(e.kind)) {
      if (tok_.type != Tok::kCmp && tok_.type != Tok::kAssign) {
        return FailB(
            ErrorCode::kTypeMismatch, tok_.begin,
            fmt::format("{} is a number: compare it, e.g. {} >= 1", info->name, info->name));
      }
      e.cmp = *CmpFromText(tok_.text);
      if (!Next()) return false;
      if (tok_.type == Tok::kString || tok_.type == Tok::kDays) {
        return FailB(ErrorCode::kTypeMismatch, tok_.begin,
                     fmt::format("{} is a number and cannot be compared with {}", info->name,
                                 Describe(tok_)));
      }
      if (tok_.type != Tok::kInt) {
        return FailB(
            ErrorCode::kExpressionSyntax, tok_.begin,
            fmt::format("expected an integer after {}, found {}", CmpText(e.cmp), Describe(tok_)));
      }
      e.value = tok_.num;
      if (!Next()) return false;
    } else if (tok_.type == Tok::kCmp || tok_.type == Tok::kAssign) {
      return FailB(ErrorCode::kTypeMismatch, tok_.begin,
                   fmt::format("{}(…) is yes/no and cannot be compared", info->name));
    }
    out = std::move(e);
    return true;
  }

  bool CheckWindow(const Arg& a, Expr& e) {
    if (e.window_days != 0) {
      return FailB(ErrorCode::kExpressionSyntax, a.begin, "only one window is allowed");
    }
    if (a.n < 1 || a.n > kMaxWindowDays) {
      return FailB(ErrorCode::kWindowOutOfRange, a.value_begin,
                   fmt::format("the window must be 1 to {} days, not {}", kMaxWindowDays, a.n));
    }
    e.window_days = static_cast<int32_t>(a.n);
    return true;
  }

  bool BuildArgs(const PredicateInfo& info, size_t name_begin, const std::vector<Arg>& args,
                 Expr& e) {
    auto wrong_count = [&](std::string_view usage) {
      return FailB(ErrorCode::kExpressionSyntax, name_begin,
                   fmt::format("{} takes {}", info.name, usage));
    };
    auto need_string = [&](const Arg& a, std::string_view what) {
      if (a.type == Arg::kString) return true;
      if (a.type == Arg::kInt) {
        return FailB(ErrorCode::kTypeMismatch, a.begin,
                     fmt::format("{} takes {} as a string in double quotes", info.name, what));
      }
      return FailB(ErrorCode::kExpressionSyntax, a.begin,
                   fmt::format("{} takes {} here", info.name, what));
    };
    switch (info.args) {
      case Args::kOneString: {
        if (args.size() != 1) return wrong_count("one string, e.g. tag(\"会员\")");
        const Arg& a = args[0];
        if (!need_string(a, "a name")) return false;
        if (a.s.empty()) {
          return FailB(ErrorCode::kExpressionSyntax, a.begin,
                       fmt::format("{} needs a non-empty name", info.name));
        }
        e.name = a.s;
        if (e.kind == Kind::kRfm) {
          auto c = RfmClassFromName(a.s);
          if (!c) {
            return FailB(ErrorCode::kExpressionSyntax, a.begin,
                         fmt::format("unknown RFM class \"{}\"; the classes are {} (or 重要价值 …)",
                                     a.s, RfmKeys()));
          }
          e.id = static_cast<int64_t>(*c);
          e.name.clear();
        } else if (e.kind == Kind::kStage) {
          auto s = StageFromName(a.s);
          if (!s) {
            return FailB(
                ErrorCode::kExpressionSyntax, a.begin,
                fmt::format("unknown lifecycle stage \"{}\"; the stages are {} (or 沉睡 …)", a.s,
                            StageKeys()));
          }
          e.id = static_cast<int64_t>(*s);
          e.name.clear();
        } else if (e.kind == Kind::kTag && cat_) {
          auto id = cat_->ResolveTag(a.s);
          if (!id.ok()) {
            return FailB(id.status().code(), a.begin, id.status().message());
          }
          e.id = *id;
        }
        return true;
      }
      case Args::kOneInt: {
        if (args.size() != 1) return wrong_count("one channel id, e.g. first_channel(12)");
        const Arg& a = args[0];
        if (a.type == Arg::kString) {
          return FailB(ErrorCode::kTypeMismatch, a.begin,
                       fmt::format("{} takes a channel id (an integer), not a string", info.name));
        }
        if (a.type != Arg::kInt) return wrong_count("one channel id, e.g. first_channel(12)");
        if (a.n <= 0) {
          return FailB(ErrorCode::kExpressionSyntax, a.begin, "a channel id is positive");
        }
        e.id = a.n;
        return true;
      }
      case Args::kItems:
        for (const Arg& a : args) {
          if (a.type == Arg::kWindow) {
            if (!CheckWindow(a, e)) return false;
          } else if (a.type == Arg::kNamed && (a.key == "sku" || a.key == "category")) {
            if (e.filter != ItemFilter::kAny) {
              return FailB(ErrorCode::kExpressionSyntax, a.begin,
                           fmt::format("{} takes one sku= or category= filter", info.name));
            }
            if (!a.value_is_string) {
              return FailB(ErrorCode::kTypeMismatch, a.value_begin,
                           fmt::format("{}= takes a string in double quotes", a.key));
            }
            if (a.s.empty()) {
              return FailB(ErrorCode::kExpressionSyntax, a.value_begin,
                           fmt::format("{}= needs a non-empty value", a.key));
            }
            e.filter = a.key == "sku" ? ItemFilter::kSku : ItemFilter::kCategory;
            e.name = a.s;
          } else {
            return FailB(
                ErrorCode::kExpressionSyntax, a.begin,
                fmt::format("{} takes [sku=\"…\" | category=\"…\"][, last Nd]", info.name));
          }
        }
        return true;
      case Args::kEventType:
      case Args::kEventProp: {
        size_t strings = info.args == Args::kEventType ? 1 : 2;
        std::string_view usage = info.args == Args::kEventType
                                     ? "an event type and an optional window: events(\"view\", "
                                       "last 7d)"
                                     : "an event type, a property and an optional window: "
                                       "event_sum(\"pay\", \"points\", last 30d)";
        if (args.size() < strings || args.size() > strings + 1) return wrong_count(usage);
        for (size_t i = 0; i < strings; ++i) {
          if (!need_string(args[i], i == 0 ? "the event type" : "the property")) return false;
          if (args[i].s.empty()) {
            return FailB(ErrorCode::kExpressionSyntax, args[i].begin,
                         fmt::format("{} needs a non-empty name", info.name));
          }
        }
        e.name = args[0].s;
        if (strings == 2) e.property = args[1].s;
        if (args.size() == strings + 1) {
          if (args.back().type != Arg::kWindow) {
            return FailB(ErrorCode::kExpressionSyntax, args.back().begin,
                         fmt::format("{} takes {}", info.name, usage));
          }
          if (!CheckWindow(args.back(), e)) return false;
        }
        return true;
      }
      case Args::kEventDays: {
        const std::string usage = fmt::format("one event type: {}(\"view\")", info.name);
        if (args.size() != 1) return wrong_count(usage);
        if (!need_string(args[0], "the event type")) return false;
        if (args[0].s.empty()) {
          return FailB(ErrorCode::kExpressionSyntax, args[0].begin,
                       fmt::format("{} needs a non-empty name", info.name));
        }
        e.name = args[0].s;
        return true;
      }
      case Args::kNone:
        if (!args.empty()) {
          return FailB(ErrorCode::kExpressionSyntax, args[0].begin,
                       fmt::format("{} takes no arguments", info.name));
        }
        return true;
    }
    return true;
  }

  std::string_view text_;
  const Catalogue* cat_;
  ExprErrorAt* at_;
  size_t pos_ = 0;
  Token tok_;
  Status error_;
};

// ---------------------------------------------------------------------------------------------
// Printer

int Precedence(Kind k) {
  switch (k) {
    case Kind::kOr:
      return 1;
    case Kind::kAnd:
      return 2;
    case Kind::kNot:
      return 3;
    default:
      return 4;
  }
}

void PrintItemsArgs(std::string& out, const Expr& e, bool bare_ok) {
  bool has = e.filter != ItemFilter::kAny || e.window_days > 0;
  if (!has) {
    if (!bare_ok) out += "()";
    return;
  }
  out += '(';
  if (e.filter != ItemFilter::kAny) {
    out += e.filter == ItemFilter::kSku ? "sku=" : "category=";
    AppendQuoted(out, e.name);
    if (e.window_days > 0) out += ", ";
  }
  if (e.window_days > 0) out += fmt::format("last {}d", e.window_days);
  out += ')';
}

void Print(std::string& out, const Expr& e) {
  auto child = [&](const Expr& c, bool paren) {
    if (paren) out += '(';
    Print(out, c);
    if (paren) out += ')';
  };
  const PredicateInfo& info = InfoOf(e.kind);
  switch (e.kind) {
    case Kind::kAnd:
    case Kind::kOr:
      for (size_t i = 0; i < e.children.size(); ++i) {
        if (i) out += e.kind == Kind::kAnd ? " AND " : " OR ";
        child(e.children[i], Precedence(e.children[i].kind) <= Precedence(e.kind));
      }
      return;
    case Kind::kNot:
      out += "NOT ";
      child(e.children[0], Precedence(e.children[0].kind) < Precedence(Kind::kNot));
      return;
    case Kind::kTag:
    case Kind::kTouchpoint:
    case Kind::kTier:
      out += info.name;
      out += '(';
      AppendQuoted(out, e.name);
      out += ')';
      return;
    case Kind::kRfm:
      out += "rfm(";
      AppendQuoted(out, RfmClassKey(static_cast<RfmClass>(e.id)));
      out += ')';
      return;
    case Kind::kStage:
      out += "stage(";
      AppendQuoted(out, StageKey(static_cast<Stage>(e.id)));
      out += ')';
      return;
    case Kind::kFirstChannel:
    case Kind::kLastChannel:
      out += fmt::format("{}({})", info.name, e.id);
      return;
    case Kind::kBought:
      out += info.name;
      PrintItemsArgs(out, e, true);
      return;
    case Kind::kOrders:
    case Kind::kGmv:
      out += info.name;
      PrintItemsArgs(out, e, true);
      break;
    case Kind::kEvents:
    case Kind::kEventSum:
      out += info.name;
      out += '(';
      AppendQuoted(out, e.name);
      if (e.kind == Kind::kEventSum) {
        out += ", ";
        AppendQuoted(out, e.property);
      }
      if (e.window_days > 0) out += fmt::format(", last {}d", e.window_days);
      out += ')';
      break;
    case Kind::kLastOrderDays:
    case Kind::kFirstSeenDays:
      out += info.name;
      break;
    case Kind::kFirstEventDays:
    case Kind::kLastEventDays:
      out += info.name;
      out += '(';
      AppendQuoted(out, e.name);
      out += ')';
      break;
  }
  out += fmt::format(" {} {}", CmpText(e.cmp), e.value);
}

// ---------------------------------------------------------------------------------------------
// JSON form

class JsonReader {
 public:
  explicit JsonReader(const Catalogue* cat) : cat_(cat) {}

  Status Read(const json::value& v, const std::string& path, Expr& out, int depth) {
    if (depth > kMaxExpressionDepth) {
      return Status(ErrorCode::kExpressionSyntax,
                    fmt::format("the expression nests deeper than {} levels", kMaxExpressionDepth),
                    path);
    }
    const json::object* o = v.if_object();
    if (!o) return Syntax(path, "each condition is a JSON object");
    // Exactly one key names the node; numbers add "op" and "value".
    const json::value* head = nullptr;
    std::string key;
    for (const auto& kv : *o) {
      std::string_view k(kv.key().data(), kv.key().size());
      if (k == "op" || k == "value") continue;
      if (head) {
        return Syntax(
            path, fmt::format("a condition has one kind; found both \"{}\" and \"{}\"", key, k));
      }
      head = &kv.value();
      key = std::string(k);
    }
    if (!head) return Syntax(path, "missing the condition (e.g. {\"tag\": \"会员\"})");
    std::string sub = path + "." + key;
    Expr e;
    if (key == "and" || key == "or") {
      e.kind = key == "and" ? Kind::kAnd : Kind::kOr;
      const json::array* a = head->if_array();
      if (!a || a->size() < 2) return Syntax(sub, "takes an array of two or more conditions");
      for (size_t i = 0; i < a->size(); ++i) {
        Expr c;
        RETURN_IF_ERROR(Read((*a)[i], fmt::format("{}[{}]", sub, i), c, depth + 1));
        e.children.push_back(std::move(c));
      }
      RETURN_IF_ERROR(NoCompare(*o, path, key));
      Flatten(e);
      out = std::move(e);
      return Status::Ok();
    }
    if (key == "not") {
      e.kind = Kind::kNot;
      Expr c;
      RETURN_IF_ERROR(Read(*head, sub, c, depth + 1));
      e.children.push_back(std::move(c));
      RETURN_IF_ERROR(NoCompare(*o, path, key));
      out = std::move(e);
      return Status::Ok();
    }
    const PredicateInfo* info = FindPredicate(key);
    if (!info) {
      return Syntax(
          sub, fmt::format("unknown condition \"{}\"; the conditions are and, or, not, {}", key,
                           kPredicateList));
    }
    e.kind = info->kind;
    switch (info->args) {
      case Args::kOneString: {
        const json::string* s = head->if_string();
        if (!s) {
          if (head->is_number()) return Mismatch(sub, "takes a string");
          return Syntax(sub, "takes a string");
        }
        if (s->empty()) return Syntax(sub, "needs a non-empty name");
        std::string name(s->data(), s->size());
        if (e.kind == Kind::kRfm) {
          auto c = RfmClassFromName(name);
          if (!c) return Syntax(sub, fmt::format("unknown RFM class; one of {}", RfmKeys()));
          e.id = static_cast<int64_t>(*c);
        } else if (e.kind == Kind::kStage) {
          auto st = StageFromName(name);
          if (!st)
            return Syntax(sub, fmt::format("unknown lifecycle stage; one of {}", StageKeys()));
          e.id = static_cast<int64_t>(*st);
        } else {
          e.name = name;
          if (e.kind == Kind::kTag && cat_) {
            auto id = cat_->ResolveTag(name);
            if (!id.ok()) return Status(id.status().code(), id.status().message(), sub);
            e.id = *id;
          }
        }
        break;
      }
      case Args::kOneInt: {
        auto n = Int(*head);
        if (!n) {
          if (head->is_string()) return Mismatch(sub, "takes a channel id (an integer)");
          return Syntax(sub, "takes a channel id (an integer)");
        }
        if (*n <= 0) return Syntax(sub, "a channel id is positive");
        e.id = *n;
        break;
      }
      default: {
        const json::object* args = head->if_object();
        if (!args) return Syntax(sub, "takes an object of arguments (may be {})");
        for (const auto& kv : *args) {
          std::string_view k(kv.key().data(), kv.key().size());
          std::string field = sub + "." + std::string(k);
          bool ok_key = k == "window_days" ||
                        (info->args == Args::kItems && (k == "sku" || k == "category")) ||
                        ((info->args == Args::kEventType || info->args == Args::kEventProp ||
                          info->args == Args::kEventDays) &&
                         k == "type") ||
                        (info->args == Args::kEventProp && k == "property");
          if (!ok_key) return Syntax(field, "unknown argument");
          if (k == "window_days") {
            if (info->args == Args::kEventDays) return Syntax(field, "unknown argument");
            auto n = Int(kv.value());
            if (!n) return Mismatch(field, "takes an integer number of days");
            if (*n < 1 || *n > kMaxWindowDays) {
              return Status(
                  ErrorCode::kWindowOutOfRange,
                  fmt::format("the window must be 1 to {} days, not {}", kMaxWindowDays, *n),
                  field);
            }
            e.window_days = static_cast<int32_t>(*n);
            continue;
          }
          const json::string* s = kv.value().if_string();
          if (!s) return Mismatch(field, "takes a string");
          if (s->empty()) return Syntax(field, "needs a non-empty value");
          std::string val(s->data(), s->size());
          if (k == "sku" || k == "category") {
            if (e.filter != ItemFilter::kAny) return Syntax(field, "one of sku or category");
            e.filter = k == "sku" ? ItemFilter::kSku : ItemFilter::kCategory;
            e.name = val;
          } else if (k == "type") {
            e.name = val;
          } else {
            e.property = val;
          }
        }
        if ((info->args == Args::kEventType || info->args == Args::kEventProp ||
             info->args == Args::kEventDays) &&
            e.name.empty()) {
          return Syntax(sub + ".type", "missing the event type");
        }
        if (info->args == Args::kEventProp && e.property.empty()) {
          return Syntax(sub + ".property", "missing the property");
        }
        if (info->args == Args::kNone && e.window_days) {
          return Syntax(sub + ".window_days", "unknown argument");
        }
        break;
      }
    }
    if (IsNumeric(e.kind)) {
      auto op = o->if_contains("op");
      auto val = o->if_contains("value");
      if (!op) return Mismatch(path + ".op", fmt::format("{} is a number: add op and value", key));
      const json::string* ops = op->if_string();
      std::optional<Cmp> c;
      if (ops) c = CmpFromText(std::string_view(ops->data(), ops->size()));
      if (!c) return Syntax(path + ".op", "one of = != < <= > >=");
      e.cmp = *c;
      if (!val) return Mismatch(path + ".value", fmt::format("{} is a number: add a value", key));
      auto n = Int(*val);
      if (!n) return Mismatch(path + ".value", fmt::format("{} is compared with an integer", key));
      e.value = *n;
    } else {
      RETURN_IF_ERROR(NoCompare(*o, path, key));
    }
    out = std::move(e);
    return Status::Ok();
  }

 private:
  static std::optional<int64_t> Int(const json::value& v) {
    if (v.is_int64()) return v.get_int64();
    if (v.is_uint64() && v.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
      return static_cast<int64_t>(v.get_uint64());
    }
    return std::nullopt;
  }
  static Status Syntax(const std::string& path, std::string msg) {
    return Status(ErrorCode::kExpressionSyntax, fmt::format("{}: {}", path, msg), path);
  }
  static Status Mismatch(const std::string& path, std::string msg) {
    return Status(ErrorCode::kTypeMismatch, fmt::format("{}: {}", path, msg), path);
  }
  static Status NoCompare(const json::object& o, const std::string& path, std::string_view key) {
    if (o.contains("op") || o.contains("value")) {
      return Mismatch(path, fmt::format("\"{}\" is yes/no and cannot be compared", key));
    }
    return Status::Ok();
  }

  const Catalogue* cat_;
};

json::value ToJsonValue(const Expr& e) {
  json::object o;
  const PredicateInfo& info = InfoOf(e.kind);
  switch (e.kind) {
    case Kind::kAnd:
    case Kind::kOr: {
      json::array a;
      for (const Expr& c : e.children) a.push_back(ToJsonValue(c));
      o[e.kind == Kind::kAnd ? "and" : "or"] = std::move(a);
      return o;
    }
    case Kind::kNot:
      o["not"] = ToJsonValue(e.children[0]);
      return o;
    case Kind::kTag:
    case Kind::kTouchpoint:
    case Kind::kTier:
      o[info.name] = e.name;
      return o;
    case Kind::kRfm:
      o["rfm"] = RfmClassKey(static_cast<RfmClass>(e.id));
      return o;
    case Kind::kStage:
      o["stage"] = StageKey(static_cast<Stage>(e.id));
      return o;
    case Kind::kFirstChannel:
    case Kind::kLastChannel:
      o[info.name] = e.id;
      return o;
    default:
      break;
  }
  json::object args;
  if (e.kind == Kind::kEvents || e.kind == Kind::kEventSum || e.kind == Kind::kFirstEventDays ||
      e.kind == Kind::kLastEventDays) {
    args["type"] = e.name;
  }
  if (e.kind == Kind::kEventSum) args["property"] = e.property;
  if (e.filter != ItemFilter::kAny) {
    args[e.filter == ItemFilter::kSku ? "sku" : "category"] = e.name;
  }
  if (e.window_days > 0) args["window_days"] = e.window_days;
  o[info.name] = std::move(args);
  if (IsNumeric(e.kind)) {
    o["op"] = CmpText(e.cmp);
    o["value"] = e.value;
  }
  return o;
}

}  // namespace

StatusOr<Expr> ParseExpression(std::string_view text, const Catalogue* catalogue, ExprErrorAt* at) {
  Parser p(text, catalogue, at);
  return p.Run();
}

std::string PrintExpression(const Expr& e) {
  std::string out;
  Print(out, e);
  return out;
}

StatusOr<Expr> ExpressionFromJson(const json::value& v, const Catalogue* catalogue) {
  JsonReader r(catalogue);
  Expr e;
  RETURN_IF_ERROR(r.Read(v, "expression", e, 0));
  return e;
}

StatusOr<Expr> ParseExpressionJson(std::string_view json_text, const Catalogue* catalogue) {
  if (json_text.size() > kMaxExpressionBytes) {
    return Status(ErrorCode::kExpressionSyntax, "the expression is too long", "expression");
  }
  boost::system::error_code ec;
  json::parse_options opt;
  opt.max_depth = 2 * kMaxExpressionDepth + 8;
  json::value v = json::parse(json_text, ec, {}, opt);
  if (ec) {
    return Status(ErrorCode::kMalformedJson,
                  fmt::format("the expression is not JSON: {}", ec.message()), "expression");
  }
  return ExpressionFromJson(v, catalogue);
}

json::value ExpressionToJson(const Expr& e) { return ToJsonValue(e); }

std::string PrintExpressionJson(const Expr& e) { return json::serialize(ToJsonValue(e)); }

Status BindTags(Expr& e, const Catalogue& catalogue) {
  if (e.kind == Kind::kTag) {
    auto id = catalogue.ResolveTag(e.name);
    if (!id.ok()) return Status(id.status().code(), id.status().message(), "expression");
    e.id = *id;
  }
  for (Expr& c : e.children) RETURN_IF_ERROR(BindTags(c, catalogue));
  return Status::Ok();
}

}  // namespace siyu::audience
