#pragma once
// One subscription's state on its connection, and the batch of events one
// step of it delivers (internal to annal_net). The steps themselves are
// read::scan_log / read::read_index; Connection::run_subscription drives them.

#include <chrono>
#include <cstdint>
#include <memory>

#include "net/asio.h"
#include "net/metrics.h"
#include "net/notifier.h"
#include "net/wire_sink.h"
#include "proto/protocol.h"
#include "read/catch_up.h"

namespace annal::net::detail {

// A live step of the global log scanning at most this many positions is taken
// on the network thread itself (the records were just written and are in
// memory); longer steps go to the reading pool.
inline constexpr std::uint64_t kInlineLiveScan = 256;

// The events of one step, encoded once; live subscribers with the same
// filter at the same position share it (LiveCache).
struct Batch {
  explicit Batch(std::uint16_t version) : events(version) {}
  // Store::rules_version() before it was read: a batch read under older
  // stream rules is read again rather than delivered (docs/semantics.md).
  std::uint64_t rules_version = 0;
  read::Step step;
  WireSink events;
};

struct Subscription {
  std::uint64_t id = 0;
  proto::SubscribeReq req;
  read::Filter filter;  // from req; min_rev follows next_rev
  bool cancelled = false;
  // Stream subscriptions catch up through the stream index first, then follow
  // the global log filtered by stream name and revision.
  bool index_phase = false;
  std::uint64_t next_rev = 0;
  GlobalPosition next_pos;
  std::uint64_t unreported = 0;  // positions scanned since the last event or checkpoint
  std::uint64_t checkpoint_interval = 0;
  std::chrono::steady_clock::time_point last_checkpoint;
  asio::steady_timer timer;
  std::shared_ptr<Waiter> waiter = std::make_shared<Waiter>();
  GaugeHold open;  // counts it in NetMetrics::subscriptions_active while it exists
  // Where it has read to, for the lag metrics; published after each step.
  SubProgress progress;
  std::unique_ptr<BoardHold> on_board;  // after `progress`: leaves the board first
  // The position the next step starts at, when it is one (not during a
  // stream's catch-up through the stream index).
  void publish_progress() {
    const bool by_revision = index_phase && filter.target == read::Target::kStream;
    progress.next.store(by_revision ? SubProgress::kUnknown : next_pos.value,
                        std::memory_order_relaxed);
  }

  explicit Subscription(const asio::any_io_executor& ex) : timer(ex) {}
  bool filtered() const { return filter.filtered(); }
  // Positions the next log step may scan: a filtered subscription stops
  // where its next checkpoint is due, so checkpoint_interval holds during
  // catch-up and for large appends too.
  std::uint64_t max_scan() const {
    if (!filtered()) return read::kMaxScanPerStep;
    const std::uint64_t due =
        checkpoint_interval > unreported ? checkpoint_interval - unreported : 1;
    return std::min(due, read::kMaxScanPerStep);
  }
};

}  // namespace annal::net::detail
