// The damage census (issue 11): one bit flipped at a time, at sampled offsets
// of every region of every file of a generated data directory, and each
// damaged copy opened as the node opens it (index::Store::open) and used as
// a client would: every stream read forward and backward and its head asked
// for, the whole log read, an append with a stale expected revision, one with
// the right one, and a retry of every original append. Asserted for every
// flip:
//   - no wrong byte served: every event a read returns equals the original;
//   - nothing hidden: a read that succeeds returns everything the original
//     held (a stream read is complete, a log read skips no position);
//   - the expected-revision check holds: a stale expectation never lands,
//     the right one lands at the next revision;
//   - no second write: a retry is deduplicated to its original position;
//   - nothing acknowledged cut: the durable end is never below the original;
//   - every failure is a clear kCorruption (or kLostAtRepair) answer, or the
//     store refuses to open with kCorruption.
//
// ANNAL_CENSUS_FLIPS (default 64) flips, ANNAL_CENSUS_SEED (default 1).
// Regions are taken in turn, so even the small run covers each of them. The
// figures of a large run are in tests/reliability/README.md.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "engine/format.h"
#include "engine/record.h"
#include "engine/segment.h"
#include "index/store.h"
#include "tests/common/file_edit.h"
#include "tests/reliability/reliability_util.h"

namespace annal::reliability {
namespace {

namespace fs = std::filesystem;
namespace format = engine::format;
using engine::AppendOutcome;
using engine::EventRecord;
using index::Direction;

// ---- The original directory and what it holds ----

struct Appended {
  index::StreamAppend request;
  std::uint64_t first_position = 0;
  std::uint64_t first_revision = 0;
};

struct Original {
  std::string dir;
  std::vector<EventRecord> log;                               // by position
  std::map<std::string, std::vector<std::uint64_t>> streams;  // positions by revision
  std::vector<Appended> appends;
};

index::StoreOptions store_options(const std::string& dir) {
  index::StoreOptions o;
  o.log.dir = dir;
  o.log.segment_size = format::kMinSegmentSize;  // 64 KiB: many sealed segments
  o.log.min_free_bytes = 0;
  o.memtable_entries = 512;  // several index files and merges
  o.idempotency_window = 1u << 16;
  return o;
}

index::StreamAppend make_append(std::mt19937_64& rng, const Original& o) {
  index::StreamAppend a;
  a.stream = fmt::format("s-{}", rng() % 50);
  const auto it = o.streams.find(a.stream);
  const bool exists = it != o.streams.end();
  const std::size_t n = rng() % 5 == 0 ? 2 + rng() % 3 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    index::NewEvent e;
    e.id = random_id(rng);
    e.type = fmt::format("Type{}", rng() % 7);
    e.flags = format::kFlagDataJson;
    e.data = random_json(rng, 100 + rng() % 500);
    a.events.push_back(std::move(e));
  }
  const auto pick = rng() % 20;
  if (pick < 8)
    a.expected = ExpectedRevision::any();
  else if (pick < 11)
    a.expected = exists ? ExpectedRevision::stream_exists() : ExpectedRevision::no_stream();
  else if (pick < 17 && exists)
    a.expected = ExpectedRevision::exact(it->second.size() - 1);
  else
    a.expected = exists ? ExpectedRevision::any() : ExpectedRevision::no_stream();
  return a;
}

void generate(Original& o, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto store = index::Store::open(store_options(o.dir));
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  while (o.log.size() < 3000) {
    auto a = make_append(rng, o);
    const AppendOutcome out = (*store)->append_sync(a);
    ASSERT_TRUE(out.status.is_ok()) << out.status.to_string();
    o.appends.push_back({a, out.first_position.value, out.first_revision.value});
    std::vector<EventRecord> got;
    ASSERT_TRUE((*store)
                    ->log()
                    .scan_forward(out.first_position, out.count,
                                  [&](const engine::RecordView& v) {
                                    got.push_back(v.to_record());
                                    return true;
                                  })
                    .is_ok());
    for (auto& r : got) {
      o.streams[r.stream].push_back(r.position.value);
      o.log.push_back(std::move(r));
    }
  }
}

// ---- Regions of the files ----

enum class Region {
  kSegmentHeader,
  kRecordLength,  // length and flags
  kRecordChecksum,
  kRecordFields,  // position, revision, timestamp, id, lengths
  kRecordPayload,
  kRecordPadding,
  kRecordTrailer,
  kZeroTail,
  kLastRecord,  // the log's last record (recovery's torn-tail question)
  kSpare,
  kPositionIndex,
  kStreamIndex,
  kManifest,
  kCount
};

const char* region_name(Region r) {
  static const char* const names[] = {"segment header",
                                      "record length+flags",
                                      "record checksum",
                                      "record fields",
                                      "record payload",
                                      "record padding",
                                      "record trailer",
                                      "zero tail",
                                      "last record",
                                      "spare segment",
                                      ".idx",
                                      ".ix",
                                      "MANIFEST"};
  return names[static_cast<int>(r)];
}

struct Span {
  std::string file;  // relative to the data directory
  std::uint64_t begin = 0, end = 0;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void add(std::map<Region, std::vector<Span>>& m, Region r, const std::string& file, std::uint64_t b,
         std::uint64_t e) {
  if (e > b) m[r].push_back({file, b, e});
}

void map_segment(std::map<Region, std::vector<Span>>& m, const std::string& rel,
                 const std::string& bytes, std::uint64_t first, bool last_segment) {
  const std::span<const std::byte> seg(reinterpret_cast<const std::byte*>(bytes.data()),
                                       bytes.size());
  const engine::SegmentScan scan = engine::scan_segment(seg, GlobalPosition(first));
  add(m, Region::kSegmentHeader, rel, 0, format::kSegmentHeaderSize);
  for (std::size_t i = 0; i < scan.offsets.size(); ++i) {
    const std::uint64_t off = scan.offsets[i];
    const engine::DecodeResult d = engine::decode(seg.subspan(off));
    const std::uint64_t len = d.view.size;
    const std::uint64_t payload_end = off + format::kRecordFixedSize + d.view.stream.size() +
                                      d.view.type.size() + d.view.metadata.size() +
                                      d.view.data.size();
    if (last_segment && i + 1 == scan.offsets.size()) {
      add(m, Region::kLastRecord, rel, off, off + len);
      continue;
    }
    add(m, Region::kRecordLength, rel, off, off + 8);
    add(m, Region::kRecordChecksum, rel, off + 8, off + 16);
    add(m, Region::kRecordFields, rel, off + 16, off + format::kRecordFixedSize);
    add(m, Region::kRecordPayload, rel, off + format::kRecordFixedSize, payload_end);
    add(m, Region::kRecordPadding, rel, payload_end, off + len - format::kRecordTrailerSize);
    add(m, Region::kRecordTrailer, rel, off + len - format::kRecordTrailerSize, off + len);
  }
  add(m, Region::kZeroTail, rel, scan.data_end, bytes.size());
}

std::map<Region, std::vector<Span>> map_regions(const std::string& dir) {
  std::map<Region, std::vector<Span>> m;
  std::vector<fs::path> segments;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), dir).string();
    const std::string name = e.path().filename().string();
    const std::uint64_t size = e.file_size();
    if (e.path().extension() == ".seg")
      segments.push_back(e.path());
    else if (name.find("spare") != std::string::npos)
      add(m, Region::kSpare, rel, 0, size);
    else if (e.path().extension() == ".idx")
      add(m, Region::kPositionIndex, rel, 0, size);
    else if (e.path().extension() == ".ix")
      add(m, Region::kStreamIndex, rel, 0, size);
    else if (name.rfind("MANIFEST", 0) == 0)
      add(m, Region::kManifest, rel, 0, size);
  }
  std::sort(segments.begin(), segments.end());
  for (std::size_t i = 0; i < segments.size(); ++i)
    map_segment(m, fs::relative(segments[i], dir).string(), read_file(segments[i]),
                std::stoull(segments[i].stem().string()), i + 1 == segments.size());
  return m;
}

// ---- One flip ----

struct Flip {
  Region region;
  std::string file;
  std::uint64_t offset = 0;
  std::uint8_t mask = 0;
};

enum class Outcome { kRefused, kServedClean, kServedWithCorruption, kCount };

struct FlipResult {
  Outcome outcome = Outcome::kServedClean;
  std::vector<std::string> violations;
};

class FlipCheck {
 public:
  FlipCheck(const Original& o, index::Store& store, FlipResult& r) : o_(o), s_(store), r_(r) {}

  void run() {
    if (s_.log().durable_end().value < o_.log.size())
      violation(fmt::format("durable end {} is below the acknowledged {}",
                            s_.log().durable_end().value, o_.log.size()));
    read_log();
    for (const auto& [stream, positions] : o_.streams) read_stream(stream, positions);
    for (const auto& [stream, positions] : o_.streams) append_expected(stream, positions.size());
    retry_all();
  }

 private:
  void violation(std::string what) {
    if (r_.violations.size() < 20) r_.violations.push_back(std::move(what));
  }
  // A failure is acceptable only as a clear damage answer.
  void failed(const Status& st, const std::string& what) {
    if (st.code() == Errc::kCorruption || st.code() == Errc::kLostAtRepair) {
      r_.outcome = Outcome::kServedWithCorruption;
      return;
    }
    violation(fmt::format("{}: {}", what, st.to_string()));
  }

  void read_log() {
    std::uint64_t next = 0;
    while (next < o_.log.size()) {
      const std::uint64_t from = next;
      Status st =
          s_.log().scan_forward(GlobalPosition(from), 256, [&](const engine::RecordView& v) {
            if (v.position.value != next)
              violation(fmt::format("log read: position {} answered where {} was due",
                                    v.position.value, next));
            else if (!(v.to_record() == o_.log[next]))
              violation(fmt::format("log read: position {} served different bytes", next));
            ++next;
            return true;
          });
      if (!st.is_ok()) {
        failed(st, fmt::format("log read at {}", next));
        ++next;  // the damaged position; go on after it
      } else if (next == from) {
        violation(fmt::format("log read from {} answered nothing: events hidden", from));
        break;
      }
    }
  }

  void read_stream(const std::string& stream, const std::vector<std::uint64_t>& positions) {
    for (const Direction dir : {Direction::kForward, Direction::kBackward}) {
      const StreamRevision from(dir == Direction::kForward ? 0 : UINT64_MAX);
      auto got = s_.read_stream(stream, from, 1u << 20, dir);
      const char* how = dir == Direction::kForward ? "forward" : "backward";
      if (!got.is_ok()) {
        failed(got.status(), fmt::format("read {} {}", stream, how));
        continue;
      }
      if (got->size() != positions.size()) {
        violation(fmt::format("read {} {}: {} events answered, {} exist", stream, how, got->size(),
                              positions.size()));
        continue;
      }
      for (std::size_t i = 0; i < got->size(); ++i) {
        const std::size_t rev = dir == Direction::kForward ? i : positions.size() - 1 - i;
        if (!((*got)[i] == o_.log[positions[rev]]))
          violation(
              fmt::format("read {} {}: revision {} served different bytes", stream, how, rev));
      }
    }
    auto head = s_.last_revision(stream);
    if (!head.is_ok())
      failed(head.status(), fmt::format("last_revision {}", stream));
    else if (head->value != positions.size() - 1)
      violation(fmt::format("last_revision {} = {}, the stream ends at {}", stream, head->value,
                            positions.size() - 1));
  }

  index::StreamAppend fresh(const std::string& stream, ExpectedRevision expected) {
    index::StreamAppend a;
    a.stream = stream;
    a.expected = expected;
    index::NewEvent e;
    e.id = random_id(rng_);
    e.type = "CensusProbe";
    e.data = "{}";
    e.flags = format::kFlagDataJson;
    a.events.push_back(std::move(e));
    return a;
  }

  void append_expected(const std::string& stream, std::uint64_t count) {
    const std::uint64_t last = count - 1;
    const auto stale = s_.append_sync(fresh(
        stream, last == 0 ? ExpectedRevision::no_stream() : ExpectedRevision::exact(last - 1)));
    if (stale.status.is_ok())
      violation(fmt::format("append to {} expecting a stale revision landed at {}", stream,
                            stale.first_revision.value));
    else if (stale.status.code() != Errc::kWrongExpectedRevision)
      failed(stale.status, fmt::format("stale append to {}", stream));
    const auto right = s_.append_sync(fresh(stream, ExpectedRevision::exact(last)));
    if (right.status.is_ok()) {
      if (right.first_revision.value != last + 1 || right.deduplicated)
        violation(fmt::format("append to {} expecting {} landed at revision {}", stream, last,
                              right.first_revision.value));
    } else {
      failed(right.status, fmt::format("append to {} expecting {}", stream, last));
    }
  }

  void retry_all() {
    std::vector<AppendOutcome> outs(o_.appends.size());
    std::mutex mu;
    std::condition_variable cv;
    std::size_t left = outs.size();
    for (std::size_t i = 0; i < o_.appends.size(); ++i)
      s_.append(o_.appends[i].request, [&, i](const AppendOutcome& out) {
        std::lock_guard l(mu);
        outs[i] = out;
        if (--left == 0) cv.notify_all();
      });
    std::unique_lock l(mu);
    cv.wait(l, [&] { return left == 0; });
    for (std::size_t i = 0; i < outs.size(); ++i) {
      const auto& a = o_.appends[i];
      const auto& out = outs[i];
      if (!out.status.is_ok())
        failed(out.status, fmt::format("retry of the append at {}", a.first_position));
      else if (!out.deduplicated || out.first_position.value != a.first_position ||
               out.first_revision.value != a.first_revision)
        violation(fmt::format(
            "retry of the append at {} (revision {}) answered {} at {} (revision {})",
            a.first_position, a.first_revision, out.deduplicated ? "deduplicated" : "written",
            out.first_position.value, out.first_revision.value));
    }
  }

  const Original& o_;
  index::Store& s_;
  FlipResult& r_;
  std::mt19937_64 rng_{7};
};

FlipResult try_flip(const Original& o, const Flip& f, const std::string& work) {
  FlipResult r;
  fs::remove_all(work);
  fs::copy(o.dir, work, fs::copy_options::recursive);
  test::flip_bits((fs::path(work) / f.file).string(), f.offset, f.mask);
  auto store = index::Store::open(store_options(work));
  if (!store.is_ok()) {
    r.outcome = Outcome::kRefused;
    if (store.status().code() != Errc::kCorruption)
      r.violations.push_back("refused to open without kCorruption: " + store.status().to_string());
    return r;
  }
  FlipCheck(o, **store, r).run();
  return r;
}

TEST(DamageCensusTest, EveryFlippedBitIsServedIntactOrAnsweredCorruption) {
  const std::uint64_t flips = test::env_u64("ANNAL_CENSUS_FLIPS", 64);
  const std::uint64_t seed = test::env_u64("ANNAL_CENSUS_SEED", 1);
  TempDir tmp("annal-census", /*in_memory=*/true);
  Original o;
  o.dir = tmp.path() + "/original";
  generate(o, seed);
  ASSERT_FALSE(HasFatalFailure());
  const auto regions = map_regions(o.dir);

  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 3);
  std::map<Region, std::array<std::uint64_t, static_cast<int>(Outcome::kCount)>> tally;
  std::uint64_t violations = 0;
  for (std::uint64_t i = 0; i < flips; ++i) {
    const auto region = static_cast<Region>(i % static_cast<int>(Region::kCount));
    const auto it = regions.find(region);
    if (it == regions.end()) continue;  // e.g. no record with padding
    const Span& span = it->second[rng() % it->second.size()];
    const Flip f{region, span.file, span.begin + rng() % (span.end - span.begin),
                 static_cast<std::uint8_t>(1u << (rng() % 8))};
    const FlipResult r = try_flip(o, f, tmp.path() + "/copy");
    ++tally[region][static_cast<int>(r.outcome)];
    for (const auto& v : r.violations) {
      ++violations;
      ADD_FAILURE() << fmt::format("flip {} ({}: {} offset {} mask {:#04x}): {}", i,
                                   region_name(region), f.file, f.offset, f.mask, v);
    }
  }
  std::printf("damage census: %llu flips, seed %llu, %zu events, %zu streams, %zu appends\n",
              static_cast<unsigned long long>(flips), static_cast<unsigned long long>(seed),
              o.log.size(), o.streams.size(), o.appends.size());
  std::printf("%-22s %8s %8s %8s %8s\n", "region", "flips", "refused", "clean", "corrupt");
  for (const auto& [region, t] : tally)
    std::printf("%-22s %8llu %8llu %8llu %8llu\n", region_name(region),
                static_cast<unsigned long long>(t[0] + t[1] + t[2]),
                static_cast<unsigned long long>(t[0]), static_cast<unsigned long long>(t[1]),
                static_cast<unsigned long long>(t[2]));
  std::printf("violations: %llu\n", static_cast<unsigned long long>(violations));
  EXPECT_EQ(violations, 0u);
}

}  // namespace
}  // namespace annal::reliability
