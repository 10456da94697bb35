#include "domain/channels/channels.h"

#include <array>

#include "common/crypto.h"
#include "common/time.h"

namespace siyu::domain {

using store::Conn;
using store::Rows;

namespace {
constexpr std::array<std::string_view, 4> kPools = {"wechat_public", "ecommerce_platform",
                                                    "offline", "partner"};
constexpr std::array<std::string_view, 4> kTouchpoints = {"official_account", "mini_program",
                                                          "wecom", "group"};
constexpr const char* kColumns =
    "id, tenant_id, name, source_pool, touchpoint, cost_fen, state, created_at";

Channel FromRow(const store::Row& r) {
  return Channel{r.Int(0),  r.Int(1), r.Text(2), r.Text(3),
                 r.Text(4), r.Int(5), r.Text(6), r.Int(7)};
}
}  // namespace

bool IsSourcePool(std::string_view s) {
  for (auto p : kPools) {
    if (p == s) return true;
  }
  return false;
}
bool IsTouchpoint(std::string_view s) {
  for (auto p : kTouchpoints) {
    if (p == s) return true;
  }
  return false;
}

StatusOr<Channel> Channels::Create(int64_t tenant_id, const NewChannel& in) {
  Channel ch;
  ch.tenant_id = tenant_id;
  ch.name = in.name;
  ch.source_pool = in.source_pool;
  ch.touchpoint = in.touchpoint;
  ch.cost_fen = in.cost_fen;
  ch.created_at = NowMs();
  RETURN_IF_ERROR(store_.Write([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id FROM channels WHERE tenant_id = ? AND name = ?",
                                     {tenant_id, in.name}));
    if (!r.empty()) {
      return Status(ErrorCode::kAlreadyExists,
                    "a channel named '" + in.name + "' exists; choose another name", "name");
    }
    // 'c' + 12 base62 characters: 71 random bits, 13 characters, far under WeCom's 30.
    for (int attempt = 0; attempt < 8; ++attempt) {
      ch.state = "c" + RandomBase62(12);
      ASSIGN_OR_RETURN(r, c.Query("SELECT id FROM channels WHERE tenant_id = ? AND state = ?",
                                  {tenant_id, ch.state}));
      if (r.empty()) break;
    }
    ASSIGN_OR_RETURN(r, c.Query("INSERT INTO channels (tenant_id, name, source_pool, touchpoint, "
                                "cost_fen, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                                "RETURNING id",
                                {tenant_id, ch.name, ch.source_pool, ch.touchpoint, ch.cost_fen,
                                 ch.state, ch.created_at}));
    ch.id = r.at(0).Int(0);
    return Status::Ok();
  }));
  return ch;
}

StatusOr<std::vector<Channel>> Channels::List(int64_t tenant_id) {
  std::vector<Channel> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                         " FROM channels WHERE tenant_id = ? ORDER BY id",
                                     {tenant_id}));
    for (const auto& row : r) out.push_back(FromRow(row));
    return Status::Ok();
  }));
  return out;
}

StatusOr<Channel> Channels::Get(int64_t tenant_id, int64_t id) {
  std::optional<Channel> out;
  RETURN_IF_ERROR(store_.Read([&](Conn& c) -> Status {
    ASSIGN_OR_RETURN(Rows r, c.Query(std::string("SELECT ") + kColumns +
                                         " FROM channels WHERE tenant_id = ? AND id = ?",
                                     {tenant_id, id}));
    if (!r.empty()) out = FromRow(r[0]);
    return Status::Ok();
  }));
  if (!out) return Status(ErrorCode::kNotFound, "no channel " + std::to_string(id));
  return *out;
}

StatusOr<int64_t> ChannelIdByState(Conn& c, int64_t tenant_id, const std::string& state) {
  ASSIGN_OR_RETURN(Rows r, c.Query("SELECT id FROM channels WHERE tenant_id = ? AND state = ?",
                                   {tenant_id, state}));
  if (r.empty()) {
    return Status(ErrorCode::kUnknownChannelState,
                  "no channel has state '" + state + "'; create the channel first",
                  "channel_state");
  }
  return r[0].Int(0);
}

}  // namespace siyu::domain
