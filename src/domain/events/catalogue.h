// The event catalogue: the standard event types siyu understands, each with the properties it
// requires or allows and their JSON types, plus custom types (`custom:<name>`) whose properties are
// free. The console reads it (GET /v1/events/catalogue) to explain events; ingestion checks every
// standard event against it, so that a `product_view` without a `sku` or an `order_paid` whose
// `amount_fen` is a string is refused at the door instead of polluting every report downstream.
//
// Standard types check only the properties they declare: other properties are stored as sent, so
// that an SDK can add context (utm_*, a page title) without waiting for a catalogue change.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace siyu::domain {

enum class PropertyType { kString, kInteger, kBoolean };
std::string_view PropertyTypeName(PropertyType t);  // "string" | "integer" | "boolean"

struct PropertySpec {
  std::string_view name;
  PropertyType type;
  bool required;
  // Strings: length in characters; integers: the value. Unused for booleans.
  int64_t min;
  int64_t max;
  std::string_view description;
};

struct EventTypeSpec {
  std::string_view name;
  std::string_view description;
  std::vector<PropertySpec> properties;
  // With a channel_state, the event moves the person's last channel (first touch is kept), as
  // POST /v1/people does: these are the moments a channel's QR code or link brings a person in.
  bool moves_last_channel = false;
};

// Custom types are `custom:` + 1–64 characters of [A-Za-z0-9_.-].
inline constexpr std::string_view kCustomEventPrefix = "custom:";
inline constexpr size_t kMaxCustomNameLength = 64;
// Properties of any event, serialised compactly, are at most this many bytes.
inline constexpr size_t kMaxPropertiesBytes = 8 * 1024;

// The standard types, in the order the console lists them.
const std::vector<EventTypeSpec>& EventCatalogue();
// The standard type named `name`, or nullptr.
const EventTypeSpec* FindEventType(std::string_view name);
bool IsCustomEventType(std::string_view name);

// Checks `type` (a standard type or a well-formed custom type) and returns its spec, nullptr for a
// custom type. INVALID_FIELD on `field` otherwise.
StatusOr<const EventTypeSpec*> CheckEventType(std::string_view type, const std::string& field);

// Checks `properties` against `spec` (nullptr: a custom type, anything goes): each declared
// property present when required, of its JSON type and within its range. A null value counts as
// absent. Errors name the property, e.g. `events[3].properties.sku`, under `field`.
Status CheckProperties(const EventTypeSpec* spec, const json::object& properties,
                       std::string_view field);

}  // namespace siyu::domain
