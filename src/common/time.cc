#include "common/time.h"

#include <date/date.h>
#include <date/tz.h>

#include <charconv>
#include <chrono>

namespace siyu {

int64_t NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
const date::time_zone* Zone(std::string_view tz) {
  try {
    return date::locate_zone(tz);
  } catch (const std::exception&) {
    return date::locate_zone(std::string(kDefaultTimeZone));
  }
}
}  // namespace

std::optional<int64_t> ParseTimeParam(std::string_view s, std::string_view tz) {
  if (s.size() == 10 && s[4] == '-' && s[7] == '-') {
    int y = 0, m = 0, d = 0;
    auto num = [&](size_t pos, size_t len, int& out) {
      auto r = std::from_chars(s.data() + pos, s.data() + pos + len, out);
      return r.ec == std::errc() && r.ptr == s.data() + pos + len;
    };
    if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) return std::nullopt;
    date::year_month_day ymd{date::year(y), date::month(static_cast<unsigned>(m)),
                             date::day(static_cast<unsigned>(d))};
    if (!ymd.ok() || y < 1970 || y > 2200) return std::nullopt;
    auto local = date::local_days(ymd);
    auto zoned = date::make_zoned(Zone(tz), local, date::choose::earliest);
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               zoned.get_sys_time().time_since_epoch())
        .count();
  }
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

int64_t StartOfLocalDay(int64_t ms, std::string_view tz) {
  using namespace std::chrono;
  const date::time_zone* zone = Zone(tz);
  auto sys = sys_time<milliseconds>(milliseconds(ms));
  auto local = zone->to_local(sys);
  auto day = date::floor<date::days>(local);
  auto start = zone->to_sys(day, date::choose::earliest);
  return duration_cast<milliseconds>(start.time_since_epoch()).count();
}

int32_t LocalDayNumber(int64_t ms, std::string_view tz) {
  using namespace std::chrono;
  auto local = Zone(tz)->to_local(sys_time<milliseconds>(milliseconds(ms)));
  return static_cast<int32_t>(date::floor<date::days>(local).time_since_epoch().count());
}

}  // namespace siyu
