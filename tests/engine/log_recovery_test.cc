// Recovery at open: torn tails, incomplete appends, corruption, .idx rebuilds.

#include <gtest/gtest.h>

#include <filesystem>

#include "engine/format.h"
#include "engine/segment.h"
#include "tests/engine/log_fixture.h"

namespace annal::engine {
namespace {

class LogRecoveryTest : public LogFixture {
 protected:
  // The scan of a closed segment file, straight from disk.
  SegmentScan scan_file(std::uint64_t first) {
    const auto size = std::filesystem::file_size(seg_path(first));
    bytes_ = slurp(seg_path(first), 0, size);
    return scan_segment(testing::bytes_of(bytes_), GlobalPosition(first));
  }
  std::string bytes_;
};

TEST_F(LogRecoveryTest, TornTailIsCutAtEveryByteOffsetOfTheLastRecord) {
  {
    auto log = open();
    append_n(*log, 3, 4);
  }
  SegmentScan scan = scan_file(0);
  ASSERT_EQ(scan.offsets.size(), 3u);
  const std::uint64_t last = scan.offsets[2];
  const std::string record = bytes_.substr(last, scan.data_end - last);
  const std::string earlier = bytes_.substr(0, last);
  for (std::size_t keep = 0; keep < record.size(); ++keep) {
    // The last write reached the disk only in part: `keep` bytes of it.
    patch(seg_path(0), last, record.substr(0, keep) + std::string(record.size() - keep, '\0'));
    // The trailer's high bytes are zero, so a few of the last prefixes are the
    // whole record.
    const bool whole = record.find_first_not_of('\0', keep) == std::string::npos;
    auto log = open();
    ASSERT_NE(log, nullptr) << "keep " << keep;
    EXPECT_EQ(log->durable_end(), GlobalPosition(whole ? 3 : 2)) << "keep " << keep;
    const bool garbage =
        !whole && record.substr(0, keep).find_first_not_of('\0') != std::string::npos;
    EXPECT_EQ(log->recovery().torn_bytes_cut > 0, garbage) << "keep " << keep;
    EXPECT_EQ(all(*log).size(), whole ? 3u : 2u);
    log.reset();
    if (!whole) {
      // The cut is durable and clean: the segment ends right after record 1.
      EXPECT_EQ(slurp(seg_path(0), last, record.size()), std::string(record.size(), '\0'));
    }
    EXPECT_EQ(slurp(seg_path(0), 0, last), earlier);
  }
  patch(seg_path(0), last, record);
  auto log = open();
  EXPECT_EQ(log->recovery().torn_bytes_cut, 0u);
  EXPECT_EQ(log->append_sync({make_event(0)}).first_position, GlobalPosition(3));
}

TEST_F(LogRecoveryTest, IncompleteMultiEventAppendIsCut) {
  {
    auto log = open();
    append_n(*log, 1);
    ASSERT_TRUE(log->append_sync({make_event(0), make_event(0), make_event(0)}).status);
  }
  SegmentScan scan = scan_file(0);
  ASSERT_EQ(scan.offsets.size(), 4u);
  // The append's last record (the one with the commit flag) never made it.
  patch(seg_path(0), scan.offsets[3], std::string(scan.data_end - scan.offsets[3], '\0'));
  auto log = open();
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->durable_end(), GlobalPosition(1));
  EXPECT_EQ(log->recovery().incomplete_events_cut, 2u);
  EXPECT_EQ(log->recovery().torn_bytes_cut, 0u);
  EXPECT_EQ(log->append_sync({make_event(0)}).first_position, GlobalPosition(1));
  log.reset();
  log = open();
  EXPECT_EQ(log->recovery().incomplete_events_cut, 0u);
  EXPECT_EQ(all(*log).size(), 2u);
}

TEST_F(LogRecoveryTest, MidLogCorruptionRefusesToOpenWithAPreciseError) {
  {
    auto log = open();
    append_n(*log, 10);
  }
  SegmentScan scan = scan_file(0);
  const std::uint64_t at = scan.offsets[4];
  patch(seg_path(0), at + 70, std::string(1, static_cast<char>(bytes_[at + 70] ^ 0x20)));
  auto r = Log::open(options());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kCorruption);
  const std::string m = r.status().message();
  EXPECT_NE(m.find(segment_file_name(GlobalPosition(0))), std::string::npos) << m;
  EXPECT_NE(m.find("offset " + std::to_string(at)), std::string::npos) << m;
  EXPECT_NE(m.find("positions 4..4"), std::string::npos) << m;
  EXPECT_NE(m.find("annal repair"), std::string::npos) << m;
}

TEST_F(LogRecoveryTest, CorruptionInsideASealedSegmentIsReportedByReadsNamingSegmentAndOffset) {
  {
    auto log = open(options(64 << 10));
    append_n(*log, 200, 300);
    ASSERT_GT(log->segments().size(), 1u);
  }
  SegmentScan scan = scan_file(0);
  const std::uint64_t at = scan.offsets[5];
  patch(seg_path(0), at + 100, "!");
  {
    // The sealed segment's .idx is trusted (its last record checks out), so
    // open does not rescan it; the damaged record is refused when read.
    auto log = open(options(64 << 10));
    ASSERT_NE(log, nullptr);
    auto rec = log->read(GlobalPosition(5));
    ASSERT_FALSE(rec);
    EXPECT_EQ(rec.status().code(), Errc::kCorruption);
    EXPECT_NE(rec.status().message().find(segment_file_name(GlobalPosition(0))), std::string::npos);
    EXPECT_NE(rec.status().message().find("offset " + std::to_string(at)), std::string::npos);
    std::uint64_t seen = 0;
    Status s = log->scan_forward(GlobalPosition(0), UINT64_MAX, [&](const RecordView&) {
      ++seen;
      return true;
    });
    EXPECT_EQ(s.code(), Errc::kCorruption);
    EXPECT_EQ(seen, 5u);
    EXPECT_TRUE(log->read(GlobalPosition(6)));
  }
  // Without its .idx, the rebuild scan finds the damage and open refuses.
  std::filesystem::remove(idx_path(0));
  auto r = Log::open(options(64 << 10));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kCorruption);
  EXPECT_NE(r.status().message().find("positions 5..5"), std::string::npos) << r.status().message();
}

TEST_F(LogRecoveryTest, MissingOrDamagedPositionIndexIsRebuilt) {
  std::vector<EventRecord> before;
  {
    auto log = open(options(64 << 10));
    append_n(*log, 300, 300);
    ASSERT_GT(log->segments().size(), 2u);
    before = all(*log);
  }
  const auto segs = [&] {
    std::vector<std::uint64_t> firsts;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path() + "/log"))
      if (auto p = parse_index_file_name(e.path().filename().string())) firsts.push_back(p->value);
    std::sort(firsts.begin(), firsts.end());
    return firsts;
  }();
  ASSERT_GE(segs.size(), 2u);
  std::filesystem::remove(idx_path(segs[0]));
  patch(idx_path(segs[1]), kIndexHeaderSize + 8, "\x01\x02");  // an offset entry
  auto log = open(options(64 << 10));
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->recovery().position_indexes_rebuilt, 2u);
  EXPECT_EQ(all(*log), before);
  auto idx = read_position_index(FileSystem::posix(), idx_path(segs[1]));
  ASSERT_TRUE(idx) << idx.status().to_string();
  log.reset();
  log = open(options(64 << 10));
  EXPECT_EQ(log->recovery().position_indexes_rebuilt, 0u);
}

TEST_F(LogRecoveryTest, LastSegmentWhoseCreationWasInterruptedIsRemovedAndRecreated) {
  {
    auto log = open(options(64 << 10));
    append_n(*log, 10);
  }
  // A crash right after creating the next segment's file: empty, or
  // allocated but without its header.
  for (std::uint64_t size : {0u, 100u, 64u << 10}) {
    {
      std::ofstream f(seg_path(10), std::ios::binary);
      f << std::string(size, '\0');
    }
    auto log = open(options(64 << 10));
    ASSERT_NE(log, nullptr) << size;
    EXPECT_EQ(log->durable_end(), GlobalPosition(10));
    EXPECT_EQ(log->segments().size(), 1u);
    EXPECT_FALSE(std::filesystem::exists(seg_path(10)));
  }
}

TEST_F(LogRecoveryTest, GapBetweenSegmentsRefusesToOpen) {
  {
    auto log = open(options(64 << 10));
    append_n(*log, 400, 300);
    ASSERT_GT(log->segments().size(), 2u);
  }
  const auto second = open(options(64 << 10))->segments()[1];
  std::filesystem::remove(dir_.path() + "/log/" + second.file);
  auto r = Log::open(options(64 << 10));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kCorruption);
  EXPECT_NE(r.status().message().find("positions missing"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace annal::engine
