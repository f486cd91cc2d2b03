// Durable append throughput with concurrent appenders (group commit) and
// forward read throughput of the whole log.
//
//   cmake -S . -B build/rel -G Ninja -DCMAKE_BUILD_TYPE=Release -DANNAL_BUILD_BENCH=ON
//   cmake --build build/rel --target annal_engine_bench && build/rel/bench/annal_engine_bench
// ANNAL_BENCH_DIR picks the directory (default: the system temp dir).

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/format.h"
#include "engine/log.h"

namespace annal::engine {
namespace {

std::string bench_dir(const std::string& name) {
  const char* env = std::getenv("ANNAL_BENCH_DIR");
  std::filesystem::path base = env != nullptr ? env : std::filesystem::temp_directory_path();
  auto dir = base / ("annal-engine-bench-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

EventRecord event_256() {
  EventRecord e;
  e.id = EventId::random();
  e.stream = "account-12345";
  e.type = "Deposited";
  e.flags = format::kFlagDataJson;
  e.data = "{\"amount\":100,\"pad\":\"" + std::string(256 - 24, 'x') + "\"}";
  return e;
}

// Counts group commits: durable() is called once per successful fdatasync.
class CountingHooks final : public WriteHooks {
 public:
  Decision prepare(AppendRequest&, GlobalPosition, AppendOutcome&) override {
    return Decision::kWrite;
  }
  void aborted(const AppendRequest&) override {}
  void durable(GlobalPosition) override { syncs.fetch_add(1, std::memory_order_relaxed); }
  std::atomic<std::uint64_t> syncs{0};
};

struct AppendFixture {
  std::string dir;
  CountingHooks hooks;
  std::unique_ptr<Log> log;
  std::uint64_t start_syncs = 0;
  GlobalPosition start_end;
};
AppendFixture* g_append = nullptr;

void append_durable(benchmark::State& state, bool prepare_segments) {
  if (state.thread_index() == 0) {
    spdlog::set_level(spdlog::level::warn);
    g_append = new AppendFixture;
    g_append->dir = bench_dir("append");
    LogOptions o;
    o.dir = g_append->dir;
    o.segment_size = 64ull << 20;
    o.hooks = &g_append->hooks;
    o.prepare_segments = prepare_segments;
    auto r = Log::open(o);
    if (!r) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    g_append->log = std::move(*r);
    g_append->start_syncs = g_append->hooks.syncs.load();
    g_append->start_end = g_append->log->durable_end();
  }
  const EventRecord ev = event_256();
  for (auto _ : state) {
    AppendOutcome o = g_append->log->append_sync({ev});
    if (!o.status) {
      state.SkipWithError(o.status.to_string().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const double events =
        static_cast<double>(g_append->log->durable_end().value - g_append->start_end.value);
    const double syncs = static_cast<double>(g_append->hooks.syncs.load() - g_append->start_syncs);
    state.counters["fsyncs"] = benchmark::Counter(syncs, benchmark::Counter::kIsRate);
    state.counters["events_per_fsync"] = syncs > 0 ? events / syncs : 0;
    g_append->log.reset();
    std::filesystem::remove_all(g_append->dir);
    delete g_append;
    g_append = nullptr;
  }
}
void BM_AppendDurable(benchmark::State& state) {
  append_durable(state, true);
}
BENCHMARK(BM_AppendDurable)->Threads(1)->Threads(16)->Threads(64)->UseRealTime()->MinTime(2.0);
// The same without zero-filled segments: appends land in fallocated
// (unwritten) extents, so each fdatasync also commits extent conversions.
void BM_AppendDurableFallocatedOnly(benchmark::State& state) {
  append_durable(state, false);
}
BENCHMARK(BM_AppendDurableFallocatedOnly)->Threads(1)->Threads(64)->UseRealTime()->MinTime(2.0);

void BM_ScanForward(benchmark::State& state) {
  spdlog::set_level(spdlog::level::warn);
  const std::uint64_t n = static_cast<std::uint64_t>(state.range(0));
  const std::string dir = bench_dir("scan");
  LogOptions o;
  o.dir = dir;
  o.segment_size = 64ull << 20;
  std::unique_ptr<Log> log;
  {
    auto r = Log::open(o);
    if (!r) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    log = std::move(*r);
  }
  const EventRecord ev = event_256();
  for (std::uint64_t done = 0; done < n; done += 1000) {
    std::vector<EventRecord> batch(1000, ev);
    if (!log->append_sync(std::move(batch)).status) {
      state.SkipWithError("append failed");
      return;
    }
  }
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    std::uint64_t count = 0;
    bytes = 0;
    Status s = log->scan_forward(GlobalPosition(0), UINT64_MAX, [&](const RecordView& v) {
      ++count;
      bytes += v.size;
      return true;
    });
    if (!s || count != n) state.SkipWithError("scan failed");
    benchmark::DoNotOptimize(count);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  log.reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_ScanForward)->Arg(200'000)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace annal::engine

BENCHMARK_MAIN();
