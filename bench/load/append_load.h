#pragma once
// The append load of `annal bench`: C connections, P appends in flight on
// each, driven from T network threads (one io_context each, --threads), so
// the generator costs few threads and few wake-ups however many connections
// it drives. Each connection is one coroutine that, after every read, answers
// all the acknowledgements the read brought with the next requests in one
// write: a closed loop per connection, like the clients of WORKLOAD.md.
//
// Figures: throughput counts what was acknowledged inside the measurement
// window (after --warmup, before the deadline); latency is from encoding a
// request to decoding its acknowledgement.
//
// Thread safety: run() once, from one thread; acked() from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/load/histogram.h"
#include "bench/load/options.h"
#include "bench/load/workload.h"

namespace annal::bench {

struct AppendResult {
  std::uint64_t events = 0;  // acknowledged inside the window
  std::uint64_t appends = 0;
  std::uint64_t errors = 0;
  std::uint64_t refused = 0;       // --condition: refused by the condition (not errors)
  std::uint64_t total_events = 0;  // acknowledged in the whole run
  double seconds = 0;              // window length
  Histogram latency;
  std::string first_error;
};

class AppendLoad {
 public:
  // `acks` (optional) records each acknowledged position's time.
  AppendLoad(const Options& o, AckTimes* acks);
  ~AppendLoad();
  AppendLoad(const AppendLoad&) = delete;
  AppendLoad& operator=(const AppendLoad&) = delete;

  // Connects every connection and performs its handshake; false (with a
  // message on stderr) if any fails.
  bool connect_all();
  AppendResult run();
  std::uint64_t acked() const { return acked_.load(std::memory_order_relaxed); }

  struct Conn;
  struct Threads;

 private:
  void add_request(Conn& c, std::string& out);
  // Tag k<key>:<value> (formatted once for up to 1000 values).
  std::string tag(unsigned key, std::uint64_t value) const;
  bool on_frame(Conn& c, std::uint8_t op, std::uint64_t id, std::string_view payload);
  bool may_issue();

  const Options& o_;
  StreamChooser chooser_;
  // tags_[t][v] = "k<t>:<v>", formatted once: the generator's CPU per event
  // is printed next to the node's, and formatting three tags per event
  // cost it ~0.4 us.
  std::vector<std::vector<std::string>> tags_;
  AckTimes* acks_;
  std::unique_ptr<Threads> threads_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::int64_t t_measure_ = 0, t_end_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> issued_{0};
  std::atomic<std::uint64_t> seq_{0};
  std::atomic<std::uint64_t> acked_{0};
  std::atomic<std::int64_t> last_ack_{0};
};

}  // namespace annal::bench
