// verify: every kind of damage is reported with the right kind and location,
// and repair --apply then leaves a directory that verify passes and the node
// opens, losing exactly the reported positions.

#include <filesystem>
#include <fstream>
#include <iterator>

#include "engine/file.h"
#include "engine/format.h"
#include "engine/log.h"
#include "index/store.h"
#include "tools_fixture.h"

// Options are built with designated initializers that leave defaulted
// members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools::testing {
namespace {

namespace f = engine::format;
using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

class VerifyRepairTest : public DataDirTest {
 protected:
  // Repairs, checks the result, reopens with the node's code, and checks a
  // second repair changes nothing.
  void expect_repaired(const Ranges& lost, std::optional<std::uint64_t> end = std::nullopt) {
    RepairResult r = repair(/*apply=*/true);
    EXPECT_TRUE(r.applied);
    EXPECT_TRUE(r.clean_after);
    for (const auto& fd : r.remaining) ADD_FAILURE() << "left after repair: " << finding_text(fd);
    Ranges got;
    for (auto [a, b] : r.plan.lost) got.emplace_back(a.value, b.value);
    EXPECT_EQ(got, lost);
    EXPECT_FALSE(r.backup_dir.empty());
    EXPECT_TRUE(std::filesystem::is_directory(r.backup_dir));
    EXPECT_TRUE(verify().clean());

    RepairResult again = repair(/*apply=*/true);
    EXPECT_TRUE(again.plan.empty());
    EXPECT_TRUE(again.backup_dir.empty()) << "a second repair changed something";

    expect_store_opens_with(lost, end);
    const VerifyReport after_open = verify();
    for (const auto& fd : after_open.survey.findings)
      ADD_FAILURE() << "after the node ran: " << finding_text(fd);
  }

  std::string seg(std::size_t i) { return segments().at(i); }
};

TEST_F(VerifyRepairTest, CleanDirectoryVerifiesCleanAndRepairHasNothingToDo) {
  populate();
  ASSERT_GE(segments().size(), 4u);
  EXPECT_FALSE(index_files().empty());
  VerifyReport r = verify();
  for (const auto& fd : r.survey.findings) ADD_FAILURE() << finding_text(fd);
  EXPECT_EQ(r.survey.end.value, original_.size());
  EXPECT_EQ(r.survey.records, original_.size());
  EXPECT_GT(r.index_entries, 0u);
  RepairResult rep = repair(true);
  EXPECT_TRUE(rep.plan.empty());
  EXPECT_TRUE(rep.backup_dir.empty());
}

struct Region {
  const char* name;
  // Byte to flip, from the record's offset and size; and the bit.
  std::uint64_t (*at)(std::uint64_t size);
  int bit;
};

class FlippedBitTest : public VerifyRepairTest, public ::testing::WithParamInterface<Region> {};

TEST_P(FlippedBitTest, LosesExactlyTheOneRecord) {
  populate();
  const std::string s = seg(1);
  const auto offs = offsets(s);
  ASSERT_GT(offs.size(), 10u);
  const std::uint64_t off = offs[5];
  const std::uint64_t size = offs[6] - offs[5];
  const std::uint64_t pos = first_of(s).value + 5;
  flip_bit(s, off + GetParam().at(size), GetParam().bit);

  VerifyReport r = verify();
  ASSERT_EQ(r.survey.findings.size(), 1u) << finding_text(r.survey.findings.at(0));
  const Finding& fd = r.survey.findings[0];
  EXPECT_EQ(fd.kind, FindingKind::kCorruptRecord) << finding_text(fd);
  EXPECT_EQ(fd.file, s);
  EXPECT_EQ(fd.offset, off);
  EXPECT_EQ(fd.bytes, size);
  EXPECT_EQ(fd.first, GlobalPosition(pos));
  EXPECT_EQ(fd.end, GlobalPosition(pos + 1));

  {
    // The node opens a sealed segment trusting its .idx (open time must not
    // grow with the log), so the damage surfaces only when the event is read:
    // this is what verify is for.
    auto log = engine::Log::open(
        engine::LogOptions{.dir = dir_, .segment_size = 64 << 10, .min_free_bytes = 0});
    ASSERT_TRUE(log.is_ok()) << log.status().to_string();
    auto rec = (*log)->read(GlobalPosition(pos));
    ASSERT_FALSE(rec.is_ok());
    EXPECT_EQ(rec.status().code(), Errc::kCorruption);
  }

  expect_repaired({{pos, pos + 1}});
}

INSTANTIATE_TEST_SUITE_P(
    EveryRegion, FlippedBitTest,
    ::testing::Values(
        Region{"header_position", [](std::uint64_t) -> std::uint64_t { return 16; }, 0},
        Region{"header_flags", [](std::uint64_t) -> std::uint64_t { return 4; }, 5},
        Region{"header_checksum", [](std::uint64_t) -> std::uint64_t { return 9; }, 2},
        Region{"length", [](std::uint64_t) -> std::uint64_t { return 0; }, 3},
        Region{"payload", [](std::uint64_t size) -> std::uint64_t { return size / 2 + 3; }, 6},
        Region{"trailing_length", [](std::uint64_t size) -> std::uint64_t { return size - 4; }, 4}),
    [](const ::testing::TestParamInfo<Region>& p) { return std::string(p.param.name); });

TEST_F(VerifyRepairTest, TwoAdjacentDamagedRecordsBecomeTwoMarkersFillingTheSpanExactly) {
  populate();
  const std::string s = seg(2);
  const auto offs = offsets(s);
  const std::uint64_t pos = first_of(s).value + 3;
  flip_bit(s, offs[3] + 40);
  flip_bit(s, offs[4] + 70);
  VerifyReport r = verify();
  ASSERT_EQ(r.survey.findings.size(), 1u);
  EXPECT_EQ(r.survey.findings[0].kind, FindingKind::kCorruptRecord);
  EXPECT_EQ(r.survey.findings[0].offset, offs[3]);
  EXPECT_EQ(r.survey.findings[0].bytes, offs[5] - offs[3]);
  EXPECT_EQ(r.survey.findings[0].first, GlobalPosition(pos));
  EXPECT_EQ(r.survey.findings[0].end, GlobalPosition(pos + 2));
  expect_repaired({{pos, pos + 2}});
  // The markers sit exactly where the damaged records were: every later
  // record kept its offset.
  const auto after = offsets(s);
  ASSERT_EQ(after.size(), offs.size());
  EXPECT_EQ(after[3], offs[3]);
  EXPECT_EQ(after[4], offs[3] + f::kRecordMinSize);
  for (std::size_t i = 5; i < offs.size(); ++i) EXPECT_EQ(after[i], offs[i]);
}

TEST_F(VerifyRepairTest, AScavengedSegmentVerifiesAndItsDamageIsRepairedLikeAnyOther) {
  populate();
  {
    auto store = index::Store::open(store_options(dir_));
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    ASSERT_TRUE((*store)->delete_stream_sync("order-1", ExpectedRevision::any(), false).status);
    auto r = (*store)->scavenge({});
    ASSERT_TRUE(r) << r.status().to_string();
    ASSERT_GT(r->segments_rewritten, 0u);
  }
  VerifyReport clean = verify();
  for (const auto& fd : clean.survey.findings) ADD_FAILURE() << "scavenged: " << finding_text(fd);
  // Damage a surviving record of a rewritten (version 3) segment.
  const std::string s = seg(1);
  const auto offs = offsets(s);
  const std::uint64_t first = first_of(s).value;
  std::uint64_t victim = 0, witness = 0;
  for (std::uint64_t i = 0; i < offs.size(); ++i) {
    if (original_.at(first + i).stream == "order-1") continue;  // a marker now
    if (victim == 0) {
      victim = first + i;
    } else if (witness == 0) {
      witness = first + i;
    }
  }
  ASSERT_NE(witness, 0u);
  flip_bit(s, offs[victim - first] + 70);
  VerifyReport r = verify();
  ASSERT_EQ(r.survey.findings.size(), 1u);
  EXPECT_EQ(r.survey.findings[0].kind, FindingKind::kCorruptRecord);
  EXPECT_EQ(r.survey.findings[0].first, GlobalPosition(victim));
  RepairResult rep = repair(/*apply=*/true);
  EXPECT_TRUE(rep.applied);
  EXPECT_TRUE(rep.clean_after);
  EXPECT_TRUE(verify().clean());
  auto store = index::Store::open(store_options(dir_));
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  auto lost = (*store)->log().read(GlobalPosition(victim));
  ASSERT_TRUE(lost);
  EXPECT_TRUE(lost->is_lost());
  auto kept = (*store)->log().read(GlobalPosition(witness));
  ASSERT_TRUE(kept);
  EXPECT_EQ(*kept, original_.at(witness));
  EXPECT_EQ((*store)
                ->read_stream("order-1", StreamRevision(0), 10, index::Direction::kForward)
                .status()
                .code(),
            Errc::kStreamNotFound);
}

TEST_F(VerifyRepairTest, TruncatedSealedSegmentLosesItsTailPositions) {
  populate();
  const std::string s = seg(1);
  const std::string next = seg(2);
  const auto offs = offsets(s);
  const std::uint64_t k =
      offs.size() - 4;  // keep 4 records and half of the fifth... cut mid-record
  truncate_file(s, offs[4] + 30);
  const std::uint64_t from = first_of(s).value + 4;
  const std::uint64_t to = first_of(next).value;
  (void)k;
  VerifyReport r = verify();
  auto trunc = findings(r, FindingKind::kTruncatedSegment);
  ASSERT_EQ(trunc.size(), 1u);
  EXPECT_EQ(trunc[0].file, s);
  EXPECT_EQ(trunc[0].offset, offs[4] + 30);
  auto tail = findings(r, FindingKind::kSegmentTail);
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].file, s);
  EXPECT_EQ(tail[0].offset, offs[4]);
  EXPECT_EQ(tail[0].first, GlobalPosition(from));
  EXPECT_EQ(tail[0].end, GlobalPosition(to));
  expect_repaired({{from, to}});
  EXPECT_EQ(file_size(s), std::uint64_t{64} << 10);
}

TEST_F(VerifyRepairTest, TruncatedLastSegmentIsATornTail) {
  populate();
  const std::string s = segments().back();
  const auto offs = offsets(s);
  ASSERT_GE(offs.size(), 3u);
  truncate_file(s, offs[offs.size() - 2] + 50);
  VerifyReport r = verify();
  auto torn = findings(r, FindingKind::kTornTail);
  ASSERT_EQ(torn.size(), 1u);
  EXPECT_EQ(torn[0].file, s);
  EXPECT_EQ(torn[0].offset, offs[offs.size() - 2]);
  EXPECT_EQ(findings(r, FindingKind::kTruncatedSegment).size(), 1u);
  // The records before the torn one that belong to its append are cut too
  // (never acknowledged as a whole); everything before is intact.
  RepairResult plan = repair(false);
  EXPECT_FALSE(plan.plan.empty());
  std::uint64_t end = first_of(s).value + offs.size() - 2;
  while (end > 0 && !(original_.at(end - 1).flags & f::kFlagCommit)) --end;
  expect_repaired({}, end);
}

TEST_F(VerifyRepairTest, ZeroFilledTailIsATornTail) {
  populate();
  const std::string s = segments().back();
  const auto offs = offsets(s);
  const std::uint64_t last = offs.back();
  const std::uint64_t size = original_.rbegin()->second.data.size();
  (void)size;
  // Zero the second half of the last record.
  zero_range(s, last + 40, 100);
  VerifyReport r = verify();
  auto torn = findings(r, FindingKind::kTornTail);
  ASSERT_EQ(torn.size(), 1u);
  EXPECT_EQ(torn[0].offset, last);
  EXPECT_EQ(torn[0].first, GlobalPosition(original_.size() - 1));
  std::uint64_t end = original_.size() - 1;
  while (end > 0 && !(original_.at(end - 1).flags & f::kFlagCommit)) --end;
  expect_repaired({}, end);
}

TEST_F(VerifyRepairTest, MissingPositionIndexIsRebuiltIdentically) {
  populate();
  const std::string idx = engine::index_file_name(first_of(seg(1)));
  const std::string before = read_file(idx);
  remove_file(idx);
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kIdxMissing);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].file, idx);
  EXPECT_EQ(r.survey.findings.size(), 1u);
  expect_repaired({});
  EXPECT_EQ(read_file(idx), before);
}

TEST_F(VerifyRepairTest, CorruptPositionIndexIsRebuiltIdentically) {
  populate();
  const std::string idx = engine::index_file_name(first_of(seg(2)));
  const std::string before = read_file(idx);
  flip_bit(idx, 60, 1);
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kIdxCorrupt);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].file, idx);
  EXPECT_EQ(r.survey.findings.size(), 1u);
  expect_repaired({});
  EXPECT_EQ(read_file(idx), before);
}

TEST_F(VerifyRepairTest, MissingStreamIndexFileIsReportedAndRebuiltByTheNode) {
  populate();
  const auto files = index_files();
  ASSERT_FALSE(files.empty());
  remove_file("index/" + files.front());
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kIndexMissing);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].file, "index/" + files.front());
  expect_repaired({});
}

TEST_F(VerifyRepairTest, CorruptStreamIndexFileIsReportedAndRebuiltByTheNode) {
  populate();
  const auto files = index_files();
  ASSERT_FALSE(files.empty());
  const std::string name = "index/" + files.back();
  flip_bit(name, 64 + 24 * 3 + 10, 2);  // inside an entry
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kIndexCorrupt);
  ASSERT_EQ(m.size(), 1u) << (r.survey.findings.empty() ? "" : finding_text(r.survey.findings[0]));
  EXPECT_EQ(m[0].file, name);
  expect_repaired({});
}

// The secondary index (categories, types, tags, ids, time map): a missing or
// damaged file is reported by name and rebuilt by the node; an index whose
// entries are well formed but name the wrong keys (here: built with a hash
// that makes every key collide) is a mismatch naming the first position.
std::vector<std::string> secondary_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/secondary"))
    if (e.path().extension() == ".ix") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(VerifyRepairTest, SecondaryIndexIsCheckedAgainstTheLog) {
  populate();
  VerifyReport clean = verify();
  EXPECT_TRUE(clean.clean()) << finding_text(clean.survey.findings.at(0));
  EXPECT_GT(clean.secondary_entries, 900u * 2) << "category and type per event, tags, ids, time";
  const auto files = secondary_files(dir_);
  ASSERT_FALSE(files.empty());
  remove_file("secondary/" + files.front());
  auto m = findings(verify(), FindingKind::kIndexMissing);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].file, "secondary/" + files.front());
  expect_repaired({});
}

TEST_F(VerifyRepairTest, CorruptSecondaryIndexFileIsReportedAndRebuilt) {
  populate();
  const auto files = secondary_files(dir_);
  ASSERT_FALSE(files.empty());
  const std::string name = "secondary/" + files.back();
  flip_bit(name, 64 + 24 * 3 + 10, 2);  // inside an entry
  auto m = findings(verify(), FindingKind::kIndexCorrupt);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].file, name);
  expect_repaired({});
}

TEST_F(VerifyRepairTest, SecondaryIndexWithWrongKeysIsAMismatch) {
  {
    annal::index::StoreOptions o;
    o.log.dir = dir_;
    o.log.segment_size = 64 << 10;
    o.log.min_free_bytes = 0;
    o.memtable_entries = 100;
    o.test_secondary_hash = [](annal::index::IndexKind, std::string_view v) {
      return v.size() % 3;
    };
    auto store = annal::index::Store::open(o);
    ASSERT_TRUE(store.is_ok());
    for (int i = 0; i < 300; ++i) {
      annal::index::StreamAppend a{"order-" + std::to_string(i % 4), ExpectedRevision::any(), {}};
      annal::index::NewEvent e;
      e.id.bytes[0] = static_cast<std::uint8_t>(i);
      e.id.bytes[1] = static_cast<std::uint8_t>(i >> 8);
      e.id.bytes[15] = 0x42;
      e.type = "T";
      e.data = "x";
      a.events.push_back(e);
      ASSERT_TRUE((*store)->append_sync(std::move(a)).status.is_ok());
    }
  }
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kIndexMismatch);
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m[0].file.rfind("secondary/", 0), 0u) << m[0].file;
  EXPECT_TRUE(findings(r, FindingKind::kIndexCorrupt).empty());
  // Repair moves the secondary index aside (the stream index is fine); the
  // node's next open rebuilds it, which verify then passes.
  RepairResult rep = repair(true);
  EXPECT_TRUE(rep.clean_after);
  EXPECT_TRUE(std::filesystem::exists(path("index")));
  EXPECT_FALSE(std::filesystem::exists(path("secondary")));
  {
    annal::index::StoreOptions o;
    o.log.dir = dir_;
    o.log.segment_size = 64 << 10;
    o.log.min_free_bytes = 0;
    auto store = annal::index::Store::open(o);
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  }
  VerifyReport after = verify();
  EXPECT_TRUE(after.clean()) << finding_text(after.survey.findings.at(0));
}

TEST_F(VerifyRepairTest, StrayUnknownFileIsMovedAside) {
  populate();
  write_file("notes.txt", "an operator's notes");
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kUnknownFile);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].file, "notes.txt");
  RepairResult rep = repair(true);
  EXPECT_TRUE(rep.clean_after);
  EXPECT_FALSE(std::filesystem::exists(path("notes.txt")));
  std::ifstream kept(rep.backup_dir + "/notes.txt");
  std::string text((std::istreambuf_iterator<char>(kept)), {});
  EXPECT_EQ(text, "an operator's notes");
  expect_store_opens_with({});
}

TEST_F(VerifyRepairTest, SegmentMissingFromTheMiddleIsReportedAndItsPositionsMarkedLost) {
  populate();
  const std::string gone = seg(2);
  const std::uint64_t from = first_of(gone).value;
  const std::uint64_t to = first_of(seg(3)).value;
  remove_file(gone);
  remove_file(engine::index_file_name(first_of(gone)));
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kMissingSegment);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].first, GlobalPosition(from));
  EXPECT_EQ(m[0].end, GlobalPosition(to));
  EXPECT_EQ(r.survey.findings.size(), 1u) << finding_text(r.survey.findings.back());
  expect_repaired({{from, to}});
}

TEST_F(VerifyRepairTest, UnreadableSegmentHeaderIsMovedAsideAndItsRecordsKept) {
  populate();
  const std::string s = seg(1);
  const std::string original = read_file(s);
  flip_bit(s, 2, 0);  // the magic
  VerifyReport r = verify();
  auto m = findings(r, FindingKind::kSegmentHeader);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].file, s);
  EXPECT_EQ(m[0].offset, 0u);
  RepairResult rep = repair(true);
  EXPECT_TRUE(rep.clean_after);
  // The original is in the backup, whole, byte for byte as it was found.
  std::ifstream moved(rep.backup_dir + "/" + s, std::ios::binary);
  std::string backup((std::istreambuf_iterator<char>(moved)), {});
  ASSERT_EQ(backup.size(), original.size());
  EXPECT_NE(backup, original);
  EXPECT_EQ(backup.substr(f::kSegmentHeaderSize), original.substr(f::kSegmentHeaderSize));
  // No position was lost.
  EXPECT_TRUE(rep.plan.lost.empty());
  EXPECT_EQ(read_file(s).substr(f::kSegmentHeaderSize), original.substr(f::kSegmentHeaderSize));
  expect_store_opens_with({});
}

TEST_F(VerifyRepairTest, RepairRefusesWhileANodeHoldsTheDirectory) {
  populate(100);
  // What annald holds while it runs.
  auto lock = engine::DirectoryLock::acquire(dir_);
  ASSERT_TRUE(lock.is_ok());
  auto r = repair_directory(dir_, RepairOptions{.apply = true});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Errc::kLocked);
  EXPECT_EQ(run_annal("repair " + dir_), 1);
}

}  // namespace
}  // namespace annal::tools::testing
