// The channel report (渠道效果): for each channel, the funnel of the people it brought in a period
// and what they are worth — QR scans → adds/follows → new people → first-time buyers → repeat
// buyers → orders and GMV — against the channel's cost: CAC and ROI. People are attributed by
// first touch (the channel that first brought them) or last touch. The money columns reconcile to
// the orders table: the GMV of all rows is the GMV of every order paid in the period by the people
// acquired in it. Computed from the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace siyu::domain {

enum class Attribution { kFirstTouch, kLastTouch };

struct ChannelFunnel {
  std::optional<int64_t> channel_id;  // nullopt: people who came with no channel
  std::string name;
  std::string source_pool;
  std::string touchpoint;
  int64_t cost_fen = 0;
  int64_t scans = 0;          // qr_scanned events carrying the channel, in the period
  int64_t adds = 0;           // people who followed / added / joined via the channel, in the period
  int64_t new_people = 0;     // people acquired in the period attributed to the channel
  int64_t first_buyers = 0;   // of those, with ≥ 1 paid order before the period's end
  int64_t repeat_buyers = 0;  // of those, with ≥ 2 paid orders before the period's end
  int64_t orders = 0;         // their orders paid in the period
  int64_t paid_fen = 0;
  int64_t refunded_fen = 0;
  int64_t gmv_fen() const { return paid_fen - refunded_fen; }
};

struct ChannelReport {
  int64_t from = 0, to = 0;
  Attribution model = Attribution::kFirstTouch;
  std::vector<ChannelFunnel> rows;
  ChannelFunnel total;  // sums over rows (cost of every channel)
};

StatusOr<ChannelReport> ComputeChannelReport(store::Store& store, int64_t tenant_id, int64_t from,
                                             int64_t to, Attribution model);

}  // namespace siyu::domain
