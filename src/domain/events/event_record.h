// The event log's record of one accepted event (decision 0007): what the `events` table holds for
// an event, in a compact binary form. Version byte 1, then unsigned LEB128 varints — tenant_id,
// person_id, ts, received_at, channel_id + 1 (0: none) — then five length-prefixed strings
// (varint length, bytes): event_id, type, touchpoint, ids (JSON array), properties (JSON object).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace siyu::domain {

struct EventRecord {
  int64_t tenant_id = 0;
  int64_t person_id = 0;  // the person row the event is attached to (its origin row)
  int64_t ts = 0;
  int64_t received_at = 0;
  std::optional<int64_t> channel_id;
  std::string_view event_id, type, touchpoint, ids_json, properties;  // views into the payload
};

// Appends the record to `out`.
void EncodeEventRecord(const EventRecord& r, std::string& out);
// Reads a record; its string views point into `payload`. INTERNAL for bytes that are not one.
StatusOr<EventRecord> DecodeEventRecord(std::string_view payload);

}  // namespace siyu::domain
