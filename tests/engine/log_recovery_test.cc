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
  // Three single appends, then one append of 20 events (~150 bytes each):
  // one write of one group, every sector holding whole records. Returns the
  // closed segment's scan.
  SegmentScan three_then_a_group_of_twenty() {
    {
      auto log = open();
      append_n(*log, 3, 100);
      std::vector<EventRecord> group;
      for (int i = 0; i < 20; ++i) group.push_back(make_event(0, 40));
      EXPECT_TRUE(log->append_sync(std::move(group)).status);
    }
    return scan_file(0);
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

// A power loss may keep a later sector of the last, unsynced write and lose an
// earlier one (a disk's volatile cache does not persist sectors in order). The
// lost sector reads as the zeros the preallocated file held. Each pattern of
// kept and lost sectors of the last group is cut as a torn write; none refuses
// to open, and none loses what the sync before it made durable.
TEST_F(LogRecoveryTest, AWriteTornOutOfOrderBySectorsIsCutAsATornTail) {
  constexpr std::size_t kSector = format::kSectorSize;
  SegmentScan scan = three_then_a_group_of_twenty();
  ASSERT_EQ(scan.offsets.size(), 23u);
  const std::uint64_t begin = scan.offsets[3], end = scan.data_end;
  const std::string written = bytes_.substr(begin, end - begin);
  const std::uint64_t first_sector = format::align_up(begin, kSector);
  const std::uint64_t sectors = (end - first_sector) / kSector;
  ASSERT_GE(sectors, 4u);
  // Each pattern: which whole sectors of the write were lost (bit i: sector i).
  const std::vector<std::pair<const char*, std::uint64_t>> patterns = {
      {"the sector the write began in lost", 1ull << 63},
      {"the first whole sector lost", 1},
      {"a middle sector lost", 1ull << (sectors / 2)},
      {"every other sector lost", 0x5555555555555555ull & ((1ull << sectors) - 1)},
      {"all but the last sector lost", (1ull << (sectors - 1)) - 1},
  };
  ASSERT_GT(first_sector, begin) << "the write should start mid-sector";
  for (const auto& [name, lost] : patterns) {
    patch(seg_path(0), begin, written);
    // Bit 63: the sector the write began in, whose earlier part holds the
    // synced records before it (the disk kept that sector's old content).
    if (lost & (1ull << 63)) patch(seg_path(0), begin, std::string(first_sector - begin, '\0'));
    for (std::uint64_t i = 0; i < sectors; ++i)
      if (lost & (1ull << i))
        patch(seg_path(0), first_sector + i * kSector, std::string(kSector, '\0'));
    auto log = open();
    ASSERT_NE(log, nullptr) << name;
    EXPECT_EQ(log->durable_end(), GlobalPosition(3)) << name;
    EXPECT_EQ(log->recovery().out_of_order_tears_cut, 1u) << name;
    EXPECT_EQ(all(*log).size(), 3u) << name;
    log.reset();
    EXPECT_EQ(slurp(seg_path(0), begin, end - begin), std::string(end - begin, '\0')) << name;
  }
}

// The same lost sector below the durable floor (the index MANIFEST proves the
// position acknowledged) is damage to acknowledged data: the open refuses.
TEST_F(LogRecoveryTest, ALostSectorBelowTheDurableFloorRefusesToOpen) {
  SegmentScan scan = three_then_a_group_of_twenty();
  const std::uint64_t sector = format::align_up(scan.offsets[3], format::kSectorSize);
  patch(seg_path(0), sector, std::string(format::kSectorSize, '\0'));
  LogOptions o = options();
  o.durable_floor = 23;
  auto r = Log::open(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kCorruption);
  EXPECT_NE(r.status().message().find("torn out of order"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("annal repair"), std::string::npos) << r.status().message();
}

// A flipped bit is not a lost sector: with valid records after it, it is
// corruption even at the tail of the log.
TEST_F(LogRecoveryTest, AFlippedBitBeforeValidRecordsIsCorruptionNotATear) {
  SegmentScan scan = three_then_a_group_of_twenty();
  const std::uint64_t at = scan.offsets[4] + 80;
  patch(seg_path(0), at, std::string(1, static_cast<char>(bytes_[at] ^ 0x04)));
  auto r = Log::open(options());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kCorruption) << r.status().to_string();
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
