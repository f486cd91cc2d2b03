// Micro-benchmarks of the per-stream index through the Store: a stream-head
// lookup (last_revision: head cache, memtable or index files), a short
// per-stream read (index lookup + log visits), and the expected-revision check
// of an append that is refused (decided on the writer thread, writes nothing).
// bench/index_bench.cc covers reopen times and memory at 10 M events; these
// are the per-operation costs at a smaller size that runs in seconds.
//
//   build/release/bench/annal_store_bench    (ANNAL_BENCH_DIR: where the store goes)

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>

#include "index/store.h"

namespace annal::index {
namespace {

constexpr std::uint64_t kStreams = 10'000;
constexpr std::uint64_t kEvents = 200'000;

struct Fixture {
  std::string dir;
  std::unique_ptr<Store> store;
  ~Fixture() {
    store.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
};

void build(Fixture& fx) {
  spdlog::set_level(spdlog::level::warn);
  const char* env = std::getenv("ANNAL_BENCH_DIR");
  fx.dir = (std::filesystem::path(env ? env : std::filesystem::temp_directory_path().string()) /
            ("annal-store-bench-" + std::to_string(::getpid())))
               .string();
  std::filesystem::remove_all(fx.dir);
  StoreOptions o;
  o.log.dir = fx.dir;
  o.log.min_free_bytes = 0;
  o.memtable_entries = 16'384;
  o.head_cache_entries = 1'024;
  auto s = Store::open(o);
  if (!s) {
    std::fprintf(stderr, "store_bench: %s\n", s.status().to_string().c_str());
    std::exit(1);
  }
  fx.store = std::move(s).value();
  const std::string data(256, 'x');
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t pending = 0;
  for (std::uint64_t i = 0; i < kEvents; i += 4) {
    StreamAppend a;
    a.stream = "s-" + std::to_string((i / 4) % kStreams);
    for (int k = 0; k < 4; ++k) a.events.push_back(NewEvent{EventId::random(), "T", 0, "", data});
    {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return pending < 2048; });
      ++pending;
    }
    fx.store->append(std::move(a), [&](const engine::AppendOutcome&) {
      std::lock_guard l(mu);
      --pending;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  cv.wait(l, [&] { return pending == 0; });
  l.unlock();
  fx.store->wait_index_idle();
}

// One store shared by all benchmarks of this binary, built on first use and
// removed at exit: 200,000 events over 10,000 streams ("s-<k>"), with a small
// memtable so most entries live in index files, and a head cache smaller than
// the stream count so "cold" lookups miss it.
Fixture& fixture() {
  static Fixture f;
  static const bool built = (build(f), true);
  (void)built;
  return f;
}

void BM_IndexLastRevisionHot(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    auto r = f.store->last_revision("s-7");
    if (!r) state.SkipWithError("lookup failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IndexLastRevisionHot);

// Random streams out of 10,000 with a 1,024-entry head cache: mostly misses,
// answered from the memtable or the index files.
void BM_IndexLastRevisionCold(benchmark::State& state) {
  auto& f = fixture();
  std::mt19937_64 rng(3);
  for (auto _ : state) {
    auto r = f.store->last_revision("s-" + std::to_string(rng() % kStreams));
    if (!r) state.SkipWithError("lookup failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IndexLastRevisionCold);

// Read a whole 20-event stream (index range lookup + 20 record visits).
void BM_IndexReadStream(benchmark::State& state) {
  auto& f = fixture();
  std::mt19937_64 rng(4);
  std::uint64_t events = 0;
  for (auto _ : state) {
    auto r = f.store->read_stream("s-" + std::to_string(rng() % kStreams), StreamRevision(0), 1000,
                                  Direction::kForward);
    if (!r)
      state.SkipWithError("read failed");
    else
      events += r->size();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.counters["streams_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_IndexReadStream);

// Appends that expect a revision the stream does not have: the check (head
// lookup + compare) on the writer thread, nothing written, no fdatasync, with
// up to 1024 in flight. Time includes the writer queue hand-off.
void BM_ExpectedRevisionCheck(benchmark::State& state) {
  auto& f = fixture();
  std::mt19937_64 rng(5);
  const bool hot = state.range(0) == 0;
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t pending = 0, refused = 0;
  for (auto _ : state) {
    StreamAppend a;
    a.stream = hot ? std::string("s-7") : "s-" + std::to_string(rng() % kStreams);
    a.expected = ExpectedRevision::exact(1'000'000'000);
    a.events.push_back(NewEvent{EventId::random(), "T", 0, "", "{}"});
    {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return pending < 1024; });
      ++pending;
    }
    f.store->append(std::move(a), [&](const engine::AppendOutcome& o) {
      std::lock_guard l(mu);
      --pending;
      if (o.status.code() == Errc::kWrongExpectedRevision) ++refused;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  cv.wait(l, [&] { return pending == 0; });
  if (refused != static_cast<std::uint64_t>(state.iterations()))
    state.SkipWithError("a check did not refuse");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExpectedRevisionCheck)->Arg(0)->Arg(1)->ArgNames({"cold"})->UseRealTime();

}  // namespace
}  // namespace annal::index

BENCHMARK_MAIN();
