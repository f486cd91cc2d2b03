#pragma once
// Latency histogram of the load generator (`annal bench`).

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace annal::bench {

// ---- Latency histogram -------------------------------------------------------
// Log-linear buckets: exact below 128 ns, then 64 sub-buckets per power of two
// (< 1.6% relative error). The maximum is kept exactly. Not thread-safe: one
// per thread, merged at the end.
class Histogram {
 public:
  static constexpr int kSub = 64;
  Histogram() : buckets_(64 * kSub + 2 * kSub, 0) {}
  void record(std::int64_t v) {
    if (v < 0) v = 0;
    const auto u = static_cast<std::uint64_t>(v);
    ++buckets_[index(u)];
    ++count_;
    max_ = std::max(max_, u);
    sum_ += static_cast<double>(u);
  }
  void merge(const Histogram& o) {
    for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
  }
  std::uint64_t count() const { return count_; }
  double mean() const { return count_ ? sum_ / static_cast<double>(count_) : 0; }
  std::uint64_t max() const { return max_; }
  // Value at quantile q in [0, 1] (the bucket's midpoint, capped at max).
  std::uint64_t quantile(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(midpoint(i), max_);
    }
    return max_;
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 2 * kSub) return static_cast<std::size_t>(v);
    const int msb = 63 - std::countl_zero(v);  // >= 7
    const int shift = msb - 6;                 // v >> shift in [64, 128)
    return static_cast<std::size_t>(shift) * kSub + static_cast<std::size_t>(v >> shift);
  }
  static std::uint64_t midpoint(std::size_t i) {
    if (i < 2 * kSub) return i;
    const std::size_t shift = i / kSub - 1;
    const std::uint64_t mant = i % kSub + kSub;
    return (mant << shift) + ((std::uint64_t{1} << shift) >> 1);
  }
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
  double sum_ = 0;
};

// The distribution as [[quantile, ms], ...] at fixed quantiles (for CDF plots).
inline std::string latency_cdf_json(const Histogram& h) {
  static constexpr double kQ[] = {0.0, 0.01, 0.05, 0.1,   0.2,  0.3,   0.4,   0.5,    0.6,    0.7,
                                  0.8, 0.9,  0.95, 0.975, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0};
  std::string out = "[";
  for (double q : kQ) {
    if (out.size() > 1) out += ',';
    out += fmt::format("[{},{:.4f}]", q, static_cast<double>(h.quantile(q)) / 1e6);
  }
  return out + "]";
}

inline std::string latency_json(const Histogram& h) {
  auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  return fmt::format(
      "{{\"count\":{},\"mean_ms\":{:.4f},\"p50_ms\":{:.4f},\"p90_ms\":{:.4f},\"p99_ms\":{:.4f},"
      "\"p999_ms\":{:.4f},\"max_ms\":{:.4f},\"cdf\":{}}}",
      h.count(), h.mean() / 1e6, ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)),
      ms(h.quantile(0.999)), ms(h.max()), latency_cdf_json(h));
}

inline std::string latency_text(const Histogram& h) {
  auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  return fmt::format("p50 {:.3f} ms  p90 {:.3f}  p99 {:.3f}  p99.9 {:.3f}  max {:.3f}  (n={})",
                     ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)),
                     ms(h.quantile(0.999)), ms(h.max()), h.count());
}

}  // namespace annal::bench
