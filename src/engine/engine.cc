#include "engine/engine.h"

namespace siyu::engine {

Engine::Engine(std::unique_ptr<store::Store> store, std::string wechat_api_base,
               domain::IdentityOptions identity)
    : store_(std::move(store)),
      identity_(*store_, identity),
      tenancy_(*store_),
      channels_(*store_),
      people_(*store_, identity_),
      orders_(*store_),
      events_(*store_, identity_),
      wechat_(*store_, events_),
      mini_program_(*store_, identity_, wechat_, std::move(wechat_api_base)) {}

StatusOr<std::unique_ptr<Engine>> Engine::Open(const store::Options& options,
                                               std::string wechat_api_base,
                                               domain::IdentityOptions identity, bool ingest) {
  while (wechat_api_base.ends_with('/')) wechat_api_base.pop_back();
  ASSIGN_OR_RETURN(auto store, store::Store::Open(options));
  std::unique_ptr<Engine> engine(
      new Engine(std::move(store), std::move(wechat_api_base), identity));
  RETURN_IF_ERROR(engine->identity_.LoadAll());
  // SQLite deployments keep behaviour events in the event log beside the database (0007).
  if (std::string dir = store::SqliteDataDir(options); ingest && !dir.empty()) {
    RETURN_IF_ERROR(engine->events_.OpenLog(dir + "/events"));
  }
  return engine;
}

}  // namespace siyu::engine
