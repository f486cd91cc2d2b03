// FrameBuffer: the connection's receive buffer.

#include "net/frame_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace annal::net::detail {
namespace {

void put(FrameBuffer& b, const std::string& bytes) {
  auto room = b.room(0);
  ASSERT_GE(room.size(), bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  b.commit(bytes.size());
}

TEST(FrameBufferTest, KeepsUnconsumedBytesInOrderAcrossMovesAndGrowth) {
  FrameBuffer b;
  put(b, "abcdef");
  EXPECT_EQ(b.view(0, 6), "abcdef");
  b.consume(4);
  EXPECT_EQ(b.view(0, 2), "ef");
  // A frame that needs more than the buffer holds: room for all of it.
  auto room = b.room(3 * FrameBuffer::kInitial);
  EXPECT_GE(room.size() + 2, 3 * FrameBuffer::kInitial);
  EXPECT_EQ(b.view(0, 2), "ef") << "growing keeps what was not consumed";
  std::memset(room.data(), 'x', room.size());
  b.commit(room.size());
  EXPECT_EQ(b.data().size(), room.size() + 2);
  EXPECT_EQ(b.view(0, 3), "efx");
}

TEST(FrameBufferTest, GivesBackWhatALargeFrameTookOnceItIsConsumed) {
  FrameBuffer b;
  auto room = b.room(4u << 20);
  b.commit(room.size());
  EXPECT_GE(b.capacity(), 4u << 20);
  b.consume(b.data().size());
  b.room(4);
  EXPECT_LE(b.capacity(), FrameBuffer::kKeep);
}

}  // namespace
}  // namespace annal::net::detail
