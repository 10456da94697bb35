// Segmented<T>: an append-only array stored in fixed blocks of 2^kBlockBits elements, for the
// identity graph's edges and merge log. Why not std::vector: doubling copies everything and
// touches twice the final memory (fresh pages cost a zeroing fault each, which is expensive under
// virtualisation), and a copy of a large log stalls the tenant's readers. Here a push never moves
// what is stored. The first block grows like a vector, so a small tenant stays small; later blocks
// are allocated whole (on huge pages: huge_alloc.h).
//
// Thread-safety: none of its own; the identity graph guards it.
// Ownership: owns its elements.
#pragma once

#include <cstddef>
#include <vector>

#include "domain/identity/huge_alloc.h"

namespace siyu::identity {

template <typename T, size_t kBlockBits>
class Segmented {
 public:
  static constexpr size_t kBlock = size_t{1} << kBlockBits;

  T& operator[](size_t i) { return blocks_[i >> kBlockBits][i & (kBlock - 1)]; }
  const T& operator[](size_t i) const { return blocks_[i >> kBlockBits][i & (kBlock - 1)]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }
  const T& front() const { return (*this)[0]; }

  void push_back(const T& v) {
    if ((size_ >> kBlockBits) == blocks_.size()) {
      blocks_.emplace_back();
      if (blocks_.size() > 1) blocks_.back().reserve(kBlock);
    }
    blocks_.back().push_back(v);
    ++size_;
  }

  size_t MemoryBytes() const {
    size_t bytes = blocks_.capacity() * sizeof(Block);
    for (const Block& b : blocks_) bytes += b.capacity() * sizeof(T);
    return bytes;
  }

 private:
  using Block = std::vector<T, HugePageAllocator<T>>;
  std::vector<Block> blocks_;
  size_t size_ = 0;
};

}  // namespace siyu::identity
