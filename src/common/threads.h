#pragma once

#include <cstdint>
#include <string_view>

namespace siyu {

// Names the calling thread (as `top -H`, `ps -L` and profilers show it); at most 15 bytes are
// kept.
void NameThisThread(std::string_view name);

// The calling thread's CPU time so far (user and system), in nanoseconds.
int64_t ThisThreadCpuNanos();

}  // namespace siyu
