// Secondary index benchmark (issue "read models without write amplification"):
// builds a log of N 256-byte events with a category, an event type, three
// tags and a correlation id each, then prints
//   - the index's size on disk next to the log's (target: category + type +
//     3 tags per event <= 5% of the log);
//   - reading a category that holds 10% of the log over one connection, next
//     to read_all of the same log over one connection, in the same run
//     (target: >= 50% of read_all's events/s);
//   - reading a category that holds 0.1%: the records and bytes that read
//     touches (it must not read the other 99.9%);
//   - seek_time and reopen (clean and after a kill) of the whole store.
//
//   annal_secondary_bench [--events N] [--dir DIR] [--keep]
//   env: ANNAL_BENCH_EVENTS, ANNAL_BENCH_DIR. Default 10,000,000 events.
// Run on a quiet machine; build with the release preset.

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>

#include "index/store.h"
#include "net/client.h"
#include "net/server.h"

namespace {

using namespace annal;
using namespace annal::index;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
std::uint64_t dir_bytes(const std::string& dir, const char* ext = nullptr) {
  std::uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file() && (ext == nullptr || e.path().extension() == ext)) n += e.file_size();
  return n;
}

StoreOptions options(const std::string& dir, bool skip_flush = false) {
  StoreOptions o;
  o.log.dir = dir;
  o.log.min_free_bytes = 1u << 30;
  o.test_skip_index_flush_on_close = skip_flush;
  return o;
}
std::unique_ptr<Store> open_store(const std::string& dir, bool skip_flush = false) {
  auto s = Store::open(options(dir, skip_flush));
  if (!s) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), s.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(s).value();
}

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

// 10% of the events in category "big", 0.1% in "tiny", the rest spread over
// 50 other categories; 20 event types; tags customer:<100k>, region:<10>,
// tier:<4>; a correlation id per 4 events.
void load(Store& store, std::uint64_t first, std::uint64_t events) {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t in_flight = 0, failures = 0;
  std::mt19937_64 rng(first + 11);
  const std::string payload(256, 'x');
  constexpr std::uint64_t kBatch = 4;
  for (std::uint64_t e = first; e < first + events; e += kBatch) {
    StreamAppend a;
    const std::uint64_t r = rng() % 10000;
    const std::string category = r < 1000   ? "big"
                                 : r < 1010 ? "tiny"
                                            : "other" + std::to_string(r % 50);
    a.stream = category + "-" + std::to_string(rng() % 1000);
    a.expected = ExpectedRevision::any();
    for (std::uint64_t i = 0; i < kBatch; ++i) {
      NewEvent ev{EventId::random(), "Type" + std::to_string(rng() % 20), 0, "", payload};
      ev.tags = {"customer:" + std::to_string(rng() % 100000),
                 "region:" + std::to_string(rng() % 10), "tier:" + std::to_string(rng() % 4)};
      ev.correlation_id = "cmd-" + std::to_string((e + i) / 4);
      a.events.push_back(std::move(ev));
    }
    {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return in_flight < 4096; });
      ++in_flight;
    }
    store.append(std::move(a), [&](const engine::AppendOutcome& o) {
      std::lock_guard l(mu);
      if (!o.status.is_ok()) ++failures;
      --in_flight;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  cv.wait(l, [&] { return in_flight == 0; });
  if (failures) std::exit(1);
}

// Reads everything a request kind returns over one connection, page by page
// (1000 events each), decoding views: events, seconds, client CPU seconds.
template <typename Next>
void read_all_pages(const char* label, Next next_page) {
  const auto t = Clock::now();
  const double c0 = cpu_seconds();
  std::uint64_t events = 0, bytes = 0;
  next_page(events, bytes);
  const double secs = seconds_since(t);
  std::printf(
      "  %-44s %10llu events in %6.2f s = %9.0f events/s (%.1f MB/s; this process's CPU "
      "%.2f s, node and client)\n",
      label, static_cast<unsigned long long>(events), secs, events / secs, bytes / secs / 1e6,
      cpu_seconds() - c0);
}

void run(const std::string& dir, std::uint64_t events) {
  std::filesystem::remove_all(dir);
  std::printf(
      "== %llu events of 256 bytes, category + type + 3 tags + correlation id each, in "
      "%s ==\n",
      static_cast<unsigned long long>(events), dir.c_str());
  in_child([&] {
    auto store = open_store(dir);
    const auto t = Clock::now();
    load(*store, 0, events);
    std::printf("  loaded in %.1f s (%.0f events/s, in process)\n", seconds_since(t),
                events / seconds_since(t));
  });
  // Space, after a clean shutdown wrote and merged everything.
  in_child([&] {
    auto store = open_store(dir);
    store->wait_index_idle();
    std::uint64_t log_bytes = 0;
    for (const auto& s : store->log().segments()) log_bytes += s.bytes_used;
    const auto st = store->secondary_stats();
    const std::uint64_t sec = dir_bytes(dir + "/secondary", ".ix");
    std::uint64_t entries = 0;
    if (st)
      for (const auto& f : st->files) entries += f.entry_count;
    const std::uint64_t str = dir_bytes(dir + "/index", ".ix");
    std::printf(
        "  log %.1f MB (bytes used in segments); stream index %.1f MB (%.1f%%); secondary "
        "index %.1f MB in %llu files, %llu entries (%.2f bytes each) = %.1f%% of the log "
        "(target <= 5%%)\n",
        log_bytes / 1e6, str / 1e6, 100.0 * str / log_bytes, sec / 1e6,
        static_cast<unsigned long long>(st ? st->files.size() : 0),
        static_cast<unsigned long long>(entries), entries ? double(sec) / entries : 0.0,
        100.0 * sec / log_bytes);
  });
  // Reads over one connection to a node serving this store.
  in_child([&] {
    auto store = open_store(dir);
    store->wait_index_idle();
    net::ServerOptions so;
    so.host = "127.0.0.1";
    so.port = 0;
    so.threads = 1;
    net::Server server(*store, so);
    if (!server.start().is_ok()) std::exit(4);
    net::ClientOptions co;
    co.port = server.port();
    auto c = net::Client::connect(co);
    if (!c.ok()) std::exit(5);
    net::Client& client = *c.value();
    auto pages = [&](auto request) {
      return [&, request](std::uint64_t& events, std::uint64_t& bytes) {
        std::uint64_t from = 0;
        for (;;) {
          bool end = false;
          std::uint64_t next = 0;
          request(from, [&](net::Reply<net::proto::ReadOkView> r) {
            if (!r.ok()) std::exit(6);
            events += r->events.size();
            for (const auto& e : r->events) bytes += e.data.size();
            end = r->end;
            next = r->next;
          });
          client.drain();
          if (end) return;
          from = next;
        }
      };
    };
    for (int round = 0; round < 2; ++round) {
      std::printf("  round %d (the log is in the page cache after the first)\n", round + 1);
      read_all_pages(
          "read_all, whole log", pages([&](std::uint64_t from, auto cb) {
            client.read_all_view_async(net::proto::ReadAllReq{from, 1000, Direction::kForward}, cb);
          }));
      read_all_pages("read_index category 'big' (10%)", pages([&](std::uint64_t from, auto cb) {
                       client.read_index_view_async(
                           net::proto::ReadIndexReq{IndexKind::kCategory, "big", from, 1000,
                                                    Direction::kForward},
                           cb);
                     }));
      read_all_pages("read_index tag 'region:3' (10%)", pages([&](std::uint64_t from, auto cb) {
                       client.read_index_view_async(
                           net::proto::ReadIndexReq{IndexKind::kTag, "region:3", from, 1000,
                                                    Direction::kForward},
                           cb);
                     }));
    }
    server.stop();
  });
  // The 0.1% category: what its read touches.
  in_child([&] {
    auto store = open_store(dir);
    store->wait_index_idle();
    std::uint64_t log_bytes = 0;
    for (const auto& s : store->log().segments()) log_bytes += s.bytes_used;
    std::uint64_t records = 0, record_bytes = 0;
    const auto t = Clock::now();
    Status st =
        store->visit_index(IndexKind::kCategory, "tiny", GlobalPosition(0), Direction::kForward,
                           GlobalPosition(UINT64_MAX), [&](const engine::RecordView& v) {
                             ++records;
                             record_bytes += v.size;
                             return true;
                           });
    if (!st.is_ok()) std::exit(7);
    std::printf(
        "  category 'tiny' (0.1%%): %llu events in %.3f s; read %llu records = %.2f MB "
        "of the log's %.1f MB (%.3f%%) plus %llu index entries (%.2f MB)\n",
        static_cast<unsigned long long>(records), seconds_since(t),
        static_cast<unsigned long long>(records), record_bytes / 1e6, log_bytes / 1e6,
        100.0 * record_bytes / log_bytes, static_cast<unsigned long long>(records),
        records * 24 / 1e6);
    // seek_time: the middle of the log's write time.
    auto mid = store->log().read(GlobalPosition(store->log().durable_end().value / 2));
    if (mid) {
      const auto t2 = Clock::now();
      int n = 0;
      for (; n < 1000; ++n)
        if (!store->seek_time(mid->timestamp_us + n)) std::exit(8);
      std::printf("  seek_time: %.1f us per seek (1000 seeks around the middle of the log)\n",
                  seconds_since(t2) * 1e6 / n);
    }
  });
  // Reopen: clean, then after a kill with a 400k-event tail not yet in index files.
  auto reopen = [&](const char* label) {
    in_child([&] {
      const auto t = Clock::now();
      const double c0 = cpu_seconds();
      auto store = open_store(dir);
      std::printf("  reopen %-36s %7.3f s (cpu %.3f s)\n", label, seconds_since(t),
                  cpu_seconds() - c0);
    });
  };
  reopen("after a clean shutdown");
  in_child([&] {
    auto store = open_store(dir, /*skip_flush=*/true);
    load(*store, events, 400'000);
    std::fflush(stdout);
    ::_exit(0);  // no destructor: both indexes' memtables are lost, as in a kill
  });
  reopen("after a kill (400k-event tail)");
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  std::uint64_t events = 10'000'000;
  std::string dir = (std::filesystem::temp_directory_path() / "annal-secondary-bench").string();
  bool keep = false;
  if (const char* v = std::getenv("ANNAL_BENCH_EVENTS")) events = std::strtoull(v, nullptr, 10);
  if (const char* v = std::getenv("ANNAL_BENCH_DIR")) dir = v;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--events")
      events = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--dir")
      dir = next();
    else if (a == "--keep")
      keep = true;
    else {
      std::fprintf(stderr, "usage: %s [--events N] [--dir DIR] [--keep]\n", argv[0]);
      return 2;
    }
  }
  run(dir, events);
  if (!keep) std::filesystem::remove_all(dir);
  return 0;
}
