#include "engine/engine.h"

namespace siyu::engine {

Engine::Engine(std::unique_ptr<store::Store> store)
    : store_(std::move(store)),
      tenancy_(*store_),
      channels_(*store_),
      people_(*store_),
      orders_(*store_),
      events_(*store_),
      wechat_(*store_, events_) {}

StatusOr<std::unique_ptr<Engine>> Engine::Open(const store::Options& options) {
  ASSIGN_OR_RETURN(auto store, store::Store::Open(options));
  return std::unique_ptr<Engine>(new Engine(std::move(store)));
}

}  // namespace siyu::engine
