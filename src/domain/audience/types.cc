#include "domain/audience/types.h"

#include <array>

namespace siyu::audience {
namespace {

struct Names {
  std::string_view key, label;
};
constexpr std::array<Names, kStageCount> kStageNames = {{
    {"prospect", "潜客"},
    {"new", "新客"},
    {"repeat", "复购"},
    {"active", "活跃"},
    {"dormant", "沉睡"},
    {"churned", "流失"},
    {"recalled", "召回"},
}};
constexpr std::array<Names, kRfmClassCount> kRfmNames = {{
    {"none", "无"},
    {"important_value", "重要价值"},
    {"important_develop", "重要发展"},
    {"important_keep", "重要保持"},
    {"important_retain", "重要挽留"},
    {"general_value", "一般价值"},
    {"general_develop", "一般发展"},
    {"general_keep", "一般保持"},
    {"general_retain", "一般挽留"},
}};

}  // namespace

std::string_view StageKey(Stage s) { return kStageNames[static_cast<int>(s)].key; }
std::string_view StageLabel(Stage s) { return kStageNames[static_cast<int>(s)].label; }
std::string_view RfmClassKey(RfmClass c) { return kRfmNames[static_cast<int>(c)].key; }
std::string_view RfmClassLabel(RfmClass c) { return kRfmNames[static_cast<int>(c)].label; }

std::optional<Stage> StageFromName(std::string_view name) {
  for (int i = 0; i < kStageCount; ++i) {
    if (kStageNames[i].key == name || kStageNames[i].label == name) return static_cast<Stage>(i);
  }
  return std::nullopt;
}

std::optional<RfmClass> RfmClassFromName(std::string_view name) {
  // kNone is not a class one can target: "non-buyers" are stage("prospect").
  for (int i = 1; i < kRfmClassCount; ++i) {
    if (kRfmNames[i].key == name || kRfmNames[i].label == name) return static_cast<RfmClass>(i);
  }
  return std::nullopt;
}

RfmClass RfmClassOf(bool r_high, bool f_high, bool m_high) {
  int base = m_high ? 1 : 5;
  int offset = r_high ? (f_high ? 0 : 1) : (f_high ? 2 : 3);
  return static_cast<RfmClass>(base + offset);
}

}  // namespace siyu::audience
