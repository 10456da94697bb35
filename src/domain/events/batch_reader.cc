// POST /v1/events' body read in one pass, without a JSON tree (ReadEventBatchFast). The events come
// out exactly as the tree reader (ReadEventBatchTree) makes them; the pass gives up on anything it
// is not sure of — an element with an error, a duplicate key, a number where a string goes — and
// the tree reader then reads the whole body again, so that what a client is told about a bad
// element is written in one place.
#include <algorithm>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/serialize.hpp>
#include <memory>

#include "domain/channels/channels.h"
#include "domain/events/events.h"
#include "domain/identity/external_id.h"

namespace siyu::domain {
namespace {

namespace bj = boost::json;
using bj::error_code;

// Which field of an element a value belongs to.
enum Field : uint8_t {
  kNone = 0,
  kEventId,
  kType,
  kIds,
  kTs,
  kTouchpoint,
  kChannelState,
  kProperties,
};

Field FieldOf(std::string_view key) {
  switch (key.size()) {
    case 2:
      if (key == "ts") return kTs;
      break;
    case 3:
      if (key == "ids") return kIds;
      break;
    case 4:
      if (key == "type") return kType;
      break;
    case 8:
      if (key == "event_id") return kEventId;
      break;
    case 10:
      if (key == "touchpoint") return kTouchpoint;
      if (key == "properties") return kProperties;
      break;
    case 13:
      if (key == "channel_state") return kChannelState;
      break;
  }
  return kNone;
}

// Containers are as deep as ParseJsonObject allows; the element is at depth 3 and its properties
// object at depth 4.
constexpr int kMaxDepth = kMaxJsonDepth;
constexpr int kElementDepth = 3;
constexpr int kPropsDepth = 4;
constexpr size_t kPropsReserve = 256;
// A reused item's string keeps at most this much memory.
constexpr size_t kKeepBytes = 4096;

class BatchHandler {
 public:
  static constexpr std::size_t max_object_size = bj::object::max_size();
  static constexpr std::size_t max_array_size = bj::array::max_size();
  static constexpr std::size_t max_key_size = bj::string::max_size();
  static constexpr std::size_t max_string_size = bj::string::max_size();

  // Reads into `items`, whose elements (from an earlier batch) are reused: their strings keep
  // their memory, so that a batch read into the same vector as the last one allocates little.
  BatchHandler(int64_t now_ms, bj::storage_ptr sp, std::vector<EventItem>& items)
      : items(items), now_ms_(now_ms), top_props_(std::move(sp)) {}

  std::vector<EventItem>& items;
  size_t count = 0;  // items read so far: items[0, count)
  bool events_seen = false;

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return depth_ == 0 && events_seen; }

  bool on_object_begin(error_code&) {
    if (depth_ >= kMaxDepth) return false;
    if (depth_ == 0) {
      ++depth_;
      return true;
    }
    if (depth_ == 2) {  // an element
      if (count == kMaxEventsPerBatch) return false;
      ++depth_;
      StartElement();
      return true;
    }
    if (depth_ == kElementDepth) {
      if (field_ != kProperties) return false;
      ++depth_;
      props_open_ = true;
      auto& p = Props();
      p.reserve(kPropsReserve);
      p += '{';
      first_[depth_] = true;
      in_array_[depth_] = false;
      return true;
    }
    if (depth_ > kElementDepth && props_open_) {
      if (!PropsValue()) return false;
      if (depth_ == kPropsDepth) top_props_.emplace(key_, bj::object(top_props_.storage()));
      Props() += '{';
      ++depth_;
      first_[depth_] = true;
      in_array_[depth_] = false;
      nested_keys_[depth_].clear();
      return true;
    }
    return false;
  }

  bool on_object_end(std::size_t, error_code&) {
    if (depth_ == 1) {
      --depth_;
      return events_seen;
    }
    if (depth_ == kElementDepth) {
      --depth_;
      return FinishElement();
    }
    if (depth_ >= kPropsDepth && props_open_) {
      Props() += '}';
      --depth_;
      if (depth_ == kElementDepth) props_open_ = false;
      return true;
    }
    return false;
  }

  bool on_array_begin(error_code&) {
    if (depth_ >= kMaxDepth) return false;
    if (depth_ == 1) {
      if (!in_events_key_ || events_seen) return false;
      events_seen = true;
      ++depth_;
      return true;
    }
    if (depth_ == kElementDepth) {
      if (field_ != kIds) return false;
      ++depth_;
      ids_open_ = true;
      return true;
    }
    if (depth_ > kElementDepth && props_open_) {
      if (!PropsValue()) return false;
      if (depth_ == kPropsDepth) top_props_.emplace(key_, bj::array(top_props_.storage()));
      Props() += '[';
      ++depth_;
      first_[depth_] = true;
      in_array_[depth_] = true;
      return true;
    }
    return false;
  }

  bool on_array_end(std::size_t n, error_code&) {
    if (depth_ == 2) {
      --depth_;
      return n > 0;
    }
    if (ids_open_) {
      ids_open_ = false;
      --depth_;
      return ids_count_ >= 1;
    }
    if (depth_ > kPropsDepth && props_open_ && in_array_[depth_]) {
      Props() += ']';
      in_array_[depth_] = false;
      --depth_;
      return true;
    }
    return false;
  }

  bool on_key_part(bj::string_view s, std::size_t, error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }

  bool on_key(bj::string_view s, std::size_t, error_code&) {
    std::string_view key = Joined(s);
    if (depth_ == 1) {
      in_events_key_ = key == "events";
      return in_events_key_;
    }
    if (depth_ == kElementDepth) {
      field_ = FieldOf(key);
      if (field_ == kNone) return false;
      const uint32_t bit = 1u << field_;
      if (keys_ & bit) return false;  // a duplicate key
      keys_ |= bit;
      present_ |= bit;
      return true;
    }
    if (depth_ >= kPropsDepth && props_open_) {
      std::string& p = Props();
      if (!first_[depth_]) p += ',';
      first_[depth_] = false;
      if (depth_ == kPropsDepth) {
        if (top_props_.contains(key)) return false;
        key_.assign(key);
      } else {
        auto& keys = nested_keys_[depth_];
        for (const auto& k : keys) {
          if (k == key) return false;
        }
        keys.emplace_back(key);
      }
      AppendJsonString(p, key);
      p += ':';
      return true;
    }
    return false;
  }

  bool on_string_part(bj::string_view s, std::size_t, error_code&) {
    part_.append(s.data(), s.size());
    return true;
  }

  bool on_string(bj::string_view s, std::size_t, error_code&) {
    std::string_view v = Joined(s);
    if (depth_ == kElementDepth) {
      EventIn& e = Cur().event;
      switch (field_) {
        case kEventId:
          e.event_id.assign(v);
          return true;
        case kType:
          e.type.assign(v);
          return true;
        case kTouchpoint:
          e.touchpoint.assign(v);
          return true;
        case kChannelState:
          e.channel_state.emplace(v);
          return true;
        default:
          return false;
      }
    }
    if (ids_open_ && depth_ == kElementDepth + 1) return AddId(v);
    if (depth_ >= kPropsDepth && props_open_) {
      if (!PropsValue()) return false;
      AppendJsonString(Props(), v);
      if (depth_ == kPropsDepth) top_props_.emplace(key_, bj::string(v, top_props_.storage()));
      return true;
    }
    return false;
  }

  bool on_number_part(bj::string_view, error_code&) { return true; }

  bool on_int64(int64_t i, bj::string_view, error_code&) {
    if (depth_ == kElementDepth) {
      if (field_ != kTs) return false;
      Cur().event.ts = i;
      ts_seen_ = true;
      return true;
    }
    if (!PropsScalar()) return false;
    AppendJsonInt(Props(), i);
    if (depth_ == kPropsDepth) top_props_.emplace(key_, i);
    return true;
  }

  bool on_uint64(uint64_t u, bj::string_view, error_code&) {
    if (!PropsScalar()) return false;
    AppendJsonInt(Props(), u);
    if (depth_ == kPropsDepth) top_props_.emplace(key_, u);
    return true;
  }

  bool on_double(double d, bj::string_view, error_code&) {
    if (!PropsScalar()) return false;
    Props() += bj::serialize(bj::value(d));
    if (depth_ == kPropsDepth) top_props_.emplace(key_, d);
    return true;
  }

  bool on_bool(bool b, error_code&) {
    if (!PropsScalar()) return false;
    Props() += b ? "true" : "false";
    if (depth_ == kPropsDepth) top_props_.emplace(key_, b);
    return true;
  }

  bool on_null(error_code&) {
    if (depth_ == kElementDepth) {
      // A null optional field is an absent one; a null required field is missing (an error).
      if (field_ == kChannelState || field_ == kProperties) {
        present_ &= ~(1u << field_);
        return true;
      }
      return false;
    }
    if (!PropsScalar()) return false;
    Props() += "null";
    if (depth_ == kPropsDepth) top_props_.emplace(key_, nullptr);
    return true;
  }

  bool on_comment_part(bj::string_view, error_code&) { return false; }
  bool on_comment(bj::string_view, error_code&) { return false; }

 private:
  // A value inside the properties: a comma before it when it is an array's element.
  bool PropsValue() {
    if (in_array_[depth_]) {
      if (!first_[depth_]) Props() += ',';
      first_[depth_] = false;
    }
    return true;
  }
  bool PropsScalar() { return depth_ >= kPropsDepth && props_open_ && PropsValue(); }

  std::string_view Joined(bj::string_view last) {
    if (part_.empty()) return {last.data(), last.size()};
    part_.append(last.data(), last.size());
    joined_.swap(part_);
    part_.clear();
    return joined_;
  }

  EventItem& Cur() { return items[count - 1]; }
  std::string& Props() { return Cur().event.properties; }

  void StartElement() {
    if (count < items.size()) {
      Reuse(items[count]);
    } else {
      items.emplace_back();
    }
    ++count;
    keys_ = present_ = 0;
    field_ = kNone;
    ts_seen_ = false;
    ids_count_ = 0;
    ids_used_ = 0;
    top_props_.clear();
    EventIn& e = Cur().event;
    e.ids.reserve(3);
    e.ids_json.reserve(128);
    e.ids_json = "[";
  }

  // An item of an earlier batch made empty, its strings' memory kept (within reason: a big one is
  // given back, so that one big batch does not keep megabytes per thread).
  static void Reuse(EventItem& item) {
    auto clear = [](std::string& s) {
      if (s.capacity() > kKeepBytes) {
        std::string().swap(s);
      } else {
        s.clear();
      }
    };
    clear(item.event_id);
    if (!item.rejected.ok()) item.rejected = Status::Ok();
    EventIn& e = item.event;
    clear(e.event_id);
    clear(e.type);
    e.spec = nullptr;
    // e.ids keeps its elements: AddCanonicalId writes over them and FinishElement drops the rest.
    e.ts = 0;
    clear(e.touchpoint);
    e.channel_state.reset();
    clear(e.ids_json);
    clear(e.properties);
    if (e.integer_properties) e.integer_properties->clear();
  }

  bool AddId(std::string_view v) {
    if (++ids_count_ > kMaxIdsPerEvent) return false;
    identity::IdKind kind;
    if (!identity::CanonicalizeExternalId(v, {}, &canonical_, &kind).ok()) return false;
    AddCanonicalId(Cur().event, ids_used_, canonical_, identity::IdKindName(kind));
    return true;
  }

  // The checks of ReadEventItem, for an element that passes them all.
  bool FinishElement() {
    constexpr uint32_t kRequired =
        (1u << kEventId) | (1u << kType) | (1u << kIds) | (1u << kTs) | (1u << kTouchpoint);
    if ((present_ & kRequired) != kRequired || !ts_seen_) return false;
    EventItem& item = Cur();
    EventIn& e = item.event;
    e.ids.resize(ids_used_);                   // the slots of an earlier batch's longer list go
    if (!IsEventId(e.event_id)) return false;  // also its length: ASCII, 1–64
    if (e.type.empty() || e.type.size() > kCustomEventPrefix.size() + kMaxCustomNameLength) {
      return false;
    }
    e.spec = FindEventType(e.type);
    if (!e.spec && !IsCustomEventType(e.type)) return false;
    if (e.ts < kMinEventTs || e.ts > now_ms_ + kMaxEventClockSkewMs) return false;
    if (!IsEventTouchpoint(e.touchpoint)) return false;
    if (e.channel_state) {
      int64_t n = Utf8Length(*e.channel_state);
      if (n < 1 || n > static_cast<int64_t>(kMaxStateLength)) return false;
    }
    e.ids_json += ']';
    if (!(present_ & (1u << kProperties))) e.properties = "{}";
    if (e.properties.size() > kMaxPropertiesBytes) return false;
    if (e.spec && !CheckProperties(e.spec, top_props_, "properties").ok()) return false;
    if (!e.integer_properties) e.integer_properties.emplace();
    IntegerProperties(top_props_, *e.integer_properties);
    item.event_id = e.event_id;
    return true;
  }

  const int64_t now_ms_;
  int depth_ = 0;
  bool in_events_key_ = false;
  // The element being read.
  Field field_ = kNone;
  uint32_t keys_ = 0;     // bit per Field: its key was read
  uint32_t present_ = 0;  // bit per Field: present and not null
  bool ts_seen_ = false;
  bool ids_open_ = false;
  size_t ids_count_ = 0;
  size_t ids_used_ = 0;    // of them, different ids: event.ids[0, ids_used_)
  std::string canonical_;  // the id being added
  bool props_open_ = false;
  bj::object top_props_;  // the properties' top-level values (containers left empty)
  std::string key_;       // the top-level property whose value comes next
  // Per depth inside the properties: no element or key written yet; an array (not an object).
  bool first_[kMaxDepth + 2] = {};
  bool in_array_[kMaxDepth + 2] = {};
  std::vector<std::string> nested_keys_[kMaxDepth + 2];  // keys of a nested object so far
  std::string part_, joined_;                            // strings split by escapes
};

}  // namespace

bool ReadEventBatchFast(std::string_view body, int64_t now_ms, std::vector<EventItem>& items) {
  constexpr size_t kArenaBytes = 64 * 1024;
  thread_local std::unique_ptr<unsigned char[]> arena(new unsigned char[kArenaBytes]);
  bj::monotonic_resource mr(arena.get(), kArenaBytes);
  bj::parse_options opt;
  opt.max_depth = kMaxDepth;
  bj::basic_parser<BatchHandler> p(opt, now_ms, bj::storage_ptr(&mr), items);
  // Elements take ~250 bytes and more: room for all of them at once.
  items.reserve(std::min(kMaxEventsPerBatch, body.size() / 200 + 1));
  error_code ec;
  size_t n = p.write_some(false, body.data(), body.size(), ec);
  if (ec || n != body.size() || !p.done()) return false;
  items.resize(p.handler().count);
  return true;
}

std::optional<std::vector<EventItem>> ReadEventBatchFast(std::string_view body, int64_t now_ms) {
  std::vector<EventItem> items;
  if (!ReadEventBatchFast(body, now_ms, items)) return std::nullopt;
  return items;
}

}  // namespace siyu::domain
