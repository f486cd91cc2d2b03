// The record extension (storage format version 2): leader epoch, tags,
// correlation and causation ids. Records without them keep the version 1
// bytes; records with them round-trip, and malformed extensions are corrupt.
#include <gtest/gtest.h>
#include <xxhash.h>

#include "engine/endian.h"
#include "engine/format.h"
#include "engine/record.h"
#include "tests/engine/test_util.h"

namespace annal::engine {
namespace {

using testing::bytes_of;
using testing::encoded;
using testing::make_event;

EventRecord tagged(std::uint64_t position) {
  EventRecord r = make_event(position);
  r.epoch = 7;
  r.tags = {"customer:42", "region:eu", "tier:gold"};
  r.correlation_id = "c0ffee00-0000-4000-8000-000000000001";
  r.causation_id = "cmd-17";
  return r;
}

// Rewrites the checksum after a test changed bytes, so only the change is
// judged (not the checksum it broke).
void reseal(std::string& bytes) {
  auto* p = reinterpret_cast<std::byte*>(bytes.data());
  const std::uint64_t seed = le::get_u64(p);
  le::put_u64(p + 8, XXH3_64bits_withSeed(p + 16, bytes.size() - 16, seed));
}

std::string hex_of(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// Offset of the extension: right after the data.
std::size_t ext_offset(const EventRecord& r) {
  return format::kRecordFixedSize + r.stream.size() + r.type.size() + r.metadata.size() +
         r.data.size();
}

TEST(RecordExtensionTest, ARecordWithoutExtensionFieldsKeepsTheVersion1Bytes) {
  const EventRecord r = make_event(3);
  ASSERT_FALSE(r.has_extension());
  const std::string bytes = encoded(r);
  EXPECT_EQ(bytes.size(),
            format::record_size(r.stream.size(), r.type.size(), r.metadata.size(), r.data.size()));
  EXPECT_EQ(
      le::get_u32(reinterpret_cast<const std::byte*>(bytes.data()) + 4) & format::kFlagExtended,
      0u);
  DecodeResult d = decode(bytes_of(bytes));
  ASSERT_EQ(d.outcome, DecodeOutcome::kOk) << d.reason;
  EXPECT_EQ(d.view.epoch, 0u);
  EXPECT_TRUE(d.view.tags.empty());
  EXPECT_TRUE(d.view.correlation_id.empty());
}

TEST(RecordExtensionTest, EveryExtensionFieldRoundTrips) {
  for (int variant = 0; variant < 5; ++variant) {
    EventRecord r = tagged(11);
    if (variant == 1) r.tags.clear();
    if (variant == 2) r.correlation_id.clear(), r.causation_id.clear();
    if (variant == 3) r.epoch = 0, r.tags = {"x"};
    if (variant == 4)
      r.tags.clear(), r.correlation_id.clear(), r.causation_id.clear();  // epoch only
    const std::string bytes = encoded(r);
    ASSERT_EQ(bytes.size(), encoded_size(r));
    ASSERT_EQ(bytes.size() % format::kRecordAlign, 0u);
    DecodeResult d = decode(bytes_of(bytes));
    ASSERT_EQ(d.outcome, DecodeOutcome::kOk) << variant << ": " << d.reason;
    EXPECT_TRUE(d.view.flags & format::kFlagExtended);
    EXPECT_EQ(d.view.to_record(), r) << variant;
    DecodeResult b = decode_backward(bytes_of(bytes));
    ASSERT_EQ(b.outcome, DecodeOutcome::kOk) << b.reason;
    EXPECT_EQ(b.view.to_record(), r);
  }
}

TEST(RecordExtensionTest, MalformedExtensionsAreCorrupt) {
  const EventRecord r = tagged(5);
  const std::string good = encoded(r);
  const std::size_t x = ext_offset(r);
  struct Case {
    const char* what;
    std::size_t at;
    std::string bytes;
  };
  const Case cases[] = {
      {"reserved field set", x + 14, std::string("\x01\x00", 2)},
      {"one tag more than the record holds", x + 8, std::string("\x04\x00", 2)},
      {"an empty tag", x + 16, std::string("\x00\x00", 2)},
      // "customer:42" and "region:eu" swapped lengths: the bytes then read
      // as "customer:" and "42region:eu", still sorted; swap whole tags:
      {"tags out of order", x + 16 + 6,
       std::string("tier:gold", 9) + "customer:42" + std::string("region:eu", 9)},
      {"a correlation id longer than the record", x + 10, std::string("\xff\x00", 2)},
  };
  for (const Case& c : cases) {
    std::string bad = good;
    std::string patch = c.bytes;
    if (std::string(c.what) == "tags out of order") {
      // Lengths 9, 11, 9 for the new order, then the tag bytes.
      patch = std::string("\x09\x00\x0b\x00\x09\x00", 6) + c.bytes;
      bad.replace(x + 16, patch.size(), patch);
    } else {
      bad.replace(c.at, patch.size(), patch);
    }
    reseal(bad);
    DecodeResult d = decode(bytes_of(bad));
    EXPECT_EQ(d.outcome, DecodeOutcome::kCorrupt) << c.what;
    EXPECT_FALSE(d.reason.empty()) << c.what;
  }
  // An extension that carries nothing (the encoder never writes one): epoch
  // 0, no tag, no ids.
  EventRecord epoch_only = make_event(6);
  epoch_only.epoch = 1;
  std::string empty_ext = encoded(epoch_only);
  empty_ext.replace(ext_offset(epoch_only), 8, std::string(8, '\0'));
  reseal(empty_ext);
  EXPECT_EQ(decode(bytes_of(empty_ext)).outcome, DecodeOutcome::kCorrupt);
  // Without the flag the same bytes are a version 1 record whose lengths do
  // not add up to L: corrupt, never silently shorter.
  std::string unflagged = good;
  auto* p = reinterpret_cast<std::byte*>(unflagged.data());
  le::put_u32(p + 4, le::get_u32(p + 4) & ~format::kFlagExtended);
  reseal(unflagged);
  EXPECT_EQ(decode(bytes_of(unflagged)).outcome, DecodeOutcome::kCorrupt);
}

// The worked example of docs/storage-format.md ("An extended record"), byte
// for byte.
TEST(RecordExtensionTest, TheDocumentedExtendedExampleEncodesToTheDocumentedBytes) {
  EventRecord r = testing::documented_example();
  r.epoch = 3;
  r.tags = {"customer:42", "region:eu"};
  r.correlation_id = "c-9";
  const char* hex =
      "9000000015000000a44e6e11b15111bf"
      "05000000000000000000000000000000"
      "00887293904406000f8e7d6c5b4a4938"
      "8271605f4e3d2c1b0700060000000000"
      "090000006f726465722d31506c616365"
      "647b22717479223a327d030000000000"
      "000002000300000000000b0009006375"
      "73746f6d65723a3432726567696f6e3a"
      "6575632d390000000000000090000000";
  EXPECT_EQ(hex_of(encoded(r)), hex);
}

}  // namespace
}  // namespace annal::engine
