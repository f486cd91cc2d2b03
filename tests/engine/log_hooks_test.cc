// The WriteHooks contract the stream index relies on, lost markers, and the
// directory lock.

#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include "engine/fault_fs.h"
#include "engine/format.h"
#include "tests/engine/log_fixture.h"

namespace annal::engine {
namespace {

// Records every call, in order, as text; rejects streams named "reject" and
// completes "dedupe" without writing; stamps revisions.
class RecordingHooks final : public WriteHooks {
 public:
  Decision prepare(AppendRequest& req, GlobalPosition next, AppendOutcome& outcome) override {
    std::unique_lock l(mu_);
    calls.push_back("prepare " + req.events[0].stream + " @" + std::to_string(next.value));
    if (req.events[0].stream == "gate") {
      l.unlock();
      gate_entered.set_value();
      gate_release.get_future().wait();
      l.lock();
    }
    if (req.events[0].stream == "reject") {
      outcome.status = Status(Errc::kWrongExpectedRevision, "nope");
      return Decision::kComplete;
    }
    if (req.events[0].stream == "dedupe") {
      outcome.deduplicated = true;
      return Decision::kComplete;
    }
    for (auto& e : req.events) e.revision = StreamRevision(revision_++);
    return Decision::kWrite;
  }
  void aborted(const AppendRequest& req) override {
    std::lock_guard l(mu_);
    calls.push_back("aborted " + req.events[0].stream);
  }
  void durable(GlobalPosition end) override {
    std::lock_guard l(mu_);
    calls.push_back("durable " + std::to_string(end.value));
  }
  void note(const std::string& s) {
    std::lock_guard l(mu_);
    calls.push_back(s);
  }
  std::vector<std::string> calls;
  std::promise<void> gate_entered, gate_release;

 private:
  std::mutex mu_;
  std::uint64_t revision_ = 100;
};

class LogHooksTest : public LogFixture {
 protected:
  AppendOutcome append(Log& log, RecordingHooks& hooks, const std::string& stream, int n = 1) {
    std::promise<AppendOutcome> p;
    AppendRequest req;
    for (int i = 0; i < n; ++i) req.events.push_back(make_event(0, 10, stream));
    req.done = [&](const AppendOutcome& o) {
      hooks.note("done " + stream);
      p.set_value(o);
    };
    log.append(std::move(req));
    return p.get_future().get();
  }
};

TEST_F(LogHooksTest, PrepareRunsInOrderAndDurableComesBeforeDone) {
  RecordingHooks hooks;
  LogOptions o = options();
  o.hooks = &hooks;
  auto log = open(o);
  auto a = append(*log, hooks, "a", 2);
  ASSERT_TRUE(a.status);
  EXPECT_EQ(a.first_revision, StreamRevision(100));
  auto r = append(*log, hooks, "reject");
  EXPECT_EQ(r.status.code(), Errc::kWrongExpectedRevision);
  auto d = append(*log, hooks, "dedupe");
  EXPECT_TRUE(d.status);
  EXPECT_TRUE(d.deduplicated);
  auto b = append(*log, hooks, "b");
  EXPECT_EQ(b.first_position, GlobalPosition(2));
  EXPECT_EQ(hooks.calls,
            (std::vector<std::string>{"prepare a @0", "durable 2", "done a", "prepare reject @2",
                                      "done reject", "prepare dedupe @2", "done dedupe",
                                      "prepare b @2", "durable 3", "done b"}));
  // What prepare changed is what was written.
  EXPECT_EQ(log->read(GlobalPosition(1))->revision, StreamRevision(101));
  EXPECT_EQ(log->read(GlobalPosition(2))->revision, StreamRevision(102));
}

TEST_F(LogHooksTest, AFailedGroupIsAbortedInReverseOrderBeforeItsOutcomes) {
  RecordingHooks hooks;
  FaultInjectionFileSystem ffs;
  fs_ = &ffs;
  LogOptions o = options();
  o.hooks = &hooks;
  o.prepare_segments = false;
  auto log = open(o);
  // "gate" holds the writer inside prepare until x, y, z are queued, so
  // those three form the next group, whose fdatasync (the 2nd) fails.
  ffs.fail_nth_datasync(2);
  std::vector<std::future<AppendOutcome>> f;
  for (const char* s : {"gate", "x", "y", "z"}) {
    auto p = std::make_shared<std::promise<AppendOutcome>>();
    f.push_back(p->get_future());
    AppendRequest req;
    req.events.push_back(make_event(0, 10, s));
    req.done = [p, &hooks, s](const AppendOutcome& out) {
      hooks.note(std::string("done ") + s);
      p->set_value(out);
    };
    log->append(std::move(req));
    if (std::string(s) == "gate") hooks.gate_entered.get_future().wait();
  }
  hooks.gate_release.set_value();
  EXPECT_TRUE(f[0].get().status);
  for (int i = 1; i < 4; ++i) EXPECT_EQ(f[i].get().status.code(), Errc::kWriterFailed);
  EXPECT_EQ(hooks.calls,
            (std::vector<std::string>{"prepare gate @0", "durable 1", "done gate", "prepare x @1",
                                      "prepare y @2", "prepare z @3", "aborted z", "aborted y",
                                      "aborted x", "done x", "done y", "done z"}));
}

TEST_F(LogHooksTest, LostMarkersAreReturnedByScansAsLostEntries) {
  {
    auto log = open();
    append_n(*log, 3);
  }
  // Put a repair marker (same position, lost flag, no data) in place of the last record.
  const auto used = [&] { return open()->segments().back().bytes_used; }();
  std::string bytes = slurp(seg_path(0), 0, used);
  SegmentScan scan =
      scan_segment(testing::bytes_of(bytes + std::string(4096, '\0')), GlobalPosition(0));
  ASSERT_EQ(scan.offsets.size(), 3u);
  EventRecord lost;
  lost.position = GlobalPosition(2);
  lost.stream = "orders-17";
  lost.flags = format::kFlagLost | format::kFlagCommit;
  std::string marker;
  encode(lost, marker);
  patch(seg_path(0), scan.offsets[2], marker + std::string(used - scan.offsets[2], '\0'));
  auto log = open();
  ASSERT_EQ(log->durable_end(), GlobalPosition(3));
  std::vector<RecordView> views;
  std::vector<bool> is_lost;
  ASSERT_TRUE(log->scan_forward(GlobalPosition(0), 10, [&](const RecordView& v) {
    is_lost.push_back(v.flags & format::kFlagLost);
    EXPECT_TRUE(!(v.flags & format::kFlagLost) || v.data.empty());
    return true;
  }));
  EXPECT_EQ(is_lost, (std::vector<bool>{false, false, true}));
  auto r = log->read(GlobalPosition(2));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->is_lost());
}

TEST(DirectoryLockTest, ASecondHolderIsRefusedUntilTheFirstLetsGo) {
  testing::TempDir dir;
  auto a = DirectoryLock::acquire(dir.path());
  ASSERT_TRUE(a) << a.status().to_string();
  auto b = DirectoryLock::acquire(dir.path());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.status().code(), Errc::kLocked);
  EXPECT_NE(b.status().message().find(dir.path()), std::string::npos);
  a->reset();
  EXPECT_TRUE(DirectoryLock::acquire(dir.path()));
}

}  // namespace
}  // namespace annal::engine
