#include "engine/log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/format.h"
#include "engine/segment.h"
#include "tests/engine/log_fixture.h"

namespace annal::engine {
namespace {

class LogTest : public LogFixture {
 protected:
  // Six threads append batches of 1-4 events to 64 KiB segments; positions
  // must stay dense across the rolls, also after a reopen.
  void concurrent_appends_keep_positions_dense(LogOptions o) {
    auto log = open(o);
    constexpr int kThreads = 6, kPerThread = 150;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          std::vector<EventRecord> batch;
          for (int j = 0; j <= (t + i) % 4; ++j)
            batch.push_back(make_event(0, 100 + 37 * j, "s" + std::to_string(t)));
          if (!log->append_sync(std::move(batch)).status) ++failures;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0);
    auto events = all(*log);
    ASSERT_EQ(events.size(), log->durable_end().value);
    for (std::uint64_t i = 0; i < events.size(); ++i)
      ASSERT_EQ(events[i].position, GlobalPosition(i));
    EXPECT_GT(log->segments().size(), 3u);
    log.reset();
    log = open(o);
    EXPECT_EQ(all(*log).size(), events.size());
  }
};

TEST_F(LogTest, AppendedEventsAreReadBackWithDensePositions) {
  auto log = open();
  auto o = log->append_sync({make_event(0), make_event(0), make_event(0)});
  ASSERT_TRUE(o.status) << o.status.to_string();
  EXPECT_EQ(o.first_position, GlobalPosition(0));
  EXPECT_EQ(o.count, 3u);
  o = log->append_sync({make_event(0)});
  EXPECT_EQ(o.first_position, GlobalPosition(3));
  EXPECT_EQ(log->durable_end(), GlobalPosition(4));
  auto events = all(*log);
  ASSERT_EQ(events.size(), 4u);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(events[i].position, GlobalPosition(i));
  EXPECT_FALSE(events[0].flags & format::kFlagCommit);
  EXPECT_TRUE(events[2].flags & format::kFlagCommit);
  auto r = log->read(GlobalPosition(3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->data, make_event(0).data);
  EXPECT_EQ(log->read(GlobalPosition(4)).status().code(), Errc::kNotFound);
}

TEST_F(LogTest, BackwardScanIsForwardScanReversed) {
  auto log = open(options(64 << 10));
  for (int i = 0; i < 150; ++i)
    ASSERT_TRUE(log->append_sync({make_event(0, 500), make_event(0, 300)}).status);
  ASSERT_GT(log->segments().size(), 2u);
  auto fwd = all(*log);
  std::vector<EventRecord> back;
  ASSERT_TRUE(log->scan_backward(GlobalPosition(UINT64_MAX), UINT64_MAX, [&](const RecordView& v) {
    back.push_back(v.to_record());
    return true;
  }));
  std::reverse(back.begin(), back.end());
  EXPECT_EQ(back, fwd);
  std::vector<std::uint64_t> some;
  ASSERT_TRUE(log->scan_backward(GlobalPosition(50), 3, [&](const RecordView& v) {
    some.push_back(v.position.value);
    return true;
  }));
  EXPECT_EQ(some, (std::vector<std::uint64_t>{50, 49, 48}));
}

TEST_F(LogTest, ReopenFindsEverythingAndContinuesPositions) {
  {
    auto log = open(options(64 << 10));
    append_n(*log, 300, 200);
  }
  auto log = open(options(64 << 10));
  EXPECT_EQ(log->durable_end(), GlobalPosition(300));
  EXPECT_EQ(log->recovery().torn_bytes_cut, 0u);
  EXPECT_EQ(log->recovery().position_indexes_rebuilt, 0u);
  EXPECT_GT(log->recovery().segments, 1u);
  EXPECT_EQ(log->append_sync({make_event(0)}).first_position, GlobalPosition(300));
  EXPECT_EQ(all(*log).size(), 301u);
}

TEST_F(LogTest, AnAppendNeverSpansSegments) {
  auto log = open(options(64 << 10));
  for (int i = 0; i < 40; ++i) {
    std::vector<EventRecord> batch;
    for (int j = 0; j < 1 + i % 7; ++j) batch.push_back(make_event(0, 700));
    ASSERT_TRUE(log->append_sync(std::move(batch)).status);
  }
  auto segs = log->segments();
  ASSERT_GT(segs.size(), 2u);
  std::uint64_t expect = 0;
  for (const auto& s : segs) {
    EXPECT_EQ(s.first, GlobalPosition(expect));
    expect += s.count;
    // Every segment ends on a commit flag.
    auto r = log->read(GlobalPosition(s.first.value + s.count - 1));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->flags & format::kFlagCommit) << s.file;
    EXPECT_LE(s.bytes_used, s.bytes_allocated);
  }
  EXPECT_EQ(expect, log->durable_end().value);
}

TEST_F(LogTest, AppendLargerThanASegmentIsTooLarge) {
  auto log = open(options(64 << 10));
  auto o = log->append_sync({make_event(0, 70 << 10)});
  EXPECT_EQ(o.status.code(), Errc::kTooLarge);
  EXPECT_TRUE(log->append_sync({make_event(0)}).status);
  EXPECT_EQ(log->append_sync({}).status.code(), Errc::kInvalidArgument);
}

TEST_F(LogTest, SegmentRollUnderConcurrentAppendsKeepsPositionsDense) {
  concurrent_appends_keep_positions_dense(options(64 << 10));
}

TEST_F(LogTest, WithWriteWhenIdleALoneAppendIsWrittenAndCompletedOnTheCallersThread) {
  LogOptions o = options();
  o.write_when_idle = true;
  auto log = open(o);
  std::thread::id ran_on;
  AppendOutcome got;
  AppendRequest req;
  req.events.push_back(make_event(0));
  req.done = [&](const AppendOutcome& out) {
    ran_on = std::this_thread::get_id();
    got = out;
  };
  log->append(std::move(req));
  // Completed before append() returned, on this thread, and durable.
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  ASSERT_TRUE(got.status) << got.status.to_string();
  EXPECT_EQ(got.first_position, GlobalPosition(0));
  EXPECT_EQ(log->durable_end(), GlobalPosition(1));
}

// Appenders that find the log busy queue for the writer thread; whichever
// thread writes, groups are written one at a time and positions stay dense
// across segment rolls.
TEST_F(LogTest, WithWriteWhenIdleConcurrentAppendersKeepPositionsDenseAcrossRolls) {
  LogOptions o = options(64 << 10);
  o.write_when_idle = true;
  concurrent_appends_keep_positions_dense(o);
}

TEST_F(LogTest, ReadersConcurrentWithTheWriterSeeOnlyValidDurableRecords) {
  auto log = open(options(64 << 10));
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> read_ok{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        const GlobalPosition end = log->durable_end();
        std::uint64_t seen = 0;
        Status s = log->scan_forward(GlobalPosition(0), UINT64_MAX, [&](const RecordView& v) {
          EXPECT_EQ(v.position.value, seen);
          ++seen;
          return true;
        });
        EXPECT_TRUE(s) << s.to_string();
        EXPECT_GE(seen, end.value);
        if (end.value > 0) {
          auto rec = log->read(GlobalPosition(end.value - 1));
          EXPECT_TRUE(rec) << rec.status().to_string();
        }
        read_ok += seen;
      }
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w)
    writers.emplace_back([&] {
      for (int i = 0; i < 120; ++i)
        ASSERT_TRUE(log->append_sync({make_event(0, 300), make_event(0, 10)}).status);
    });
  for (auto& t : writers) t.join();
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(log->durable_end(), GlobalPosition(720));
  EXPECT_GT(read_ok.load(), 0u);
}

}  // namespace
}  // namespace annal::engine

namespace annal::engine {
namespace {

std::uint32_t header_version(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string header(format::kSegmentHeaderSize, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  auto decoded = decode_segment_header(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(header.data()), header.size()),
      path);
  return decoded ? decoded->version : 0;
}

class LogFormatUpgradeTest : public LogFixture {
 protected:
  // Rewrites a segment's header as version 1 (what a node before extended
  // records wrote), as if the directory came from that node.
  static void make_version_1(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string header(format::kSegmentHeaderSize, '\0');
    in.read(header.data(), static_cast<std::streamsize>(header.size()));
    in.close();
    auto decoded =
        decode_segment_header(std::span<const std::byte>(
                                  reinterpret_cast<const std::byte*>(header.data()), header.size()),
                              path);
    ASSERT_TRUE(decoded) << decoded.status().to_string();
    SegmentHeader h = *decoded;
    h.version = 1;
    patch(path, 0, encode_segment_header(h));
  }
};

TEST_F(LogFormatUpgradeTest, ExtendedRecordsNeverGoIntoAVersion1Segment) {
  {
    auto log = open();
    append_n(*log, 10);
  }
  make_version_1(seg_path(0));
  auto log = open();
  ASSERT_TRUE(log);
  // Records without the extension still go into the old segment.
  append_n(*log, 5);
  EXPECT_EQ(log->segments().size(), 1u);
  EventRecord e = make_event(0);
  e.tags = {"k:v"};
  e.epoch = 1;
  auto o = log->append_sync({e});
  ASSERT_TRUE(o.status) << o.status.to_string();
  EXPECT_EQ(o.first_position, GlobalPosition(15));
  const auto segs = log->segments();
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_TRUE(segs[0].sealed);
  EXPECT_EQ(segs[1].first, GlobalPosition(15));
  EXPECT_EQ(header_version(seg_path(0)), 1u);
  EXPECT_EQ(header_version(seg_path(15)), format::kSegmentVersion);
  log.reset();
  // Reopened: the old segment's records and the extended one read back.
  log = open();
  const auto events = all(*log);
  ASSERT_EQ(events.size(), 16u);
  EXPECT_TRUE(events[14].tags.empty());
  EXPECT_EQ(events[15].tags, std::vector<std::string>{"k:v"});
  EXPECT_EQ(events[15].epoch, 1u);
}

TEST_F(LogFormatUpgradeTest, AnEmptyVersion1SegmentGetsTheCurrentHeaderInPlace) {
  { auto log = open(); }
  make_version_1(seg_path(0));
  auto log = open();
  ASSERT_TRUE(log);
  EventRecord e = make_event(0);
  e.correlation_id = "corr-1";
  auto o = log->append_sync({e});
  ASSERT_TRUE(o.status) << o.status.to_string();
  EXPECT_EQ(o.first_position, GlobalPosition(0));
  EXPECT_EQ(log->segments().size(), 1u);
  EXPECT_EQ(header_version(seg_path(0)), format::kSegmentVersion);
  log.reset();
  log = open();
  const auto events = all(*log);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].correlation_id, "corr-1");
}

TEST_F(LogFormatUpgradeTest, ASegmentOfAFutureVersionIsRefusedByName) {
  {
    auto log = open();
    append_n(*log, 3);
  }
  std::ifstream in(seg_path(0), std::ios::binary);
  std::string header(format::kSegmentHeaderSize, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  in.close();
  auto h = decode_segment_header(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(header.data()), header.size()),
      seg_path(0));
  ASSERT_TRUE(h);
  SegmentHeader future = *h;
  future.version = format::kNewestSegmentVersion + 1;
  patch(seg_path(0), 0, encode_segment_header(future));
  auto r = Log::open(options());
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("unsupported version"), std::string::npos)
      << r.status().to_string();
}

}  // namespace
}  // namespace annal::engine
