// Scavenge (docs/operations.md, "Scavenge"): how fast a scavenge rewrites
// segments, and what it costs appends and reads running at the same time.
// In-process against a Store on the data directory given (a real disk: every
// append is fdatasynced); prints figures, asserts nothing. Run it with
// nothing else on the machine (bench/scavenge.sh).
//
//   annal_scavenge_bench DIR [--events N] [--size B] [--seconds S] [--budget MIBPS]
//
// 1. Fill: N events of B bytes (default 400000 x 512) round robin over 200
//    streams, 64 MiB segments; then half the streams are deleted (soft).
// 2. Baseline, S seconds (default 5): appends (one writer thread, 32 in
//    flight, one 512-byte event each, to other streams) and reads (one
//    thread: 100 events of a random kept stream) at the same time.
// 3. The same load while a scavenge runs (throttled to --budget MiB/s, 0 =
//    unthrottled; default 0), then the scavenge alone figures: MB/s of
//    segment read and rewritten, bytes before and after.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "index/store.h"

namespace {

using namespace annal;
using Clock = std::chrono::steady_clock;

EventId id_of(std::uint64_t n) {
  EventId id;
  for (int i = 0; i < 8; ++i)
    id.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  id.bytes[15] = 0x5A;
  return id;
}

struct Load {
  std::atomic<std::uint64_t> appends{0}, reads{0}, read_events{0};
  std::atomic<bool> stop{false};
};

// Appends with 32 in flight and reads in a loop until load.stop.
void run_load(index::Store& store, Load& load, std::uint64_t& next_id, const std::string& payload) {
  std::thread writer([&] {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    std::uint64_t n = 0;
    while (!load.stop) {
      {
        std::unique_lock l(mu);
        cv.wait(l, [&] { return in_flight < 32; });
        ++in_flight;
      }
      index::StreamAppend a{fmt::format("live-{}", n % 50),
                            ExpectedRevision::any(),
                            {index::NewEvent{id_of(next_id++), "Live", 0, "", payload}}};
      ++n;
      store.append(std::move(a), [&](const engine::AppendOutcome& o) {
        if (o.status.is_ok()) ++load.appends;
        std::lock_guard l(mu);
        --in_flight;
        cv.notify_one();
      });
    }
    std::unique_lock l(mu);
    cv.wait(l, [&] { return in_flight == 0; });
  });
  std::thread reader([&] {
    std::mt19937_64 rng(5);
    while (!load.stop) {
      const std::string s = fmt::format("kept-{}", 2 * (rng() % 100) + 1);
      auto r = store.read_stream(s, StreamRevision(rng() % 1800), 100, index::Direction::kForward);
      if (r) {
        ++load.reads;
        load.read_events += r->size();
      }
    }
  });
  writer.join();
  reader.join();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [--events N] [--size B] [--seconds S] [--budget MIBPS]\n",
                 argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::uint64_t events = 400000, size = 512, seconds = 5, budget = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    const std::uint64_t v = std::stoull(argv[i + 1]);
    if (f == "--events")
      events = v;
    else if (f == "--size")
      size = v;
    else if (f == "--seconds")
      seconds = v;
    else if (f == "--budget")
      budget = v;
  }
  spdlog::set_level(spdlog::level::warn);
  std::filesystem::remove_all(dir);
  index::StoreOptions o;
  o.log.dir = dir;
  o.log.segment_size = 64ull << 20;
  auto opened = index::Store::open(o);
  if (!opened) {
    std::fprintf(stderr, "open: %s\n", opened.status().to_string().c_str());
    return 1;
  }
  auto& store = **opened;
  const std::string payload = "{\"d\":\"" + std::string(size > 10 ? size - 10 : 1, 'x') + "\"}";
  std::uint64_t next_id = 1;
  // 1. Fill, in appends of 100 events per stream.
  const auto f0 = Clock::now();
  for (std::uint64_t done = 0; done < events;) {
    const std::uint64_t s = (done / 100) % 200;
    index::StreamAppend a{
        fmt::format("{}-{}", s % 2 ? "kept" : "doomed", s), ExpectedRevision::any(), {}};
    for (int i = 0; i < 100 && done < events; ++i, ++done)
      a.events.push_back(index::NewEvent{id_of(next_id++), "Filled", 0, "", payload});
    auto r = store.append_sync(std::move(a));
    if (!r.status.is_ok()) {
      std::fprintf(stderr, "fill: %s\n", r.status.to_string().c_str());
      return 1;
    }
  }
  for (int s = 0; s < 200; s += 2)
    store.delete_stream_sync(fmt::format("doomed-{}", s), ExpectedRevision::any(), false);
  std::printf("fill: %llu events of %llu bytes in %.1f s; half the streams deleted\n",
              static_cast<unsigned long long>(events), static_cast<unsigned long long>(size),
              std::chrono::duration<double>(Clock::now() - f0).count());

  // 2. Baseline.
  Load base;
  std::thread bt([&] { run_load(store, base, next_id, payload); });
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  base.stop = true;
  bt.join();
  const double bs = static_cast<double>(seconds);
  std::printf("baseline (%llu s): appends %.0f/s, reads %.0f/s (%.0f events/s)\n",
              static_cast<unsigned long long>(seconds), base.appends / bs, base.reads / bs,
              base.read_events / bs);

  // 3. The same load during a scavenge.
  Load during;
  const auto s0 = Clock::now();
  std::thread dt([&] { run_load(store, during, next_id, payload); });
  auto report = store.scavenge(index::ScavengeOptions{budget << 20, {}});
  const double ds = std::chrono::duration<double>(Clock::now() - s0).count();
  during.stop = true;
  dt.join();
  if (!report) {
    std::fprintf(stderr, "scavenge: %s\n", report.status().to_string().c_str());
    return 1;
  }
  std::printf(
      "during the scavenge (%.1f s): appends %.0f/s (%.0f%% of baseline), reads %.0f/s "
      "(%.0f%%)\n",
      ds, during.appends / ds, 100.0 * (during.appends / ds) / (base.appends / bs),
      during.reads / ds, 100.0 * (during.reads / ds) / (base.reads / bs));
  const auto& r = *report;
  std::printf(
      "scavenge (budget %s): %llu of %llu sealed segments rewritten, %llu events removed; read "
      "%.1f MB and wrote %.1f MB in %.2f s = %.1f MB/s of segment processed, %.1f MB/s written; "
      "%.1f MB freed (log %.1f MB -> %.1f MB, with the appends made meanwhile)\n",
      budget == 0 ? "none" : fmt::format("{} MiB/s", budget).c_str(),
      static_cast<unsigned long long>(r.segments_rewritten),
      static_cast<unsigned long long>(r.segments_checked),
      static_cast<unsigned long long>(r.events_removed), r.bytes_read / 1e6, r.bytes_written / 1e6,
      r.seconds, r.bytes_read / 1e6 / r.seconds, r.bytes_written / 1e6 / r.seconds,
      r.bytes_freed / 1e6, r.log_bytes_before / 1e6, r.log_bytes_after / 1e6);
  return 0;
}
