#include "store/eventlog/crc32c.h"

#include <array>
#include <bit>
#include <cstring>

namespace siyu::eventlog {
namespace {

constexpr uint32_t kPoly = 0x82f63b78;  // Castagnoli, reflected

// kTables[k][b]: the CRC of byte b followed by k zero bytes (slicing by 8).
constexpr std::array<std::array<uint32_t, 256>, 8> MakeTables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
    t[0][b] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}
constexpr auto kTables = MakeTables();

uint32_t PortableRaw(uint32_t c, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);  // little-endian load; the slicing tables assume it
    v ^= c;
    c = kTables[7][v & 0xff] ^ kTables[6][(v >> 8) & 0xff] ^ kTables[5][(v >> 16) & 0xff] ^
        kTables[4][(v >> 24) & 0xff] ^ kTables[3][(v >> 32) & 0xff] ^ kTables[2][(v >> 40) & 0xff] ^
        kTables[1][(v >> 48) & 0xff] ^ kTables[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xff];
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t HardwareRaw(uint32_t c, const uint8_t* p, size_t n) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n-- > 0) c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}

using RawFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);
RawFn PickRaw() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2") ? HardwareRaw : PortableRaw;
}
#endif

}  // namespace

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
#if defined(__x86_64__)
  static const RawFn raw = PickRaw();
  return ~raw(~crc, static_cast<const uint8_t*>(data), n);
#else
  return Crc32cPortable(data, n, crc);
#endif
}

uint32_t Crc32cPortable(const void* data, size_t n, uint32_t crc) {
  static_assert(std::endian::native == std::endian::little, "the event log assumes little-endian");
  return ~PortableRaw(~crc, static_cast<const uint8_t*>(data), n);
}

}  // namespace siyu::eventlog
