#pragma once
// The subscribers of `annal bench subscribe`: N live subscriptions to the
// global log, each on its own connection, all driven by one thread (one
// io_context) that decodes each sub_events frame in place. The generator
// used to give each subscriber a client with a reader thread and a consumer
// thread: 200 threads whose wake-ups on every commit cost the 2 cores more
// than the node did.
//
// Delay: from the appender's acknowledgement of a position (AckTimes) to the
// subscriber's receipt of it; 0 when the delivery came first.
//
// Thread safety: construct, connect_all, start and finish from one thread;
// slowest() from any.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/load/histogram.h"
#include "bench/load/options.h"
#include "bench/load/workload.h"
#include "net/asio.h"

namespace annal::bench {

struct SubscribeResult {
  Histogram delay;
  unsigned complete = 0;  // subscribers that received every position, in order
  std::uint64_t min_received = 0;
  std::uint64_t before_ack = 0;
  std::string first_error;
};

class SubscribeLoad {
 public:
  // Subscribers start at position `base`; `acks` gives acknowledgement times.
  SubscribeLoad(const Options& o, AckTimes& acks, std::uint64_t base);
  ~SubscribeLoad();
  SubscribeLoad(const SubscribeLoad&) = delete;
  SubscribeLoad& operator=(const SubscribeLoad&) = delete;

  // Connects and subscribes every subscriber; false (with a message on
  // stderr) if any fails.
  bool connect_all();
  // Starts receiving on the load's thread.
  void start();
  // Events received by the slowest subscriber so far.
  std::uint64_t slowest() const;
  // Waits up to `settle` seconds for every subscriber to reach `end`, then
  // stops them all and gathers the figures.
  SubscribeResult finish(std::uint64_t end, double settle);

  struct Sub;

 private:
  const Options& o_;
  AckTimes& acks_;
  std::uint64_t base_;
  std::unique_ptr<net::asio::io_context> io_;
  std::vector<std::unique_ptr<Sub>> subs_;
  std::thread thread_;
};

}  // namespace annal::bench
