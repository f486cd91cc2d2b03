#include <gtest/gtest.h>
#include <xxhash.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/fault_fs.h"
#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

namespace fs = std::filesystem;

class StoreTest : public StoreFixture {
 protected:
  void SetUp() override { open(); }
  std::uint64_t end() { return store_->log().durable_end().value; }
};

// ---- The expected-revision table ----

struct Row {
  const char* state;  // "new", "one" (1 event), "multi" (3 events in one append)
  Rev expected;
  bool ok;
  std::optional<std::uint64_t> actual;  // with a failure
  std::uint64_t first_revision = 0;     // with success
};

class ExpectedRevisionTable : public StoreTest, public ::testing::WithParamInterface<Row> {};

TEST_P(ExpectedRevisionTable, RowHolds) {
  const Row& row = GetParam();
  const std::string s = "order-1";
  if (std::string(row.state) == "one") {
    ASSERT_TRUE(append(s, Rev::no_stream(), {1}).status.is_ok());
  }
  if (std::string(row.state) == "multi") {
    ASSERT_TRUE(append(s, Rev::no_stream(), {1, 2, 3}).status.is_ok());
  }
  const std::uint64_t before = end();
  // Two events in the append under test, with fresh ids.
  auto o = append(s, row.expected, {100, 101});
  if (row.ok) {
    ASSERT_TRUE(o.status.is_ok()) << o.status.to_string();
    EXPECT_FALSE(o.deduplicated);
    EXPECT_EQ(o.first_revision.value, row.first_revision);
    EXPECT_EQ(o.first_position.value, before);
    EXPECT_EQ(o.count, 2u);
    EXPECT_EQ(end(), before + 2);
    EXPECT_EQ(store_->last_revision(s)->value, row.first_revision + 1);
  } else {
    EXPECT_EQ(o.status.code(), Errc::kWrongExpectedRevision) << o.status.to_string();
    EXPECT_NE(o.status.message().find(s), std::string::npos);
    ASSERT_EQ(o.actual_revision.has_value(), row.actual.has_value());
    if (row.actual) {
      EXPECT_EQ(o.actual_revision->value, *row.actual);
    }
    EXPECT_EQ(end(), before);  // nothing written
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllRows, ExpectedRevisionTable,
    ::testing::Values(
        Row{"new", Rev::any(), true, {}, 0}, Row{"new", Rev::no_stream(), true, {}, 0},
        Row{"new", Rev::stream_exists(), false, std::nullopt},
        Row{"new", Rev::exact(0), false, std::nullopt},
        Row{"new", Rev::exact(5), false, std::nullopt}, Row{"one", Rev::any(), true, {}, 1},
        Row{"one", Rev::no_stream(), false, 0}, Row{"one", Rev::stream_exists(), true, {}, 1},
        Row{"one", Rev::exact(0), true, {}, 1}, Row{"one", Rev::exact(1), false, 0},
        Row{"multi", Rev::any(), true, {}, 3}, Row{"multi", Rev::no_stream(), false, 2},
        Row{"multi", Rev::stream_exists(), true, {}, 3}, Row{"multi", Rev::exact(2), true, {}, 3},
        Row{"multi", Rev::exact(1), false, 2}, Row{"multi", Rev::exact(0), false, 2},
        Row{"multi", Rev::exact(3), false, 2}));

// ---- Idempotent retries ----

TEST_F(StoreTest, RetryWithSameIdsAndSameExpectationIsDeduplicated) {
  auto first = append("s", Rev::no_stream(), {1, 2});
  ASSERT_TRUE(first.status.is_ok());
  const std::uint64_t before = end();
  for (Rev e : {Rev::no_stream(), Rev::any(), Rev::stream_exists()}) {
    auto again = append("s", e, {1, 2});
    ASSERT_TRUE(again.status.is_ok()) << e.to_string() << ": " << again.status.to_string();
    EXPECT_TRUE(again.deduplicated);
    EXPECT_EQ(again.first_position, first.first_position);
    EXPECT_EQ(again.first_revision.value, 0u);
    EXPECT_EQ(again.count, 2u);
  }
  auto next = append("s", Rev::exact(1), {3, 4});
  ASSERT_TRUE(next.status.is_ok());
  auto retry = append("s", Rev::exact(1), {3, 4});
  EXPECT_TRUE(retry.deduplicated);
  EXPECT_EQ(retry.first_revision.value, 2u);
  EXPECT_EQ(retry.first_position, next.first_position);
  EXPECT_EQ(end(), before + 2);
  EXPECT_EQ(ids_of("s"), (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

TEST_F(StoreTest, RetryWithDifferentExpectationOrPartialMatchIsWrongExpectedRevision) {
  ASSERT_TRUE(append("s", Rev::no_stream(), {1, 2}).status.is_ok());
  const std::uint64_t before = end();
  struct Case {
    Rev e;
    std::vector<std::uint64_t> ids;
  };
  for (const Case& c :
       {Case{Rev::exact(0), {1, 2}},        // would put id 1 at revision 1
        Case{Rev::no_stream(), {1, 9}},     // partial
        Case{Rev::no_stream(), {1, 2, 3}},  // longer than what is there
        Case{Rev::no_stream(), {2}},        // wrong place
        Case{Rev::any(), {1, 9}}, Case{Rev::any(), {2, 1}}, Case{Rev::stream_exists(), {9, 2}}}) {
    auto o = append("s", c.e, c.ids);
    EXPECT_EQ(o.status.code(), Errc::kWrongExpectedRevision) << c.e.to_string();
    EXPECT_EQ(o.actual_revision, StreamRevision(1));
  }
  // The same ids on another stream are not a retry of this one.
  EXPECT_EQ(append("t", Rev::any(), {1, 2}).status.code(), Errc::kWrongExpectedRevision);
  EXPECT_EQ(end(), before);
  // A prefix of the original append is a full match of its events.
  EXPECT_TRUE(append("s", Rev::any(), {1}).deduplicated);
  EXPECT_TRUE(append("s", Rev::no_stream(), {1}).deduplicated);
}

TEST_F(StoreTest, RetriesAreRecognisedAfterARestart) {
  memtable_ = 2;  // the window is reloaded from index files, not the log
  open();
  auto a = append("s", Rev::no_stream(), {1, 2});
  auto b = append("u", Rev::any(), {3});
  for (bool clean : {true, false}) {
    skip_flush_ = !clean;
    open();
    auto ra = append("s", Rev::no_stream(), {1, 2});
    EXPECT_TRUE(ra.deduplicated) << ra.status.to_string();
    EXPECT_EQ(ra.first_position, a.first_position);
    auto rb = append("u", Rev::any(), {3});
    EXPECT_TRUE(rb.deduplicated) << rb.status.to_string();
    EXPECT_EQ(rb.first_position, b.first_position);
    EXPECT_EQ(append("u", Rev::any(), {3, 4}).status.code(), Errc::kWrongExpectedRevision);
  }
  EXPECT_EQ(end(), 3u);
}

TEST_F(StoreTest, AnyRetryIsRememberedForExactlyTheWindow) {
  window_ = 4;
  memtable_ = 2;
  open();
  ASSERT_TRUE(append("s", Rev::any(), {1}).status.is_ok());
  for (std::uint64_t i = 0; i < 3; ++i)
    ASSERT_TRUE(append("x", Rev::any(), {10 + i}).status.is_ok());
  EXPECT_TRUE(append("s", Rev::any(), {1}).deduplicated);  // 4 events back: inside
  ASSERT_TRUE(append("x", Rev::any(), {20}).status.is_ok());
  auto o = append("s", Rev::any(), {1});  // 5 events back: forgotten, written again
  ASSERT_TRUE(o.status.is_ok());
  EXPECT_FALSE(o.deduplicated);
  EXPECT_EQ(o.first_revision.value, 1u);
  open();  // the window is reloaded from the index files
  EXPECT_EQ(store_->stats().memtable_entries, 0u);
  EXPECT_TRUE(append("s", Rev::any(), {1}).deduplicated);
  for (std::uint64_t i = 0; i < 4; ++i)
    ASSERT_TRUE(append("x", Rev::any(), {30 + i}).status.is_ok());
  open();
  EXPECT_FALSE(append("s", Rev::any(), {1}).deduplicated);  // out of the window again
}

// ---- Reads ----

TEST_F(StoreTest, ReadsForwardBackwardWithCountAndNotFound) {
  ASSERT_TRUE(append("s", Rev::any(), {0, 1, 2, 3, 4}).status.is_ok());
  ASSERT_TRUE(append("other", Rev::any(), {50}).status.is_ok());
  ASSERT_TRUE(append("s", Rev::any(), {5}).status.is_ok());
  auto revs = [](const Result<std::vector<engine::EventRecord>>& r) {
    std::vector<std::uint64_t> out;
    for (const auto& e : *r) out.push_back(e.revision.value);
    return out;
  };
  using V = std::vector<std::uint64_t>;
  EXPECT_EQ(revs(store_->read_stream("s", StreamRevision(1), 3, Direction::kForward)),
            (V{1, 2, 3}));
  EXPECT_EQ(revs(store_->read_stream("s", StreamRevision(4), 10, Direction::kForward)), (V{4, 5}));
  EXPECT_EQ(revs(store_->read_stream("s", StreamRevision(6), 10, Direction::kForward)), V{});
  EXPECT_EQ(revs(store_->read_stream("s", StreamRevision(UINT64_MAX), 2, Direction::kBackward)),
            (V{5, 4}));
  EXPECT_EQ(revs(store_->read_stream("s", StreamRevision(2), 10, Direction::kBackward)),
            (V{2, 1, 0}));
  EXPECT_EQ(revs(store_->read_stream("s", StreamRevision(0), 0, Direction::kForward)), V{});
  auto r = store_->read_stream("s", StreamRevision(5), 1, Direction::kForward);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].id, make_id(5));
  EXPECT_EQ((*r)[0].type, "type-5");
  EXPECT_EQ((*r)[0].data, "{}");
  EXPECT_GT((*r)[0].timestamp_us, 0);
  auto missing = store_->read_stream("nope", StreamRevision(0), 10, Direction::kForward);
  EXPECT_EQ(missing.status().code(), Errc::kStreamNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  EXPECT_EQ(store_->last_revision("nope").status().code(), Errc::kStreamNotFound);
  EXPECT_EQ(store_->last_revision("s")->value, 5u);
}

TEST_F(StoreTest, LostRecordReadsAsLostAtRepair) {
  ASSERT_TRUE(append("s", Rev::any(), {0}).status.is_ok());
  engine::EventRecord lost;
  lost.id = make_id(77);
  lost.stream = "s";
  lost.type = "$lost";
  lost.revision = StreamRevision(1);
  lost.flags = engine::format::kFlagLost;
  ASSERT_TRUE(store_->log().append_sync({lost}).status.is_ok());
  auto r = store_->read_stream("s", StreamRevision(0), 10, Direction::kForward);
  EXPECT_EQ(r.status().code(), Errc::kLostAtRepair);
  EXPECT_NE(r.status().message().find("'s' revision 1"), std::string::npos) << r.status().message();
  EXPECT_EQ(store_->read_stream("s", StreamRevision(0), 1, Direction::kForward)->size(), 1u);
}

TEST_F(StoreTest, DurableListenersSeeEveryCommit) {
  std::atomic<std::uint64_t> seen{0};
  auto h = store_->add_durable_listener([&](GlobalPosition e) { seen = e.value; });
  ASSERT_TRUE(append("s", Rev::any(), {1, 2}).status.is_ok());
  EXPECT_EQ(seen.load(), 2u);
  store_->remove_durable_listener(h);
  ASSERT_TRUE(append("s", Rev::any(), {3}).status.is_ok());
  EXPECT_EQ(seen.load(), 2u);
}

// ---- Limits ----

TEST_F(StoreTest, LimitsAreEnforcedWithErrorsNamingTheField) {
  auto code_and = [&](StreamAppend a, Errc code, const char* field) {
    auto o = store_->append_sync(std::move(a));
    EXPECT_EQ(o.status.code(), code) << o.status.to_string();
    EXPECT_NE(o.status.message().find(field), std::string::npos) << o.status.message();
  };
  auto one = [](std::string stream, NewEvent e) {
    StreamAppend a{std::move(stream), Rev::any(), {}};
    a.events.push_back(std::move(e));
    return a;
  };
  NewEvent ok{make_id(1), "t", 0, "", "x"};
  code_and(one("", ok), Errc::kBadRequest, "stream name is empty");
  code_and(one(std::string(1025, 's'), ok), Errc::kTooLarge, "max_stream_name");
  code_and(StreamAppend{"s", Rev::any(), {}}, Errc::kBadRequest, "no events");
  code_and(one("s", NewEvent{EventId{}, "t", 0, "", ""}), Errc::kBadRequest, "nil event id");
  code_and(one("s", NewEvent{make_id(1), "", 0, "", ""}), Errc::kBadRequest, "empty event type");
  StreamAppend dup{"s", Rev::any(), {}};
  dup.events.push_back(NewEvent{make_id(7), "t", 0, "", "a"});
  dup.events.push_back(NewEvent{make_id(8), "t", 0, "", "b"});
  dup.events.push_back(NewEvent{make_id(7), "t", 0, "", "c"});
  code_and(std::move(dup), Errc::kBadRequest, "events 0 and 2 have the same event id");

  code_and(one("s", NewEvent{make_id(1), std::string(1025, 't'), 0, "", ""}), Errc::kTooLarge,
           "max_event_type");
  code_and(
      one("s", NewEvent{make_id(1), "t", 0, std::string(100, 'm'), std::string(1u << 20, 'd')}),
      Errc::kTooLarge, "max_event_size");
  StreamAppend many{"s", Rev::any(), {}};
  for (int i = 0; i < 10001; ++i)
    many.events.push_back(NewEvent{make_id(static_cast<std::uint64_t>(i) + 1), "t", 0, "", ""});
  code_and(std::move(many), Errc::kTooLarge, "max_append_events");
  // The append limit is clamped to what one 1 MiB segment holds.
  EXPECT_EQ(store_->limits().max_append_size, (1u << 20) - engine::format::kSegmentHeaderSize);
  StreamAppend big{"s", Rev::any(), {}};
  for (int i = 0; i < 3; ++i)
    big.events.push_back(
        NewEvent{make_id(static_cast<std::uint64_t>(i) + 1), "t", 0, "", std::string(400000, 'd')});
  code_and(std::move(big), Errc::kTooLarge, "max_append_size");
  EXPECT_EQ(end(), 0u);
}

// ---- Collisions ----

TEST_F(StoreTest, ForcedHashCollisionsGiveCorrectResults) {
  hash_ = [](std::string_view) { return std::uint64_t{1}; };
  memtable_ = 5;
  head_cache_ = 1;  // force lookups through the index
  open();
  std::vector<std::string> names{"a", "b", "c", "d"};
  std::map<std::string, std::vector<std::uint64_t>> want;
  std::uint64_t id = 1;
  for (int round = 0; round < 12; ++round) {
    for (const auto& n : names) {
      if ((round + n[0]) % 3 == 0) continue;
      auto expected = want[n].empty() ? Rev::no_stream() : Rev::exact(want[n].size() - 1);
      auto o = append(n, expected, {id, id + 1});
      ASSERT_TRUE(o.status.is_ok()) << n << " " << o.status.to_string();
      EXPECT_EQ(o.first_revision.value, want[n].size());
      want[n].push_back(id);
      want[n].push_back(id + 1);
      // A stale expectation fails with this stream's own revision.
      auto stale = append(n, Rev::exact(0), {999});
      if (want[n].size() > 2) {
        EXPECT_EQ(stale.status.code(), Errc::kWrongExpectedRevision);
        EXPECT_EQ(stale.actual_revision, StreamRevision(want[n].size() - 1));
      }
      id += 2;
    }
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& n : names) {
      EXPECT_EQ(ids_of(n), want[n]) << n;
      EXPECT_EQ(store_->last_revision(n)->value, want[n].size() - 1);
    }
    EXPECT_EQ(store_->last_revision("e").status().code(), Errc::kStreamNotFound);
    store_->wait_index_idle();
    EXPECT_GT(store_->stats().index_files, 0u);
    open();
  }
}

// ---- Restarts and index damage ----

class StoreRestartTest : public StoreTest {
 protected:
  void fill(int appends) {
    for (int i = 0; i < appends; ++i) {
      std::string s = "s-" + std::to_string(i % 7);
      ASSERT_TRUE(
          append(s, Rev::any(),
                 {static_cast<std::uint64_t>(2 * i + 1), static_cast<std::uint64_t>(2 * i + 2)})
              .status.is_ok());
    }
    store_->wait_index_idle();
  }
  std::vector<std::string> names() {
    std::vector<std::string> n;
    for (int i = 0; i < 8; ++i) n.push_back("s-" + std::to_string(i));
    return n;
  }
};

TEST_F(StoreRestartTest, CleanRestartReplaysNothingAndKillReplaysOnlyTheTail) {
  memtable_ = 16;
  open();
  fill(40);
  auto before = snapshot(names());
  open();  // clean
  EXPECT_EQ(store_->stats().indexed_through, end());
  EXPECT_EQ(store_->stats().memtable_entries, 0u);
  EXPECT_EQ(snapshot(names()), before);
  skip_flush_ = true;
  fill(3);
  before = snapshot(names());
  open();  // as after a kill: the unflushed memtable is replayed from the log
  auto st = store_->stats();
  EXPECT_LT(end() - st.indexed_through, 2 * memtable_);
  EXPECT_EQ(st.memtable_entries, end() - st.indexed_through);
  EXPECT_EQ(st.last_rebuild_reason, "");
  EXPECT_EQ(snapshot(names()), before);
}

TEST_F(StoreRestartTest, DeletingOrCorruptingAnyIndexFileRebuildsWithIdenticalResults) {
  memtable_ = 8;
  open();
  fill(40);
  close();
  open();
  const auto want = snapshot(names());
  close();
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir_.path() + "/index"))
    files.push_back(e.path().string());
  ASSERT_GE(files.size(), 3u);
  // Keep a pristine copy to restore between damages.
  TempDir saved;
  fs::copy(dir_.path() + "/index", saved.path() + "/index");
  for (const auto& f : files) {
    for (int how = 0; how < 3; ++how) {
      fs::remove_all(dir_.path() + "/index");
      fs::copy(saved.path() + "/index", dir_.path() + "/index");
      if (how == 0) {
        fs::remove(f);
      } else {
        std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
        const auto size = static_cast<std::streamoff>(fs::file_size(f));
        io.seekp(how == 1 ? size / 2 : size - 1);
        io.put('\x5A');
      }
      open();
      // Damage in a header, footer or summary is found at open (and the
      // index rebuilt before open returns); damage in a block of entries or
      // id digests is found by the query that reads it or by the background
      // scrub, and that file is rebuilt from the log. Meanwhile a query of a
      // damaged block fails with kCorruption: it never answers wrongly.
      for (const auto& name : names()) {
        auto fwd = store_->read_stream(name, StreamRevision(0), 1u << 30, Direction::kForward);
        if (!fwd) {
          if (fwd.status().code() == Errc::kStreamNotFound) continue;
          EXPECT_EQ(fwd.status().code(), Errc::kCorruption) << fwd.status().to_string();
          continue;
        }
        std::vector<std::uint64_t> got, expect;
        for (const auto& e : *fwd) got.push_back(e.position.value);
        for (const auto& t : want.at(name))
          if (std::get<0>(t) < UINT64_MAX - 3) expect.push_back(std::get<2>(t));
        EXPECT_EQ(got, expect) << name << " " << f << " how " << how;
      }
      store_->wait_index_idle();
      EXPECT_NE(store_->stats().last_rebuild_reason, "") << f << " how " << how;
      EXPECT_TRUE(store_->stats().index_scrub_done);
      EXPECT_EQ(snapshot(names()), want) << f << " how " << how;
      close();
    }
  }
}

// docs/storage-format.md, version history "index file 3": a directory written
// by a node with version-2 index files opens; the files fail the version
// check and both indexes are rebuilt from the log with the same answers.
TEST_F(StoreRestartTest, IndexFilesOfAnEarlierVersionAreRebuiltFromTheLog) {
  memtable_ = 8;
  open();
  fill(40);
  close();
  open();
  const auto want = snapshot(names());
  auto category = [&] {
    std::vector<std::uint64_t> out;
    EXPECT_TRUE(store_
                    ->visit_index(IndexKind::kCategory, "s", GlobalPosition(0), Direction::kForward,
                                  GlobalPosition(UINT64_MAX),
                                  [&](const engine::RecordView& r) {
                                    out.push_back(r.position.value);
                                    return true;
                                  })
                    .is_ok());
    return out;
  };
  const auto want_category = category();
  ASSERT_EQ(want_category.size(), 80u);  // 40 appends of 2 events, all in "s"
  close();
  int rewritten = 0;
  for (const char* sub : {"/index", "/secondary"}) {
    for (const auto& e : fs::directory_iterator(dir_.path() + sub)) {
      if (e.path().extension() != ".ix") continue;
      // Version 2 in the header, with a header checksum that matches, as
      // an older node wrote it.
      std::fstream io(e.path(), std::ios::in | std::ios::out | std::ios::binary);
      char header[64];
      io.read(header, 64);
      const std::uint32_t v2 = 2;
      std::memcpy(header + 8, &v2, 4);
      const std::uint64_t sum = XXH3_64bits(header, 56);
      std::memcpy(header + 56, &sum, 8);
      io.seekp(0);
      io.write(header, 64);
      ++rewritten;
    }
  }
  ASSERT_GE(rewritten, 2);
  open();
  EXPECT_NE(store_->stats().last_rebuild_reason.find("unsupported version 2"), std::string::npos)
      << store_->stats().last_rebuild_reason;
  EXPECT_EQ(snapshot(names()), want);
  EXPECT_EQ(category(), want_category);
  close();
  // The rebuilt files are the current version: the next open rebuilds nothing.
  open();
  EXPECT_EQ(store_->stats().last_rebuild_reason, "");
  EXPECT_EQ(category(), want_category);
}

// ---- Atomic multi-event appends across a crash at every point ----

// A store in `dir` on the fault-injecting file system, small segments.
StoreOptions fault_options(const TempDir& dir, engine::FaultInjectionFileSystem& ffs) {
  StoreOptions o;
  o.log.dir = dir.path();
  o.log.segment_size = 256u << 10;
  o.log.min_free_bytes = 0;
  o.log.fs = &ffs;
  return o;
}

TEST(StoreCrashTest, MultiEventAppendIsAllOrNothingAtEveryCrashPoint) {
  for (std::uint64_t point = 1;; ++point) {
    TempDir dir;
    engine::FaultInjectionFileSystem ffs;
    StoreOptions o = fault_options(dir, ffs);
    o.memtable_entries = 4;  // index flushes happen inside the crash window too
    std::vector<AppendOutcome> acked;
    {
      auto s = Store::open(o);
      ASSERT_TRUE(s.is_ok()) << s.status().to_string();
      auto append3 = [&](std::uint64_t base) {
        StreamAppend a{"s", Rev::any(), {}};
        for (std::uint64_t i = 0; i < 3; ++i)
          a.events.push_back(NewEvent{make_id(base + i), "t", 0, "", "{}"});
        return (*s)->append_sync(std::move(a));
      };
      ASSERT_TRUE(append3(100).status.is_ok());
      ffs.freeze_after(point, point);
      for (std::uint64_t k = 0; k < 3; ++k) {
        auto r = append3(200 + 10 * k);
        if (r.status.is_ok()) acked.push_back(r);
      }
    }
    const bool reached = ffs.frozen();
    ASSERT_TRUE(ffs.crash(point).is_ok());
    auto s = Store::open(o);
    ASSERT_TRUE(s.is_ok()) << "crash point " << point << ": " << s.status().to_string();
    // Index files and manifest are replaced atomically: no crash point
    // leaves them damaged (a rebuild would still be correct, but slow).
    EXPECT_EQ((*s)->stats().last_rebuild_reason, "") << "crash point " << point;
    auto r = (*s)->read_stream("s", StreamRevision(0), 100, Direction::kForward);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    // Whole appends only, in order, and every acknowledged one is there.
    ASSERT_EQ(r->size() % 3, 0u) << "crash point " << point;
    ASSERT_GE(r->size(), 3 * (1 + acked.size())) << "crash point " << point;
    for (std::size_t i = 0; i < r->size(); ++i) {
      EXPECT_EQ((*r)[i].revision.value, i);
      const std::uint64_t base = i < 3 ? 100 : 200 + 10 * (i / 3 - 1);
      EXPECT_EQ((*r)[i].id, make_id(base + i % 3)) << "crash point " << point;
    }
    // The store keeps working after the crash, from the right revision.
    StreamAppend next{"s", Rev::exact(r->size() - 1), {}};
    next.events.push_back(NewEvent{make_id(999), "t", 0, "", "{}"});
    EXPECT_TRUE((*s)->append_sync(std::move(next)).status.is_ok()) << "crash point " << point;
    if (!reached) {
      std::printf("crash points covered: %llu\n", static_cast<unsigned long long>(point));
      break;
    }  // the freeze point lay beyond every write: all points covered
    ASSERT_LT(point, 500u);
  }
}

}  // namespace
}  // namespace annal::index::testing

namespace annal::index::testing {
namespace {

// A group that fails (the disk is full) is rolled back: the head, the index
// entries and the id window forget it, and the next append takes its place.
TEST(StoreAbortTest, FailedGroupIsRolledBackCompletely) {
  TempDir dir;
  engine::FaultInjectionFileSystem ffs;
  StoreOptions o = fault_options(dir, ffs);
  // Large enough that no background index flush runs: it would race the log
  // for the one injected ENOSPC.
  o.memtable_entries = 1024;
  auto s = Store::open(o);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto& store = **s;
  auto one = [&](std::uint64_t id, Rev e) {
    StreamAppend a{"s", e, {}};
    a.events.push_back(NewEvent{make_id(id), "t", 0, "", "{}"});
    a.events.push_back(NewEvent{make_id(id + 1000), "t", 0, "", "{}"});
    return store.append_sync(std::move(a));
  };
  ASSERT_TRUE(one(1, Rev::no_stream()).status.is_ok());
  ffs.fail_pwrites_enospc(1);
  auto failed = one(2, Rev::exact(1));
  ASSERT_EQ(failed.status.code(), Errc::kNoSpace) << failed.status.to_string();
  EXPECT_EQ(store.last_revision("s")->value, 1u);
  // The failed ids were never written: not a retry, a new append.
  auto again = one(2, Rev::exact(1));
  ASSERT_TRUE(again.status.is_ok()) << again.status.to_string();
  EXPECT_FALSE(again.deduplicated);
  EXPECT_EQ(again.first_revision.value, 2u);
  EXPECT_EQ(again.first_position.value, 2u);
  auto r = store.read_stream("s", StreamRevision(0), 10, Direction::kForward);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[2].id, make_id(2));
  EXPECT_TRUE(one(2, Rev::any()).deduplicated);
}

}  // namespace
}  // namespace annal::index::testing

namespace annal::index::testing {
namespace {

// ---- Tags, correlation and causation ids (the record extension) ----

class StoreTagsTest : public StoreFixture {
 protected:
  void SetUp() override { open(); }
};

TEST_F(StoreTagsTest, TagsAreStoredSortedWithoutRepeatsAndSurviveARestart) {
  StreamAppend a{"order-1", Rev::any(), {}};
  NewEvent e{make_id(1), "Placed", 0, "", "x"};
  e.tags = {"region:eu", "customer:42", "region:eu", "a"};
  e.correlation_id = "corr-1";
  e.causation_id = "cmd-9";
  a.events.push_back(e);
  a.events.push_back(NewEvent{make_id(2), "Noted", 0, "", "y"});  // none
  auto o = store_->append_sync(std::move(a));
  ASSERT_TRUE(o.status.is_ok()) << o.status.to_string();
  for (int pass = 0; pass < 2; ++pass) {
    auto r = store_->read_stream("order-1", StreamRevision(0), 10, Direction::kForward);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0].tags, (std::vector<std::string>{"a", "customer:42", "region:eu"}));
    EXPECT_EQ((*r)[0].correlation_id, "corr-1");
    EXPECT_EQ((*r)[0].causation_id, "cmd-9");
    EXPECT_EQ((*r)[0].epoch, 0u);
    EXPECT_TRUE((*r)[1].tags.empty());
    EXPECT_TRUE((*r)[1].correlation_id.empty());
    open();  // the same after a restart
  }
  // A retry with the same ids is deduplicated, whatever tags it carries.
  StreamAppend retry{"order-1", Rev::any(), {}};
  NewEvent again{make_id(1), "Placed", 0, "", "x"};
  again.tags = {"other"};
  retry.events.push_back(again);
  retry.events.push_back(NewEvent{make_id(2), "Noted", 0, "", "y"});
  auto d = store_->append_sync(std::move(retry));
  ASSERT_TRUE(d.status.is_ok()) << d.status.to_string();
  EXPECT_TRUE(d.deduplicated);
}

TEST_F(StoreTagsTest, TagLimitsAreEnforcedWithErrorsNamingTheField) {
  auto code_and = [&](NewEvent e, Errc code, const char* field) {
    StreamAppend a{"s", Rev::any(), {}};
    a.events.push_back(std::move(e));
    auto o = store_->append_sync(std::move(a));
    EXPECT_EQ(o.status.code(), code) << o.status.to_string();
    EXPECT_NE(o.status.message().find(field), std::string::npos) << o.status.message();
  };
  NewEvent e{make_id(1), "t", 0, "", "x"};
  NewEvent empty_tag = e;
  empty_tag.tags = {"a", ""};
  code_and(empty_tag, Errc::kBadRequest, "empty tag");
  NewEvent many = e;
  for (int i = 0; i < 33; ++i) many.tags.push_back("t" + std::to_string(i));
  code_and(many, Errc::kTooLarge, "max_tags");
  NewEvent repeated = e;  // 40 tags, 32 distinct: within the limit
  for (int i = 0; i < 40; ++i) repeated.tags.push_back("t" + std::to_string(i % 32));
  StreamAppend ok{"s", Rev::any(), {}};
  ok.events.push_back(repeated);
  EXPECT_TRUE(store_->append_sync(std::move(ok)).status.is_ok());
  NewEvent long_tag = e;
  long_tag.id = make_id(2);
  long_tag.tags = {std::string(257, 'k')};
  code_and(long_tag, Errc::kTooLarge, "max_tag_size");
  NewEvent long_corr = e;
  long_corr.id = make_id(3);
  long_corr.correlation_id = std::string(257, 'c');
  code_and(long_corr, Errc::kTooLarge, "correlation id of 257 bytes");
  NewEvent long_cause = e;
  long_cause.id = make_id(4);
  long_cause.causation_id = std::string(300, 'c');
  code_and(long_cause, Errc::kTooLarge, "causation id of 300 bytes");
}

}  // namespace
}  // namespace annal::index::testing
