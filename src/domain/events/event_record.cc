#include "domain/events/event_record.h"

namespace siyu::domain {
namespace {

constexpr char kVersion = 1;

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void PutString(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out += s;
}

struct Reader {
  std::string_view in;
  bool ok = true;

  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in.empty()) break;
      auto b = static_cast<unsigned char>(in.front());
      in.remove_prefix(1);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  std::string_view String() {
    uint64_t n = Varint();
    if (!ok || n > in.size()) {
      ok = false;
      return {};
    }
    std::string_view s = in.substr(0, n);
    in.remove_prefix(n);
    return s;
  }
};

}  // namespace

void EncodeEventRecord(const EventRecord& r, std::string& out) {
  out += kVersion;
  PutVarint(out, static_cast<uint64_t>(r.tenant_id));
  PutVarint(out, static_cast<uint64_t>(r.person_id));
  PutVarint(out, static_cast<uint64_t>(r.ts));
  PutVarint(out, static_cast<uint64_t>(r.received_at));
  PutVarint(out, r.channel_id ? static_cast<uint64_t>(*r.channel_id) + 1 : 0);
  PutString(out, r.event_id);
  PutString(out, r.type);
  PutString(out, r.touchpoint);
  PutString(out, r.ids_json);
  PutString(out, r.properties);
}

StatusOr<EventRecord> DecodeEventRecord(std::string_view payload) {
  if (payload.empty() || payload.front() != kVersion) {
    return Status(ErrorCode::kInternal, "an event log record of an unknown version");
  }
  Reader rd{payload.substr(1)};
  EventRecord r;
  r.tenant_id = static_cast<int64_t>(rd.Varint());
  r.person_id = static_cast<int64_t>(rd.Varint());
  r.ts = static_cast<int64_t>(rd.Varint());
  r.received_at = static_cast<int64_t>(rd.Varint());
  if (uint64_t ch = rd.Varint()) r.channel_id = static_cast<int64_t>(ch - 1);
  r.event_id = rd.String();
  r.type = rd.String();
  r.touchpoint = rd.String();
  r.ids_json = rd.String();
  r.properties = rd.String();
  if (!rd.ok || !rd.in.empty()) {
    return Status(ErrorCode::kInternal, "a damaged event log record");
  }
  return r;
}

}  // namespace siyu::domain
