#pragma once
// The entry encoding inside one block of an index file (version 4;
// docs/storage-format.md, "Index file (.ix)"). Entries are written as the
// difference from the entry before, in LEB128 varints, except at restart
// points (every kRestartInterval-th entry of a block, the first included),
// which are written whole; the restarts' offsets close the block, so a
// lookup binary-searches them and decodes at most one run of
// kRestartInterval entries (LevelDB's blocks do the same):
//
//   block := entry{count} restart:u16{ceil(count / kRestartInterval)}
//   head  := varint(delta << 2 | has_residual << 1 | whole)
//   whole = 1: delta is the revision itself; the 8-byte hash follows; the
//              predicted position is the revision. Written at every restart
//              and wherever the hash changes.
//   whole = 0: same hash as the entry before; revision = previous + delta;
//              the predicted position is the previous position + delta.
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
inline constexpr std::size_t kRestartInterval = 16;

// Builds one block: add() the entries in order, then finish().
class BlockBuilder {
 public:
  // REQUIRES: e.revision <= kMaxIndexRevision, e after the previous entry.
  void add(const IndexEntry& e);
  // Appends the restart offsets and returns the block's bytes; the builder
  // is empty again afterwards (the bytes stay valid until the next add).
  const std::vector<std::byte>& finish();
  std::size_t count() const { return count_; }
  std::size_t bytes() const { return out_.size(); }

 private:
  std::vector<std::byte> out_;
  std::vector<std::uint16_t> restarts_;
  IndexEntry prev_{};
  std::size_t count_ = 0;
  bool finished_ = false;
};

// Decodes the `count` entries of the block [p, p + n) into out (replacing
// its contents), checking everything: exactly `count` well-formed entries in
// strictly increasing order, whole at every restart, and restart offsets
// that point at them. nullptr on success, else what is wrong (a static
// string).
const char* decode_index_block(const std::byte* p, std::size_t n, std::size_t count,
                               std::vector<IndexEntry>& out);

// Reads a block that decode_index_block accepted, one run of
// kRestartInterval entries at a time.
class BlockView {
 public:
  BlockView(const std::byte* p, std::size_t n, std::size_t count);
  std::size_t runs() const { return runs_; }
  // The whole entry at restart r (the first of run r).
  IndexEntry first_of(std::size_t r) const;
  // Run r's entries into out[0, n); returns n (at most kRestartInterval).
  std::size_t run(std::size_t r, IndexEntry* out) const;
  // The last run whose first entry is < key (0 if none): where a search for
  // the first entry >= key starts.
  std::size_t run_before(const IndexEntry& key) const;
  // The last run whose first entry is <= key, or runs() if every entry is
  // after it: where a backward search from key starts.
  std::size_t run_at_or_before(const IndexEntry& key) const;

 private:
  std::size_t offset(std::size_t r) const;
  const std::byte* p_;
  std::size_t count_;
  std::size_t runs_;
  const std::byte* restarts_;
};

}  // namespace annal::index
