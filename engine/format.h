#pragma once
// On-disk format constants. The specification is docs/storage-format.md;
// change neither without the other, and bump the version on any change.

#include <cstddef>
#include <cstdint>

namespace annal::engine::format {

// ---- Segment files: <first position, 20 digits>.seg ----
inline constexpr char kSegmentMagic[8] = {'A', 'N', 'N', 'A', 'L', 'S', 'E', 'G'};
// Version 2 segments may hold extended records (kFlagExtended); version 1
// segments, written before extended records existed, are read unchanged and
// never receive one (the writer moves to a new segment first).
inline constexpr std::uint32_t kSegmentVersion = 2;
inline constexpr std::uint32_t kOldestSegmentVersion = 1;
// Version 3: a sealed segment rewritten by a scavenge, which may hold removed
// markers (kFlagRemoved); an older node refuses it by its version instead of
// misreading the flag. Its file may be smaller than the segment size.
inline constexpr std::uint32_t kScavengedSegmentVersion = 3;
inline constexpr std::uint32_t kNewestSegmentVersion = 3;
// The header occupies the first kSegmentHeaderSize bytes; records start right after.
inline constexpr std::size_t kSegmentHeaderSize = 4096;
inline constexpr std::uint64_t kDefaultSegmentSize = 256ull << 20;
inline constexpr std::uint64_t kMinSegmentSize = 64ull << 10;

// ---- Records ----
// off size field
//  0   4   length L (whole record, multiple of 8, >= kRecordMinSize)
//  4   4   flags
//  8   8   checksum: XXH3_64bits_withSeed(bytes[16, L), seed = u64le(bytes[0, 8)))
// 16   8   global position
// 24   8   stream revision
// 32   8   timestamp, microseconds since the Unix epoch (signed)
// 40  16   event id
// 56   2   stream name length S
// 58   2   event type length T
// 60   4   metadata length M
// 64   4   data length D
// 68   ... stream, type, metadata, data,
//          extension (only with kFlagExtended, see below), zero padding
// L-4  4   length L again
//
// The extension of an extended record, right after the data:
//  +0   8   leader epoch (u64; a record without the extension has epoch 0)
//  +8   2   tag count N
// +10   2   correlation id length C
// +12   2   causation id length K
// +14   2   reserved, zero
// +16  2N   tag lengths (u16 each, every tag at least 1 byte)
//  ...      tag bytes (concatenated, sorted bytewise, no duplicates), then
//           the correlation id, then the causation id
inline constexpr std::size_t kRecordFixedSize = 68;
inline constexpr std::size_t kRecordTrailerSize = 4;
inline constexpr std::size_t kRecordMinSize = 72;
inline constexpr std::size_t kRecordAlign = 8;
// The smallest unit a disk writes atomically. A power loss can keep any subset
// of an unsynced write's sectors; recovery recognises a lost one (all zeros,
// as the preallocated bytes were) between valid records as a torn write.
inline constexpr std::size_t kSectorSize = 512;

inline constexpr std::uint32_t kFlagDataJson = 1u << 0;
inline constexpr std::uint32_t kFlagMetadataJson = 1u << 1;
// Set on the last record of every append: an append is complete iff its last
// record carries it. Recovery cuts trailing records after the last commit flag.
inline constexpr std::uint32_t kFlagCommit = 1u << 2;
// A marker written by `annal repair` in place of a damaged span: this position
// was lost. Carries no data.
inline constexpr std::uint32_t kFlagLost = 1u << 3;
// The record carries the extension (leader epoch, tags, correlation and
// causation ids). Written only when one of them is not empty or zero.
inline constexpr std::uint32_t kFlagExtended = 1u << 4;
// A marker a scavenge left in place of an event removed by its stream's
// metadata or deletion: it keeps the position, revision, timestamp, event id,
// stream name and commit flag (so positions stay dense, the stream index and
// retries keep working); type, metadata, data and extension are gone. Only in
// version 3 segments.
inline constexpr std::uint32_t kFlagRemoved = 1u << 5;
inline constexpr std::uint32_t kKnownFlags =
    kFlagDataJson | kFlagMetadataJson | kFlagCommit | kFlagLost | kFlagExtended | kFlagRemoved;
inline constexpr std::size_t kRecordExtFixedSize = 16;

// ---- Position index, beside each sealed segment: <first position>.idx ----
inline constexpr char kIndexMagic[8] = {'A', 'N', 'N', 'A', 'L', 'P', 'I', 'X'};
inline constexpr std::uint32_t kIndexVersion = 1;

inline constexpr std::size_t align_up(std::size_t n, std::size_t a) {
  return (n + a - 1) / a * a;
}
// `ext`: bytes of the extension (0 for a record without it).
inline constexpr std::size_t record_size(std::size_t stream, std::size_t type, std::size_t meta,
                                         std::size_t data, std::size_t ext = 0) {
  return align_up(kRecordFixedSize + stream + type + meta + data + ext + kRecordTrailerSize,
                  kRecordAlign);
}
// Bytes of an extension with `tags` tags of `tag_bytes` bytes in all.
inline constexpr std::size_t extension_size(std::size_t tags, std::size_t tag_bytes,
                                            std::size_t correlation, std::size_t causation) {
  return kRecordExtFixedSize + 2 * tags + tag_bytes + correlation + causation;
}

}  // namespace annal::engine::format
