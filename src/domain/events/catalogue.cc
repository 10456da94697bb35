#include "domain/events/catalogue.h"

#include <algorithm>

namespace siyu::domain {

namespace {

using T = PropertyType;

// Money in events is integer fen like everywhere else; ¥10,000,000,000 bounds a single payment.
constexpr int64_t kMaxEventAmountFen = 1'000'000'000'000;
constexpr int64_t kMaxQuantity = 100'000;
constexpr int64_t kMaxPriceFen = 10'000'000'000;

PropertySpec Str(std::string_view name, bool required, int64_t max, std::string_view doc) {
  return {name, T::kString, required, 1, max, doc};
}
PropertySpec Int(std::string_view name, bool required, int64_t min, int64_t max,
                 std::string_view doc) {
  return {name, T::kInteger, required, min, max, doc};
}

std::vector<EventTypeSpec> Build() {
  return {
      {"page_view",
       "a page of the mini program, H5 site or official account article was viewed",
       {Str("path", true, 512, "page path or URL"), Str("title", false, 256, "page title"),
        Str("referrer", false, 512, "the page before")}},
      {"product_view",
       "a product detail page was viewed",
       {Str("sku", true, 64, "the product's SKU"), Str("spu", false, 64, "the product family"),
        Int("price_fen", false, 0, kMaxPriceFen, "price shown, in fen")}},
      {"add_to_cart",
       "a product was added to the cart",
       {Str("sku", true, 64, "the product's SKU"),
        Int("quantity", true, 1, kMaxQuantity, "how many were added"),
        Int("price_fen", false, 0, kMaxPriceFen, "unit price shown, in fen")}},
      {"order_paid",
       "an order was paid (the order itself goes to POST /v1/orders)",
       {Str("order_no", true, 64, "the order number"),
        Int("amount_fen", true, 0, kMaxEventAmountFen, "amount paid, in fen")}},
      {"order_refunded",
       "an order was refunded",
       {Str("order_no", true, 64, "the order number"),
        Int("amount_fen", true, 0, kMaxEventAmountFen, "amount refunded, in fen"),
        Str("reason", false, 256, "why")}},
      {"share",
       "the person shared something (to a friend, a group or Moments)",
       {Str("content", false, 512, "what was shared: a page path, a product, an article"),
        Str("target", false, 32, "where to: friend, group, moments, …")}},
      {"invite_accepted",
       "the person accepted another person's invitation",
       {Str("inviter_id", true, 256, "the inviter's id, e.g. unionid:…"),
        Str("campaign", false, 64, "the invitation campaign")}},
      {"contact_added",
       "the person added a WeCom member as a contact (企业微信加好友)",
       {Str("user_id", true, 64, "the WeCom member's userid"),
        Str("welcome_code", false, 128, "the welcome message code of the add-contact callback")},
       true},
      {"contact_removed",
       "the WeCom contact between the person and a member ended",
       {Str("user_id", true, 64, "the WeCom member's userid")}},
      {"group_joined",
       "the person joined a customer group (客户群)",
       {Str("chat_id", true, 128, "the group's chat id")}},
      {"group_left", "the person left a customer group", {Str("chat_id", true, 128, "the group")}},
      {"message_read",
       "the person read a message sent to them",
       {Str("message_id", true, 128, "the message")}},
      {"qr_scanned",
       "the person scanned a QR code (a channel code, a store poster)",
       {Str("scene", false, 64, "the QR code's scene value")},
       true},
      {"follow",
       "the person followed the official account",
       {Str("app_id", false, 64, "the official account's app id"),
        Str("scene", false, 64, "how: search, QR code, article, …")},
       true},
      {"unfollow",
       "the person unfollowed the official account",
       {Str("app_id", false, 64, "the official account's app id")}},
      {"member_bound",
       "the person bound (registered) a membership",
       {Str("member_no", true, 64, "the membership number"),
        Str("level", false, 64, "membership level")}},
      {"coupon_received",
       "the person received a coupon",
       {Str("coupon_id", true, 64, "the coupon")}},
      {"coupon_used",
       "the person used a coupon",
       {Str("coupon_id", true, 64, "the coupon"),
        Str("order_no", false, 64, "the order it was used on")}},
      {"live_watch",
       "the person watched a live stream",
       {Str("live_id", true, 64, "the live stream"),
        Int("seconds", true, 0, 86'400, "seconds watched")}},
  };
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

}  // namespace

std::string_view PropertyTypeName(PropertyType t) {
  switch (t) {
    case PropertyType::kString:
      return "string";
    case PropertyType::kInteger:
      return "integer";
    case PropertyType::kBoolean:
      return "boolean";
  }
  return "?";
}

const std::vector<EventTypeSpec>& EventCatalogue() {
  static const std::vector<EventTypeSpec> kCatalogue = Build();
  return kCatalogue;
}

const EventTypeSpec* FindEventType(std::string_view name) {
  for (const auto& t : EventCatalogue()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

bool IsCustomEventType(std::string_view name) {
  if (!name.starts_with(kCustomEventPrefix)) return false;
  std::string_view rest = name.substr(kCustomEventPrefix.size());
  return !rest.empty() && rest.size() <= kMaxCustomNameLength &&
         std::all_of(rest.begin(), rest.end(), IsNameChar);
}

StatusOr<const EventTypeSpec*> CheckEventType(std::string_view type, const std::string& field) {
  if (const EventTypeSpec* spec = FindEventType(type)) return spec;
  if (IsCustomEventType(type)) return static_cast<const EventTypeSpec*>(nullptr);
  if (type.starts_with(kCustomEventPrefix)) {
    return InvalidField(field, "custom event type '" + std::string(type.substr(0, 80)) +
                                   "' is malformed; use custom:<name> with 1-64 letters, digits, "
                                   "'_', '.' or '-'");
  }
  return InvalidField(field, "unknown event type '" + std::string(type.substr(0, 80)) +
                                 "'; use a standard type (GET /v1/events/catalogue) or "
                                 "custom:<name>");
}

Status CheckProperties(const EventTypeSpec* spec, const json::object& properties,
                       std::string_view field) {
  if (!spec) return Status::Ok();
  for (const PropertySpec& p : spec->properties) {
    auto path = [&] { return std::string(field) + "." + std::string(p.name); };
    auto it = properties.find(p.name);
    if (it == properties.end() || it->value().is_null()) {
      if (p.required) {
        return Status(ErrorCode::kMissingField,
                      "a " + std::string(spec->name) + " event needs property '" +
                          std::string(p.name) + "' (" + std::string(PropertyTypeName(p.type)) + ")",
                      path());
      }
      continue;
    }
    const json::value& v = it->value();
    auto range = [&](std::string_view what) {
      return InvalidField(path(), "property '" + std::string(p.name) + "' of a " +
                                      std::string(spec->name) + " event must " + std::string(what) +
                                      " from " + std::to_string(p.min) + " to " +
                                      std::to_string(p.max));
    };
    auto wrong_type = [&] {
      return InvalidField(path(), "property '" + std::string(p.name) + "' of a " +
                                      std::string(spec->name) + " event must be a JSON " +
                                      std::string(PropertyTypeName(p.type)));
    };
    switch (p.type) {
      case PropertyType::kString: {
        if (!v.is_string()) return wrong_type();
        int64_t n = Utf8Length(v.as_string());
        if (n < p.min || n > p.max) return range("have a length");
        break;
      }
      case PropertyType::kInteger: {
        if (v.is_uint64()) return range("be an integer");  // above INT64_MAX
        // 3.0 is refused too: readers of the stored event rely on an integer.
        if (!v.is_int64()) return wrong_type();
        int64_t x = v.as_int64();
        if (x < p.min || x > p.max) return range("be an integer");
        break;
      }
      case PropertyType::kBoolean:
        if (!v.is_bool()) return wrong_type();
        break;
    }
  }
  return Status::Ok();
}

}  // namespace siyu::domain
