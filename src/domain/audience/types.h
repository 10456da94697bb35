// The small vocabulary the audience engine and its expression language share: days, lifecycle
// stages, RFM classes and their stable names.
//
// Thread-safety: plain values and pure functions. Ownership: nothing is owned.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace siyu::audience {

// A calendar day in the tenant's time zone: days since 1970-01-01 (local). The caller converts
// UTC milliseconds with the tenant's zone (common/time.h); the engine never sees clock time.
using Day = int32_t;

// Lifecycle stage (README "Lifecycle"). Values are stable (they travel in deltas).
enum class Stage : uint8_t {
  kProspect = 0,  // no paid order
  kNew = 1,       // one paid order, within its cycle allowance
  kRepeat = 2,    // two or more orders, neither active nor dormant
  kActive = 3,    // active_min_orders or more orders and bought within one cycle
  kDormant = 4,   // no order for more than dormant_cycles x cycle days
  kChurned = 5,   // no order for more than churn_cycles x cycle days
  kRecalled = 6,  // bought again after having been dormant or churned
};
inline constexpr int kStageCount = 7;

// RFM value class (README "RFM"). kNone: not a buyer. Values are stable (they travel in deltas).
enum class RfmClass : uint8_t {
  kNone = 0,
  kImportantValue = 1,    // 重要价值: R high, F high, M high
  kImportantDevelop = 2,  // 重要发展: R high, F low,  M high
  kImportantKeep = 3,     // 重要保持: R low,  F high, M high
  kImportantRetain = 4,   // 重要挽留: R low,  F low,  M high
  kGeneralValue = 5,      // 一般价值: R high, F high, M low
  kGeneralDevelop = 6,    // 一般发展: R high, F low,  M low
  kGeneralKeep = 7,       // 一般保持: R low,  F high, M low
  kGeneralRetain = 8,     // 一般挽留: R low,  F low,  M low
};
inline constexpr int kRfmClassCount = 9;  // including kNone

// Stable ascii keys ("dormant", "important_value") and Chinese labels ("沉睡", "重要价值").
std::string_view StageKey(Stage s);
std::string_view StageLabel(Stage s);
std::string_view RfmClassKey(RfmClass c);
std::string_view RfmClassLabel(RfmClass c);
// Accepts the key or the label.
std::optional<Stage> StageFromName(std::string_view name);
std::optional<RfmClass> RfmClassFromName(std::string_view name);
// The class of a buyer from its three high/low scores.
RfmClass RfmClassOf(bool r_high, bool f_high, bool m_high);

}  // namespace siyu::audience
