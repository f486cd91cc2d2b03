#pragma once
// What the network layer counts for the node's metrics (docs/operations.md,
// "Metrics"): requests by operation, errors by code, append latency, the
// subscriptions open and how far behind they are. The admin endpoint
// (admin/) renders them.
//
// Thread safety: every member is atomic, a lock-free Histogram or a
// ProgressBoard (its own mutex); network threads update them, anyone reads
// them. When `enabled` is false (annald --metrics off) nothing is counted
// and no clock is read; `enabled` is set before the server starts and never
// changes.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <utility>

#include "engine/histogram.h"

namespace annal::net {

// How far one subscription has read the log: the position it continues at,
// or kUnknown while a stream subscription catches up through the stream
// index (it knows revisions, not positions, then).
struct SubProgress {
  static constexpr std::uint64_t kUnknown = UINT64_MAX;
  std::atomic<std::uint64_t> next{kUnknown};
};

// Every open subscription's progress, for the lag metrics. A scrape walks
// it under its mutex; a subscription leaves it (under the same mutex) before
// its progress is destroyed.
// Thread safety: every method may be called from any thread.
class ProgressBoard {
 public:
  void add(const SubProgress* p) {
    std::lock_guard l(mu_);
    all_.insert(p);
  }
  void remove(const SubProgress* p) {
    std::lock_guard l(mu_);
    all_.erase(p);
  }
  struct Lag {
    std::uint64_t behind = 0;                           // subscriptions not at `end` yet
    std::uint64_t oldest_next = SubProgress::kUnknown;  // the lowest known position
  };
  // Against the durable end `end`.
  Lag lag(std::uint64_t end) const {
    Lag out;
    std::lock_guard l(mu_);
    for (const SubProgress* p : all_) {
      const std::uint64_t n = p->next.load(std::memory_order_relaxed);
      if (n == SubProgress::kUnknown || n < end) ++out.behind;
      if (n != SubProgress::kUnknown && n < out.oldest_next) out.oldest_next = n;
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::set<const SubProgress*> all_;
};

// Keeps a SubProgress on a board for its lifetime.
class BoardHold {
 public:
  BoardHold() = default;
  BoardHold(ProgressBoard* b, const SubProgress* p) : b_(b), p_(p) {
    if (b_) b_->add(p_);
  }
  BoardHold(const BoardHold&) = delete;
  BoardHold& operator=(const BoardHold&) = delete;
  ~BoardHold() {
    if (b_) b_->remove(p_);
  }

 private:
  ProgressBoard* b_ = nullptr;
  const SubProgress* p_ = nullptr;
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

struct NetMetrics {
  bool enabled = true;
  std::array<std::atomic<std::uint64_t>, 256> requests{};  // by request op
  std::array<std::atomic<std::uint64_t>, 256> errors{};    // by wire code (see code_slot)
  std::atomic<std::int64_t> subscriptions_active{0};
  std::atomic<std::uint64_t> subscriptions_total{0};
  ProgressBoard subscriptions;  // their progress (lag)
  // From an append (or append_multi) frame's arrival to its answer being
  // queued for the socket.
  engine::Histogram append_ns{engine::kLatencyBucketsNs};

  // Wire codes are below 256 but for the client-only connection_lost.
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

}  // namespace annal::net
