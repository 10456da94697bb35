// Channels (渠道): where people come from. Each channel has a source pool (the public traffic it
// draws on), a target touchpoint (the private pool it fills), a cost in fen, and a compact `state`
// code (base62, ≤ 30 chars) that travels with a WeCom contact way, a QR scene or a link, so that
// the person it brings is attributed to it. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace siyu::domain {

struct Channel {
  int64_t id = 0;
  int64_t tenant_id = 0;
  std::string name;
  std::string source_pool;
  std::string touchpoint;
  int64_t cost_fen = 0;
  std::string state;
  int64_t created_at = 0;
};

struct NewChannel {
  std::string name;
  std::string source_pool;
  std::string touchpoint;
  int64_t cost_fen = 0;
};

bool IsSourcePool(std::string_view s);
bool IsTouchpoint(std::string_view s);
inline constexpr size_t kMaxStateLength = 30;

class Channels {
 public:
  explicit Channels(store::Store& store) : store_(store) {}
  StatusOr<Channel> Create(int64_t tenant_id, const NewChannel& in);
  StatusOr<std::vector<Channel>> List(int64_t tenant_id);
  StatusOr<Channel> Get(int64_t tenant_id, int64_t id);

 private:
  store::Store& store_;
};

// Inside a write: the channel id for `state` in the tenant, or UNKNOWN_CHANNEL_STATE.
StatusOr<int64_t> ChannelIdByState(store::Conn& c, int64_t tenant_id, const std::string& state);

}  // namespace siyu::domain
