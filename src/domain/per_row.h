// PerRow<V>: a hash map from a person row id (int64) to V, for the per-person state that every
// ingested event looks up (the audience's row attributes, the event log's timeline heads).
//
// Open addressing with linear probing over one array of {key, value} slots (at most 3/4 full,
// doubling), like boost::unordered_flat_map, plus what a batch needs: Prefetch(key) starts loading
// a key's home slot, so that a batch prefetches all its rows before it looks them up and their
// cache misses overlap instead of following one another (each is a random read of a table far
// larger than the cache).
//
// Iteration visits every entry once, in no particular order; an entry is a `Slot` with `first`
// (the key) and `second` (the value), so `for (auto& [key, value] : map)` works. References and
// iterators do not outlive an insertion. Thread-safety: none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "common/prefetch.h"
#include "domain/identity/flat_index.h"

namespace siyu::domain {

template <typename V>
class PerRow {
 public:
  struct Slot {
    int64_t first = 0;  // 0: empty (the key 0 lives in `zero_`)
    V second{};
  };

  PerRow() = default;
  PerRow(PerRow&& o) noexcept { swap(o); }
  PerRow& operator=(PerRow&& o) noexcept {
    PerRow tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  PerRow(const PerRow&) = delete;
  PerRow& operator=(const PerRow&) = delete;

  void swap(PerRow& o) noexcept {
    std::swap(slots_, o.slots_);
    std::swap(capacity_, o.capacity_);
    std::swap(size_, o.size_);
    std::swap(zero_, o.zero_);
  }

  size_t size() const { return size_ + (zero_ ? 1 : 0); }
  bool empty() const { return size() == 0; }
  void clear() { *this = PerRow(); }

  void Prefetch(int64_t key) const {
    if (capacity_ != 0) PrefetchLine(&slots_[Home(key)]);
  }

  // The value of `key`, or nullptr.
  V* find(int64_t key) {
    if (key == 0) return zero_ ? &zero_->second : nullptr;
    if (capacity_ == 0) return nullptr;
    for (size_t i = Home(key);; i = (i + 1) & (capacity_ - 1)) {
      Slot& s = slots_[i];
      if (s.first == key) return &s.second;
      if (s.first == 0) return nullptr;
    }
  }
  const V* find(int64_t key) const { return const_cast<PerRow*>(this)->find(key); }

  // The value of `key`, made (value-initialised) if absent; true when it was made.
  std::pair<V*, bool> try_emplace(int64_t key) {
    if (key == 0) {
      const bool made = !zero_;
      if (made) zero_ = std::make_unique<Slot>();
      return {&zero_->second, made};
    }
    if ((size_ + 1) * 4 > capacity_ * 3) Grow();
    for (size_t i = Home(key);; i = (i + 1) & (capacity_ - 1)) {
      Slot& s = slots_[i];
      if (s.first == key) return {&s.second, false};
      if (s.first == 0) {
        s.first = key;
        ++size_;
        return {&s.second, true};
      }
    }
  }
  V& operator[](int64_t key) { return *try_emplace(key).first; }

  template <typename S>
  class Iter {
   public:
    Iter(S* at, S* end, S* zero) : at_(at), end_(end), zero_(zero) { Skip(); }
    S& operator*() const { return at_ ? *at_ : *zero_; }
    S* operator->() const { return &**this; }
    Iter& operator++() {
      if (at_ == nullptr) {  // past the key 0's entry: the end
        at_ = end_;
        zero_ = nullptr;
      } else {
        ++at_;
        Skip();
      }
      return *this;
    }
    bool operator==(const Iter& o) const { return at_ == o.at_ && zero_ == o.zero_; }

   private:
    // Past the table's last entry comes the key 0's, if any (at_ == nullptr marks it).
    void Skip() {
      while (at_ != end_ && at_->first == 0) ++at_;
      if (at_ == end_ && zero_ != nullptr) at_ = nullptr;
    }
    S* at_;
    S* end_;
    S* zero_;
  };
  using iterator = Iter<Slot>;
  using const_iterator = Iter<const Slot>;
  iterator begin() { return {slots_.get(), slots_.get() + capacity_, zero_.get()}; }
  iterator end() { return {slots_.get() + capacity_, slots_.get() + capacity_, nullptr}; }
  const_iterator begin() const { return {slots_.get(), slots_.get() + capacity_, zero_.get()}; }
  const_iterator end() const {
    return {slots_.get() + capacity_, slots_.get() + capacity_, nullptr};
  }

  size_t memory_bytes() const { return capacity_ * sizeof(Slot) + (zero_ ? sizeof(Slot) : 0); }

 private:
  size_t Home(int64_t key) const {
    return static_cast<size_t>(identity::Mix64(static_cast<uint64_t>(key))) & (capacity_ - 1);
  }
  void Grow() {
    const size_t old_capacity = capacity_;
    std::unique_ptr<Slot[]> old = std::move(slots_);
    capacity_ = old_capacity == 0 ? 16 : old_capacity * 2;
    slots_ = std::make_unique<Slot[]>(capacity_);
    for (size_t k = 0; k < old_capacity; ++k) {
      Slot& s = old[k];
      if (s.first == 0) continue;
      size_t i = Home(s.first);
      while (slots_[i].first != 0) i = (i + 1) & (capacity_ - 1);
      slots_[i].first = s.first;
      slots_[i].second = std::move(s.second);
    }
  }

  std::unique_ptr<Slot[]> slots_;
  size_t capacity_ = 0;  // a power of two, or 0
  size_t size_ = 0;      // entries in slots_
  std::unique_ptr<Slot> zero_;
};

}  // namespace siyu::domain
