// Scavenge in the store (docs/storage-format.md, "Scavenged segments";
// docs/operations.md, "Scavenge"): removed events leave sealed segments and
// their space comes back; every surviving event stays readable at its
// position with its bytes, through the stream index, the secondary index and
// the log, across reopens; relaxing the rules afterwards does not bring the
// scavenged events back; and a crash at every step of a scavenge (the
// fault-injecting file system's freeze, then a power loss) leaves either the
// old or the new segment, never a lost surviving event.

#include <gtest/gtest.h>

#include <map>

#include "engine/fault_fs.h"
#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

class StoreScavengeTest : public StoreFixture {
 protected:
  void SetUp() override {
    segment_size_ = 64u << 10;
    open();
  }
  void TearDown() override { close(); }  // before a fault-injecting fs goes

  // 3 streams x 60 events of ~700 bytes (several 64 KiB segments), then the
  // rules: a-1 soft-deleted, b-1 keeps its newest 5, c-1 untouched.
  void fill() {
    const std::string pad(700, 'x');
    for (int i = 0; i < 60; ++i)
      for (const char* s : {"a-1", "b-1", "c-1"}) {
        auto o = append(s, Rev::any(), {next_id_++}, "{\"p\":\"" + pad + std::to_string(i) + "\"}");
        ASSERT_TRUE(o.status) << o.status.to_string();
      }
    ASSERT_TRUE(store_->delete_stream_sync("a-1", Rev::any(), false).status);
    ASSERT_TRUE(store_->set_metadata_sync("b-1", Rev::any(), R"({"max_count":5})").status);
  }
  // Every event a read in log order returns: position -> data.
  std::map<std::uint64_t, std::string> visible() {
    std::map<std::uint64_t, std::string> out;
    const Removal rm = store_->removal();
    EXPECT_TRUE(
        store_->log().scan_forward(GlobalPosition(0), UINT64_MAX, [&](const engine::RecordView& v) {
          if (!rm.removed(v)) out.emplace(v.position.value, std::string(v.data));
          return true;
        }));
    return out;
  }
  std::vector<std::uint64_t> revisions(const std::string& stream) {
    std::vector<std::uint64_t> out;
    auto r = store_->read_stream(stream, StreamRevision(0), 1000, Direction::kForward);
    if (!r) return {UINT64_MAX};
    for (const auto& e : *r) out.push_back(e.revision.value);
    return out;
  }
  std::uint64_t log_bytes() {
    std::uint64_t b = 0;
    for (const auto& s : store_->log().segments()) b += s.bytes_allocated;
    return b;
  }
  // The surviving events, each read at its position with its data, and
  // every read path as before.
  void expect_survivors(const std::map<std::uint64_t, std::string>& want,
                        const std::vector<std::uint64_t>& b_revs, const char* when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(visible(), want);
    for (const auto& [pos, data] : want) {
      auto r = store_->log().read(GlobalPosition(pos));
      ASSERT_TRUE(r) << "position " << pos << ": " << r.status().to_string();
      EXPECT_EQ(r->data, data) << "position " << pos;
    }
    EXPECT_EQ(revisions("a-1"), std::vector<std::uint64_t>{UINT64_MAX});  // not found
    EXPECT_EQ(revisions("b-1"), b_revs);
    EXPECT_EQ(revisions("c-1").size(), 60u);
    std::vector<std::uint64_t> cat;
    EXPECT_TRUE(store_->visit_index(IndexKind::kCategory, "b", GlobalPosition(0),
                                    Direction::kForward, GlobalPosition(UINT64_MAX),
                                    [&](const engine::RecordView& v) {
                                      cat.push_back(v.revision.value);
                                      return true;
                                    }));
    EXPECT_EQ(cat, b_revs);
  }
  std::uint64_t next_id_ = 1;
  engine::FaultInjectionFileSystem ffs_;  // outlives the store: TearDown closes it
};

TEST_F(StoreScavengeTest, FreesTheSpaceOfRemovedEventsAndKeepsEverySurvivorAtItsPosition) {
  fill();
  const auto want = visible();
  const std::vector<std::uint64_t> b_revs{55, 56, 57, 58, 59};
  expect_survivors(want, b_revs, "before");
  const std::uint64_t before = log_bytes();
  auto r = store_->scavenge({});
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_GT(r->segments_rewritten, 0u);
  EXPECT_GT(r->events_removed, 60u);  // most of a-1's 60 and b-1's 55, in sealed segments
  EXPECT_EQ(r->log_bytes_before, before);
  EXPECT_LT(r->log_bytes_after, before * 3 / 4);
  EXPECT_EQ(log_bytes(), r->log_bytes_after);
  expect_survivors(want, b_revs, "after");
  // Again: nothing more to do (resumable, idempotent).
  auto again = store_->scavenge({});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->segments_rewritten, 0u);
  close();
  open();
  expect_survivors(want, b_revs, "reopened");
  // Appends continue; the soft-deleted stream's revisions continue.
  auto o = append("a-1", Rev::no_stream(), {9999});
  ASSERT_TRUE(o.status) << o.status.to_string();
  EXPECT_EQ(o.first_revision.value, 60u);
}

TEST_F(StoreScavengeTest, RelaxedRulesBringBackOnlyWhatNoScavengeRemoved) {
  fill();
  ASSERT_TRUE(store_->scavenge({}));
  ASSERT_TRUE(store_->set_metadata_sync("b-1", Rev::any(), R"({})").status);
  const auto revs = revisions("b-1");
  // Events in the newest (never scavenged) segment come back; scavenged ones
  // stay gone; what comes back is in revision order and ends at the head.
  ASSERT_GE(revs.size(), 5u);
  EXPECT_LT(revs.size(), 60u);
  EXPECT_EQ(revs.back(), 59u);
  for (std::size_t i = 1; i < revs.size(); ++i) EXPECT_EQ(revs[i], revs[i - 1] + 1);
}

TEST_F(StoreScavengeTest, ThrottleHoldsTheWriteBudget) {
  fill();
  auto r = store_->scavenge(ScavengeOptions{.bytes_per_second = 100u << 10, .cancelled = {}});
  ASSERT_TRUE(r);
  ASSERT_GT(r->bytes_written, 40u << 10);
  // At most the budget.
  EXPECT_GE(r->seconds, static_cast<double>(r->bytes_written) / (100u << 10) * 0.9);
}

TEST_F(StoreScavengeTest, ACrashAtEveryStepLosesNoSurvivingEvent) {
  engine::FaultInjectionFileSystem& ffs = ffs_;
  close();
  fs_ = &ffs;
  open();
  fill();
  const auto want = visible();
  const std::vector<std::uint64_t> b_revs{55, 56, 57, 58, 59};
  const std::uint64_t full = log_bytes();
  std::uint64_t step = 1;
  for (; step < 500; ++step) {
    ffs.freeze_after(step, step);
    auto r = store_->scavenge({});
    const bool died = ffs.frozen();
    close();
    ASSERT_TRUE(ffs.crash(step).is_ok());
    open();
    expect_survivors(want, b_revs, ("crash at step " + std::to_string(step)).c_str());
    if (HasFailure()) break;
    if (!died) {
      ASSERT_TRUE(r) << r.status().to_string();
      break;  // the scavenge finished before the step: every step was tried
    }
  }
  EXPECT_GT(step, 10u);
  // Finishing it (resumed over what is left) frees the space.
  auto done = store_->scavenge({});
  ASSERT_TRUE(done) << done.status().to_string();
  EXPECT_LT(log_bytes(), full * 3 / 4);
  expect_survivors(want, b_revs, "finished");
}

}  // namespace
}  // namespace annal::index::testing
