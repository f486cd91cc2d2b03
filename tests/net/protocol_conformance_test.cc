// The node against docs/protocol.md, one test per place where an independent
// client found the node contradicting the document (issue 12): response byte
// caps, checkpoint intervals, info's payload, filters on stream
// subscriptions, the detail of an unknown event flag, and the JSON limits.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/format.h"
#include "tests/net/node_fixture.h"

namespace annal::net::testing {
namespace {

using namespace std::chrono_literals;
using Kind = Subscription::Message::Kind;

constexpr std::size_t kReadCap = 1u << 20;  // ServerOptions::max_read_bytes default

class ConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<Node>(dir_.path());
    client_ = node_->client();
    ASSERT_TRUE(client_);
  }
  void TearDown() override {
    client_.reset();
    EXPECT_EQ(node_->stop(), std::optional<int>(0)) << node_->log_text();
  }

  static index::NewEvent raw_event(std::string data, std::uint32_t flags = 0) {
    index::NewEvent e;
    e.id = EventId::random();
    e.type = "T";
    e.flags = flags;
    e.data = std::move(data);
    return e;
  }
  void append(const std::string& stream, std::vector<index::NewEvent> events) {
    auto r = client_->append(proto::AppendReq{stream, ExpectedRevision::any(), std::move(events)});
    ASSERT_TRUE(r.ok()) << r.error_string();
  }
  // Bytes the events of one response take on the wire.
  static std::size_t wire_bytes(const std::vector<engine::EventRecord>& events) {
    std::size_t n = 0;
    for (const auto& e : events) n += proto::event_wire_size(e);
    return n;
  }

  TempDir dir_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<Client> client_;
};

// read_stream, read_all and catch-up batches stop before an event that would
// take the response past the byte cap; one event alone may exceed it.
TEST_F(ConformanceTest, EveryResponseRespectsTheByteCapEventByEvent) {
  for (int i = 0; i < 10; ++i) append("big", {raw_event(std::string(300 * 1000, 'a' + i))});
  append("huge", {raw_event(std::string(1500 * 1000, 'z'))});

  std::uint64_t from = 0;
  std::size_t pages = 0;
  for (bool end = false; !end; ++pages) {
    auto r = client_->read_stream(proto::ReadStreamReq{"big", from, 0});
    ASSERT_TRUE(r.ok()) << r.error_string();
    ASSERT_FALSE(r->events.empty());
    EXPECT_LE(wire_bytes(r->events), kReadCap);
    EXPECT_EQ(r->events.size(), r->end ? 1u : 3u) << "page " << pages;
    from = r->next;
    end = r->end;
  }
  EXPECT_EQ(from, 10u);
  EXPECT_EQ(pages, 4u);

  auto all = client_->read_all(proto::ReadAllReq{0, 0});
  ASSERT_TRUE(all.ok()) << all.error_string();
  EXPECT_EQ(all->events.size(), 3u);
  EXPECT_EQ(all->next, 3u);
  auto huge = client_->read_stream(proto::ReadStreamReq{"huge", 0, 0});
  ASSERT_TRUE(huge.ok()) << huge.error_string();
  EXPECT_EQ(huge->events.size(), 1u) << "one event over the cap is still served alone";

  auto sc = node_->client();
  auto sub = sc->subscribe(proto::SubscribeReq{proto::Target::kStream, "big", false, 0, "", "", 0});
  ASSERT_TRUE(sub.ok()) << sub.error_string();
  std::size_t got = 0;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (got < 10 && std::chrono::steady_clock::now() < deadline) {
    auto m = sub.value()->next(200ms);
    if (!m) continue;
    ASSERT_EQ(m->kind, Kind::kEvents);
    EXPECT_LE(wire_bytes(m->events), kReadCap);
    got += m->events.size();
  }
  EXPECT_EQ(got, 10u);
}

// A filtered subscription reports a checkpoint at least every
// checkpoint_interval scanned positions, in catch-up and for one large live
// append alike (it was once per 4096-position scan).
TEST_F(ConformanceTest, CheckpointIntervalHoldsInCatchUpAndForALargeAppend) {
  for (int i = 0; i < 5; ++i) {
    std::vector<index::NewEvent> batch;
    for (int k = 0; k < 1000; ++k) batch.push_back(raw_event("x"));
    append("other", std::move(batch));
  }
  auto sc = node_->client();
  auto sub =
      sc->subscribe(proto::SubscribeReq{proto::Target::kAll, "", false, 0, "match-", "", 500});
  ASSERT_TRUE(sub.ok()) << sub.error_string();
  auto checkpoints_until = [&](std::uint64_t last) {
    std::vector<std::uint64_t> cps;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while ((cps.empty() || cps.back() < last) && std::chrono::steady_clock::now() < deadline) {
      auto m = sub.value()->next(200ms);
      if (!m) continue;
      EXPECT_EQ(m->kind, Kind::kCheckpoint) << "nothing matches";
      if (m->kind == Kind::kCheckpoint) cps.push_back(m->checkpoint);
    }
    return cps;
  };
  auto cps = checkpoints_until(5000);
  ASSERT_FALSE(cps.empty());
  EXPECT_EQ(cps.back(), 5000u);
  std::uint64_t prev = 0;
  for (auto cp : cps) {
    EXPECT_LE(cp - prev, 500u) << "a gap of more than checkpoint_interval before " << cp;
    prev = cp;
  }

  std::vector<index::NewEvent> large;
  for (int k = 0; k < 3000; ++k) large.push_back(raw_event("x"));
  append("other", std::move(large));
  cps = checkpoints_until(8000);
  ASSERT_FALSE(cps.empty());
  EXPECT_EQ(cps.back(), 8000u);
  for (auto cp : cps) {
    EXPECT_LE(cp - prev, 500u) << "a gap of more than checkpoint_interval before " << cp;
    prev = cp;
  }
}

// §3.1: info has an empty payload; trailing bytes are bad_request and the
// connection stays open.
TEST_F(ConformanceTest, InfoWithAPayloadIsABadRequest) {
  RawConn raw(node_->port());
  ASSERT_TRUE(raw.handshake());
  ASSERT_TRUE(raw.send(proto::make_frame(proto::Op::kInfo, 7, std::string(1, '\0'))));
  auto f = raw.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->id, 7u);
  EXPECT_EQ(error_of(*f).code, proto::Code::kBadRequest);
  ASSERT_TRUE(raw.send(proto::make_frame(proto::Op::kInfo, 8, "")));
  f = raw.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->op, static_cast<std::uint8_t>(proto::Op::kInfoOk));
}

// §3.4: prefix filters apply to the global log only; on a stream
// subscription they are refused, not silently ignored.
TEST_F(ConformanceTest, PrefixFiltersOnAStreamSubscriptionAreABadRequest) {
  append("s", {raw_event("x")});
  auto sub =
      client_->subscribe(proto::SubscribeReq{proto::Target::kStream, "s", false, 0, "x", "", 0});
  ASSERT_FALSE(sub.ok());
  EXPECT_EQ(sub.error().code, proto::Code::kBadRequest);
  EXPECT_NE(sub.error().message.find("stream_prefix"), std::string::npos) << sub.error().message;
  EXPECT_TRUE(client_->ping().ok());
}

// §3.5 / §3.2: an unknown event flag is bad_request whose detail is the
// 0-based index of the event (as for invalid_json).
TEST_F(ConformanceTest, UnknownEventFlagNamesTheEventInDetail) {
  auto r = client_->append(proto::AppendReq{
      "s", ExpectedRevision::any(), {raw_event("x"), raw_event("y", 0x4), raw_event("z")}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, proto::Code::kBadRequest);
  EXPECT_EQ(r.error().detail, 1u);
  auto rs = client_->read_stream(proto::ReadStreamReq{"s", 0, 0});
  EXPECT_FALSE(rs.ok()) << "nothing of the refused append was written";
}

// §3.2: the JSON the node refuses although RFC 8259 allows it, as documented.
TEST_F(ConformanceTest, JsonLimitsAreTheDocumentedOnes) {
  auto refused = [&](const std::string& text) {
    auto r = client_->append(proto::AppendReq{
        "j", ExpectedRevision::any(), {raw_event(text, engine::format::kFlagDataJson)}});
    return !r.ok() && r.error().code == proto::Code::kInvalidJson;
  };
  EXPECT_FALSE(refused("42")) << "a top-level scalar is accepted";
  EXPECT_FALSE(refused("\"text\""));
  EXPECT_FALSE(refused("[18446744073709551615, -9223372036854775808, 1.5e308]"));
  EXPECT_TRUE(refused("[1e309]")) << "a number beyond double range";
  EXPECT_TRUE(refused("[18446744073709551616]")) << "an integer beyond 64 bits";
  EXPECT_TRUE(refused(std::string(1025, '[') + std::string(1025, ']'))) << "nesting over 1024";
  EXPECT_FALSE(refused(std::string(1024, '[') + std::string(1024, ']')));
  EXPECT_TRUE(refused("\"\xC3\x28\"")) << "invalid UTF-8";
}

}  // namespace
}  // namespace annal::net::testing
