// The overview report: people, buyers, orders and GMV for a period, and the seeds' decomposition
// GMV = people × conversion × AOV × frequency, carried as exact integers so it reconciles to the
// fen, split by the channel that first brought each person. Computed from the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/store.h"

namespace siyu::domain {

struct Figures {
  int64_t people = 0;
  int64_t buyers = 0;
  int64_t orders = 0;
  int64_t paid_fen = 0;
  int64_t refunded_fen = 0;
  int64_t gmv_fen() const { return paid_fen - refunded_fen; }
  void Add(const Figures& o);
};

struct ChannelFigures {
  std::optional<int64_t> channel_id;  // nullopt: people who came with no channel
  std::string name;
  std::string source_pool;
  std::string touchpoint;
  Figures figures;
};

struct OverviewQuery {
  int64_t from = 0;  // inclusive, ms
  int64_t to = 0;    // exclusive, ms
  std::optional<int64_t> channel_id;
};

struct Overview {
  OverviewQuery query;
  Figures total;
  std::vector<ChannelFigures> by_channel;
};

StatusOr<Overview> ComputeOverview(store::Store& store, int64_t tenant_id, const OverviewQuery& q);

}  // namespace siyu::domain
