// Multi-stream appends, queries and append conditions (Dynamic Consistency
// Boundaries) against the real node: the wire form of append_multi,
// append_refused and read_query, subscriptions by query, older connections,
// and a consistency test in the spirit of the dcb.events conformance suites:
// concurrent clients each read a decision model and append with the
// condition from that read, and the whole log afterwards never holds what
// the conditions excluded.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;
using Kind = Subscription::Message::Kind;

index::NewEvent event(const std::string& type, std::vector<std::string> tags, int i = 0) {
  index::NewEvent e = json_event(type, "{\"i\":" + std::to_string(i) + "}");
  e.tags = std::move(tags);
  return e;
}

index::Query query(std::vector<index::QueryItem> items) {
  return index::Query{std::move(items)};
}

class DcbTest : public ::testing::Test {
 protected:
  void SetUp() override { node_ = std::make_unique<Node>(dir_.path()); }
  void TearDown() override { EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text(); }

  // Every event matching `q`, paged forward `page` at a time; `head` gets
  // the last page's durable_end - 1 (nullopt: empty log).
  static std::vector<engine::EventRecord> read_all_matching(Client& c, const index::Query& q,
                                                            std::optional<std::uint64_t>* head,
                                                            std::uint32_t page = 100) {
    std::vector<engine::EventRecord> out;
    std::uint64_t from = 0;
    for (;;) {
      auto r = c.read_query(proto::ReadQueryReq{q, from, page, index::Direction::kForward});
      EXPECT_TRUE(r.ok()) << r.error_string();
      if (!r.ok()) return out;
      for (auto& e : r->events) out.push_back(std::move(e));
      if (r->end) {
        if (head)
          *head =
              r->durable_end > 0 ? std::optional<std::uint64_t>(r->durable_end - 1) : std::nullopt;
        return out;
      }
      from = r->next;
    }
  }

  TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(DcbTest, AppendMultiAnswersEveryStreamAndRefusalsNameThem) {
  auto c = node_->client();
  ASSERT_TRUE(c);
  auto ok = c->append_multi(proto::AppendMultiReq{
      {{"account-1", ExpectedRevision::no_stream(), {event("Debited", {"transfer:1"})}},
       {"account-2", ExpectedRevision::no_stream(), {event("Credited", {"transfer:1"})}}},
      {},
      proto::kNone});
  ASSERT_TRUE(ok.ok()) << ok.error_string();
  ASSERT_TRUE(ok->written());
  EXPECT_EQ(ok->ok->first_position, 0u);
  EXPECT_EQ(ok->ok->count, 2u);
  ASSERT_EQ(ok->ok->streams.size(), 2u);
  EXPECT_EQ(ok->ok->streams[1].first_revision, 0u);
  // Both expectations fail now: both named, nothing written.
  proto::AppendMultiReq again{{{"account-1", ExpectedRevision::no_stream(), {event("Debited", {})}},
                               {"account-3", ExpectedRevision::any(), {event("Credited", {})}},
                               {"account-2", ExpectedRevision::exact(5), {}}},
                              {},
                              proto::kNone};
  auto refused = c->append_multi(again);
  ASSERT_TRUE(refused.ok()) << refused.error_string();
  ASSERT_TRUE(refused->refused);
  EXPECT_EQ(refused->refused->code, proto::Code::kWrongExpectedRevision);
  ASSERT_EQ(refused->refused->streams.size(), 3u);
  EXPECT_TRUE(refused->refused->streams[0].failed);
  EXPECT_EQ(refused->refused->streams[0].actual_revision, 0u);
  EXPECT_FALSE(refused->refused->streams[1].failed);
  EXPECT_TRUE(refused->refused->streams[2].failed);
  EXPECT_NE(refused->refused->message.find("account-2"), std::string::npos);
  EXPECT_EQ(c->info()->durable_end, 2u);
  // A bad request is an error frame naming what is wrong.
  auto twice =
      c->append_multi(proto::AppendMultiReq{{{"a", ExpectedRevision::any(), {event("A", {})}},
                                             {"a", ExpectedRevision::any(), {event("A", {})}}},
                                            {},
                                            proto::kNone});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code, proto::Code::kBadRequest);
  auto after_alone = c->append_multi(
      proto::AppendMultiReq{{{"a", ExpectedRevision::any(), {event("A", {})}}}, {}, 0});
  ASSERT_FALSE(after_alone.ok());
  EXPECT_NE(after_alone.error().message.find("after"), std::string::npos);
}

TEST_F(DcbTest, ConditionsRefuseWithTheConflictAndRetriesAreDeduplicated) {
  auto c = node_->client();
  const index::Query name = query({{{}, {"username:ann"}}});
  proto::AppendMultiReq reg{
      {{"user-1", ExpectedRevision::no_stream(), {event("Registered", {"username:ann"})}}},
      name,
      proto::kNone};
  auto first = c->append_multi(reg);
  ASSERT_TRUE(first.ok() && first->written()) << first.error_string();
  auto retry = c->append_multi(reg);  // the same event ids
  ASSERT_TRUE(retry.ok() && retry->written());
  EXPECT_TRUE(retry->ok->deduplicated);
  EXPECT_EQ(retry->ok->first_position, first->ok->first_position);
  auto other = c->append_multi(proto::AppendMultiReq{
      {{"user-2", ExpectedRevision::no_stream(), {event("Registered", {"username:ann"})}}},
      name,
      proto::kNone});
  ASSERT_TRUE(other.ok()) << other.error_string();
  ASSERT_TRUE(other->refused);
  EXPECT_EQ(other->refused->code, proto::Code::kAppendConditionFailed);
  EXPECT_EQ(other->refused->conflict_position, first->ok->first_position);
  // `after` beyond the durable head is a bad request.
  auto beyond = c->append_multi(proto::AppendMultiReq{
      {{"user-3", ExpectedRevision::any(), {event("Registered", {"username:bob"})}}},
      query({{{}, {"username:bob"}}}),
      1000});
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code, proto::Code::kBadRequest);
}

TEST_F(DcbTest, ReadQueryPagesBothWaysAndReportsTheHeadEvenWhenNothingMatches) {
  auto c = node_->client();
  std::optional<std::uint64_t> head = 7;
  EXPECT_TRUE(read_all_matching(*c, query({{{}, {"x"}}}), &head).empty());
  EXPECT_EQ(head, std::nullopt);
  for (int i = 0; i < 25; ++i)
    ASSERT_TRUE(c->append(proto::AppendReq{
                              "s-" + std::to_string(i % 3),
                              ExpectedRevision::any(),
                              {event(i % 2 ? "Odd" : "Even", {i % 5 == 0 ? "five" : "other"}, i)}})
                    .ok());
  auto fives = read_all_matching(*c, query({{{"Even"}, {"five"}}, {{"Odd"}, {"five"}}}), &head, 2);
  ASSERT_EQ(fives.size(), 5u);
  for (std::size_t k = 0; k < fives.size(); ++k) EXPECT_EQ(fives[k].position.value, 5 * k);
  EXPECT_EQ(head, 24u);
  auto none = read_all_matching(*c, query({{{"Nothing"}, {}}}), &head);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(head, 24u);
  auto back = c->read_query(proto::ReadQueryReq{query({{{"Even"}, {"five"}}}), proto::kNone, 2,
                                                index::Direction::kBackward});
  ASSERT_TRUE(back.ok()) << back.error_string();
  ASSERT_EQ(back->events.size(), 2u);
  EXPECT_EQ(back->events[0].position.value, 20u);
  EXPECT_EQ(back->events[1].position.value, 10u);
  auto empty =
      c->read_query(proto::ReadQueryReq{index::Query{}, 0, 10, index::Direction::kForward});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code, proto::Code::kBadRequest);
}

TEST_F(DcbTest, OlderConnectionsDoNotKnowTheNewOperations) {
  auto v2 = node_->client(64, 2);
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->hello().version, 2);
  auto r =
      v2->read_query(proto::ReadQueryReq{query({{{}, {"x"}}}), 0, 10, index::Direction::kForward});
  ASSERT_FALSE(r.ok());  // refused by the client library before sending
  RawConn raw(node_->port());
  proto::Hello h;
  h.version = 2;
  ASSERT_TRUE(raw.send(proto::encode_hello(1, h)));
  ASSERT_TRUE(raw.read_frame());
  const std::string body = proto::encode(
      7, proto::ReadQueryReq{query({{{}, {"x"}}}), 0, 10, index::Direction::kForward}, 3);
  ASSERT_TRUE(raw.send(body));
  auto f = raw.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->id, 7u);
  EXPECT_EQ(error_of(*f).code, proto::Code::kUnknownOperation);
}

TEST_F(DcbTest, SubscriptionsByQueryCatchUpThenFollowLive) {
  auto c = node_->client();
  auto writer = node_->client();
  const index::Query q = query({{{"Enrolled"}, {"course:1"}}});
  for (int i = 0; i < 300; ++i)
    ASSERT_TRUE(writer
                    ->append(proto::AppendReq{"student-" + std::to_string(i),
                                              ExpectedRevision::any(),
                                              {event(i % 4 ? "Viewed" : "Enrolled",
                                                     {"course:" + std::to_string(i % 3)}, i)}})
                    .ok());
  proto::SubscribeReq req;
  req.target = proto::Target::kQuery;
  req.query = q;
  auto sub = c->subscribe(req);
  ASSERT_TRUE(sub.ok()) << sub.error_string();
  std::vector<std::uint64_t> want;  // one event per append: position i
  for (int i = 0; i < 300; ++i)
    if (i % 4 == 0 && i % 3 == 1) want.push_back(static_cast<std::uint64_t>(i));
  ASSERT_EQ(want.size(), 25u);
  for (int i = 300; i < 340; ++i) {
    const bool hit = i % 5 == 0;
    ASSERT_TRUE(
        writer
            ->append(proto::AppendReq{"student-" + std::to_string(i),
                                      ExpectedRevision::any(),
                                      {event("Enrolled", {hit ? "course:1" : "course:2"}, i)}})
            .ok());
    if (hit) want.push_back(static_cast<std::uint64_t>(i));
  }
  std::vector<std::uint64_t> got;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got.size() < want.size() && std::chrono::steady_clock::now() < deadline) {
    auto m = sub.value()->next(1s);
    if (!m || m->kind == Kind::kCheckpoint) continue;
    ASSERT_NE(m->kind, Kind::kEnded) << error_string(m->error);
    for (const auto& e : m->events) got.push_back(e.position.value);
  }
  EXPECT_EQ(got, want);
  // A query that cannot be valid is refused at subscribe.
  proto::SubscribeReq bad;
  bad.target = proto::Target::kQuery;
  bad.query = query({{{}, {""}}});
  auto refused = c->subscribe(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, proto::Code::kBadRequest);
}

// The dcb.events-style consistency check: 12 clients enrol students in 4
// courses of capacity 5 (and each in a course of its own, with tags no one
// else uses), deciding from a read of the course's enrolments and appending
// with that read's query and head as the condition. Afterwards, read from the
// whole log: no course over capacity, positions strictly increasing, and the
// private courses' appends never refused.
TEST_F(DcbTest, ConcurrentDecisionsNeverExceedWhatTheirConditionsAllow) {
  constexpr int kClients = 12, kCourses = 4, kCapacity = 5, kTries = 30;
  std::atomic<int> refused_private{0}, accepted{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      auto c = node_->client();
      ASSERT_TRUE(c);
      for (int k = 0; k < kTries; ++k) {
        const bool own = k % 3 == 2;  // a course only this client enrols in
        const std::string course = own ? "course:own-" + std::to_string(t)
                                       : "course:" + std::to_string((t + k) % kCourses);
        const index::Query q = query({{{"Enrolled"}, {course}}});
        std::optional<std::uint64_t> head;
        const auto model = read_all_matching(*c, q, &head);
        if (!own && model.size() >= static_cast<std::size_t>(kCapacity)) continue;
        const std::string student = "student-" + std::to_string(t) + "-" + std::to_string(k);
        auto r = c->append_multi(proto::AppendMultiReq{
            {{student, ExpectedRevision::no_stream(), {event("Enrolled", {course, student}, k)}}},
            q,
            head ? *head : proto::kNone});
        ASSERT_TRUE(r.ok()) << r.error_string();
        if (r->written()) {
          ++accepted;
        } else {
          EXPECT_EQ(r->refused->code, proto::Code::kAppendConditionFailed);
          ++conflicts;
          if (own) ++refused_private;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(refused_private.load(), 0) << "an append whose tags no one else uses was refused";
  auto c = node_->client();
  std::map<std::string, int> per_course;
  std::uint64_t last = 0;
  bool first = true;
  std::uint64_t from = 0;
  for (;;) {
    auto r = c->read_all(proto::ReadAllReq{from, 1000, index::Direction::kForward});
    ASSERT_TRUE(r.ok());
    for (const auto& e : r->events) {
      EXPECT_TRUE(first || e.position.value > last);
      first = false;
      last = e.position.value;
      for (const auto& tag : e.tags)
        if (tag.starts_with("course:")) ++per_course[tag];
    }
    if (r->end) break;
    from = r->next;
  }
  int total = 0;
  for (const auto& [course, n] : per_course) total += n;
  for (int k = 0; k < kCourses; ++k)
    EXPECT_LE(per_course["course:" + std::to_string(k)], kCapacity) << "course " << k;
  EXPECT_EQ(total, accepted.load()) << "the log holds other enrolments than those acknowledged";
  // Whether two decisions raced depends on scheduling; printed, not asserted
  // (the same-group test in the store forces the race deterministically).
  std::cout << "accepted " << accepted << ", refused " << conflicts << "\n";
}

}  // namespace
}  // namespace annal::net::testing

namespace annal::net::testing {
namespace {

TEST_F(DcbTest, CliAppendsWithAConditionAndReadsByQuery) {
  std::string out;
  const std::string guard = " --fail-if 'type=Registered tag=username:ann'";
  ASSERT_EQ(
      run_annal(node_->port(),
                "append user-1 --type Registered --data '{}' --tag username:ann" + guard, &out),
      0)
      << out;
  EXPECT_NE(out.find("\"position\":0"), std::string::npos) << out;
  EXPECT_EQ(
      run_annal(node_->port(),
                "append user-2 --type Registered --data '{}' --tag username:ann" + guard, &out),
      1)
      << out;
  EXPECT_NE(out.find("append_condition_failed"), std::string::npos) << out;
  ASSERT_EQ(run_annal(node_->port(), "append other --type Noted --data '{}'", &out), 0) << out;
  ASSERT_EQ(run_annal(node_->port(), "read-query 'tag=username:ann' 'type=Noted' --head", &out), 0)
      << out;
  EXPECT_NE(out.find("\"stream\":\"user-1\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"stream\":\"other\""), std::string::npos) << out;
  EXPECT_NE(out.find("{\"head\":1}"), std::string::npos) << out;
  // --after the head: no matching event after it, so written.
  EXPECT_EQ(run_annal(node_->port(),
                      "append user-3 --type Registered --data '{}' --tag username:bob "
                      "--fail-if 'tag=username:bob' --after 1",
                      &out),
            0)
      << out;
  EXPECT_EQ(run_annal(node_->port(), "read-query 'color=red'", &out), 2) << out;
}

}  // namespace
}  // namespace annal::net::testing

namespace annal::net::testing {
namespace {

TEST_F(DcbTest, CliAppendsToSeveralStreamsAtOnce) {
  std::string out;
  ASSERT_EQ(
      run_annal(node_->port(),
                "append-multi '{\"streams\":[{\"stream\":\"account-1\",\"expected\":"
                "\"no_stream\",\"events\":[{\"type\":\"Debited\",\"data\":{\"amount\":5},"
                "\"tags\":[\"transfer:9\"]}]},{\"stream\":\"account-2\",\"events\":[{\"type\":"
                "\"Credited\",\"data\":{\"amount\":5},\"tags\":[\"transfer:9\"]}]}],"
                "\"fail_if\":[\"tag=transfer:9\"]}'",
                &out),
      0)
      << out;
  EXPECT_NE(out.find("\"position\":0,\"count\":2"), std::string::npos) << out;
  EXPECT_NE(out.find("{\"stream\":\"account-2\",\"revision\":0,\"count\":1}"), std::string::npos)
      << out;
  // The same transfer again: its condition refuses it, naming the position.
  EXPECT_EQ(
      run_annal(node_->port(),
                "append-multi '{\"streams\":[{\"stream\":\"account-1\",\"events\":[{\"type\":"
                "\"Debited\",\"tags\":[\"transfer:9\"]}]}],\"fail_if\":[\"tag=transfer:9\"]}'",
                &out),
      1)
      << out;
  EXPECT_NE(out.find("append_condition_failed"), std::string::npos) << out;
  // A checked stream whose expectation fails is named with its actual revision.
  EXPECT_EQ(run_annal(node_->port(),
                      "append-multi '{\"streams\":[{\"stream\":\"account-3\",\"events\":[{\"type\":"
                      "\"Opened\"}]},{\"stream\":\"account-1\",\"expected\":7}]}'",
                      &out),
            1)
      << out;
  EXPECT_NE(out.find("[account-1: actual 0]"), std::string::npos) << out;
  EXPECT_EQ(run_annal(node_->port(), "append-multi '{\"streams\":3}'", &out), 2) << out;
  auto c = node_->client();
  EXPECT_EQ(c->info()->durable_end, 2u);
}

}  // namespace
}  // namespace annal::net::testing
