// The bad-input catalogue (tests/reliability/bad-input-catalogue.md), as
// tests: each malformed frame, request, JSON payload, over-limit request and
// damaged file is sent to / put under the real node, and the answer is
// checked: error code, whether the connection is closed, and that the node
// keeps serving everyone else. Keep the catalogue and this table in step.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "engine/format.h"
#include "net/client.h"
#include "proto/protocol.h"
#include "tests/common/file_edit.h"
#include "tests/reliability/node_process.h"
#include "tests/reliability/reliability_util.h"
#include "tests/reliability/wire.h"

namespace annal::reliability {
namespace {

namespace proto = annal::net::proto;
namespace format = annal::engine::format;
namespace fs = std::filesystem;

std::string le32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

// A frame whose length field says `length` (regardless of the bytes that follow).
std::string raw_frame(std::uint32_t length, std::uint8_t op, std::uint64_t id,
                      const std::string& payload) {
  std::string f = le32(length);
  f.push_back(static_cast<char>(op));
  for (int i = 0; i < 8; ++i) f.push_back(static_cast<char>(id >> (8 * i)));
  return f + payload;
}

std::string payload_of(const std::string& frame) {
  return frame.substr(13);
}

index::NewEvent json_event(std::string data, std::uint32_t flags = format::kFlagDataJson) {
  index::NewEvent e;
  e.id = EventId::random();
  e.type = "T";
  e.flags = flags;
  e.data = std::move(data);
  return e;
}

proto::AppendReq append_of(std::vector<index::NewEvent> events, std::string stream = "bad-input") {
  proto::AppendReq a;
  a.stream = std::move(stream);
  a.events = std::move(events);
  return a;
}

struct Answer {
  bool got_frame = false;
  std::uint8_t op = 0;
  proto::Code code = proto::Code::kOk;
  std::uint64_t request_id = 0;
  std::string message;
  bool closed = false;
};

struct Case {
  const char* name;
  bool handshake;
  std::function<std::string()> bytes;
  proto::Code code;  // expected error code (kOk: a non-error answer)
  bool closes;       // the node closes the connection after answering
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<NodeProcess>(
        ANNAL_ANNALD_PATH, dir_.path() + "/data", dir_.path(),
        std::vector<std::string>{"--log-level", "error", "--max-frame", "1M", "--max-event-size",
                                 "64K", "--max-append-events", "100", "--max-stream-name", "64",
                                 "--min-free", "0", "--segment-size", "1M"});
    ASSERT_TRUE(node_->started()) << node_->log_tail();
  }

  Answer send(const Case& c) {
    Answer a;
    WireConn w(node_->port(), 5000);
    EXPECT_TRUE(w.ok()) << w.error();
    if (c.handshake) {
      EXPECT_TRUE(w.handshake()) << w.error();
    }
    EXPECT_TRUE(w.send_all(c.bytes()));
    if (std::string(c.name).find("then EOF") != std::string::npos) ::shutdown(w.fd(), SHUT_WR);
    auto f = w.read_frame();
    if (f) {
      a.got_frame = true;
      a.op = f->op;
      a.request_id = f->request_id;
      if (f->op == static_cast<std::uint8_t>(proto::Op::kError)) {
        auto e = proto::decode_error(f->payload);
        EXPECT_TRUE(e) << "undecodable error frame";
        if (e) {
          a.code = e->code;
          a.message = e->message;
        }
      }
    }
    a.closed = w.wait_closed(c.closes ? 5000 : 100);
    return a;
  }

  // The node still serves a well-behaved client.
  void expect_alive() {
    net::ClientOptions co;
    co.port = node_->port();
    auto c = net::Client::connect(co);
    ASSERT_TRUE(c) << "node stopped serving after bad input: " << c.error_string() << "\n"
                   << node_->log_tail();
    auto r = c.value()->append(append_of({json_event("{\"ok\":true}")}, "still-alive"));
    EXPECT_TRUE(r) << r.error_string();
  }

  TempDir dir_{"annal-badinput"};
  std::unique_ptr<NodeProcess> node_;
};

TEST_F(BadInputTest, MalformedFramesAndRequestsGetPreciseErrors) {
  using C = proto::Code;
  const std::uint8_t kAppend = static_cast<std::uint8_t>(proto::Op::kAppend);
  const std::string good_append = proto::encode_append(7, append_of({json_event("{\"a\":1}")}));
  std::vector<Case> cases = {
      {"frame length below the minimum (8)", true, [] { return le32(8) + std::string(8, '\0'); },
       C::kBadRequest, true},
      {"frame length 0", true, [] { return le32(0); }, C::kBadRequest, true},
      {"frame length above max_frame (1 MiB + 1)", true,
       [] { return raw_frame((1u << 20) + 1, 0x10, 3, ""); }, C::kFrameTooLarge, true},
      {"frame length 0xFFFFFFFF", true, [] { return raw_frame(0xFFFFFFFFu, 0x10, 3, ""); },
       C::kFrameTooLarge, true},
      {"request before hello", false, [&] { return good_append; }, C::kHandshakeRequired, true},
      {"hello with the wrong magic", false,
       [] {
         return proto::encode_hello(1, proto::Hello{0xDEADBEEF, proto::kProtocolVersion, "x"});
       },
       C::kBadRequest, true},
      {"hello with protocol version 99", false,
       [] {
         return proto::encode_hello(1, proto::Hello{proto::kHelloMagic, 99, "x"});
       },
       C::kUnsupportedVersion, true},
      {"hello truncated", false,
       [] {
         std::string p = payload_of(proto::encode_hello(1, proto::Hello{}));
         return proto::make_frame(proto::Op::kHello, 1, p.substr(0, 3));
       },
       C::kBadRequest, true},
      {"second hello", true, [] { return proto::encode_hello(2, proto::Hello{}); }, C::kBadRequest,
       false},
      {"unknown op 0x42", true, [] { return raw_frame(9, 0x42, 5, ""); }, C::kUnknownOperation,
       false},
      {"response op sent as a request (0x90)", true, [] { return raw_frame(9, 0x90, 5, ""); },
       C::kUnknownOperation, false},
      {"ping with a payload", true, [] { return proto::make_frame(proto::Op::kPing, 4, "xyz"); },
       C::kBadRequest, false},
      {"append payload truncated", true,
       [&] {
         return proto::make_frame(proto::Op::kAppend, 7, payload_of(good_append).substr(0, 20));
       },
       C::kBadRequest, false},
      {"append with trailing bytes", true,
       [&] { return proto::make_frame(proto::Op::kAppend, 7, payload_of(good_append) + "!"); },
       C::kBadRequest, false},
      {"append with expected_kind 9", true,
       [&] {
         std::string p = payload_of(good_append);
         p[4 + 9] = 9;  // after stream:string ("bad-input", 9 bytes)
         return proto::make_frame(proto::Op::kAppend, 7, p);
       },
       C::kBadRequest, false},
      {"append whose event count exceeds the payload", true,
       [&] {
         std::string p = payload_of(good_append);
         const std::size_t count_at = 4 + 9 + 1 + 8;
         p.replace(count_at, 4, le32(0x7FFFFFFF));
         return proto::make_frame(proto::Op::kAppend, 7, p);
       },
       C::kBadRequest, false},
      {"string length beyond the payload", true,
       [&] {
         std::string p = payload_of(good_append);
         p.replace(0, 4, le32(0xFFFFFFF0));
         return proto::make_frame(proto::Op::kAppend, 7, p);
       },
       C::kBadRequest, false},
      {"append with no events", true, [] { return proto::encode_append(8, append_of({})); },
       C::kBadRequest, false},
      {"append to an empty stream name", true,
       [] { return proto::encode_append(8, append_of({json_event("{}")}, "")); }, C::kBadRequest,
       false},
      {"event with an empty type", true,
       [] {
         auto e = json_event("{}");
         e.type.clear();
         return proto::encode_append(8, append_of({e}));
       },
       C::kBadRequest, false},
      {"event with unknown flag bits (0x100)", true,
       [] { return proto::encode_append(8, append_of({json_event("{}", 0x100)})); }, C::kBadRequest,
       false},
      {"event with the commit flag set by the client", true,
       [] {
         return proto::encode_append(
             8, append_of({json_event("{}", format::kFlagDataJson | format::kFlagCommit)}));
       },
       C::kBadRequest, false},
      {"data flagged JSON but invalid ({\"a\":[1,2,}})", true,
       [] { return proto::encode_append(8, append_of({json_event("{\"a\":[1,2,}}")})); },
       C::kInvalidJson, false},
      {"data flagged JSON but empty", true,
       [] { return proto::encode_append(8, append_of({json_event("")})); }, C::kInvalidJson, false},
      {"data flagged JSON with trailing garbage", true,
       [] { return proto::encode_append(8, append_of({json_event("{} x")})); }, C::kInvalidJson,
       false},
      {"data flagged JSON, invalid UTF-8", true,
       [] { return proto::encode_append(8, append_of({json_event("\"\xff\xfe\"")})); },
       C::kInvalidJson, false},
      {"metadata flagged JSON but invalid", true,
       [] {
         auto e = json_event("{}", format::kFlagDataJson | format::kFlagMetadataJson);
         e.metadata = "{nope";
         return proto::encode_append(8, append_of({e}));
       },
       C::kInvalidJson, false},
      {"stream name over the limit (65 > 64 bytes)", true,
       [] { return proto::encode_append(8, append_of({json_event("{}")}, std::string(65, 's'))); },
       C::kTooLarge, false},
      {"event over max_event_size (70 KiB > 64 KiB)", true,
       [] {
         return proto::encode_append(
             8, append_of({json_event("\"" + std::string(70 << 10, 'x') + "\"")}));
       },
       C::kTooLarge, false},
      {"append with more than max_append_events (101 > 100)", true,
       [] {
         std::vector<index::NewEvent> ev;
         for (int i = 0; i < 101; ++i) ev.push_back(json_event("{}"));
         return proto::encode_append(8, append_of(ev));
       },
       C::kTooLarge, false},
      {"the same event id twice in one append", true,
       [] {
         auto e = json_event("{}");
         return proto::encode_append(8, append_of({e, e}));
       },
       C::kBadRequest, false},
      {"read_stream with direction 7", true,
       [] {
         std::string p = payload_of(proto::encode_read_stream(
             9, proto::ReadStreamReq{"s", 0, 10, index::Direction::kForward}));
         p.back() = 7;
         return proto::make_frame(proto::Op::kReadStream, 9, p);
       },
       C::kBadRequest, false},
      {"read_stream of a stream that does not exist", true,
       [] {
         return proto::encode_read_stream(
             9, proto::ReadStreamReq{"no-such-stream", 0, 10, index::Direction::kForward});
       },
       C::kStreamNotFound, false},
      {"read_all from beyond the end", true,
       [] {
         return proto::encode_read_all(9,
                                       proto::ReadAllReq{1u << 30, 10, index::Direction::kForward});
       },
       C::kOk, false},
      {"subscribe with target 5", true,
       [] {
         std::string p = payload_of(proto::encode_subscribe(9, proto::SubscribeReq{}));
         p[0] = 5;
         return proto::make_frame(proto::Op::kSubscribe, 9, p);
       },
       C::kBadRequest, false},
      {"subscribe to a stream with an empty name", true,
       [] {
         proto::SubscribeReq s;
         s.target = proto::Target::kStream;
         return proto::encode_subscribe(9, s);
       },
       C::kBadRequest, false},
      {"unsubscribe an unknown subscription", true,
       [] { return proto::encode_unsubscribe(9, proto::UnsubscribeReq{12345}); },
       C::kUnknownSubscription, false},
      {"frame cut off mid-payload, then EOF", true,
       [&] { return good_append.substr(0, good_append.size() - 5); }, C::kOk, true},
  };
  (void)kAppend;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Answer a = send(c);
    std::printf("| %s | %s%s | %s |\n", c.name,
                a.got_frame ? (a.op == static_cast<std::uint8_t>(proto::Op::kError)
                                   ? proto::code_name(a.code)
                                   : proto::op_name(static_cast<proto::Op>(a.op)))
                            : "(no answer)",
                a.message.empty() ? "" : (": " + a.message.substr(0, 120)).c_str(),
                a.closed ? "closed" : "open");
    if (c.code == C::kOk) {
      if (std::string(c.name).find("cut off") == std::string::npos) {
        EXPECT_TRUE(a.got_frame && a.op != static_cast<std::uint8_t>(proto::Op::kError))
            << a.message;
      }
    } else {
      EXPECT_TRUE(a.got_frame) << "no answer";
      EXPECT_EQ(a.op, static_cast<std::uint8_t>(proto::Op::kError));
      EXPECT_EQ(proto::code_name(a.code), std::string(proto::code_name(c.code))) << a.message;
      EXPECT_FALSE(a.message.empty()) << "an error must say what it is about";
    }
    EXPECT_EQ(a.closed, c.closes);
  }
  expect_alive();
}

// Damaged files under a stopped node: what the node does at the next start.
class DamagedFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = dir_.path() + "/data";
    NodeProcess node(ANNAL_ANNALD_PATH, data_, dir_.path(), flags_);
    ASSERT_TRUE(node.started()) << node.log_tail();
    net::ClientOptions co;
    co.port = node.port();
    auto c = net::Client::connect(co);
    ASSERT_TRUE(c) << c.error_string();
    for (int i = 0; i < 400; ++i) {
      auto r =
          c.value()->append(append_of({json_event("{\"i\":" + std::to_string(i) + ",\"pad\":\"" +
                                                  std::string(300, 'p') + "\"}")},
                                      "damage-" + std::to_string(i % 7)));
      ASSERT_TRUE(r) << r.error_string();
    }
    c.value().reset();
    ASSERT_EQ(node.terminate(), 0) << node.log_tail();
  }

  std::vector<std::string> files(const std::string& dir, const std::string& ext) {
    std::vector<std::string> v;
    for (const auto& f : fs::directory_iterator(dir))
      if (f.path().extension() == ext) v.push_back(f.path().string());
    std::sort(v.begin(), v.end());
    return v;
  }

  static void flip(const std::string& path, std::uint64_t offset) { test::flip_bits(path, offset); }

  // Starts the node; returns whether it came up, and reads everything back.
  bool start_and_read(std::uint64_t* events, std::string* log) {
    NodeProcess node(ANNAL_ANNALD_PATH, data_, dir_.path(), flags_, std::chrono::seconds(30));
    *log = node.log_tail(3000);
    if (!node.started()) return false;
    net::ClientOptions co;
    co.port = node.port();
    auto c = net::Client::connect(co);
    if (!c) return false;
    auto r = c.value()->read_all(proto::ReadAllReq{0, 1000, index::Direction::kForward});
    *events = r ? r->events.size() : 0;
    auto s = c.value()->read_stream(
        proto::ReadStreamReq{"damage-3", 0, 1000, index::Direction::kForward});
    if (!s || s->events.size() != 57) *events = 0;  // 400 / 7 rounded: stream 3 has 57 events
    c.value().reset();
    node.terminate();
    *log = node.log_tail(3000);
    return true;
  }

  TempDir dir_{"annal-damage"};
  std::string data_;
  const std::vector<std::string> flags_ = {"--segment-size", "64K", "--memtable-entries", "50",
                                           "--min-free",     "0",   "--log-level",        "info"};
};

// Sealed segments are trusted at start (their .idx says where records are;
// restart must not rescan the whole log), so a flipped bit in one is found
// when the record is read: the read fails with corruption naming the segment
// and offset, and nothing of the damaged record is served.
TEST_F(DamagedFilesTest, BitFlipInASealedSegmentIsNeverServedAndTheErrorNamesTheSegment) {
  const auto segs = files(data_, ".seg");
  ASSERT_GE(segs.size(), 3u);
  flip(segs[1], format::kSegmentHeaderSize + 200);
  NodeProcess node(ANNAL_ANNALD_PATH, data_, dir_.path(), flags_, std::chrono::seconds(30));
  if (!node.started()) {
    // Refusing to start is also acceptable; it must name the segment.
    EXPECT_NE(node.log_tail().find(fs::path(segs[1]).filename().string()), std::string::npos)
        << node.log_tail();
    return;
  }
  net::ClientOptions co;
  co.port = node.port();
  auto c = net::Client::connect(co);
  ASSERT_TRUE(c) << c.error_string();
  std::uint64_t from = 0;
  std::optional<proto::Error> err;
  for (int i = 0; i < 1000 && !err; ++i) {
    auto r = c.value()->read_all(proto::ReadAllReq{from, 50, index::Direction::kForward});
    if (!r) {
      err = r.error();
      break;
    }
    for (const auto& e : r->events) {
      // Every record served is intact: its data is what was appended.
      EXPECT_NE(e.data.find("\"pad\""), std::string::npos)
          << "damaged record served at position " << e.position.value;
      from = e.position.value + 1;
    }
    if (r->end || r->events.empty()) break;
  }
  ASSERT_TRUE(err.has_value()) << "read the whole log through a flipped bit without an error";
  EXPECT_EQ(std::string(proto::code_name(err->code)), "corruption") << err->message;
  EXPECT_NE(err->message.find(fs::path(segs[1]).filename().string()), std::string::npos)
      << err->message;
  std::printf("sealed-segment bit flip: read_all answered %s: %s\n", proto::code_name(err->code),
              err->message.c_str());
}

TEST_F(DamagedFilesTest, TornTailOfTheLastSegmentIsCutAndEverythingBeforeIsServed) {
  const auto segs = files(data_, ".seg");
  ASSERT_FALSE(segs.empty());
  // Garbage after the last record of the last segment, as a torn write leaves.
  std::fstream f(segs.back(), std::ios::in | std::ios::out | std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::size_t end = bytes.find_last_not_of('\0');
  ASSERT_NE(end, std::string::npos);
  end = (end + 8) / 8 * 8;
  f.clear();
  f.seekp(static_cast<std::streamoff>(end));
  f.write("\x58\x00\x00\x00garbage-torn-write", 21);
  f.close();
  std::uint64_t n = 0;
  std::string log;
  ASSERT_TRUE(start_and_read(&n, &log)) << log;
  EXPECT_EQ(n, 400u) << log;
}

TEST_F(DamagedFilesTest, DamagedStreamIndexIsRebuiltFromTheLog) {
  const std::string manifest = data_ + "/index/MANIFEST";
  ASSERT_TRUE(fs::exists(manifest));
  flip(manifest, 12);
  for (const auto& ix : files(data_ + "/index", ".ix")) flip(ix, fs::file_size(ix) / 2);
  std::uint64_t n = 0;
  std::string log;
  ASSERT_TRUE(start_and_read(&n, &log)) << log;
  EXPECT_EQ(n, 400u) << log;
  EXPECT_NE(log.find("rebuil"), std::string::npos) << "the node should say it rebuilt the index:\n"
                                                   << log;
}

TEST_F(DamagedFilesTest, DamagedPositionIndexIsRebuiltFromItsSegment) {
  const auto idx = files(data_, ".idx");
  ASSERT_FALSE(idx.empty());
  flip(idx.front(), 60);
  std::uint64_t n = 0;
  std::string log;
  ASSERT_TRUE(start_and_read(&n, &log)) << log;
  EXPECT_EQ(n, 400u) << log;
}

}  // namespace
}  // namespace annal::reliability
