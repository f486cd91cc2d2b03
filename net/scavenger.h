#pragma once
// The node's scavenger (docs/operations.md, "Scavenge"): one thread that runs
// index::Store::scavenge when asked (the `scavenge` request, `annal
// scavenge`), every `interval`, and when the disk's free space falls below a
// threshold; throttled to a byte budget; cancelled at stop (what it finished
// stays done, a rerun resumes).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "index/store.h"

namespace annal::net::detail {

struct ScavengerOptions {
  std::uint64_t bytes_per_second = 64ull << 20;  // 0: unthrottled
  std::chrono::seconds interval{0};              // 0: no schedule
  std::uint64_t free_below = 0;                  // bytes; 0: no free-space trigger
  // How often free space is checked, and the least time between two runs it
  // starts.
  std::chrono::seconds free_check{10};
  std::chrono::seconds free_min_gap{600};
};

class Scavenger {
 public:
  using Done = std::function<void(const Result<index::ScavengeReport>&)>;
  Scavenger(index::Store& store, ScavengerOptions options);
  ~Scavenger();  // stop()
  Scavenger(const Scavenger&) = delete;
  Scavenger& operator=(const Scavenger&) = delete;

  // A scavenge as soon as possible; `done` runs on the scavenger thread with
  // the report of the run that started after this call (requests made
  // during a run share the next one).
  void request(Done done);
  // Cancels a running scavenge between chunks and joins the thread; pending
  // requests are answered kShuttingDown.
  void stop();

 private:
  void loop();
  index::Store& store_;
  const ScavengerOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Done> waiting_;  // (mu_)
  bool stopping_ = false;      // (mu_)
  std::atomic<bool> cancel_{false};
  std::thread thread_;
};

}  // namespace annal::net::detail
