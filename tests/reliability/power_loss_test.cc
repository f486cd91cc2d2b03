// Simulated power loss, in-process (RocksDB's FaultInjectionTestFS, LevelDB's
// fault_injection_test, TigerBeetle's VOPR in miniature): random appends
// through index::Store on a FaultInjectionFileSystem; the "process dies" at a
// random mutating file operation (freeze_after: a write torn there, every
// later operation failing), then power is lost (every unsynced write dropped,
// the newest one torn at a random byte, unsynced file creations and renames
// undone). Tiny segments and a tiny memtable make the crash land often in
// segment rolls and in index file / manifest writes. After each reopen:
//   - every acknowledged event is present, with identical content, at its
//     global position and stream revision (read through the log and through
//     the stream index);
//   - positions are dense from 0, no event id appears twice, and every event
//     present was one some client tried to append;
//   - stream revisions are dense from 0;
//   - a retry of an acknowledged append is deduplicated to its original
//     positions, also after restarts.
//
// ANNAL_POWER_LOSS_SEEDS (default 60) seeds x ANNAL_POWER_LOSS_ROUNDS
// (default 5) crashes; ANNAL_POWER_LOSS_SEED_BASE picks the first seed, so a
// failure printed as "seed N" replays with ANNAL_POWER_LOSS_SEED_BASE=N
// ANNAL_POWER_LOSS_SEEDS=1.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/fault_fs.h"
#include "engine/format.h"
#include "engine/log.h"
#include "index/store.h"
#include "tests/reliability/reliability_util.h"

namespace annal::reliability {
namespace {

namespace format = engine::format;

struct Acked {
  index::StreamAppend request;  // as sent (for retries)
  std::uint64_t first_position = 0;
  std::uint64_t first_revision = 0;
};

using TearMode = engine::FaultInjectionFileSystem::TearMode;

struct RunConfig {
  std::uint64_t seed = 0;
  std::uint64_t rounds = 5;
  bool ack_before_sync = false;
  TearMode tear = TearMode::kPrefix;
};

struct RunResult {
  std::vector<std::string> problems;  // every violation found, in order
  std::uint64_t lost_acked = 0;       // acknowledged events missing or changed
  std::uint64_t acked_events = 0;
  std::uint64_t crashes = 0;
  std::uint64_t index_rebuilds = 0;
  std::uint64_t torn_bytes_cut = 0;
  std::uint64_t out_of_order_writes = 0;  // kSectors: writes that kept a sector after a lost one
  std::uint64_t out_of_order_cut = 0;     // tails recovery cut as torn out of order
};

class PowerLossRun {
 public:
  PowerLossRun(const std::string& dir, RunConfig cfg)
      : dir_(dir), cfg_(cfg), rng_(cfg.seed * 0x9E3779B97F4A7C15ull + 1) {}

  RunResult run() {
    for (std::uint64_t round = 0; round <= cfg_.rounds; ++round) {
      auto store = open_store();
      if (!store) return std::move(result_);
      verify(*store, round);
      if (round == cfg_.rounds) break;
      retry_some(*store);
      // The process dies at one of the next mutating file operations: the
      // freeze may land in a data write, an fdatasync, a segment roll
      // (create/allocate/header/.idx/rename) or the index's file writes.
      fs_.freeze_after(1 + rng_() % 120, rng_());
      work(*store);
      store.reset();  // what the dead process left is already decided
      ++result_.crashes;
      Status st = fs_.crash(rng_(), {.mode = cfg_.tear});
      result_.out_of_order_writes = fs_.out_of_order_tears();
      if (!st.is_ok()) {
        problem(fmt::format("crash() failed: {}", st.to_string()));
        return std::move(result_);
      }
    }
    return std::move(result_);
  }

 private:
  std::unique_ptr<index::Store> open_store() {
    index::StoreOptions o;
    o.log.dir = dir_;
    o.log.segment_size = format::kMinSegmentSize;  // 64 KiB: a roll every ~60 events
    o.log.min_free_bytes = 0;
    o.log.fs = &fs_;
    o.log.test_ack_before_sync = cfg_.ack_before_sync;
    o.memtable_entries = 16;   // an index file write every 16 events
    o.index_merge_fanout = 2;  // and merges often
    o.idempotency_window = 1u << 16;
    o.test_skip_index_flush_on_close = (rng_() % 2) == 0;
    // Half the reopens write idle appends on the appending thread.
    o.log.write_when_idle = (rng_() % 2) == 0;
    auto s = index::Store::open(std::move(o));
    if (!s) {
      problem(
          fmt::format("reopen after crash {} failed: {}", result_.crashes, s.status().to_string()));
      return nullptr;
    }
    const auto& rec = (*s)->log().recovery();
    result_.torn_bytes_cut += rec.torn_bytes_cut;
    result_.out_of_order_cut += rec.out_of_order_tears_cut;
    if (!(*s)->stats().last_rebuild_reason.empty()) {
      ++result_.index_rebuilds;
      if (std::getenv("ANNAL_POWER_LOSS_VERBOSE"))
        std::printf("index rebuilt: %s\n", (*s)->stats().last_rebuild_reason.c_str());
    }
    return std::move(s).value();
  }

  void problem(std::string p) {
    if (result_.problems.size() < 50)
      result_.problems.push_back(fmt::format("seed {}: {}", cfg_.seed, p));
  }

  // ---- the workload ----

  index::StreamAppend make_append() {
    index::StreamAppend a;
    const std::uint64_t s = rng_() % 6;
    a.stream = fmt::format("stream-{}", s);
    const std::size_t n = 1 + rng_() % (rng_() % 4 == 0 ? 12 : 3);
    for (std::size_t i = 0; i < n; ++i) {
      index::NewEvent e;
      e.id = random_id(rng_);
      e.type = fmt::format("Type{}", rng_() % 5);
      e.flags = format::kFlagDataJson | ((rng_() % 2) ? format::kFlagMetadataJson : 0u);
      e.metadata =
          (e.flags & format::kFlagMetadataJson) ? random_json(rng_, rng_() % 20) : std::string();
      e.data = random_json(rng_, 20 + rng_() % (rng_() % 8 == 0 ? 3000 : 400));
      // A third carry the record extension (tags in any order, repeats
      // allowed: the store normalises them; sometimes ids), so torn writes
      // and recovery meet extended records too.
      if (rng_() % 3 == 0) {
        for (std::uint64_t t = 0, k = 1 + rng_() % 3; t < k; ++t)
          e.tags.push_back(fmt::format("k{}:v{}", rng_() % 4, rng_() % 3));
        if (rng_() % 2) e.correlation_id = fmt::format("corr-{}", rng_() % 1000);
        if (rng_() % 4 == 0) e.causation_id = fmt::format("cause-{}", rng_() % 1000);
      }
      attempted_ids_.insert(e.id);
      a.events.push_back(std::move(e));
    }
    // Mixed expectations: mostly any, sometimes the exact revision we last
    // saw acknowledged (may be stale: a wrong-expected-revision answer is
    // fine), no_stream, stream_exists.
    switch (rng_() % 6) {
      case 0: {
        auto it = last_acked_rev_.find(a.stream);
        a.expected = it == last_acked_rev_.end() ? ExpectedRevision::no_stream()
                                                 : ExpectedRevision::exact(it->second);
        break;
      }
      case 1:
        a.expected = ExpectedRevision::stream_exists();
        break;
      case 2:
        a.expected = ExpectedRevision::no_stream();
        break;
      default:
        a.expected = ExpectedRevision::any();
        break;
    }
    return a;
  }

  // Appends in waves of concurrent requests (so the log group-commits them)
  // until the file system froze or a budget ran out.
  void work(index::Store& store) {
    const int waves = 40;
    for (int w = 0; w < waves && !fs_.frozen(); ++w) {
      const int k = 1 + static_cast<int>(rng_() % 8);
      std::mutex mu;
      std::condition_variable cv;
      int outstanding = k;
      std::vector<std::pair<index::StreamAppend, engine::AppendOutcome>> done(k);
      for (int i = 0; i < k; ++i) {
        // Sometimes re-send an append whose outcome we never learned (its
        // ids): it must be written once at most.
        index::StreamAppend a = (!unknown_.empty() && rng_() % 5 == 0)
                                    ? unknown_[rng_() % unknown_.size()]
                                    : make_append();
        done[i].first = a;
        store.append(std::move(a), [&, i](const engine::AppendOutcome& out) {
          std::lock_guard<std::mutex> lock(mu);
          done[i].second = out;
          if (--outstanding == 0) cv.notify_all();
        });
      }
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return outstanding == 0; });
      }
      for (auto& [req, out] : done) record(req, out);
    }
  }

  void record(const index::StreamAppend& req, const engine::AppendOutcome& out) {
    if (!out.status.is_ok()) {
      if (out.status.code() != Errc::kWrongExpectedRevision) unknown_.push_back(req);
      return;
    }
    if (out.count != req.events.size()) {
      problem(fmt::format("ack for {} events says count {}", req.events.size(), out.count));
      return;
    }
    // A retry answered "deduplicated" must point at the original events,
    // which then count as acknowledged too (they were durable).
    Acked a{req, out.first_position.value, out.first_revision.value};
    auto it = acked_by_first_id_.find(req.events.front().id);
    if (it != acked_by_first_id_.end()) {
      const Acked& prev = acked_[it->second];
      if (prev.first_position != a.first_position || prev.first_revision != a.first_revision)
        problem(fmt::format(
            "append with first id {} acknowledged at position {} rev {} and again at position "
            "{} rev {} (deduplicated={})",
            req.events.front().id.to_string(), prev.first_position, prev.first_revision,
            a.first_position, a.first_revision, out.deduplicated));
      return;
    }
    for (std::size_t i = 0; i < req.events.size(); ++i) {
      const std::uint64_t pos = a.first_position + i;
      if (acked_pos_.count(pos)) problem(fmt::format("position {} acknowledged twice", pos));
      acked_pos_[pos] = {acked_.size(), i};
    }
    auto& last = last_acked_rev_[req.stream];
    last = std::max(last, a.first_revision + req.events.size() - 1);
    acked_by_first_id_[req.events.front().id] = acked_.size();
    result_.acked_events += req.events.size();
    acked_.push_back(std::move(a));
  }

  // Retries of acknowledged appends (same ids, same expectation) must be
  // deduplicated to the original result, also across restarts.
  void retry_some(index::Store& store) {
    if (acked_.empty()) return;
    for (int i = 0; i < 3; ++i) {
      const Acked& a = acked_[rng_() % acked_.size()];
      if (last_checked_end_ > 0 &&
          a.first_position + a.request.events.size() + 60000 < last_checked_end_)
        continue;
      auto out = store.append_sync(a.request);
      if (!out.status.is_ok()) {
        problem(fmt::format("retry of acknowledged append at position {} failed: {}",
                            a.first_position, out.status.to_string()));
      } else if (!out.deduplicated || out.first_position.value != a.first_position ||
                 out.first_revision.value != a.first_revision) {
        problem(fmt::format(
            "retry of acknowledged append at position {} rev {} answered position {} rev {} "
            "deduplicated={}",
            a.first_position, a.first_revision, out.first_position.value, out.first_revision.value,
            out.deduplicated));
      }
    }
  }

  // ---- the checks ----

  static bool same_event(const engine::EventRecord& r, const index::StreamAppend& req,
                         std::size_t i, std::uint64_t pos, std::uint64_t rev) {
    const auto& e = req.events[i];
    std::vector<std::string> tags = e.tags;  // as the store stores them
    std::sort(tags.begin(), tags.end());
    tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
    return r.position.value == pos && r.revision.value == rev && r.stream == req.stream &&
           r.id == e.id && r.type == e.type && r.metadata == e.metadata && r.data == e.data &&
           (r.flags & ~format::kFlagCommit) == e.flags && r.tags == tags &&
           r.correlation_id == e.correlation_id && r.causation_id == e.causation_id && r.epoch == 0;
  }

  void verify(index::Store& store, std::uint64_t round) {
    const std::uint64_t end = store.log().durable_end().value;
    last_checked_end_ = end;
    // Acknowledged events, through the log.
    for (const auto& [pos, where] : acked_pos_) {
      const Acked& a = acked_[where.first];
      const std::uint64_t rev = a.first_revision + where.second;
      if (pos >= end) {
        ++result_.lost_acked;
        problem(fmt::format(
            "after crash {}: acknowledged event at position {} (stream {} rev {}) lost: log "
            "ends at {}",
            round, pos, a.request.stream, rev, end));
        continue;
      }
      auto r = store.log().read(GlobalPosition(pos));
      if (!r) {
        ++result_.lost_acked;
        problem(fmt::format("after crash {}: reading acknowledged position {}: {}", round, pos,
                            r.status().to_string()));
      } else if (!same_event(*r, a.request, where.second, pos, rev)) {
        ++result_.lost_acked;
        problem(fmt::format(
            "after crash {}: position {} holds stream {} rev {} id {}, acknowledged was "
            "stream {} rev {} id {} (or content differs)",
            round, pos, r->stream, r->revision.value, r->id.to_string(), a.request.stream, rev,
            a.request.events[where.second].id.to_string()));
      }
    }
    // Dense positions, unique ids, nothing nobody appended.
    std::uint64_t expect = 0;
    std::set<EventId> seen;
    std::map<std::string, std::vector<std::pair<std::uint64_t, std::uint64_t>>>
        by_stream;  // rev, pos
    Status st =
        store.log().scan_forward(GlobalPosition(0), UINT64_MAX, [&](const engine::RecordView& v) {
          if (v.position.value != expect)
            problem(fmt::format("after crash {}: scan found position {} where {} was due", round,
                                v.position.value, expect));
          expect = v.position.value + 1;
          if (!seen.insert(v.id).second)
            problem(fmt::format("after crash {}: event id {} stored twice (second at position {})",
                                round, v.id.to_string(), v.position.value));
          if (!attempted_ids_.count(v.id))
            problem(fmt::format("after crash {}: position {} holds id {} that nobody appended",
                                round, v.position.value, v.id.to_string()));
          if ((v.flags & format::kFlagLost) == 0)
            by_stream[std::string(v.stream)].emplace_back(v.revision.value, v.position.value);
          return true;
        });
    if (!st.is_ok()) problem(fmt::format("after crash {}: scan failed: {}", round, st.to_string()));
    if (expect != end)
      problem(
          fmt::format("after crash {}: scan ended at {}, durable end is {}", round, expect, end));
    // Stream revisions dense, and the stream index agrees with the log.
    for (auto& [stream, entries] : by_stream) {
      for (std::size_t i = 0; i < entries.size(); ++i)
        if (entries[i].first != i)
          problem(fmt::format(
              "after crash {}: stream {} has revision {} at its {}-th event (position {})", round,
              stream, entries[i].first, i, entries[i].second));
      auto rs =
          store.read_stream(stream, StreamRevision(0), UINT64_MAX, index::Direction::kForward);
      if (!rs) {
        problem(fmt::format("after crash {}: read_stream({}) failed: {}", round, stream,
                            rs.status().to_string()));
        continue;
      }
      if (rs->size() != entries.size()) {
        problem(fmt::format("after crash {}: read_stream({}) returned {} events, the log holds {}",
                            round, stream, rs->size(), entries.size()));
        continue;
      }
      for (std::size_t i = 0; i < entries.size(); ++i)
        if ((*rs)[i].position.value != entries[i].second ||
            (*rs)[i].revision.value != entries[i].first)
          problem(fmt::format(
              "after crash {}: read_stream({}) revision {} at position {}, the log has it at {}",
              round, stream, (*rs)[i].revision.value, (*rs)[i].position.value, entries[i].second));
      auto last = store.last_revision(stream);
      if (!last || last->value + 1 != entries.size())
        problem(fmt::format("after crash {}: last_revision({}) disagrees with the log ({} events)",
                            round, stream, entries.size()));
    }
    // What we did not hear back about is now settled: present or absent.
    unknown_.erase(std::remove_if(unknown_.begin(), unknown_.end(),
                                  [&](const index::StreamAppend& a) {
                                    return seen.count(a.events.front().id) == 0 && rng_() % 2 == 0;
                                  }),
                   unknown_.end());
  }

  std::string dir_;
  RunConfig cfg_;
  std::mt19937_64 rng_;
  engine::FaultInjectionFileSystem fs_;
  RunResult result_;

  std::vector<Acked> acked_;
  std::map<std::uint64_t, std::pair<std::size_t, std::size_t>>
      acked_pos_;  // pos -> (acked_ index, event)
  std::map<EventId, std::size_t> acked_by_first_id_;
  std::map<std::string, std::uint64_t> last_acked_rev_;
  std::set<EventId> attempted_ids_;
  std::vector<index::StreamAppend> unknown_;  // outcome not learned (failed by the crash)
  std::uint64_t last_checked_end_ = 0;
};

RunResult run_seed(std::uint64_t seed, bool ack_before_sync, std::uint64_t rounds,
                   TearMode tear = TearMode::kPrefix) {
  // Every crash makes the log and the index report failures: expected here.
  spdlog::set_level(spdlog::level::critical);
  TempDir dir("annal-powerloss", /*in_memory=*/true);
  PowerLossRun run(dir.path(), RunConfig{seed, rounds, ack_before_sync, tear});
  return run.run();
}

struct Totals {
  std::uint64_t seeds = 0, crashes = 0, acked = 0, rebuilds = 0, torn = 0;
  std::uint64_t out_of_order_writes = 0, out_of_order_cut = 0;
};

Totals run_seeds(TearMode tear, std::uint64_t default_seeds) {
  const std::uint64_t base = env_u64("ANNAL_POWER_LOSS_SEED_BASE", 1);
  const std::uint64_t seeds = env_u64("ANNAL_POWER_LOSS_SEEDS", default_seeds);
  const std::uint64_t rounds = env_u64("ANNAL_POWER_LOSS_ROUNDS", 5);
  Totals t;
  t.seeds = seeds;
  for (std::uint64_t s = base; s < base + seeds; ++s) {
    RunResult r = run_seed(s, /*ack_before_sync=*/false, rounds, tear);
    for (const auto& p : r.problems) ADD_FAILURE() << p;
    t.crashes += r.crashes;
    t.acked += r.acked_events;
    t.rebuilds += r.index_rebuilds;
    t.torn += r.torn_bytes_cut;
    t.out_of_order_writes += r.out_of_order_writes;
    t.out_of_order_cut += r.out_of_order_cut;
    if (!r.problems.empty()) {
      ADD_FAILURE() << "replay: ANNAL_POWER_LOSS_SEED_BASE=" << s << " ANNAL_POWER_LOSS_SEEDS=1";
      break;
    }
  }
  std::printf(
      "power loss (%s tears): %llu seeds, %llu crashes, %llu acknowledged events checked, %llu "
      "torn bytes cut, %llu index rebuilds, %llu writes torn out of order, %llu tails cut as torn "
      "out of order\n",
      tear == TearMode::kPrefix ? "prefix" : "sector", static_cast<unsigned long long>(t.seeds),
      static_cast<unsigned long long>(t.crashes), static_cast<unsigned long long>(t.acked),
      static_cast<unsigned long long>(t.torn), static_cast<unsigned long long>(t.rebuilds),
      static_cast<unsigned long long>(t.out_of_order_writes),
      static_cast<unsigned long long>(t.out_of_order_cut));
  EXPECT_GT(t.acked, 0u) << "the workload acknowledged nothing: the test would prove nothing";
  EXPECT_GE(t.crashes, seeds * rounds);
  return t;
}

TEST(PowerLossTest, EveryAcknowledgedAppendSurvivesRandomCrashes) {
  run_seeds(TearMode::kPrefix, 60);
}

// A disk with a volatile cache may persist any subset of an unsynced write's
// sectors at a power loss, a later one without an earlier one. Every unsynced
// write of every file (segments, index files, MANIFEST) keeps a random subset
// of its 512-byte sectors; acknowledged events must survive all the same, and
// the node must open (recovery cuts such a tail as torn, rule 5 of
// docs/storage-format.md).
TEST(PowerLossTest, EveryAcknowledgedAppendSurvivesCrashesThatTearWritesBySector) {
  const Totals t = run_seeds(TearMode::kSectors, 40);
  // Otherwise the test would not have exercised what it is named after.
  EXPECT_GT(t.out_of_order_writes, 0u);
  EXPECT_GT(t.out_of_order_cut, 0u) << "no crash left a log tail torn out of order";
}

// The acceptance check of the test itself: with a deliberately broken
// durability contract (LogOptions::test_ack_before_sync: acknowledge before
// fdatasync) the same run must report lost acknowledged events. If this test
// fails, the power-loss test above has gone blind.
TEST(PowerLossTest, DetectsLostAcknowledgedAppendsWhenAckPrecedesSync) {
  const std::uint64_t base = env_u64("ANNAL_POWER_LOSS_SEED_BASE", 1);
  std::uint64_t detected_at = 0;
  std::string example;
  for (std::uint64_t s = base; s < base + 24 && detected_at == 0; ++s) {
    RunResult r = run_seed(s, /*ack_before_sync=*/true, 5);
    if (r.lost_acked > 0) {
      detected_at = s;
      for (const auto& p : r.problems)
        if (p.find("acknowledged") != std::string::npos) {
          example = p;
          break;
        }
    }
  }
  ASSERT_NE(detected_at, 0u)
      << "acknowledging before fdatasync lost nothing the test could see in 24 seeds";
  std::printf("broken durability detected at seed %llu: %s\n",
              static_cast<unsigned long long>(detected_at), example.c_str());
}

}  // namespace
}  // namespace annal::reliability
