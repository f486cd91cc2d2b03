// Micro-benchmarks of the byte-level hot paths: record encode/decode (with the
// XXH3 checksum), segment scan, position lookup (position -> record through
// the .idx offsets and the mapped segment), and protocol frame encode/decode.
// Index lookups and expected-revision checks: see store_bench.cc and
// index_bench.cc.
//
//   cmake --preset release && cmake --build build/release --target annal_codec_bench
//   build/release/bench/annal_codec_bench [--benchmark_filter=...]

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/format.h"
#include "engine/log.h"
#include "engine/record.h"
#include "engine/segment.h"
#include "proto/protocol.h"

namespace annal {
namespace {

std::string json_256() {
  std::string s = "{\"seq\":123456,\"pad\":\"";
  s.append(256 - s.size() - 2, 'x');
  s += "\"}";
  return s;
}

engine::EventRecord event_256(std::uint64_t pos) {
  engine::EventRecord e;
  e.id = EventId::random();
  e.stream = "bench-" + std::to_string(pos % 1000);
  e.type = "BenchEvent";
  e.flags = engine::format::kFlagDataJson;
  e.data = json_256();
  e.position = GlobalPosition(pos);
  e.revision = StreamRevision(pos / 1000);
  e.timestamp_us = 1'700'000'000'000'000 + static_cast<std::int64_t>(pos);
  return e;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

void BM_RecordEncode(benchmark::State& state) {
  const auto e = event_256(42);
  std::string out;
  out.reserve(1024);
  for (auto _ : state) {
    out.clear();
    engine::encode(e, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(engine::encoded_size(e)));
}
BENCHMARK(BM_RecordEncode);

void BM_RecordDecode(benchmark::State& state) {
  std::string buf;
  engine::encode(event_256(42), buf);
  for (auto _ : state) {
    auto r = engine::decode(bytes_of(buf));
    if (r.outcome != engine::DecodeOutcome::kOk) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r.view.checksum);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(buf.size()));
}
BENCHMARK(BM_RecordDecode);

// A segment image in memory: header + n records.
std::string segment_image(std::uint64_t n) {
  engine::SegmentHeader h;
  h.first = GlobalPosition(0);
  std::string seg = engine::encode_segment_header(h);
  for (std::uint64_t i = 0; i < n; ++i) engine::encode(event_256(i), seg);
  seg.append(4096, '\0');
  // allocated_size is informational for the scanner; set it to the image size.
  h.allocated_size = seg.size();
  return engine::encode_segment_header(h) + seg.substr(engine::format::kSegmentHeaderSize);
}

void BM_SegmentScan(benchmark::State& state) {
  const auto n = static_cast<std::uint64_t>(state.range(0));
  const std::string seg = segment_image(n);
  for (auto _ : state) {
    engine::SegmentScanner s(bytes_of(seg), GlobalPosition(0));
    engine::RecordView v;
    std::uint64_t off = 0, count = 0;
    while (s.next(v, off)) ++count;
    if (count != n) state.SkipWithError("short scan");
    benchmark::DoNotOptimize(count);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(seg.size()));
}
BENCHMARK(BM_SegmentScan)->Arg(100'000);

// Position lookup on a real log: Log::visit(position) for random durable
// positions (index offsets -> mapped segment -> decode with checksum), the
// segments in the page cache.
struct LogFixture {
  std::string dir;
  std::unique_ptr<engine::Log> log;
  std::uint64_t n = 0;
};

LogFixture make_log(std::uint64_t n, std::uint64_t segment_size) {
  spdlog::set_level(spdlog::level::warn);
  LogFixture f;
  const char* env = std::getenv("ANNAL_BENCH_DIR");
  f.dir = (std::filesystem::path(env ? env : std::filesystem::temp_directory_path().string()) /
           ("annal-codec-bench-" + std::to_string(::getpid())))
              .string();
  std::filesystem::remove_all(f.dir);
  engine::LogOptions o;
  o.dir = f.dir;
  o.segment_size = segment_size;
  o.min_free_bytes = 0;
  auto r = engine::Log::open(o);
  if (!r) return f;
  f.log = std::move(*r);
  for (std::uint64_t done = 0; done < n; done += 1000) {
    std::vector<engine::EventRecord> batch;
    for (std::uint64_t i = 0; i < 1000; ++i) batch.push_back(event_256(done + i));
    if (!f.log->append_sync(std::move(batch)).status) return f;
  }
  f.n = n;
  return f;
}

void BM_PositionLookup(benchmark::State& state) {
  // Small segments so lookups cross sealed (.idx) and the active segment.
  LogFixture f = make_log(200'000, 16u << 20);
  if (f.n == 0) {
    state.SkipWithError("could not build the log");
    return;
  }
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    const GlobalPosition p(rng() % f.n);
    std::uint64_t got = 0;
    auto s = f.log->visit(p, [&](const engine::RecordView& v) { got = v.position.value; });
    if (!s || got != p.value) state.SkipWithError("lookup failed");
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["segments"] = static_cast<double>(f.log->segments().size());
  f.log.reset();
  std::filesystem::remove_all(f.dir);
}
BENCHMARK(BM_PositionLookup)->UseRealTime();

// ---- protocol frames ----

net::proto::AppendReq append_req(int events) {
  net::proto::AppendReq r;
  r.stream = "bench-42";
  r.expected = ExpectedRevision::any();
  for (int i = 0; i < events; ++i)
    r.events.push_back(index::NewEvent{EventId::random(), "BenchEvent",
                                       engine::format::kFlagDataJson, "", json_256()});
  return r;
}

void BM_FrameEncodeAppend(benchmark::State& state) {
  const auto req = append_req(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string f = net::proto::encode_append(7, req);
    bytes = f.size();
    benchmark::DoNotOptimize(f.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_FrameEncodeAppend)->Arg(1)->Arg(100);

void BM_FrameDecodeAppend(benchmark::State& state) {
  const std::string f = net::proto::encode_append(7, append_req(static_cast<int>(state.range(0))));
  const std::string_view payload =
      std::string_view(f).substr(net::proto::kLengthPrefixSize + net::proto::kFrameMinBody);
  for (auto _ : state) {
    auto r = net::proto::decode_append(payload);
    if (!r) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(f.size()));
}
BENCHMARK(BM_FrameDecodeAppend)->Arg(1)->Arg(100);

// A read response of 1000 events, built the way the node builds it (from
// record views, no EventRecord copies), and decoded the way the client does.
void BM_FrameEncodeReadOk(benchmark::State& state) {
  std::vector<std::string> encoded;
  std::vector<engine::RecordView> views;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    encoded.emplace_back();
    engine::encode(event_256(i), encoded.back());
  }
  for (const auto& e : encoded) views.push_back(engine::decode(bytes_of(e)).view);
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string events;
    for (const auto& v : views) net::proto::append_event(events, v);
    std::string f = net::proto::encode(
        9, net::proto::ReadOkOf<net::proto::EncodedEvents>{false, 1000, 1000, {1000, events}});
    bytes = f.size();
    benchmark::DoNotOptimize(f.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_FrameEncodeReadOk);

void BM_FrameDecodeReadOk(benchmark::State& state) {
  net::proto::ReadOk ok;
  for (std::uint64_t i = 0; i < 1000; ++i) ok.events.push_back(event_256(i));
  const std::string f = net::proto::encode_read_ok(9, ok);
  const std::string_view payload =
      std::string_view(f).substr(net::proto::kLengthPrefixSize + net::proto::kFrameMinBody);
  for (auto _ : state) {
    auto r = net::proto::decode_read_ok(payload);
    if (!r || r->events.size() != 1000) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(f.size()));
}
BENCHMARK(BM_FrameDecodeReadOk);

}  // namespace
}  // namespace annal

BENCHMARK_MAIN();
