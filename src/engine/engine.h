// The engine facade: owns the store and the domain services built on it. One Engine per process;
// it serves every tenant. Thread-safe.
#pragma once

#include <memory>

#include "domain/channels/channels.h"
#include "domain/events/events.h"
#include "domain/inbound/miniprogram_login.h"
#include "domain/inbound/wechat_inbound.h"
#include "domain/orders/orders.h"
#include "domain/people/audience.h"
#include "domain/people/identity.h"
#include "domain/people/people.h"
#include "domain/tenancy/tenancy.h"
#include "store/store.h"

namespace siyu::engine {

class Engine {
 public:
  // `wechat_api_base`: the origin of WeChat's API that outbound calls go to. Builds every
  // tenant's identity graph from the store before returning. `ingest`: a serving engine — on
  // SQLite it opens the event log (one process at a time may), and it builds the audience engines
  // and feeds them; the administrative commands that never take events (bootstrap, verify,
  // import) run beside a server without either.
  static StatusOr<std::unique_ptr<Engine>> Open(
      const store::Options& options,
      std::string wechat_api_base = std::string(domain::kDefaultWechatApiBase),
      domain::IdentityOptions identity = {}, bool ingest = true);

  store::Store& store() { return *store_; }
  domain::Tenancy& tenancy() { return tenancy_; }
  domain::Channels& channels() { return channels_; }
  domain::Identity& identity() { return identity_; }
  domain::People& people() { return people_; }
  domain::Orders& orders() { return orders_; }
  domain::Events& events() { return events_; }
  domain::Audience& audience() { return audience_; }
  domain::WechatInbound& wechat() { return wechat_; }
  domain::MiniProgramLogin& mini_program() { return mini_program_; }

  // Stops the audience ticker, commits queued writes and stops the store. Idempotent.
  void Shutdown() {
    audience_.Stop();
    events_.Close();
    store_->Shutdown();
  }

 private:
  Engine(std::unique_ptr<store::Store> store, std::string wechat_api_base,
         domain::IdentityOptions identity);
  std::unique_ptr<store::Store> store_;
  domain::Identity identity_;
  domain::Tenancy tenancy_;
  domain::Channels channels_;
  domain::People people_;
  domain::Orders orders_;
  domain::Events events_;
  domain::Audience audience_;
  domain::WechatInbound wechat_;
  domain::MiniProgramLogin mini_program_;
};

}  // namespace siyu::engine
