// A seeded model-based randomized test: random appends (random expectations,
// repeated and partly repeated ids), reads, clean restarts, kills and crashes
// in the middle of an append, checked against a simple in-memory model.
//   ANNAL_MODEL_OPS=N   operations (default 600)
//   ANNAL_MODEL_SEED=S  seed (default 1); a failure prints the seed and step.

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "engine/fault_fs.h"
#include "index/entry.h"
#include "tests/index/store_fixture.h"

namespace annal::index::testing {
namespace {

struct LogEntry {
  std::string stream;
  std::uint64_t id;
  std::uint64_t revision;
};

// The reference: the log as a list, streams as lists of positions.
class Model {
 public:
  explicit Model(std::uint64_t window) : window_(window) {}

  struct Outcome {
    Errc code = Errc::kOk;
    bool dedup = false;
    std::uint64_t first_position = 0, first_revision = 0;
    std::optional<std::uint64_t> actual;
  };

  std::optional<std::uint64_t> head(const std::string& s) const {
    auto it = streams_.find(s);
    if (it == streams_.end() || it->second.empty()) return std::nullopt;
    return it->second.size() - 1;
  }
  const std::vector<std::uint64_t>& positions(const std::string& s) { return streams_[s]; }
  const std::vector<LogEntry>& log() const { return log_; }

  Outcome decide(const std::string& s, Rev e, const std::vector<std::uint64_t>& ids) const {
    auto h = head(s);
    Outcome wrong{Errc::kWrongExpectedRevision, false, 0, 0, h};
    auto at_revisions = [&](std::uint64_t r0) -> std::optional<Outcome> {
      auto it = streams_.find(s);
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (r0 + i >= it->second.size() || log_[it->second[r0 + i]].id != ids[i])
          return std::nullopt;
      }
      return Outcome{Errc::kOk, true, it->second[r0], r0, {}};
    };
    switch (e.kind) {
      case Rev::Kind::kStreamExists:
        if (!h) return wrong;
        [[fallthrough]];
      case Rev::Kind::kAny: {
        const std::uint64_t lo = log_.size() > window_ ? log_.size() - window_ : 0;
        bool hit = false;
        for (std::uint64_t p = lo; p < log_.size(); ++p)
          for (auto id : ids) hit |= log_[p].id == id;
        if (!hit) return write(s, h, ids);
        for (std::uint64_t p = lo; p < log_.size(); ++p) {
          if (log_[p].id != ids[0]) continue;
          bool all = true;
          for (std::size_t i = 0; i < ids.size() && all; ++i)
            all = p + i < log_.size() && log_[p + i].id == ids[i] && log_[p + i].stream == s;
          if (all) return Outcome{Errc::kOk, true, p, log_[p].revision, {}};
        }
        return wrong;
      }
      case Rev::Kind::kNoStream:
        if (!h) return write(s, h, ids);
        if (auto d = at_revisions(0)) return *d;
        return wrong;
      case Rev::Kind::kExact:
        if (!h || *h < e.revision.value) return wrong;
        if (*h == e.revision.value) return write(s, h, ids);
        if (auto d = at_revisions(e.revision.value + 1)) return *d;
        return wrong;
    }
    return wrong;
  }
  void apply(const std::string& s, const std::vector<std::uint64_t>& ids) {
    auto& v = streams_[s];
    for (auto id : ids) {
      v.push_back(log_.size());
      log_.push_back(LogEntry{s, id, v.size() - 1});
    }
  }

 private:
  Outcome write(const std::string&, std::optional<std::uint64_t> h,
                const std::vector<std::uint64_t>&) const {
    return Outcome{Errc::kOk, false, log_.size(), h ? *h + 1 : 0, {}};
  }
  std::uint64_t window_;
  std::vector<LogEntry> log_;
  std::map<std::string, std::vector<std::uint64_t>> streams_;
};

class StoreModelTest : public StoreFixture {};

TEST_F(StoreModelTest, EveryResultEqualsTheModel) {
  const std::uint64_t ops = test::env_u64("ANNAL_MODEL_OPS", 600);
  const std::uint64_t seed = test::env_u64("ANNAL_MODEL_SEED", 1);
  std::mt19937_64 rng(seed);
  engine::FaultInjectionFileSystem ffs;
  fs_ = &ffs;
  // The fixture's store outlives this body; close it before ffs goes, or its
  // background index thread may still write through a destroyed file system
  // (ASan: heap-use-after-free in FaultInjectionFileSystem::do_sync).
  auto close_store = [this] { close(); };
  struct CloseStoreFirst {
    decltype(close_store)& close;
    ~CloseStoreFirst() { close(); }
  } close_store_first{close_store};
  memtable_ = 8;
  window_ = 24;
  head_cache_ = 4;
  segment_size_ = 64u << 10;
  hash_ = [](std::string_view s) { return xxh3_stream_hash(s) % 3; };  // many collisions
  open();
  Model model(window_);
  const std::vector<std::string> names{"a", "b", "c", "d", "e", "f", "g", "h"};
  std::vector<std::vector<std::uint64_t>> sent;  // ids of earlier appends, for retries
  std::uint64_t next_id = 1;
  auto pick = [&](std::uint64_t n) { return static_cast<std::uint64_t>(rng() % n); };

  for (std::uint64_t step = 0; step < ops; ++step) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " step " << step);
    const std::uint64_t what = pick(100);
    const std::string& s = names[pick(names.size()) * pick(names.size()) / names.size()];
    if (what < 70) {
      // An append: fresh ids, a retry of earlier ids, or a partial retry.
      std::vector<std::uint64_t> ids;
      const std::uint64_t kind = pick(10);
      if (kind < 3 && !sent.empty()) {
        ids = sent[sent.size() - 1 - pick(std::min<std::size_t>(sent.size(), 6))];
        if (kind == 0) ids.push_back(next_id++);
      } else {
        for (std::uint64_t i = 0, n = 1 + pick(3); i < n; ++i) ids.push_back(next_id++);
      }
      auto h = model.head(s);
      Rev e;
      switch (pick(6)) {
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
        case 4:
          e = Rev::exact(h && *h > 0 ? *h - 1 - pick(*h) : pick(3));
          break;
        default:
          e = h ? Rev::exact(*h) : Rev::no_stream();
          break;
      }
      const bool crash_now = pick(100) < 3;
      if (crash_now) ffs.freeze_after(1 + pick(4), rng());
      auto want = model.decide(s, e, ids);
      auto got = append(s, e, ids);
      if (crash_now) {
        const bool acked = got.status.is_ok();
        close();
        ASSERT_TRUE(ffs.crash(rng()).is_ok());
        open();
        // Acknowledged: it must be there. Not acknowledged: all or nothing.
        const auto have = store_->read_stream(s, StreamRevision(0), 1u << 20, Direction::kForward);
        const std::size_t before = model.head(s) ? *model.head(s) + 1 : 0;
        const std::size_t now = have ? have->size() : 0;
        if (want.code == Errc::kOk && !want.dedup && (acked || now > before)) {
          ASSERT_EQ(now, before + ids.size());
          model.apply(s, ids);
          sent.push_back(ids);
        } else {
          ASSERT_EQ(now, before);
        }
        continue;
      }
      ASSERT_EQ(got.status.code(), want.code)
          << got.status.to_string() << " expected " << e.to_string();
      if (want.code == Errc::kOk) {
        EXPECT_EQ(got.deduplicated, want.dedup);
        EXPECT_EQ(got.first_position.value, want.first_position);
        EXPECT_EQ(got.first_revision.value, want.first_revision);
        EXPECT_EQ(got.count, ids.size());
        if (!want.dedup) {
          model.apply(s, ids);
          sent.push_back(ids);
        }
      } else {
        EXPECT_EQ(got.actual_revision.has_value(), want.actual.has_value());
        if (got.actual_revision && want.actual) {
          EXPECT_EQ(got.actual_revision->value, *want.actual);
        }
      }
    } else if (what < 90) {
      // A read: forward or backward, random start and count.
      const auto& pos = model.positions(s);
      const std::uint64_t count = 1 + pick(6);
      const bool fwd = pick(2) == 0;
      const std::uint64_t from = pick(pos.size() + 2);
      auto r = store_->read_stream(s, StreamRevision(fwd || pick(3) ? from : UINT64_MAX), count,
                                   fwd ? Direction::kForward : Direction::kBackward);
      if (pos.empty()) {
        ASSERT_EQ(r.status().code(), Errc::kStreamNotFound);
        ASSERT_EQ(store_->last_revision(s).status().code(), Errc::kStreamNotFound);
        continue;
      }
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      std::vector<std::uint64_t> want;
      if (fwd) {
        for (std::uint64_t i = from; i < pos.size() && want.size() < count; ++i)
          want.push_back(pos[i]);
      } else {
        std::uint64_t start =
            std::min<std::uint64_t>(r->empty() ? 0 : (*r)[0].revision.value, pos.size() - 1);
        start = std::min<std::uint64_t>(start, pos.size() - 1);
        for (std::uint64_t i = start + 1; i-- > 0 && want.size() < count;) want.push_back(pos[i]);
      }
      std::vector<std::uint64_t> got;
      for (const auto& ev : *r) {
        got.push_back(ev.position.value);
        EXPECT_EQ(ev.stream, s);
        EXPECT_EQ(ev.id, make_id(model.log()[ev.position.value].id));
        EXPECT_EQ(ev.revision.value, model.log()[ev.position.value].revision);
      }
      ASSERT_EQ(got, want) << s << (fwd ? " forward from " : " backward from ") << from << " count "
                           << count;
      ASSERT_EQ(store_->last_revision(s)->value, pos.size() - 1);
    } else if (what < 95) {
      open();  // clean restart
    } else {
      // A kill: the index memtable is not written out, unsynced writes are lost.
      skip_flush_ = true;
      close();
      ASSERT_TRUE(ffs.crash(rng()).is_ok());
      skip_flush_ = false;
      open();
    }
  }
  // Final full comparison, after one more restart.
  open();
  for (const auto& s : names) {
    std::vector<std::uint64_t> want;
    for (auto p : model.positions(s)) want.push_back(model.log()[p].id);
    EXPECT_EQ(ids_of(s), want) << s;
  }
}

}  // namespace
}  // namespace annal::index::testing
