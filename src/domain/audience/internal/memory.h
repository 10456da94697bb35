// Memory for the audience engine's per-person data at 10 M people and more.
//
// PrefetchLine: a software prefetch the compiler keeps.
//
// LineAllocator<T>: a std::allocator replacement for the person rows and the index: memory is
// aligned to a cache line (a 64-byte row is one line), and allocations of 2 MiB and more are
// mmap'ed and marked MADV_HUGEPAGE. Every fact is a few random reads over gigabytes; with 4 KiB
// pages each is also a TLB miss, and under virtualisation the page walk costs about as much as the
// read (identity's huge_alloc.h, the same reasoning).
//
// BlockArena: variable-size blocks (the per-person aggregates) addressed by 32-bit handles in
// 16-byte units, so a person's row holds 4 bytes instead of a pointer. Blocks come from chunks
// that double in size (64 KiB, 128 KiB, ... up to 64 GiB in all), carved by bumping a pointer;
// freed blocks go to one free list per size class (sizes step by at most 25 %) and are reused
// first. Chunks never move: a block's address is stable until it is freed.
//
// Thread-safety: none of their own (the engine's lock guards them).
// Ownership: the arena owns its chunks; blocks belong to whoever allocated them until freed.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "common/prefetch.h"

namespace siyu::audience::internal {

inline constexpr size_t kLineBytes = 64;
inline constexpr size_t kHugeBytes = size_t{2} << 20;

using siyu::PrefetchLine;

inline void* AllocateBig(size_t bytes) {
  if (bytes < kHugeBytes) return ::operator new (bytes, std::align_val_t{kLineBytes});
  size_t len = (bytes + 4095) & ~size_t{4095};
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  madvise(p, len, MADV_HUGEPAGE);
  return p;
}

inline void FreeBig(void* p, size_t bytes) {
  if (bytes < kHugeBytes) {
    ::operator delete (p, std::align_val_t{kLineBytes});
  } else {
    munmap(p, (bytes + 4095) & ~size_t{4095});
  }
}

template <typename T>
struct LineAllocator {
  using value_type = T;

  LineAllocator() = default;
  template <typename U>
  LineAllocator(const LineAllocator<U>&) {}  // NOLINT: rebinding is implicit

  T* allocate(size_t n) { return static_cast<T*>(AllocateBig(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { FreeBig(p, n * sizeof(T)); }

  template <typename U>
  bool operator==(const LineAllocator<U>&) const {
    return true;
  }
};

template <typename T>
using BigVector = std::vector<T, LineAllocator<T>>;

class BlockArena {
 public:
  static constexpr uint32_t kNull = 0;
  static constexpr size_t kUnit = 16;

  BlockArena() = default;
  BlockArena(const BlockArena&) = delete;
  BlockArena& operator=(const BlockArena&) = delete;
  ~BlockArena() {
    for (size_t k = 0; k < chunks_.size(); ++k) FreeBig(chunks_[k], ChunkUnits(k) * kUnit);
  }

  // The size class of a block of `units` units (>= 1) and its size in units.
  static uint32_t ClassOf(uint32_t units) {
    if (units <= 8) return units;
    int b = 31 - __builtin_clz(units - 1);  // >= 3
    uint32_t step = uint32_t{1} << (b - 2);
    return 8 + static_cast<uint32_t>(b - 3) * 4 + (units - 1 - (uint32_t{1} << b)) / step + 1;
  }
  static uint32_t ClassUnits(uint32_t cls) {
    if (cls <= 8) return cls;
    uint32_t b = (cls - 9) / 4 + 3, k = (cls - 9) % 4 + 1;
    return (uint32_t{1} << b) + k * (uint32_t{1} << (b - 2));
  }

  // A block of class `cls`; its bytes are unspecified.
  uint32_t Alloc(uint32_t cls) {
    if (cls < free_.size() && free_[cls] != kNull) {
      uint32_t h = free_[cls];
      std::memcpy(&free_[cls], At(h), sizeof(uint32_t));
      live_units_ += ClassUnits(cls);
      return h;
    }
    uint64_t units = ClassUnits(cls);
    while (chunks_.empty() || next_ + units > ChunkEnd(chunks_.size() - 1)) {
      size_t k = chunks_.size();
      if (k >= kMaxChunks) throw std::bad_alloc();
      chunks_.push_back(static_cast<char*>(AllocateBig(ChunkUnits(k) * kUnit)));
      next_ = ChunkBegin(k) + (k == 0 ? 1 : 0);  // handle 0 is null
    }
    uint32_t h = static_cast<uint32_t>(next_);
    next_ += units;
    live_units_ += units;
    return h;
  }

  void Free(uint32_t h, uint32_t cls) {
    if (free_.size() <= cls) free_.resize(cls + 1, kNull);
    std::memcpy(At(h), &free_[cls], sizeof(uint32_t));
    free_[cls] = h;
    live_units_ -= ClassUnits(cls);
  }

  char* At(uint32_t h) const {
    uint32_t k = 31 - __builtin_clz((h >> kBaseBits) + 1);
    return chunks_[k] + (h - ChunkBegin(k)) * kUnit;
  }

  size_t live_bytes() const { return live_units_ * kUnit; }
  size_t reserved_bytes() const { return next_ * kUnit; }

 private:
  // Chunk k holds units [2^k - 1, 2^(k+1) - 1) x 2^kBaseBits.
  static constexpr uint32_t kBaseBits = 12;  // 4096 units = 64 KiB
  static constexpr size_t kMaxChunks = 32 - kBaseBits;
  static uint64_t ChunkUnits(size_t k) { return uint64_t{1} << (k + kBaseBits); }
  static uint64_t ChunkBegin(size_t k) { return ((uint64_t{1} << k) - 1) << kBaseBits; }
  static uint64_t ChunkEnd(size_t k) { return ChunkBegin(k + 1); }

  std::vector<char*> chunks_;
  std::vector<uint32_t> free_;
  uint64_t next_ = 0;  // the next unit to carve (in the last chunk)
  uint64_t live_units_ = 0;
};

}  // namespace siyu::audience::internal
