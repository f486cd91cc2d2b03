// The consumer-group state machine without a node: delivery with room,
// acks and the checkpoint, the ordered strategy's one-at-a-time rule per key
// across retries, timeouts and consumers leaving, parking and replay, and
// the group file's round trip and damage detection.
#include "groups/group_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "engine/fault_fs.h"
#include "groups/group_file.h"
#include "tests/common/temp_dir.h"

namespace annal::groups {
namespace {

using namespace std::chrono_literals;

Event ev(std::uint64_t pos, std::string key, std::uint64_t rev = 0) {
  Event e;
  e.position = pos;
  e.revision = rev;
  e.timestamp_us = 1000 + static_cast<std::int64_t>(pos);
  e.key = std::move(key);
  e.wire = "w" + std::to_string(pos);
  return e;
}

std::vector<std::uint64_t> positions(const std::vector<GroupState::Delivery>& ds,
                                     std::uint64_t consumer = 0) {
  std::vector<std::uint64_t> out;
  for (const auto& d : ds)
    if (consumer == 0 || d.consumer == consumer)
      for (const auto& i : d.items) out.push_back(i.position);
  return out;
}

GroupState::Options opts(Strategy s, std::uint32_t retries = 2) {
  GroupState::Options o;
  o.strategy = s;
  o.max_retries = retries;
  o.ack_timeout = 1000ms;
  o.retry_delay = 100ms;
  return o;
}

TEST(GroupState, DeliversWithinRoomAndAdvancesTheCheckpointInOrder) {
  GroupState g(opts(Strategy::kRoundRobin));
  for (std::uint64_t p = 0; p < 10; ++p) g.add(ev(p, "s"));
  g.set_cursor(12, 0);  // 10 and 11 were other streams' events
  g.join(1, 4);
  const auto t = Clock::now();
  auto d = g.dispatch(t);
  EXPECT_EQ(positions(d), (std::vector<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(g.dispatch(t).empty()) << "no room beyond max_in_flight";
  const std::vector<std::uint64_t> late{1, 3};
  EXPECT_EQ(g.ack(late), 2u);
  EXPECT_EQ(g.checkpoint(), 0u) << "0 is not acked yet";
  EXPECT_EQ(g.progress().resolved.size(), 2u);
  const std::vector<std::uint64_t> first{0, 2};
  EXPECT_EQ(g.ack(first), 2u);
  EXPECT_EQ(g.checkpoint(), 4u);
  EXPECT_TRUE(g.progress().resolved.empty());
  EXPECT_EQ(g.progress().checkpoint_timestamp_us, 1003);
  EXPECT_EQ(g.ack(first), 0u) << "an ack of a resolved event is ignored";
  const std::vector<std::uint64_t> never{7};
  EXPECT_EQ(g.ack(never), 0u) << "an ack of an event never delivered is ignored";
  auto rest = g.dispatch(t);
  std::vector<std::uint64_t> all = positions(rest);
  while (!all.empty()) {
    g.ack(all);
    all = positions(g.dispatch(t));
  }
  EXPECT_EQ(g.checkpoint(), 12u) << "nothing held: the cursor";
  EXPECT_EQ(g.counters().acked_total, 10u);
}

TEST(GroupState, RoundRobinSharesAmongConsumers) {
  GroupState g(opts(Strategy::kRoundRobin));
  for (std::uint64_t p = 0; p < 8; ++p) g.add(ev(p, "s" + std::to_string(p)));
  g.join(1, 2);
  g.join(2, 2);
  g.join(3, 2);
  auto d = g.dispatch(Clock::now());
  EXPECT_EQ(positions(d, 1).size(), 2u);
  EXPECT_EQ(positions(d, 2).size(), 2u);
  EXPECT_EQ(positions(d, 3).size(), 2u);
}

TEST(GroupState, LeavingHandsHeldEventsToOthersWithoutCountingAFailure) {
  GroupState g(opts(Strategy::kRoundRobin, 0));
  g.add(ev(0, "a"));
  g.join(1, 1);
  EXPECT_EQ(positions(g.dispatch(Clock::now())), std::vector<std::uint64_t>{0});
  g.leave(1);
  g.join(2, 1);
  auto d = g.dispatch(Clock::now());
  ASSERT_EQ(positions(d, 2), std::vector<std::uint64_t>{0});
  EXPECT_EQ(d[0].items[0].attempt, 2u);
  EXPECT_TRUE(g.parked().empty()) << "max_retries 0, but leaving is not a failure";
}

TEST(GroupState, TimeoutsRetryThenPark) {
  GroupState g(opts(Strategy::kRoundRobin, 1));
  g.add(ev(5, "a"));
  g.join(1, 10);
  auto t = Clock::now();
  ASSERT_EQ(positions(g.dispatch(t)).size(), 1u);
  g.tick(t + 500ms);
  EXPECT_TRUE(g.dispatch(t + 500ms).empty()) << "not timed out yet";
  g.tick(t + 1001ms);  // first failure: retried
  auto d = g.dispatch(t + 1001ms);
  ASSERT_EQ(positions(d), std::vector<std::uint64_t>{5});
  EXPECT_EQ(d[0].items[0].attempt, 2u);
  g.tick(t + 2002ms);  // second failure > max_retries 1: parked
  EXPECT_TRUE(g.dispatch(t + 2002ms).empty());
  ASSERT_EQ(g.parked().size(), 1u);
  EXPECT_EQ(g.parked().at(5).reason, "ack timeout");
  EXPECT_EQ(g.checkpoint(), 6u) << "a parked event is resolved for the checkpoint";
  // Replay: handed out again, then acked: gone from the parked list.
  auto replay = g.replay_parked();
  ASSERT_EQ(replay, std::vector<std::uint64_t>{5});
  g.add_replayed(ev(5, "a"));
  d = g.dispatch(t + 3s);
  ASSERT_EQ(positions(d), std::vector<std::uint64_t>{5});
  EXPECT_EQ(g.checkpoint(), 6u) << "a replayed event does not hold the checkpoint back";
  g.ack(std::vector<std::uint64_t>{5});
  EXPECT_TRUE(g.parked().empty());
}

TEST(GroupState, NackActions) {
  GroupState g(opts(Strategy::kRoundRobin, 5));
  for (std::uint64_t p = 0; p < 4; ++p) g.add(ev(p, "k" + std::to_string(p)));
  g.join(1, 10);
  auto t = Clock::now();
  ASSERT_EQ(positions(g.dispatch(t)).size(), 4u);
  g.nack(NackAction::kRetry, std::vector<std::uint64_t>{0}, t, "busy");
  g.nack(NackAction::kRetryLater, std::vector<std::uint64_t>{1}, t, "later");
  g.nack(NackAction::kPark, std::vector<std::uint64_t>{2}, t, "poison");
  g.nack(NackAction::kSkip, std::vector<std::uint64_t>{3}, t, "");
  EXPECT_EQ(positions(g.dispatch(t)), std::vector<std::uint64_t>{0}) << "retry: at once";
  g.tick(t + 50ms);
  EXPECT_TRUE(g.dispatch(t + 50ms).empty()) << "retry later: not before the delay";
  g.tick(t + 101ms);
  EXPECT_EQ(positions(g.dispatch(t + 101ms)), std::vector<std::uint64_t>{1});
  ASSERT_EQ(g.parked().size(), 1u);
  EXPECT_EQ(g.parked().at(2).reason, "poison");
  EXPECT_EQ(g.counters().acked_total, 1u) << "skip counts as resolved";
}

// The ordered strategy's rule, checked against a random schedule of
// deliveries, acks, nacks, timeouts, joins and leaves: an event is never
// delivered while an earlier event of its key is unresolved, and never to
// two consumers at once.
TEST(GroupState, OrderedNeverDeliversAKeysEventBeforeItsPredecessorIsResolved) {
  std::mt19937_64 rng(7);
  GroupState g(opts(Strategy::kOrdered, 3));
  constexpr int kKeys = 20, kEvents = 2000;
  std::map<std::uint64_t, std::string> key_of;
  std::map<std::string, std::vector<std::uint64_t>> by_key;
  for (std::uint64_t p = 0; p < kEvents; ++p) {
    std::string k = "s" + std::to_string(rng() % kKeys);
    key_of[p] = k;
    by_key[k].push_back(p);
  }
  std::set<std::uint64_t> resolved;
  std::map<std::uint64_t, std::uint64_t> held;  // position -> consumer
  std::uint64_t next_add = 0, next_consumer = 1;
  std::set<std::uint64_t> consumers;
  auto t = Clock::now();
  for (int step = 0; step < 20000 && resolved.size() < kEvents; ++step) {
    t += 10ms;
    const int what = static_cast<int>(rng() % 100);
    if (what < 20 && next_add < kEvents) {
      for (int i = 0; i < 50 && next_add < kEvents; ++i, ++next_add)
        g.add(ev(next_add, key_of[next_add]));
    } else if (what < 25 && consumers.size() < 4) {
      consumers.insert(next_consumer);
      g.join(next_consumer++, 1 + static_cast<std::uint32_t>(rng() % 8));
    } else if (what < 28 && !consumers.empty()) {
      const std::uint64_t c = *consumers.begin();
      consumers.erase(c);
      g.leave(c);
      std::erase_if(held, [c](const auto& kv) { return kv.second == c; });
    } else if (what < 30) {
      g.tick(t + 2s);  // everything held times out
      held.clear();
    } else {
      for (const auto& d : g.dispatch(t)) {
        for (const auto& item : d.items) {
          const std::uint64_t p = item.position;
          ASSERT_FALSE(held.count(p)) << "position " << p << " delivered to two consumers";
          for (std::uint64_t earlier : by_key[key_of[p]]) {
            if (earlier >= p) break;
            ASSERT_TRUE(resolved.count(earlier))
                << "position " << p << " delivered before " << earlier << " of its key";
          }
          held[p] = d.consumer;
        }
      }
      std::vector<std::uint64_t> ack, retry;
      for (const auto& [p, c] : held) (rng() % 10 < 8 ? ack : retry).push_back(p);
      for (std::uint64_t p : ack) resolved.insert(p);
      for (std::uint64_t p : ack) held.erase(p);
      for (std::uint64_t p : retry) held.erase(p);
      g.ack(ack);
      g.nack(NackAction::kRetry, retry, t, "");
      for (const auto& [pos, pk] : g.parked()) resolved.insert(pos);
    }
  }
  if (consumers.empty()) g.join(next_consumer++, 8);
  for (int i = 0; i < 5000 && resolved.size() < kEvents; ++i) {
    for (; next_add < kEvents; ++next_add) g.add(ev(next_add, key_of[next_add]));
    std::vector<std::uint64_t> ack;
    for (const auto& d : g.dispatch(t))
      for (const auto& item : d.items) ack.push_back(item.position);
    for (std::uint64_t p : ack) resolved.insert(p);
    g.ack(ack);
    for (const auto& [pos, pk] : g.parked()) resolved.insert(pos);
  }
  EXPECT_EQ(resolved.size(), static_cast<std::size_t>(kEvents));
  EXPECT_EQ(g.checkpoint(), static_cast<std::uint64_t>(kEvents));
}

TEST(GroupState, RestoredProgressSkipsWhatWasResolved) {
  Progress p;
  p.checkpoint = 10;
  p.resolved = {{12, 5}, {13, 6}};
  GroupState g(opts(Strategy::kRoundRobin), p);
  EXPECT_FALSE(g.wants(9));
  EXPECT_TRUE(g.wants(10));
  EXPECT_FALSE(g.wants(12));
  g.add(ev(10, "a"));
  g.add(ev(12, "a"));  // ignored: resolved before the restart
  g.add(ev(14, "a"));
  EXPECT_EQ(g.buffered(), 2u);
}

TEST(GroupFile, RoundTripsAndRefusesDamage) {
  GroupFile f;
  f.name = "billing projector";
  f.settings.target = Target::kIndex;
  f.settings.index_kind = index::IndexKind::kType;
  f.settings.index_value = "OrderPlaced";
  f.settings.strategy = Strategy::kOrdered;
  f.settings.max_in_flight = 7;
  f.progress.checkpoint = 99;
  f.progress.checkpoint_timestamp_us = 123456;
  f.progress.resolved = {{101, 5}, {105, 6}};
  f.progress.parked[50] = Parked{50, 3, true, "bad payload"};
  f.progress.acked_total = 42;
  const std::string bytes = encode_group_file(f);
  auto back = decode_group_file(bytes);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->name, f.name);
  EXPECT_EQ(back->settings.index_value, "OrderPlaced");
  EXPECT_EQ(back->settings.strategy, Strategy::kOrdered);
  EXPECT_EQ(back->settings.max_in_flight, 7u);
  EXPECT_EQ(back->progress.checkpoint, 99u);
  EXPECT_EQ(back->progress.resolved, f.progress.resolved);
  ASSERT_EQ(back->progress.parked.size(), 1u);
  EXPECT_EQ(back->progress.parked.at(50).reason, "bad payload");
  EXPECT_TRUE(back->progress.parked.at(50).replaying);
  EXPECT_EQ(back->progress.acked_total, 42u);
  for (std::size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    auto r = decode_group_file(bad);
    ASSERT_FALSE(r.is_ok()) << "a flipped byte at " << i << " was accepted";
    EXPECT_EQ(r.status().code(), Errc::kCorruption);
  }
  EXPECT_FALSE(decode_group_file(bytes.substr(0, bytes.size() - 1)).is_ok());
}

// What the node does with DATA/groups: a written file survives a crash (it
// is renamed into place and the directory synced), and a temporary file a
// crash left is removed at the next read, the previous file standing.
TEST(GroupFile, AWrittenFileSurvivesACrashAndALeftoverTemporaryIsRemoved) {
  test::TempDir tmp("annal-groups");
  const std::string dir = tmp.path() + "/groups";
  engine::FaultInjectionFileSystem fs;
  auto none = read_group_files(fs, dir);
  ASSERT_TRUE(none.is_ok()) << none.status().message();
  EXPECT_TRUE(none->empty());
  GroupFile f;
  f.name = "survivor";
  f.progress.checkpoint = 7;
  ASSERT_TRUE(write_group_file(fs, dir, f).is_ok());
  ASSERT_TRUE(fs.crash(1).is_ok());
  {
    auto stray = fs.open(dir + "/" + group_file_name(Kind::kGroup, "survivor") + ".tmp",
                         engine::OpenOptions{.create = true});
    ASSERT_TRUE(stray.is_ok());
  }
  auto back = read_group_files(fs, dir);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].progress.checkpoint, 7u);
  EXPECT_FALSE(fs.exists(dir + "/" + group_file_name(Kind::kGroup, "survivor") + ".tmp"));
}

}  // namespace
}  // namespace annal::groups
