// CRC-32C (Castagnoli), the checksum of every event log record and segment header. Chosen over
// zlib's CRC-32 because x86-64 computes it in hardware (SSE4.2 `crc32`, ~8 bytes a cycle), so
// checksumming tens of gigabytes at start-up costs less than reading them; on CPUs without it a
// table-driven version (slicing by 8) gives the same values. No dependency beyond the compiler.
//
// Thread-safety: pure functions. Ownership: none.
#pragma once

#include <cstddef>
#include <cstdint>

namespace siyu::eventlog {

// CRC-32C of `n` bytes at `data`, continuing from `crc`, the CRC-32C of the bytes before them
// (0 for none): Crc32c(b, nb, Crc32c(a, na)) == CRC-32C of a ‖ b.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

// The table-driven version, whatever the CPU; exposed so tests can compare both.
uint32_t Crc32cPortable(const void* data, size_t n, uint32_t crc = 0);

}  // namespace siyu::eventlog
