// Protocol versions 1 and 2 side by side against the real node: a v2 client
// appends events with tags and ids and gets them back from every read path; a
// v1 client on the same node reads the same events without them and can
// still write; bad tags are refused by name; and the client library falls
// back to v1 against a node that only speaks v1.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;
using Kind = Subscription::Message::Kind;

class ProtocolVersionsTest : public ::testing::Test {
 protected:
  void SetUp() override { node_ = std::make_unique<Node>(dir_.path()); }
  void TearDown() override { EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text(); }

  static index::NewEvent tagged(std::string type, std::vector<std::string> tags,
                                std::string correlation = "", std::string causation = "") {
    index::NewEvent e = json_event(type, "{}");
    e.tags = std::move(tags);
    e.correlation_id = std::move(correlation);
    e.causation_id = std::move(causation);
    return e;
  }
  // Events of one subscription until `n` arrived (or 30 s passed).
  static std::vector<engine::EventRecord> collect(Subscription& s, std::size_t n) {
    std::vector<engine::EventRecord> out;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto m = s.next(200ms);
      if (!m || m->kind == Kind::kCheckpoint) continue;
      if (m->kind == Kind::kEnded) {
        ADD_FAILURE() << error_string(m->error);
        break;
      }
      for (auto& e : m->events) out.push_back(std::move(e));
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(ProtocolVersionsTest, TagsAndIdsRoundTripThroughEveryReadPath) {
  auto c = node_->client();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->hello().version, proto::kProtocolVersion);
  auto sub = c->subscribe(proto::SubscribeReq{proto::Target::kAll, "", false, 0, "", "", 0});
  ASSERT_TRUE(sub.ok()) << sub.error_string();
  // Tags in any order, one repeated: the node stores them sorted, once.
  auto a = c->append(
      proto::AppendReq{"order-1",
                       ExpectedRevision::no_stream(),
                       {tagged("Placed", {"region:eu", "customer:42", "region:eu"}, "cmd-9"),
                        tagged("Paid", {}, "cmd-9", "evt-0"), json_event("Noted", "{}")}});
  ASSERT_TRUE(a.ok()) << a.error_string();
  const std::vector<std::string> want_tags{"customer:42", "region:eu"};

  auto check = [&](const std::vector<engine::EventRecord>& ev, const char* path) {
    ASSERT_EQ(ev.size(), 3u) << path;
    EXPECT_EQ(ev[0].tags, want_tags) << path;
    EXPECT_EQ(ev[0].correlation_id, "cmd-9") << path;
    EXPECT_EQ(ev[0].causation_id, "") << path;
    EXPECT_TRUE(ev[1].tags.empty()) << path;
    EXPECT_EQ(ev[1].correlation_id, "cmd-9") << path;
    EXPECT_EQ(ev[1].causation_id, "evt-0") << path;
    EXPECT_TRUE(ev[2].tags.empty() && ev[2].correlation_id.empty()) << path;
    EXPECT_EQ(ev[2].epoch, 0u) << path;  // not on the wire: a single node writes epoch 0
  };
  auto rs = c->read_stream(proto::ReadStreamReq{"order-1", 0, 0, index::Direction::kForward});
  ASSERT_TRUE(rs.ok()) << rs.error_string();
  check(rs->events, "read_stream");
  auto ra = c->read_all(proto::ReadAllReq{0, 0, index::Direction::kForward});
  ASSERT_TRUE(ra.ok()) << ra.error_string();
  check(ra->events, "read_all");
  check(collect(*sub.value(), 3), "subscription");

  std::vector<engine::EventRecord> viewed;
  c->read_all_view_async(proto::ReadAllReq{0, 0, index::Direction::kForward},
                         [&](Reply<proto::ReadOkView> r) {
                           ASSERT_TRUE(r.ok());
                           for (const auto& v : r->events) viewed.push_back(v.to_record());
                         });
  c->drain();
  check(viewed, "read_all_view");
}

TEST_F(ProtocolVersionsTest, VersionOneClientsReadTheSameEventsWithoutTagsAndStillWrite) {
  auto v2 = node_->client();
  auto v1 = node_->client(64, 1);
  ASSERT_TRUE(v2 && v1);
  EXPECT_EQ(v1->hello().version, 1);
  // Subscribed first, so the live batch is encoded for both versions.
  auto s1 = v1->subscribe(proto::SubscribeReq{proto::Target::kAll, "", false, 0, "", "", 0});
  auto s2 = v2->subscribe(proto::SubscribeReq{proto::Target::kAll, "", false, 0, "", "", 0});
  ASSERT_TRUE(s1.ok() && s2.ok());
  ASSERT_TRUE(
      v2->append(proto::AppendReq{"s", ExpectedRevision::any(), {tagged("T", {"k:v"}, "c1", "c0")}})
          .ok());
  ASSERT_TRUE(
      v1->append(proto::AppendReq{"s", ExpectedRevision::any(), {json_event("U", R"({"a":1})")}})
          .ok());
  auto old_view = collect(*s1.value(), 2);
  auto new_view = collect(*s2.value(), 2);
  ASSERT_EQ(old_view.size(), 2u);
  ASSERT_EQ(new_view.size(), 2u);
  EXPECT_TRUE(old_view[0].tags.empty());
  EXPECT_EQ(old_view[0].correlation_id, "");
  EXPECT_EQ(new_view[0].tags, std::vector<std::string>{"k:v"});
  EXPECT_EQ(new_view[0].causation_id, "c0");
  // Everything else is the same event.
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(old_view[i].id, new_view[i].id);
    EXPECT_EQ(old_view[i].position, new_view[i].position);
    EXPECT_EQ(old_view[i].data, new_view[i].data);
  }
  auto r1 = v1->read_stream(proto::ReadStreamReq{"s", 0, 0, index::Direction::kForward});
  ASSERT_TRUE(r1.ok()) << r1.error_string();
  EXPECT_TRUE(r1->events[0].tags.empty());
  // A v1 connection cannot carry tags: the client refuses instead of
  // dropping them, and nothing is written.
  auto refused = v1->append(proto::AppendReq{"s", ExpectedRevision::any(), {tagged("T", {"x"})}});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, proto::Code::kBadRequest);
  EXPECT_NE(refused.error().message.find("protocol version 1"), std::string::npos);
  auto info = v2->info();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->durable_end, 2u);
  EXPECT_EQ(info->protocol_version, proto::kProtocolVersion);
}

TEST_F(ProtocolVersionsTest, BadTagsAreRefusedNamingTheEventAndNothingIsWritten) {
  RawConn raw(node_->port());
  ASSERT_TRUE(raw.handshake());
  struct Case {
    const char* what;
    index::NewEvent event;
    proto::Code code;
    const char* says;
  };
  std::vector<Case> cases{
      {"tag not UTF-8", tagged("T", {std::string("\xff\xfe")}), proto::Code::kBadRequest,
       "tag 0 is not valid UTF-8"},
      {"correlation id not UTF-8", tagged("T", {}, std::string("a\xc3")), proto::Code::kBadRequest,
       "correlation_id is not valid UTF-8"},
      {"empty tag", tagged("T", {"a", ""}), proto::Code::kBadRequest, "empty tag"},
      {"tag over max_tag_size", tagged("T", {std::string(257, 't')}), proto::Code::kTooLarge,
       "max_tag_size"},
      {"33 tags", tagged("T", {}), proto::Code::kTooLarge, "max_tags"},
      {"causation id over the limit", tagged("T", {}, "", std::string(257, 'c')),
       proto::Code::kTooLarge, "max_correlation_id"},
  };
  for (int i = 0; i < 33; ++i) cases[4].event.tags.push_back("t" + std::to_string(i));
  std::uint64_t id = 10;
  for (auto& c : cases) {
    // The bad event second: the error names event 1.
    proto::AppendReq req{"bad", ExpectedRevision::any(), {json_event("ok", "{}"), c.event}};
    ASSERT_TRUE(raw.send(proto::encode_append(++id, req)));
    auto f = raw.read_frame();
    ASSERT_TRUE(f) << c.what;
    EXPECT_EQ(f->id, id);
    const proto::Error e = error_of(*f);
    EXPECT_EQ(e.code, c.code) << c.what << ": " << e.message;
    EXPECT_NE(e.message.find(c.says), std::string::npos) << c.what << ": " << e.message;
    EXPECT_NE(e.message.find("event 1"), std::string::npos) << c.what << ": " << e.message;
  }
  auto client = node_->client();
  auto info = client->info();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->durable_end, 0u) << "a refused append wrote something";
}

TEST_F(ProtocolVersionsTest, HelloNegotiatesEachSupportedVersionAndRefusesOthers) {
  for (std::uint16_t v : {1, 2, 3}) {
    RawConn c(node_->port());
    proto::Hello h;
    h.version = v;
    ASSERT_TRUE(c.send(proto::encode_hello(1, h)));
    auto f = c.read_frame();
    ASSERT_TRUE(f);
    ASSERT_EQ(f->op, static_cast<std::uint8_t>(proto::Op::kHelloOk));
    auto ok = proto::decode_hello_ok(f->payload);
    ASSERT_TRUE(ok.is_ok());
    EXPECT_EQ(ok->version, v) << "hello_ok names the version the connection speaks";
  }
  for (std::uint16_t v : {0, static_cast<int>(proto::kProtocolVersion) + 1}) {
    RawConn c(node_->port());
    proto::Hello h;
    h.version = v;
    ASSERT_TRUE(c.send(proto::encode_hello(1, h)));
    auto f = c.read_frame();
    ASSERT_TRUE(f);
    auto e = error_of(*f);
    EXPECT_EQ(e.code, proto::Code::kUnsupportedVersion) << v;
    EXPECT_EQ(e.detail, proto::kProtocolVersion) << v;
    EXPECT_TRUE(c.closed_by_peer());
  }
}

TEST_F(ProtocolVersionsTest, CliAppendsTagsAndIdsAndPrintsThem) {
  std::string out;
  EXPECT_EQ(run_annal(node_->port(),
                      "append order-5 --type Placed --data '{}' --tag region:eu --tag customer:7 "
                      "--tag region:eu --correlation-id cmd-1 --causation-id evt-0",
                      &out),
            0)
      << out;
  EXPECT_EQ(run_annal(node_->port(), "append order-5 --type Noted --data '{}'", &out), 0) << out;
  EXPECT_EQ(run_annal(node_->port(), "read order-5", &out), 0) << out;
  EXPECT_NE(out.find(R"("tags":["customer:7","region:eu"],"correlation_id":"cmd-1",)"
                     R"("causation_id":"evt-0"})"),
            std::string::npos)
      << out;
  // An event without them prints neither key.
  const std::string second = out.substr(out.find('\n') + 1);
  EXPECT_EQ(second.find("tags"), std::string::npos) << second;
  EXPECT_EQ(second.find("correlation_id"), std::string::npos) << second;
  EXPECT_EQ(run_annal(node_->port(), "append order-5 --type X --data '{}' --tag ''", &out), 1);
  EXPECT_NE(out.find("empty tag"), std::string::npos) << out;
  // Index reads and tails by the same keys.
  EXPECT_EQ(run_annal(node_->port(), "read-tag customer:7", &out), 0) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find(R"("type":"Placed")"), std::string::npos) << out;
  EXPECT_EQ(run_annal(node_->port(), "read-category order --backward --count 1", &out), 0) << out;
  EXPECT_NE(out.find(R"("type":"Noted")"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(run_annal(node_->port(), "read-correlation cmd-1", &out), 0) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(run_annal(node_->port(), "read-type Nope", &out), 0) << out;
  EXPECT_EQ(out, "");
  EXPECT_EQ(run_annal(node_->port(), "tail --causation evt-0 --from 0 --count 1", &out), 0) << out;
  EXPECT_NE(out.find(R"("causation_id":"evt-0")"), std::string::npos) << out;
  EXPECT_EQ(run_annal(node_->port(), "tail --tag a --type b", &out), 2) << out;
  EXPECT_EQ(run_annal(node_->port(), "read-tag", &out), 2) << out;
  EXPECT_EQ(run_annal(node_->port(), "info", &out), 0) << out;
  EXPECT_NE(out.find(R"("max_tags":32,"max_tag_size":256,"max_correlation_id":256)"),
            std::string::npos)
      << out;
}

// A stand-in for a node that speaks only version 1: it refuses hello v2 the
// way such a node does (unsupported_version, detail 1, close), then accepts
// hello v1. The client library must end up speaking v1.
TEST(ProtocolFallbackTest, ClientFallsBackToVersionOneAgainstAVersionOneNode) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<std::uint16_t> hellos;
  std::thread fake([&] {
    for (int conn = 0; conn < 2; ++conn) {
      const int fd = ::accept(lfd, nullptr, nullptr);
      if (fd < 0) return;
      char head[13];
      if (::recv(fd, head, 13, MSG_WAITALL) != 13) return;
      const auto h = proto::parse_header(
          std::span<const std::uint8_t, 13>(reinterpret_cast<std::uint8_t*>(head), 13));
      std::string payload(h.length - 9, '\0');
      if (::recv(fd, payload.data(), payload.size(), MSG_WAITALL) !=
          static_cast<ssize_t>(payload.size()))
        return;
      auto hello = proto::decode_hello(payload);
      if (!hello.is_ok()) return;
      hellos.push_back(hello->version);
      const std::string reply =
          hello->version == 1
              ? proto::encode_hello_ok(h.request_id, proto::HelloOk{1, 1u << 20, 8, "old"})
              : proto::encode_error(h.request_id, proto::Error{proto::Code::kUnsupportedVersion, 1,
                                                               "this node speaks 1"});
      (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      if (hello->version != 1) {
        ::close(fd);
        continue;
      }
      char sink[64];
      while (::recv(fd, sink, sizeof sink, 0) > 0) {
      }
      ::close(fd);
    }
  });
  ClientOptions o;
  o.port = ntohs(addr.sin_port);
  {
    auto c = Client::connect(o);
    ASSERT_TRUE(c.ok()) << c.error_string();
    EXPECT_EQ(c.value()->hello().version, 1);
    auto refused = c.value()->append(proto::AppendReq{"s", ExpectedRevision::any(), {[] {
                                                        auto e = json_event("T", "{}");
                                                        e.correlation_id = "c";
                                                        return e;
                                                      }()}});
    EXPECT_FALSE(refused.ok());
  }
  fake.join();
  ::close(lfd);
  EXPECT_EQ(hellos, (std::vector<std::uint16_t>{proto::kProtocolVersion, 1}));
}

}  // namespace
}  // namespace annal::net::testing
