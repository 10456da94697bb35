// Small cryptographic helpers on OpenSSL: random tokens, SHA-256, constant-time comparison.
// Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace siyu {

// `n` characters of [0-9A-Za-z] from a CSPRNG.
std::string RandomBase62(size_t n);
// Base62 of an unsigned integer (digits, upper, lower).
std::string Base62(uint64_t v);
// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);
// Compares without leaking where the inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace siyu
