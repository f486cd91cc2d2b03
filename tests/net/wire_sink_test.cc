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
  WireSink sink;
  EXPECT_EQ(sink.size_of(marker), proto::event_wire_size(engine::RecordView{}));
  sink.add(marker);
  const std::string frame = proto::encode(
      7, proto::ReadOkOf<proto::EncodedEvents>{true, 43, {sink.count(), sink.events()}});
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
  WireSink sink;
  const std::size_t size = sink.size_of(v);
  sink.add(v);
  EXPECT_EQ(sink.bytes(), size);
  EXPECT_EQ(sink.count(), 1u);
}

}  // namespace
}  // namespace annal::net::detail
