// Per-stream index benchmark: builds a log of N 256-byte events across S
// streams, then measures, each in a fresh process: reopen after a clean
// shutdown (at two log sizes), reopen after a kill, resident memory after
// reopen, per-stream read throughput (a 10,000-event stream) and the cost of
// an expected-revision check (hot and cold streams).
//
//   annal_index_bench [--events N] [--streams S[,S2...]] [--dir DIR] [--keep]
//   env: ANNAL_BENCH_EVENTS, ANNAL_BENCH_STREAMS, ANNAL_BENCH_DIR
// Defaults: 10,000,000 events; 100000,1000000 streams; DIR under /tmp.
// Build with -DCMAKE_BUILD_TYPE=Release for figures worth quoting.

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "index/store.h"

namespace {

using namespace annal;
using namespace annal::index;
using Clock = std::chrono::steady_clock;

struct Config {
  std::uint64_t events = 10'000'000;
  std::vector<std::uint64_t> streams{100'000, 1'000'000};
  std::string dir;
  bool keep = false;
};

constexpr std::uint64_t kHotEvents = 10'000;  // the stream read back for throughput
constexpr std::uint64_t kBatch = 4;           // events per append while loading

// CPU seconds (user + system) this process has used: a figure that does not
// depend on what else the machine is running.
double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::uint64_t status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
      return std::strtoull(line.c_str() + n + 1, nullptr, 10);
  return 0;
}
// "VmRSS X MiB (anon A, file F)": file-backed pages are clean page cache the
// kernel can drop at any time; anonymous ones are the heap.
std::string rss_text() {
  char buf[128];
  std::snprintf(buf, sizeof buf, "VmRSS %7.1f MiB (anon %.1f, file %.1f)",
                status_kib("VmRSS") / 1024.0, status_kib("RssAnon") / 1024.0,
                status_kib("RssFile") / 1024.0);
  return buf;
}

std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

StoreOptions options(const std::string& dir) {
  StoreOptions o;
  o.log.dir = dir;
  o.log.min_free_bytes = 1u << 30;
  return o;
}

std::unique_ptr<Store> open_store(const std::string& dir, bool skip_flush = false,
                                  bool verify = false) {
  auto o = options(dir);
  o.test_skip_index_flush_on_close = skip_flush;
  o.verify_index_on_open = verify;
  auto s = Store::open(o);
  if (!s) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), s.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

// Runs fn in a child process (so each measurement starts cold in memory and a
// kill can be simulated with _exit) and waits for it.
template <typename F>
void in_child(F fn) {
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid == 0) {
    fn();
    std::fflush(stdout);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "child failed (status %d)\n", status);
    std::exit(1);
  }
}

// Appends `events` events (kBatch per append) over `streams` streams, plus
// the hot stream's events spread through, with up to 4096 appends in flight.
void load(Store& store, std::uint64_t first_event, std::uint64_t events, std::uint64_t streams,
          std::uint64_t hot_every) {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t in_flight = 0;
  std::atomic<std::uint64_t> failures{0};
  std::mt19937_64 rng(first_event + 17);
  const std::string payload(256, 'x');
  for (std::uint64_t e = first_event; e < first_event + events; e += kBatch) {
    StreamAppend a;
    const bool hot = hot_every != 0 && (e / kBatch) % hot_every == 0;
    a.stream = hot ? std::string("hot") : "stream-" + std::to_string(rng() % streams);
    a.expected = ExpectedRevision::any();
    for (std::uint64_t i = 0; i < kBatch; ++i)
      a.events.push_back(NewEvent{EventId::random(), "Happened", 0, "", payload});
    {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return in_flight < 4096; });
      ++in_flight;
    }
    store.append(std::move(a), [&](const engine::AppendOutcome& o) {
      if (!o.status.is_ok()) ++failures;
      std::lock_guard l(mu);
      --in_flight;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  cv.wait(l, [&] { return in_flight == 0; });
  if (failures) {
    std::fprintf(stderr, "%llu appends failed\n", static_cast<unsigned long long>(failures.load()));
    std::exit(1);
  }
}

void measure_reopen(const std::string& dir, const char* label, bool verify = false) {
  // The log alone first: what the engine's own recovery costs.
  in_child([&] {
    engine::LogOptions lo;
    lo.dir = dir;
    lo.min_free_bytes = 0;
    const auto t = Clock::now();
    const double c0 = cpu_seconds();
    auto log = engine::Log::open(lo);
    if (!log) std::exit(3);
    const double secs = seconds_since(t);
    std::printf("  reopen %-34s %8.3f s (cpu %.3f s)   %s\n", "(the log alone, no index)", secs,
                cpu_seconds() - c0, rss_text().c_str());
  });
  in_child([&] {
    const auto t = Clock::now();
    const double c0 = cpu_seconds();
    auto store = open_store(dir, false, verify);
    const double secs = seconds_since(t);
    const double cpu = cpu_seconds() - c0;
    const auto st = store->stats();
    std::printf(
        "  reopen %-34s %8.3f s (cpu %.3f s)   %s   (data %.2f GB, index files %.1f MiB, %llu "
        "files, "
        "%llu entries replayed)\n",
        label, secs, cpu, rss_text().c_str(), dir_bytes(dir) / 1e9,
        dir_bytes(dir + "/index") / 1048576.0, static_cast<unsigned long long>(st.index_files),
        static_cast<unsigned long long>(st.memtable_entries));
    if (!verify) {
      // What open leaves to the background: the scrub of every index file
      // (read with pread), plus flushing a replayed tail.
      const auto t2 = Clock::now();
      const double c2 = cpu_seconds();
      store->wait_index_idle();
      std::printf("         then in the background: scrub%s   %8.3f s (cpu %.3f s)   %s\n",
                  st.memtable_entries ? " + tail flush" : "", seconds_since(t2), cpu_seconds() - c2,
                  rss_text().c_str());
    }
  });
}

void measure_reads_and_checks(const std::string& dir, std::uint64_t streams) {
  in_child([&] {
    auto store = open_store(dir);
    // Per-stream read throughput: the hot stream, 10,000 events, forward.
    auto last = store->last_revision("hot");
    const std::uint64_t n = last ? last->value + 1 : 0;
    const auto t = Clock::now();
    std::uint64_t read = 0;
    int rounds = 0;
    while (seconds_since(t) < 2.0 || rounds < 3) {
      auto r = store->read_stream("hot", StreamRevision(0), n, Direction::kForward);
      if (!r) std::exit(2);
      read += r->size();
      ++rounds;
    }
    const double secs = seconds_since(t);
    std::printf(
        "  read 'hot' (%llu events) forward        %8.0f events/s  (%d full reads, first read "
        "cold)\n",
        static_cast<unsigned long long>(n), read / secs, rounds);
    // Expected-revision checks: appends with a wrong exact expectation are
    // decided on the writer thread and write nothing, so they time the check
    // (head lookup + compare) plus the append queue.
    auto checks = [&](const char* label, std::uint64_t count, auto stream_of) {
      std::mutex mu;
      std::condition_variable cv;
      std::uint64_t done = 0, wrong = 0;
      const auto t0 = Clock::now();
      for (std::uint64_t i = 0; i < count; ++i) {
        StreamAppend a{stream_of(i), ExpectedRevision::exact(1'000'000'000), {}};
        a.events.push_back(NewEvent{EventId::random(), "T", 0, "", "{}"});
        store->append(std::move(a), [&](const engine::AppendOutcome& o) {
          std::lock_guard l(mu);
          ++done;
          if (o.status.code() == Errc::kWrongExpectedRevision) ++wrong;
          cv.notify_all();
        });
      }
      std::unique_lock l(mu);
      cv.wait(l, [&] { return done == count; });
      const double secs = seconds_since(t0);
      std::printf("  expected-revision check, %-16s %8.2f us/check  (%llu checks, %llu refused)\n",
                  label, secs * 1e6 / count, static_cast<unsigned long long>(count),
                  static_cast<unsigned long long>(wrong));
    };
    // The head lookup alone (what the check compares against), from a reader.
    auto heads = [&](const char* label, std::uint64_t count, auto stream_of) {
      std::vector<std::string> names;
      for (std::uint64_t i = 0; i < count; ++i) names.push_back(stream_of(i));
      const auto t0 = Clock::now();
      std::uint64_t found = 0;
      for (const auto& nm : names) found += store->last_revision(nm).is_ok();
      std::printf(
          "  head lookup (last_revision), %-12s %8.2f us/lookup (%llu lookups, %llu found)\n",
          label, seconds_since(t0) * 1e6 / count, static_cast<unsigned long long>(count),
          static_cast<unsigned long long>(found));
    };
    std::mt19937_64 hr(9);
    heads("hot stream", 200'000, [](std::uint64_t) { return std::string("hot"); });
    heads("random", 200'000,
          [&](std::uint64_t) { return "stream-" + std::to_string(hr() % streams); });
    heads("random again", 200'000,
          [&](std::uint64_t) { return "stream-" + std::to_string(hr() % streams); });
    std::mt19937_64 rng(5);
    checks("hot stream", 200'000, [](std::uint64_t) { return std::string("hot"); });
    checks("random streams", 200'000,
           [&](std::uint64_t) { return "stream-" + std::to_string(rng() % streams); });
    std::printf("  after reads and checks: %s\n", rss_text().c_str());
  });
}

void run(const Config& c, std::uint64_t streams) {
  const std::string dir = c.dir + "/s" + std::to_string(streams);
  std::filesystem::remove_all(dir);
  std::printf("== %llu events of 256 bytes across %llu streams (+ 'hot' with %llu) in %s ==\n",
              static_cast<unsigned long long>(c.events), static_cast<unsigned long long>(streams),
              static_cast<unsigned long long>(kHotEvents), dir.c_str());
  const std::uint64_t half = c.events / 2 / kBatch * kBatch;
  const std::uint64_t hot_every =
      std::max<std::uint64_t>(1, c.events / kBatch / (kHotEvents / kBatch));
  for (int part = 0; part < 2; ++part) {
    const std::uint64_t first = part == 0 ? 0 : half;
    const std::uint64_t count = part == 0 ? half : c.events - half;
    in_child([&] {
      auto store = open_store(dir);
      const auto t = Clock::now();
      load(*store, first, count, streams, hot_every);
      const double secs = seconds_since(t);
      std::printf("  loaded %llu events in %.1f s (%.0f events/s)\n",
                  static_cast<unsigned long long>(count), secs, count / secs);
      const auto t2 = Clock::now();
      store.reset();
      std::printf("  clean shutdown (index flush)            %8.3f s\n", seconds_since(t2));
    });
    measure_reopen(dir, part == 0 ? "clean, at half the log" : "clean, at the full log");
    measure_reopen(
        dir, part == 0 ? "clean, half, verify_index_on_open" : "clean, full, verify_index_on_open",
        true);
  }
  // A kill: append a tail that stays in the memtable, then _exit.
  in_child([&] {
    auto store = open_store(dir, /*skip_flush=*/true);
    load(*store, c.events, 400'000, streams, 0);
    std::fflush(stdout);
    ::_exit(0);  // no destructor: the memtable is lost, as in a kill
  });
  measure_reopen(dir, "after a kill (400k-event tail)");
  measure_reads_and_checks(dir, streams);
  if (!c.keep) std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::info);
  Config c;
  c.dir = (std::filesystem::temp_directory_path() / "annal-index-bench").string();
  auto parse_streams = [&](const std::string& v) {
    c.streams.clear();
    std::stringstream ss(v);
    std::string part;
    while (std::getline(ss, part, ','))
      c.streams.push_back(std::strtoull(part.c_str(), nullptr, 10));
  };
  if (const char* v = std::getenv("ANNAL_BENCH_EVENTS")) c.events = std::strtoull(v, nullptr, 10);
  if (const char* v = std::getenv("ANNAL_BENCH_STREAMS")) parse_streams(v);
  if (const char* v = std::getenv("ANNAL_BENCH_DIR")) c.dir = v;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--events")
      c.events = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--streams")
      parse_streams(next());
    else if (a == "--dir")
      c.dir = next();
    else if (a == "--keep")
      c.keep = true;
    else {
      std::fprintf(stderr, "usage: %s [--events N] [--streams S[,S2]] [--dir DIR] [--keep]\n",
                   argv[0]);
      return 2;
    }
  }
  std::filesystem::create_directories(c.dir);
  for (auto s : c.streams) run(c, s);
  return 0;
}
