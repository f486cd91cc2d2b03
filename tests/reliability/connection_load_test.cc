// Connection load: many concurrent connections against the real node that
// append, read and subscribe for a bounded time. Checks: no errors, every
// acknowledged event present with its content, subscribers receive a dense
// gap-free sequence, node resident memory reported and bounded, and no file
// descriptor left behind in the node once the connections close.
//
// 1,000 connections in the normal build; under sanitizers (ANNAL_SANITIZER)
// 400, because every connection's work costs several times more there.
// ANNAL_LOAD_CONNECTIONS / ANNAL_LOAD_SECONDS override.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "engine/format.h"
#include "net/client.h"
#include "proto/protocol.h"
#include "tests/reliability/node_process.h"
#include "tests/reliability/reliability_util.h"
#include "tests/reliability/wire.h"

namespace annal::reliability {
namespace {

namespace proto = annal::net::proto;
namespace format = annal::engine::format;

#ifdef ANNAL_SANITIZER
constexpr std::uint64_t kDefaultConnections = 400;
#else
constexpr std::uint64_t kDefaultConnections = 1000;
#endif

// Raises RLIMIT_NOFILE's soft limit to at least `need`; the hard limit too
// when privileged. Returns the resulting soft limit.
rlim_t raise_fd_limit(rlim_t need) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= need) return rl.rlim_cur;
  rlimit want = rl;
  want.rlim_cur = std::min<rlim_t>(std::max<rlim_t>(need, rl.rlim_cur), rl.rlim_max);
  if (rl.rlim_max < need) {
    want.rlim_max = need;
    want.rlim_cur = need;
    if (::setrlimit(RLIMIT_NOFILE, &want) != 0) {
      want.rlim_max = rl.rlim_max;
      want.rlim_cur = rl.rlim_max;
    }
  }
  ::setrlimit(RLIMIT_NOFILE, &want);
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

struct Acked {
  std::uint64_t position;
  std::string stream;
  EventId id;
  std::string data;
};

struct Conn {
  std::unique_ptr<WireConn> wire;
  bool subscriber = false;
  std::uint64_t next_id = 10;
  // Subscriber state: the next position it must receive.
  std::optional<std::uint64_t> next_position;
  std::uint64_t delivered = 0;
};

class ConnectionLoadTest : public ::testing::Test {
 protected:
  static std::string annald() { return ANNAL_ANNALD_PATH; }
};

TEST_F(ConnectionLoadTest, ThousandConnectionsAppendReadSubscribeWithoutErrorsOrLeaks) {
  const std::uint64_t n = env_u64("ANNAL_LOAD_CONNECTIONS", kDefaultConnections);
  const std::uint64_t seconds = env_u64("ANNAL_LOAD_SECONDS", 3);
  // The test process holds n sockets; the node (a child, inheriting the
  // limit) holds n more plus its files.
  const rlim_t need = n + 256;
  const rlim_t got = raise_fd_limit(need);
  ASSERT_GE(got, need) << "cannot raise RLIMIT_NOFILE to " << need << " (soft limit stays " << got
                       << "): run with a higher hard limit (ulimit -Hn) to open " << n
                       << " connections";

  TempDir work("annal-load");
  NodeProcess node(annald(), work.path() + "/data", work.path(),
                   {"--max-connections", std::to_string(n + 100), "--segment-size", "1M",
                    "--min-free", "0", "--log-level", "warn", "--idle-timeout-ms", "0"});
  ASSERT_TRUE(node.started()) << "annald did not start:\n" << node.log_tail();
  const long fds_before = node.open_sockets();
  const long rss_start = node.status_kb("VmRSS:");

  // Open every connection and handshake.
  std::vector<Conn> conns(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    conns[i].wire = std::make_unique<WireConn>(node.port());
    ASSERT_TRUE(conns[i].wire->ok()) << "connection " << i << ": " << conns[i].wire->error();
    ASSERT_TRUE(conns[i].wire->handshake(fmt::format("load-{}", i)))
        << "connection " << i << " handshake: " << conns[i].wire->error();
    conns[i].subscriber = i % 10 == 0;
  }
  const long fds_open = node.open_sockets();
  EXPECT_GE(fds_open - fds_before, static_cast<long>(n))
      << "the node does not hold one fd per connection?";

  // Subscribers: $all from position 0 (catch-up, then live).
  for (auto& c : conns) {
    if (!c.subscriber) continue;
    proto::SubscribeReq s;
    s.target = proto::Target::kAll;
    s.from = 0;
    ASSERT_TRUE(c.wire->send_all(proto::encode_subscribe(5, s)));
    auto f = c.wire->read_frame();
    ASSERT_TRUE(f && f->op == static_cast<std::uint8_t>(proto::Op::kSubscribeOk))
        << "subscribe: " << (f ? proto::op_name(static_cast<proto::Op>(f->op)) : c.wire->error());
    c.next_position = 0;
  }

  std::mutex mu;
  std::vector<Acked> acked;
  std::vector<std::string> errors;
  std::atomic<std::uint64_t> reads{0}, appends{0};
  auto error = [&](std::string e) {
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 20) errors.push_back(std::move(e));
  };
  // A subscriber's pushed frames: events must arrive dense, in order, once.
  auto take_push = [&](Conn& c, std::size_t idx, const Frame& f) -> bool {
    if (f.op == static_cast<std::uint8_t>(proto::Op::kSubEvents)) {
      auto m = proto::decode_sub_events(f.payload);
      if (!m) {
        error(fmt::format("conn {}: bad sub_events: {}", idx, m.status().to_string()));
        return false;
      }
      for (const auto& e : m->events) {
        if (e.position.value != *c.next_position) {
          error(fmt::format("conn {}: subscription delivered position {}, expected {}", idx,
                            e.position.value, *c.next_position));
          return false;
        }
        c.next_position = e.position.value + 1;
        ++c.delivered;
      }
      return true;
    }
    if (f.op == static_cast<std::uint8_t>(proto::Op::kCheckpoint)) return true;
    auto m = proto::decode_error(f.payload);
    error(fmt::format("conn {}: unexpected push op {}: {}", idx, f.op,
                      m ? m->message : std::string("?")));
    return false;
  };

  const int workers = 4;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(w));
      while (std::chrono::steady_clock::now() < deadline) {
        // One round: every non-subscriber connection of this worker sends a
        // request (pipelined across connections), then every one reads its
        // answer; subscribers drain what was pushed.
        std::vector<std::pair<std::size_t, std::optional<proto::AppendReq>>> sent;
        for (std::size_t i = static_cast<std::size_t>(w); i < conns.size(); i += workers) {
          Conn& c = conns[i];
          if (c.subscriber) continue;
          const std::uint64_t id = c.next_id++;
          if (rng() % 4 == 0) {
            proto::ReadAllReq r{proto::kNone, 5, index::Direction::kBackward};
            if (!c.wire->send_all(proto::encode_read_all(id, r)))
              error(fmt::format("conn {}: send", i));
            sent.emplace_back(i, std::nullopt);
          } else {
            proto::AppendReq a;
            a.stream = fmt::format("load-{}", i % 64);
            a.expected = ExpectedRevision::any();
            index::NewEvent e;
            e.id = random_id(rng);
            e.type = "Load";
            e.flags = format::kFlagDataJson;
            e.data = random_json(rng, rng() % 200);
            a.events.push_back(std::move(e));
            if (!c.wire->send_all(proto::encode_append(id, a)))
              error(fmt::format("conn {}: send", i));
            sent.emplace_back(i, std::move(a));
          }
        }
        for (auto& [i, req] : sent) {
          auto f = conns[i].wire->read_frame();
          if (!f) {
            error(fmt::format("conn {}: no answer: {}", i, conns[i].wire->error()));
            continue;
          }
          if (f->op == static_cast<std::uint8_t>(proto::Op::kError)) {
            auto e = proto::decode_error(f->payload);
            error(fmt::format("conn {}: error answer: {}", i, e ? e->message : std::string("?")));
          } else if (req) {
            auto ok = proto::decode_append_ok(f->payload);
            if (!ok || f->op != static_cast<std::uint8_t>(proto::Op::kAppendOk)) {
              error(fmt::format("conn {}: append answered with op {}", i, f->op));
              continue;
            }
            appends.fetch_add(1, std::memory_order_relaxed);
            std::lock_guard<std::mutex> lock(mu);
            acked.push_back(
                Acked{ok->first_position, req->stream, req->events[0].id, req->events[0].data});
          } else {
            if (f->op != static_cast<std::uint8_t>(proto::Op::kReadOk) ||
                !proto::decode_read_ok(f->payload))
              error(fmt::format("conn {}: read answered with op {}", i, f->op));
            reads.fetch_add(1, std::memory_order_relaxed);
          }
        }
        for (std::size_t i = static_cast<std::size_t>(w); i < conns.size(); i += workers) {
          if (!conns[i].subscriber) continue;
          while (auto f = conns[i].wire->poll_frame())
            if (!take_push(conns[i], i, *f)) break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const long rss_load = node.status_kb("VmRSS:");
  const long hwm = node.status_kb("VmHWM:");
  for (const auto& e : errors) ADD_FAILURE() << e;
  ASSERT_TRUE(errors.empty());
  ASSERT_GT(acked.size(), n / 2) << "too few appends to mean anything";

  // Every acknowledged event is present with its content (one extra client).
  {
    net::ClientOptions co;
    co.port = node.port();
    auto c = net::Client::connect(co);
    ASSERT_TRUE(c) << c.error_string();
    std::map<std::uint64_t, engine::EventRecord> log;
    std::uint64_t from = 0;
    for (;;) {
      auto r = c.value()->read_all(proto::ReadAllReq{from, 1000, index::Direction::kForward});
      ASSERT_TRUE(r) << r.error_string();
      for (auto& e : r->events) {
        from = e.position.value + 1;
        log.emplace(e.position.value, std::move(e));
      }
      if (r->end || r->events.empty()) break;
    }
    std::set<std::uint64_t> positions;
    for (const auto& a : acked) {
      EXPECT_TRUE(positions.insert(a.position).second)
          << "position " << a.position << " acknowledged twice";
      auto it = log.find(a.position);
      ASSERT_NE(it, log.end()) << "acknowledged position " << a.position << " missing";
      EXPECT_EQ(it->second.id, a.id);
      EXPECT_EQ(it->second.stream, a.stream);
      EXPECT_EQ(it->second.data, a.data);
    }
    EXPECT_EQ(log.size(), acked.size()) << "the log holds events nobody had acknowledged";
    // Subscribers caught up to the end (give the last pushes a moment).
    const std::uint64_t end = log.size();
    for (std::size_t i = 0; i < conns.size(); ++i) {
      Conn& sc = conns[i];
      if (!sc.subscriber) continue;
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (*sc.next_position < end && std::chrono::steady_clock::now() < until) {
        auto f = sc.wire->read_frame();
        if (!f || !take_push(sc, i, *f)) break;
      }
      EXPECT_EQ(*sc.next_position, end)
          << "subscriber " << i << " stopped at " << *sc.next_position;
    }
    for (const auto& e : errors) ADD_FAILURE() << e;
  }

  std::printf(
      "connection load: %llu connections (%llu subscribers), %llu s: %llu appends, %llu reads; "
      "node RSS "
      "%ld kB at start, %ld kB under load, peak %ld kB; sockets %ld idle, %ld with connections\n",
      static_cast<unsigned long long>(n), static_cast<unsigned long long>(n / 10),
      static_cast<unsigned long long>(seconds), static_cast<unsigned long long>(appends.load()),
      static_cast<unsigned long long>(reads.load()), rss_start, rss_load, hwm, fds_before,
      fds_open);
#ifdef ANNAL_SANITIZER
  constexpr long kRssLimitKb = 4l << 20;  // sanitizers' shadow memory and quarantine
#else
  constexpr long kRssLimitKb = 1l << 20;  // 1 GiB: generous for ~1,000 connections
#endif
  EXPECT_LT(hwm, kRssLimitKb) << "node peak resident memory " << hwm << " kB";

  // Close every connection: the node must give back every descriptor.
  for (auto& c : conns) c.wire->close();
  long fds_after = -1;
  for (int i = 0; i < 200; ++i) {
    fds_after = node.open_sockets();
    if (fds_after <= fds_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(fds_after, fds_before) << "the node holds " << fds_after - fds_before
                                   << " more sockets than before the connections (leak)";
  std::printf("connection load: node sockets after close %ld (before %ld)\n", fds_after,
              fds_before);
  EXPECT_EQ(node.terminate(), 0) << node.log_tail();
}

}  // namespace
}  // namespace annal::reliability
