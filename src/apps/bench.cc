#include <iostream>

#include "apps/commands.h"

namespace siyu::apps {
int Bench(const BenchConfig& cfg) {
  std::cerr << "siyu bench: unknown workload '" << cfg.workload << "'\n";
  return 2;
}
}  // namespace siyu::apps
