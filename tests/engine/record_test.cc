#include "engine/record.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <algorithm>

#include "engine/format.h"
#include "tests/engine/test_util.h"

namespace annal::engine {
namespace {

using testing::bytes_of;
using testing::encoded;
using testing::make_event;

TEST(RecordTest, EncodeThenDecodeRoundTrips) {
  for (std::size_t size : {0u, 1u, 7u, 8u, 100u, 4000u}) {
    EventRecord r = make_event(42 + size, size);
    const std::string bytes = encoded(r);
    ASSERT_EQ(bytes.size(), encoded_size(r));
    ASSERT_EQ(bytes.size() % format::kRecordAlign, 0u);
    DecodeResult d = decode(bytes_of(bytes));
    ASSERT_EQ(d.outcome, DecodeOutcome::kOk) << d.reason;
    EXPECT_EQ(d.view.to_record(), r);
    EXPECT_EQ(d.view.size, bytes.size());
  }
}

TEST(RecordTest, EmptyFieldsGiveTheMinimumSize) {
  EventRecord r;
  r.position = GlobalPosition(7);
  const std::string bytes = encoded(r);
  EXPECT_EQ(bytes.size(), format::kRecordMinSize);
  DecodeResult d = decode(bytes_of(bytes));
  ASSERT_EQ(d.outcome, DecodeOutcome::kOk) << d.reason;
  EXPECT_EQ(d.view.to_record(), r);
}

TEST(RecordTest, EncodeIntoWritesTheSameBytesAsEncode) {
  EventRecord r = make_event(9, 33);
  std::string a = encoded(r);
  std::string b(encoded_size(r), '\xAB');
  encode_into(r, std::span<std::byte>(reinterpret_cast<std::byte*>(b.data()), b.size()));
  EXPECT_EQ(a, b);
}

TEST(RecordTest, EverySingleBitFlipIsDetected) {
  const std::string good = encoded(make_event(123456, 29));
  for (std::size_t bit = 0; bit < good.size() * 8; ++bit) {
    std::string bad = good;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    // Extra zeros after the record, as in a segment, so a grown length is not
    // simply "truncated by the end of the buffer".
    bad += std::string(256, '\0');
    DecodeResult d = decode(bytes_of(bad));
    EXPECT_NE(d.outcome, DecodeOutcome::kOk) << "bit " << bit << " flipped went undetected";
  }
}

TEST(RecordTest, CorruptedLengthIsDetected) {
  const std::string good = encoded(make_event(5, 64));
  for (std::uint32_t len :
       {0u, 8u, 64u, 72u, 80u, 0xFFFFFFF8u, static_cast<std::uint32_t>(good.size() + 8)}) {
    std::string bad = good + std::string(64, '\0');
    for (int i = 0; i < 4; ++i) bad[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
    DecodeResult d = decode(bytes_of(bad));
    EXPECT_NE(d.outcome, DecodeOutcome::kOk) << "length " << len;
  }
}

TEST(RecordTest, UnknownFlagBitsAreCorruptEvenWithAValidChecksum) {
  std::string bytes = encoded(make_event(1));
  bytes[6] = 0x01;  // flag bit 16, unknown to version 1
  // Re-seal the checksum so only the flag check can object.
  auto* p = reinterpret_cast<unsigned char*>(bytes.data());
  std::uint64_t seed = 0;
  for (int i = 7; i >= 0; --i) seed = (seed << 8) | p[i];
  std::uint64_t sum = XXH3_64bits_withSeed(p + 16, bytes.size() - 16, seed);
  for (int i = 0; i < 8; ++i) p[8 + i] = static_cast<unsigned char>(sum >> (8 * i));
  DecodeResult d = decode(bytes_of(bytes));
  EXPECT_EQ(d.outcome, DecodeOutcome::kCorrupt);
  EXPECT_NE(d.reason.find("flag"), std::string::npos) << d.reason;
}

TEST(RecordTest, ZeroBytesAreTheEndAndAShortBufferIsTruncated) {
  std::string zeros(128, '\0');
  EXPECT_EQ(decode(bytes_of(zeros)).outcome, DecodeOutcome::kEnd);
  const std::string good = encoded(make_event(3, 100));
  for (std::size_t n = 4; n < good.size(); n += 8)
    EXPECT_EQ(decode(bytes_of(good.substr(0, n))).outcome, DecodeOutcome::kTruncated) << n;
}

TEST(RecordTest, BackwardDecodeEqualsForwardDecode) {
  std::string log;
  std::vector<EventRecord> events;
  for (std::uint64_t i = 0; i < 50; ++i) {
    events.push_back(make_event(i, (i * 37) % 301));
    encode(events.back(), log);
  }
  std::vector<EventRecord> forward, backward;
  std::size_t off = 0;
  while (off < log.size()) {
    DecodeResult d = decode(bytes_of(log).subspan(off));
    ASSERT_EQ(d.outcome, DecodeOutcome::kOk) << d.reason;
    forward.push_back(d.view.to_record());
    off += d.view.size;
  }
  std::size_t end = log.size();
  while (end > 0) {
    DecodeResult d = decode_backward(bytes_of(log).first(end));
    ASSERT_EQ(d.outcome, DecodeOutcome::kOk) << d.reason;
    backward.push_back(d.view.to_record());
    end -= d.view.size;
  }
  EXPECT_EQ(forward, events);
  std::reverse(backward.begin(), backward.end());
  EXPECT_EQ(backward, forward);
}

TEST(RecordTest, BackwardDecodeDetectsACorruptTrailer) {
  std::string bytes = encoded(make_event(77, 20));
  bytes[bytes.size() - 4] = static_cast<char>(bytes[bytes.size() - 4] ^ 0x08);
  EXPECT_NE(decode_backward(bytes_of(bytes)).outcome, DecodeOutcome::kOk);
}

}  // namespace
}  // namespace annal::engine

namespace annal::engine {
namespace {

// The worked example of docs/storage-format.md, byte for byte: a format
// change must show up here (and in the document, with a version bump).
TEST(RecordFormatTest, TheDocumentedExampleEncodesToTheDocumentedBytes) {
  const EventRecord r = testing::documented_example();
  const char* hex =
      "60000000050000"
      "00d8b473dbef683c8f"
      "05000000000000000000000000000000"
      "00887293904406000f8e7d6c5b4a4938"
      "8271605f4e3d2c1b0700060000000000"
      "090000006f726465722d31506c616365"
      "647b22717479223a327d000060000000";
  std::string expected;
  for (const char* p = hex; *p != 0; p += 2)
    expected.push_back(static_cast<char>(std::stoi(std::string(p, 2), nullptr, 16)));
  std::string bytes;
  encode(r, bytes);
  EXPECT_EQ(bytes, expected);
}

}  // namespace
}  // namespace annal::engine
