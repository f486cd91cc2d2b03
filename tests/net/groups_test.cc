// Consumer groups and named consumers against the real node
// (docs/consumer-groups.md): administration and its errors, competing
// consumers while writers append (every event acked, duplicates only as
// counted redeliveries), the ordered strategy's guarantee while consumers
// join, leave and vanish, nacks, parking and replay, ack timeouts, lag with
// a stalled consumer, progress across a restart, named checkpoints, and
// older connections.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "groups/group_file.h"
#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;
using Kind = Subscription::Message::Kind;

groups::Settings all_events(groups::Strategy s = groups::Strategy::kRoundRobin) {
  groups::Settings g;
  g.target = groups::Target::kAll;
  g.strategy = s;
  return g;
}

void append(Client& c, const std::string& stream, int i) {
  auto r = c.append(proto::AppendReq{
      stream, ExpectedRevision::any(), {json_event("E", "{\"i\":" + std::to_string(i) + "}")}});
  ASSERT_TRUE(r.ok()) << r.error_string();
}

// Waits for the next events message (nullopt: none within `timeout`).
std::optional<Subscription::Message> next_events(GroupMember& m,
                                                 std::chrono::milliseconds timeout = 10s) {
  auto msg = m.next(timeout);
  if (!msg) return std::nullopt;
  EXPECT_EQ(msg->kind, Kind::kEvents) << error_string(msg->error);
  if (msg->kind != Kind::kEvents) return std::nullopt;
  return msg;
}

proto::GroupInfo wait_info(Client& c, const std::string& name,
                           const std::function<bool(const proto::GroupInfo&)>& done) {
  proto::GroupInfo last;
  for (int i = 0; i < 500; ++i) {
    auto r = c.group_info(name);
    EXPECT_TRUE(r.ok()) << r.error_string();
    if (!r.ok()) return last;
    last = r.value();
    if (done(last)) return last;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "group " << name << " did not reach the expected state: checkpoint "
                << last.checkpoint << ", durable end " << last.durable_end << ", in flight "
                << last.in_flight << ", parked " << last.parked;
  return last;
}

class GroupsTest : public ::testing::Test {
 protected:
  void SetUp() override { node_ = std::make_unique<Node>(dir_.path()); }
  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text();
    }
  }
  TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(GroupsTest, CreateListInfoUpdateDeleteAndTheirErrors) {
  auto c = node_->client();
  ASSERT_TRUE(c->group_create("g1", all_events()).ok());
  auto dup = c->group_create("g1", all_events());
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, proto::Code::kAlreadyExists);
  groups::Settings bad = all_events();
  bad.max_in_flight = 0;
  auto r = c->group_create("g2", bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kInvalidArgument);
  EXPECT_NE(r.error().message.find("max_in_flight"), std::string::npos) << r.error().message;
  groups::Settings stream;
  stream.target = groups::Target::kStream;  // without a stream name
  r = c->group_create("g2", stream);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("'stream'"), std::string::npos) << r.error().message;
  r = c->group_create("", all_events());
  EXPECT_EQ(r.error().code, proto::Code::kInvalidArgument);

  groups::Settings upd = all_events();
  upd.max_in_flight = 5;
  upd.ack_timeout_ms = 1234;
  ASSERT_TRUE(c->group_create("g1", upd, true).ok());
  auto info = c->group_info("g1");
  ASSERT_TRUE(info.ok()) << info.error_string();
  EXPECT_EQ(info->settings.max_in_flight, 5u);
  EXPECT_EQ(info->settings.ack_timeout_ms, 1234u);
  groups::Settings moved = upd;
  moved.stream_prefix = "order-";
  r = c->group_create("g1", moved, true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("target cannot change"), std::string::npos);
  r = c->group_create("nope", upd, true);
  EXPECT_EQ(r.error().code, proto::Code::kNotFound);

  ASSERT_TRUE(c->checkpoint_save("projector", 0).ok());
  auto list = c->group_list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "g1");
  EXPECT_EQ((*list)[1].name, "projector");
  EXPECT_EQ((*list)[1].kind, groups::Kind::kNamed);

  auto member = c->group_join("g1");
  ASSERT_TRUE(member.ok());
  ASSERT_TRUE(c->group_delete("g1").ok());
  // The membership ends with the reason.
  auto msg = (*member)->next(10s);
  ASSERT_TRUE(msg.has_value());
  ASSERT_EQ(msg->kind, Kind::kEnded);
  EXPECT_EQ(msg->error.code, proto::Code::kNotFound);
  EXPECT_EQ(c->group_info("g1").error().code, proto::Code::kNotFound);
  EXPECT_EQ(c->group_join("g1").error().code, proto::Code::kNotFound);
  EXPECT_EQ(c->group_delete("g1").error().code, proto::Code::kNotFound);
}

TEST_F(GroupsTest, FourConsumersShareTheWorkOfFourWritersAndAckEveryEvent) {
  constexpr int kWriters = 4, kPerWriter = 250, kTotal = kWriters * kPerWriter;
  auto admin = node_->client();
  ASSERT_TRUE(admin->group_create("work", all_events()).ok());
  std::mutex mu;
  std::map<std::uint64_t, int> acked;  // position -> acks sent
  std::map<std::uint64_t, std::uint32_t> max_attempt;
  std::atomic<bool> writers_done{false};
  std::vector<std::thread> consumers;
  std::atomic<int> per_consumer[4] = {0, 0, 0, 0};
  for (int k = 0; k < 4; ++k) {
    consumers.emplace_back([&, k] {
      auto c = node_->client();
      auto m = c->group_join("work", 16);
      ASSERT_TRUE(m.ok()) << m.error_string();
      for (;;) {
        auto msg = (*m)->next(1s);
        if (!msg) {
          std::lock_guard lk(mu);
          if (writers_done && acked.size() == kTotal) break;
          continue;
        }
        ASSERT_EQ(msg->kind, Kind::kEvents) << error_string(msg->error);
        std::vector<std::uint64_t> ps;
        {
          std::lock_guard lk(mu);
          for (std::size_t i = 0; i < msg->events.size(); ++i) {
            const std::uint64_t p = msg->events[i].position.value;
            ps.push_back(p);
            ++acked[p];
            max_attempt[p] = std::max(max_attempt[p], msg->attempts[i]);
          }
        }
        per_consumer[k] += static_cast<int>(ps.size());
        (*m)->ack(ps);
      }
    });
  }
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      auto c = node_->client();
      for (int i = 0; i < kPerWriter; ++i) append(*c, "s" + std::to_string((w * 7 + i) % 50), i);
    });
  for (auto& t : writers) t.join();
  writers_done = true;
  for (auto& t : consumers) t.join();
  ASSERT_EQ(acked.size(), static_cast<std::size_t>(kTotal));
  for (const auto& [p, n] : acked) {
    EXPECT_LT(p, static_cast<std::uint64_t>(kTotal));
    // Delivered more than once only as a counted redelivery.
    EXPECT_EQ(static_cast<std::uint32_t>(n), max_attempt[p]) << "position " << p;
  }
  for (int k = 0; k < 4; ++k) EXPECT_GT(per_consumer[k].load(), 0) << "consumer " << k;
  auto info = wait_info(*admin, "work", [&](const proto::GroupInfo& i) {
    return i.checkpoint == static_cast<std::uint64_t>(kTotal) && i.in_flight == 0;
  });
  EXPECT_EQ(info.lag_events, 0u);
  EXPECT_EQ(info.lag_us, 0);
  EXPECT_GE(info.acked_total, static_cast<std::uint64_t>(kTotal));
}

// Ordered by stream while consumers join, leave and vanish (their client
// destroyed without leaving, as a crash would): no event is delivered
// before its predecessor in the stream has been acked.
TEST_F(GroupsTest, OrderedStrategyNeverDeliversAStreamsEventBeforeItsPredecessorIsAcked) {
  constexpr int kStreams = 40, kPerStream = 25, kTotal = kStreams * kPerStream;
  auto admin = node_->client();
  ASSERT_TRUE(admin->group_create("ordered", all_events(groups::Strategy::kOrdered)).ok());
  std::mutex mu;
  std::map<std::string, std::set<std::uint64_t>> acked_revs;  // recorded before the ack is sent
  std::set<std::uint64_t> acked_positions;
  std::vector<std::string> violations;
  std::atomic<bool> writers_done{false};
  auto writer = std::thread([&] {
    auto c = node_->client();
    std::mt19937 rng(3);
    std::vector<int> next(kStreams, 0);
    for (int n = 0; n < kTotal; ++n) {
      int s = static_cast<int>(rng() % kStreams);
      while (next[s] == kPerStream) s = (s + 1) % kStreams;
      append(*c, "o-" + std::to_string(s), next[s]++);
    }
    writers_done = true;
  });
  // Each worker joins, takes some batches, then leaves, vanishes or stays.
  auto worker = [&](int seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    while (true) {
      {
        std::lock_guard lk(mu);
        if (writers_done && acked_positions.size() == kTotal) return;
      }
      auto c = node_->client();
      auto m = c->group_join("ordered", 1 + static_cast<std::uint32_t>(rng() % 8));
      ASSERT_TRUE(m.ok()) << m.error_string();
      const int batches = 1 + static_cast<int>(rng() % 20);
      for (int b = 0; b < batches; ++b) {
        auto msg = (*m)->next(300ms);
        if (!msg) break;
        ASSERT_EQ(msg->kind, Kind::kEvents) << error_string(msg->error);
        std::vector<std::uint64_t> ps;
        {
          std::lock_guard lk(mu);
          for (const auto& e : msg->events) {
            auto& revs = acked_revs[e.stream];
            for (std::uint64_t r = 0; r < e.revision.value; ++r)
              if (!revs.count(r))
                violations.push_back(e.stream + "@" + std::to_string(e.revision.value) +
                                     " delivered before revision " + std::to_string(r));
            revs.insert(e.revision.value);
            acked_positions.insert(e.position.value);
            ps.push_back(e.position.value);
          }
        }
        if (rng() % 10 == 0) {
          // Vanish holding this batch unacked: it must come back, in order.
          std::lock_guard lk(mu);
          for (const auto& e : msg->events) {
            acked_revs[e.stream].erase(e.revision.value);
            acked_positions.erase(e.position.value);
          }
          c.reset();  // the connection closes; the membership ends without a leave
          break;
        }
        (*m)->ack(ps);
      }
      if (c && rng() % 2 == 0) (void)(*m)->leave();
      // else the membership ends when the connection closes (the member is
      // destroyed first; with the client gone first it is ended already)
    }
  };
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(worker, 11 + i);
  writer.join();
  for (auto& t : workers) t.join();
  for (const auto& v : violations) ADD_FAILURE() << v;
  EXPECT_EQ(acked_positions.size(), static_cast<std::size_t>(kTotal));
  wait_info(*admin, "ordered", [&](const proto::GroupInfo& i) {
    return i.checkpoint == static_cast<std::uint64_t>(kTotal) && i.in_flight == 0;
  });
}

TEST_F(GroupsTest, NacksRetryParkSkipAndParkedEventsReplay) {
  auto c = node_->client();
  groups::Settings s = all_events();
  s.max_retries = 1;
  s.retry_delay_ms = 50;
  ASSERT_TRUE(c->group_create("nacks", s).ok());
  for (int i = 0; i < 3; ++i) append(*c, "n-1", i);
  auto m = c->group_join("nacks", 10);
  ASSERT_TRUE(m.ok());
  std::map<std::uint64_t, std::uint32_t> got;
  while (got.size() < 3) {
    auto msg = next_events(**m);
    ASSERT_TRUE(msg);
    for (std::size_t i = 0; i < msg->events.size(); ++i)
      got[msg->events[i].position.value] = msg->attempts[i];
  }
  EXPECT_EQ(got, (std::map<std::uint64_t, std::uint32_t>{{0, 1}, {1, 1}, {2, 1}}));
  (*m)->nack(groups::NackAction::kSkip, {2});
  (*m)->nack(groups::NackAction::kRetry, {0}, "db down");
  auto again = next_events(**m);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->events.size(), 1u);
  EXPECT_EQ(again->events[0].position.value, 0u);
  EXPECT_EQ(again->attempts[0], 2u);
  (*m)->nack(groups::NackAction::kRetryLater, {0}, "still down");  // 2 failures > 1: parked
  (*m)->nack(groups::NackAction::kPark, {1}, "poison");
  auto info = wait_info(*c, "nacks", [](const proto::GroupInfo& i) { return i.parked == 2; });
  EXPECT_EQ(info.checkpoint, 3u) << "parked and skipped events are resolved";
  EXPECT_EQ(info.parked_total, 2u);
  auto parked = c->group_parked("nacks");
  ASSERT_TRUE(parked.ok()) << parked.error_string();
  ASSERT_EQ(parked->parked.size(), 2u);
  EXPECT_EQ(parked->parked[0].position, 0u);
  EXPECT_EQ(parked->parked[0].failures, 2u);
  EXPECT_EQ(parked->parked[0].reason, "still down");
  EXPECT_EQ(parked->parked[1].position, 1u);
  EXPECT_EQ(parked->parked[1].reason, "poison");
  EXPECT_EQ(parked->next, proto::kNone);
  auto page = c->group_parked("nacks", 0, 1);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->parked.size(), 1u);
  EXPECT_EQ(page->next, 1u) << "where the next page starts";
  std::string out;
  ASSERT_EQ(run_annal(node_->port(), "group parked nacks", &out), 0) << out;
  EXPECT_NE(out.find("{\"position\":0,\"failures\":2,\"replaying\":false,\"reason\":\"still "
                     "down\"}\n{\"position\":1,"),
            std::string::npos)
      << out;
  auto n = c->group_replay_parked("nacks");
  ASSERT_TRUE(n.ok()) << n.error_string();
  EXPECT_EQ(*n, 2u);
  std::set<std::uint64_t> replayed;
  while (replayed.size() < 2) {
    auto msg = next_events(**m);
    ASSERT_TRUE(msg);
    for (const auto& e : msg->events) replayed.insert(e.position.value);
    std::vector<std::uint64_t> ps;
    for (const auto& e : msg->events) ps.push_back(e.position.value);
    (*m)->ack(ps);
  }
  EXPECT_EQ(replayed, (std::set<std::uint64_t>{0, 1}));
  wait_info(*c, "nacks", [](const proto::GroupInfo& i) { return i.parked == 0; });
}

TEST_F(GroupsTest, AnEventNotAckedInTimeGoesToAnotherConsumer) {
  auto c = node_->client();
  groups::Settings s = all_events();
  s.ack_timeout_ms = 300;
  ASSERT_TRUE(c->group_create("slow", s).ok());
  append(*c, "t-1", 0);
  auto c1 = node_->client();
  auto m1 = c1->group_join("slow", 1);
  ASSERT_TRUE(m1.ok());
  auto first = next_events(**m1);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->attempts.at(0), 1u);
  auto c2 = node_->client();
  auto m2 = c2->group_join("slow", 1);
  ASSERT_TRUE(m2.ok());
  // m1 holds it without acking; after the timeout either may get it again
  // (m1 has room again once it timed out), with attempt 2.
  std::optional<Subscription::Message> second;
  for (int i = 0; i < 50 && !second; ++i) {
    second = (*m2)->next(100ms);
    if (!second) second = (*m1)->next(100ms);
  }
  ASSERT_TRUE(second);
  ASSERT_EQ(second->kind, Kind::kEvents);
  EXPECT_EQ(second->events.at(0).position.value, 0u);
  EXPECT_EQ(second->attempts.at(0), 2u);
}

TEST_F(GroupsTest, LagOfAStalledConsumerInEventsAndEventTime) {
  auto c = node_->client();
  ASSERT_TRUE(c->group_create("lagging", all_events()).ok());
  for (int i = 0; i < 5; ++i) append(*c, "l-1", i);
  std::this_thread::sleep_for(200ms);
  for (int i = 5; i < 10; ++i) append(*c, "l-1", i);
  auto all = c->read_all(proto::ReadAllReq{0, 100, index::Direction::kForward});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->events.size(), 10u);
  auto m = c->group_join("lagging", 5);
  ASSERT_TRUE(m.ok());
  std::vector<std::uint64_t> five;
  while (five.size() < 5) {
    auto msg = next_events(**m);
    ASSERT_TRUE(msg);
    for (const auto& e : msg->events) five.push_back(e.position.value);
  }
  ASSERT_EQ(five, (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  (*m)->ack(five);
  // The consumer now takes 5..9 and stalls without acking.
  auto info = wait_info(*c, "lagging", [](const proto::GroupInfo& i) {
    return i.checkpoint == 5 && i.in_flight == 5;
  });
  EXPECT_EQ(info.lag_events, 5u);
  const std::int64_t expected = all->events[9].timestamp_us - all->events[4].timestamp_us;
  EXPECT_EQ(info.lag_us, expected);
  EXPECT_GE(info.lag_us, 200'000);
  // The listing says the same.
  auto list = c->group_list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].lag_events, 5u);
}

TEST_F(GroupsTest, ProgressAndParkedEventsSurviveARestart) {
  {
    auto c = node_->client();
    groups::Settings s = all_events();
    s.start = groups::Start::kPosition;
    s.start_value = 0;
    ASSERT_TRUE(c->group_create("durable", s).ok());
    for (int i = 0; i < 6; ++i) append(*c, "r-1", i);
    auto m = c->group_join("durable", 6);
    ASSERT_TRUE(m.ok());
    std::vector<std::uint64_t> got;
    while (got.size() < 6) {
      auto msg = next_events(**m);
      ASSERT_TRUE(msg);
      for (const auto& e : msg->events) got.push_back(e.position.value);
    }
    (*m)->ack({0, 1, 3});
    (*m)->nack(groups::NackAction::kPark, {2}, "bad");
    wait_info(*c, "durable", [](const proto::GroupInfo& i) { return i.parked == 1; });
  }
  ASSERT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text();
  node_ = std::make_unique<Node>(dir_.path());
  auto c = node_->client();
  auto info = c->group_info("durable");
  ASSERT_TRUE(info.ok()) << info.error_string();
  EXPECT_EQ(info->checkpoint, 4u);
  EXPECT_EQ(info->parked, 1u);
  auto m = c->group_join("durable", 10);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)->start(), 4u);
  std::set<std::uint64_t> got;
  while (got.size() < 2) {
    auto msg = next_events(**m);
    ASSERT_TRUE(msg);
    for (const auto& e : msg->events) got.insert(e.position.value);
  }
  EXPECT_EQ(got, (std::set<std::uint64_t>{4, 5})) << "only the events not acked before";
  EXPECT_FALSE((*m)->next(300ms).has_value());
}

TEST_F(GroupsTest, GroupsOnAStreamAndOnACategoryFromTheEnd) {
  auto c = node_->client();
  append(*c, "cart-1", 0);
  append(*c, "order-1", 0);
  groups::Settings stream;
  stream.target = groups::Target::kStream;
  stream.stream = "order-1";
  ASSERT_TRUE(c->group_create("one-stream", stream).ok());
  groups::Settings cat;
  cat.target = groups::Target::kIndex;
  cat.index_kind = index::IndexKind::kCategory;
  cat.index_value = "order";
  cat.start = groups::Start::kEnd;
  ASSERT_TRUE(c->group_create("new-orders", cat).ok());
  append(*c, "order-2", 0);
  append(*c, "order-1", 1);
  auto take = [&](const std::string& name, std::size_t n) {
    auto m = c->group_join(name, 10);
    EXPECT_TRUE(m.ok());
    std::vector<std::string> out;
    while (m.ok() && out.size() < n) {
      auto msg = next_events(**m);
      if (!msg) break;
      std::vector<std::uint64_t> ps;
      for (const auto& e : msg->events) {
        out.push_back(e.stream + "@" + std::to_string(e.revision.value));
        ps.push_back(e.position.value);
      }
      (*m)->ack(ps);
    }
    if (m.ok()) {
      EXPECT_FALSE((*m)->next(200ms).has_value()) << name << ": more than expected";
    }
    return out;
  };
  EXPECT_EQ(take("one-stream", 2), (std::vector<std::string>{"order-1@0", "order-1@1"}));
  EXPECT_EQ(take("new-orders", 2), (std::vector<std::string>{"order-2@0", "order-1@1"}));
}

TEST(GroupsWithoutSecondaryIndexTest, AnIndexGroupIsRefusedAtCreation) {
  TempDir dir;
  Node node(dir.path(), {"--secondary-index", "off"});
  auto c = node.client();
  groups::Settings s;
  s.target = groups::Target::kIndex;
  s.index_value = "order";
  auto r = c->group_create("by-category", s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kInvalidArgument);
  EXPECT_NE(r.error().message.find("--secondary-index on"), std::string::npos) << r.error().message;
  EXPECT_TRUE(c->group_create("all", all_events()).ok()) << "other targets still work";
  EXPECT_EQ(node.stop(), std::optional<int>(0));
}

TEST_F(GroupsTest, NamedConsumerCheckpoints) {
  auto c = node_->client();
  for (int i = 0; i < 4; ++i) append(*c, "p-1", i);
  auto none = c->checkpoint_load("proj");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(c->checkpoint_save("proj", 2).ok());
  auto got = c->checkpoint_load("proj");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or(99), 2u);
  auto past = c->checkpoint_save("proj", 5);
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.error().code, proto::Code::kInvalidArgument);
  auto info = c->group_info("proj");
  ASSERT_TRUE(info.ok()) << info.error_string();
  EXPECT_EQ(info->kind, groups::Kind::kNamed);
  EXPECT_EQ(info->lag_events, 2u);
  ASSERT_EQ(node_->stop(), std::optional<int>(0));
  node_ = std::make_unique<Node>(dir_.path());
  c = node_->client();
  got = c->checkpoint_load("proj");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or(99), 2u) << "stored durably";
  ASSERT_TRUE(c->group_delete("proj").ok());
  EXPECT_FALSE(c->checkpoint_load("proj")->has_value());
}

TEST_F(GroupsTest, AcksOfAnUnknownMembershipAndOlderConnections) {
  RawConn raw(node_->port());
  ASSERT_TRUE(raw.handshake());
  ASSERT_TRUE(raw.send(proto::encode(7, proto::GroupAckReq{99, {1, 2}})));
  auto f = raw.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->id, 7u);
  EXPECT_EQ(error_of(*f).code, proto::Code::kUnknownSubscription);
  auto v3 = node_->client(64, 3);
  auto r = v3->group_list();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("protocol version 4"), std::string::npos);
}

}  // namespace
}  // namespace annal::net::testing

namespace annal::net::testing {
namespace {

TEST_F(GroupsTest, TheCommandLine) {
  auto c = node_->client();
  append(*c, "cli-1", 0);
  append(*c, "cli-2", 0);
  std::string out;
  ASSERT_EQ(run_annal(node_->port(), "group create cli --all --strategy ordered", &out), 0) << out;
  EXPECT_NE(out.find("\"strategy\":\"ordered\""), std::string::npos) << out;
  ASSERT_EQ(run_annal(node_->port(), "group create cli --all", &out), 1);
  EXPECT_NE(out.find("already_exists (109)"), std::string::npos) << out;
  ASSERT_EQ(run_annal(node_->port(), "group create bad --all --stream s", &out), 2);
  ASSERT_EQ(run_annal(node_->port(), "group consume cli --count 2", &out), 0) << out;
  EXPECT_NE(out.find("\"attempt\":1,\"position\":0,\"stream\":\"cli-1\""), std::string::npos)
      << out;
  EXPECT_NE(out.find("\"position\":1,\"stream\":\"cli-2\""), std::string::npos) << out;
  ASSERT_EQ(run_annal(node_->port(), "group info cli", &out), 0) << out;
  EXPECT_NE(out.find("\"checkpoint\":2,"), std::string::npos) << "consume acked both: " << out;
  EXPECT_NE(out.find("\"lag_events\":0,"), std::string::npos) << out;
  ASSERT_EQ(run_annal(node_->port(), "checkpoint proj 1", &out), 0) << out;
  EXPECT_NE(out.find("\"position\":1"), std::string::npos) << out;
  ASSERT_EQ(run_annal(node_->port(), "info", &out), 0) << out;
  EXPECT_NE(out.find("\"groups\":[{\"name\":\"cli\",\"checkpoint\":2,\"lag_events\":0"),
            std::string::npos)
      << out;
  ASSERT_EQ(run_annal(node_->port(), "group delete cli", &out), 0) << out;
  ASSERT_EQ(run_annal(node_->port(), "group info cli", &out), 1);
  EXPECT_NE(out.find("not_found (11)"), std::string::npos) << out;
}

}  // namespace
}  // namespace annal::net::testing

namespace annal::net::testing {
namespace {

// A damaged group file is never read as "no group" (which would redeliver
// everything or lose the parked list): the node refuses to start, naming
// the file, and `annal verify` reports it.
TEST_F(GroupsTest, ADamagedGroupFileStopsTheNodeAndVerifyReportsIt) {
  {
    auto c = node_->client();
    ASSERT_TRUE(c->group_create("fragile", all_events()).ok());
  }
  ASSERT_EQ(node_->stop(), std::optional<int>(0));
  node_.reset();
  const std::string file =
      dir_.path() + "/data/groups/" + groups::group_file_name(groups::Kind::kGroup, "fragile");
  {
    FILE* f = std::fopen(file.c_str(), "r+b");
    ASSERT_NE(f, nullptr) << file;
    std::fseek(f, 12, SEEK_SET);
    const int c = std::fgetc(f);
    std::fseek(f, 12, SEEK_SET);
    std::fputc(c ^ 0x40, f);
    std::fclose(f);
  }
  Node refused(dir_.path(), {}, false);
  auto code = refused.wait_exit(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_NE(*code, 0);
  EXPECT_NE(refused.log_text().find("checksum mismatch"), std::string::npos) << refused.log_text();
  EXPECT_NE(refused.log_text().find(groups::group_file_name(groups::Kind::kGroup, "fragile")),
            std::string::npos)
      << refused.log_text();
  const std::string cmd = std::string(ANNAL_CLI_PATH) + " verify " + dir_.path() + "/data 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  EXPECT_EQ(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 1) << out;
  EXPECT_NE(out.find("group-corrupt"), std::string::npos) << out;
}

}  // namespace
}  // namespace annal::net::testing
