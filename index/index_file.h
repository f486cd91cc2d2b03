#pragma once
// An immutable sorted index file (a "ptable" in EventStoreDB's terms):
// entries sorted by (hash, revision, position) in delta-encoded blocks of
// summary_interval entries (index/index_block.h), a sparse summary (each
// block's first key and offset) for binary search kept in memory,
// checksummed header and footer. Read through a read-only memory map.
// Format: docs/storage-format.md ("Stream index files").
//
// Every block of entries (and of summary_interval id digests) has its own
// checksum, kept with the summary. Opening checks the
// header, footer and summary only, so it costs O(files), not O(entries); a
// block is checked the first time a query touches it (then remembered in a
// bitmap), and verify_all() checks the rest (the background scrub, merges and
// the offline tools). A block is also decoded and its structure checked
// (entry count, order, its first key against the summary). A failed check is
// a kCorruption error naming the file and block, and marks the file
// damaged(): its contents are never served.
//
// Thread safety: an open IndexFile is immutable apart from its verification
// bitmap (atomic); any thread may query it.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/file.h"
#include "engine/status.h"
#include "index/entry.h"
#include "index/index_block.h"

namespace annal::index {

inline constexpr char kIndexFileMagic[8] = {'A', 'N', 'N', 'A', 'L', 'I', 'X', 'F'};
inline constexpr char kIndexFooterMagic[8] = {'A', 'N', 'N', 'A', 'L', 'I', 'X', 'E'};
inline constexpr std::uint32_t kIndexFileVersion = 4;
inline constexpr std::size_t kIndexHeaderSize = 64;
inline constexpr std::size_t kIndexFooterSize = 40;
inline constexpr std::size_t kSummarySlotSize = 40;      // first entry, offset, checksum
inline constexpr std::uint32_t kIndexFlagIdDigests = 1;  // header flags: id digests present
inline constexpr std::size_t kBlockSumSize = 8;          // per block of id digests
inline constexpr std::size_t kIdDigestSize = 8;
inline constexpr std::uint32_t kDefaultSummaryInterval = 512;
// A block's restart offsets are 16-bit: 2048 entries of at most 28 bytes
// stay below 64 KiB.
inline constexpr std::uint32_t kMaxSummaryInterval = 2048;

// What the manifest records about one index file (and its header repeats).
struct IndexFileMeta {
  std::uint64_t number = 0;          // file name: <number, 20 digits>.ix
  std::uint32_t level = 0;           // 0 = written from a memtable; merges go up
  std::uint64_t first_position = 0;  // covers log positions [first, end)
  std::uint64_t end_position = 0;
  std::uint64_t entry_count = 0;
  bool operator==(const IndexFileMeta&) const = default;
};

std::string index_file_name(std::uint64_t number);

// Writes the entries produced by `next` (in sorted order, revisions <=
// kMaxIndexRevision; returns false at the end), and id_digest(p) for every
// position p in [first, end) (the idempotency window's digest of that
// event's id, 0 if unknown; a null function writes no digests), as
// DIR/<number>.ix atomically: DIR/<number>.ix.tmp, fdatasync, rename, fsync
// DIR. meta.entry_count is set to the count written.
Status write_index_file(engine::FileSystem& fs, const std::string& dir, IndexFileMeta& meta,
                        const std::function<bool(IndexEntry&)>& next,
                        const std::function<std::uint64_t(std::uint64_t)>& id_digest,
                        std::uint32_t summary_interval = kDefaultSummaryInterval);

class IndexFile {
 public:
  // Opens and validates DIR/<expected.number>.ix: size, header and footer
  // checksums, the header against `expected`, the summary checksum and, if
  // verify_entries, every block (verify_all()). Errors are kCorruption /
  // kIoError naming the file.
  static Result<std::shared_ptr<IndexFile>> open(engine::FileSystem& fs, const std::string& dir,
                                                 const IndexFileMeta& expected,
                                                 bool verify_entries);

  const IndexFileMeta& meta() const { return meta_; }
  const std::string& path() const { return path_; }
  std::size_t size() const { return meta_.entry_count; }
  // Checks every block not checked yet. kCorruption names the first bad one.
  Status verify_all() const;
  bool verified() const { return unverified_.load(std::memory_order_acquire) == 0; }
  // A check failed: the file must be replaced (IndexCore rebuilds it).
  bool damaged() const { return damaged_.load(std::memory_order_acquire); }

  // Every entry in order, block by block (each checked on first use).
  class Cursor {
   public:
    explicit Cursor(const IndexFile& f) : f_(f) {}
    // The next entry; false at the end or when a block fails its check
    // (then status() says why).
    bool next(IndexEntry& e);
    const Status& status() const { return status_; }

   private:
    const IndexFile& f_;
    std::size_t block_ = 0;
    std::size_t i_ = 0;
    std::vector<IndexEntry> buf_;
    Status status_;
  };

  bool has_id_digests() const { return digests_ != nullptr; }
  // The id digest stored for `position` (0 in a file without digests),
  // unchecked. REQUIRES: verified(), first_position <= position <
  // end_position.
  std::uint64_t id_digest(std::uint64_t position) const;
  // Bytes the entry blocks take in the file.
  std::uint64_t entry_bytes() const { return entries_bytes_; }

  // Appends the digests of positions [from, to) ∩ [first, end) to out
  // (zeros in a file without digests), checking their blocks.
  Status read_id_digests(std::uint64_t from, std::uint64_t to,
                         std::vector<std::uint64_t>& out) const;
  // Bytes of memory the file holds outside the map (summary, block checksums,
  // bitmap).
  std::size_t resident_bytes() const {
    return summary_.size() * sizeof(summary_[0]) + digest_sums_.size() * 8 +
           (blocks() + 63) / 64 * 8;
  }

  // Entries of `hash` with revision in [lo, hi] and position < pos_limit,
  // appended to out in order (until out holds `max`); every block read is
  // checked first.
  Status collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi, std::uint64_t pos_limit,
                 std::vector<IndexEntry>& out, std::size_t max = SIZE_MAX) const;
  // Entries of `hash` (position < pos_limit, revision <= max_revision) in
  // descending order until fn returns false; the result is false if fn
  // stopped the visit. The start is found by binary search.
  Result<bool> visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                          const std::function<bool(const IndexEntry&)>& fn,
                          std::uint64_t max_revision = UINT64_MAX) const;

 private:
  IndexFile() = default;
  struct Slot {
    std::uint64_t hash;  // the block's first entry
    std::uint64_t revision;
    std::uint64_t position;
    std::uint64_t offset;  // of the block, in the file
    std::uint64_t sum;     // XXH3 of the block's bytes
  };
  std::size_t blocks() const { return summary_.size() + digest_sums_.size(); }
  // Block b < summary_.size(): entries; else id digests (b - summary_.size()).
  struct Block {
    std::uint64_t offset;  // in the file
    std::size_t bytes;
    std::uint64_t sum;
  };
  Block block(std::size_t b) const;
  std::size_t entries_in(std::size_t b) const;  // of entry block b
  bool is_checked(std::size_t b) const;
  // Checks block b's bytes (at p) against its checksum and, for an entry
  // block, its structure (decoding it into *out if given); marks it checked,
  // or the file damaged.
  Status check_bytes(std::size_t b, const std::byte* p,
                     std::vector<IndexEntry>* out = nullptr) const;
  Status check_block(std::size_t b) const;  // through the map
  // Entry block b decoded into out, checked first if it was not yet.
  Status load_block(std::size_t b, std::vector<IndexEntry>& out) const;
  // Entry block b for reading run by run, checked first if it was not yet.
  Result<BlockView> view_block(std::size_t b) const;
  // The entry block holding the first entry >= (hash, revision, 0).
  std::size_t first_block(std::uint64_t hash, std::uint64_t revision) const;
  Status corrupt_block(std::size_t b, const std::string& what) const;

  IndexFileMeta meta_;
  std::string path_;
  std::uint32_t summary_interval_ = kDefaultSummaryInterval;
  std::vector<Slot> summary_;
  std::vector<std::uint64_t> digest_sums_;
  std::shared_ptr<const engine::Mapping> map_;
  std::uint64_t entries_bytes_ = 0;
  const std::byte* digests_ = nullptr;  // nullptr: the file has none
  mutable std::mutex file_mu_;          // guards file_ (verify_all's preads)
  std::unique_ptr<engine::File> file_;
  mutable std::unique_ptr<std::atomic<std::uint64_t>[]> checked_;  // bit per block
  mutable std::atomic<std::uint64_t> unverified_{0};
  mutable std::atomic<bool> damaged_{false};
};

}  // namespace annal::index
