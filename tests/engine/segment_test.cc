#include "engine/segment.h"

#include <gtest/gtest.h>

#include "engine/format.h"
#include "tests/engine/test_util.h"

namespace annal::engine {
namespace {

using testing::bytes_of;
using testing::make_event;

// A segment image in memory: header, `n` records from `first`, zeros up to `size`.
struct Image {
  std::string bytes;
  std::vector<std::uint64_t> offsets;
};

Image make_image(std::uint64_t first, std::size_t n, std::size_t size = 64 << 10) {
  Image img;
  SegmentHeader h;
  h.first = GlobalPosition(first);
  h.allocated_size = size;
  h.created_us = 1;
  img.bytes = encode_segment_header(h);
  for (std::size_t i = 0; i < n; ++i) {
    img.offsets.push_back(img.bytes.size());
    encode(make_event(first + i, 10 + i * 13), img.bytes);
  }
  img.bytes.resize(size, '\0');
  return img;
}

TEST(SegmentNamesTest, NamesSortByPositionAndParseBack) {
  EXPECT_EQ(segment_file_name(GlobalPosition(0)), "00000000000000000000.seg");
  EXPECT_EQ(index_file_name(GlobalPosition(1234)), "00000000000000001234.idx");
  EXPECT_EQ(parse_segment_file_name("00000000000000001234.seg"), GlobalPosition(1234));
  EXPECT_EQ(parse_index_file_name("18446744073709551615.idx"), GlobalPosition(UINT64_MAX));
  EXPECT_FALSE(parse_segment_file_name("0000000000000001234.seg"));
  EXPECT_FALSE(parse_segment_file_name("00000000000000001234.idx"));
  EXPECT_FALSE(parse_segment_file_name("99999999999999999999.seg"));
  EXPECT_FALSE(parse_segment_file_name("0000000000000000123a.seg"));
}

TEST(SegmentHeaderTest, RoundTripsAndDetectsEveryBitFlipInTheUsedBytes) {
  SegmentHeader h{format::kSegmentVersion, GlobalPosition(99), 1 << 20, 1'700'000'000'000'000};
  const std::string bytes = encode_segment_header(h);
  ASSERT_EQ(bytes.size(), format::kSegmentHeaderSize);
  auto d = decode_segment_header(bytes_of(bytes), "x.seg");
  ASSERT_TRUE(d) << d.status().to_string();
  EXPECT_EQ(*d, h);
  for (std::size_t bit = 0; bit < 64 * 8; ++bit) {
    std::string bad = bytes;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    auto r = decode_segment_header(bytes_of(bad), "x.seg");
    ASSERT_FALSE(r) << "bit " << bit;
    EXPECT_EQ(r.status().code(), Errc::kCorruption);
    EXPECT_NE(r.status().message().find("x.seg"), std::string::npos);
  }
}

TEST(PositionIndexTest, RoundTripsAndRejectsDamage) {
  PositionIndex idx{GlobalPosition(10), 4096 + 3 * 80, {4096, 4096 + 80, 4096 + 160}};
  const std::string bytes = encode_position_index(idx);
  EXPECT_EQ(bytes.size(), kIndexHeaderSize + 12);
  auto d = decode_position_index(bytes_of(bytes), "a.idx");
  ASSERT_TRUE(d) << d.status().to_string();
  EXPECT_EQ(*d, idx);
  for (std::size_t bit = 0; bit < bytes.size() * 8; ++bit) {
    std::string bad = bytes;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    EXPECT_FALSE(decode_position_index(bytes_of(bad), "a.idx")) << "bit " << bit;
  }
  EXPECT_FALSE(decode_position_index(bytes_of(bytes.substr(0, bytes.size() - 4)), "a.idx"));
}

TEST(PositionIndexTest, WriteThenReadThroughTheFileSystem) {
  testing::TempDir dir;
  PositionIndex idx{GlobalPosition(7), 4096 + 72, {4096}};
  ASSERT_TRUE(write_position_index(FileSystem::posix(), dir.path(), idx));
  auto r = read_position_index(FileSystem::posix(),
                               dir.path() + "/" + index_file_name(GlobalPosition(7)));
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(*r, idx);
  EXPECT_FALSE(
      FileSystem::posix().exists(dir.path() + "/" + index_file_name(GlobalPosition(7)) + ".tmp"));
}

TEST(SegmentScannerTest, CleanSegmentEndsWithEnd) {
  Image img = make_image(100, 20);
  SegmentScan s = scan_segment(bytes_of(img.bytes), GlobalPosition(100));
  ASSERT_EQ(s.offsets.size(), 20u);
  for (std::size_t i = 0; i < 20; ++i) EXPECT_EQ(s.offsets[i], img.offsets[i]);
  EXPECT_EQ(s.stop.kind, ScanStopKind::kEnd) << s.stop.reason;
  EXPECT_EQ(s.stop.offset, s.data_end);
  EXPECT_EQ(s.committed_count, 20u);
}

TEST(SegmentScannerTest, GarbageAfterTheLastRecordIsTorn) {
  Image img = make_image(0, 5);
  const std::uint64_t end = img.offsets.back() + 200;  // past the last record
  std::uint64_t data_end = scan_segment(bytes_of(img.bytes), GlobalPosition(0)).data_end;
  ASSERT_LT(data_end, end);
  img.bytes[data_end + 3] = 'x';
  img.bytes[data_end + 130] = 'y';
  SegmentScan s = scan_segment(bytes_of(img.bytes), GlobalPosition(0));
  EXPECT_EQ(s.offsets.size(), 5u);
  EXPECT_EQ(s.stop.kind, ScanStopKind::kTorn) << s.stop.reason;
  EXPECT_EQ(s.stop.offset, data_end);
  EXPECT_EQ(s.stop.garbage_end, data_end + 131);
}

TEST(SegmentScannerTest, DamageFollowedByAValidRecordIsCorruptAndNamesBoth) {
  Image img = make_image(50, 10);
  img.bytes[img.offsets[4] + 20] ^= 0x10;
  SegmentScan s = scan_segment(bytes_of(img.bytes), GlobalPosition(50));
  EXPECT_EQ(s.offsets.size(), 4u);
  EXPECT_EQ(s.stop.kind, ScanStopKind::kCorrupt) << s.stop.reason;
  EXPECT_EQ(s.stop.offset, img.offsets[4]);
  EXPECT_EQ(s.stop.position, GlobalPosition(54));
  EXPECT_EQ(s.stop.next_valid_offset, img.offsets[5]);
  EXPECT_EQ(s.stop.next_valid_position, GlobalPosition(55));
}

TEST(SegmentScannerTest, AValidRecordWithTheWrongPositionIsCorrupt) {
  Image img = make_image(0, 3);
  std::string rec;
  encode(make_event(9), rec);  // position 9 where 3 belongs
  std::uint64_t at = scan_segment(bytes_of(img.bytes), GlobalPosition(0)).data_end;
  img.bytes.replace(at, rec.size(), rec);
  SegmentScan s = scan_segment(bytes_of(img.bytes), GlobalPosition(0));
  EXPECT_EQ(s.offsets.size(), 3u);
  EXPECT_EQ(s.stop.kind, ScanStopKind::kCorrupt) << s.stop.reason;
}

TEST(SegmentScannerTest, RecordsAfterTheLastCommitFlagAreCounted) {
  Image img = make_image(0, 0);
  img.bytes.resize(format::kSegmentHeaderSize);
  for (std::uint64_t i = 0; i < 5; ++i) {
    EventRecord e = make_event(i);
    if (i >= 2) e.flags &= ~format::kFlagCommit;
    encode(e, img.bytes);
  }
  img.bytes.resize(64 << 10, '\0');
  SegmentScan s = scan_segment(bytes_of(img.bytes), GlobalPosition(0));
  EXPECT_EQ(s.offsets.size(), 5u);
  EXPECT_EQ(s.committed_count, 2u);
  EXPECT_EQ(s.committed_end, s.offsets[2]);
}

}  // namespace
}  // namespace annal::engine

namespace annal::engine {
namespace {

// The header example of docs/storage-format.md, byte for byte (the first 48
// bytes; the rest is zero).
TEST(SegmentHeaderTest, TheDocumentedExampleEncodesToTheDocumentedBytes) {
  SegmentHeader h{format::kSegmentVersion, GlobalPosition(0), 256u << 20, 1764237600000000};
  const std::string bytes = encode_segment_header(h);
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (std::size_t i = 0; i < 48; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    hex.push_back(digits[c >> 4]);
    hex.push_back(digits[c & 15]);
  }
  EXPECT_EQ(hex,
            "414e4e414c534547020000000010000000000000000000000000001000000000"
            "008872939044060090f9a0bd920a3ad6");
  // A version 1 header (written before extended records) still decodes.
  h.version = 1;
  auto v1 =
      decode_segment_header(std::span<const std::byte>(
                                reinterpret_cast<const std::byte*>(encode_segment_header(h).data()),
                                format::kSegmentHeaderSize),
                            "v1.seg");
  EXPECT_TRUE(v1) << v1.status().to_string();
}

}  // namespace
}  // namespace annal::engine
