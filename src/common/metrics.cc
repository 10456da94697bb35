#include "common/metrics.h"

#include <fmt/format.h>

namespace siyu {
namespace {
std::vector<double> LatencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
}
}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(v * 1e6), std::memory_order_relaxed);
}

void Histogram::Render(std::string& out, std::string_view name, std::string_view labels) const {
  std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    std::string le = i < bounds_.size() ? fmt::format("{}", bounds_[i]) : "+Inf";
    out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, le, cumulative);
  }
  std::string braces = labels.empty() ? "" : fmt::format("{{{}}}", labels);
  out += fmt::format("{}_sum{} {}\n", name, braces,
                     static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6);
  out += fmt::format("{}_count{} {}\n", name, braces, count_.load(std::memory_order_relaxed));
}

Metrics::Metrics()
    : commit_seconds_(LatencyBounds()),
      commit_batch_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}) {}

Metrics& Metrics::Global() {
  static Metrics* m = new Metrics();
  return *m;
}

void Metrics::CountRequest(std::string_view route, std::string_view method, int status,
                           double seconds) {
  std::string key = fmt::format("route=\"{}\",method=\"{}\",status=\"{}\"", route, method, status);
  std::string lkey = fmt::format("route=\"{}\"", route);
  std::atomic<uint64_t>* counter;
  Histogram* hist;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& c = requests_[key];
    if (!c) c = std::make_unique<std::atomic<uint64_t>>(0);
    counter = c.get();
    auto& h = latency_[lkey];
    if (!h) h = std::make_unique<Histogram>(LatencyBounds());
    hist = h.get();
  }
  counter->fetch_add(1, std::memory_order_relaxed);
  hist->Observe(seconds);
}

std::string Metrics::Render() const {
  std::string out;
  out += "# HELP siyu_http_requests_total HTTP requests by route, method and status.\n";
  out += "# TYPE siyu_http_requests_total counter\n";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [k, v] : requests_) {
    out += fmt::format("siyu_http_requests_total{{{}}} {}\n", k, v->load());
  }
  out += "# HELP siyu_http_request_duration_seconds HTTP request latency by route.\n";
  out += "# TYPE siyu_http_request_duration_seconds histogram\n";
  for (const auto& [k, h] : latency_) h->Render(out, "siyu_http_request_duration_seconds", k);
  out += "# HELP siyu_store_commit_duration_seconds Store group-commit transaction latency.\n";
  out += "# TYPE siyu_store_commit_duration_seconds histogram\n";
  commit_seconds_.Render(out, "siyu_store_commit_duration_seconds", "");
  out += "# HELP siyu_store_commit_batch_size Writes per group-commit transaction.\n";
  out += "# TYPE siyu_store_commit_batch_size histogram\n";
  commit_batch_.Render(out, "siyu_store_commit_batch_size", "");
  out += "# HELP siyu_store_writer_cpu_seconds_total CPU time of the store's writer thread.\n";
  out += "# TYPE siyu_store_writer_cpu_seconds_total counter\n";
  out += fmt::format("siyu_store_writer_cpu_seconds_total {:.6f}\n",
                     static_cast<double>(writer_cpu_nanos_.load()) / 1e9);
  return out;
}

}  // namespace siyu
