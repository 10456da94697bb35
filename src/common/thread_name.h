#pragma once

#include <string_view>

namespace siyu {

// Names the calling thread (as `top -H`, `ps -L` and profilers show it); at most 15 bytes are
// kept.
void NameThisThread(std::string_view name);

}  // namespace siyu
