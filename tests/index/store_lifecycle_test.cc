// Stream metadata and deletion in the store (docs/semantics.md, "Metadata
// and deletion"): each rule on the stream read, the secondary index and
// query reads and log-order reads (Removal); the expected-revision table of
// deleted and tombstoned streams; retries; and the rules surviving clean
// restarts, kills and a lost or damaged DATA/lifecycle file.

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

class StoreLifecycleTest : public StoreFixture {
 protected:
  void SetUp() override { open(); }

  AppendOutcome meta(const std::string& stream, const std::string& json,
                     Rev expected = Rev::any()) {
    return store_->set_metadata_sync(stream, expected, json);
  }
  AppendOutcome del(const std::string& stream, bool hard = false, Rev expected = Rev::any()) {
    return store_->delete_stream_sync(stream, expected, hard);
  }
  // Revisions of the stream read forward from 0 (and checked backward).
  std::vector<std::uint64_t> revs(const std::string& stream) {
    std::vector<std::uint64_t> out;
    auto r = store_->read_stream(stream, StreamRevision(0), 1000, Direction::kForward);
    if (!r) return {UINT64_MAX - static_cast<std::uint64_t>(r.status().code())};
    for (const auto& e : *r) out.push_back(e.revision.value);
    auto b = store_->read_stream(stream, StreamRevision(UINT64_MAX), 1000, Direction::kBackward);
    EXPECT_TRUE(b.is_ok());
    std::vector<std::uint64_t> back;
    if (b)
      for (const auto& e : *b) back.insert(back.begin(), e.revision.value);
    EXPECT_EQ(back, out) << "backward read of " << stream;
    return out;
  }
  static std::uint64_t code(Errc e) { return UINT64_MAX - static_cast<std::uint64_t>(e); }
  // Positions the log-order check keeps, of every durable event.
  std::vector<std::uint64_t> visible_in_log() {
    std::vector<std::uint64_t> out;
    const Removal rm = store_->removal();
    Status st =
        store_->log().scan_forward(GlobalPosition(0), UINT64_MAX, [&](const engine::RecordView& v) {
          if (!rm.removed(v)) out.push_back(v.position.value);
          return true;
        });
    EXPECT_TRUE(st.is_ok());
    return out;
  }
  std::vector<std::uint64_t> by_category(const std::string& category) {
    std::vector<std::uint64_t> out;
    Status st =
        store_->visit_index(IndexKind::kCategory, category, GlobalPosition(0), Direction::kForward,
                            GlobalPosition(UINT64_MAX), [&](const engine::RecordView& v) {
                              out.push_back(v.position.value);
                              return true;
                            });
    EXPECT_TRUE(st.is_ok()) << st.to_string();
    return out;
  }
};

TEST_F(StoreLifecycleTest, MetadataIsVersionedByItsMetadataStreamsRevision) {
  auto m = store_->read_metadata("s-1");
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->revision);
  EXPECT_EQ(m->json, "{}");
  ASSERT_TRUE(meta("s-1", R"({"max_count":3,"owner":"me"})", Rev::no_stream()).status);
  auto wrong = meta("s-1", R"({"max_count":4})", Rev::no_stream());
  EXPECT_EQ(wrong.status.code(), Errc::kWrongExpectedRevision);
  ASSERT_TRUE(wrong.actual_revision);
  EXPECT_EQ(wrong.actual_revision->value, 0u);
  ASSERT_TRUE(meta("s-1", R"({"max_count":4,"owner":"you"})", Rev::exact(0)).status);
  m = store_->read_metadata("s-1");
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->revision);
  EXPECT_EQ(m->revision->value, 1u);
  EXPECT_EQ(m->json, R"({"max_count":4,"owner":"you"})");
  EXPECT_EQ(m->rules.metadata.max_count, 4u);
  // The metadata stream is readable like any stream, but not writable.
  auto hist = store_->read_stream("$$s-1", StreamRevision(0), 10, Direction::kForward);
  ASSERT_TRUE(hist);
  ASSERT_EQ(hist->size(), 2u);
  EXPECT_EQ((*hist)[0].type, "$metadata");
  EXPECT_EQ(append("$$s-1", Rev::any(), {1}).status.code(), Errc::kBadRequest);
}

TEST_F(StoreLifecycleTest, BadMetadataIsRefusedNamingTheKey) {
  for (const char* bad : {R"({"max_count":0})", R"({"max_count":-1})", R"({"max_age":"1h"})",
                          R"({"truncate_before":1.5})", "[1]", "not json"}) {
    auto o = meta("s-1", bad);
    EXPECT_EQ(o.status.code(), Errc::kBadRequest) << bad;
  }
  EXPECT_NE(meta("s-1", R"({"max_age":"1h"})").status.message().find("max_age"), std::string::npos);
  EXPECT_EQ(meta("$$s-1", "{}").status.code(), Errc::kBadRequest);
  EXPECT_FALSE(store_->read_metadata("s-1")->revision);  // nothing was written
}

TEST_F(StoreLifecycleTest, MaxCountKeepsTheNewestEventsOnEveryReadPath) {
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2, 3, 4, 5}).status);  // positions 0..4
  ASSERT_TRUE(append("t-1", Rev::any(), {6}).status);              // 5
  ASSERT_TRUE(meta("s-1", R"({"max_count":2})").status);           // 6
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(store_->last_revision("s-1")->value, 4u);
  EXPECT_EQ(by_category("s"), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(visible_in_log(), (std::vector<std::uint64_t>{3, 4, 5, 6}));
  // A read from a removed revision starts at the first kept one.
  auto r = store_->read_stream("s-1", StreamRevision(1), 1, Direction::kForward);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].revision.value, 3u);
  // The window moves with the head.
  ASSERT_TRUE(append("s-1", Rev::exact(4), {7}).status);
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(by_category("s"), (std::vector<std::uint64_t>{4, 7}));
  // Lifting it brings back what no scavenge has removed yet.
  ASSERT_TRUE(meta("s-1", R"({})").status);
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5}));
}

TEST_F(StoreLifecycleTest, TruncateBeforeRemovesARevisionPrefix) {
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2, 3, 4}).status);
  ASSERT_TRUE(meta("s-1", R"({"truncate_before":2})").status);
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{2, 3}));
  Query q{{QueryItem{{"type-1", "type-3"}, {}}}};
  std::vector<std::uint64_t> got;
  ASSERT_TRUE(store_->visit_query(q, GlobalPosition(0), Direction::kForward,
                                  GlobalPosition(UINT64_MAX), [&](const engine::RecordView& v) {
                                    got.push_back(v.position.value);
                                    return true;
                                  }));
  EXPECT_EQ(got, (std::vector<std::uint64_t>{2}));
  // Past the head: the stream reads as not found (a soft delete by hand).
  ASSERT_TRUE(meta("s-1", R"({"truncate_before":9})").status);
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{code(Errc::kStreamNotFound)}));
}

TEST_F(StoreLifecycleTest, MaxAgeRemovesEventsOlderThanItOnEveryReadPath) {
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2}).status);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_TRUE(append("s-1", Rev::any(), {3}).status);
  ASSERT_TRUE(meta("s-1", R"({"max_age":1})").status);
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(by_category("s"), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(visible_in_log(), (std::vector<std::uint64_t>{2, 3}));
  // Everything expired: the stream exists, with nothing to read.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{}));
  EXPECT_EQ(store_->last_revision("s-1")->value, 2u);
}

TEST_F(StoreLifecycleTest, SoftDeleteReadsAsNotFoundAndAppendsContinueTheRevisions) {
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2, 3}).status);
  auto d = del("s-1", false, Rev::exact(1));
  EXPECT_EQ(d.status.code(), Errc::kWrongExpectedRevision);
  d = del("s-1", false, Rev::exact(2));
  ASSERT_TRUE(d.status) << d.status.to_string();
  EXPECT_EQ(d.truncate_before, 3u);
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{code(Errc::kStreamNotFound)}));
  EXPECT_EQ(store_->last_revision("s-1").status().code(), Errc::kStreamNotFound);
  EXPECT_EQ(by_category("s"), (std::vector<std::uint64_t>{}));
  EXPECT_TRUE(store_->read_metadata("s-1")->deleted);
  EXPECT_EQ(del("s-1").status.code(), Errc::kStreamNotFound);  // nothing left to delete
  // The expected-revision table of a deleted stream.
  auto exists = append("s-1", Rev::stream_exists(), {10});
  EXPECT_EQ(exists.status.code(), Errc::kWrongExpectedRevision);
  EXPECT_FALSE(exists.actual_revision);
  EXPECT_EQ(append("s-1", Rev::exact(2), {10}).status.code(), Errc::kWrongExpectedRevision);
  auto again = append("s-1", Rev::no_stream(), {10, 11});
  ASSERT_TRUE(again.status) << again.status.to_string();
  EXPECT_EQ(again.first_revision.value, 3u);
  EXPECT_EQ(revs("s-1"), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_FALSE(store_->read_metadata("s-1")->deleted);
  // Its retry is recognised (the ids at the revisions after the deleted ones).
  auto retry = append("s-1", Rev::no_stream(), {10, 11});
  ASSERT_TRUE(retry.status);
  EXPECT_TRUE(retry.deduplicated);
  EXPECT_EQ(retry.first_revision.value, 3u);
  EXPECT_EQ(append("s-1", Rev::no_stream(), {12}).status.code(), Errc::kWrongExpectedRevision);
}

TEST_F(StoreLifecycleTest, HardDeleteRefusesEveryLaterWriteAndRead) {
  ASSERT_TRUE(append("s-1", Rev::any(), {1, 2}).status);
  auto d = del("s-1", true);
  ASSERT_TRUE(d.status) << d.status.to_string();
  EXPECT_EQ(d.truncate_before, 2u);
  for (Rev e : {Rev::any(), Rev::no_stream(), Rev::exact(1), Rev::stream_exists()})
    EXPECT_EQ(append("s-1", e, {3}).status.code(), Errc::kStreamDeleted) << e.to_string();
  EXPECT_EQ(store_->read_stream("s-1", StreamRevision(0), 9, Direction::kForward).status().code(),
            Errc::kStreamDeleted);
  EXPECT_EQ(store_->last_revision("s-1").status().code(), Errc::kStreamDeleted);
  EXPECT_EQ(meta("s-1", "{}").status.code(), Errc::kStreamDeleted);
  EXPECT_EQ(del("s-1").status.code(), Errc::kStreamDeleted);
  EXPECT_EQ(del("s-1", true).status.code(), Errc::kStreamDeleted);
  EXPECT_TRUE(store_->read_metadata("s-1")->rules.tombstoned);
  EXPECT_EQ(visible_in_log(), (std::vector<std::uint64_t>{2}));  // only the tombstone event
  // A stream that never existed may be tombstoned (its name reserved).
  ASSERT_TRUE(del("never", true).status);
  EXPECT_EQ(append("never", Rev::no_stream(), {4}).status.code(), Errc::kStreamDeleted);
  // In a multi-stream append, the tombstoned stream fails the whole append.
  auto m = store_->append_multi_sync(
      MultiAppend{{StreamAppend{"other", Rev::any(), {NewEvent{make_id(5), "t", 0, "", "{}"}}},
                   StreamAppend{"s-1", Rev::any(), {NewEvent{make_id(6), "t", 0, "", "{}"}}}},
                  std::nullopt});
  EXPECT_EQ(m.status.code(), Errc::kStreamDeleted);
  EXPECT_EQ(store_->read_stream("other", StreamRevision(0), 1, Direction::kForward).status().code(),
            Errc::kStreamNotFound);
}

TEST_F(StoreLifecycleTest, RulesSurviveRestartsKillsAndALostOrDamagedLifecycleFile) {
  ASSERT_TRUE(append("a-1", Rev::any(), {1, 2, 3}).status);
  ASSERT_TRUE(append("b-1", Rev::any(), {4, 5}).status);
  ASSERT_TRUE(append("c-1", Rev::any(), {6}).status);
  ASSERT_TRUE(meta("a-1", R"({"max_count":1})").status);
  ASSERT_TRUE(del("b-1").status);
  ASSERT_TRUE(del("c-1", true).status);
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(revs("a-1"), (std::vector<std::uint64_t>{2}));
    EXPECT_EQ(revs("b-1"), (std::vector<std::uint64_t>{code(Errc::kStreamNotFound)}));
    EXPECT_EQ(append("c-1", Rev::any(), {7}).status.code(), Errc::kStreamDeleted);
  };
  check("open");
  close();
  open();
  check("clean restart");
  skip_flush_ = true;  // a kill: the file may lag the log
  ASSERT_TRUE(meta("a-1", R"({"max_count":2})").status);
  close();
  skip_flush_ = false;
  open();
  EXPECT_EQ(revs("a-1"), (std::vector<std::uint64_t>{1, 2}));
  close();
  std::filesystem::remove(dir_.path() + "/lifecycle");
  open();
  EXPECT_EQ(revs("a-1"), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(revs("b-1"), (std::vector<std::uint64_t>{code(Errc::kStreamNotFound)}));
  close();
  {
    std::fstream f(dir_.path() + "/lifecycle", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  open();  // damaged: folded from the whole log again
  EXPECT_EQ(revs("a-1"), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(append("c-1", Rev::any(), {7}).status.code(), Errc::kStreamDeleted);
}

TEST_F(StoreLifecycleTest, EverySecondaryIndexKindSkipsRemovedEvents) {
  auto tagged = [](std::uint64_t n) {
    NewEvent e{make_id(n), "Placed", 0, "", "{}"};
    e.tags = {"region:eu"};
    e.correlation_id = "corr-1";
    e.causation_id = "cause-1";
    return e;
  };
  for (const char* s : {"s-1", "t-1"})
    ASSERT_TRUE(
        store_->append_sync(StreamAppend{s, Rev::any(), {tagged(s[0] == 's' ? 1 : 2)}}).status);
  ASSERT_TRUE(del("s-1").status);
  const std::vector<std::pair<IndexKind, std::string>> keys{{IndexKind::kCategory, "s"},
                                                            {IndexKind::kType, "Placed"},
                                                            {IndexKind::kTag, "region:eu"},
                                                            {IndexKind::kCorrelation, "corr-1"},
                                                            {IndexKind::kCausation, "cause-1"}};
  for (const auto& [kind, value] : keys) {
    for (Direction dir : {Direction::kForward, Direction::kBackward}) {
      std::vector<std::string> got;
      ASSERT_TRUE(store_->visit_index(
          kind, value, GlobalPosition(dir == Direction::kForward ? 0 : UINT64_MAX), dir,
          GlobalPosition(UINT64_MAX), [&](const engine::RecordView& v) {
            got.emplace_back(v.stream);
            return true;
          }));
      const std::vector<std::string> want = kind == IndexKind::kCategory
                                                ? std::vector<std::string>{}
                                                : std::vector<std::string>{"t-1"};
      EXPECT_EQ(got, want) << static_cast<int>(kind) << " " << value;
    }
  }
}

TEST(LifecycleFileTest, RoundTripsAndRefusesDamage) {
  LifecycleFile f;
  f.through = 77;
  StreamRules r;
  r.metadata.max_count = 5;
  r.metadata.max_age_s = 60;
  r.metadata.truncate_before = 3;
  r.deleted_before = 9;
  r.tombstoned = true;
  r.has_metadata = true;
  r.meta_revision = 4;
  f.rules["x"] = r;
  f.rules["y"] = StreamRules{};
  const std::string bytes = encode_lifecycle(f);
  auto back = decode_lifecycle(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->through, 77u);
  EXPECT_EQ(back->rules, f.rules);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    EXPECT_EQ(decode_lifecycle(bad).status().code(), Errc::kCorruption) << "byte " << i;
  }
  EXPECT_FALSE(decode_lifecycle(bytes.substr(0, bytes.size() - 1)));
}

}  // namespace
}  // namespace annal::index::testing
