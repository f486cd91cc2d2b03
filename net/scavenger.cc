#include "net/scavenger.h"

#include <spdlog/spdlog.h>

#include <optional>

#include "engine/thread_name.h"

namespace annal::net::detail {

Scavenger::Scavenger(index::Store& store, ScavengerOptions options)
    : store_(store), options_(options) {
  thread_ = std::thread([this] {
    engine::set_thread_name("annal-scavenge");
    loop();
  });
}

Scavenger::~Scavenger() {
  stop();
}

void Scavenger::request(Done done) {
  {
    std::lock_guard l(mu_);
    if (!stopping_) {
      waiting_.push_back(std::move(done));
      cv_.notify_one();
      return;
    }
  }
  done(Status(Errc::kShuttingDown, "the node is stopping"));
}

void Scavenger::stop() {
  {
    std::lock_guard l(mu_);
    stopping_ = true;
  }
  cancel_ = true;
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::vector<Done> left;
  {
    std::lock_guard l(mu_);
    left.swap(waiting_);
  }
  for (auto& d : left) d(Status(Errc::kShuttingDown, "the node is stopping"));
}

void Scavenger::loop() {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto next_scheduled =
      options_.interval.count() > 0 ? start + options_.interval : Clock::time_point::max();
  auto next_free_check =
      options_.free_below > 0 ? start + options_.free_check : Clock::time_point::max();
  std::optional<Clock::time_point> last_free_run;  // none yet
  engine::FileSystem& fs = store_.log().options().fs != nullptr ? *store_.log().options().fs
                                                                : engine::FileSystem::posix();
  for (;;) {
    std::vector<Done> serving;
    const char* why = nullptr;
    {
      std::unique_lock l(mu_);
      cv_.wait_until(l, std::min(next_scheduled, next_free_check),
                     [&] { return stopping_ || !waiting_.empty(); });
      if (stopping_) return;
      serving.swap(waiting_);
    }
    const auto now = Clock::now();
    if (!serving.empty()) {
      why = "requested";
    } else if (now >= next_scheduled) {
      why = "scheduled";
      next_scheduled = now + options_.interval;
    } else if (now >= next_free_check) {
      next_free_check = now + options_.free_check;
      auto free = fs.free_bytes(store_.log().options().dir);
      if (free && *free < options_.free_below &&
          (!last_free_run || now - *last_free_run >= options_.free_min_gap)) {
        why = "free space below the threshold";
        last_free_run = now;
      }
    }
    if (why == nullptr) continue;
    spdlog::info("scavenge started ({})", why);
    index::ScavengeOptions so;
    so.bytes_per_second = options_.bytes_per_second;
    so.cancelled = [this] { return cancel_.load(); };
    auto report = store_.scavenge(so);
    if (!report) spdlog::error("scavenge failed: {}", report.status().to_string());
    for (auto& d : serving) d(report);
  }
}

}  // namespace annal::net::detail
