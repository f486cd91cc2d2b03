// Stream metadata and deletion against the real node (docs/semantics.md,
// "Metadata and deletion"; protocol v5): the operations and their errors,
// every read path over the wire (stream, log, index key, query, stream and
// log subscriptions, consumer groups, including events a group had read
// ahead before the change), the rules across a kill -9, the CLI, and older
// connections.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;
using Kind = Subscription::Message::Kind;

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { node_ = std::make_unique<Node>(dir_.path()); }
  void TearDown() override {
    if (node_) {
      EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text();
    }
  }
  void put(Client& c, const std::string& stream, int n) {
    for (int i = 0; i < n; ++i) {
      auto r = c.append(proto::AppendReq{
          stream, ExpectedRevision::any(), {json_event("E", "{\"i\":" + std::to_string(i) + "}")}});
      ASSERT_TRUE(r.ok()) << r.error_string();
    }
  }
  // "stream@revision" of every event the log read returns, paged by 3.
  static std::vector<std::string> read_all(Client& c) {
    std::vector<std::string> out;
    std::uint64_t from = 0;
    for (;;) {
      auto r = c.read_all(proto::ReadAllReq{from, 3, index::Direction::kForward});
      EXPECT_TRUE(r.ok()) << r.error_string();
      if (!r.ok()) return out;
      for (const auto& e : r->events)
        out.push_back(e.stream + "@" + std::to_string(e.revision.value));
      from = r->next;
      if (r->end) return out;
    }
  }
  static std::vector<std::string> names(const std::vector<engine::EventRecord>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.stream + "@" + std::to_string(e.revision.value));
    return out;
  }
  // Events of a subscription until `n` arrived (or 10 s passed).
  static std::vector<std::string> take(Subscription& s, std::size_t n) {
    std::vector<std::string> out;
    while (out.size() < n) {
      auto m = s.next(10s);
      if (!m || m->kind == Kind::kEnded) break;
      if (m->kind != Kind::kEvents) continue;
      for (auto& x : names(m->events)) out.push_back(x);
    }
    return out;
  }
  TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(LifecycleTest, MetadataIsSetVersionedAndReadOverTheWire) {
  auto c = node_->client();
  auto none = c->stream_metadata("s-1");
  ASSERT_TRUE(none.ok()) << none.error_string();
  EXPECT_EQ(none->revision, proto::kNone);
  EXPECT_EQ(none->json, "{}");
  auto set = c->set_stream_metadata("s-1", ExpectedRevision::no_stream(),
                                    R"({"max_count":2,"max_age":3600,"app":"x"})");
  ASSERT_TRUE(set.ok()) << set.error_string();
  EXPECT_EQ(set->first_revision, 0u);
  auto stale = c->set_stream_metadata("s-1", ExpectedRevision::no_stream(), "{}");
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, proto::Code::kWrongExpectedRevision);
  EXPECT_EQ(stale.error().detail, 0u);
  auto bad = c->set_stream_metadata("s-1", ExpectedRevision::any(), R"({"max_count":"two"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, proto::Code::kBadRequest);
  EXPECT_NE(bad.error().message.find("max_count"), std::string::npos);
  auto m = c->stream_metadata("s-1");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->revision, 0u);
  EXPECT_EQ(m->json, R"({"max_count":2,"max_age":3600,"app":"x"})");
  EXPECT_EQ(m->max_count, 2u);
  EXPECT_EQ(m->max_age, 3600u);
  EXPECT_FALSE(m->deleted);
  // The metadata stream is refused to plain appends, with a reason.
  auto direct =
      c->append(proto::AppendReq{"$$s-1", ExpectedRevision::any(), {json_event("E", "{}")}});
  ASSERT_FALSE(direct.ok());
  EXPECT_EQ(direct.error().code, proto::Code::kBadRequest);
}

TEST_F(LifecycleTest, EveryReadPathHonoursMaxCountAndSoftDelete) {
  auto c = node_->client();
  for (int i = 0; i < 4; ++i) {
    put(*c, "s-1", 1);
    put(*c, "t-1", 1);
  }
  ASSERT_TRUE(c->set_stream_metadata("s-1", ExpectedRevision::any(), R"({"max_count":1})").ok());
  EXPECT_EQ(read_all(*c),
            (std::vector<std::string>{"t-1@0", "t-1@1", "t-1@2", "s-1@3", "t-1@3", "$$s-1@0"}));
  auto stream = c->read_stream(proto::ReadStreamReq{"s-1", 0, 10, index::Direction::kForward});
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(names(stream->events), (std::vector<std::string>{"s-1@3"}));
  auto cat = c->read_index(proto::ReadIndexReq{index::IndexKind::kCategory, "s", 0, 0, {}});
  ASSERT_TRUE(cat.ok());
  EXPECT_EQ(names(cat->events), (std::vector<std::string>{"s-1@3"}));
  auto q =
      c->read_query(proto::ReadQueryReq{index::Query{{index::QueryItem{{"E"}, {}}}}, 0, 0, {}});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(names(q->events),
            (std::vector<std::string>{"t-1@0", "t-1@1", "t-1@2", "s-1@3", "t-1@3"}));
  // Subscriptions catching up.
  auto all = c->subscribe(proto::SubscribeReq{proto::Target::kAll, "", false, 0, "", "", 0});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(take(**all, 6),
            (std::vector<std::string>{"t-1@0", "t-1@1", "t-1@2", "s-1@3", "t-1@3", "$$s-1@0"}));
  auto one = c->subscribe(proto::SubscribeReq{proto::Target::kStream, "s-1", false, 0, "", "", 0});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(take(**one, 1), (std::vector<std::string>{"s-1@3"}));
  // Soft delete, seen live by both; then the stream is recreated.
  auto d = c->delete_stream("s-1", ExpectedRevision::exact(3));
  ASSERT_TRUE(d.ok()) << d.error_string();
  EXPECT_EQ(d->truncate_before, 4u);
  EXPECT_EQ(take(**all, 1), (std::vector<std::string>{"$$s-1@1"}));
  auto gone = c->read_stream(proto::ReadStreamReq{"s-1", 0, 10, index::Direction::kForward});
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, proto::Code::kStreamNotFound);
  EXPECT_TRUE(c->stream_metadata("s-1")->deleted);
  auto again =
      c->append(proto::AppendReq{"s-1", ExpectedRevision::no_stream(), {json_event("E", "{}")}});
  ASSERT_TRUE(again.ok()) << again.error_string();
  EXPECT_EQ(again->first_revision, 4u);
  EXPECT_EQ(take(**all, 1), (std::vector<std::string>{"s-1@4"}));
  EXPECT_EQ(take(**one, 1), (std::vector<std::string>{"s-1@4"}));
  EXPECT_EQ(read_all(*c), (std::vector<std::string>{"t-1@0", "t-1@1", "t-1@2", "t-1@3", "$$s-1@0",
                                                    "$$s-1@1", "s-1@4"}));
}

TEST_F(LifecycleTest, AGroupNeverHandsOutEventsRemovedAfterItReadThem) {
  auto c = node_->client();
  for (int i = 0; i < 5; ++i) {
    put(*c, "s-1", 1);
    put(*c, "t-1", 1);
  }
  groups::Settings g;
  g.target = groups::Target::kAll;
  ASSERT_TRUE(c->group_create("g", g).ok());
  auto m = c->group_join("g", 1);
  ASSERT_TRUE(m.ok());
  auto first = (*m)->next(10s);
  ASSERT_TRUE(first && first->kind == Kind::kEvents);
  EXPECT_EQ(names(first->events), (std::vector<std::string>{"s-1@0"}));
  // The group has read the rest ahead; s-1 goes before any of it is handed out.
  std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(c->delete_stream("s-1", ExpectedRevision::any()).ok());
  std::vector<std::string> got;
  (*m)->ack({first->events[0].position.value});
  while (got.size() < 6) {
    auto msg = (*m)->next(10s);
    ASSERT_TRUE(msg && msg->kind == Kind::kEvents);
    for (const auto& e : msg->events) {
      got.push_back(e.stream + "@" + std::to_string(e.revision.value));
      (*m)->ack({e.position.value});
    }
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{"t-1@0", "t-1@1", "t-1@2", "t-1@3", "t-1@4", "$$s-1@0"}));
}

TEST_F(LifecycleTest, HardDeleteIsRefusedEverywhereAndSurvivesAKill) {
  auto c = node_->client();
  put(*c, "s-1", 2);
  put(*c, "u-1", 3);
  ASSERT_TRUE(
      c->set_stream_metadata("u-1", ExpectedRevision::any(), R"({"truncate_before":2})").ok());
  auto d = c->delete_stream("s-1", ExpectedRevision::any(), true);
  ASSERT_TRUE(d.ok()) << d.error_string();
  auto check = [&](Client& cl) {
    auto w = cl.append(proto::AppendReq{"s-1", ExpectedRevision::any(), {json_event("E", "{}")}});
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().code, proto::Code::kStreamDeleted);
    EXPECT_NE(w.error().message.find("s-1"), std::string::npos);
    auto r = cl.read_stream(proto::ReadStreamReq{"s-1", 0, 10, index::Direction::kForward});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, proto::Code::kStreamDeleted);
    auto md = cl.stream_metadata("s-1");
    ASSERT_TRUE(md.ok());
    EXPECT_TRUE(md->tombstoned);
    auto u = cl.read_stream(proto::ReadStreamReq{"u-1", 0, 10, index::Direction::kForward});
    ASSERT_TRUE(u.ok());
    EXPECT_EQ(names(u->events), (std::vector<std::string>{"u-1@2"}));
  };
  check(*c);
  c.reset();
  ASSERT_EQ(::kill(node_->pid(), SIGKILL), 0);
  node_->stop();
  node_ = std::make_unique<Node>(dir_.path());
  auto c2 = node_->client();
  check(*c2);
}

TEST_F(LifecycleTest, CliSetsAndPrintsMetadataAndDeletes) {
  auto c = node_->client();
  put(*c, "s-1", 3);
  std::string out;
  ASSERT_EQ(
      run_annal(node_->port(), "metadata s-1 --set '{\"max_count\":1}' --expected no_stream", &out),
      0)
      << out;
  EXPECT_NE(out.find("\"revision\":0,\"metadata\":{\"max_count\":1},\"max_count\":1"),
            std::string::npos)
      << out;
  EXPECT_NE(
      run_annal(node_->port(), "metadata s-1 --set '{\"max_count\":1}' --expected no_stream", &out),
      0);
  EXPECT_NE(out.find("wrong_expected_revision"), std::string::npos) << out;
  ASSERT_EQ(run_annal(node_->port(), "delete s-1 --hard", &out), 0) << out;
  EXPECT_NE(out.find("\"deleted\":\"hard\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"truncate_before\":3"), std::string::npos) << out;
  EXPECT_NE(run_annal(node_->port(), "read s-1", &out), 0);
  EXPECT_NE(out.find("stream_deleted"), std::string::npos) << out;
}

TEST_F(LifecycleTest, AVersion4ConnectionHasNoLifecycleOperations) {
  auto old = node_->client(64, 4);
  auto r = old->stream_metadata("s-1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kBadRequest);
  EXPECT_NE(r.error().message.find("version 5"), std::string::npos);
  // Sent anyway, the node answers unknown_operation (raw frame).
  RawConn raw(node_->port());
  raw.send(proto::encode(1, proto::Hello{proto::kHelloMagic, 4, "raw"}));
  auto hello = raw.read_frame();
  ASSERT_TRUE(hello);
  ASSERT_EQ(hello->op, static_cast<std::uint8_t>(proto::Op::kHelloOk));
  raw.send(proto::encode(2, proto::StreamMetadataReq{"s-1"}, 4));
  auto f = raw.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kUnknownOperation);
}

TEST_F(LifecycleTest, AStreamIsReadFromItsLatestSnapshotInOneRequest) {
  auto c = node_->client();
  put(*c, "acct-1", 10);
  auto saved = c->snapshot_save("acct-1", 6, "Balance", R"({"balance":60})");
  ASSERT_TRUE(saved.ok()) << saved.error_string();
  EXPECT_EQ(saved->kept, 1u);
  auto r = c->snapshot_read("acct-1", proto::kNone, 100);
  ASSERT_TRUE(r.ok()) << r.error_string();
  ASSERT_TRUE(r->found);
  EXPECT_EQ(r->revision, 6u);
  EXPECT_EQ(r->type, "Balance");
  EXPECT_EQ(r->data, R"({"balance":60})");
  EXPECT_EQ(names(r->events), (std::vector<std::string>{"acct-1@7", "acct-1@8", "acct-1@9"}));
  EXPECT_TRUE(r->end);
  EXPECT_EQ(r->next, 10u);
  // Paged: two events, then the rest from `next`.
  auto page = c->snapshot_read("acct-1", proto::kNone, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->end);
  EXPECT_EQ(page->next, 9u);
  // None at or below 5: the events from the start.
  auto none = c->snapshot_read("acct-1", 5, 3);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->found);
  EXPECT_EQ(names(none->events), (std::vector<std::string>{"acct-1@0", "acct-1@1", "acct-1@2"}));
  auto beyond = c->snapshot_save("acct-1", 99, "Balance", "{}");
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().code, proto::Code::kBadRequest);
  std::string out;
  ASSERT_EQ(run_annal(node_->port(), "snapshot read acct-1 --events 1", &out), 0) << out;
  EXPECT_NE(out.find("\"snapshot\":{\"revision\":6,\"type\":\"Balance\""), std::string::npos)
      << out;
  EXPECT_NE(out.find("\"revision\":7"), std::string::npos) << out;
  ASSERT_EQ(
      run_annal(node_->port(),
                "snapshot save acct-1 --revision 9 --type Balance --data '{\"balance\":90}'", &out),
      0)
      << out;
  EXPECT_NE(out.find("\"kept\":2"), std::string::npos) << out;
  // Deleted with the stream.
  ASSERT_TRUE(c->delete_stream("acct-1", ExpectedRevision::any()).ok());
  auto gone = c->snapshot_read("acct-1", proto::kNone, 0);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, proto::Code::kStreamNotFound);
}

TEST_F(LifecycleTest, ScavengeFreesTheSpaceOnlineAndVerifyAcceptsTheResult) {
  node_->stop();
  std::filesystem::remove_all(dir_.path() + "/data");  // small segments from the start
  node_ = std::make_unique<Node>(
      dir_.path(), std::vector<std::string>{"--segment-size", "256K", "--scavenge-mb-per-s", "0"});
  auto c = node_->client();
  const std::string pad(900, 'p');
  for (int i = 0; i < 300; ++i)
    for (const char* s : {"gone-1", "kept-1"}) {
      auto r = c->append(proto::AppendReq{
          s, ExpectedRevision::any(), {json_event("E", "{\"p\":\"" + pad + "\"}")}});
      ASSERT_TRUE(r.ok()) << r.error_string();
    }
  ASSERT_TRUE(c->delete_stream("gone-1", ExpectedRevision::any()).ok());
  // A reader and a writer keep going while it runs.
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, appends{0};
  std::thread busy([&] {
    auto rc = node_->client();
    while (!done) {
      auto r = rc->read_stream(proto::ReadStreamReq{"kept-1", 0, 300, index::Direction::kForward});
      ASSERT_TRUE(r.ok()) << r.error_string();
      ASSERT_GE(r->events.size(), 300u);
      for (std::size_t i = 0; i < r->events.size(); ++i) ASSERT_EQ(r->events[i].revision.value, i);
      ++reads;
      auto a =
          rc->append(proto::AppendReq{"other-1", ExpectedRevision::any(), {json_event("E", "{}")}});
      ASSERT_TRUE(a.ok()) << a.error_string();
      ++appends;
    }
  });
  auto r = c->scavenge();
  done = true;
  busy.join();
  ASSERT_TRUE(r.ok()) << r.error_string();
  EXPECT_GT(r->segments_rewritten, 0u);
  EXPECT_GE(r->events_removed, 200u);
  EXPECT_LT(r->log_bytes_after, r->log_bytes_before * 3 / 4);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(read_all(*c).size(), 300u + 1u + static_cast<std::size_t>(appends.load()));
  std::string out;
  ASSERT_EQ(run_annal(node_->port(), "scavenge", &out), 0) << out;
  EXPECT_NE(out.find("\"segments_rewritten\":0"), std::string::npos) << out;
  // Offline, the scavenged directory verifies clean.
  c.reset();
  ASSERT_EQ(node_->stop(), std::optional<int>(0));
  std::string vout;
  FILE* p =
      ::popen((std::string(ANNAL_CLI_PATH) + " verify " + dir_.path() + "/data 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) vout.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << vout;
  node_ = std::make_unique<Node>(dir_.path());
  auto c2 = node_->client();
  auto kept = c2->read_stream(proto::ReadStreamReq{"kept-1", 0, 1000, index::Direction::kForward});
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->events.size(), 300u);
}

}  // namespace
}  // namespace annal::net::testing
