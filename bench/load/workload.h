#pragma once
// What the load generator sends, and what it remembers of it: event data,
// ids, the stream chooser, acknowledgement times per position.

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/load/options.h"
#include "engine/types.h"

namespace annal::bench {

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// JSON data of exactly `size` bytes: {"seq":N,"pad":"xxx..."}.
inline std::string json_data(std::uint64_t seq, std::size_t size) {
  std::string head = fmt::format("{{\"seq\":{},\"pad\":\"", seq);
  std::string s = head;
  const std::size_t tail = 2;  // "}
  if (size > head.size() + tail) s.append(size - head.size() - tail, 'x');
  s += "\"}";
  return s;
}

inline EventId fast_id(std::mt19937_64& rng) {
  EventId id;
  const std::uint64_t a = rng(), b = rng();
  for (int k = 0; k < 8; ++k) {
    id.bytes[k] = static_cast<std::uint8_t>(a >> (8 * k));
    id.bytes[8 + k] = static_cast<std::uint8_t>(b >> (8 * k));
  }
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0F) | 0x40);
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3F) | 0x80);
  return id;
}

// Chooses streams uniformly or by a Zipf law (rank k with weight 1/k^s).
class StreamChooser {
 public:
  StreamChooser(const Options& o) : n_(o.streams) {
    if (!o.zipf) return;
    cdf_.resize(n_);
    double sum = 0;
    for (std::uint64_t k = 0; k < n_; ++k) {
      sum += 1.0 / std::pow(static_cast<double>(k + 1), o.zipf_s);
      cdf_[k] = sum;
    }
    for (auto& c : cdf_) c /= sum;
  }
  std::uint64_t pick(std::mt19937_64& rng) const {
    if (cdf_.empty()) return rng() % n_;
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<std::uint64_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::uint64_t n_;
  std::vector<double> cdf_;
};

// Acknowledgement time per global position, for the subscription delay.
// Chunks are allocated on first use; lookups never lock.
class AckTimes {
 public:
  static constexpr std::uint64_t kChunk = 1u << 16;
  static constexpr std::uint64_t kChunks = 1u << 16;
  explicit AckTimes(std::uint64_t base) : base_(base), chunks_(kChunks) {}
  ~AckTimes() {
    for (auto& c : chunks_) delete[] c.load();
  }
  void set(std::uint64_t position, std::int64_t t) {
    if (position < base_) return;
    auto* c = chunk((position - base_) / kChunk, true);
    if (c) c[(position - base_) % kChunk].store(t, std::memory_order_release);
  }
  // 0 if not acknowledged (yet).
  std::int64_t get(std::uint64_t position) {
    if (position < base_) return 0;
    auto* c = chunk((position - base_) / kChunk, false);
    return c ? c[(position - base_) % kChunk].load(std::memory_order_acquire) : 0;
  }

 private:
  std::atomic<std::int64_t>* chunk(std::uint64_t i, bool create) {
    if (i >= kChunks) return nullptr;
    auto* c = chunks_[i].load(std::memory_order_acquire);
    if (c || !create) return c;
    auto* fresh = new std::atomic<std::int64_t>[kChunk];
    for (std::uint64_t k = 0; k < kChunk; ++k) fresh[k].store(0, std::memory_order_relaxed);
    if (chunks_[i].compare_exchange_strong(c, fresh)) return fresh;
    delete[] fresh;
    return c;
  }
  std::uint64_t base_;
  std::vector<std::atomic<std::atomic<std::int64_t>*>> chunks_;
};

// Bytes one event of the load occupies in a segment (for comparing with the
// disk's bandwidth).
std::size_t record_bytes(const Options& o);

}  // namespace annal::bench
