// Multi-stream and conditional appends against an in-memory reference model
// (seeded, random), and crash atomicity of a multi-stream append at every
// point of its write (the fault-injecting file system, torn as a prefix or as
// a random set of sectors): after recovery, all of its events or none.
//   ANNAL_MODEL_OPS=N   operations of the model test (default 500)
//   ANNAL_MODEL_SEED=S  seed (default 1); a failure prints the seed and step.

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/fault_fs.h"
#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

struct ModelEvent {
  std::string stream;
  std::string type;
  std::vector<std::string> tags;
};

// The reference: the log as a list; heads by counting.
class Model {
 public:
  std::optional<std::uint64_t> head(const std::string& s) const {
    auto it = heads_.find(s);
    return it == heads_.end() ? std::nullopt : std::optional<std::uint64_t>(it->second);
  }
  std::uint64_t size() const { return log_.size(); }
  const std::vector<ModelEvent>& log() const { return log_; }
  static bool holds(const Rev& e, std::optional<std::uint64_t> h) {
    switch (e.kind) {
      case Rev::Kind::kAny:
        return true;
      case Rev::Kind::kNoStream:
        return !h;
      case Rev::Kind::kStreamExists:
        return h.has_value();
      case Rev::Kind::kExact:
        return h && *h == e.revision.value;
    }
    return false;
  }
  static bool matches(const Query& q, const ModelEvent& e) {
    return query_matches(q, e.type, e.tags);
  }
  std::optional<std::uint64_t> first_match(const Query& q, std::uint64_t from) const {
    for (std::uint64_t p = from; p < log_.size(); ++p)
      if (matches(q, log_[p])) return p;
    return std::nullopt;
  }
  void apply(const std::vector<ModelEvent>& events) {
    for (const auto& e : events) {
      log_.push_back(e);
      auto it = heads_.find(e.stream);
      heads_[e.stream] = it == heads_.end() ? 0 : it->second + 1;
    }
  }

 private:
  std::vector<ModelEvent> log_;
  std::map<std::string, std::uint64_t> heads_;
};

class StoreMultiModelTest : public StoreFixture {};

TEST_F(StoreMultiModelTest, EveryOutcomeAndQueryEqualsTheModel) {
  const std::uint64_t ops = test::env_u64("ANNAL_MODEL_OPS", 500);
  const std::uint64_t seed = test::env_u64("ANNAL_MODEL_SEED", 1);
  std::mt19937_64 rng(seed);
  memtable_ = 16;  // index files, merges and the memtable all take part
  secondary_hash_ = [](IndexKind k, std::string_view v) {
    return secondary_key_hash(k, v) % 5;  // collisions: every candidate is checked
  };
  open();
  Model model;
  const std::vector<std::string> names{"a-1", "a-2", "b-1", "b-2", "c-1"};
  const std::vector<std::string> types{"Opened", "Moved", "Closed"};
  const std::vector<std::string> tags{"k:1", "k:2", "k:3", "x"};
  auto pick = [&](std::uint64_t n) { return static_cast<std::uint64_t>(rng() % n); };
  auto random_query = [&] {
    Query q;
    for (std::uint64_t i = 0, n = 1 + pick(2); i < n; ++i) {
      QueryItem item;
      if (pick(3)) item.types.push_back(types[pick(types.size())]);
      if (pick(4) == 0) item.types.push_back(types[pick(types.size())]);
      for (std::uint64_t t = 0, m = pick(3); t < m; ++t)
        item.tags.push_back(tags[pick(tags.size())]);
      q.items.push_back(std::move(item));
    }
    return q;
  };
  std::uint64_t next_id = 1;
  struct Sent {
    MultiAppend request;
    AppendOutcome outcome;
  };
  std::vector<Sent> written;

  for (std::uint64_t step = 0; step < ops; ++step) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " step " << step);
    const std::uint64_t what = pick(100);
    if (what < 8 && !written.empty()) {
      // A retry of an earlier written append: its first outcome again.
      const Sent& s = written[pick(written.size())];
      auto got = store_->append_multi_sync(s.request);
      ASSERT_TRUE(got.status) << got.status.to_string();
      EXPECT_TRUE(got.deduplicated);
      EXPECT_EQ(got.first_position, s.outcome.first_position);
      EXPECT_EQ(got.count, s.outcome.count);
    } else if (what < 70) {
      MultiAppend m;
      std::vector<std::size_t> order(names.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng);
      const std::uint64_t parts = 1 + pick(3);
      std::vector<ModelEvent> events;
      bool holds = true;
      bool any_events = false;
      for (std::uint64_t p = 0; p < parts; ++p) {
        const std::string& s = names[order[p]];
        const auto h = model.head(s);
        Rev e;
        switch (pick(5)) {
          case 0:
            e = Rev::any();
            break;
          case 1:
            e = Rev::no_stream();
            break;
          case 2:
            e = Rev::stream_exists();
            break;
          case 3:
            e = Rev::exact(h ? *h : 0);
            break;
          default:
            e = h ? Rev::exact(pick(2) ? *h : *h + 1) : Rev::no_stream();
            break;
        }
        std::uint64_t n = e.kind == Rev::Kind::kAny ? 1 + pick(3) : pick(3);
        if (p + 1 == parts && !any_events && n == 0) n = 1;
        StreamAppend a{s, e, {}};
        for (std::uint64_t i = 0; i < n; ++i) {
          NewEvent ev{make_id(next_id++), types[pick(types.size())], 0, "", "{}"};
          for (std::uint64_t t = 0, k = pick(3); t < k; ++t)
            ev.tags.push_back(tags[pick(tags.size())]);
          std::vector<std::string> sorted = ev.tags;
          std::sort(sorted.begin(), sorted.end());
          sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
          events.push_back(ModelEvent{s, ev.type, sorted});
          a.events.push_back(std::move(ev));
        }
        any_events |= n > 0;
        holds &= Model::holds(e, h);
        m.streams.push_back(std::move(a));
      }
      std::optional<std::uint64_t> conflict;
      if (pick(2)) {
        AppendCondition c{random_query(), std::nullopt};
        if (model.size() > 0 && pick(3)) c.after = GlobalPosition(pick(model.size()));
        conflict = model.first_match(c.fail_if_events_match, c.after ? c.after->value + 1 : 0);
        m.condition = std::move(c);
      }
      MultiAppend copy = m;
      auto got = store_->append_multi_sync(std::move(m));
      if (!holds) {
        ASSERT_EQ(got.status.code(), Errc::kWrongExpectedRevision) << got.status.to_string();
        ASSERT_EQ(got.streams.size(), copy.streams.size());
        for (std::size_t p = 0; p < copy.streams.size(); ++p) {
          const auto h = model.head(copy.streams[p].stream);
          EXPECT_EQ(got.streams[p].failed, !Model::holds(copy.streams[p].expected, h)) << p;
          if (got.streams[p].failed) {
            EXPECT_EQ(got.streams[p].actual_revision.has_value(), h.has_value());
          }
        }
      } else if (conflict) {
        ASSERT_EQ(got.status.code(), Errc::kAppendConditionFailed) << got.status.to_string();
        EXPECT_EQ(got.conflict_position, GlobalPosition(*conflict));
      } else {
        ASSERT_TRUE(got.status) << got.status.to_string();
        EXPECT_FALSE(got.deduplicated);
        EXPECT_EQ(got.first_position.value, model.size());
        EXPECT_EQ(got.count, events.size());
        for (std::size_t p = 0; p < copy.streams.size(); ++p) {
          if (copy.streams[p].events.empty()) continue;
          const auto h = model.head(copy.streams[p].stream);
          EXPECT_EQ(got.streams[p].first_revision.value, h ? *h + 1 : 0);
        }
        model.apply(events);
        written.push_back(Sent{std::move(copy), got});
      }
    } else if (what < 92) {
      const Query q = random_query();
      const bool fwd = pick(2);
      const std::uint64_t from = pick(model.size() + 2);
      std::vector<std::uint64_t> want;
      if (fwd) {
        for (std::uint64_t p = from; p < model.size(); ++p)
          if (Model::matches(q, model.log()[p])) want.push_back(p);
      } else {
        for (std::uint64_t p = std::min(from + 1, model.size()); p-- > 0;)
          if (Model::matches(q, model.log()[p])) want.push_back(p);
      }
      std::vector<std::uint64_t> got;
      Status st = store_->visit_query(q, GlobalPosition(from),
                                      fwd ? Direction::kForward : Direction::kBackward,
                                      GlobalPosition(UINT64_MAX), [&](const engine::RecordView& v) {
                                        got.push_back(v.position.value);
                                        return true;
                                      });
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      ASSERT_EQ(got, want) << query_to_string(q) << (fwd ? " forward from " : " backward from ")
                           << from;
    } else {
      open();  // a clean restart
    }
  }
}

class MultiAppendCrashTest : public StoreFixture {};

// A multi-stream append is one log request: a crash at any point of its write
// (or later) leaves all of its events or none, whatever survives of unsynced
// sectors; an acknowledged one is always all there.
TEST_F(MultiAppendCrashTest, ACrashAtAnyPointLeavesAllOrNothing) {
  engine::FaultInjectionFileSystem ffs;
  fs_ = &ffs;
  auto close_store = [this] { close(); };
  struct CloseStoreFirst {
    decltype(close_store)& close;
    ~CloseStoreFirst() { close(); }
  } close_store_first{close_store};
  prepare_segments_ = false;  // no background file work: the crash points are the append's own
  memtable_ = 1u << 16;
  open();
  const std::vector<std::string> streams{"from-1", "to-1", "audit-1"};
  std::uint64_t next_id = 1;
  std::map<std::string, std::size_t> have;
  int all = 0, none = 0;
  for (std::uint64_t point = 1; point <= 4; ++point) {
    for (std::uint64_t seed = 0; seed < 12; ++seed) {
      for (auto mode : {engine::FaultInjectionFileSystem::TearMode::kPrefix,
                        engine::FaultInjectionFileSystem::TearMode::kSectors}) {
        SCOPED_TRACE(::testing::Message() << "point " << point << " seed " << seed);
        MultiAppend m;
        for (const auto& s : streams) {
          StreamAppend a{s, Rev::any(), {}};
          for (int i = 0; i < 3; ++i)
            a.events.push_back(
                NewEvent{make_id(next_id++), "Moved", 0, "", std::string(300 + 97 * i, 'x')});
          m.streams.push_back(std::move(a));
        }
        ffs.freeze_after(point, seed);
        const bool acked = store_->append_multi_sync(std::move(m)).status.is_ok();
        skip_flush_ = true;
        close();
        engine::FaultInjectionFileSystem::CrashOptions co;
        co.mode = mode;
        ASSERT_TRUE(ffs.crash(seed * 7 + point, co).is_ok());
        skip_flush_ = false;
        open();
        std::vector<std::size_t> added;
        for (const auto& s : streams) {
          auto r = store_->read_stream(s, StreamRevision(0), 1u << 20, Direction::kForward);
          added.push_back((r ? r->size() : 0) - have[s]);
        }
        for (std::size_t i = 1; i < added.size(); ++i) ASSERT_EQ(added[i], added[0]);
        ASSERT_TRUE(added[0] == 0 || added[0] == 3) << added[0];
        if (acked) {
          ASSERT_EQ(added[0], 3u) << "an acknowledged multi-stream append was lost";
        }
        (added[0] == 3 ? all : none) += 1;
        for (const auto& s : streams) have[s] += added[0];
      }
    }
  }
  // Both outcomes happened: the crash points covered the write itself.
  EXPECT_GT(all, 0);
  EXPECT_GT(none, 0);
}

}  // namespace
}  // namespace annal::index::testing
