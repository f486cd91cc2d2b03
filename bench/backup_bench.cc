// Online backup (docs/operations.md, "Backup and restore"): what a backup
// costs appends running at the same time, and how fast it copies. In-process
// against a Store on the data directory given (a real disk: every append is
// fdatasynced); prints figures, asserts nothing. Run it with nothing else on
// the machine (bench/backup.sh).
//
//   annal_backup_bench DIR DEST [--gb G] [--seconds S] [--budget MIBPS] [--segment-mib M]
//
// 1. Fill: G GiB (default 10; fractions allowed) of 1 KiB events in appends
//    of 16, round robin over 1000 streams, M MiB segments (default 256, the
//    node's default; smaller for a small check run, so that it has sealed
//    segments for link mode to link).
// 2. Baseline, S seconds (default 10): a steady append load (one thread, 32
//    appends in flight, one 512-byte event each); append latency p50, p99,
//    p99.9 and max, appends per second.
// 3. The same load during a backup into DEST (copy mode, --budget MiB/s, 0 =
//    unthrottled; default 128, the node's default), for at least S seconds
//    and until the backup is done; then during a backup in link mode into
//    DEST-link (same file system). The backup's duration and MB/s with each.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "index/store.h"

namespace {

using namespace annal;
using Clock = std::chrono::steady_clock;

struct Figures {
  std::uint64_t appends = 0;
  double seconds = 0;
  std::vector<double> latency_us;  // sorted
  double pct(double q) const {
    if (latency_us.empty()) return 0;
    const auto i = static_cast<std::size_t>(q * static_cast<double>(latency_us.size() - 1));
    return latency_us[i];
  }
};

// Appends with 32 in flight until `done()` is true and at least `min`
// elapsed; every append's latency (call to acknowledgement) recorded.
Figures run_load(index::Store& store, std::chrono::seconds min, const std::function<bool()>& done) {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  std::vector<double> lat;
  lat.reserve(1 << 20);
  const std::string payload(512, 'x');
  const auto t0 = Clock::now();
  std::uint64_t n = 0;
  while (Clock::now() - t0 < min || !done()) {
    {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return in_flight < 32; });
      ++in_flight;
    }
    index::StreamAppend a{"load-" + std::to_string(n++ % 100),
                          ExpectedRevision::any(),
                          {index::NewEvent{EventId::random(), "Load", 0, "", payload}}};
    const auto start = Clock::now();
    store.append(std::move(a), [&, start](const engine::AppendOutcome& o) {
      const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      std::lock_guard l(mu);
      if (o.status) lat.push_back(us);
      --in_flight;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  cv.wait(l, [&] { return in_flight == 0; });
  Figures f;
  f.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  f.appends = lat.size();
  std::sort(lat.begin(), lat.end());
  f.latency_us = std::move(lat);
  return f;
}

void print(const char* what, const Figures& f) {
  fmt::print(
      "{:<22} {:>9.0f} appends/s  latency p50 {:>8.0f} us  p99 {:>8.0f} us  p99.9 {:>8.0f} us  max "
      "{:>8.0f} us  ({} appends in {:.1f} s)\n",
      what, static_cast<double>(f.appends) / f.seconds, f.pct(0.5), f.pct(0.99), f.pct(0.999),
      f.latency_us.empty() ? 0.0 : f.latency_us.back(), f.appends, f.seconds);
}

void fill(index::Store& store, std::uint64_t bytes) {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  const std::string payload(1024 - 120, 'f');
  std::uint64_t written = 0, n = 0;
  const auto t0 = Clock::now();
  while (written < bytes) {
    {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return in_flight < 64; });
      ++in_flight;
    }
    index::StreamAppend a{"fill-" + std::to_string(n++ % 1000), ExpectedRevision::any(), {}};
    for (int i = 0; i < 16; ++i)
      a.events.push_back(index::NewEvent{EventId::random(), "Fill", 0, "", payload});
    store.append(std::move(a), [&](const engine::AppendOutcome& o) {
      if (!o.status) {
        fmt::print(stderr, "fill: {}\n", o.status.to_string());
        std::abort();
      }
      std::lock_guard l(mu);
      --in_flight;
      cv.notify_all();
    });
    written += 16 * 1024;
  }
  std::unique_lock l(mu);
  cv.wait(l, [&] { return in_flight == 0; });
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  fmt::print("fill: {:.2f} GiB of 1 KiB events in {:.1f} s ({:.0f} MB/s), durable end {}\n",
             static_cast<double>(bytes) / (1ull << 30), s, static_cast<double>(bytes) / s / 1e6,
             store.log().durable_end().value);
}

void with_backup(index::Store& store, const std::string& dest, bool link, std::uint64_t budget,
                 std::chrono::seconds seconds) {
  std::atomic<bool> finished{false};
  Result<index::BackupReport> report = Status(Errc::kInternal, "not run");
  std::thread t([&] {
    index::BackupOptions o;
    o.dest = dest;
    o.link = link;
    o.bytes_per_second = budget;
    o.node_version = "annal bench";
    report = store.backup(o);
    finished = true;
  });
  const Figures f = run_load(store, seconds, [&] { return finished.load(); });
  t.join();
  print(link ? "during a backup (link)" : "during a backup (copy)", f);
  if (!report) {
    fmt::print("backup failed: {}\n", report.status().to_string());
    return;
  }
  fmt::print(
      "backup ({}): position {}, {} files, {:.2f} GiB (holes included; {} linked) in {:.1f} s = "
      "{:.0f} "
      "MB/s{}{}\n",
      link ? "link" : "copy", report->position.value, report->files,
      static_cast<double>(report->bytes) / (1ull << 30), report->linked, report->seconds,
      static_cast<double>(report->bytes) / report->seconds / 1e6, report->note.empty() ? "" : "; ",
      report->note);
  std::error_code ec;
  std::filesystem::remove_all(dest, ec);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr,
               "usage: annal_backup_bench DIR DEST [--gb G] [--seconds S] [--budget MIBPS] "
               "[--segment-mib M]\n");
    return 2;
  }
  const std::string dir = argv[1], dest = argv[2];
  double gb = 10;
  std::uint64_t seconds = 10, budget = 128, segment_mib = 256;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--gb") gb = std::stod(argv[i + 1]);
    if (k == "--seconds") seconds = std::stoull(argv[i + 1]);
    if (k == "--budget") budget = std::stoull(argv[i + 1]);
    if (k == "--segment-mib") segment_mib = std::stoull(argv[i + 1]);
  }
  spdlog::set_level(spdlog::level::warn);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::remove_all(dest, ec);
  std::filesystem::remove_all(dest + "-link", ec);
  index::StoreOptions o;
  o.log.dir = dir;
  o.log.segment_size = segment_mib << 20;
  auto s = index::Store::open(o);
  if (!s) {
    fmt::print(stderr, "open: {}\n", s.status().to_string());
    return 1;
  }
  auto& store = **s;
  fill(store, static_cast<std::uint64_t>(gb * static_cast<double>(1ull << 30)));
  store.wait_index_idle();
  const auto secs = std::chrono::seconds(seconds);
  print("baseline", run_load(store, secs, [] { return true; }));
  fmt::print("# backup budget {} MiB/s (0 = unthrottled)\n", budget);
  with_backup(store, dest, false, budget << 20, secs);
  with_backup(store, dest + "-link", true, budget << 20, secs);
  print("baseline again", run_load(store, secs, [] { return true; }));
  return 0;
}
