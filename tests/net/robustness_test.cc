// Malformed input and limits: each bad connection gets an error where one is
// possible and is closed alone; the node keeps serving everyone else.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;

std::string u32le(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

class RobustnessTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> flags = {}) {
    node_ = std::make_unique<Node>(dir_.path(), flags);
    bystander_ = node_->client();
    ASSERT_TRUE(bystander_);
    // A well-behaved client keeps appending through every bad connection.
    writer_ = std::thread([this] {
      auto c = node_->client();
      if (!c) return;
      while (!stop_) {
        auto r = c->append(
            proto::AppendReq{"bystander", ExpectedRevision::any(), {json_event("B", "{}")}});
        if (r.ok())
          ++bystander_acks_;
        else
          ++bystander_failures_;
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  void TearDown() override {
    if (node_) {
      // The bystanders never noticed anything.
      const int before = bystander_acks_.load();
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (bystander_acks_.load() < before + 3 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(5ms);
      EXPECT_GE(bystander_acks_.load(), before + 3) << "the well-behaved writer stalled";
      stop_ = true;
      if (writer_.joinable()) writer_.join();
      EXPECT_EQ(bystander_failures_.load(), 0);
      EXPECT_TRUE(bystander_->ping().ok()) << "the idle bystander lost its connection";
      bystander_.reset();
      EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text();
    }
  }

  TempDir dir_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<Client> bystander_;
  std::thread writer_;
  std::atomic<bool> stop_{false};
  std::atomic<int> bystander_acks_{0};
  std::atomic<int> bystander_failures_{0};
};

TEST_F(RobustnessTest, OversizedLengthIsRefusedBeforeAllocating) {
  start();
  RawConn c(node_->port());
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.send(u32le(0xFFFFFFFFu) + std::string(9, '\x10')));
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kFrameTooLarge);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(RobustnessTest, LengthBelowTheMinimumIsABadRequest) {
  start();
  RawConn c(node_->port());
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.send(u32le(3) + "abc"));
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kBadRequest);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(RobustnessTest, TruncatedFrameThenCloseAffectsNoOne) {
  start();
  for (int i = 0; i < 5; ++i) {
    RawConn c(node_->port());
    ASSERT_TRUE(c.handshake());
    std::string frame = proto::encode_append(
        9, proto::AppendReq{
               "x", ExpectedRevision::any(), {json_event("T", std::string(1000, ' ') + "{}")}});
    ASSERT_TRUE(
        c.send(std::string_view(frame).substr(0, frame.size() / 2 + static_cast<std::size_t>(i))));
    c.close();  // mid-frame
  }
  // Close in the middle of the 13-byte header, too.
  RawConn h(node_->port());
  ASSERT_TRUE(h.handshake());
  ASSERT_TRUE(h.send(proto::encode_empty(proto::Op::kPing, 5).substr(0, 6)));
  h.close();
  auto c = node_->client();
  auto r = c->read_stream(proto::ReadStreamReq{"x", 0, 1, index::Direction::kForward});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kStreamNotFound);  // nothing of the halves was written
}

TEST_F(RobustnessTest, UnknownOperationGetsAnErrorAndTheConnectionGoesOn) {
  start();
  RawConn c(node_->port());
  ASSERT_TRUE(c.handshake());
  ASSERT_TRUE(c.send(proto::make_frame(static_cast<proto::Op>(0x55), 77, "whatever")));
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->id, 77u);
  EXPECT_EQ(error_of(*f).code, proto::Code::kUnknownOperation);
  // A response op sent as a request is unknown too.
  ASSERT_TRUE(c.send(proto::encode_empty(proto::Op::kPong, 78)));
  f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kUnknownOperation);
  // A known op with a malformed payload: bad_request, and still usable.
  ASSERT_TRUE(c.send(proto::make_frame(proto::Op::kAppend, 79, "\x01\x00")));
  f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->id, 79u);
  EXPECT_EQ(error_of(*f).code, proto::Code::kBadRequest);
  ASSERT_TRUE(c.send(proto::encode_empty(proto::Op::kPing, 80)));
  f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, static_cast<std::uint8_t>(proto::Op::kPong));
}

TEST_F(RobustnessTest, GarbageBytesGetAnErrorAndAClose) {
  start();
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    RawConn c(node_->port());
    const bool after_handshake = round % 2 == 1;
    if (after_handshake) {
      ASSERT_TRUE(c.handshake());
    }
    std::string junk(64 + static_cast<std::size_t>(rng() % 512), '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    c.send(junk);
    // Whatever the bytes meant, the node answers or closes; it never hangs or crashes.
    bool closed = false;
    for (int k = 0; k < 64 && !closed; ++k) {
      auto f = c.read_frame(2s);
      if (!f) closed = true;
    }
    EXPECT_TRUE(closed);
  }
  // Deterministic variant: a plausible length and an unknown first op, before the handshake.
  RawConn c(node_->port());
  ASSERT_TRUE(c.send(u32le(20) + std::string(20, '\x42')));
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kHandshakeRequired);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(RobustnessTest, WrongProtocolVersionIsRefusedWithTheSupportedOne) {
  start();
  RawConn c(node_->port());
  proto::Hello h;
  h.version = 99;
  ASSERT_TRUE(c.send(proto::encode_hello(1, h)));
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  auto e = error_of(*f);
  EXPECT_EQ(e.code, proto::Code::kUnsupportedVersion);
  EXPECT_EQ(e.detail, proto::kProtocolVersion);
  EXPECT_TRUE(c.closed_by_peer());
  RawConn m(node_->port());
  proto::Hello bad;
  bad.magic = 0x12345678;
  ASSERT_TRUE(m.send(proto::encode_hello(1, bad)));
  f = m.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kBadRequest);
}

TEST_F(RobustnessTest, MaxFrameLimit) {
  start({"--max-frame", "4K"});
  auto c = node_->client();
  EXPECT_EQ(c->hello().max_frame, 4096u);
  auto ok = c->append(proto::AppendReq{
      "f", ExpectedRevision::any(), {json_event("T", "\"" + std::string(3000, 'a') + "\"")}});
  EXPECT_TRUE(ok.ok()) << ok.error_string();
  auto big = c->append(proto::AppendReq{
      "f", ExpectedRevision::any(), {json_event("T", "\"" + std::string(5000, 'a') + "\"")}});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, proto::Code::kFrameTooLarge);
  EXPECT_FALSE(c->ping().ok());  // that connection is closed
}

TEST_F(RobustnessTest, MaxConnectionsLimit) {
  start({"--max-connections", "4"});  // bystander + writer + 2
  // The writer connects on its own thread: wait until the node counts it, or
  // the fourth connection below is accepted in its place.
  for (int i = 0; i < 500; ++i) {
    auto info = bystander_->info();
    ASSERT_TRUE(info.ok()) << info.error_string();
    if (info->connections >= 2) break;
    std::this_thread::sleep_for(10ms);
  }
  auto a = node_->client();
  auto b = node_->client();
  ASSERT_TRUE(a && b);
  ClientOptions o;
  o.port = node_->port();
  auto refused = Client::connect(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, proto::Code::kTooManyConnections) << refused.error_string();
  a.reset();
  // A slot frees once the node has seen the close.
  bool connected = false;
  for (int i = 0; i < 100 && !connected; ++i) {
    auto again = Client::connect(o);
    connected = again.ok();
    if (!connected) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(connected);
}

TEST_F(RobustnessTest, MaxInFlightLimit) {
  start({"--max-in-flight", "4"});
  RawConn c(node_->port());
  ASSERT_TRUE(c.handshake());
  std::string burst;
  for (std::uint64_t id = 10; id < 60; ++id)
    burst += proto::encode_append(
        id, proto::AppendReq{"inflight", ExpectedRevision::any(), {json_event("T", "{}")}});
  ASSERT_TRUE(c.send(burst));
  int ok = 0, limited = 0;
  for (int i = 0; i < 50; ++i) {
    auto f = c.read_frame();
    ASSERT_TRUE(f);
    if (f->op == static_cast<std::uint8_t>(proto::Op::kAppendOk))
      ++ok;
    else if (error_of(*f).code == proto::Code::kTooManyRequests)
      ++limited;
  }
  EXPECT_EQ(ok + limited, 50);
  EXPECT_GE(ok, 4);
  EXPECT_GT(limited, 0);
  // The client library respects the advertised window: no request is refused.
  auto cl = node_->client();
  EXPECT_EQ(cl->hello().max_in_flight, 4u);
  std::atomic<int> refused{0};
  for (int i = 0; i < 200; ++i)
    cl->append_async(proto::AppendReq{"window", ExpectedRevision::any(), {json_event("T", "{}")}},
                     [&](Reply<proto::AppendOk> r) {
                       if (!r.ok()) ++refused;
                     });
  cl->drain();
  EXPECT_EQ(refused.load(), 0);
}

TEST_F(RobustnessTest, IdleTimeoutClosesOnlyIdleConnections) {
  start({"--idle-timeout-ms", "400"});
  RawConn idle(node_->port());
  ASSERT_TRUE(idle.handshake());
  auto f = idle.read_frame(5s);
  ASSERT_TRUE(f);
  EXPECT_EQ(error_of(*f).code, proto::Code::kIdleTimeout);
  EXPECT_TRUE(idle.closed_by_peer());
  // A subscriber with nothing to receive is not idle.
  auto sc = node_->client();
  auto sub =
      sc->subscribe(proto::SubscribeReq{proto::Target::kStream, "quiet", true, 0, "", "", 0});
  ASSERT_TRUE(sub.ok());
  std::this_thread::sleep_for(900ms);
  EXPECT_TRUE(sc->connected());
  // The idle bystander was (rightly) closed too: TearDown checks a fresh one.
  EXPECT_FALSE(bystander_->ping().ok());
  bystander_ = node_->client();
}

TEST_F(RobustnessTest, StoreLimitsAreReportedAsTooLarge) {
  start({"--max-event-size", "1K", "--max-stream-name", "16", "--max-append-events", "3"});
  auto c = node_->client();
  auto big = c->append(proto::AppendReq{
      "s", ExpectedRevision::any(), {json_event("T", "\"" + std::string(2000, 'a') + "\"")}});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, proto::Code::kTooLarge) << big.error_string();
  auto name = c->append(
      proto::AppendReq{std::string(17, 'n'), ExpectedRevision::any(), {json_event("T", "{}")}});
  ASSERT_FALSE(name.ok());
  EXPECT_EQ(name.error().code, proto::Code::kTooLarge) << name.error_string();
  auto many = c->append(proto::AppendReq{"s",
                                         ExpectedRevision::any(),
                                         {json_event("T", "{}"), json_event("T", "{}"),
                                          json_event("T", "{}"), json_event("T", "{}")}});
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.error().code, proto::Code::kTooLarge) << many.error_string();
  auto info = c->info();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->max_event_size, 1024u);
  EXPECT_EQ(info->max_stream_name, 16u);
}

}  // namespace
}  // namespace annal::net::testing
