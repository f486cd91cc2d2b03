// Protocol v1 codec: every message round-trips, decoders reject truncated and
// trailing bytes, and the worked example of docs/protocol.md is pinned here.
#include "proto/protocol.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "engine/format.h"
#include "net/client.h"
#include "tests/common/hex.h"

namespace annal::net::proto {
namespace {

std::string hex(std::string_view s) {
  return test::to_hex(s);
}

// Splits a frame into header and payload, checking the length prefix.
struct Split {
  FrameHeader h;
  std::string payload;
};
Split split(const std::string& frame) {
  EXPECT_GE(frame.size(), 13u);
  std::array<std::uint8_t, 13> hdr{};
  std::memcpy(hdr.data(), frame.data(), 13);
  Split s;
  s.h = parse_header(std::span<const std::uint8_t, 13>(hdr));
  EXPECT_EQ(s.h.length, frame.size() - 4);
  s.payload = frame.substr(13);
  return s;
}

EventId fixed_id() {
  return *EventId::parse("0f8fad5b-d9cb-469f-a165-70867728950e");
}

engine::EventRecord sample_event(std::uint64_t pos) {
  engine::EventRecord e;
  e.id = fixed_id();
  e.stream = "order-17";
  e.type = "OrderPlaced";
  e.position = GlobalPosition(pos);
  e.revision = StreamRevision(3);
  e.timestamp_us = 1700000000123456;
  e.flags = engine::format::kFlagDataJson;
  e.metadata = "";
  e.data = R"({"total":42})";
  return e;
}

TEST(ProtocolTest, HelloRoundTrips) {
  Hello h;
  h.client_name = "test";
  auto s = split(encode_hello(1, h));
  EXPECT_EQ(s.h.op, static_cast<std::uint8_t>(Op::kHello));
  EXPECT_EQ(s.h.request_id, 1u);
  auto d = decode_hello(s.payload);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d->magic, kHelloMagic);
  EXPECT_EQ(d->version, kProtocolVersion);
  EXPECT_EQ(d->client_name, "test");

  HelloOk ok{1, 1234, 77, "annal x"};
  auto d2 = decode_hello_ok(split(encode_hello_ok(9, ok)).payload);
  ASSERT_TRUE(d2.is_ok());
  EXPECT_EQ(d2->max_frame, 1234u);
  EXPECT_EQ(d2->max_in_flight, 77u);
  EXPECT_EQ(d2->server_version, "annal x");
}

TEST(ProtocolTest, AppendRoundTripsEveryExpectation) {
  for (auto exp : {ExpectedRevision::any(), ExpectedRevision::no_stream(),
                   ExpectedRevision::stream_exists(), ExpectedRevision::exact(41)}) {
    AppendReq r;
    r.stream = "s";
    r.expected = exp;
    r.events.push_back(
        index::NewEvent{fixed_id(), "T", engine::format::kFlagDataJson, "meta", "{}"});
    r.events.push_back(index::NewEvent{EventId::random(), "U", 0, "", std::string("\0\1\2", 3)});
    auto s = split(encode_append(77, r));
    EXPECT_EQ(s.h.request_id, 77u);
    auto d = decode_append(s.payload);
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    EXPECT_EQ(d->stream, "s");
    EXPECT_EQ(d->expected, exp);
    ASSERT_EQ(d->events.size(), 2u);
    EXPECT_EQ(d->events[0].id, fixed_id());
    EXPECT_EQ(d->events[0].metadata, "meta");
    EXPECT_EQ(d->events[1].data, std::string("\0\1\2", 3));
    EXPECT_EQ(d->events[1].flags, 0u);
  }
}

TEST(ProtocolTest, ReadResponsesCarryEventsAndLostEntries) {
  ReadOk r;
  r.end = false;
  r.next = 12;
  r.events.push_back(sample_event(10));
  engine::EventRecord lost;
  lost.position = GlobalPosition(11);
  lost.flags = engine::format::kFlagLost;
  r.events.push_back(lost);
  auto d = decode_read_ok(split(encode_read_ok(5, r)).payload);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_FALSE(d->end);
  EXPECT_EQ(d->next, 12u);
  ASSERT_EQ(d->events.size(), 2u);
  EXPECT_EQ(d->events[0], sample_event(10));
  EXPECT_TRUE(d->events[1].is_lost());
  EXPECT_EQ(d->events[1].position.value, 11u);
  EXPECT_TRUE(d->events[1].stream.empty());
}

TEST(ProtocolTest, CommitFlagNeverReachesTheWire) {
  auto e = sample_event(1);
  e.flags |= engine::format::kFlagCommit;
  auto d = decode_sub_events(split(encode_sub_events(3, SubEvents{{e}})).payload);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->events[0].flags, engine::format::kFlagDataJson);
}

TEST(ProtocolTest, EventsFromViewsEncodeLikeRecords) {
  auto e = sample_event(7);
  engine::RecordView v;
  v.id = e.id;
  v.stream = e.stream;
  v.type = e.type;
  v.revision = e.revision;
  v.position = e.position;
  v.timestamp_us = e.timestamp_us;
  v.flags = e.flags;
  v.metadata = e.metadata;
  v.data = e.data;
  std::string a, b;
  append_event(a, v);
  append_event(b, e);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), event_wire_size(v));
  EXPECT_EQ(a.size(), event_wire_size(e));
}

TEST(ProtocolTest, SmallMessagesRoundTrip) {
  ReadStreamReq rs{"abc", kNone, 10, index::Direction::kBackward};
  auto drs = decode_read_stream(split(encode_read_stream(1, rs)).payload);
  ASSERT_TRUE(drs.is_ok());
  EXPECT_EQ(drs->stream, "abc");
  EXPECT_EQ(drs->from, kNone);
  EXPECT_EQ(drs->direction, index::Direction::kBackward);

  ReadAllReq ra{5, 6, index::Direction::kForward};
  auto dra = decode_read_all(split(encode_read_all(1, ra)).payload);
  ASSERT_TRUE(dra.is_ok());
  EXPECT_EQ(dra->from, 5u);
  EXPECT_EQ(dra->count, 6u);

  SubscribeReq sr;
  sr.target = Target::kAll;
  sr.from = 99;
  sr.stream_prefix = "ord";
  sr.type_prefix = "Order";
  sr.checkpoint_interval = 500;
  auto dsr = decode_subscribe(split(encode_subscribe(1, sr)).payload);
  ASSERT_TRUE(dsr.is_ok());
  EXPECT_EQ(dsr->from, 99u);
  EXPECT_EQ(dsr->stream_prefix, "ord");
  EXPECT_EQ(dsr->type_prefix, "Order");
  EXPECT_EQ(dsr->checkpoint_interval, 500u);

  EXPECT_EQ(decode_checkpoint(split(encode_checkpoint(1, Checkpoint{123})).payload)->position,
            123u);
  EXPECT_EQ(decode_subscribe_ok(split(encode_subscribe_ok(1, SubscribeOk{4})).payload)->start, 4u);
  EXPECT_EQ(
      decode_unsubscribe(split(encode_unsubscribe(1, UnsubscribeReq{8})).payload)->subscription_id,
      8u);
  AppendOk ao{10, 2, 3, true};
  auto dao = decode_append_ok(split(encode_append_ok(1, ao)).payload);
  ASSERT_TRUE(dao.is_ok());
  EXPECT_EQ(dao->last_revision(), 4u);
  EXPECT_TRUE(dao->deduplicated);

  Error er{Code::kWrongExpectedRevision, 6, "stream 's' is at 6"};
  auto der = decode_error(split(encode_error(1, er)).payload);
  ASSERT_TRUE(der.is_ok());
  EXPECT_EQ(der->code, Code::kWrongExpectedRevision);
  EXPECT_EQ(der->detail, 6u);
  EXPECT_EQ(der->message, "stream 's' is at 6");

  InfoOk io;
  io.server_version = "v";
  io.durable_end = 5;
  io.indexed_through = 3;
  io.connections = 2;
  auto dio = decode_info_ok(split(encode_info_ok(1, io)).payload);
  ASSERT_TRUE(dio.is_ok());
  EXPECT_EQ(dio->durable_end, 5u);
  EXPECT_EQ(dio->indexed_through, 3u);
  EXPECT_EQ(dio->connections, 2u);

  auto ping = split(encode_empty(Op::kPing, 42));
  EXPECT_EQ(ping.h.length, kFrameMinBody);
  EXPECT_TRUE(ping.payload.empty());
}

TEST(ProtocolTest, EveryTruncationOfAnAppendIsABadRequest) {
  AppendReq r;
  r.stream = "stream";
  r.events.push_back(index::NewEvent{fixed_id(), "T", 1, "{}", "{\"a\":1}"});
  const std::string payload = split(encode_append(1, r)).payload;
  for (std::size_t n = 0; n < payload.size(); ++n) {
    auto d = decode_append(std::string_view(payload).substr(0, n));
    ASSERT_FALSE(d.is_ok()) << "prefix of " << n << " bytes decoded";
    EXPECT_EQ(d.status().code(), Errc::kBadRequest);
  }
  auto trailing = decode_append(payload + "x");
  ASSERT_FALSE(trailing.is_ok());
  EXPECT_NE(trailing.status().message().find("trailing"), std::string::npos);
}

TEST(ProtocolTest, HugeCountsAreRejectedWithoutAllocating) {
  // stream "" | kind 0 | rev 0 | count 0xFFFFFFFF and nothing else.
  std::string p(4, '\0');
  p += '\0';
  p += std::string(8, '\0');
  p += "\xff\xff\xff\xff";
  auto d = decode_append(p);
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("count"), std::string::npos);
  std::string q = std::string(1, '\0') + std::string(8, '\0') + "\xff\xff\xff\xff";
  EXPECT_FALSE(decode_read_ok(q).is_ok());
}

TEST(ProtocolTest, InvalidEnumsAreRejected) {
  ReadAllReq ra{0, 1, index::Direction::kForward};
  std::string p = split(encode_read_all(1, ra)).payload;
  p.back() = 7;  // direction
  EXPECT_FALSE(decode_read_all(p).is_ok());
  SubscribeReq sr;
  std::string q = split(encode_subscribe(1, sr)).payload;
  q[0] = 5;  // target
  EXPECT_FALSE(decode_subscribe(q).is_ok());
  sr.target = Target::kStream;  // with an empty stream name
  EXPECT_FALSE(decode_subscribe(split(encode_subscribe(1, sr)).payload).is_ok());
}

TEST(ProtocolTest, ErrorCodesAreStableAndNamed) {
  EXPECT_EQ(static_cast<int>(code_from_errc(Errc::kWrongExpectedRevision)), 1);
  EXPECT_EQ(static_cast<int>(code_from_errc(Errc::kShuttingDown)), 8);
  EXPECT_EQ(static_cast<int>(code_from_errc(Errc::kInternal)), 15);
  EXPECT_STREQ(code_name(Code::kInvalidJson), "invalid_json");
  EXPECT_STREQ(code_name(Code::kFrameTooLarge), "frame_too_large");
  EXPECT_STREQ(code_name(Code::kTooManyRequests), "too_many_requests");
  EXPECT_STREQ(code_name(static_cast<Code>(999)), "unknown");
}

TEST(ProtocolTest, HostPortParsing) {
  auto a = parse_host_port("127.0.0.1:7411");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "127.0.0.1");
  EXPECT_EQ(a->second, 7411);
  auto b = parse_host_port("[::1]:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->first, "::1");
  EXPECT_FALSE(parse_host_port("localhost"));
  EXPECT_FALSE(parse_host_port("h:70000"));
  EXPECT_FALSE(parse_host_port("h:"));
}

// The worked example in docs/protocol.md: if this changes, the document must
// change with it (and the protocol version must be bumped).
// docs/protocol.md section 5: the append of one event with a tag and a
// correlation id, in protocol version 2.
TEST(ProtocolTest, WorkedExampleMatchesTheDocument) {
  AppendReq r;
  r.stream = "order-17";
  r.expected = ExpectedRevision::no_stream();
  index::NewEvent e{fixed_id(), "OrderPlaced", engine::format::kFlagDataJson, "",
                    R"({"total":42})"};
  e.tags = {"customer:42"};
  e.correlation_id = "cmd-9";
  r.events.push_back(e);
  const std::string req = encode_append(7, r, 2);
  const std::string resp = encode_append_ok(7, AppendOk{1000, 0, 1, false}, 2);
  std::printf("append request:  %s\nappend response: %s\n", hex(req).c_str(), hex(resp).c_str());
  EXPECT_EQ(hex(req),
            "75000000"                          // length 117
            "10"                                // op append
            "0700000000000000"                  // request id 7
            "080000006f726465722d3137"          // stream "order-17"
            "01"                                // expected kind: no_stream
            "0000000000000000"                  // expected revision (unused)
            "01000000"                          // 1 event
            "0f8fad5bd9cb469fa16570867728950e"  // event id
            "0b0000004f72646572506c61636564"    // type "OrderPlaced"
            "01000000"                          // flags: data is JSON
            "00000000"                          // metadata: empty
            "0c0000007b22746f74616c223a34327d"  // data {"total":42}
            "0100"                              // 1 tag
            "0b00"                              // of 11 bytes:
            "637573746f6d65723a3432"            // "customer:42"
            "05000000636d642d39"                // correlation id "cmd-9"
            "00000000");                        // causation id: none
  EXPECT_EQ(hex(resp),
            "1e000000"          // length 30
            "90"                // op append_ok
            "0700000000000000"  // request id 7
            "e803000000000000"  // first position 1000
            "0000000000000000"  // first revision 0
            "01000000"          // count 1
            "00");              // not deduplicated
  auto back = decode_append(split(req).payload, 2);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->events[0].tags, e.tags);
  EXPECT_EQ(back->events[0].correlation_id, "cmd-9");
  EXPECT_EQ(back->events[0].causation_id, "");
}

// The same append in version 1 (no tags, no ids): the bytes of the first
// version of the document, unchanged.
TEST(ProtocolTest, VersionOneEncodingIsUnchanged) {
  AppendReq r;
  r.stream = "order-17";
  r.expected = ExpectedRevision::no_stream();
  r.events.push_back(index::NewEvent{fixed_id(), "OrderPlaced", engine::format::kFlagDataJson, "",
                                     R"({"total":42})"});
  EXPECT_EQ(hex(encode_append(7, r, 1)),
            "59000000100700000000000000080000006f726465722d3137010000000000000000010000000f8fad5b"
            "d9cb469fa16570867728950e0b0000004f72646572506c6163656401000000000000000c0000007b2274"
            "6f74616c223a34327d");
  // A v2 payload read as v1 has trailing bytes: a version mix-up is an
  // error, never a silent misparse.
  r.events[0].tags = {"a"};
  auto wrong = decode_append(split(encode_append(7, r, 2)).payload, 1);
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_NE(wrong.status().message().find("trailing"), std::string::npos)
      << wrong.status().message();
}

// Events in read_ok and sub_events carry their tags and ids from version 2
// on; version 1 leaves them out.
TEST(ProtocolTest, EventsCarryTagsAndIdsFromVersionTwo) {
  engine::EventRecord e;
  e.id = fixed_id();
  e.stream = "order-17";
  e.type = "OrderPlaced";
  e.position = GlobalPosition(5);
  e.data = "{}";
  e.tags = {"customer:42", "region:eu"};
  e.correlation_id = "cmd-9";
  e.causation_id = "evt-3";
  ReadOk page{true, 6, 6, {e}};
  auto v2 = decode_read_ok(split(encode_read_ok(1, page, 2)).payload, 2);
  ASSERT_TRUE(v2.is_ok()) << v2.status().message();
  EXPECT_EQ(v2->events[0], e);
  // Views point into the payload: it must outlive them.
  const std::string payload = split(encode_read_ok(1, page, 2)).payload;
  auto views = decode<ReadOkView>(payload, 2);
  ASSERT_TRUE(views.is_ok());
  EXPECT_EQ(views->events[0].to_record(), e);
  const std::string v1 = encode_read_ok(1, page, 1);
  // v2 adds durable_end (8 bytes) to the page and the tag block and ids to the event.
  EXPECT_EQ(v1.size() + 8 + 2 + 4 + 11 + 9 + 4 + 5 + 4 + 5, encode_read_ok(1, page, 2).size());
  auto back = decode_read_ok(split(v1).payload, 1);
  ASSERT_TRUE(back.is_ok());
  EXPECT_TRUE(back->events[0].tags.empty());
  EXPECT_EQ(back->events[0].correlation_id, "");
  // A tag block whose lengths run past the payload is refused by name.
  std::string p = split(encode_read_ok(1, page, 2)).payload;
  p.resize(p.size() - 4 - 5 - 4 - 5 - 9 - 11);  // keep the count and lengths, drop the bytes
  auto cut = decode_read_ok(p, 2);
  ASSERT_FALSE(cut.is_ok());
  EXPECT_NE(cut.status().message().find("event.tags"), std::string::npos) << cut.status().message();
}

}  // namespace
}  // namespace annal::net::proto
