#pragma once
// An immutable sorted index file (a "ptable" in EventStoreDB's terms):
// entries sorted by (hash, revision, position), a sparse summary for binary
// search kept in memory, checksummed header and footer. Read through a
// read-only memory map. Format: docs/storage-format.md ("Stream index files").
//
// Thread safety: an open IndexFile is immutable; any thread may query it.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/file.h"
#include "engine/status.h"
#include "index/entry.h"

namespace annal::index {

inline constexpr char kIndexFileMagic[8] = {'A', 'N', 'N', 'A', 'L', 'I', 'X', 'F'};
inline constexpr char kIndexFooterMagic[8] = {'A', 'N', 'N', 'A', 'L', 'I', 'X', 'E'};
inline constexpr std::uint32_t kIndexFileVersion = 1;
inline constexpr std::size_t kIndexHeaderSize = 64;
inline constexpr std::size_t kIndexFooterSize = 32;
inline constexpr std::size_t kIndexEntrySize = 24;
inline constexpr std::size_t kSummarySlotSize = 16;
inline constexpr std::size_t kIdDigestSize = 8;
inline constexpr std::uint32_t kDefaultSummaryInterval = 512;

// What the manifest records about one index file (and its header repeats).
struct IndexFileMeta {
  std::uint64_t number = 0;  // file name: <number, 20 digits>.ix
  std::uint32_t level = 0;   // 0 = written from a memtable; merges go up
  std::uint64_t first_position = 0;  // covers log positions [first, end)
  std::uint64_t end_position = 0;
  std::uint64_t entry_count = 0;
  bool operator==(const IndexFileMeta&) const = default;
};

std::string index_file_name(std::uint64_t number);

// Writes the entries produced by `next` (in sorted order; returns false at
// the end), and id_digest(p) for every position p in [first, end) (the
// idempotency window's digest of that event's id, 0 if unknown; a null
// function writes zeros), as DIR/<number>.ix atomically: DIR/<number>.ix.tmp,
// fdatasync, rename, fsync DIR. meta.entry_count is set to the count written.
Status write_index_file(engine::FileSystem& fs, const std::string& dir, IndexFileMeta& meta,
                        const std::function<bool(IndexEntry&)>& next,
                        const std::function<std::uint64_t(std::uint64_t)>& id_digest,
                        std::uint32_t summary_interval = kDefaultSummaryInterval);

class IndexFile {
 public:
  // Opens and validates DIR/<expected.number>.ix: size, header and footer
  // checksums, the header against `expected`, the summary checksum and, if
  // verify_entries, the checksum of all entries (read with pread, so the map
  // stays cold). Errors are kCorruption / kIoError naming the file.
  static Result<std::shared_ptr<IndexFile>> open(engine::FileSystem& fs, const std::string& dir,
                                                 const IndexFileMeta& expected, bool verify_entries);

  const IndexFileMeta& meta() const { return meta_; }
  const std::string& path() const { return path_; }
  std::size_t size() const { return meta_.entry_count; }
  IndexEntry at(std::size_t i) const;
  // Index of the first entry >= (hash, revision, 0).
  std::size_t lower_bound(std::uint64_t hash, std::uint64_t revision) const;
  // The id digest stored for `position` (read through the map).
  // REQUIRES: first_position <= position < end_position.
  std::uint64_t id_digest(std::uint64_t position) const;
  // Appends the digests of positions [from, to) ∩ [first, end) to out, read
  // with pread (the map stays cold).
  Status read_id_digests(engine::FileSystem& fs, std::uint64_t from, std::uint64_t to,
                         std::vector<std::uint64_t>& out) const;
  // Bytes of memory the file holds outside the map (the summary).
  std::size_t resident_bytes() const { return summary_.size() * sizeof(summary_[0]); }

  void collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi, std::uint64_t pos_limit,
               std::vector<IndexEntry>& out) const;
  bool visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                  const std::function<bool(const IndexEntry&)>& fn) const;

 private:
  IndexFile() = default;
  struct Key {
    std::uint64_t hash;
    std::uint64_t revision;
  };
  IndexFileMeta meta_;
  std::string path_;
  std::uint32_t summary_interval_ = kDefaultSummaryInterval;
  std::vector<Key> summary_;
  std::shared_ptr<const engine::Mapping> map_;
  const std::byte* entries_ = nullptr;
};

}  // namespace annal::index
