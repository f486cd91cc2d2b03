#pragma once
// The annal node's TCP server: accepts connections, speaks protocol v1
// (docs/protocol.md) on each, and serves appends, reads and subscriptions
// from an index::Store.
//
// Threads: `threads` I/O threads run one io_context; every connection lives
// on its own strand. Reads from the log (read requests, subscription catch-up)
// run on a separate small pool so a cold read never stalls the I/O threads.
// Store::append completions (on the log's writer thread) only post back to
// the connection's strand.
//
// Thread safety: start(), stop() and the accessors may be called from any
// thread; stop() must not be called from an I/O thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/status.h"
#include "index/store.h"
#include "net/metrics.h"
#include "proto/group_messages.h"
#include "proto/protocol.h"

namespace annal::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7411;  // 0 = ephemeral; see Server::port()
  unsigned threads = 0;       // I/O threads; 0 = std::thread::hardware_concurrency()
  unsigned read_threads = 2;  // log-reading pool
  std::uint32_t max_connections = 1024;
  std::uint32_t max_in_flight = 1024;           // outstanding requests per connection
  std::size_t max_in_flight_bytes = 64u << 20;  // append payload bytes awaiting durability
  std::uint32_t max_subscriptions = 64;         // per connection
  std::uint32_t max_frame = proto::kDefaultMaxFrame;
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};  // 0 = never
  std::uint32_t max_read_count = 1000;            // events per read response / subscription batch
  std::size_t max_read_bytes = 1u << 20;          // bytes per read response / subscription batch
  std::size_t write_queue_high_water = 4u << 20;  // per connection: stop reading above
  std::uint32_t checkpoint_interval = 1024;       // default positions scanned between checkpoints
  std::chrono::milliseconds checkpoint_period{1000};  // idle checkpoint cadence
  // Consumer groups (docs/consumer-groups.md): their files' directory (empty:
  // DATA/groups beside the log), and how often a group's changed progress
  // is written: the bound on acks delivered again after a crash.
  std::string groups_dir;
  std::chrono::milliseconds group_persist_period{100};
  // Scavenge (docs/operations.md): the write budget, the schedule (0: none)
  // and the free-space trigger (0: none).
  std::uint64_t scavenge_bytes_per_second = 64ull << 20;
  std::chrono::seconds scavenge_interval{0};
  std::uint64_t scavenge_free_below = 0;
  // Backup (docs/operations.md, "Backup and restore"): the read budget of a
  // backup request that names none (0: as fast as the disk).
  std::uint64_t backup_bytes_per_second = 128ull << 20;
  // How long stop() waits for appends and reads in flight. An append still
  // waiting for durability after it is answered shutting_down ("outcome
  // unknown": it may yet become durable; a retry with the same event ids is
  // deduplicated), then its connection is closed.
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(10)};
  // TCP keepalive on accepted connections, so a peer that vanished (power
  // off, cable pulled: no FIN, no RST) is found and its connection, reads and
  // subscriptions released: first probe after keepalive_idle without
  // traffic, then every keepalive_interval, dead after keepalive_probes
  // unanswered probes. TCP_USER_TIMEOUT bounds unacknowledged sent data the
  // same way. keepalive_idle = 0 disables both.
  std::chrono::seconds keepalive_idle{30};
  std::chrono::seconds keepalive_interval{10};
  unsigned keepalive_probes = 3;
  std::string server_version = "annal 0.1.0";
  // Count requests, errors and append latency (Server::metrics()); off skips
  // it, clock reads included (annald --metrics off).
  bool metrics = true;
};

// Counters for logs and tests.
struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;
  std::uint32_t connections_open = 0;
  std::int64_t requests_in_flight = 0;
  bool accepting = false;  // started and not stopping
};

class Server {
 public:
  // The store must outlive the server.
  Server(index::Store& store, ServerOptions options);
  ~Server();  // stop() if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the threads. kIoError naming host:port on failure.
  Status start();
  // The bound port (useful with port 0). Valid after start().
  std::uint16_t port() const;
  const ServerOptions& options() const;
  ServerStats stats() const;
  // Requests, errors, append latency, subscriptions (net/metrics.h).
  const NetMetrics& metrics() const;
  // Every consumer group and named consumer with its figures (lag, members,
  // in flight); empty before start().
  std::vector<proto::GroupInfo> groups() const;

  // Graceful stop: stop accepting; answer new requests with shutting_down;
  // end subscriptions; wait up to `grace` for in-flight appends and reads to
  // be answered; answer appends still waiting with shutting_down (outcome
  // unknown); give the write queues up to a second more; close every
  // connection; join the threads. Bounded by grace + about 2 s whatever the
  // disk or the peers do.
  void stop();  // grace = options().shutdown_grace
  void stop(std::chrono::milliseconds grace);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace annal::net
