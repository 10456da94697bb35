// `siyu demo`: the real server with a demo brand, 洁净生活 CleanLife (detergents, tissues,
// personal care). The brand's data goes in through the public HTTP API, as a brand's own systems
// would send it, so the demo also shows that the API carries a realistic load: channels, people,
// orders and refunds, then the people's behaviour as events (scans, adds, follows, browsing, carts,
// payments, coupons, groups), sent in batches of 500. Everything is generated from the seed and a
// time anchor kept with the credentials, so an interrupted load resumes on the next start by
// replaying the same idempotent requests (events under the same event ids: stored ones come back
// as duplicates).
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "apps/commands.h"
#include "client/http_client.h"
#include "common/crypto.h"
#include "common/json.h"
#include "common/time.h"
#include "engine/engine.h"

namespace siyu::apps {
namespace {

constexpr std::string_view kBrand = "洁净生活 CleanLife";
constexpr std::string_view kSecondBrand = "示例二号 Sample Two";
constexpr std::string_view kAdmin = "admin";
constexpr int kLoaderThreads = 8;
constexpr int64_t kMsPerHour = 3'600'000;
// Asia/Shanghai has had no daylight saving since 1991, so local time is a fixed offset.
constexpr int64_t kShanghaiOffsetMs = 8 * kMsPerHour;

// ---- the brands --------------------------------------------------------------------------------

struct Sku {
  std::string_view code;
  int64_t price_fen;
  std::string_view category;  // what bought(category=…) matches
};

// How a channel's people identify themselves: weights of an openid of `app`, a unionid, a phone.
struct IdMix {
  std::string_view app;
  double openid, unionid, phone;
};

struct ChannelDef {
  std::string_view name;  // empty: the people who came with no channel
  std::string_view source_pool, touchpoint;
  int64_t cost_fen;
};

struct Rates {
  double share;       // of the brand's people
  double conversion;  // chance that a person buys at least once
  double repeat;      // chance of each further order
  // People who scan the channel's code but never add, follow or join, per person it brings (only
  // for channels whose people scan a code first, see ScansFirst).
  double scan_only = 0;
};

struct ChannelSpec {
  ChannelDef def;
  Rates rates;
  IdMix ids;
  std::vector<double> sku_weights;  // one per brand SKU
};

struct BrandSpec {
  std::string_view order_prefix;
  std::vector<Sku> skus;
  std::vector<ChannelSpec> channels;
  std::string_view scan_app;  // whose openids the people who only scan a code get
};

constexpr std::string_view kOfficialAccountApp = "wx3c9f5a1e7b2d4086";
constexpr std::string_view kMiniProgramApp = "wx7d2e8b4c1a9f3065";

// Shares, conversion and repeat rates differ by channel on purpose: a shopper who scans the code
// at the till already buys the brand and comes back for tissues; an influencer's audience is
// curious but converts poorly; parcel cards reach existing online buyers.
BrandSpec CleanLife() {
  return BrandSpec{
      "CL",
      {
          {"CL-LAUNDRY-2KG", 4990, "洗衣"},     // 洗衣液 2kg
          {"CL-PODS-52", 5990, "洗衣"},         // 洗衣凝珠 52颗
          {"CL-TISSUE-24", 5990, "纸品"},       // 抽纸 24包
          {"CL-DISH-1100", 1990, "厨房清洁"},   // 洗洁精 1.1kg
          {"CL-BODYWASH-750", 3990, "个护"},    // 沐浴露 750ml
          {"CL-TOOTHPASTE-120", 1290, "个护"},  // 牙膏 120g
          {"CL-SHAMPOO-500", 4590, "个护"},     // 洗发水 500ml
          {"CL-WIPES-80X3", 1590, "纸品"},      // 湿巾 80抽×3
          {"CL-KITCHEN-6", 2490, "纸品"},       // 厨房纸 6卷
          {"CL-HANDWASH-500", 1690, "个护"},    // 洗手液 500ml
      },
      {
          {{"公众号关注", "wechat_public", "official_account", 600'000},
           {.share = 0.30, .conversion = 0.22, .repeat = 0.30},
           {kOfficialAccountApp, 0.8, 0.2, 0.0},
           {3, 2, 3, 3, 2, 2, 2, 1, 1, 1}},
          {{"门店收银台扫码", "offline", "wecom", 200'000},
           {.share = 0.36, .conversion = 0.42, .repeat = 0.65, .scan_only = 0.25},
           {"", 0.0, 0.4, 0.6},
           {2, 1, 5, 4, 1, 3, 1, 2, 3, 2}},
          {{"天猫包裹卡", "ecommerce_platform", "wecom", 900'000},
           {.share = 0.19, .conversion = 0.30, .repeat = 0.45, .scan_only = 0.6},
           {"", 0.0, 0.5, 0.5},
           {5, 4, 2, 1, 2, 1, 2, 1, 1, 1}},
          {{"小红书达人合作", "partner", "mini_program", 2'400'000},
           {.share = 0.10, .conversion = 0.16, .repeat = 0.15, .scan_only = 0.8},
           {kMiniProgramApp, 0.85, 0.0, 0.15},
           {1, 1, 1, 1, 5, 2, 5, 2, 0, 2}},
          {{"", "", "", 0},
           {.share = 0.05, .conversion = 0.25, .repeat = 0.30},
           {"", 0.0, 0.5, 0.5},
           {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
      },
      kMiniProgramApp,
  };
}

BrandSpec SampleTwo() {
  return BrandSpec{
      "ST",
      {
          {"ST-NUTS-750", 2990, "零食"},  // 每日坚果 750g
          {"ST-TEA-100", 3990, "茶饮"},   // 花草茶 100g
          {"ST-GIFTBOX", 12800, "礼盒"},  // 节日礼盒
      },
      {
          {{"视频号直播", "wechat_public", "mini_program", 150'000},
           {.share = 0.6, .conversion = 0.35, .repeat = 0.3},
           {"wx1b6e0c9d4f2a8573", 0.9, 0.1, 0.0},
           {3, 2, 1}},
          {{"社群团购", "partner", "group", 50'000},
           {.share = 0.4, .conversion = 0.5, .repeat = 0.4, .scan_only = 0.3},
           {"", 0.0, 0.3, 0.7},
           {2, 2, 1}},
      },
      "wx1b6e0c9d4f2a8573",
  };
}

// ---- the plan: every request of the load, generated up front from the seed ---------------------

struct Line {
  int sku;
  int quantity;
};

struct PlannedOrder {
  std::string order_no;
  int64_t paid_at = 0;
  std::vector<Line> lines;
  std::optional<int64_t> refunded_at;
  std::string_view refund_reason;
};

struct PlannedPerson {
  std::string external_id;
  std::string name;  // empty: none given
  int channel = 0;   // index into BrandSpec::channels
  int64_t acquired_at = 0;
  std::vector<PlannedOrder> orders;
};

struct Plan {
  std::vector<PlannedPerson> people;
  int orders = 0;
  int refunds = 0;
};

// Own helpers instead of <random>'s distributions, whose algorithms differ between standard
// libraries: the same seed must give the same demo everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  double Unit() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }
  bool Chance(double p) { return Unit() < p; }
  uint64_t Below(uint64_t n) { return g_() % n; }
  int64_t Between(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(Below(hi - lo)); }
  double Exponential(double mean) { return -mean * std::log(1.0 - Unit()); }
  int Weighted(const std::vector<double>& w) {
    double total = 0;
    for (double x : w) total += x;
    double r = Unit() * total;
    for (size_t i = 0; i < w.size(); ++i) {
      if (r < w[i]) return static_cast<int>(i);
      r -= w[i];
    }
    return static_cast<int>(w.size()) - 1;
  }

 private:
  std::mt19937_64 g_;
};

// Relative activity by local hour: quiet at night, a lunch peak, the evening peak after work.
constexpr double kHourWeight[24] = {1.0, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.5, 2.5, 3.0, 3.0, 3.5,
                                    4.0, 3.5, 3.0, 3.0, 3.0, 3.5, 4.0, 5.0, 6.0, 6.5, 5.0, 3.0};

// A time in [lo, hi) following the daily rhythm; with `growth` > 0, later times are likelier (the
// brand is growing its private pool).
int64_t PickTime(Rng& rng, int64_t lo, int64_t hi, double growth = 0) {
  int64_t t = lo;
  for (int tries = 0; tries < 1000; ++tries) {
    t = rng.Between(lo, hi);
    int hour = static_cast<int>(((t + kShanghaiOffsetMs) / kMsPerHour) % 24);
    double frac = static_cast<double>(t - lo) / static_cast<double>(hi - lo);
    double accept = kHourWeight[hour] / 6.5 * ((1 - growth) + growth * frac);
    if (rng.Unit() < accept) break;
  }
  return t;
}

std::string RandomChars(Rng& rng, size_t n) {
  static constexpr std::string_view kChars =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kChars[rng.Below(kChars.size())];
  return s;
}

std::string ExternalId(Rng& rng, const IdMix& mix) {
  switch (rng.Weighted({mix.openid, mix.unionid, mix.phone})) {
    case 0:
      return "openid:" + std::string(mix.app) + ":o" + RandomChars(rng, 27);
    case 1:
      return "unionid:o" + RandomChars(rng, 27);
    default: {
      static constexpr char kSecond[] = "35789";
      std::string phone = "phone:1";
      phone += kSecond[rng.Below(5)];
      for (int i = 0; i < 9; ++i) phone += static_cast<char>('0' + rng.Below(10));
      return phone;
    }
  }
}

std::string Nickname(Rng& rng) {
  static constexpr std::string_view kSurnames[] = {"王", "李", "张", "刘", "陈", "杨", "黄",
                                                   "赵", "吴", "周", "徐", "孙", "马", "朱",
                                                   "胡", "郭", "何", "林", "罗", "高"};
  static constexpr std::string_view kLatin[] = {"Lily", "Amy",  "Coco",  "Vivian", "Kevin",
                                                "Tina", "Jack", "Grace", "Momo",   "Sunny"};
  std::string s(kSurnames[rng.Below(std::size(kSurnames))]);
  switch (rng.Below(5)) {
    case 0:
      return "小" + s;
    case 1:
      return s + "女士";
    case 2:
      return s + "先生";
    case 3:
      return "阿" + s;
    default:
      return std::string(kLatin[rng.Below(std::size(kLatin))]);
  }
}

std::string LocalDate(int64_t ms) {
  using namespace std::chrono;
  year_month_day d{floor<days>(sys_time<milliseconds>(milliseconds(ms + kShanghaiOffsetMs)))};
  return fmt::format("{:04}{:02}{:02}", static_cast<int>(d.year()),
                     static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
}

Plan MakePlan(const BrandSpec& brand, int people, int days, int64_t anchor, uint64_t seed) {
  static constexpr std::string_view kReasons[] = {"不想要了", "商品破损", "发错货", "拍错了",
                                                  "质量问题"};
  Plan plan;
  std::unordered_set<std::string> ids;
  std::vector<double> shares;
  for (const auto& ch : brand.channels) shares.push_back(ch.rates.share);
  int64_t start = anchor - days * kMsPerDay;
  std::vector<PlannedOrder*> all;
  plan.people.reserve(people);
  for (int i = 0; i < people; ++i) {
    // One stream per person, identity drawn first: the same seed gives the same people (ids,
    // names, channels) whenever the demo is created; only their timeline follows the start time.
    Rng rng(seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1));
    PlannedPerson p;
    p.channel = rng.Weighted(shares);
    const ChannelSpec& ch = brand.channels[p.channel];
    do {
      p.external_id = ExternalId(rng, ch.ids);
    } while (!ids.insert(p.external_id).second);
    if (rng.Chance(0.6)) p.name = Nickname(rng);
    p.acquired_at = PickTime(rng, start, anchor - 10 * 60'000, 0.4);
    if (rng.Chance(ch.rates.conversion)) {
      // Detergent and tissues run out in days to weeks: repurchases are spaced accordingly.
      int64_t t =
          p.acquired_at + 5 * 60'000 + static_cast<int64_t>(rng.Exponential(2.0 * kMsPerDay));
      while (t < anchor) {
        PlannedOrder o;
        o.paid_at = PickTime(rng, t, std::min(t + kMsPerDay, anchor));
        int nlines = 1 + rng.Weighted({45, 30, 17, 8});
        std::vector<double> w = ch.sku_weights;
        for (int l = 0; l < nlines; ++l) {
          int sku = rng.Weighted(w);
          if (w[sku] == 0) break;  // fewer SKUs on offer than lines drawn
          w[sku] = 0;
          o.lines.push_back({sku, 1 + rng.Weighted({70, 22, 8})});
        }
        if (rng.Chance(0.03)) {
          o.refunded_at = std::min(o.paid_at + rng.Between(2 * kMsPerHour, 4 * kMsPerDay), anchor);
          o.refund_reason = kReasons[rng.Below(std::size(kReasons))];
        }
        p.orders.push_back(std::move(o));
        if (!rng.Chance(ch.rates.repeat)) break;
        t = p.orders.back().paid_at + 2 * kMsPerDay +
            static_cast<int64_t>(rng.Exponential(6.0 * kMsPerDay));
      }
    }
    plan.people.push_back(std::move(p));
  }
  // Order numbers follow the payment time, as a shop system would issue them.
  for (auto& p : plan.people) {
    for (auto& o : p.orders) {
      all.push_back(&o);
      if (o.refunded_at) ++plan.refunds;
    }
  }
  std::stable_sort(all.begin(), all.end(),
                   [](auto* a, auto* b) { return a->paid_at < b->paid_at; });
  for (size_t i = 0; i < all.size(); ++i) {
    all[i]->order_no =
        fmt::format("{}{}{:06}", brand.order_prefix, LocalDate(all[i]->paid_at), i + 1);
  }
  plan.orders = static_cast<int>(all.size());
  return plan;
}

// ---- the events: what the people do, generated from the plan -----------------------------------

struct PlannedEvent {
  std::string_view type;
  std::string id;  // the person's id, exactly as the person was created with it
  int64_t ts = 0;
  std::string_view touchpoint;
  int channel = -1;  // index of the channel whose state the event carries; -1: none
  json::object properties;
};

struct EventPlan {
  std::vector<PlannedEvent> events;  // event n is sent as "demo-<seed>-<n>"
  int scan_only = 0;                 // people who only scanned a code: their scan creates them
};

constexpr int64_t kMinEventTs = 946'684'800'000;  // 2000-01-01, the API's lower bound
constexpr std::string_view kGuides[] = {"guide_lili", "guide_wangfang", "guide_zhaomin",
                                        "guide_chenjing", "guide_liuyang"};

// Channels whose people scan a code before they become contacts: a WeCom contact-way code at the
// till or on a parcel card, a partner's code that opens the mini program or a group invitation.
bool ScansFirst(const ChannelDef& ch) {
  return !ch.name.empty() &&
         (ch.touchpoint == "wecom" || ch.source_pool == "offline" || ch.source_pool == "partner");
}

// Where the scan happens: in a store, or wherever the channel meets people.
std::string_view ScanTouchpoint(const ChannelDef& ch) {
  return ch.source_pool == "offline" ? std::string_view("offline") : ch.touchpoint;
}

// Every event of the brand's people, after their plan: the scan and the acquisition (adding a
// guide, following the official account, opening the mini program, joining a group) with the
// channel's state; browsing and carts before each order, the payment, refunds; browsing without
// buying; welcome coupons, shares, group joins, live streams; and the people who scanned a code
// but went no further. Nothing happens before a person's acquisition except the scan, seconds
// before, and nothing after `anchor`. One random stream per person, apart from the plan's, so
// the plan (people, orders, GMV) is the same with or without events.
EventPlan MakeEvents(const BrandSpec& brand, const Plan& plan,
                     const std::vector<std::string>& states, int days, int64_t anchor,
                     uint64_t seed) {
  static constexpr std::string_view kFollowScenes[] = {"ADD_SCENE_SEARCH", "ADD_SCENE_QR_CODE",
                                                       "ADD_SCENE_PROFILE_CARD",
                                                       "ADD_SCENE_WECHAT_ADVERTISEMENT"};
  static constexpr std::string_view kShareTargets[] = {"friend", "moments", "group"};
  constexpr std::string_view kShop = "mini_program";
  EventPlan out;
  const std::string prefix(brand.order_prefix);
  const std::string welcome = prefix + "-WELCOME-10";
  auto add = [&](std::string_view type, const std::string& id, int64_t ts,
                 std::string_view touchpoint, int channel, json::object props) {
    if (ts < kMinEventTs || ts > anchor) return;
    out.events.push_back({type, id, ts, touchpoint, channel, std::move(props)});
  };
  auto product = [&](int sku) -> const Sku& { return brand.skus[sku]; };
  for (size_t i = 0; i < plan.people.size(); ++i) {
    const PlannedPerson& p = plan.people[i];
    const ChannelSpec& spec = brand.channels[p.channel];
    const ChannelDef& ch = spec.def;
    const std::string& id = p.external_id;
    const int64_t acq = p.acquired_at;
    Rng rng((seed ^ 0xD1B54A32D192ED03ull) + 0x9E3779B97F4A7C15ull * (i + 1));

    std::string_view reached = kShop;  // where the brand reaches the person
    if (!ch.name.empty()) {
      const std::string& state = states[p.channel];
      if (ScansFirst(ch)) {
        add("qr_scanned", id, acq - rng.Between(2'000, 40'000), ScanTouchpoint(ch), p.channel,
            {{"scene", state}});
      }
      reached = ch.touchpoint;
      if (ch.touchpoint == "wecom") {
        add("contact_added", id, acq, "wecom", p.channel,
            {{"user_id", kGuides[rng.Below(std::size(kGuides))]}});
      } else if (ch.touchpoint == "official_account") {
        add("follow", id, acq, "official_account", p.channel,
            {{"app_id", spec.ids.app}, {"scene", kFollowScenes[rng.Weighted({5, 3, 1, 2})]}});
      } else if (ch.touchpoint == "mini_program") {
        add("page_view", id, acq, "mini_program", p.channel,
            {{"path", "pages/landing/index"}, {"title", "新人专享"}});
      } else if (ch.touchpoint == "group") {
        add("group_joined", id, acq, "group", p.channel,
            {{"chat_id", fmt::format("wrDemoGroup{}", 1 + rng.Below(4))}});
      }
    }
    const bool coupon = !ch.name.empty() && rng.Chance(0.35);
    if (coupon) {
      add("coupon_received", id, acq + rng.Between(5'000, 120'000), reached, -1,
          {{"coupon_id", welcome}});
    }
    if (ch.touchpoint == "wecom" && rng.Chance(0.15)) {
      add("group_joined", id, acq + rng.Between(kMsPerHour, 5 * kMsPerDay), "group", -1,
          {{"chat_id", fmt::format("wrDemoGroup{}", 1 + rng.Below(6))}});
    }
    if (rng.Chance(0.10) && acq + kMsPerHour < anchor) {
      int64_t t = PickTime(rng, acq + kMsPerHour, anchor);
      add("live_watch", id, t, kShop, -1,
          {{"live_id", prefix + "-LIVE-" + LocalDate(t)}, {"seconds", rng.Between(20, 3600)}});
    }

    // Browsing and the cart in the hours before each payment (never before the acquisition).
    for (size_t k = 0; k < p.orders.size(); ++k) {
      const PlannedOrder& o = p.orders[k];
      const int64_t lo = std::max(acq + 1'000, o.paid_at - rng.Between(kMsPerHour, 6 * kMsPerHour));
      const int64_t hi = o.paid_at - 60'000;  // ≥ acq + 4 min: orders come ≥ 5 min after it
      const int views = 1 + static_cast<int>(rng.Below(4));
      std::vector<int64_t> at;
      for (int v = 0; v <= views; ++v) at.push_back(lo < hi ? rng.Between(lo, hi) : lo);
      std::sort(at.begin(), at.end());
      for (int v = 0; v < views; ++v) {
        int sku = static_cast<size_t>(v) < o.lines.size() ? o.lines[v].sku
                                                          : rng.Weighted(spec.sku_weights);
        add("product_view", id, at[v], kShop, -1,
            {{"sku", product(sku).code}, {"price_fen", product(sku).price_fen}});
      }
      int64_t t = at[views];  // the cart, then the payment within the minute after
      int64_t total_fen = 0;
      for (const Line& l : o.lines) {
        add("add_to_cart", id, t, kShop, -1,
            {{"sku", product(l.sku).code},
             {"quantity", l.quantity},
             {"price_fen", product(l.sku).price_fen}});
        t += rng.Between(3'000, 15'000);
        total_fen += l.quantity * product(l.sku).price_fen;
      }
      add("order_paid", id, o.paid_at, kShop, -1,
          {{"order_no", o.order_no}, {"amount_fen", total_fen}});
      if (k == 0 && coupon && rng.Chance(0.6)) {
        add("coupon_used", id, o.paid_at, kShop, -1,
            {{"coupon_id", welcome}, {"order_no", o.order_no}});
      }
      if (o.refunded_at) {
        add("order_refunded", id, *o.refunded_at, kShop, -1,
            {{"order_no", o.order_no}, {"amount_fen", total_fen}, {"reason", o.refund_reason}});
      }
      if (rng.Chance(0.12)) {
        add("share", id, o.paid_at + rng.Between(60'000, 3 * kMsPerHour), kShop, -1,
            {{"content", "pages/product/detail?sku=" + std::string(product(o.lines[0].sku).code)},
             {"target", kShareTargets[rng.Below(std::size(kShareTargets))]}});
      }
    }
    // Some of those who never buy look around anyway, and a few leave something in the cart.
    if (p.orders.empty() && rng.Chance(0.45)) {
      int64_t t = PickTime(rng, acq + 60'000, std::min(acq + 7 * kMsPerDay, anchor));
      int views = 1 + static_cast<int>(rng.Below(3));
      int sku = 0;
      for (int v = 0; v < views; ++v) {
        sku = rng.Weighted(spec.sku_weights);
        add("product_view", id, t, kShop, -1,
            {{"sku", product(sku).code}, {"price_fen", product(sku).price_fen}});
        t += rng.Between(20'000, 5 * 60'000);
      }
      if (rng.Chance(0.3)) {
        add("add_to_cart", id, t, kShop, -1,
            {{"sku", product(sku).code}, {"quantity", 1}, {"price_fen", product(sku).price_fen}});
      }
    }
  }

  // The people who scanned a code and went no further: fresh openids, unknown to the brand, so
  // each scan creates its person (acquired then, attributed to the channel). One event each: two
  // batches creating the same person at once would conflict.
  std::unordered_set<std::string> ids;
  for (const auto& p : plan.people) ids.insert(p.external_id);
  const int64_t start = anchor - days * kMsPerDay;
  Rng rng((seed ^ 0x5CA7C0DE5CA7C0DEull) + 0x9E3779B97F4A7C15ull);
  for (size_t c = 0; c < brand.channels.size(); ++c) {
    const ChannelSpec& spec = brand.channels[c];
    if (!ScansFirst(spec.def)) continue;
    int64_t brought = std::count_if(plan.people.begin(), plan.people.end(), [&](const auto& p) {
      return p.channel == static_cast<int>(c);
    });
    auto n =
        static_cast<int64_t>(std::llround(static_cast<double>(brought) * spec.rates.scan_only));
    for (int64_t j = 0; j < n; ++j) {
      std::string id;
      do {
        id = "openid:" + std::string(brand.scan_app) + ":o" + RandomChars(rng, 27);
      } while (!ids.insert(id).second);
      size_t before = out.events.size();
      add("qr_scanned", id, PickTime(rng, start, anchor - 10 * 60'000, 0.4),
          ScanTouchpoint(spec.def), static_cast<int>(c), {{"scene", states[c]}});
      out.scan_only += static_cast<int>(out.events.size() - before);
    }
  }
  return out;
}

// ---- credentials -------------------------------------------------------------------------------

struct Credentials {
  std::string username;
  std::string password;
  std::string api_key;
  int64_t tenant_id = 0;
  int64_t anchor_ms = 0;  // the demo's "now" at its first start; the timeline ends there
  bool loaded = false;    // both brands are fully loaded
};

Status WriteCredentials(const std::string& path, const Credentials& c) {
  json::object o;
  o["username"] = c.username;
  o["password"] = c.password;
  o["api_key"] = c.api_key;
  o["tenant_id"] = c.tenant_id;
  o["tenant"] = kBrand;
  o["anchor_ms"] = c.anchor_ms;
  o["loaded"] = c.loaded;
  std::string body = ToJson(o) + "\n";
  // Created 0600 from the start: the file holds a superuser password and an admin key.
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && ::fchmod(fd, 0600) == 0 &&
            ::write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()) &&
            ::fsync(fd) == 0;
  if (fd >= 0) ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status(ErrorCode::kInternal,
                  "cannot write " + path + ": " + std::string(std::strerror(errno)));
  }
  return Status::Ok();
}

StatusOr<Credentials> ReadCredentials(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status(ErrorCode::kNotFound, "cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  ASSIGN_OR_RETURN(json::object o, ParseJsonObject(ss.str()));
  Credentials c;
  try {
    c.username = std::string(o.at("username").as_string());
    c.password = std::string(o.at("password").as_string());
    c.api_key = std::string(o.at("api_key").as_string());
    c.tenant_id = o.at("tenant_id").to_number<int64_t>();
    c.anchor_ms = o.at("anchor_ms").to_number<int64_t>();
    c.loaded = o.at("loaded").as_bool();
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInvalidField, path + " is damaged: " + e.what());
  }
  return c;
}

// The operator, both tenants and the admin key: created directly in the engine on the first start
// (the API has no route that creates operators), read back from the credentials file afterwards.
StatusOr<Credentials> EnsureCredentials(engine::Engine& engine, const std::string& path) {
  auto& t = engine.tenancy();
  ASSIGN_OR_RETURN(auto admin, t.FindOperator(std::string(kAdmin)));
  if (admin) {
    auto c = ReadCredentials(path);
    if (!c.ok()) {
      return Status(c.status().code(),
                    "the store already has an operator 'admin' but its demo credentials are "
                    "missing (" +
                        c.status().message() + "); start over with a fresh --data directory");
    }
    // The file may belong to another store (say, a SQLite demo when the store is now PostgreSQL).
    auto p = t.Authenticate(c->api_key, "");
    if (!p.ok() || p->tenant_id != c->tenant_id) {
      return Status(ErrorCode::kUnauthenticated,
                    path +
                        " does not belong to this store; start over with a fresh --data "
                        "directory, or use the store it was written for");
    }
    return c;
  }
  Credentials c;
  c.username = kAdmin;
  c.password = RandomBase62(12);
  c.anchor_ms = NowMs();
  ASSIGN_OR_RETURN(domain::Operator op, t.CreateOperator(c.username, c.password, true));
  ASSIGN_OR_RETURN(domain::Tenant brand, t.CreateTenant(std::string(kBrand), op.id));
  ASSIGN_OR_RETURN(domain::ApiKey key,
                   t.CreateKey(brand.id, "demo admin key", domain::Role::kAdmin));
  RETURN_IF_ERROR(t.CreateTenant(std::string(kSecondBrand), op.id).status());
  c.tenant_id = brand.id;
  c.api_key = key.plaintext;
  RETURN_IF_ERROR(WriteCredentials(path, c));
  return c;
}

// ---- loading through the API -------------------------------------------------------------------

// The first failure of any loader thread; `failed` lets the others stop without taking the lock.
struct LoadError {
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string text;
  void Set(std::string s) {
    std::lock_guard<std::mutex> lock(mu);
    if (text.empty()) text = std::move(s);
    failed = true;
  }
  std::string Text() {
    std::lock_guard<std::mutex> lock(mu);
    return text;
  }
};

// Non-2xx answers end the demo: the generated data is valid, so any rejection is a defect.
bool Check(const client::Response& r, std::string_view what, LoadError& err) {
  if (r.status >= 200 && r.status < 300) return true;
  if (r.status == 0) {
    err.Set(std::string(what) + " failed: " + r.error);
  } else {
    err.Set(std::string(what) + " answered " + std::to_string(r.status) + ": " + r.body);
  }
  return false;
}

std::optional<json::object> Body(const client::Response& r, std::string_view what, LoadError& err) {
  auto o = ParseJsonObject(r.body);
  if (!o.ok()) {
    err.Set(std::string(what) + " answered something that is not a JSON object: " + r.body);
    return std::nullopt;
  }
  return std::move(o).value();
}

struct Target {
  std::string host;
  uint16_t port;
  std::vector<std::pair<std::string, std::string>> headers;  // credentials, tenant

  std::unique_ptr<client::HttpClient> Client() const {
    auto c = std::make_unique<client::HttpClient>(host, port);
    for (const auto& [k, v] : headers) c->SetHeader(k, v);
    return c;
  }
};

// The channel states by spec index ("" for the no-channel bucket), creating the channels that do
// not exist yet (a resumed load finds some or all of them).
std::optional<std::vector<std::string>> EnsureChannels(const Target& to, const BrandSpec& brand,
                                                       LoadError& err) {
  auto c = to.Client();
  auto r = c->Get("/v1/channels");
  if (!Check(r, "GET /v1/channels", err)) return std::nullopt;
  auto list = Body(r, "GET /v1/channels", err);
  if (!list) return std::nullopt;
  std::vector<std::string> states(brand.channels.size());
  for (size_t i = 0; i < brand.channels.size(); ++i) {
    const ChannelDef& spec = brand.channels[i].def;
    if (spec.name.empty()) continue;
    for (const auto& item : list->at("items").as_array()) {
      const auto& ch = item.as_object();
      if (ch.at("name").as_string() == spec.name) states[i] = ch.at("state").as_string().c_str();
    }
    if (!states[i].empty()) continue;
    json::object body;
    body["name"] = spec.name;
    body["source_pool"] = spec.source_pool;
    body["touchpoint"] = spec.touchpoint;
    body["cost_fen"] = spec.cost_fen;
    auto created = c->Post("/v1/channels", ToJson(body));
    if (!Check(created, "POST /v1/channels", err)) return std::nullopt;
    auto ch = Body(created, "POST /v1/channels", err);
    if (!ch) return std::nullopt;
    states[i] = ch->at("state").as_string().c_str();
    // Its link code (渠道码), which siyu renders without WeChat: the console shows its QR code.
    const std::string codes = "/v1/channels/" + ToJson(ch->at("id")) + "/codes";
    auto code = c->Post(codes, R"({"kind":"link","url":"https://m.example.com/landing"})");
    if (!Check(code, "POST /v1/channels/{id}/codes", err)) return std::nullopt;
  }
  return states;
}

// The brand's audience definitions (tags and segments), made before its people and events arrive
// so that rule tags and segments fill up live as the load goes. A resumed load finds them.
bool EnsureAudience(const Target& to, LoadError& err) {
  auto c = to.Client();
  auto have = [&](const char* path, const char* what) -> std::optional<std::set<std::string>> {
    auto r = c->Get(path);
    if (!Check(r, what, err)) return std::nullopt;
    auto list = Body(r, what, err);
    if (!list) return std::nullopt;
    std::set<std::string> names;
    for (const auto& item : list->at("items").as_array()) {
      names.insert(item.as_object().at("name").as_string().c_str());
    }
    return names;
  };
  auto tags = have("/v1/tags", "GET /v1/tags");
  if (!tags) return false;
  struct TagSpec {
    const char* group;
    const char* name;
    const char* rule;  // nullptr: manual
  };
  const TagSpec kTags[] = {
      {"会员", "高价值", "gmv(last 365d) >= 50000"},
      {"会员", "复购客", "orders(last 365d) >= 2"},
      {"会员", "银卡会员", "tier(\"银卡\")"},
      {"会员", "门店VIP", nullptr},
      {"行为", "近7天浏览", "events(\"page_view\", last 7d) >= 1"},
      {"行为", "爱分享", "events(\"share\", last 30d) >= 2"},
      {"行为", "加购多件", "event_sum(\"add_to_cart\", \"quantity\", last 30d) >= 3"},
      {"品类", "买过纸品", "bought(category=\"纸品\", last 180d)"},
      {"品类", "洗衣常客", "orders(category=\"洗衣\", last 365d) >= 2"},
  };
  for (const TagSpec& t : kTags) {
    if (tags->count(t.name)) continue;
    json::object body{{"group", t.group}, {"name", t.name}};
    if (t.rule) body["rule"] = t.rule;
    if (!Check(c->Post("/v1/tags", ToJson(body)), "POST /v1/tags", err)) return false;
  }
  auto segments = have("/v1/segments", "GET /v1/segments");
  if (!segments) return false;
  const std::pair<const char*, const char*> kSegments[] = {
      {"沉睡会员", "stage(\"dormant\") OR stage(\"churned\")"},
      {"近30天活跃", "events(\"page_view\", last 30d) >= 1 OR orders(last 30d) >= 1"},
      {"银卡未复购", "tag(\"银卡会员\") AND NOT tag(\"复购客\")"},
      {"重要挽留", "rfm(\"important_retain\")"},
      {"洗衣复购提醒",
       "bought(category=\"洗衣\", last 30d) AND NOT bought(category=\"洗衣\", last 7d)"},
  };
  for (const auto& [name, expression] : kSegments) {
    if (segments->count(name)) continue;
    json::object body{{"name", name}, {"expression", expression}};
    if (!Check(c->Post("/v1/segments", ToJson(body)), "POST /v1/segments", err)) return false;
  }
  return true;
}

// Store staff mark their regulars by hand: the first people of the brand get 门店VIP.
bool TagStoreRegulars(const Target& to, LoadError& err) {
  auto c = to.Client();
  auto r = c->Get("/v1/tags");
  if (!Check(r, "GET /v1/tags", err)) return false;
  auto list = Body(r, "GET /v1/tags", err);
  if (!list) return false;
  std::string tag_id;
  for (const auto& item : list->at("items").as_array()) {
    if (item.as_object().at("name").as_string() == "门店VIP") tag_id = ToJson(item.at("id"));
  }
  if (tag_id.empty()) return true;
  auto people = c->Get("/v1/people?limit=40");
  if (!Check(people, "GET /v1/people", err)) return false;
  auto page = Body(people, "GET /v1/people", err);
  if (!page) return false;
  json::array ids;
  for (const auto& p : page->at("items").as_array()) ids.push_back(p.as_object().at("id"));
  if (ids.empty()) return true;
  return Check(c->Post("/v1/tags/" + tag_id + "/people", ToJson(json::object{{"add", ids}})),
               "POST /v1/tags/{id}/people", err);
}

// One person's upsert, orders and refunds. False after an error (recorded in `err`).
bool SendPerson(client::HttpClient& c, const BrandSpec& brand, const PlannedPerson& p,
                const std::string& state, LoadError& err) {
  json::object pb;
  pb["external_id"] = p.external_id;
  if (!state.empty()) pb["channel_state"] = state;
  pb["acquired_at"] = p.acquired_at;
  if (!p.name.empty()) pb["name"] = p.name;
  auto r = c.Post("/v1/people", ToJson(pb));
  if (!Check(r, "POST /v1/people", err)) return false;
  auto person = Body(r, "POST /v1/people", err);
  if (!person) return false;
  int64_t person_id = person->at("person").as_object().at("id").to_number<int64_t>();
  for (const PlannedOrder& o : p.orders) {
    json::array lines;
    int64_t total_fen = 0;
    for (const Line& l : o.lines) {
      const Sku& sku = brand.skus[l.sku];
      json::object lo;
      lo["sku"] = sku.code;
      lo["category"] = sku.category;
      lo["quantity"] = l.quantity;
      lo["unit_price_fen"] = sku.price_fen;
      lines.push_back(std::move(lo));
      total_fen += l.quantity * sku.price_fen;
    }
    json::object ob;
    ob["order_no"] = o.order_no;
    ob["person_id"] = person_id;
    ob["lines"] = std::move(lines);
    ob["total_fen"] = total_fen;
    ob["paid_at"] = o.paid_at;
    if (!Check(c.Post("/v1/orders", ToJson(ob)), "POST /v1/orders", err)) return false;
    if (o.refunded_at) {
      json::object rb;
      rb["reason"] = o.refund_reason;
      rb["refunded_at"] = *o.refunded_at;
      std::string target = "/v1/orders/" + o.order_no + "/refund";
      if (!Check(c.Post(target, ToJson(rb)), "POST " + target, err)) return false;
    }
  }
  return true;
}

// Sends the plan with kLoaderThreads clients, each taking the next person with all of their
// orders and refunds. False on an error (in `err`) or when `abort` was raised.
bool LoadPeople(const Target& to, const BrandSpec& brand, const Plan& plan,
                const std::vector<std::string>& states, std::string_view label,
                const std::atomic<bool>& abort, LoadError& err) {
  std::atomic<size_t> next{0};
  std::atomic<int> people_done{0}, orders_done{0};
  const int total = static_cast<int>(plan.people.size());
  // Ten progress lines for a big load, one for a small one.
  const int step = std::max(1, total >= 500 ? total / 10 : total);
  auto work = [&] {
    auto c = to.Client();
    size_t i;
    while (!abort && !err.failed && (i = next++) < plan.people.size()) {
      const PlannedPerson& p = plan.people[i];
      try {
        if (!SendPerson(*c, brand, p, states[p.channel], err)) return;
      } catch (const std::exception& e) {
        err.Set("unexpected answer while loading " + p.external_id + ": " + e.what());
        return;
      }
      orders_done += static_cast<int>(p.orders.size());
      int d = ++people_done;
      if (d % step == 0 || d == total) {
        std::cerr << "loading " << label << ": people " << d << "/" << total << ", orders "
                  << orders_done.load() << "/" << plan.orders << "\n";
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kLoaderThreads; ++i) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  return !err.failed && !abort;
}

// The events with their ids, `kEventBatch` to a request, by kLoaderThreads clients. Every event
// must be accepted, or found already stored by a load this one resumes; anything else is a defect
// of the generated data and ends the load. False on an error (in `err`) or when `abort` was raised.
constexpr size_t kEventBatch = 500;

struct EventCounts {
  std::atomic<int64_t> accepted{0}, duplicates{0};
};

bool LoadEvents(const Target& to, const EventPlan& events, const std::vector<std::string>& states,
                uint64_t seed, std::string_view label, const std::atomic<bool>& abort,
                LoadError& err, EventCounts& counts) {
  const size_t total = events.events.size();
  const size_t batches = (total + kEventBatch - 1) / kEventBatch;
  const size_t step = std::max<size_t>(1, batches >= 10 ? batches / 10 : batches);
  std::atomic<size_t> next{0}, batches_done{0}, events_done{0};
  auto body_of = [&](size_t b) {
    std::string body = "{\"events\":[";
    for (size_t n = b * kEventBatch; n < std::min(total, (b + 1) * kEventBatch); ++n) {
      const PlannedEvent& e = events.events[n];
      json::object o;
      o["event_id"] = fmt::format("demo-{}-{}", seed, n);
      o["type"] = e.type;
      o["ids"] = json::array{json::value(e.id)};
      o["ts"] = e.ts;
      o["touchpoint"] = e.touchpoint;
      if (e.channel >= 0) o["channel_state"] = states[e.channel];
      o["properties"] = e.properties;
      if (n != b * kEventBatch) body += ',';
      body += ToJson(o);
    }
    return body + "]}";
  };
  auto work = [&] {
    auto c = to.Client();
    size_t b;
    while (!abort && !err.failed && (b = next++) < batches) {
      const size_t sent = std::min(total, (b + 1) * kEventBatch) - b * kEventBatch;
      auto r = c->Post("/v1/events", body_of(b));
      if (!Check(r, "POST /v1/events", err)) return;
      auto answer = Body(r, "POST /v1/events", err);
      if (!answer) return;
      try {
        int64_t accepted = answer->at("accepted").to_number<int64_t>();
        int64_t duplicates = answer->at("duplicates").to_number<int64_t>();
        if (answer->at("rejected").to_number<int64_t>() != 0 ||
            accepted + duplicates != static_cast<int64_t>(sent)) {
          std::string why;
          for (const auto& res : answer->at("results").as_array()) {
            if (res.as_object().at("status").as_string() != "accepted" &&
                res.as_object().at("status").as_string() != "duplicate" && why.size() < 2000) {
              why += (why.empty() ? "" : ", ") + ToJson(res);
            }
          }
          err.Set(fmt::format("POST /v1/events refused events of batch {}: {}", b, why));
          return;
        }
        counts.accepted += accepted;
        counts.duplicates += duplicates;
      } catch (const std::exception& e) {
        err.Set("POST /v1/events answered " + r.body + " (" + e.what() + ")");
        return;
      }
      size_t n = (events_done += sent);
      size_t d = ++batches_done;
      if (d % step == 0 || d == batches) {
        std::cerr << "loading " << label << ": events " << n << "/" << total << "\n";
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kLoaderThreads; ++i) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  return !err.failed && !abort;
}

// The brand's people as the overview counts them: everyone ever acquired.
std::optional<int64_t> CountPeople(const Target& to, LoadError& err) {
  const std::string target = "/v1/analytics/overview?from=0&to=4102444800000";  // 2100-01-01
  auto r = to.Client()->Get(target);
  if (!Check(r, "GET " + target, err)) return std::nullopt;
  auto o = Body(r, "GET " + target, err);
  if (!o) return std::nullopt;
  return o->at("people").to_number<int64_t>();
}

struct BrandSummary {
  int64_t loaded_people = 0, scan_only = 0, orders = 0;
  int64_t people = 0;  // counted after the load
  int64_t events = 0, events_new = 0, events_duplicate = 0;
  int64_t merges = 0, quarantined = 0, unmerged = 0;
  int64_t persons = 0;  // people as the console counts them after merges
};

// Identity (OneID): customers the brand met twice. Every 40th loaded person bound a membership
// from a second account that siyu knew as another person (a `member_bound` event carrying both
// ids and the member number merges them); a store's shared checkout phone was registered for five
// customers (the guard lets it tie three people and holds the rest for review); and customer
// service found one merged pair to be a couple sharing a card, so that merge is undone. Idempotent:
// a resumed load finds the events stored, the links decided and the merge already undone.
bool LinkIdentities(const Target& to, const Plan& plan, uint64_t seed, LoadError& err,
                    BrandSummary& sum) {
  auto c = to.Client();
  const size_t n = plan.people.size();
  json::array events;
  std::vector<size_t> firsts;
  for (size_t i = 0; i + 1 < n; i += 40) {
    const PlannedPerson& a = plan.people[i];
    const PlannedPerson& b = plan.people[i + 1];
    if (a.external_id == b.external_id) continue;
    json::object e;
    e["event_id"] = fmt::format("demo-{}-member-{}", seed, i);
    e["type"] = "member_bound";
    e["ids"] = json::array{json::value(a.external_id), json::value(b.external_id),
                           json::value(fmt::format("member_no:DM{:06}", i))};
    e["ts"] = std::max(a.acquired_at, b.acquired_at) + 3'600'000;
    e["touchpoint"] = "mini_program";
    e["properties"] = json::object{{"member_no", fmt::format("DM{:06}", i)}, {"level", "银卡"}};
    events.emplace_back(std::move(e));
    firsts.push_back(i);
  }
  int64_t first_merge_person = 0;
  for (size_t pos = 0; pos < events.size(); pos += kEventBatch) {
    json::array batch(
        events.begin() + static_cast<std::ptrdiff_t>(pos),
        events.begin() + static_cast<std::ptrdiff_t>(std::min(events.size(), pos + kEventBatch)));
    auto r = c->Post("/v1/events", ToJson(json::object{{"events", std::move(batch)}}));
    if (!Check(r, "POST /v1/events (member_bound)", err)) return false;
    auto answer = Body(r, "POST /v1/events", err);
    if (!answer) return false;
    for (const auto& res : answer->at("results").as_array()) {
      const auto& o = res.as_object();
      if (o.at("status").as_string() == "rejected") {
        err.Set("POST /v1/events refused a member_bound event: " + ToJson(res));
        return false;
      }
      if (o.contains("link") && o.at("link").as_string() == "merged") ++sum.merges;
      if (!first_merge_person && o.contains("person_id")) {
        first_merge_person = o.at("person_id").to_number<int64_t>();
      }
    }
  }
  // The shared phone, linked by the store staff to five customers.
  for (size_t k = 0; k < 5 && 2 + k * 97 < n; ++k) {
    json::object link{{"id_a", "phone:+8613900000000"},
                      {"id_b", plan.people[2 + k * 97].external_id},
                      {"reason", "门店收银台登记"}};
    auto r = c->Post("/v1/identity/links", ToJson(link));
    if (!Check(r, "POST /v1/identity/links", err)) return false;
    auto answer = Body(r, "POST /v1/identity/links", err);
    if (!answer) return false;
    const auto result = answer->at("result").as_string();
    if (result == "linked") ++sum.merges;
    if (result == "quarantined") ++sum.quarantined;
  }
  // Customer service splits the first member merge again.
  if (first_merge_person) {
    auto r = c->Get("/v1/people/" + std::to_string(first_merge_person) + "/identity");
    if (!Check(r, "GET /v1/people/{id}/identity", err)) return false;
    auto who = Body(r, "GET /v1/people/{id}/identity", err);
    if (!who) return false;
    for (const auto& e : who->at("history").as_array()) {
      const auto& o = e.as_object();
      if (o.at("kind").as_string() != "merge") continue;
      auto u = c->Post(
          "/v1/identity/merges/" + std::to_string(o.at("seq").to_number<int64_t>()) + "/unmerge",
          ToJson(json::object{{"reason", "客服核实：夫妻两人共用一张会员卡"}}));
      if (u.status == 200) ++sum.unmerged;
      if (u.status != 409 && !Check(u, "POST /v1/identity/merges/{id}/unmerge", err)) {
        return false;
      }
      break;
    }
  }
  auto persons = CountPeople(to, err);
  if (!persons) return false;
  sum.persons = *persons;
  return true;
}

// One brand: its channels, people with their orders and refunds, then their events; and a check
// that the events attached to the people instead of creating others.
bool LoadBrand(const Target& to, const BrandSpec& brand, const Plan& plan, int days, int64_t anchor,
               uint64_t seed, std::string_view label, const std::atomic<bool>& abort,
               LoadError& err, BrandSummary& sum) {
  auto states = EnsureChannels(to, brand, err);
  if (!states || !EnsureAudience(to, err)) return false;
  if (!LoadPeople(to, brand, plan, *states, label, abort, err)) return false;
  EventPlan events = MakeEvents(brand, plan, *states, days, anchor, seed);
  std::cerr << "loading " << label << ": " << events.events.size() << " events in batches of "
            << kEventBatch << ", " << events.scan_only << " of them from people who only scanned\n";
  EventCounts counts;
  if (!LoadEvents(to, events, *states, seed, label, abort, err, counts)) return false;
  sum.loaded_people = static_cast<int64_t>(plan.people.size());
  sum.scan_only = events.scan_only;
  sum.orders = plan.orders;
  sum.events = static_cast<int64_t>(events.events.size());
  sum.events_new = counts.accepted;
  sum.events_duplicate = counts.duplicates;
  if (!LinkIdentities(to, plan, seed, err, sum)) return false;
  if (!TagStoreRegulars(to, err)) return false;
  // The identity graph checked against the store; its person rows are everyone loaded.
  auto r = to.Client()->Post("/v1/identity/verify", "{}");
  if (!Check(r, "POST /v1/identity/verify", err)) return false;
  auto verified = Body(r, "POST /v1/identity/verify", err);
  if (!verified) return false;
  if (!verified->at("ok").as_bool()) {
    err.Set(std::string(label) +
            ": the identity graph disagrees with the store: " + ToJson(*verified));
    return false;
  }
  sum.people = verified->at("person_rows").to_number<int64_t>();
  // So is the audience: tags, segments, stages and classes as a fresh build from the store has
  // them.
  auto av = to.Client()->Post("/v1/audience/verify", "{}");
  if (!Check(av, "POST /v1/audience/verify", err)) return false;
  auto audience = Body(av, "POST /v1/audience/verify", err);
  if (!audience) return false;
  if (!audience->at("ok").as_bool()) {
    err.Set(std::string(label) + ": the audience disagrees with the store: " + ToJson(*audience));
    return false;
  }
  if (sum.people != sum.loaded_people + sum.scan_only) {
    err.Set(
        fmt::format("{} has {} people after the load, not the {} loaded plus the {} who only "
                    "scanned: events did not attach to the people they name",
                    label, sum.people, sum.loaded_people, sum.scan_only));
    return false;
  }
  return true;
}

// Loads both brands. The second brand is reached the way the console reaches it: an operator
// session with X-Siyu-Tenant, which also proves the saved password.
bool LoadDemo(const std::string& host, uint16_t port, const DemoConfig& cfg,
              const Credentials& creds, const std::atomic<bool>& abort, LoadError& err,
              BrandSummary& sum) {
  Target brand_api{host, port, {{"Authorization", "Bearer " + creds.api_key}}};
  BrandSpec brand = CleanLife();
  Plan plan = MakePlan(brand, cfg.people, cfg.days, creds.anchor_ms, cfg.seed);
  std::cerr << "loading demo brand " << kBrand << " through the API (" << kLoaderThreads
            << " clients): " << brand.channels.size() - 1 << " channels, " << plan.people.size()
            << " people, " << plan.orders << " orders, " << plan.refunds << " refunds\n";
  if (!LoadBrand(brand_api, brand, plan, cfg.days, creds.anchor_ms, cfg.seed, "demo brand", abort,
                 err, sum)) {
    return false;
  }

  auto c = std::make_unique<client::HttpClient>(host, port);
  json::object login;
  login["username"] = creds.username;
  login["password"] = creds.password;
  auto r = c->Post("/v1/auth/login", ToJson(login));
  if (!Check(r, "POST /v1/auth/login", err)) return false;
  auto session = Body(r, "POST /v1/auth/login", err);
  if (!session) return false;
  std::string token(session->at("token").as_string());
  int64_t second_id = 0;
  for (const auto& t : session->at("tenants").as_array()) {
    if (t.as_object().at("name").as_string() == kSecondBrand) {
      second_id = t.as_object().at("id").to_number<int64_t>();
    }
  }
  if (second_id == 0) {
    err.Set("the operator 'admin' is not a member of the tenant " + std::string(kSecondBrand));
    return false;
  }
  Target second_api{
      host,
      port,
      {{"Authorization", "Bearer " + token}, {"X-Siyu-Tenant", std::to_string(second_id)}}};
  BrandSpec second = SampleTwo();
  Plan second_plan = MakePlan(second, 60, cfg.days, creds.anchor_ms, cfg.seed + 1);
  BrandSummary second_sum;
  if (!LoadBrand(second_api, second, second_plan, cfg.days, creds.anchor_ms, cfg.seed + 1,
                 kSecondBrand, abort, err, second_sum)) {
    return false;
  }
  c->SetHeader("Authorization", "Bearer " + token);
  return Check(c->Post("/v1/auth/logout", ""), "POST /v1/auth/logout", err);
}

// Whether the brand still needs its data: never loaded, or a load that did not finish.
StatusOr<bool> NeedsLoad(const std::string& host, uint16_t port, const Credentials& creds) {
  if (!creds.loaded) return true;
  client::HttpClient c(host, port);
  c.SetHeader("Authorization", "Bearer " + creds.api_key);
  auto r = c.Get("/v1/channels");
  LoadError err;
  if (!Check(r, "GET /v1/channels", err)) return Status(ErrorCode::kInternal, err.text);
  auto list = Body(r, "GET /v1/channels", err);
  if (!list) return Status(ErrorCode::kInternal, err.text);
  const json::array* items = list->contains("items") ? list->at("items").if_array() : nullptr;
  if (!items) return Status(ErrorCode::kInternal, "GET /v1/channels answered " + r.body);
  return items->empty();
}

// Where a client reaches a server listening on `host`.
std::string ClientHost(const std::string& host) {
  if (host == "0.0.0.0" || host.empty()) return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

}  // namespace

int Demo(const DemoConfig& cfg) {
  // As in Serve(): block the stop signals before any thread starts (the server's and the
  // loader's threads inherit the mask), then take them with sigwait on this thread.
  sigset_t set;
  BlockStopSignals(&set);
  auto srv = Server::Start(cfg.serve);
  if (!srv.ok()) {
    std::cerr << "siyu demo: " << srv.status().message();
    if (srv.status().field() == "port") {
      std::cerr << "\nIs another siyu already running there? Pass --port <n> to use another "
                   "port, or --port 0 for any free one.";
    }
    std::cerr << "\n";
    return 1;
  }
  Server& server = **srv;
  const std::string host = ClientHost(cfg.serve.http.host);
  const uint16_t port = server.port();
  std::error_code ec;
  const std::string dir = cfg.data_dir.empty() ? "." : cfg.data_dir;
  std::filesystem::create_directories(dir, ec);
  const std::string creds_path = dir + "/demo-credentials.json";
  auto creds = EnsureCredentials(server.engine(), creds_path);
  if (!creds.ok()) {
    std::cerr << "siyu demo: " << creds.status().message() << "\n";
    return 1;
  }
  auto need = NeedsLoad(host, port, *creds);
  if (!need.ok()) {
    std::cerr << "siyu demo: " << need.status().message() << "\n";
    return 1;
  }
  if (*need) {
    // Thousands of access-log lines would bury the progress; the log resumes once loaded.
    auto level = spdlog::get_level();
    spdlog::set_level(spdlog::level::warn);
    std::atomic<bool> abort{false}, done{false};
    LoadError err;
    bool ok = false;
    BrandSummary sum;
    auto t0 = std::chrono::steady_clock::now();
    std::thread loader([&] {
      try {
        ok = LoadDemo(host, port, cfg, *creds, abort, err, sum);
      } catch (const std::exception& e) {
        err.Set(std::string("unexpected answer from the API: ") + e.what());
      }
      done = true;
    });
    int sig = 0;
    const timespec tick{0, 100'000'000};
    while (!done) {
      int s = sigtimedwait(&set, nullptr, &tick);
      if (s > 0) {
        sig = s;
        abort = true;
        break;
      }
    }
    loader.join();
    spdlog::set_level(level);
    if (sig != 0) {
      std::cerr << "siyu demo: interrupted while loading; the next start resumes the load\n";
      server.Stop();
      return 0;
    }
    if (!ok) {
      std::cerr << "siyu demo: loading the demo data failed: " << err.Text() << "\n";
      server.Stop();
      return 1;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << "demo data loaded in " << std::fixed << std::setprecision(1) << secs
              << " s: " << kBrand << " has " << sum.people << " people (" << sum.loaded_people
              << " loaded + " << sum.scan_only << " who only scanned a code), " << sum.orders
              << " orders, " << sum.events << " events (" << sum.events_new << " new, "
              << sum.events_duplicate << " already stored); identity: " << sum.merges << " merges, "
              << sum.quarantined << " links held for review, " << sum.unmerged << " merge undone, "
              << sum.persons << " people after merges\n";
    creds->loaded = true;
    if (Status s = WriteCredentials(creds_path, *creds); !s.ok()) {
      std::cerr << "siyu demo: " << s.message() << "\n";
    }
  }

  std::string base = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
                     ":" + std::to_string(port);
  std::cout << "siyu demo is running\n"
            << "  console:  " << base << "/\n"
            << "  login:    " << creds->username << " / " << creds->password << "\n"
            << "  API key:  " << creds->api_key << "  (admin, tenant " << kBrand << ")\n"
            << "  try:      curl -s -H 'Authorization: Bearer " << creds->api_key << "' '" << base
            << "/v1/analytics/overview'\n"
            << "Press Ctrl-C to stop.\n"
            << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("siyu demo: signal {} received; draining", sig);
  server.Stop();
  spdlog::info("siyu demo: stopped");
  return 0;
}

}  // namespace siyu::apps
