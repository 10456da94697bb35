#include "domain/identity/external_id.h"

#include <array>

namespace siyu::identity {

namespace {

// The forms are spelled out per kind so an error says exactly what the caller should send.
std::string_view FormOf(IdKind kind) {
  switch (kind) {
    case IdKind::kOpenid:
      return "openid:<appid>:<id>";
    case IdKind::kUnionid:
      return "unionid:<id>";
    case IdKind::kExternalUserid:
      return "external_userid:<corpid>:<id>";
    case IdKind::kPhone:
      return "phone:<number> (11-digit mainland mobile or +<country><number>, 8-15 digits)";
    case IdKind::kMemberNo:
      return "member_no:<id>";
    case IdKind::kCustom:
      return "custom:<namespace>:<id>";
  }
  return "";
}

// Character classes as a table: ids are validated on every write, so this loop is hot.
constexpr uint8_t kWord = 1, kCustom = 2, kNamespace = 4;
constexpr std::array<uint8_t, 256> kClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    bool lower = c >= 'a' && c <= 'z', digit = c >= '0' && c <= '9';
    bool word = lower || digit || (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
    t[c] =
        static_cast<uint8_t>((word ? kWord | kCustom : 0) | (c == '.' || c == '@' ? kCustom : 0) |
                             (lower || digit || c == '_' ? kNamespace : 0));
  }
  return t;
}();

bool AllOf(std::string_view s, uint8_t cls) {
  uint8_t all = cls;
  for (char c : s) all &= kClass[static_cast<uint8_t>(c)];
  return all == cls;
}

// 1..max characters of [A-Za-z0-9_-]: the alphabet of WeChat's openid/unionid/external_userid,
// app and corp ids, so anything else is a typo or an injection attempt.
bool IsIdChars(std::string_view s, size_t max) {
  return !s.empty() && s.size() <= max && AllOf(s, kWord);
}

bool IsNamespace(std::string_view s) {
  return !s.empty() && s.size() <= 32 && s[0] >= 'a' && s[0] <= 'z' && AllOf(s, kNamespace);
}

// Custom ids come from the brand's own systems (CRM keys, e-mail-like logins), so '.' and '@' are
// allowed too; ':' never is, which keeps the canonical form splittable at its last ':'.
bool IsCustomIdChars(std::string_view s) {
  return !s.empty() && s.size() <= 128 && AllOf(s, kCustom);
}

class Parser {
 public:
  Parser(std::string_view s, std::string_view field) : s_(s), field_(field) {}

  Status Bad(std::string_view why, std::optional<IdKind> kind = std::nullopt) const {
    std::string msg = "external id '";
    msg.append(s_.substr(0, 80));
    if (s_.size() > 80) msg += "...";
    msg += "' ";
    msg.append(why);
    if (kind) {
      msg += "; use ";
      msg.append(FormOf(*kind));
    } else {
      msg += "; supported kinds: ";
      msg.append(kSupportedIdForms);
    }
    return InvalidField(std::string(field_), std::move(msg));
  }

  // "<scope>:<id>" after the kind, e.g. an openid's "<appid>:<id>".
  Status ScopedId(IdKind kind, std::string_view rest, std::string_view scope_name,
                  std::string* out) const {
    size_t c = rest.find(':');
    if (c == std::string_view::npos) return Bad("needs its " + std::string(scope_name), kind);
    std::string_view scope = rest.substr(0, c), id = rest.substr(c + 1);
    if (!IsIdChars(scope, 64)) {
      return Bad("has a malformed " + std::string(scope_name) + " (1-64 of A-Z a-z 0-9 _ -)", kind);
    }
    if (!IsIdChars(id, 128)) return Bad("has a malformed id (1-128 of A-Z a-z 0-9 _ -)", kind);
    out->append(IdKindName(kind));
    out->push_back(':');
    out->append(scope);
    out->push_back(':');
    out->append(id);
    return Status::Ok();
  }

  Status Phone(std::string_view rest, std::string* out) const {
    constexpr IdKind k = IdKind::kPhone;
    char digits[32];
    size_t n = 0;
    bool plus = false;
    for (size_t i = 0; i < rest.size(); ++i) {
      char c = rest[i];
      if (c == '+' && i == 0) {
        plus = true;
      } else if (c == ' ' || c == '-') {
        continue;
      } else if (c >= '0' && c <= '9') {
        if (n == sizeof(digits)) return Bad("has too many digits", k);
        digits[n++] = c;
      } else {
        return Bad("has a malformed number", k);
      }
    }
    std::string_view d(digits, n);
    out->append("phone:+");
    if (!plus) {
      if (n != 11 || d[0] != '1') return Bad("is not an 11-digit mainland number", k);
      out->append("86");
      out->append(d);
      return Status::Ok();
    }
    if (n < 8 || n > 15 || d[0] == '0') return Bad("is not a valid international number", k);
    if (d.starts_with("86") && (n != 13 || d[2] != '1')) {
      return Bad("is not a valid mainland number", k);
    }
    out->append(d);
    return Status::Ok();
  }

  Status Run(std::string* out, IdKind* kind_out) const {
    out->clear();
    // The canonical form is about as long as the input (a phone may gain "+86"): one allocation.
    out->reserve(s_.size() + 8);
    size_t colon = s_.find(':');
    if (colon == std::string_view::npos) return Bad("has no kind");
    std::string_view name = s_.substr(0, colon), rest = s_.substr(colon + 1);
    std::optional<IdKind> kind = IdKindFromName(name);
    if (!kind) {
      std::string why = "has an unknown kind '";
      why.append(name.substr(0, 20));
      why += "'";
      return Bad(why);
    }
    *kind_out = *kind;
    switch (*kind) {
      case IdKind::kOpenid:
        return ScopedId(*kind, rest, "app id", out);
      case IdKind::kExternalUserid:
        return ScopedId(*kind, rest, "corp id", out);
      case IdKind::kUnionid:
      case IdKind::kMemberNo: {
        size_t max = *kind == IdKind::kUnionid ? 128 : 64;
        if (!IsIdChars(rest, max)) {
          return Bad("is malformed (1-" + std::to_string(max) + " of A-Z a-z 0-9 _ -)", *kind);
        }
        out->append(name);
        out->push_back(':');
        out->append(rest);
        return Status::Ok();
      }
      case IdKind::kPhone:
        return Phone(rest, out);
      case IdKind::kCustom: {
        size_t c = rest.find(':');
        if (c == std::string_view::npos) return Bad("needs a namespace", *kind);
        std::string_view ns = rest.substr(0, c), id = rest.substr(c + 1);
        if (!IsNamespace(ns)) {
          return Bad("has a malformed namespace (1-32 of a-z 0-9 _, starting with a letter)",
                     *kind);
        }
        if (!IsCustomIdChars(id)) {
          return Bad("has a malformed id (1-128 of A-Z a-z 0-9 _ - . @)", *kind);
        }
        out->append("custom:");
        out->append(ns);
        out->push_back(':');
        out->append(id);
        return Status::Ok();
      }
    }
    return Bad("has an unknown kind");
  }

 private:
  std::string_view s_;
  std::string_view field_;
};

}  // namespace

std::string_view IdKindName(IdKind kind) {
  switch (kind) {
    case IdKind::kOpenid:
      return "openid";
    case IdKind::kUnionid:
      return "unionid";
    case IdKind::kExternalUserid:
      return "external_userid";
    case IdKind::kPhone:
      return "phone";
    case IdKind::kMemberNo:
      return "member_no";
    case IdKind::kCustom:
      return "custom";
  }
  return "";
}

std::optional<IdKind> IdKindFromName(std::string_view name) {
  for (IdKind k : kAllIdKinds) {
    if (IdKindName(k) == name) return k;
  }
  return std::nullopt;
}

Status CanonicalizeExternalId(std::string_view s, std::string_view field, std::string* out,
                              IdKind* kind) {
  return Parser(s, field).Run(out, kind);
}

StatusOr<ExternalId> ParseExternalId(std::string_view s, std::string_view field) {
  ExternalId id;
  RETURN_IF_ERROR(CanonicalizeExternalId(s, field, &id.canonical, &id.kind));
  return id;
}

}  // namespace siyu::identity
