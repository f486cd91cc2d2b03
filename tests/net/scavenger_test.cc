// The node's scavenger (net/scavenger.h) in-process: a scheduled run, a run
// started because free space fell below the threshold, requests answered by
// the next run, and a stop answering what still waits.
#include "net/scavenger.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "engine/fault_fs.h"
#include "index/store.h"
#include "tests/common/temp_dir.h"

namespace annal::net::detail {
namespace {

using namespace std::chrono_literals;

class ScavengerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    index::StoreOptions o;
    o.log.dir = dir_.path();
    o.log.segment_size = 64u << 10;
    o.log.min_free_bytes = 0;
    o.log.fs = &fs_;
    auto s = index::Store::open(o);
    ASSERT_TRUE(s) << s.status().to_string();
    store_ = std::move(s).value();
    const std::string pad(700, 'x');
    for (int i = 0; i < 200; ++i)
      for (const char* s : {"gone-1", "kept-1"}) {
        index::NewEvent e{EventId::random(), "E", 0, "", pad};
        ASSERT_TRUE(
            store_->append_sync(index::StreamAppend{s, ExpectedRevision::any(), {e}}).status);
      }
    ASSERT_TRUE(store_->delete_stream_sync("gone-1", ExpectedRevision::any(), false).status);
    before_ = bytes();
  }
  std::uint64_t bytes() {
    std::uint64_t b = 0;
    for (const auto& s : store_->log().segments()) b += s.bytes_allocated;
    return b;
  }
  // Waits up to 10 s for the segments to shrink (a run happened).
  bool shrinks() {
    for (int i = 0; i < 500; ++i) {
      if (bytes() < before_) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  test::TempDir dir_{"annal-scavenger"};
  engine::FaultInjectionFileSystem fs_;
  std::unique_ptr<index::Store> store_;
  std::uint64_t before_ = 0;
};

TEST_F(ScavengerTest, RunsOnItsSchedule) {
  Scavenger s(*store_, ScavengerOptions{.bytes_per_second = 0, .interval = 1s});
  EXPECT_TRUE(shrinks());
}

TEST_F(ScavengerTest, RunsWhenFreeSpaceFallsBelowTheThreshold) {
  fs_.set_free_bytes(10u << 20);
  Scavenger quiet(
      *store_,
      ScavengerOptions{
          .bytes_per_second = 0, .free_below = 5u << 20, .free_check = 1s, .free_min_gap = 0s});
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(bytes(), before_) << "10 MiB free is above the 5 MiB threshold";
  fs_.set_free_bytes(1u << 20);
  EXPECT_TRUE(shrinks());
}

TEST_F(ScavengerTest, ARequestIsAnsweredByTheNextRunAndAStopAnswersTheRest) {
  auto s = std::make_unique<Scavenger>(*store_, ScavengerOptions{.bytes_per_second = 0});
  std::promise<Result<index::ScavengeReport>> p;
  s->request([&](const Result<index::ScavengeReport>& r) { p.set_value(r); });
  auto r = p.get_future().get();
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_GT(r->events_removed, 0u);
  EXPECT_LT(bytes(), before_);
  s->stop();
  std::promise<Errc> late;
  s->request([&](const Result<index::ScavengeReport>& r2) { late.set_value(r2.status().code()); });
  EXPECT_EQ(late.get_future().get(), Errc::kShuttingDown);
}

}  // namespace
}  // namespace annal::net::detail
