// Consumer groups under kill -9 (docs/consumer-groups.md, "Delivery
// guarantees"): a writer appends and two consumers ack everything they get
// while the node is killed at random moments, cycle after cycle. After each
// restart, an event acked before the kill is delivered again only if its ack
// was sent within the persist period (plus a margin for a loaded machine)
// before the kill; at the end every event of the log has been acked (none
// skipped) and the group's checkpoint is the durable end.
// ANNAL_GROUP_CRASH_CYCLES sets the cycles (default 6).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "net/client.h"
#include "tests/reliability/node_process.h"
#include "tests/reliability/reliability_util.h"

namespace annal::reliability {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Kind = net::Subscription::Message::Kind;

constexpr int kPersistMs = 50;
// Acks sent this long before a kill may not have reached the node, or the
// node may not have written them yet: persist period + write + scheduling
// on a loaded machine. Each cycle runs well past it, so what was acked in
// its first second must never come back.
constexpr auto kRedeliveryBound = std::chrono::milliseconds(kPersistMs) + 750ms;

std::unique_ptr<net::Client> connect(std::uint16_t port) {
  net::ClientOptions o;
  o.port = port;
  auto c = net::Client::connect(o);
  return c.ok() ? std::move(c.value()) : nullptr;
}

struct Ledger {
  std::mutex mu;
  std::map<std::uint64_t, Clock::time_point> last_ack;  // position -> when its ack was sent
  std::vector<std::string> violations;
  Clock::time_point previous_kill;
  bool after_kill = false;
};

void consume(std::uint16_t port, Ledger& ledger, std::atomic<bool>& stop) {
  auto c = connect(port);
  if (!c) return;
  auto m = c->group_join("crash", 32);
  if (!m.ok()) return;
  while (!stop.load()) {
    auto msg = (*m)->next(100ms);
    if (!msg) continue;
    if (msg->kind != Kind::kEvents) return;  // the kill: connection lost
    std::vector<std::uint64_t> ps;
    {
      std::lock_guard lk(ledger.mu);
      for (std::size_t i = 0; i < msg->events.size(); ++i) {
        const std::uint64_t p = msg->events[i].position.value;
        auto it = ledger.last_ack.find(p);
        if (it != ledger.last_ack.end() && msg->attempts[i] == 1 && ledger.after_kill &&
            it->second < ledger.previous_kill - kRedeliveryBound)
          ledger.violations.push_back(fmt::format(
              "position {} acked {} ms before the kill was delivered again after the restart", p,
              std::chrono::duration_cast<std::chrono::milliseconds>(ledger.previous_kill -
                                                                    it->second)
                  .count()));
        ledger.last_ack[p] = Clock::now();  // recorded before the ack is sent
        ps.push_back(p);
      }
    }
    (*m)->ack(ps);
  }
}

TEST(GroupCrashLoop, KillNineLosesNoAckedProgressAndSkipsNoEvent) {
  const std::uint64_t cycles = env_u64("ANNAL_GROUP_CRASH_CYCLES", 6);
  TempDir work("annal-group-crash");
  const std::string data = work.path() + "/data";
  const std::vector<std::string> flags = {"--group-persist-ms", std::to_string(kPersistMs),
                                          "--segment-size",     "4M",
                                          "--min-free",         "0",
                                          "--log-level",        "warn"};
  Ledger ledger;
  std::mt19937_64 rng(env_u64("ANNAL_GROUP_CRASH_SEED", 5));
  for (std::uint64_t cycle = 0; cycle < cycles; ++cycle) {
    NodeProcess node(ANNAL_ANNALD_PATH, data, work.path(), flags);
    ASSERT_TRUE(node.started()) << "cycle " << cycle << ":\n" << node.log_tail();
    if (cycle == 0) {
      auto c = connect(node.port());
      ASSERT_TRUE(c);
      groups::Settings s;
      s.target = groups::Target::kAll;
      s.ack_timeout_ms = 5000;
      auto r = c->group_create("crash", s);
      ASSERT_TRUE(r.ok()) << r.error_string();
    }
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      auto c = connect(node.port());
      if (!c) return;
      for (int i = 0; !stop.load(); ++i) {
        net::proto::AppendReq req;
        req.stream = fmt::format("c-{}", i % 17);
        req.expected = ExpectedRevision::any();
        index::NewEvent e;
        e.id = EventId::random();
        e.type = "Tick";
        e.data = fmt::format("{{\"i\":{}}}", i);
        req.events.push_back(std::move(e));
        if (!c->append(req).ok()) return;  // the kill
      }
    });
    std::vector<std::thread> consumers;
    for (int k = 0; k < 2; ++k) consumers.emplace_back([&] { consume(node.port(), ledger, stop); });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 1000));
    {
      std::lock_guard lk(ledger.mu);
      ledger.previous_kill = Clock::now();
      ledger.after_kill = true;
    }
    node.kill9();
    stop = true;
    writer.join();
    for (auto& t : consumers) t.join();
  }
  // Drain: no writer; consumers until everything is acked.
  NodeProcess node(ANNAL_ANNALD_PATH, data, work.path(), flags);
  ASSERT_TRUE(node.started()) << node.log_tail();
  auto admin = connect(node.port());
  ASSERT_TRUE(admin);
  const std::uint64_t end = admin->info()->durable_end;
  ASSERT_GT(end, 0u);
  std::atomic<bool> stop{false};
  std::vector<std::thread> consumers;
  for (int k = 0; k < 2; ++k) consumers.emplace_back([&] { consume(node.port(), ledger, stop); });
  net::proto::GroupInfo info;
  for (int i = 0; i < 1500; ++i) {
    auto r = admin->group_info("crash");
    ASSERT_TRUE(r.ok()) << r.error_string();
    info = r.value();
    if (info.checkpoint == end && info.in_flight == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  for (auto& t : consumers) t.join();
  EXPECT_EQ(info.checkpoint, end) << "the group did not reach the durable end";
  std::lock_guard lk(ledger.mu);
  for (const auto& v : ledger.violations) ADD_FAILURE() << v;
  std::uint64_t missing = 0;
  for (std::uint64_t p = 0; p < end; ++p)
    if (!ledger.last_ack.count(p)) ++missing;
  EXPECT_EQ(missing, 0u) << "events of the log never acked (skipped by the group)";
  std::printf("group crash loop: %llu kill cycles, %llu events, %zu acked positions\n",
              static_cast<unsigned long long>(cycles), static_cast<unsigned long long>(end),
              ledger.last_ack.size());
  EXPECT_EQ(node.terminate(), 0) << node.log_tail();
}

}  // namespace
}  // namespace annal::reliability
