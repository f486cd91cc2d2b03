// The secondary index (category, event type, tag, correlation and causation
// id) against a model: random appends with random streams, types, tags and
// ids, clean closes, kills (the index not flushed), a deleted or damaged
// index directory, and forced hash collisions. Every index read, forward and
// backward, from any position, equals a scan of the model filtered the same
// way.
#include <filesystem>
#include <random>
#include <set>

#include "tests/common/file_edit.h"
#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

namespace fs = std::filesystem;

struct ModelEvent {
  std::uint64_t position;
  std::string stream, type;
  std::vector<std::string> tags;  // sorted, distinct
  std::string correlation, causation;
};

class SecondaryIndexTest : public StoreFixture {
 protected:
  SecondaryIndexTest() { memtable_ = 64; }  // files written and merged early

  void append_random(std::mt19937_64& rng) {
    auto pick = [&](std::uint64_t n) { return rng() % n; };
    StreamAppend a;
    a.stream = pick(5) == 0 ? "plain" + std::to_string(pick(3))  // no category
                            : "cat" + std::to_string(pick(4)) + "-" + std::to_string(pick(10));
    a.expected = Rev::any();
    const std::uint64_t k = 1 + pick(3);
    for (std::uint64_t i = 0; i < k; ++i) {
      NewEvent e{make_id(next_id_++), "T" + std::to_string(pick(5)), 0, "", "{}"};
      for (std::uint64_t t = pick(4); t > 0; --t) e.tags.push_back("k" + std::to_string(pick(8)));
      if (pick(2) == 0) e.correlation_id = "c" + std::to_string(pick(5));
      if (pick(3) == 0)
        e.causation_id = "c" + std::to_string(pick(5));  // same values as correlations
      a.events.push_back(std::move(e));
    }
    const StreamAppend copy = a;
    auto out = store_->append_sync(std::move(a));
    ASSERT_TRUE(out.status.is_ok()) << out.status.to_string();
    for (std::uint64_t i = 0; i < k; ++i) {
      const NewEvent& e = copy.events[i];
      std::set<std::string> tags(e.tags.begin(), e.tags.end());
      model_.push_back(ModelEvent{out.first_position.value + i,
                                  copy.stream,
                                  e.type,
                                  {tags.begin(), tags.end()},
                                  e.correlation_id,
                                  e.causation_id});
    }
  }

  static bool model_match(const ModelEvent& e, IndexKind kind, const std::string& v) {
    switch (kind) {
      case IndexKind::kCategory: {
        const auto dash = e.stream.find('-');
        return dash != std::string::npos && e.stream.substr(0, dash) == v;
      }
      case IndexKind::kType:
        return e.type == v;
      case IndexKind::kTag:
        return std::find(e.tags.begin(), e.tags.end(), v) != e.tags.end();
      case IndexKind::kCorrelation:
        return !v.empty() && e.correlation == v;
      case IndexKind::kCausation:
        return !v.empty() && e.causation == v;
    }
    return false;
  }

  // Positions the store returns, stopping after `max` events.
  std::vector<std::uint64_t> read(IndexKind kind, const std::string& v, std::uint64_t from,
                                  Direction d, std::size_t max = SIZE_MAX) {
    std::vector<std::uint64_t> out;
    Status st = store_->visit_index(kind, v, GlobalPosition(from), d, GlobalPosition(UINT64_MAX),
                                    [&](const engine::RecordView& r) {
                                      out.push_back(r.position.value);
                                      return out.size() < max;
                                    });
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return out;
  }

  // Every key of every kind, forward from 0 and from a random position,
  // backward from the end and from a random position, and a short read.
  void check_all(std::mt19937_64& rng, const char* when) {
    const std::vector<std::pair<IndexKind, std::vector<std::string>>> keys{
        {IndexKind::kCategory, {"cat0", "cat1", "cat2", "cat3", "plain0", "nope"}},
        {IndexKind::kType, {"T0", "T1", "T2", "T3", "T4", "T9"}},
        {IndexKind::kTag, {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"}},
        {IndexKind::kCorrelation, {"c0", "c1", "c2", "c3", "c4", ""}},
        {IndexKind::kCausation, {"c0", "c1", "c2", "c3", "c4"}},
    };
    const std::uint64_t end = model_.size();
    for (const auto& [kind, values] : keys) {
      for (const auto& v : values) {
        std::vector<std::uint64_t> want;
        for (const auto& e : model_)
          if (model_match(e, kind, v)) want.push_back(e.position);
        const std::string what = std::string(when) + ": " + index_kind_name(kind) + " '" + v + "'";
        EXPECT_EQ(read(kind, v, 0, Direction::kForward), want) << what;
        const std::uint64_t from = end == 0 ? 0 : rng() % end;
        std::vector<std::uint64_t> tail;
        for (auto p : want)
          if (p >= from) tail.push_back(p);
        EXPECT_EQ(read(kind, v, from, Direction::kForward), tail) << what << " from " << from;
        std::vector<std::uint64_t> back(want.rbegin(), want.rend());
        EXPECT_EQ(read(kind, v, UINT64_MAX, Direction::kBackward), back) << what;
        std::vector<std::uint64_t> back_from;
        for (auto p : back)
          if (p <= from) back_from.push_back(p);
        EXPECT_EQ(read(kind, v, from, Direction::kBackward), back_from) << what << " from " << from;
        const std::size_t k = 1 + rng() % 3;
        std::vector<std::uint64_t> first(want.begin(), want.begin() + std::min(k, want.size()));
        EXPECT_EQ(read(kind, v, 0, Direction::kForward, k), first) << what << " first " << k;
      }
    }
  }

  void run_model(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    open();
    for (int round = 0; round < 12; ++round) {
      const int n = 20 + static_cast<int>(rng() % 60);
      for (int i = 0; i < n; ++i) ASSERT_NO_FATAL_FAILURE(append_random(rng));
      check_all(rng, "live");
      switch (rng() % 4) {
        case 0:  // clean close
          close();
          break;
        case 1:  // a kill: the index's memtable is not written out
          skip_flush_ = true;
          close();
          skip_flush_ = false;
          break;
        case 2:  // the secondary index is gone: rebuilt from the log
          close();
          fs::remove_all(fs::path(dir_.path()) / "secondary");
          break;
        default:  // stays open
          continue;
      }
      open();
      check_all(rng, "reopened");
    }
  }

  std::uint64_t next_id_ = 1;
  std::vector<ModelEvent> model_;
};

TEST_F(SecondaryIndexTest, EveryReadEqualsTheModelAcrossClosesKillsAndRebuilds) {
  run_model(1);
}

TEST_F(SecondaryIndexTest, ForcedHashCollisionsGiveTheSameAnswers) {
  // Every key of every kind hashes to one of three values.
  secondary_hash_ = [](IndexKind, std::string_view v) { return v.size() % 3; };
  run_model(2);
}

TEST_F(SecondaryIndexTest, ADamagedIndexFileIsRebuiltAndAnswersTheSame) {
  std::mt19937_64 rng(3);
  open();
  for (int i = 0; i < 300; ++i) ASSERT_NO_FATAL_FAILURE(append_random(rng));
  close();
  // Flip one byte in the middle of every secondary index file.
  int damaged = 0;
  for (const auto& f : fs::directory_iterator(fs::path(dir_.path()) / "secondary")) {
    if (f.path().filename() == "MANIFEST" || f.file_size() < 200) continue;
    test::flip_bits(f.path().string(), f.file_size() / 2, 0x10);
    ++damaged;
  }
  ASSERT_GT(damaged, 0);
  open();
  // A read may meet the damage (kCorruption, never a wrong answer) until the
  // background repair has rebuilt the file from the log; then every answer
  // is the model's.
  store_->wait_index_idle();
  check_all(rng, "after repair");
  auto st = store_->secondary_stats();
  ASSERT_TRUE(st.has_value());
  EXPECT_GT(st->repairs, 0u);
}

// The time map: the first position written at or after any time, across
// closes, kills, a deleted index and an aborted-free history written with
// chosen timestamps (7 ms apart, so each second holds ~140 events).
TEST_F(SecondaryIndexTest, SeekTimeFindsTheFirstEventAtOrAfterATime) {
  open();
  const std::int64_t base = 1'700'000'000'123'456;
  std::vector<std::int64_t> times;
  for (int batch = 0; batch < 50; ++batch) {
    std::vector<engine::EventRecord> events;
    for (int k = 0; k < 10; ++k) {
      engine::EventRecord e;
      e.id = make_id(next_id_++);
      e.stream = "t-" + std::to_string(k % 3);
      e.type.assign(1, 'T');
      e.revision = StreamRevision(static_cast<std::uint64_t>(batch * 4 + k / 3));
      e.timestamp_us = base + static_cast<std::int64_t>(times.size()) * 7'000;
      times.push_back(e.timestamp_us);
      events.push_back(e);
    }
    ASSERT_TRUE(store_->log().append_sync(std::move(events)).status.is_ok());
  }
  auto want = [&](std::int64_t t) {
    return static_cast<std::uint64_t>(std::lower_bound(times.begin(), times.end(), t) -
                                      times.begin());
  };
  std::mt19937_64 rng(5);
  auto check = [&](const char* when) {
    for (std::int64_t t : {base - 5'000'000, base, base + 1, times.back(), times.back() + 1,
                           base + 1'000'000 - base % 1'000'000, base + 2'500'000}) {
      auto got = store_->seek_time(t);
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      EXPECT_EQ(got->value, want(t)) << when << " t=" << t;
    }
    for (int i = 0; i < 200; ++i) {
      const std::int64_t t = base - 100'000 + static_cast<std::int64_t>(rng() % 3'700'000);
      auto got = store_->seek_time(t);
      ASSERT_TRUE(got.is_ok());
      EXPECT_EQ(got->value, want(t)) << when << " t=" << t;
    }
  };
  check("live");
  close();
  open();
  check("reopened");
  skip_flush_ = true;
  close();
  skip_flush_ = false;
  open();
  check("after a kill");
  close();
  fs::remove_all(fs::path(dir_.path()) / "secondary");
  open();
  check("rebuilt");
  // Events the store writes itself come later and are found after these.
  ASSERT_TRUE(append("later", Rev::any(), {1'000'000}).status.is_ok());
  auto later = store_->seek_time(times.back() + 1);
  ASSERT_TRUE(later.is_ok());
  EXPECT_EQ(later->value, times.size());
}

// The index built with one category separator is rebuilt when the node is
// started with another: its categories would otherwise miss events.
TEST_F(SecondaryIndexTest, AnotherCategorySeparatorRebuildsTheIndex) {
  open();
  for (const char* stream : {"a-b:c", "a:b-c", "x-y", "x:y"})
    ASSERT_TRUE(store_
                    ->append_sync(StreamAppend{
                        stream, Rev::any(), {NewEvent{make_id(next_id_++), "T", 0, "", "{}"}}})
                    .status.is_ok());
  EXPECT_EQ(read(IndexKind::kCategory, "a", 0, Direction::kForward),
            (std::vector<std::uint64_t>{0}));
  close();
  StoreOptions o = options();
  o.category_separator = ':';
  auto s = Store::open(o);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  store_ = std::move(s).value();
  EXPECT_EQ(read(IndexKind::kCategory, "a", 0, Direction::kForward),
            (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(read(IndexKind::kCategory, "x", 0, Direction::kForward),
            (std::vector<std::uint64_t>{3}));
  EXPECT_EQ(read(IndexKind::kCategory, "a-b", 0, Direction::kForward),
            (std::vector<std::uint64_t>{0}));
  close();
  open();  // back to '-': rebuilt again
  EXPECT_EQ(read(IndexKind::kCategory, "x", 0, Direction::kForward),
            (std::vector<std::uint64_t>{2}));
}

TEST_F(SecondaryIndexTest, OffMeansNoFilesAndAClearError) {
  open();
  store_.reset();
  fs::remove_all(fs::path(dir_.path()) / "secondary");
  StoreOptions o = options();
  o.secondary_index = false;
  auto s = Store::open(o);
  ASSERT_TRUE(s.is_ok());
  Status st =
      (*s)->visit_index(IndexKind::kType, "T", GlobalPosition(0), Direction::kForward,
                        GlobalPosition(UINT64_MAX), [](const engine::RecordView&) { return true; });
  EXPECT_EQ(st.code(), Errc::kInvalidArgument);
  EXPECT_FALSE(fs::exists(fs::path(dir_.path()) / "secondary"));
  EXPECT_FALSE((*s)->secondary_stats().has_value());
}

}  // namespace
}  // namespace annal::index::testing
