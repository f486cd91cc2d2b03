// A damaged record is never answered as absence (issue 11, findings 1 and 2):
// a read, an expected-revision check or a retry that needs a record which
// cannot be read answers corruption naming its position and writes nothing.
// Each test flips one bit in one record's payload (covered by the record
// checksum) of a closed store whose index files already hold the record, so
// the reopened store meets the damage only when a request needs it.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/common/file_edit.h"
#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

namespace fs = std::filesystem;

class StoreDamageTest : public StoreFixture {
 protected:
  void SetUp() override {
    segment_size_ = 64 * 1024;
    open();
  }
  std::uint64_t end() { return store_->log().durable_end().value; }

  // One event whose payload is `{"m":"<marker>"}`, so the test can find its
  // bytes in the segment file.
  AppendOutcome append_marked(const std::string& stream, Rev expected, std::uint64_t id,
                              const std::string& marker) {
    return append(stream, expected, {id}, "{\"m\":\"" + marker + "\"}");
  }

  // Appends filler events to another stream until the segment holding
  // `position` is sealed: open checks every record of the active segment, so
  // damage there refuses to start (the engine's tests cover that).
  void seal_behind(std::uint64_t position) {
    for (std::uint64_t n = 0;; ++n) {
      for (const auto& seg : store_->log().segments())
        if (seg.first.value <= position && position < seg.first.value + seg.count && seg.sealed)
          return;
      ASSERT_LT(n, 1000u);
      ASSERT_TRUE(append("filler", Rev::any(), {1000000 + fillers_++}, std::string(8000, 'x'))
                      .status.is_ok());
    }
  }

  // Closes the store, flips one bit inside `marker`'s payload, reopens, and
  // checks the damaged record is indexed (so nothing read it on open).
  void damage(const std::string& marker, std::uint64_t position) {
    seal_behind(position);
    close();
    bool flipped = false;
    for (const auto& entry : fs::directory_iterator(dir_.path())) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), {});
      const auto at = bytes.find("\"" + marker + "\"");
      if (at == std::string::npos) continue;
      ASSERT_EQ(bytes.find("\"" + marker + "\"", at + 1), std::string::npos) << marker;
      test::flip_bits(entry.path().string(), at + 2, 0x01);
      flipped = true;
    }
    ASSERT_TRUE(flipped) << "no segment holds " << marker;
    open();
    ASSERT_GT(store_->stats().indexed_through, position)
        << "the damaged record must be in the index files, not in the replayed tail";
  }

  std::uint64_t fillers_ = 0;

  static void expect_corruption_at(const Status& st, std::uint64_t position) {
    EXPECT_EQ(st.code(), Errc::kCorruption) << st.to_string();
    EXPECT_NE(st.message().find("position " + std::to_string(position)), std::string::npos)
        << st.to_string();
  }
};

// Finding 1: the damaged record is the stream's last event. Reads, the head
// and every expected-revision check answer corruption; nothing is written.
TEST_F(StoreDamageTest, DamagedLastEventOfAStreamIsCorruptionNotAShorterStream) {
  for (std::uint64_t i = 0; i < 3; ++i)
    ASSERT_TRUE(append("s-a", Rev::any(), {1 + i}).status.is_ok());
  const auto last = append_marked("s-a", Rev::exact(2), 4, "s-a-3");
  ASSERT_TRUE(last.status.is_ok());
  ASSERT_TRUE(append("s-b", Rev::any(), {10}).status.is_ok());  // not the log's last record
  const std::uint64_t pos = last.first_position.value;
  damage("s-a-3", pos);
  const std::uint64_t before = end();

  auto fwd = store_->read_stream("s-a", StreamRevision(1), 10, Direction::kForward);
  ASSERT_FALSE(fwd.is_ok()) << "answered " << fwd->size()
                            << " events as if revision 3 did not exist";
  expect_corruption_at(fwd.status(), pos);
  auto back = store_->read_stream("s-a", StreamRevision(UINT64_MAX), 10, Direction::kBackward);
  ASSERT_FALSE(back.is_ok());
  expect_corruption_at(back.status(), pos);
  auto head = store_->last_revision("s-a");
  ASSERT_FALSE(head.is_ok());
  expect_corruption_at(head.status(), pos);

  for (Rev expected :
       {Rev::exact(2), Rev::exact(3), Rev::any(), Rev::stream_exists(), Rev::no_stream()}) {
    const auto o = append("s-a", expected, {50});
    expect_corruption_at(o.status, pos);
  }
  EXPECT_EQ(end(), before) << "an append that needed the damaged record wrote something";

  // Other streams are served as before.
  auto other = store_->read_stream("s-b", StreamRevision(0), 10, Direction::kForward);
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_EQ(other->size(), 1u);
  EXPECT_TRUE(append("s-b", Rev::exact(0), {11}).status.is_ok());
}

// Finding 1, a record in the middle: a read that covers it fails; reads that
// do not need it still work, and so does an append whose check does not.
TEST_F(StoreDamageTest, DamagedMiddleEventFailsOnlyTheReadsThatCoverIt) {
  ASSERT_TRUE(append("s-a", Rev::any(), {1}).status.is_ok());
  const auto mid = append_marked("s-a", Rev::exact(0), 2, "s-a-1");
  ASSERT_TRUE(mid.status.is_ok());
  ASSERT_TRUE(append("s-a", Rev::exact(1), {3}).status.is_ok());
  const std::uint64_t pos = mid.first_position.value;
  damage("s-a-1", pos);

  auto covering = store_->read_stream("s-a", StreamRevision(0), 3, Direction::kForward);
  ASSERT_FALSE(covering.is_ok());
  expect_corruption_at(covering.status(), pos);
  auto after = store_->read_stream("s-a", StreamRevision(2), 3, Direction::kForward);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().revision.value, 2u);
  EXPECT_TRUE(append("s-a", Rev::exact(2), {4}).status.is_ok());
}

// Finding 2: a retry of a damaged single-event `any` / `stream_exists`
// append answers corruption; it is not written a second time.
TEST_F(StoreDamageTest, RetryOfADamagedAnyAppendIsCorruptionNotASecondWrite) {
  ASSERT_TRUE(append("s-c", Rev::any(), {1}).status.is_ok());
  const auto o = append_marked("s-c", Rev::any(), 20, "s-c-1");
  ASSERT_TRUE(o.status.is_ok());
  ASSERT_TRUE(append("s-c", Rev::any(), {21}).status.is_ok());  // the damaged one is not the head
  ASSERT_TRUE(append("s-d", Rev::any(), {30}).status.is_ok());
  const std::uint64_t pos = o.first_position.value;
  damage("s-c-1", pos);
  const std::uint64_t before = end();

  for (Rev expected : {Rev::any(), Rev::stream_exists()}) {
    const auto retry = append_marked("s-c", expected, 20, "s-c-1");
    EXPECT_FALSE(retry.deduplicated);
    expect_corruption_at(retry.status, pos);
  }
  EXPECT_EQ(end(), before) << "the retry was written again";
  // An unrelated new event of the same stream is still accepted: its check
  // did not need the damaged record.
  EXPECT_TRUE(append("s-c", Rev::any(), {22}).status.is_ok());
}

// Finding 2: damaged multi-event, exact and no_stream appends answer
// corruption on retry, not wrong_expected_revision.
TEST_F(StoreDamageTest, RetryOfADamagedExactOrNoStreamAppendIsCorruption) {
  StreamAppend first;
  first.stream = "s-e";
  first.expected = Rev::no_stream();
  first.events.push_back(NewEvent{make_id(40), "t", 0, "", "{\"m\":\"s-e-0\"}"});
  first.events.push_back(NewEvent{make_id(41), "t", 0, "", "{}"});
  const auto a = store_->append_sync(first);
  ASSERT_TRUE(a.status.is_ok());
  StreamAppend second;
  second.stream = "s-e";
  second.expected = Rev::exact(1);
  second.events.push_back(NewEvent{make_id(42), "t", 0, "", "{\"m\":\"s-e-2\"}"});
  second.events.push_back(NewEvent{make_id(43), "t", 0, "", "{}"});
  const auto b = store_->append_sync(second);
  ASSERT_TRUE(b.status.is_ok());
  ASSERT_TRUE(append("s-f", Rev::any(), {50}).status.is_ok());
  close();
  open();
  ASSERT_TRUE(store_->append_sync(first).deduplicated) << "precondition: retries dedup when intact";
  ASSERT_TRUE(store_->append_sync(second).deduplicated);

  damage("s-e-0", a.first_position.value);
  expect_corruption_at(store_->append_sync(first).status, a.first_position.value);
  damage("s-e-2", b.first_position.value);
  expect_corruption_at(store_->append_sync(second).status, b.first_position.value);
  const std::uint64_t before = end();
  expect_corruption_at(store_->append_sync(first).status, a.first_position.value);
  EXPECT_EQ(end(), before);
}

// Finding 3: one bit flipped in the log's last record looks like a torn
// write, but the stream index's MANIFEST proves the position was acknowledged:
// open refuses with corruption naming it instead of cutting the event.
TEST_F(StoreDamageTest, AFlippedLastRecordBelowTheIndexedThroughMarkRefusesToStart) {
  ASSERT_TRUE(append("s-a", Rev::any(), {1}).status.is_ok());
  const auto last = append_marked("s-a", Rev::exact(0), 2, "s-a-last");
  ASSERT_TRUE(last.status.is_ok());
  const std::uint64_t pos = last.first_position.value;
  ASSERT_EQ(end(), pos + 1) << "the marked event must be the log's last record";
  close();  // writes the index files and a MANIFEST with indexed_through = pos + 1
  bool flipped = false;
  for (const auto& entry : fs::directory_iterator(dir_.path())) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto at = bytes.find("\"s-a-last\"");
    if (at == std::string::npos) continue;
    test::flip_bits(entry.path().string(), at + 2, 0x01);
    flipped = true;
  }
  ASSERT_TRUE(flipped);

  auto refused = Store::open(options());
  ASSERT_FALSE(refused.is_ok()) << "the acknowledged last event was cut as a torn tail";
  EXPECT_EQ(refused.status().code(), Errc::kCorruption);
  EXPECT_NE(refused.status().message().find("position " + std::to_string(pos)), std::string::npos)
      << refused.status().to_string();
  EXPECT_NE(refused.status().message().find("annal repair"), std::string::npos);
  auto again = Store::open(options());
  ASSERT_FALSE(again.is_ok()) << "a refused open must not have changed the directory";

  // Without the manifest's proof the damage is indistinguishable from a torn
  // write (docs/storage-format.md, recovery rules): the tail is cut. This is
  // what `annal repair` leaves (it drops the stream index when it cuts).
  fs::remove(fs::path(dir_.path()) / "index" / "MANIFEST");
  auto still = Store::open(options());
  ASSERT_FALSE(still.is_ok()) << "the secondary index's MANIFEST proves it too";
  fs::remove(fs::path(dir_.path()) / "secondary" / "MANIFEST");
  open();
  EXPECT_EQ(end(), pos);
  EXPECT_EQ(ids_of("s-a"), (std::vector<std::uint64_t>{1}));
}

}  // namespace
}  // namespace annal::index::testing

namespace annal::index::testing {
namespace {

// Damage under a query: a condition that needs a damaged record refuses with
// corruption (it must not pass as "no matching event"), and a query read over
// it fails naming the position.
TEST_F(StoreDamageTest, ADamagedRecordUnderAnAppendConditionIsCorruptionNotAPass) {
  StreamAppend a{
      "seat-1", Rev::any(), {NewEvent{make_id(1), "Reserved", 0, "", "{\"m\":\"taken\"}"}}};
  a.events[0].tags = {"seat:1"};
  auto taken = store_->append_sync(std::move(a));
  ASSERT_TRUE(taken.status);
  const std::uint64_t pos = taken.first_position.value;
  damage("taken", pos);
  const Query seat{{QueryItem{{}, {"seat:1"}}}};
  StreamAppend again{"seat-1b", Rev::any(), {NewEvent{make_id(2), "Reserved", 0, "", "{}"}}};
  again.events[0].tags = {"seat:1"};
  const auto before = end();
  auto o = store_->append_multi_sync(MultiAppend{{std::move(again)}, AppendCondition{seat, {}}});
  expect_corruption_at(o.status, pos);
  EXPECT_EQ(end(), before);
  Status read =
      store_->visit_query(seat, GlobalPosition(0), Direction::kForward, GlobalPosition(UINT64_MAX),
                          [](const engine::RecordView&) { return true; });
  expect_corruption_at(read, pos);
}

}  // namespace
}  // namespace annal::index::testing
