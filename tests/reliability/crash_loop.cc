// Crash loop against the real node (RocksDB's db_crashtest in miniature).
//
// Starts annald on a temporary directory with tiny segments and a tiny
// memtable (so segment rolls and index file writes happen all the time),
// runs several client threads that append single events and batches with
// mixed expected revisions, and re-send appends whose outcome they did not
// learn (same event ids). Every acknowledged append is recorded here,
// outside the node. At a random moment the node gets SIGKILL; then
// `annal verify DIR` must exit 0, the node is restarted, and:
//   - every acknowledged event is readable at its position with identical
//     stream, revision, id, type, flags, metadata and data;
//   - positions are dense from 0 with no event id twice;
//   - reading each stream by revision agrees with the log;
//   - a re-sent acknowledged append is deduplicated to its original result.
//
//   crash_loop --annald PATH --annal PATH [--cycles N] [--seed S]
//   ANNAL_CRASH_CYCLES overrides --cycles; ANNAL_CRASH_SEED overrides --seed.
// Exit 0 when every check passed; 1 with the violations listed otherwise.

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/format.h"
#include "net/client.h"
#include "tests/reliability/node_process.h"
#include "tests/reliability/reliability_util.h"

using namespace annal;
using namespace annal::reliability;
namespace proto = annal::net::proto;
namespace format = annal::engine::format;

namespace {

constexpr std::uint32_t kJsonFlags = format::kFlagDataJson | format::kFlagMetadataJson;

#ifdef ANNAL_SANITIZER
constexpr int kThreads = 3;
constexpr int kMaxRunMs = 900;
#else
constexpr int kThreads = 5;
constexpr int kMaxRunMs = 600;
#endif

struct AckedEvent {
  std::string stream;
  std::uint64_t revision = 0;
  index::NewEvent event;
};

class Model {
 public:
  std::vector<std::string> problems;

  void problem(std::string p) {
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(stderr, "VIOLATION: %s\n", p.c_str());
    if (problems.size() < 100) problems.push_back(std::move(p));
  }

  // Records an acknowledged append; checks it against earlier ones.
  void acked(const proto::AppendReq& req, const proto::AppendOk& ok) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ok.count != req.events.size()) {
      add_problem(fmt::format("append of {} events acknowledged with count {}", req.events.size(),
                              ok.count));
      return;
    }
    for (std::size_t i = 0; i < req.events.size(); ++i) {
      const std::uint64_t pos = ok.first_position + i;
      const std::uint64_t rev = ok.first_revision + i;
      auto it = events_.find(pos);
      if (it != events_.end()) {
        // Only a deduplicated retry of the very same events may land here.
        if (it->second.event.id != req.events[i].id || it->second.revision != rev ||
            it->second.stream != req.stream)
          add_problem(fmt::format(
              "position {} acknowledged twice: stream {} rev {} id {}, then stream {} rev {} "
              "id {} (deduplicated={})",
              pos, it->second.stream, it->second.revision, it->second.event.id.to_string(),
              req.stream, rev, req.events[i].id.to_string(), ok.deduplicated));
        continue;
      }
      auto id_it = pos_of_id_.find(req.events[i].id);
      if (id_it != pos_of_id_.end() && id_it->second != pos)
        add_problem(
            fmt::format("event id {} acknowledged at position {} and again at {} (deduplicated={})",
                        req.events[i].id.to_string(), id_it->second, pos, ok.deduplicated));
      pos_of_id_[req.events[i].id] = pos;
      events_[pos] = AckedEvent{req.stream, rev, req.events[i]};
      ++acked_total_;
    }
    auto& last = last_rev_[req.stream];
    last = std::max(last, ok.first_revision + ok.count - 1);
    acked_appends_.push_back({req, ok});
  }

  void unknown(const proto::AppendReq& req) {
    std::lock_guard<std::mutex> lock(mu_);
    unknown_.push_back(req);
  }
  void attempted(const proto::AppendReq& req) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : req.events) attempted_.insert(e.id);
  }

  std::optional<proto::AppendReq> take_unknown(std::mt19937_64& rng) {
    std::lock_guard<std::mutex> lock(mu_);
    if (unknown_.empty()) return std::nullopt;
    std::size_t i = rng() % unknown_.size();
    proto::AppendReq r = std::move(unknown_[i]);
    unknown_.erase(unknown_.begin() + static_cast<std::ptrdiff_t>(i));
    return r;
  }
  std::optional<std::pair<proto::AppendReq, proto::AppendOk>> some_acked(std::mt19937_64& rng) {
    std::lock_guard<std::mutex> lock(mu_);
    if (acked_appends_.empty()) return std::nullopt;
    return acked_appends_[rng() % acked_appends_.size()];
  }
  std::optional<std::uint64_t> last_rev(const std::string& stream) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = last_rev_.find(stream);
    if (it == last_rev_.end()) return std::nullopt;
    return it->second;
  }

  // Checks the node's whole content against what was acknowledged.
  void verify(net::Client& c, int cycle) {
    std::map<std::uint64_t, engine::EventRecord> log;
    std::uint64_t from = 0;
    for (;;) {
      auto r = c.read_all(proto::ReadAllReq{from, 1000, index::Direction::kForward});
      if (!r) {
        problem(
            fmt::format("cycle {}: read_all from {} failed: {}", cycle, from, r.error_string()));
        return;
      }
      for (auto& e : r->events) {
        if (e.position.value != from)
          problem(fmt::format("cycle {}: read_all returned position {} where {} was due", cycle,
                              e.position.value, from));
        from = e.position.value + 1;
        log.emplace(e.position.value, std::move(e));
      }
      if (r->end || r->events.empty()) break;
    }
    std::lock_guard<std::mutex> lock(mu_);
    std::set<EventId> ids;
    std::map<std::string, std::vector<std::uint64_t>> streams;  // positions in revision order
    for (const auto& [pos, e] : log) {
      if (!ids.insert(e.id).second)
        add_problem(fmt::format("cycle {}: event id {} stored twice (again at position {})", cycle,
                                e.id.to_string(), pos));
      if (!attempted_.count(e.id))
        add_problem(fmt::format("cycle {}: position {} holds id {} that no client sent", cycle, pos,
                                e.id.to_string()));
      auto& v = streams[e.stream];
      if (e.revision.value != v.size())
        add_problem(
            fmt::format("cycle {}: stream {} revision {} at position {}, expected revision {}",
                        cycle, e.stream, e.revision.value, pos, v.size()));
      v.push_back(pos);
    }
    for (const auto& [pos, a] : events_) {
      auto it = log.find(pos);
      if (it == log.end()) {
        add_problem(fmt::format(
            "cycle {}: LOST acknowledged event at position {} (stream {} rev {} id {}); the log "
            "ends at {}",
            cycle, pos, a.stream, a.revision, a.event.id.to_string(), log.size()));
        continue;
      }
      const auto& e = it->second;
      if (e.stream != a.stream || e.revision.value != a.revision || e.id != a.event.id ||
          e.type != a.event.type || e.metadata != a.event.metadata || e.data != a.event.data ||
          (e.flags & kJsonFlags) != a.event.flags)
        add_problem(fmt::format(
            "cycle {}: position {} holds stream {} rev {} id {} ({} data bytes); acknowledged "
            "was stream {} rev {} id {} ({} data bytes)",
            cycle, pos, e.stream, e.revision.value, e.id.to_string(), e.data.size(), a.stream,
            a.revision, a.event.id.to_string(), a.event.data.size()));
    }
    stream_positions_ = std::move(streams);
    log_end_ = log.size();
  }

  // Each stream read by revision must agree with the log.
  void verify_streams(net::Client& c, int cycle) {
    std::map<std::string, std::vector<std::uint64_t>> streams;
    {
      std::lock_guard<std::mutex> lock(mu_);
      streams = stream_positions_;
    }
    for (const auto& [stream, positions] : streams) {
      std::vector<std::uint64_t> got;
      std::uint64_t from = 0;
      for (;;) {
        auto r =
            c.read_stream(proto::ReadStreamReq{stream, from, 1000, index::Direction::kForward});
        if (!r) {
          problem(fmt::format("cycle {}: read_stream {} from {}: {}", cycle, stream, from,
                              r.error_string()));
          return;
        }
        for (const auto& e : r->events) {
          got.push_back(e.position.value);
          from = e.revision.value + 1;
        }
        if (r->end || r->events.empty()) break;
      }
      if (got != positions)
        problem(fmt::format(
            "cycle {}: read_stream {} gives {} events, the log holds {} (or positions differ)",
            cycle, stream, got.size(), positions.size()));
    }
  }

  std::uint64_t acked_total() const { return acked_total_; }
  std::uint64_t log_end() const { return log_end_; }

 private:
  void add_problem(std::string p) {  // requires mu_
    std::fprintf(stderr, "VIOLATION: %s\n", p.c_str());
    if (problems.size() < 100) problems.push_back(std::move(p));
  }

  std::mutex mu_;
  std::map<std::uint64_t, AckedEvent> events_;  // by position
  std::map<EventId, std::uint64_t> pos_of_id_;
  std::map<std::string, std::uint64_t> last_rev_;
  std::vector<std::pair<proto::AppendReq, proto::AppendOk>> acked_appends_;
  std::vector<proto::AppendReq> unknown_;
  std::set<EventId> attempted_;
  std::map<std::string, std::vector<std::uint64_t>> stream_positions_;
  std::uint64_t acked_total_ = 0;
  std::uint64_t log_end_ = 0;
};

proto::AppendReq make_append(std::mt19937_64& rng, Model& model) {
  proto::AppendReq a;
  a.stream = fmt::format("s{}", rng() % 12);
  const std::size_t n = rng() % 3 == 0 ? 2 + rng() % 20 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    index::NewEvent e;
    e.id = random_id(rng);
    e.type = fmt::format("Type{}", rng() % 4);
    e.flags = format::kFlagDataJson | (rng() % 3 == 0 ? format::kFlagMetadataJson : 0u);
    if (e.flags & format::kFlagMetadataJson) e.metadata = random_json(rng, rng() % 30);
    e.data = random_json(rng, 10 + rng() % (rng() % 10 == 0 ? 4000 : 300));
    a.events.push_back(std::move(e));
  }
  switch (rng() % 8) {
    case 0: {
      auto last = model.last_rev(a.stream);
      a.expected = last ? ExpectedRevision::exact(*last) : ExpectedRevision::no_stream();
      break;
    }
    case 1:
      a.expected = ExpectedRevision::no_stream();
      break;
    case 2:
      a.expected = ExpectedRevision::stream_exists();
      break;
    default:
      a.expected = ExpectedRevision::any();
      break;
  }
  return a;
}

// One client thread: appends until the connection is lost.
void client_thread(std::uint16_t port, std::uint64_t seed, Model& model,
                   std::atomic<std::uint64_t>& acks) {
  std::mt19937_64 rng(seed);
  net::ClientOptions co;
  co.port = port;
  co.client_name = "crash-loop";
  auto c = net::Client::connect(co);
  if (!c) return;  // killed before we connected
  for (;;) {
    proto::AppendReq req;
    bool retry_of_acked = false;
    std::optional<proto::AppendOk> original;
    const auto pick = rng() % 10;
    if (pick == 0) {
      if (auto u = model.take_unknown(rng))
        req = std::move(*u);
      else
        req = make_append(rng, model);
    } else if (pick == 1) {
      if (auto a = model.some_acked(rng)) {
        req = a->first;
        original = a->second;
        retry_of_acked = true;
      } else {
        req = make_append(rng, model);
      }
    } else {
      req = make_append(rng, model);
    }
    model.attempted(req);
    auto r = c.value()->append(req);
    if (r) {
      if (retry_of_acked && (!r->deduplicated || r->first_position != original->first_position ||
                             r->first_revision != original->first_revision))
        model.problem(fmt::format(
            "re-sent acknowledged append (position {} rev {}) answered position {} rev {} "
            "deduplicated={}",
            original->first_position, original->first_revision, r->first_position,
            r->first_revision, r->deduplicated));
      model.acked(req, r.value());
      acks.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const auto code = r.error().code;
    if (code == proto::Code::kWrongExpectedRevision) {
      if (retry_of_acked)
        model.problem(fmt::format("re-sent acknowledged append (position {}) failed: {}",
                                  original->first_position, r.error_string()));
      continue;
    }
    // Connection lost (the kill) or the node shutting down: outcome unknown.
    if (!retry_of_acked) model.unknown(req);
    if (code == proto::Code::kConnectionLost || code == proto::Code::kShuttingDown ||
        !c.value()->connected())
      return;
    model.problem(
        fmt::format("append to {} failed unexpectedly: {}", req.stream, r.error_string()));
    return;
  }
}

struct Args {
  std::string annald, annal;
  std::uint64_t cycles = 20;
  std::uint64_t seed = 1;
};

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--annald")
      args.annald = v;
    else if (k == "--annal")
      args.annal = v;
    else if (k == "--cycles")
      args.cycles = std::stoull(v);
    else if (k == "--seed")
      args.seed = std::stoull(v);
    else {
      std::fprintf(stderr, "crash_loop: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (args.annald.empty() || args.annal.empty()) {
    std::fprintf(stderr, "usage: crash_loop --annald PATH --annal PATH [--cycles N] [--seed S]\n");
    return 2;
  }
  args.cycles = env_u64("ANNAL_CRASH_CYCLES", args.cycles);
  args.seed = env_u64("ANNAL_CRASH_SEED", args.seed);
  std::printf("crash loop: seed %llu, %llu kill cycles (replay: ANNAL_CRASH_SEED=%llu)\n",
              static_cast<unsigned long long>(args.seed),
              static_cast<unsigned long long>(args.cycles),
              static_cast<unsigned long long>(args.seed));
  std::fflush(stdout);

  TempDir work("annal-crashloop");
  const std::string data = work.path() + "/data";
  const std::vector<std::string> flags = {"--segment-size", "64K", "--memtable-entries", "64",
                                          "--min-free",     "0",   "--log-level",        "warn"};
  std::mt19937_64 rng(args.seed);
  Model model;
  std::atomic<std::uint64_t> acks{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t verify_runs = 0;

  for (std::uint64_t cycle = 0; cycle <= args.cycles && model.problems.empty(); ++cycle) {
    NodeProcess node(args.annald, data, work.path(), flags);
    if (!node.started()) {
      model.problem(fmt::format("cycle {}: annald did not start after the kill; its log:\n{}",
                                cycle, node.log_tail()));
      break;
    }
    {
      net::ClientOptions co;
      co.port = node.port();
      auto c = net::Client::connect(co);
      if (!c) {
        model.problem(fmt::format("cycle {}: cannot connect: {}", cycle, c.error_string()));
        break;
      }
      model.verify(*c.value(), static_cast<int>(cycle));
      model.verify_streams(*c.value(), static_cast<int>(cycle));
    }
    if (cycle == args.cycles) {
      node.terminate();
      break;
    }
    // Work, then SIGKILL at a random moment.
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back(client_thread, node.port(), rng(), std::ref(model), std::ref(acks));
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % kMaxRunMs));
    node.kill9();
    for (auto& t : threads) t.join();

    // The killed directory must pass the offline verifier.
    std::string out;
    const int rc = run_program({args.annal, "verify", data}, &out);
    ++verify_runs;
    if (rc != 0)
      model.problem(
          fmt::format("cycle {}: annal verify exited {} after SIGKILL:\n{}", cycle, rc, out));
  }

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "crash loop: %llu kill cycles, %llu acknowledged appends (%llu events), final log %llu "
      "events, %llu "
      "verify runs, %.1f s\n",
      static_cast<unsigned long long>(args.cycles), static_cast<unsigned long long>(acks.load()),
      static_cast<unsigned long long>(model.acked_total()),
      static_cast<unsigned long long>(model.log_end()),
      static_cast<unsigned long long>(verify_runs), secs);
  if (!model.problems.empty()) {
    std::printf("crash loop FAILED (seed %llu): %zu violation(s)\n",
                static_cast<unsigned long long>(args.seed), model.problems.size());
    for (const auto& p : model.problems) std::printf("  %s\n", p.c_str());
    return 1;
  }
  if (model.acked_total() == 0) {
    std::printf("crash loop FAILED: nothing was acknowledged, the loop proved nothing\n");
    return 1;
  }
  std::printf("crash loop passed\n");
  return 0;
}
