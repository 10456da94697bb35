// Time in siyu is UTC milliseconds since the epoch (int64). Calendar questions (what is "a day")
// are answered in a tenant's IANA time zone, default Asia/Shanghai.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace siyu {

inline constexpr std::string_view kDefaultTimeZone = "Asia/Shanghai";
inline constexpr int64_t kMsPerDay = 86'400'000;

int64_t NowMs();

// Parses "YYYY-MM-DD" as local midnight in `tz`, or a decimal millisecond timestamp.
std::optional<int64_t> ParseTimeParam(std::string_view s, std::string_view tz = kDefaultTimeZone);

// Local midnight at the start of the day containing `ms` in `tz`.
int64_t StartOfLocalDay(int64_t ms, std::string_view tz = kDefaultTimeZone);

// The local calendar day containing `ms` in `tz`, as days since 1970-01-01.
int32_t LocalDayNumber(int64_t ms, std::string_view tz = kDefaultTimeZone);

}  // namespace siyu
