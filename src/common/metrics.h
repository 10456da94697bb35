// Process-wide metrics rendered in the Prometheus text format at /metrics. Thread-safe: counters
// and histograms are atomics; the label maps take a mutex only to find or add a series.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace siyu {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Appends the series lines for `name` with `labels` ("" or `route="x"`).
  void Render(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1 (the +Inf bucket)
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};  // sum × 1e6, so sums stay integers
};

class Metrics {
 public:
  static Metrics& Global();

  void CountRequest(std::string_view route, std::string_view method, int status, double seconds);
  Histogram& store_commit_seconds() { return commit_seconds_; }
  Histogram& store_commit_batch() { return commit_batch_; }
  // CPU time of the store's writer thread (its transactions, the event log's applier included).
  void AddStoreWriterCpu(int64_t nanos) {
    writer_cpu_nanos_.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
  }
  std::string Render() const;

 private:
  Metrics();
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>, std::less<>> requests_;
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> latency_;
  Histogram commit_seconds_;
  Histogram commit_batch_;
  std::atomic<uint64_t> writer_cpu_nanos_{0};
};

}  // namespace siyu
