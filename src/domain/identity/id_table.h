// IdTable: interns canonical external-id strings to dense uint32 indexes (0, 1, 2, ... in insertion
// order) and stores one uint32 value per id (the identity graph keeps the id's origin person
// there, since an id never changes owner).
//
// Memory layout, sized for tens of millions of ids per tenant (each lookup is a chain of random
// reads, and on this class of machine each costs ~200 ns, so the layout minimises the chain):
//   - arena: records [u32 value][u32 index][u16 prefix][u8 length][tail bytes], packed without
//     padding in 4 MiB chunks (the first chunk grows from small, so a small tenant costs
//     kilobytes). The "prefix" is everything up to the last ':' ("openid:wx1234567890abcdef:",
//     "phone:"), interned once per distinct app/corp/namespace, so an openid costs its 28
//     characters, not 54;
//   - slots: open addressing, linear probing, one u64 per slot = 24-bit hash tag | 40-bit arena
//     offset of the record (load 0.5-0.75, so 10.7-16 bytes per id). A lookup reads the slot and
//     then the record, which holds the index and the value: two dependent reads;
//   - offsets: index -> record for the reverse direction (Get, Value by index): one u16 per id
//     relative to a u64 base per block of 128 ids (a record is at most 266 bytes, so a block spans
//     less than 64 KiB): ~2.06 bytes per id instead of 8.
// The hash is of (prefix number, tail), so growing the slots rehashes from the records in arena
// order without rebuilding strings. Ids are never removed.
//
// Thread-safety: none of its own; the identity graph guards it (const methods may run
// concurrently with each other, not with Insert).
// Ownership: owns all strings it stores; inputs are copied.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "domain/identity/flat_index.h"
#include "domain/identity/huge_alloc.h"

namespace siyu::identity {

class IdTable {
 public:
  static constexpr uint32_t kNone = FlatIndex::kNone;
  // Longest tail (the part after the last ':') a record can hold.
  static constexpr size_t kMaxTail = 255;
  // Distinct prefixes (kind + app/corp/namespace) per table.
  static constexpr size_t kMaxPrefixes = 65535;

  // A canonical id split and hashed for lookups. prefix == kNone: the prefix was never seen (or
  // the string has no ':'), so the id is absent.
  struct Key {
    uint32_t prefix = kNone;
    uint64_t hash = 0;
    std::string_view tail;
  };

  IdTable();

  Key KeyOf(std::string_view canonical) const;
  // The index of the id, or kNone. With `value`, also its value, read from the record the lookup
  // has just compared (Value(index) would cost another random read, of the offsets).
  uint32_t Find(const Key& key, uint32_t* value = nullptr) const;
  uint32_t Find(std::string_view canonical) const { return Find(KeyOf(canonical)); }
  // Inserts `canonical` (which must be absent; `key` is KeyOf(canonical)) with `value`; returns
  // its index. Fails when the string has no ':', its tail is empty or longer than kMaxTail, or it
  // would be the 65536th distinct prefix.
  StatusOr<uint32_t> Insert(std::string_view canonical, const Key& key, uint32_t value);
  StatusOr<uint32_t> Insert(std::string_view canonical, uint32_t value) {
    return Insert(canonical, KeyOf(canonical), value);
  }

  // Prefetch stages for batches, each making the next stage's reads cache hits: the slot, then
  // the record the slot's first tag match points at (a guess: exact unless two ids share the
  // 24-bit tag), whose value the caller then reads (RecordValue) to prefetch further.
  void PrefetchSlot(const Key& key) const { PrefetchLine(slots_.data() + Home(key.hash)); }
  const char* GuessRecord(const Key& key) const;
  static void PrefetchRecord(const char* r) {
    PrefetchLine(r);
    PrefetchLine(r + 63);  // a record may end in the next line
  }
  static uint32_t RecordValue(const char* r) { return Load32(r); }
  static uint32_t RecordIndex(const char* r) { return Load32(r + 4); }

  uint32_t Value(uint32_t index) const { return Load32(Record(index)); }
  // Appends the canonical string of `index` to `*out`.
  void AppendTo(uint32_t index, std::string* out) const;
  std::string Get(uint32_t index) const;

  size_t size() const { return offsets_.size(); }
  void Reserve(size_t n);

  struct Memory {
    size_t index = 0, offsets = 0, arena = 0, prefixes = 0;
    size_t total() const { return index + offsets + arena + prefixes; }
  };
  Memory MemoryBytes() const;

 private:
  static constexpr size_t kChunkBits = 22;  // 4 MiB arena chunks
  static constexpr size_t kChunkSize = size_t{1} << kChunkBits;
  static constexpr size_t kBlockBits = 7;  // 128 ids per offset block
  static constexpr size_t kHeader = 11;    // u32 value + u32 index + u16 prefix + u8 length
  static constexpr int kOffsetBits = 40;   // arena offsets up to 1 TiB
  static constexpr uint64_t kOffsetMask = (uint64_t{1} << kOffsetBits) - 1;
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  static uint32_t Load32(const char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  static uint64_t HashOf(uint32_t prefix, std::string_view tail) { return HashBytes(tail, prefix); }
  static uint64_t TagOf(uint64_t hash) { return hash >> kOffsetBits; }
  size_t Home(uint64_t hash) const {
    return static_cast<size_t>(((hash & 0xffffffffu) * slots_.size()) >> 32);
  }
  const char* At(uint64_t offset) const {
    return chunks_[offset >> kChunkBits].data() + (offset & (kChunkSize - 1));
  }
  uint64_t OffsetOf(uint32_t index) const {
    return block_base_[index >> kBlockBits] + offsets_[index];
  }
  const char* Record(uint32_t index) const { return At(OffsetOf(index)); }
  static bool Matches(const char* r, const Key& key);
  uint32_t FindPrefix(std::string_view prefix) const;
  void Place(uint64_t hash, uint64_t offset);
  void Grow(size_t capacity);

  std::vector<uint64_t, HugePageAllocator<uint64_t>> slots_;
  FlatIndex prefix_index_;
  std::vector<std::string> prefixes_;
  // A chunk of the arena: raw bytes appended with memcpy (a std::vector<char> with a custom
  // allocator constructs byte by byte).
  class Chunk {
   public:
    Chunk() = default;
    Chunk(Chunk&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
      o.data_ = nullptr;
      o.size_ = o.cap_ = 0;
    }
    Chunk& operator=(Chunk&& o) noexcept {
      std::swap(data_, o.data_);
      std::swap(size_, o.size_);
      std::swap(cap_, o.cap_);
      return *this;
    }
    ~Chunk() {
      if (data_) HugePageAllocator<char>().deallocate(data_, cap_);
    }
    const char* data() const { return data_; }
    size_t size() const { return size_; }
    size_t capacity() const { return cap_; }
    void Reserve(size_t cap);
    void Append(const void* p, size_t n) {
      std::memcpy(data_ + size_, p, n);
      size_ += n;
    }

   private:
    char* data_ = nullptr;
    size_t size_ = 0, cap_ = 0;
  };
  std::vector<Chunk> chunks_;
  uint64_t end_ = 0;                  // global offset of the next record
  std::vector<uint64_t> block_base_;  // global offset of each block's first record
  std::vector<uint16_t, HugePageAllocator<uint16_t>> offsets_;  // per id: from its block's base
};

}  // namespace siyu::identity
