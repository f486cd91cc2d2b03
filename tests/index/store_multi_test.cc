// Multi-stream appends, queries and append conditions (Dynamic Consistency
// Boundaries) in the store, against docs/semantics.md: all or nothing, every
// failed stream named with its actual revision, retries by event id, the
// condition checked against durable events and those of the same group.

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

NewEvent tagged(std::uint64_t n, std::string type, std::vector<std::string> tags) {
  NewEvent e{make_id(n), std::move(type), 0, "", "{}"};
  e.tags = std::move(tags);
  return e;
}

StreamAppend part(std::string stream, Rev expected, std::vector<NewEvent> events) {
  return StreamAppend{std::move(stream), expected, std::move(events)};
}

Query query(std::vector<QueryItem> items) {
  return Query{std::move(items)};
}

class StoreMultiTest : public StoreFixture {
 protected:
  void SetUp() override { open(); }

  AppendOutcome multi(std::vector<StreamAppend> streams,
                      std::optional<AppendCondition> condition = std::nullopt) {
    return store_->append_multi_sync(MultiAppend{std::move(streams), std::move(condition)});
  }
  // Positions of the events matching `q`, read forward (or backward) from `from`.
  std::vector<std::uint64_t> matching(const Query& q, std::uint64_t from = 0,
                                      Direction dir = Direction::kForward) {
    std::vector<std::uint64_t> out;
    Status st = store_->visit_query(q, GlobalPosition(from), dir, GlobalPosition(UINT64_MAX),
                                    [&](const engine::RecordView& v) {
                                      out.push_back(v.position.value);
                                      return true;
                                    });
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return out;
  }
  std::uint64_t end() { return store_->log().durable_end().value; }
};

TEST_F(StoreMultiTest, WritesEveryStreamContiguouslyWithItsOwnRevisions) {
  ASSERT_TRUE(append("a", Rev::any(), {1, 2}).status);
  auto o = multi({part("a", Rev::exact(1), {tagged(3, "A", {}), tagged(4, "A", {})}),
                  part("b", Rev::no_stream(), {tagged(5, "B", {})})});
  ASSERT_TRUE(o.status) << o.status.to_string();
  EXPECT_EQ(o.first_position, GlobalPosition(2));
  EXPECT_EQ(o.count, 3u);
  ASSERT_EQ(o.streams.size(), 2u);
  EXPECT_EQ(o.streams[0].first_revision, StreamRevision(2));
  EXPECT_EQ(o.streams[0].count, 2u);
  EXPECT_EQ(o.streams[1].first_revision, StreamRevision(0));
  EXPECT_EQ(o.streams[1].count, 1u);
  EXPECT_EQ(ids_of("a"), (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(ids_of("b"), (std::vector<std::uint64_t>{5}));
  EXPECT_EQ(store_->log().read(GlobalPosition(4))->stream, "b");
}

TEST_F(StoreMultiTest, AFailedExpectationWritesNothingAndNamesEveryFailedStream) {
  ASSERT_TRUE(append("a", Rev::any(), {1, 2}).status);
  const auto before = end();
  auto o = multi({part("a", Rev::exact(0), {tagged(3, "A", {})}),
                  part("b", Rev::any(), {tagged(4, "B", {})}),
                  part("c", Rev::stream_exists(), {tagged(5, "C", {})})});
  EXPECT_EQ(o.status.code(), Errc::kWrongExpectedRevision);
  EXPECT_NE(o.status.message().find("stream 'a': expected revision 0, actual 1"), std::string::npos)
      << o.status.message();
  EXPECT_NE(o.status.message().find("stream 'c'"), std::string::npos) << o.status.message();
  EXPECT_EQ(o.status.message().find("stream 'b'"), std::string::npos) << o.status.message();
  ASSERT_EQ(o.streams.size(), 3u);
  EXPECT_TRUE(o.streams[0].failed);
  EXPECT_EQ(o.streams[0].actual_revision, std::optional<StreamRevision>(StreamRevision(1)));
  EXPECT_FALSE(o.streams[1].failed);
  EXPECT_TRUE(o.streams[2].failed);
  EXPECT_EQ(o.streams[2].actual_revision, std::nullopt);
  EXPECT_EQ(end(), before);
  EXPECT_EQ(ids_of("b"), std::vector<std::uint64_t>{});
}

TEST_F(StoreMultiTest, StreamsWithoutEventsAreCheckedNotWritten) {
  ASSERT_TRUE(append("limits", Rev::any(), {1}).status);
  auto ok = multi({part("limits", Rev::exact(0), {}), part("x", Rev::any(), {tagged(2, "X", {})})});
  ASSERT_TRUE(ok.status) << ok.status.to_string();
  EXPECT_EQ(ok.streams[0].count, 0u);
  EXPECT_EQ(ids_of("limits"), std::vector<std::uint64_t>{1});
  auto refused =
      multi({part("limits", Rev::no_stream(), {}), part("x", Rev::any(), {tagged(3, "X", {})})});
  EXPECT_EQ(refused.status.code(), Errc::kWrongExpectedRevision);
  EXPECT_TRUE(refused.streams[0].failed);
  EXPECT_EQ(ids_of("x"), std::vector<std::uint64_t>{2});
}

TEST_F(StoreMultiTest, BadRequestsNameWhatIsWrong) {
  auto twice = multi(
      {part("a", Rev::any(), {tagged(1, "A", {})}), part("a", Rev::any(), {tagged(2, "A", {})})});
  EXPECT_EQ(twice.status.code(), Errc::kBadRequest);
  EXPECT_NE(twice.status.message().find("'a' twice"), std::string::npos);
  auto checks_nothing =
      multi({part("a", Rev::any(), {}), part("b", Rev::any(), {tagged(1, "B", {})})});
  EXPECT_EQ(checks_nothing.status.code(), Errc::kBadRequest);
  auto no_events = multi({part("a", Rev::no_stream(), {})});
  EXPECT_EQ(no_events.status.code(), Errc::kBadRequest);
  auto same_id = multi(
      {part("a", Rev::any(), {tagged(1, "A", {})}), part("b", Rev::any(), {tagged(1, "B", {})})});
  EXPECT_EQ(same_id.status.code(), Errc::kBadRequest);
  EXPECT_NE(same_id.status.message().find("same event id"), std::string::npos);
  auto empty_query =
      multi({part("a", Rev::any(), {tagged(1, "A", {})})}, AppendCondition{Query{}, std::nullopt});
  EXPECT_EQ(empty_query.status.code(), Errc::kBadRequest);
  auto empty_tag = multi({part("a", Rev::any(), {tagged(1, "A", {})})},
                         AppendCondition{query({{{}, {""}}}), std::nullopt});
  EXPECT_EQ(empty_tag.status.code(), Errc::kBadRequest);
  EXPECT_EQ(end(), 0u);
  // `after` must be a durable position.
  ASSERT_TRUE(append("a", Rev::any(), {9}).status);
  auto beyond = multi({part("a", Rev::any(), {tagged(10, "A", {})})},
                      AppendCondition{query({{{"A"}, {}}}), GlobalPosition(1)});
  EXPECT_EQ(beyond.status.code(), Errc::kBadRequest) << beyond.status.to_string();
}

TEST_F(StoreMultiTest, ARetryIsAnsweredWithTheFirstOutcomeAlsoAfterARestart) {
  auto make = [] {
    return std::vector<StreamAppend>{
        part("a", Rev::no_stream(), {tagged(1, "A", {"t"}), tagged(2, "A", {"t"})}),
        part("b", Rev::any(), {tagged(3, "B", {"t"})})};
  };
  const AppendCondition guard{query({{{}, {"t"}}}), std::nullopt};
  auto first = multi(make(), guard);
  ASSERT_TRUE(first.status) << first.status.to_string();
  ASSERT_TRUE(append("other", Rev::any(), {4}).status);
  for (int round = 0; round < 2; ++round) {
    // The condition would refuse it now (its own events match), and "a" is
    // no longer absent: still the retry is the first append's success.
    auto retry = multi(make(), guard);
    ASSERT_TRUE(retry.status) << round << " " << retry.status.to_string();
    EXPECT_TRUE(retry.deduplicated);
    EXPECT_EQ(retry.first_position, first.first_position);
    EXPECT_EQ(retry.count, 3u);
    EXPECT_EQ(retry.streams[1].first_revision, StreamRevision(0));
    close();
    open();
  }
  EXPECT_EQ(end(), 4u);
  // Part of it again, with new events beside: not a retry.
  auto mixed = multi({part("a", Rev::no_stream(), {tagged(1, "A", {}), tagged(2, "A", {})}),
                      part("c", Rev::any(), {tagged(5, "C", {})})});
  EXPECT_EQ(mixed.status.code(), Errc::kWrongExpectedRevision);
  EXPECT_EQ(end(), 4u);
}

TEST_F(StoreMultiTest, QueriesMatchTypesAnyOfAndTagsAllOfCombinedWithOr) {
  // position: type, tags
  ASSERT_TRUE(multi({part("s", Rev::any(),
                          {tagged(1, "Enrolled", {"course:1", "student:1"}),  // 0
                           tagged(2, "Enrolled", {"course:1", "student:2"}),  // 1
                           tagged(3, "Enrolled", {"course:2", "student:1"}),  // 2
                           tagged(4, "Dropped", {"course:1", "student:1"}),   // 3
                           tagged(5, "CourseDefined", {"course:1"}),          // 4
                           tagged(6, "Renamed", {})})})                       // 5
                  .status);
  EXPECT_EQ(matching(query({{{}, {"course:1"}}})), (std::vector<std::uint64_t>{0, 1, 3, 4}));
  EXPECT_EQ(matching(query({{{"Enrolled"}, {"course:1"}}})), (std::vector<std::uint64_t>{0, 1}));
  EXPECT_EQ(matching(query({{{"Enrolled", "Dropped"}, {"course:1", "student:1"}}})),
            (std::vector<std::uint64_t>{0, 3}));
  EXPECT_EQ(matching(query({{{"CourseDefined"}, {}}, {{}, {"student:1"}}})),
            (std::vector<std::uint64_t>{0, 2, 3, 4}));
  EXPECT_EQ(matching(query({{{}, {}}})), (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(matching(query({{{}, {"course:1"}}}), 2), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(matching(query({{{}, {"course:1"}}}), UINT64_MAX, Direction::kBackward),
            (std::vector<std::uint64_t>{4, 3, 1, 0}));
  EXPECT_EQ(matching(query({{{}, {"course:1"}}, {{"Renamed"}, {}}}), 3, Direction::kBackward),
            (std::vector<std::uint64_t>{3, 1, 0}));
  EXPECT_EQ(matching(query({{{}, {"nowhere"}}})), std::vector<std::uint64_t>{});
}

// Long posting lists: the merge of several keys' candidates is stepwise.
TEST_F(StoreMultiTest, QueriesOverManyEventsMergeKeysInLogOrder) {
  std::vector<std::uint64_t> want_fwd;
  for (std::uint64_t i = 0; i < 1500; ++i) {
    std::vector<std::string> tags;
    if (i % 3 == 0) tags.push_back("three");
    if (i % 5 == 0) tags.push_back("five");
    if (i % 3 == 0 || i % 5 == 0) want_fwd.push_back(i);
    StreamAppend a{"s-" + std::to_string(i % 7), Rev::any(), {tagged(i + 1, "T", tags)}};
    ASSERT_TRUE(store_->append_sync(std::move(a)).status);
  }
  const Query q = query({{{}, {"three"}}, {{}, {"five"}}});
  EXPECT_EQ(matching(q), want_fwd);
  std::vector<std::uint64_t> want_back(want_fwd.rbegin(), want_fwd.rend());
  EXPECT_EQ(matching(q, UINT64_MAX, Direction::kBackward), want_back);
  std::vector<std::uint64_t> from700;
  for (auto p : want_fwd)
    if (p >= 700) from700.push_back(p);
  EXPECT_EQ(matching(q, 700), from700);
  // Both tags: the intersection of two long lists, stepwise, both ways.
  std::vector<std::uint64_t> fifteen;
  for (std::uint64_t i = 0; i < 1500; i += 15) fifteen.push_back(i);
  const Query both = query({{{}, {"three", "five"}}});
  EXPECT_EQ(matching(both), fifteen);
  EXPECT_EQ(matching(both, UINT64_MAX, Direction::kBackward),
            std::vector<std::uint64_t>(fifteen.rbegin(), fifteen.rend()));
}

TEST_F(StoreMultiTest, TheConditionRefusesWhenAMatchingEventFollowsAfter) {
  const Query course = query({{{"Enrolled"}, {"course:7"}}});
  auto enrol = [&](std::uint64_t id, std::optional<GlobalPosition> after) {
    return multi(
        {part("student-" + std::to_string(id), Rev::any(), {tagged(id, "Enrolled", {"course:7"})})},
        AppendCondition{course, after});
  };
  // Without `after`: a uniqueness guard.
  ASSERT_TRUE(append("noise", Rev::any(), {100}).status);
  auto first = enrol(1, std::nullopt);
  ASSERT_TRUE(first.status) << first.status.to_string();
  auto second = enrol(2, std::nullopt);
  EXPECT_EQ(second.status.code(), Errc::kAppendConditionFailed);
  EXPECT_EQ(second.conflict_position, first.first_position);
  // With `after` at the head the client read: passes until someone else appends.
  const GlobalPosition head(end() - 1);
  auto third = enrol(3, head);
  ASSERT_TRUE(third.status) << third.status.to_string();
  auto stale = enrol(4, head);
  EXPECT_EQ(stale.status.code(), Errc::kAppendConditionFailed);
  EXPECT_EQ(stale.conflict_position, third.first_position);
  // Unrelated events after `after` do not refuse it.
  ASSERT_TRUE(multi({part("other", Rev::any(), {tagged(5, "Enrolled", {"course:8"})})}).status);
  ASSERT_TRUE(append("noise", Rev::any(), {101}).status);
  EXPECT_TRUE(enrol(6, third.first_position).status);
}

// Two conditional appends that exclude each other, in one group commit: the
// second is checked against the first, prepared but not yet durable.
TEST_F(StoreMultiTest, SameGroupConflictsAcknowledgeExactlyOne) {
  std::promise<void> entered, release;
  std::atomic<int> calls{0};
  std::vector<std::uint64_t> durable_at_check;  // writer thread, read after
  close();
  before_prepare_ = [&] {
    if (calls.fetch_add(1) == 0) {
      entered.set_value();
      release.get_future().wait();
    } else {
      durable_at_check.push_back(store_->log().durable_end().value);
    }
  };
  open();
  auto blocker = std::async(std::launch::async, [&] { return append("gate", Rev::any(), {1}); });
  entered.get_future().wait();
  const AppendCondition unique{query({{{}, {"username:ann"}}}), std::nullopt};
  std::vector<std::future<AppendOutcome>> f;
  for (std::uint64_t id : {10, 11}) {
    auto p = std::make_shared<std::promise<AppendOutcome>>();
    f.push_back(p->get_future());
    store_->append_multi(MultiAppend{{part("user-" + std::to_string(id), Rev::no_stream(),
                                           {tagged(id, "Registered", {"username:ann"})})},
                                     unique},
                         [p](const AppendOutcome& o) { p->set_value(o); });
  }
  // Both are queued behind the held writer: it takes them as one group.
  release.set_value();
  ASSERT_TRUE(blocker.get().status);
  auto a = f[0].get();
  auto b = f[1].get();
  ASSERT_TRUE(a.status) << a.status.to_string();
  EXPECT_EQ(b.status.code(), Errc::kAppendConditionFailed) << b.status.to_string();
  EXPECT_EQ(b.conflict_position, a.first_position);
  // The second was checked while the first was not durable yet.
  ASSERT_EQ(durable_at_check.size(), 2u);
  EXPECT_LE(durable_at_check[1], a.first_position.value);
  EXPECT_EQ(matching(unique.fail_if_events_match), std::vector<std::uint64_t>{1});
}

// Many threads race to claim the same names, each append guarded by "no
// event with this name's tag" and many in flight at once: checked before
// queuing against the durable log, then on the writer against what became
// durable or was prepared since. Every name ends up claimed exactly once.
TEST_F(StoreMultiTest, RacingUniquenessGuardsClaimEachNameOnce) {
  constexpr int kThreads = 6, kNames = 150;
  std::atomic<std::uint64_t> next_id{1};
  std::atomic<int> claimed{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<AppendOutcome>> inflight;
      for (int n = 0; n < kNames; ++n) {
        const int name = (n * 7 + t * 13) % kNames;
        const std::string tag = "name:" + std::to_string(name);
        auto p = std::make_shared<std::promise<AppendOutcome>>();
        inflight.push_back(p->get_future());
        store_->append_multi(
            MultiAppend{{part("claim-" + std::to_string(t) + "-" + std::to_string(n), Rev::any(),
                              {tagged(next_id++, "Claimed", {tag})})},
                        AppendCondition{query({{{"Claimed"}, {tag}}}), std::nullopt}},
            [p](const AppendOutcome& o) { p->set_value(o); });
        if (inflight.size() >= 16) {
          auto o = inflight.front().get();
          inflight.erase(inflight.begin());
          (o.status.is_ok() ? claimed : refused)++;
        }
      }
      for (auto& f : inflight) (f.get().status.is_ok() ? claimed : refused)++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(claimed.load(), kNames);
  EXPECT_EQ(refused.load(), kThreads * kNames - kNames);
  for (int name = 0; name < kNames; ++name)
    EXPECT_EQ(matching(query({{{}, {"name:" + std::to_string(name)}}})).size(), 1u) << name;
}

}  // namespace
}  // namespace annal::index::testing
