// PrefetchLine: starts loading the cache line at an address, for batches that look many things up
// at random and want their cache misses to overlap instead of following one another.
#pragma once

namespace siyu {

// Never faults, whatever `p` is. Not a bare __builtin_prefetch: GCC 12 deems a function whose only
// effect is that builtin pure, and a loop of such calls dead, and deletes them (whole prefetch
// stages of a batch vanished from the binary); a volatile asm stays.
inline void PrefetchLine(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
  asm volatile("" : : "r"(p) : "memory");
#endif
}

}  // namespace siyu
