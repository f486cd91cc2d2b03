#pragma once
// What the server's connections share, and what the log writer hands to
// each network thread (internal to annal_net).
//
// Thread safety: Shared's members are set before the server accepts and are
// then read from every thread; the atomics, the notifier and the live cache
// are safe to use from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "index/store.h"
#include "net/asio.h"
#include "net/backup_runner.h"
#include "net/inbox.h"
#include "net/live_cache.h"
#include "net/metrics.h"
#include "net/notifier.h"
#include "net/scavenger.h"
#include "net/server.h"
#include "net/subscription.h"

namespace annal::net::detail {

class Connection;
class GroupRegistry;

// An append's outcome on its way from the log writer to its connection.
struct Ack {
  std::shared_ptr<Connection> conn;
  std::uint64_t id = 0;
  std::size_t bytes = 0;
  engine::AppendOutcome outcome;
  bool multi = false;     // append_multi: answered with append_multi_ok / append_refused
  bool deletion = false;  // delete_stream: answered with delete_ok
};

// What the log writer hands to one network thread: acknowledgements and
// subscription wake-ups, each one post per group commit (not one per append
// or per subscriber).
struct Lane {
  asio::io_context* io = nullptr;
  std::unique_ptr<Inbox<Ack>> acks;
  std::unique_ptr<Inbox<std::shared_ptr<Waiter>>> wakes;
};

struct Shared {
  index::Store& store;
  ServerOptions options;
  asio::thread_pool::executor_type reads;  // the pool is owned by the server
  DurableNotifier notifier;
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint32_t> open_connections{0};
  // One per network thread, filled by the server before it accepts.
  std::vector<Lane> lanes;
  LiveCache<Batch> live;                  // batches live subscribers share
  std::unique_ptr<GroupRegistry> groups;  // set by the server before it accepts
  std::unique_ptr<Scavenger> scavenger;   // likewise (net/scavenger.h)
  std::unique_ptr<BackupRunner> backups;  // likewise (net/backup_runner.h)
  NetMetrics metrics;                     // enabled per options.metrics

  // The lane of the io_context behind `ex` (a connection's strand).
  Lane& lane_of(const asio::any_io_executor& ex);

  Shared(index::Store& s, ServerOptions o, asio::thread_pool::executor_type r);
  ~Shared();
};

}  // namespace annal::net::detail
