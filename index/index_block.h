#pragma once
// The entry encoding inside one block of an index file (version 3;
// docs/storage-format.md, "Index file (.ix)"). A block is self-contained:
// its first entry is written whole, every later one as the difference from
// the entry before it, in LEB128 varints:
//
//   head := varint(delta << 2 | has_residual << 1 | new_key)
//   new_key = 1: delta is the revision itself; the 8-byte hash follows;
//                the predicted position is the revision.
//   new_key = 0: same hash as the entry before; revision = previous + delta;
//                the predicted position is the previous position + delta.
//   has_residual = 1: varint(zigzag(position - predicted)) follows (not 0).
//
// A secondary index entry (revision = position) of a key seen a few
// positions before costs one byte; a stream's next event costs 1-4 bytes.
// Revisions must be below 2^62 (kMaxIndexRevision) so delta << 2 fits.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/entry.h"

namespace annal::index {

inline constexpr std::uint64_t kMaxIndexRevision = (std::uint64_t{1} << 62) - 1;
inline constexpr std::size_t kMaxEncodedEntry = 10 + 8 + 10;  // head, hash, residual

// Appends e's encoding to out. prev: the block's entry before e, or nullptr
// for a block's first entry. REQUIRES: e.revision <= kMaxIndexRevision and
// *prev < e.
void encode_index_entry(const IndexEntry* prev, const IndexEntry& e, std::vector<std::byte>& out);

// Decodes the `count` entries of the block [p, p + n) into out (replacing
// its contents), checking that the bytes hold exactly `count` well-formed
// entries in strictly increasing order. nullptr on success, else what is
// wrong (a static string).
const char* decode_index_block(const std::byte* p, std::size_t n, std::size_t count,
                               std::vector<IndexEntry>& out);

}  // namespace annal::index
