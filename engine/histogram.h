#pragma once
// A fixed-bucket histogram for metrics (Prometheus-style cumulative buckets
// are derived when read): one relaxed atomic add for the bucket, one for the
// sum, lock-free, so hot paths can observe into it from any thread.
//
// Thread safety: observe() and snapshot() may be called from any thread. A
// snapshot taken while others observe may see a bucket count and the sum of
// slightly different moments (as any Prometheus client library does).

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace annal::engine {

class Histogram {
 public:
  static constexpr std::size_t kMaxBuckets = 24;

  // `bounds`: strictly increasing upper bounds (inclusive, in the unit the
  // caller observes in), at most kMaxBuckets; an implicit +Inf bucket
  // follows.
  explicit Histogram(std::span<const std::uint64_t> bounds) : n_(bounds.size()) {
    for (std::size_t i = 0; i < n_ && i < kMaxBuckets; ++i) bounds_[i] = bounds[i];
  }
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(std::uint64_t v) {
    std::size_t i = 0;
    while (i < n_ && v > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
  }

  struct Snapshot {
    std::size_t buckets = 0;                          // finite buckets
    std::array<std::uint64_t, kMaxBuckets> bounds{};  // upper bounds
    // Cumulative: cumulative[i] = observations <= bounds[i];
    // cumulative[buckets] = every observation (+Inf).
    std::array<std::uint64_t, kMaxBuckets + 1> cumulative{};
    std::uint64_t count = 0;
    std::uint64_t sum = 0;
  };
  Snapshot snapshot() const {
    Snapshot s;
    s.buckets = n_;
    s.bounds = bounds_;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i <= n_; ++i) {
      total += counts_[i].load(std::memory_order_relaxed);
      s.cumulative[i] = total;
    }
    s.count = total;
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::size_t n_;
  std::array<std::uint64_t, kMaxBuckets> bounds_{};
  std::array<std::atomic<std::uint64_t>, kMaxBuckets + 1> counts_{};
  std::atomic<std::uint64_t> sum_{0};
};

// Latency buckets in nanoseconds, 25 µs to 10 s: disk syncs and appends.
inline constexpr std::array<std::uint64_t, 19> kLatencyBucketsNs = {
    25'000,        50'000,        100'000,       250'000,       500'000,
    1'000'000,     2'500'000,     5'000'000,     10'000'000,    25'000'000,
    50'000'000,    100'000'000,   250'000'000,   500'000'000,   750'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

// Count buckets (events per group commit), powers of two to 8192.
inline constexpr std::array<std::uint64_t, 14> kCountBuckets = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};

}  // namespace annal::engine
