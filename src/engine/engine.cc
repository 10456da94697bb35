#include "engine/engine.h"

namespace siyu::engine {

Engine::Engine(std::unique_ptr<store::Store> store, std::string wechat_api_base,
               domain::IdentityOptions identity)
    : store_(std::move(store)),
      identity_(*store_, identity),
      tenancy_(*store_),
      channels_(*store_),
      people_(*store_, identity_),
      orders_(*store_, identity_),
      events_(*store_, identity_),
      audience_(*store_, identity_, events_),
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
  if (ingest) {
    // The audience engines follow every fact once it is durable.
    Engine* e = engine.get();
    e->events_.SetObserver(
        [e](int64_t tenant, const std::vector<domain::EventItem>& items,
            const domain::IngestResult& r) { e->audience_.OnEvents(tenant, items, r); });
    e->orders_.SetObserver([e](int64_t tenant, const domain::Order& o, bool refund) {
      refund ? e->audience_.OnRefund(tenant, o) : e->audience_.OnOrder(tenant, o);
    });
    e->people_.SetCreatedObserver(
        [e](int64_t tenant, int64_t person) { e->audience_.OnPersonCreated(tenant, person); });
    // Each fact's write and its observer run inside the audience's fact scope, so that a build of
    // a tenant's engine that runs meanwhile reads the fact or is given it, exactly once.
    auto scope = [e](int64_t tenant) { return e->audience_.BeginFact(tenant); };
    e->events_.SetFactScope(scope);
    e->orders_.SetFactScope(scope);
    e->people_.SetFactScope(scope);
    RETURN_IF_ERROR(e->audience_.LoadAll());
  }
  return engine;
}

}  // namespace siyu::engine
