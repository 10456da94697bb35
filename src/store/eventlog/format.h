// The event log's on-disk format (README.md has the byte tables): segment file names, the 32-byte
// segment header and the 16-byte record header, all little-endian. Shared by the log and its tests
// (which corrupt files at exact offsets); not part of the public API.
//
// Thread-safety: constants and pure functions. Ownership: none.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "store/eventlog/crc32c.h"

namespace siyu::eventlog::format {

static_assert(std::endian::native == std::endian::little, "the event log assumes little-endian");

inline constexpr char kMagic[8] = {'S', 'I', 'Y', 'U', 'E', 'L', 'O', 'G'};
inline constexpr uint32_t kVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 32;
inline constexpr size_t kRecordHeaderBytes = 16;
inline constexpr size_t kAlign = 8;
// A length above this is corruption whatever Options::max_record_bytes says, so a flipped bit in a
// length field can never make recovery read gigabytes as one record.
inline constexpr uint32_t kMaxPayloadBytes = 64u << 20;
inline constexpr std::string_view kSegmentSuffix = ".seg";
inline constexpr std::string_view kTempSuffix = ".seg.tmp";
inline constexpr size_t kSegmentNameDigits = 20;

// Bytes a record with an `n`-byte payload takes in a segment: header, payload, zero padding up to
// a multiple of 8 (so every header is aligned, and recovery can look for records at aligned
// offsets only).
constexpr uint64_t RecordBytes(uint64_t n) {
  return (kRecordHeaderBytes + n + kAlign - 1) & ~uint64_t{kAlign - 1};
}

inline uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void Store32(char* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void Store64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }

// The record checksum: CRC-32C of the payload followed by header bytes 4..15 (length, seq). The
// payload goes first so that appenders checksum their payloads before sequence numbers are
// assigned, and only the 12 header bytes are added under the log's lock.
inline uint32_t RecordCrc(uint32_t payload_crc, const char* header) {
  return Crc32c(header + 4, 12, payload_crc);
}

// "00000000000000000042.seg" for a segment whose first record is seq 42.
inline std::string SegmentFileName(uint64_t first_seq) {
  std::string digits = std::to_string(first_seq);
  return std::string(kSegmentNameDigits - digits.size(), '0') + digits +
         std::string(kSegmentSuffix);
}

// The first seq named by a segment file name, or nullopt for any other name.
inline std::optional<uint64_t> ParseSegmentFileName(std::string_view name) {
  if (name.size() != kSegmentNameDigits + kSegmentSuffix.size() ||
      name.substr(kSegmentNameDigits) != kSegmentSuffix) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : name.substr(0, kSegmentNameDigits)) {
    if (c < '0' || c > '9') return std::nullopt;
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

struct SegmentHeader {
  uint32_t ordinal = 0;
  uint64_t first_seq = 0;
};

inline void EncodeSegmentHeader(const SegmentHeader& h, char* out) {
  std::memset(out, 0, kSegmentHeaderBytes);
  std::memcpy(out, kMagic, 8);
  Store32(out + 8, kVersion);
  Store32(out + 12, h.ordinal);
  Store64(out + 16, h.first_seq);
  Store32(out + 28, Crc32c(out, 28));
}

// The header at `in` (kSegmentHeaderBytes), or a reason it is not one.
inline std::optional<SegmentHeader> DecodeSegmentHeader(const char* in, std::string* why) {
  if (std::memcmp(in, kMagic, 8) != 0) {
    *why = "not an event log segment (bad magic)";
    return std::nullopt;
  }
  if (Load32(in + 28) != Crc32c(in, 28)) {
    *why = "segment header checksum mismatch";
    return std::nullopt;
  }
  if (Load32(in + 8) != kVersion) {
    *why = "unsupported segment format version " + std::to_string(Load32(in + 8));
    return std::nullopt;
  }
  return SegmentHeader{Load32(in + 12), Load64(in + 16)};
}

}  // namespace siyu::eventlog::format
