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
#include "net/protocol.h"

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
  std::string server_version = "annal 0.1.0";
};

// Counters for logs and tests.
struct ServerStats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;
  std::uint32_t connections_open = 0;
  std::int64_t requests_in_flight = 0;
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

  // Graceful stop: stop accepting; answer new requests with shutting_down;
  // end subscriptions; wait up to `drain` for in-flight appends and reads to
  // be answered and written; close every connection; join the threads.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace annal::net
