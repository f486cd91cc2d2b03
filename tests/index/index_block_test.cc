// The entry encoding of an index file block (index/index_block.h): every
// sorted run of entries round-trips, the secondary index's typical entry
// costs one byte, and every malformed block is refused with a reason.

#include "index/index_block.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace annal::index {
namespace {

std::vector<std::byte> encode(const std::vector<IndexEntry>& entries) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i < entries.size(); ++i)
    encode_index_entry(i == 0 ? nullptr : &entries[i - 1], entries[i], out);
  return out;
}

TEST(IndexBlock, RandomSortedRunsRoundTrip) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<IndexEntry> entries;
    const int n = 1 + static_cast<int>(rng() % 300);
    // Few hashes (so runs of one key), revisions near 0 or near the limit,
    // positions anywhere (below, equal to or far above the revision).
    for (int i = 0; i < n; ++i) {
      const std::uint64_t hash = round % 3 == 0 ? rng() : rng() % 5;
      std::uint64_t rev = rng() % 4 == 0 ? kMaxIndexRevision - rng() % 100 : rng() % 1000;
      const std::uint64_t pos = rng() % 3 == 0   ? rev
                                : rng() % 3 == 0 ? UINT64_MAX - rng() % 9
                                                 : rng();
      entries.push_back({hash, rev, pos});
    }
    std::sort(entries.begin(), entries.end());
    entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
    const auto bytes = encode(entries);
    std::vector<IndexEntry> back;
    ASSERT_EQ(decode_index_block(bytes.data(), bytes.size(), entries.size(), back), nullptr);
    ASSERT_EQ(back, entries) << "round " << round;
  }
}

TEST(IndexBlock, ASecondaryEntryNearItsPredecessorTakesOneByte) {
  // (key, position, position), the key seen 5 positions before: head only.
  const std::vector<IndexEntry> entries = {{42, 1000, 1000}, {42, 1005, 1005}, {42, 1036, 1036}};
  const auto bytes = encode(entries);
  // 1000 << 2 | 1 takes 2 bytes, the hash 8; then 5 << 2 = 20: 1 byte;
  // 31 << 2 = 124: 1 byte.
  EXPECT_EQ(bytes.size(), 2u + 8u + 1u + 1u);
}

TEST(IndexBlock, MalformedBlocksAreRefusedWithAReason) {
  const std::vector<IndexEntry> entries = {{1, 0, 0}, {1, 1, 7}, {2, 3, 3}};
  const auto good = encode(entries);
  std::vector<IndexEntry> out;
  ASSERT_EQ(decode_index_block(good.data(), good.size(), 3, out), nullptr);
  // Truncated at every length, and a count that does not match the bytes.
  for (std::size_t n = 0; n < good.size(); ++n)
    EXPECT_NE(decode_index_block(good.data(), n, 3, out), nullptr) << n;
  EXPECT_STREQ(decode_index_block(good.data(), good.size(), 2, out),
               "bytes after the block's last entry");
  EXPECT_STREQ(decode_index_block(good.data(), good.size(), 1000, out), "more entries than bytes");
  // A block must start with its key.
  std::vector<std::byte> no_key = {std::byte{0x04}};
  EXPECT_STREQ(decode_index_block(no_key.data(), no_key.size(), 1, out),
               "the block's first entry does not name its key");
  // Keys going backwards, an entry repeated, a zero residual, an overlong
  // varint.
  const std::vector<IndexEntry> back = {{5, 0, 0}, {4, 0, 0}};
  std::vector<std::byte> b;
  encode_index_entry(nullptr, back[0], b);
  encode_index_entry(nullptr, back[1], b);
  EXPECT_STREQ(decode_index_block(b.data(), b.size(), 2, out), "keys out of order");
  std::vector<std::byte> rep;
  encode_index_entry(nullptr, {9, 4, 4}, rep);
  rep.push_back(std::byte{0x00});  // same key, delta 0, no residual: a repeat
  EXPECT_STREQ(decode_index_block(rep.data(), rep.size(), 2, out), "entries out of order");
  std::vector<std::byte> zero;
  encode_index_entry(nullptr, {9, 4, 4}, zero);
  zero.push_back(std::byte{0x02});  // says a residual follows ...
  zero.push_back(std::byte{0x00});  // ... and it is 0
  EXPECT_STREQ(decode_index_block(zero.data(), zero.size(), 2, out), "a zero position residual");
  std::vector<std::byte> overlong(11, std::byte{0xFF});
  EXPECT_STREQ(decode_index_block(overlong.data(), overlong.size(), 1, out),
               "truncated or overlong entry head");
}

}  // namespace
}  // namespace annal::index
