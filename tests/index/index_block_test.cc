// The entry encoding of an index file block (index/index_block.h): every
// sorted run of entries round-trips, through the full decoder and run by run
// through a BlockView (restart points every kRestartInterval entries), the
// secondary index's typical entry costs one byte, and every malformed block
// is refused with a reason.

#include "index/index_block.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

namespace annal::index {
namespace {

std::vector<std::byte> encode(const std::vector<IndexEntry>& entries) {
  BlockBuilder b;
  for (const auto& e : entries) b.add(e);
  return b.finish();
}

TEST(IndexBlock, RandomSortedRunsRoundTripWholeAndRunByRun) {
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
    // Run by run, and the searches over the runs' first entries.
    const BlockView view(bytes.data(), bytes.size(), entries.size());
    ASSERT_EQ(view.runs(), (entries.size() + kRestartInterval - 1) / kRestartInterval);
    std::vector<IndexEntry> all;
    for (std::size_t r = 0; r < view.runs(); ++r) {
      ASSERT_EQ(view.first_of(r), entries[r * kRestartInterval]);
      IndexEntry run[kRestartInterval];
      const std::size_t n = view.run(r, run);
      ASSERT_EQ(n, std::min(kRestartInterval, entries.size() - r * kRestartInterval));
      all.insert(all.end(), run, run + n);
    }
    ASSERT_EQ(all, entries);
    const IndexEntry key = entries[rng() % entries.size()];
    const std::size_t before = view.run_before(key);
    EXPECT_TRUE(before == 0 || view.first_of(before) < key);
    EXPECT_TRUE(before + 1 == view.runs() || !(view.first_of(before + 1) < key));
    const std::size_t at = view.run_at_or_before(key);
    ASSERT_LT(at, view.runs());
    EXPECT_FALSE(key < view.first_of(at));
    EXPECT_TRUE(at + 1 == view.runs() || key < view.first_of(at + 1));
  }
}

TEST(IndexBlock, ASecondaryEntryNearItsPredecessorTakesOneByte) {
  // (key, position, position), the key seen 5 positions before: head only.
  const std::vector<IndexEntry> entries = {{42, 1000, 1000}, {42, 1005, 1005}, {42, 1036, 1036}};
  const auto bytes = encode(entries);
  // 1000 << 2 | 1 takes 2 bytes, the hash 8; then 5 << 2 = 20: 1 byte;
  // 31 << 2 = 124: 1 byte; one restart offset, 2 bytes.
  EXPECT_EQ(bytes.size(), 2u + 8u + 1u + 1u + 2u);
}

TEST(IndexBlock, MalformedBlocksAreRefusedWithAReason) {
  const std::vector<IndexEntry> entries = {{1, 0, 0}, {1, 1, 7}, {2, 3, 3}};
  const auto good = encode(entries);
  std::vector<IndexEntry> out;
  ASSERT_EQ(decode_index_block(good.data(), good.size(), 3, out), nullptr);
  // Truncated at every length, and counts that do not match the bytes.
  for (std::size_t n = 0; n < good.size(); ++n)
    EXPECT_NE(decode_index_block(good.data(), n, 3, out), nullptr) << n;
  EXPECT_NE(decode_index_block(good.data(), good.size(), 2, out), nullptr);
  EXPECT_STREQ(decode_index_block(good.data(), good.size(), 1000, out), "more entries than bytes");
  // A restart offset that points elsewhere.
  auto moved = good;
  moved[moved.size() - 2] = std::byte{1};
  EXPECT_STREQ(decode_index_block(moved.data(), moved.size(), 3, out),
               "a restart offset does not point at its entry");
  // A block must start with a whole entry.
  const std::vector<std::byte> no_key = {std::byte{0x04}, std::byte{0}, std::byte{0}};
  EXPECT_STREQ(decode_index_block(no_key.data(), no_key.size(), 1, out),
               "a restart entry is not written whole");
  // Keys going backwards (two whole entries), an entry repeated, a zero
  // residual, an overlong varint: hand-made blocks with one restart at 0.
  auto block = [](std::vector<std::byte> body) {
    body.push_back(std::byte{0});
    body.push_back(std::byte{0});
    return body;
  };
  auto whole = [](std::uint64_t hash, std::uint8_t head) {
    std::vector<std::byte> b(9);
    b[0] = std::byte{head};
    std::memcpy(b.data() + 1, &hash, 8);
    return b;
  };
  std::vector<std::byte> back = whole(5, 0x01), second = whole(4, 0x01);
  back.insert(back.end(), second.begin(), second.end());
  back = block(back);
  EXPECT_STREQ(decode_index_block(back.data(), back.size(), 2, out), "keys out of order");
  std::vector<std::byte> rep = whole(9, 0x11);  // revision 4, position 4
  rep.push_back(std::byte{0x00});               // same key, delta 0, no residual: a repeat
  rep = block(rep);
  EXPECT_STREQ(decode_index_block(rep.data(), rep.size(), 2, out), "entries out of order");
  std::vector<std::byte> zero = whole(9, 0x11);
  zero.push_back(std::byte{0x02});  // says a residual follows ...
  zero.push_back(std::byte{0x00});  // ... and it is 0
  zero = block(zero);
  EXPECT_STREQ(decode_index_block(zero.data(), zero.size(), 2, out), "a zero position residual");
  std::vector<std::byte> overlong = block(std::vector<std::byte>(11, std::byte{0xFF}));
  EXPECT_STREQ(decode_index_block(overlong.data(), overlong.size(), 1, out),
               "truncated or overlong entry head");
}

}  // namespace
}  // namespace annal::index
