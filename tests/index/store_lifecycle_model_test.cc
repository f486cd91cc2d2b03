// A seeded model-based randomized test of stream metadata, deletion and
// scavenge: random appends (any / no_stream / stream_exists), metadata
// (max_count, truncate_before, none), soft and hard deletes, scavenges,
// clean restarts, kills (the index and rules files left as a kill leaves
// them) and crashes in the middle of a scavenge (the fault-injecting file
// system's freeze, then a power loss), checked after every step against a
// simple model: every stream read, last revision, log read and category
// read equals the model's.
//   ANNAL_MODEL_OPS=N   operations (default 800)
//   ANNAL_MODEL_SEED=S  seed (default 1); a failure prints the seed and step.

#include <gtest/gtest.h>

#include <random>

#include "engine/fault_fs.h"
#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

struct Event {
  std::string stream;
  std::uint64_t revision = 0;
  bool gone = false;  // removed by a scavenge
};

class Model {
 public:
  struct Stream {
    std::optional<std::uint64_t> head;
    StreamRules rules;
  };
  std::vector<Event> log;
  std::map<std::string, Stream> streams;

  bool removed(const Event& e) const {
    if (is_metadata_stream(e.stream)) return false;
    auto it = streams.find(e.stream);
    if (it == streams.end()) return false;
    return e.revision < it->second.rules.first_kept(*it->second.head);
  }
  bool deleted(const Stream& s) const { return s.head && s.rules.deleted_at(*s.head); }
  // The expected outcome of an append of n events, applied if ok.
  Errc append(const std::string& name, Rev e, std::uint64_t n, std::uint64_t& first_rev) {
    Stream& s = streams[name];
    if (s.rules.tombstoned) return Errc::kStreamDeleted;
    const bool exists = s.head && !deleted(s);
    if (e.kind == Rev::Kind::kNoStream && exists) return Errc::kWrongExpectedRevision;
    if (e.kind == Rev::Kind::kStreamExists && !exists) return Errc::kWrongExpectedRevision;
    first_rev = s.head ? *s.head + 1 : 0;
    for (std::uint64_t i = 0; i < n; ++i) log.push_back(Event{name, first_rev + i});
    s.head = first_rev + n - 1;
    return Errc::kOk;
  }
  void meta_event(const std::string& name) {
    Stream& m = streams["$$" + name];
    const std::uint64_t r = m.head ? *m.head + 1 : 0;
    log.push_back(Event{"$$" + name, r});
    m.head = r;
  }
  Errc set_metadata(const std::string& name, const MetadataFields& f) {
    Stream& s = streams[name];
    if (s.rules.tombstoned) return Errc::kStreamDeleted;
    s.rules.metadata = f;
    meta_event(name);
    return Errc::kOk;
  }
  Errc remove(const std::string& name, bool hard) {
    Stream& s = streams[name];
    if (s.rules.tombstoned) return Errc::kStreamDeleted;
    if (!hard && (!s.head || deleted(s))) return Errc::kStreamNotFound;
    s.rules.deleted_before = std::max(s.rules.deleted_before, s.head ? *s.head + 1 : 0);
    s.rules.tombstoned = hard;
    meta_event(name);
    return Errc::kOk;
  }
  // A scavenge: removed events below `sealed_end` are gone for good.
  void scavenge(std::uint64_t sealed_end) {
    for (std::uint64_t p = 0; p < sealed_end && p < log.size(); ++p)
      if (removed(log[p])) log[p].gone = true;
  }
  bool visible(std::uint64_t p) const { return !log[p].gone && !removed(log[p]); }
};

class StoreLifecycleModelTest : public StoreFixture {
 protected:
  void TearDown() override { close(); }
  engine::FaultInjectionFileSystem ffs_;
};

TEST_F(StoreLifecycleModelTest, EveryReadEqualsTheModel) {
  const std::uint64_t ops = test::env_u64("ANNAL_MODEL_OPS", 800);
  const std::uint64_t seed = test::env_u64("ANNAL_MODEL_SEED", 1);
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t n) { return rng() % n; };
  fs_ = &ffs_;
  segment_size_ = 64u << 10;
  memtable_ = 64;
  open();
  Model model;
  std::vector<std::string> names;
  for (const char* c : {"a", "b", "c"})
    for (int i = 0; i < 5; ++i) names.push_back(std::string(c) + "-" + std::to_string(i));
  const std::string pad(400, 'x');
  std::uint64_t next_id = 1;
  std::uint64_t rewritten = 0, removed = 0;  // the scavenges did something
  auto sealed_end = [&] { return store_->log().segments().back().first.value; };

  auto check = [&](std::uint64_t step, const char* op) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " step " << step << " (" << op << ")");
    for (const auto& name : names) {
      const Model::Stream& s = model.streams[name];
      auto r = store_->read_stream(name, StreamRevision(0), 1u << 20, Direction::kForward);
      if (s.rules.tombstoned) {
        EXPECT_EQ(r.status().code(), Errc::kStreamDeleted) << name;
        continue;
      }
      if (!s.head || model.deleted(s)) {
        EXPECT_EQ(r.status().code(), Errc::kStreamNotFound) << name;
        EXPECT_EQ(store_->last_revision(name).status().code(), Errc::kStreamNotFound) << name;
        continue;
      }
      ASSERT_TRUE(r) << name << ": " << r.status().to_string();
      std::vector<std::uint64_t> want, got;
      for (std::uint64_t p = 0; p < model.log.size(); ++p)
        if (model.log[p].stream == name && model.visible(p)) want.push_back(model.log[p].revision);
      for (const auto& e : *r) got.push_back(e.revision.value);
      EXPECT_EQ(got, want) << name;
      auto last = store_->last_revision(name);
      ASSERT_TRUE(last) << name;
      EXPECT_EQ(last->value, *s.head) << name;
    }
    std::vector<std::uint64_t> want_all, got_all;
    for (std::uint64_t p = 0; p < model.log.size(); ++p)
      if (model.visible(p)) want_all.push_back(p);
    const Removal rm = store_->removal();
    ASSERT_TRUE(
        store_->log().scan_forward(GlobalPosition(0), UINT64_MAX, [&](const engine::RecordView& v) {
          if (!rm.removed(v)) got_all.push_back(v.position.value);
          return true;
        }));
    EXPECT_EQ(got_all, want_all);
    std::vector<std::uint64_t> want_a, got_a;
    for (std::uint64_t p : want_all)
      if (model.log[p].stream.starts_with("a-")) want_a.push_back(p);
    ASSERT_TRUE(store_->visit_index(IndexKind::kCategory, "a", GlobalPosition(0),
                                    Direction::kForward, GlobalPosition(UINT64_MAX),
                                    [&](const engine::RecordView& v) {
                                      got_a.push_back(v.position.value);
                                      return true;
                                    }));
    EXPECT_EQ(got_a, want_a);
  };

  for (std::uint64_t step = 0; step < ops && !HasFailure(); ++step) {
    const std::string& name = names[pick(names.size())];
    const std::uint64_t what = pick(100);
    const char* op = "";
    if (what < 55) {
      op = "append";
      const Rev e = pick(4) == 0   ? Rev::no_stream()
                    : pick(6) == 0 ? Rev::stream_exists()
                                   : Rev::any();
      const std::uint64_t n = 1 + pick(3);
      std::vector<std::uint64_t> ids;
      for (std::uint64_t i = 0; i < n; ++i) ids.push_back(next_id++);
      std::uint64_t first_rev = 0;
      const Errc want = model.append(name, e, n, first_rev);
      auto o = append(name, e, ids, "{\"p\":\"" + pad + "\"}");
      ASSERT_EQ(o.status.code(), want) << "step " << step << " " << o.status.to_string();
      if (want == Errc::kOk) {
        EXPECT_EQ(o.first_revision.value, first_rev) << "step " << step;
      }
    } else if (what < 68) {
      op = "metadata";
      MetadataFields f;
      const std::uint64_t head = model.streams[name].head.value_or(0);
      switch (pick(3)) {
        case 0:
          f.max_count = 1 + pick(5);
          break;
        case 1:
          f.truncate_before = pick(head + 3);
          break;
        default:
          break;
      }
      std::string json = "{";
      if (f.max_count) json += "\"max_count\":" + std::to_string(*f.max_count);
      if (f.truncate_before) json += "\"truncate_before\":" + std::to_string(f.truncate_before);
      json += "}";
      const Errc want = model.set_metadata(name, f);
      auto o = store_->set_metadata_sync(name, Rev::any(), json);
      ASSERT_EQ(o.status.code(), want) << "step " << step << " " << o.status.to_string();
    } else if (what < 76) {
      const bool hard = pick(10) == 0;
      op = hard ? "hard delete" : "delete";
      const Errc want = model.remove(name, hard);
      auto o = store_->delete_stream_sync(name, Rev::any(), hard);
      ASSERT_EQ(o.status.code(), want) << "step " << step << " " << o.status.to_string();
    } else if (what < 86) {
      op = "scavenge";
      const std::uint64_t end = sealed_end();
      auto r = store_->scavenge({});
      ASSERT_TRUE(r) << r.status().to_string();
      rewritten += r->segments_rewritten;
      removed += r->events_removed;
      model.scavenge(end);
    } else if (what < 91) {
      op = "crash in a scavenge";
      const std::uint64_t end = sealed_end();
      ffs_.freeze_after(1 + pick(30), rng());
      (void)store_->scavenge({});
      skip_flush_ = true;
      close();
      skip_flush_ = false;
      ASSERT_TRUE(ffs_.crash(rng()).is_ok());
      open();
      check(step, "after the crash, before the scavenge resumes");
      auto r = store_->scavenge({});
      ASSERT_TRUE(r) << r.status().to_string();
      model.scavenge(end);
    } else if (what < 96) {
      op = "restart";
      close();
      open();
    } else {
      op = "kill";
      skip_flush_ = true;
      close();
      skip_flush_ = false;
      open();
    }
    check(step, op);
  }
  std::printf(
      "lifecycle model: %llu operations, %zu events, %zu segments; scavenges rewrote %llu "
      "segments, %llu events\n",
      static_cast<unsigned long long>(ops), model.log.size(), store_->log().segments().size(),
      static_cast<unsigned long long>(rewritten), static_cast<unsigned long long>(removed));
  EXPECT_GT(rewritten, 0u);
}

}  // namespace
}  // namespace annal::index::testing
