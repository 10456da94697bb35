// HugePageAllocator: a std::allocator replacement for the identity graph's big arrays (hash
// slots, id offsets and arena chunks, person nodes, links). Allocations of 2 MiB and more are
// mmap'ed and marked MADV_HUGEPAGE, so the kernel backs them with transparent huge pages where it
// can. Why: every resolve is a handful of random reads over gigabytes; with 4 KiB pages each one
// is also a TLB miss, and under virtualisation (nested page tables) the page walk costs as much as
// the read. Small allocations (a small tenant's graph) use operator new as usual. Where THP is off
// ("never") the advice is ignored and this behaves like plain mmap.
//
// Thread-safety: stateless; safe from any thread.
// Ownership: memory belongs to the container that allocated it.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>

namespace siyu::identity {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

template <typename T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: rebinding is implicit

  T* allocate(size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) return static_cast<T*>(::operator new(bytes));
    void* p =
        mmap(nullptr, RoundUp(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, RoundUp(bytes), MADV_HUGEPAGE);
    return static_cast<T*>(p);
  }

  void deallocate(T* p, size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) {
      ::operator delete(p);
    } else {
      munmap(p, RoundUp(bytes));
    }
  }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const {
    return true;
  }

 private:
  static size_t RoundUp(size_t bytes) { return (bytes + 4095) & ~size_t{4095}; }
};

}  // namespace siyu::identity
