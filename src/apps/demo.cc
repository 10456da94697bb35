#include "apps/commands.h"

namespace siyu::apps {
int Demo(const DemoConfig& cfg) { return Serve(cfg.serve); }
}  // namespace siyu::apps
