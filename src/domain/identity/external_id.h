// External ids: the grammar of every id a person can be known by (an openid per app, a unionid, a
// WeCom external_userid per corp, a phone number, a member number, a brand's custom ids) and their
// canonical text forms. Two spellings of the same id (a phone with or without +86, with spaces)
// have one canonical form, so the identity graph and the store compare ids as plain strings.
//
// Thread-safety: pure functions over their arguments; safe from any thread.
// Ownership: results own their strings; nothing is retained from the input.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace siyu::identity {

// The kinds of external id. The numeric values are not persisted (the canonical text is).
enum class IdKind : uint8_t {
  kOpenid,          // openid:<appid>:<id>           one per official account / mini-program
  kUnionid,         // unionid:<id>                  one per Open Platform account
  kExternalUserid,  // external_userid:<corpid>:<id> a WeCom contact, one per corp
  kPhone,           // phone:+<country><number>      E.164 digits; mainland 11 digits -> +86
  kMemberNo,        // member_no:<id>                the brand's member card number
  kCustom,          // custom:<namespace>:<id>       any other system of the brand's
};

inline constexpr std::array<IdKind, 6> kAllIdKinds = {IdKind::kOpenid,         IdKind::kUnionid,
                                                      IdKind::kExternalUserid, IdKind::kPhone,
                                                      IdKind::kMemberNo,       IdKind::kCustom};

// The kind's name as it appears before the first ':' ("openid", "external_userid", ...).
std::string_view IdKindName(IdKind kind);
// The kind named `name` (exact, lower case), if any.
std::optional<IdKind> IdKindFromName(std::string_view name);

// The accepted forms, for error messages and documentation.
inline constexpr std::string_view kSupportedIdForms =
    "openid:<appid>:<id>, unionid:<id>, external_userid:<corpid>:<id>, phone:<number>, "
    "member_no:<id>, custom:<namespace>:<id>";

// A parsed external id in canonical form.
struct ExternalId {
  IdKind kind = IdKind::kOpenid;
  std::string canonical;

  std::string_view kind_name() const { return IdKindName(kind); }
  bool operator==(const ExternalId&) const = default;
};

// Parses `s` and returns its canonical form, or INVALID_FIELD naming `field` with a message that
// says what is wrong and which forms are accepted. The canonical form is a fixed point: parsing it
// again returns it unchanged. Rules:
//   openid:<appid>:<id>            appid 1-64, id 1-128 of [A-Za-z0-9_-]
//   unionid:<id>                   id 1-128 of [A-Za-z0-9_-]
//   external_userid:<corpid>:<id>  corpid 1-64, id 1-128 of [A-Za-z0-9_-]
//   phone:<number>                 spaces and '-' are ignored; 11 digits starting with 1 is a
//                                  mainland mobile -> phone:+86<11 digits>; otherwise '+' then
//                                  8-15 digits not starting with 0 -> phone:+<digits>; a +86
//                                  number must be a mainland mobile (13 digits, 1 after 86)
//   member_no:<id>                 1-64 of [A-Za-z0-9_-]
//   custom:<namespace>:<id>        namespace 1-32 of [a-z0-9_] starting with a letter; id 1-128 of
//                                  [A-Za-z0-9_.@-]
// Kinds are lower case and exact ("PHONE:..." is an unknown kind).
StatusOr<ExternalId> ParseExternalId(std::string_view s, std::string_view field = "external_id");

// The same parse without allocating on success when `out` already has capacity: writes the
// canonical form to `*out` and the kind to `*kind`. On error `*out` is unspecified. For hot paths
// (the identity graph validates every id it is given).
Status CanonicalizeExternalId(std::string_view s, std::string_view field, std::string* out,
                              IdKind* kind);

}  // namespace siyu::identity
