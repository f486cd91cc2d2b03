// read/: one page of read_stream / read_all and one subscription step, on a
// real Store in a temporary directory, through a sink that records what it got.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/format.h"
#include "index/store.h"
#include "read/catch_up.h"
#include "read/paging.h"
#include "tests/common/temp_dir.h"

namespace annal::read {
namespace {

// Every event "costs" 100 bytes plus its data.
class Collect final : public EventSink {
 public:
  std::size_t size_of(const engine::RecordView& v) const override { return 100 + v.data.size(); }
  void add(const engine::RecordView& v) override {
    bytes_ += size_of(v);
    positions.push_back(v.position.value);
    revisions.push_back(v.revision.value);
  }
  std::size_t bytes() const override { return bytes_; }
  std::uint32_t count() const override { return static_cast<std::uint32_t>(positions.size()); }
  std::vector<std::uint64_t> positions, revisions;

 private:
  std::size_t bytes_ = 0;
};

class ReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    index::StoreOptions o;
    o.log.dir = dir_.path();
    o.log.min_free_bytes = 0;
    o.log.segment_size = 1u << 20;
    auto s = index::Store::open(o);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    store_ = std::move(s).value();
  }
  // One event of `bytes` data bytes appended to `stream`.
  void append(const std::string& stream, std::size_t bytes, const std::string& type = "T") {
    index::StreamAppend a;
    a.stream = stream;
    a.events.push_back(index::NewEvent{EventId::random(), type, 0, "", std::string(bytes, 'x')});
    ASSERT_TRUE(store_->append_sync(std::move(a)).status.is_ok());
  }

  test::TempDir dir_{"annal-read"};
  std::unique_ptr<index::Store> store_;
};

TEST_F(ReadTest, AStreamPageStopsBeforeTheEventThatWouldPassTheByteCap) {
  for (int i = 0; i < 5; ++i) append("s", 200);  // 300 "bytes" each
  const PageLimits limits{100, 1000};
  Collect a;
  Page p = read_stream_page(*store_, "s", 0, index::Direction::kForward, limits, a);
  ASSERT_TRUE(p.status.is_ok());
  EXPECT_EQ(a.revisions, (std::vector<std::uint64_t>{0, 1, 2}));
  EXPECT_FALSE(p.end);
  EXPECT_EQ(p.next, 3u);
  Collect b;
  p = read_stream_page(*store_, "s", p.next, index::Direction::kForward, limits, b);
  EXPECT_EQ(b.revisions, (std::vector<std::uint64_t>{3, 4}));
  EXPECT_TRUE(p.end);
  EXPECT_EQ(p.next, 5u);

  Collect back;
  p = read_stream_page(*store_, "s", kNone, index::Direction::kBackward, limits, back);
  EXPECT_EQ(back.revisions, (std::vector<std::uint64_t>{4, 3, 2}));
  EXPECT_FALSE(p.end);
  EXPECT_EQ(p.next, 1u);
  Collect rest;
  p = read_stream_page(*store_, "s", p.next, index::Direction::kBackward, limits, rest);
  EXPECT_EQ(rest.revisions, (std::vector<std::uint64_t>{1, 0}));
  EXPECT_TRUE(p.end);
  EXPECT_EQ(p.next, kNone);
}

TEST_F(ReadTest, OneEventLargerThanTheCapIsAPageOfItsOwn) {
  append("s", 5000);
  append("s", 10);
  Collect a;
  Page p = read_stream_page(*store_, "s", 0, index::Direction::kForward, {100, 1000}, a);
  EXPECT_EQ(a.revisions, (std::vector<std::uint64_t>{0}));
  EXPECT_EQ(p.next, 1u);
  EXPECT_FALSE(p.end);
}

TEST_F(ReadTest, ACountCapAndAMissingStreamAreAnsweredAsDocumented) {
  for (int i = 0; i < 5; ++i) append("s", 1);
  Collect a;
  Page p = read_stream_page(*store_, "s", 1, index::Direction::kForward, {2, 1u << 20}, a);
  EXPECT_EQ(a.revisions, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(p.next, 3u);
  Collect none;
  p = read_stream_page(*store_, "nope", 0, index::Direction::kForward, {2, 1u << 20}, none);
  EXPECT_EQ(p.status.code(), Errc::kStreamNotFound);
  Collect past;
  p = read_stream_page(*store_, "s", 9, index::Direction::kForward, {2, 1u << 20}, past);
  ASSERT_TRUE(p.status.is_ok());
  EXPECT_TRUE(p.end);
  EXPECT_EQ(p.next, 9u) << "forward with nothing returned continues at from";
}

TEST_F(ReadTest, ReadAllPagesForwardAndBackwardWithTheCaps) {
  for (int i = 0; i < 4; ++i) append("s-" + std::to_string(i), 200);
  const PageLimits limits{100, 700};
  Collect a;
  Page p = read_all_page(*store_, 0, index::Direction::kForward, limits, a);
  EXPECT_EQ(a.positions, (std::vector<std::uint64_t>{0, 1}));
  EXPECT_EQ(p.next, 2u);
  EXPECT_FALSE(p.end);
  Collect b;
  p = read_all_page(*store_, 2, index::Direction::kForward, limits, b);
  EXPECT_EQ(b.positions, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_TRUE(p.end);
  EXPECT_EQ(p.next, 4u);
  Collect c;
  p = read_all_page(*store_, kNone, index::Direction::kBackward, {3, 1u << 20}, c);
  EXPECT_EQ(c.positions, (std::vector<std::uint64_t>{3, 2, 1}));
  EXPECT_EQ(p.next, 0u);
  EXPECT_FALSE(p.end);
  Collect d;
  p = read_all_page(*store_, 0, index::Direction::kBackward, {3, 1u << 20}, d);
  EXPECT_EQ(d.positions, (std::vector<std::uint64_t>{0}));
  EXPECT_TRUE(p.end);
  EXPECT_EQ(p.next, kNone);
}

TEST_F(ReadTest, AScanStepLooksAtMostMaxScanPositionsAndCountsTheUnmatched) {
  for (int i = 0; i < 10; ++i) append(i == 2 ? "order-1" : "user-1", 1);
  Filter f;
  f.stream_prefix = "order-";
  const GlobalPosition end = store_->log().durable_end();
  Collect a;
  Step s = scan_log(*store_, f, GlobalPosition(0), end, 4, {100, 1u << 20}, a);
  ASSERT_TRUE(s.status.is_ok());
  EXPECT_EQ(a.positions, (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(s.scanned, 4u);
  EXPECT_EQ(s.scanned_after_last_event, 1u);
  EXPECT_EQ(s.next.value, 4u);
  Collect b;
  s = scan_log(*store_, f, s.next, end, 100, {100, 1u << 20}, b);
  EXPECT_TRUE(b.positions.empty());
  EXPECT_EQ(s.scanned, 6u);
  EXPECT_EQ(s.next.value, 10u);
}

TEST_F(ReadTest, AStreamCatchesUpThroughTheIndexThenFollowsTheLogFromItsEnd) {
  append("s", 1);
  append("t", 1);
  append("s", 1);
  Collect a;
  Step s = read_index(*store_, "s", 0, {100, 1u << 20}, a);
  ASSERT_TRUE(s.status.is_ok());
  EXPECT_EQ(a.revisions, (std::vector<std::uint64_t>{0, 1}));
  EXPECT_TRUE(s.index_done);
  EXPECT_EQ(s.next_rev, 2u);
  EXPECT_EQ(s.next.value, 3u) << "the log steps start at the durable end the index read saw";
  append("s", 1);
  Filter f;
  f.target = Target::kStream;
  f.stream = "s";
  f.min_rev = s.next_rev;
  Collect b;
  s = scan_log(*store_, f, s.next, store_->log().durable_end(), 100, {100, 1u << 20}, b);
  EXPECT_EQ(b.revisions, (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(s.next_rev, 3u);
}

TEST(FilterTest, LostEntriesMatchOnlyAnUnfilteredLogSubscription) {
  engine::RecordView lost;
  lost.flags = engine::format::kFlagLost;
  Filter all;
  EXPECT_TRUE(all.matches(lost));
  Filter prefixed;
  prefixed.stream_prefix = "";
  prefixed.type_prefix = "T";
  EXPECT_FALSE(prefixed.matches(lost));
  Filter stream;
  stream.target = Target::kStream;
  EXPECT_FALSE(stream.matches(lost));
}

}  // namespace
}  // namespace annal::read
