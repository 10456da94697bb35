// A fact's scope: held by a service from before it writes a fact (an event batch, an order, a
// refund, a new person) until its observers have run. Derived state that is rebuilt while facts
// keep arriving (the audience, decision 0008) uses it to know that every fact it did not read from
// the store reaches it through the observer, and none reaches it twice.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace siyu::domain {

// Returns the scope's token; the scope ends when the token is released. May return nullptr.
using FactScope = std::function<std::shared_ptr<void>(int64_t tenant_id)>;

}  // namespace siyu::domain
