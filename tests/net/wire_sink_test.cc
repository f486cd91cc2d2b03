// WireSink: what a read response's events look like on the wire.

#include "net/wire_sink.h"

#include <gtest/gtest.h>

#include "engine/format.h"

namespace annal::net::detail {
namespace {

TEST(WireSinkTest, ALostEntryCarriesOnlyItsPositionAndFlags) {
  engine::RecordView marker;  // as `annal repair` writes it
  marker.position = GlobalPosition(42);
  marker.flags = engine::format::kFlagLost;
  marker.timestamp_us = 1'700'000'000'000'000;
  marker.metadata = std::string_view("\0\0\0\0", 4);
  WireSink sink(proto::kProtocolVersion);
  EXPECT_EQ(sink.size_of(marker), proto::event_wire_size(engine::RecordView{}));
  sink.add(marker);
  const std::string frame = proto::encode(
      7, proto::ReadOkOf<proto::EncodedEvents>{true, 43, 43, {sink.count(), sink.events()}});
  auto ok = proto::decode_read_ok(
      std::string_view(frame).substr(proto::kLengthPrefixSize + proto::kFrameMinBody));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  ASSERT_EQ(ok->events.size(), 1u);
  const auto& e = ok->events[0];
  EXPECT_EQ(e.position.value, 42u);
  EXPECT_EQ(e.flags, engine::format::kFlagLost);
  EXPECT_EQ(e.timestamp_us, 0);
  EXPECT_TRUE(e.metadata.empty());
  EXPECT_TRUE(e.data.empty());
  EXPECT_TRUE(e.stream.empty());
  EXPECT_EQ(e.revision.value, 0u);
}

TEST(WireSinkTest, SizeOfIsWhatAddAppends) {
  engine::RecordView v;
  v.position = GlobalPosition(7);
  v.stream = "order-1";
  v.type = "Placed";
  v.metadata = "{}";
  v.data = "{\"n\":1}";
  v.flags = engine::format::kFlagDataJson;
  WireSink sink(proto::kProtocolVersion);
  const std::size_t size = sink.size_of(v);
  sink.add(v);
  EXPECT_EQ(sink.bytes(), size);
  EXPECT_EQ(sink.count(), 1u);
}

// A read_ok finished in place is byte for byte the frame the declared
// fields encode, and a sub_events head in front of the shared events is too,
// in both protocol versions (the v1 head is shorter: no durable_end).
TEST(WireSinkTest, FramesFinishedInPlaceEqualTheDeclaredEncoding) {
  for (std::uint16_t version : {1, 2})
    for (int n : {0, 1, 3, 200}) {
      WireSink sink(version);
      std::vector<std::string> data;
      for (int i = 0; i < n; ++i) data.push_back("{\"i\":" + std::to_string(i) + "}");
      for (int i = 0; i < n; ++i) {
        engine::RecordView v;
        v.position = GlobalPosition(100 + static_cast<std::uint64_t>(i));
        v.revision = StreamRevision(static_cast<std::uint64_t>(i));
        v.stream = "order-7";
        v.type = "Placed";
        v.data = data[static_cast<std::size_t>(i)];
        v.flags = engine::format::kFlagDataJson;
        v.timestamp_us = 1'700'000'000'000'000 + i;
        if (i % 2 == 1) v.correlation_id = "cmd-1";
        sink.add(v);
      }
      const std::string events(sink.events());
      const proto::SubEventsOf<proto::EncodedEvents> sub{{sink.count(), events}};
      std::string head(proto::frame_head_size(sub, version), '\0');
      proto::write_frame_head(9, sub, head.data(), version);
      EXPECT_EQ(head + events, proto::encode(9, sub, version)) << n << " events";

      const std::uint64_t next = 100 + static_cast<std::uint64_t>(n);
      const std::string expected = proto::encode(
          5, proto::ReadOkOf<proto::EncodedEvents>{n == 0, next, 777, {sink.count(), events}},
          version);
      const std::string frame(sink.finish_read_ok(5, n == 0, next, 777));
      EXPECT_EQ(frame, expected) << n << " events, version " << version;
      auto ok = proto::decode<proto::ReadOkView>(
          std::string_view(frame).substr(proto::kLengthPrefixSize + proto::kFrameMinBody), version);
      ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
      ASSERT_EQ(ok->events.size(), static_cast<std::size_t>(n));
      EXPECT_EQ(ok->durable_end, version >= 2 ? 777u : 0u);
      if (n > 0) {
        EXPECT_EQ(ok->events.back().data, data.back());
        EXPECT_EQ(ok->events.back().correlation_id, version >= 2 && n % 2 == 0 ? "cmd-1" : "");
      }
    }
}

}  // namespace
}  // namespace annal::net::detail
