#include "domain/identity/id_table.h"

#include <algorithm>

namespace siyu::identity {

IdTable::IdTable() { chunks_.emplace_back(); }

void IdTable::Chunk::Reserve(size_t cap) {
  if (cap <= cap_) return;
  char* bigger = HugePageAllocator<char>().allocate(cap);
  if (size_) std::memcpy(bigger, data_, size_);
  if (data_) HugePageAllocator<char>().deallocate(data_, cap_);
  data_ = bigger;
  cap_ = cap;
}

void IdTable::Reserve(size_t n) {
  size_t want = n * 4 / 3 + 16;
  if (want > slots_.size()) Grow(want);
  offsets_.reserve(n);
  block_base_.reserve((n >> kBlockBits) + 1);
}

uint32_t IdTable::FindPrefix(std::string_view prefix) const {
  // A tenant has a handful of apps, corps and namespaces: scanning them beats hashing.
  if (prefixes_.size() <= 8) {
    for (size_t i = 0; i < prefixes_.size(); ++i) {
      if (prefixes_[i] == prefix) return static_cast<uint32_t>(i);
    }
    return kNone;
  }
  return prefix_index_.Find(TagOf32(HashBytes(prefix)),
                            [&](uint32_t i) { return prefixes_[i] == prefix; });
}

IdTable::Key IdTable::KeyOf(std::string_view canonical) const {
  Key key;
  size_t colon = canonical.rfind(':');
  if (colon == std::string_view::npos) return key;
  key.tail = canonical.substr(colon + 1);
  key.prefix = FindPrefix(canonical.substr(0, colon + 1));
  if (key.prefix != kNone) key.hash = HashOf(key.prefix, key.tail);
  return key;
}

bool IdTable::Matches(const char* r, const Key& key) {
  uint16_t p;
  std::memcpy(&p, r + 8, 2);
  auto len = static_cast<uint8_t>(r[10]);
  return p == key.prefix && len == key.tail.size() &&
         std::memcmp(r + kHeader, key.tail.data(), len) == 0;
}

uint32_t IdTable::Find(const Key& key, uint32_t* value) const {
  if (key.prefix == kNone || slots_.empty()) return kNone;
  uint64_t tag = TagOf(key.hash);
  size_t cap = slots_.size();
  for (size_t i = Home(key.hash);;) {
    uint64_t s = slots_[i];
    if (s == kEmpty) return kNone;
    if ((s >> kOffsetBits) == tag) {
      const char* r = At(s & kOffsetMask);
      if (Matches(r, key)) {
        if (value) *value = RecordValue(r);
        return RecordIndex(r);
      }
    }
    if (++i == cap) i = 0;
  }
}

const char* IdTable::GuessRecord(const Key& key) const {
  if (key.prefix == kNone || slots_.empty()) return nullptr;
  uint64_t tag = TagOf(key.hash);
  size_t cap = slots_.size();
  for (size_t i = Home(key.hash);;) {
    uint64_t s = slots_[i];
    if (s == kEmpty) return nullptr;
    if ((s >> kOffsetBits) == tag) return At(s & kOffsetMask);
    if (++i == cap) i = 0;
  }
}

void IdTable::Place(uint64_t hash, uint64_t offset) {
  size_t cap = slots_.size();
  size_t i = Home(hash);
  while (slots_[i] != kEmpty) {
    if (++i == cap) i = 0;
  }
  slots_[i] = (TagOf(hash) << kOffsetBits) | offset;
}

void IdTable::Grow(size_t capacity) {
  // The hash is of (prefix, tail), both in the record: rehash by walking the arena in order. The
  // records are read in order, but each lands on a random slot of an array far larger than the
  // cache, so the slots are prefetched kAhead records before they are written: a rehash of
  // millions of ids runs under the graph's write lock, and waiting for each slot in turn made it
  // ~150 ns an id (half a second at 3.4 M ids, every ingest request stalled meanwhile).
  slots_.assign(capacity, kEmpty);
  slots_.shrink_to_fit();
  constexpr size_t kAhead = 16;  // a power of two
  uint64_t hash[kAhead], off[kAhead];
  size_t n = offsets_.size();
  for (size_t i = 0; i < n + kAhead; ++i) {
    size_t k = i & (kAhead - 1);
    if (i >= kAhead) Place(hash[k], off[k]);
    if (i < n) {
      off[k] = OffsetOf(static_cast<uint32_t>(i));
      const char* r = At(off[k]);
      uint16_t p;
      std::memcpy(&p, r + 8, 2);
      auto len = static_cast<uint8_t>(r[10]);
      hash[k] = HashOf(p, std::string_view(r + kHeader, len));
      PrefetchLine(slots_.data() + Home(hash[k]));
    }
  }
}

StatusOr<uint32_t> IdTable::Insert(std::string_view canonical, const Key& key_in, uint32_t value) {
  size_t colon = canonical.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == canonical.size() ||
      canonical.size() - colon - 1 > kMaxTail) {
    return InvalidField("id", "id '" + std::string(canonical.substr(0, 80)) +
                                  "' has no kind or an empty or over-long value");
  }
  if (offsets_.size() >= kNone) return Internal("identity graph: too many ids in one tenant");
  Key key = key_in;
  if (key.prefix == kNone) {
    std::string_view prefix = canonical.substr(0, colon + 1);
    if (prefixes_.size() >= kMaxPrefixes) {
      return InvalidField("id", "too many distinct app ids, corp ids and namespaces (" +
                                    std::to_string(kMaxPrefixes) + ") in one tenant");
    }
    key.prefix = static_cast<uint32_t>(prefixes_.size());
    prefixes_.emplace_back(prefix);
    prefix_index_.Insert(TagOf32(HashBytes(prefix)), key.prefix);
    key.tail = canonical.substr(colon + 1);
    key.hash = HashOf(key.prefix, key.tail);
  }
  if ((offsets_.size() + 1) * 4 > slots_.size() * 3) {
    Grow(std::max<size_t>(16, slots_.size() * 3 / 2));
  }

  // Place the record; it never straddles two chunks.
  size_t need = kHeader + key.tail.size();
  if ((end_ & (kChunkSize - 1)) + need > kChunkSize) {
    end_ = ((end_ >> kChunkBits) + 1) << kChunkBits;
  }
  size_t chunk = end_ >> kChunkBits;
  if (chunk == chunks_.size()) {
    chunks_.emplace_back();
    chunks_.back().Reserve(kChunkSize);
  }
  auto& c = chunks_[chunk];
  if (c.size() + need > c.capacity()) {
    // Only the first chunk grows (so a small tenant stays small); the others start at full size.
    c.Reserve(std::min(kChunkSize, std::max({c.capacity() * 2, c.size() + need, size_t{256}})));
  }
  auto index = static_cast<uint32_t>(offsets_.size());
  char header[kHeader];
  std::memcpy(header, &value, 4);
  std::memcpy(header + 4, &index, 4);
  auto p16 = static_cast<uint16_t>(key.prefix);
  std::memcpy(header + 8, &p16, 2);
  header[10] = static_cast<char>(static_cast<uint8_t>(key.tail.size()));
  c.Append(header, kHeader);
  c.Append(key.tail.data(), key.tail.size());

  if ((index & ((1u << kBlockBits) - 1)) == 0) block_base_.push_back(end_);
  offsets_.push_back(static_cast<uint16_t>(end_ - block_base_.back()));
  Place(key.hash, end_);
  end_ += need;
  return index;
}

void IdTable::AppendTo(uint32_t index, std::string* out) const {
  const char* r = Record(index);
  uint16_t p;
  std::memcpy(&p, r + 8, 2);
  auto len = static_cast<uint8_t>(r[10]);
  out->append(prefixes_[p]);
  out->append(r + kHeader, len);
}

std::string IdTable::Get(uint32_t index) const {
  std::string s;
  AppendTo(index, &s);
  return s;
}

IdTable::Memory IdTable::MemoryBytes() const {
  Memory m;
  m.index = slots_.capacity() * sizeof(uint64_t) + prefix_index_.MemoryBytes();
  m.offsets = offsets_.capacity() * sizeof(uint16_t) + block_base_.capacity() * sizeof(uint64_t);
  for (const auto& c : chunks_) m.arena += c.capacity();
  m.arena += chunks_.capacity() * sizeof(chunks_[0]);
  for (const auto& p : prefixes_) m.prefixes += sizeof(std::string) + p.capacity();
  return m;
}

}  // namespace siyu::identity
