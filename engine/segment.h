#pragma once
// Segment files, their names, the segment scanner and the position index
// (.idx) files. Public and stable: the offline tools (inspect, dump, verify,
// repair) are built on this header, record.h and format.h.
// The byte layouts are specified in docs/storage-format.md.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/file.h"
#include "engine/format.h"
#include "engine/record.h"
#include "engine/status.h"
#include "engine/types.h"

namespace annal::engine {

// ---- Names ----------------------------------------------------------------

// "<first position as 20 zero-padded decimal digits>.seg", so `ls` sorts by position.
std::string segment_file_name(GlobalPosition first);
// "<same 20 digits>.idx": the position index of a sealed segment.
std::string index_file_name(GlobalPosition first);
// The first position encoded in a segment / index file name; nullopt unless the
// name is exactly 20 decimal digits followed by the extension.
std::optional<GlobalPosition> parse_segment_file_name(std::string_view name);
std::optional<GlobalPosition> parse_index_file_name(std::string_view name);

// ---- Segment header (the first format::kSegmentHeaderSize bytes) ------------
//
// off size field (little-endian)
//  0   8   magic "ANNALSEG"
//  8   4   version (format::kSegmentVersion)
// 12   4   header size (4096)
// 16   8   first position
// 24   8   allocated size of the file in bytes (header included)
// 32   8   creation time, microseconds since the Unix epoch (signed)
// 40   8   checksum: XXH3_64bits(bytes[0, 40)) (seed 0)
// 48 4048  reserved, zero
inline constexpr std::size_t kSegmentHeaderChecksumOffset = 40;

struct SegmentHeader {
  std::uint32_t version = format::kSegmentVersion;
  GlobalPosition first;
  std::uint64_t allocated_size = 0;
  std::int64_t created_us = 0;

  bool operator==(const SegmentHeader&) const = default;
};

// The full kSegmentHeaderSize bytes of the header.
std::string encode_segment_header(const SegmentHeader& h);
// Validates magic, version, header size, checksum and reserved bytes. `file`
// names the segment in error messages (kCorruption).
Result<SegmentHeader> decode_segment_header(std::span<const std::byte> bytes,
                                            const std::string& file);
// Reads and decodes the header of an open segment file.
Result<SegmentHeader> read_segment_header(File& file);

// ---- Scanning a segment -----------------------------------------------------

enum class ScanStopKind {
  kEnd,      // clean: zeros from the stop offset to the end of the bytes
  kTorn,     // invalid bytes after the last valid record, no valid record after them,
             // or only after a whole zero sector (a write torn out of order)
  kCorrupt,  // invalid bytes (or a misplaced record) followed by a valid record,
             // or a record with a valid checksum but the wrong position
};
const char* scan_stop_kind_name(ScanStopKind k);

struct ScanStop {
  ScanStopKind kind = ScanStopKind::kEnd;
  std::uint64_t offset = 0;  // first byte that is not part of a valid record
  GlobalPosition position;   // the position a record at `offset` should have had
  // kTorn / kCorrupt: one past the last non-zero byte at or after `offset`
  // (so [offset, garbage_end) is what a cut must zero).
  std::uint64_t garbage_end = 0;
  // kCorrupt: the first valid record after the damage (when one was found).
  std::optional<std::uint64_t> next_valid_offset;
  std::optional<GlobalPosition> next_valid_position;
  // kTorn: valid records follow the torn bytes, with a whole zero sector
  // between (a write torn out of order, not as a prefix).
  bool out_of_order = false;
  std::string reason;  // human-readable; names offsets
};

// Walks the records of one segment (the bytes of the whole file, header
// included) from `offset`, checking each record's checksum and that positions
// run densely from `first`. next() yields each valid record; at the first
// invalid byte it stops and stop() says precisely why. Lost markers (written by
// repair) are valid records.
//
// Torn vs corrupt: when the bytes at the stop offset are not a valid record,
// the scanner looks ahead by resynchronising on 8-byte boundaries for a record
// with a valid checksum and a plausible position (>= the expected one, and no
// further than the remaining bytes could hold). Found: kCorrupt, unless a
// whole kSectorSize-aligned sector of zeros lies between the stop and that
// record (a power loss kept a later sector of the last write but not an
// earlier one): kTorn with out_of_order set. Not found: kTorn, unless every
// byte from the stop offset on is zero (kEnd).
class SegmentScanner {
 public:
  SegmentScanner(std::span<const std::byte> segment, GlobalPosition first,
                 std::uint64_t offset = format::kSegmentHeaderSize);
  // The next valid record and its offset; false at the stop.
  bool next(RecordView& view, std::uint64_t& offset);
  // Valid after next() returned false.
  const ScanStop& stop() const { return stop_; }
  // Position the next record must have.
  GlobalPosition next_position() const { return expected_; }

 private:
  void classify(std::uint64_t offset, std::string reason, bool misplaced);

  std::span<const std::byte> bytes_;
  GlobalPosition expected_;
  std::uint64_t offset_;
  bool stopped_ = false;
  ScanStop stop_;
};

// Looks for a record with a valid checksum at an 8-byte-aligned offset in
// [from, segment.size()) whose position lies in [min_position, max_position].
struct FoundRecord {
  std::uint64_t offset;
  GlobalPosition position;
};
std::optional<FoundRecord> find_valid_record(std::span<const std::byte> segment, std::uint64_t from,
                                             GlobalPosition min_position,
                                             GlobalPosition max_position);

// Everything a full scan of a segment learns.
struct SegmentScan {
  std::vector<std::uint32_t> offsets;                   // of every valid record, in position order
  std::uint64_t data_end = format::kSegmentHeaderSize;  // one past the last valid record
  // Records up to and including the last one carrying kFlagCommit, and the
  // offset right after it (kSegmentHeaderSize if none).
  std::uint64_t committed_count = 0;
  std::uint64_t committed_end = format::kSegmentHeaderSize;
  ScanStop stop;
};
SegmentScan scan_segment(std::span<const std::byte> segment, GlobalPosition first);

// ---- Position index (.idx) ----------------------------------------------------
//
// off size field (little-endian)
//  0   8   magic "ANNALPIX"
//  8   4   version (format::kIndexVersion)
// 12   4   reserved, zero
// 16   8   first position (equals the segment's)
// 24   8   count N of records in the segment
// 32   8   data end: offset one past the segment's last record
// 40   8   checksum: XXH3_64bits_withSeed(bytes[48, 48 + 4N), seed = XXH3_64bits(bytes[0, 40)))
// 48  4N   N x u32 record offsets within the segment, in position order
// The file is exactly 48 + 4N bytes.
inline constexpr std::size_t kIndexHeaderSize = 48;

struct PositionIndex {
  GlobalPosition first;
  std::uint64_t data_end = format::kSegmentHeaderSize;
  std::vector<std::uint32_t> offsets;

  bool operator==(const PositionIndex&) const = default;
};

std::string encode_position_index(const PositionIndex& index);
// Validates magic, version, size and checksum, and that offsets are strictly
// increasing, 8-aligned, >= the segment header and < data_end. kCorruption
// naming `file`.
Result<PositionIndex> decode_position_index(std::span<const std::byte> bytes,
                                            const std::string& file);
Result<PositionIndex> read_position_index(FileSystem& fs, const std::string& path);
// Writes dir/<index_file_name(first)> durably: a temporary file, fsync, rename,
// directory fsync. A crash leaves either the old file, the new one or none.
Status write_position_index(FileSystem& fs, const std::string& dir, const PositionIndex& index);

}  // namespace annal::engine
