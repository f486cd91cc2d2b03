#pragma once
// What the network layer counts for the node's metrics (docs/operations.md,
// "Metrics"): requests by operation, errors by code, append latency and the
// subscriptions open. The admin endpoint (admin/) renders them.
//
// Thread safety: every member is atomic (or a lock-free Histogram); network
// threads update them, anyone reads them. When `enabled` is false (annald
// --metrics off) nothing is counted and no clock is read; `enabled` is set
// before the server starts and never changes.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

#include "engine/histogram.h"

namespace annal::net {

struct NetMetrics {
  bool enabled = true;
  std::array<std::atomic<std::uint64_t>, 256> requests{};  // by request op
  std::array<std::atomic<std::uint64_t>, 256> errors{};    // by wire code (< 256; see code_slot)
  std::atomic<std::int64_t> subscriptions_active{0};
  std::atomic<std::uint64_t> subscriptions_total{0};
  // From an append (or append_multi) frame's arrival to its answer being
  // queued for the socket.
  engine::Histogram append_ns{engine::kLatencyBucketsNs};

  static std::size_t code_slot(std::uint16_t code) { return code < 256 ? code : 255; }

  void count_request(std::uint8_t op) {
    if (enabled) requests[op].fetch_add(1, std::memory_order_relaxed);
  }
  void count_error(std::uint16_t code) {
    if (enabled) errors[code_slot(code)].fetch_add(1, std::memory_order_relaxed);
  }
  // A time stamp for an append's start; the epoch when metrics are off.
  std::chrono::steady_clock::time_point start() const {
    return enabled ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  }
  void append_done(std::chrono::steady_clock::time_point started) {
    if (!enabled) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    append_ns.observe(ns > 0 ? static_cast<std::uint64_t>(ns) : 0);
  }
};

// Holds one unit of a gauge for its lifetime (a subscription counted open
// from creation to destruction, whichever path ends it).
class GaugeHold {
 public:
  GaugeHold() = default;
  explicit GaugeHold(std::atomic<std::int64_t>* g) : g_(g) {
    if (g_) g_->fetch_add(1, std::memory_order_relaxed);
  }
  GaugeHold(GaugeHold&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
  GaugeHold& operator=(GaugeHold&& o) noexcept {
    if (this != &o) {
      release();
      g_ = std::exchange(o.g_, nullptr);
    }
    return *this;
  }
  ~GaugeHold() { release(); }

 private:
  void release() {
    if (g_) g_->fetch_sub(1, std::memory_order_relaxed);
    g_ = nullptr;
  }
  std::atomic<std::int64_t>* g_ = nullptr;
};

}  // namespace annal::net
