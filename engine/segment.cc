#include "engine/segment.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

#include "engine/endian.h"

namespace annal::engine {

namespace f = format;

namespace {

std::string numbered_name(GlobalPosition first, std::string_view ext) {
  return fmt::format("{:020d}{}", first.value, ext);
}

std::optional<GlobalPosition> parse_numbered(std::string_view name, std::string_view ext) {
  if (name.size() != 20 + ext.size() || name.substr(20) != ext) return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return GlobalPosition(v);
}

bool all_zero(std::span<const std::byte> b) {
  std::size_t i = 0;
  const std::byte* p = b.data();
  for (; i + 8 <= b.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != 0) return false;
  }
  for (; i < b.size(); ++i)
    if (p[i] != std::byte{0}) return false;
  return true;
}

// One past the last non-zero byte in b (0 if all zero).
std::size_t nonzero_end(std::span<const std::byte> b) {
  std::size_t n = b.size();
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, b.data() + n - 8, 8);
    if (w != 0) break;
    n -= 8;
  }
  while (n > 0 && b[n - 1] == std::byte{0}) --n;
  return n;
}

// The first kSectorSize-aligned sector that ends in (from, to] and holds only
// zeros from `from` (or its start) on. Bytes before `from` belong to valid
// records: when a write starting mid-sector loses that sector, the disk keeps
// the sector's old content, whose part after `from` was zeros.
std::optional<std::uint64_t> lost_sector(std::span<const std::byte> b, std::uint64_t from,
                                         std::uint64_t to) {
  to = std::min<std::uint64_t>(to, b.size());
  for (std::uint64_t s = from - from % f::kSectorSize; s + f::kSectorSize <= to;
       s += f::kSectorSize) {
    const std::uint64_t zero_from = std::max(s, from);
    if (all_zero(b.subspan(zero_from, s + f::kSectorSize - zero_from))) return s;
  }
  return std::nullopt;
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

std::string segment_file_name(GlobalPosition first) {
  return numbered_name(first, ".seg");
}
std::string index_file_name(GlobalPosition first) {
  return numbered_name(first, ".idx");
}
std::optional<GlobalPosition> parse_segment_file_name(std::string_view name) {
  return parse_numbered(name, ".seg");
}
std::optional<GlobalPosition> parse_index_file_name(std::string_view name) {
  return parse_numbered(name, ".idx");
}

// ---- Header ----

std::string encode_segment_header(const SegmentHeader& h) {
  std::string out(f::kSegmentHeaderSize, '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  std::memcpy(p, f::kSegmentMagic, 8);
  le::put_u32(p + 8, h.version);
  le::put_u32(p + 12, static_cast<std::uint32_t>(f::kSegmentHeaderSize));
  le::put_u64(p + 16, h.first.value);
  le::put_u64(p + 24, h.allocated_size);
  le::put_u64(p + 32, static_cast<std::uint64_t>(h.created_us));
  le::put_u64(p + kSegmentHeaderChecksumOffset, XXH3_64bits(p, kSegmentHeaderChecksumOffset));
  return out;
}

Result<SegmentHeader> decode_segment_header(std::span<const std::byte> bytes,
                                            const std::string& file) {
  auto bad = [&](const std::string& why) {
    return Status(Errc::kCorruption, fmt::format("segment {}: header: {}", file, why));
  };
  if (bytes.size() < f::kSegmentHeaderSize)
    return bad(fmt::format("only {} of {} bytes present", bytes.size(), f::kSegmentHeaderSize));
  const std::byte* p = bytes.data();
  if (std::memcmp(p, f::kSegmentMagic, 8) != 0) return bad("bad magic (expected ANNALSEG)");
  const std::uint64_t stored = le::get_u64(p + kSegmentHeaderChecksumOffset);
  const std::uint64_t computed = XXH3_64bits(p, kSegmentHeaderChecksumOffset);
  if (stored != computed)
    return bad(
        fmt::format("checksum mismatch: stored {:016x}, computed {:016x}", stored, computed));
  SegmentHeader h;
  h.version = le::get_u32(p + 8);
  if (h.version < f::kOldestSegmentVersion || h.version > f::kNewestSegmentVersion)
    return bad(fmt::format("unsupported version {} (this build reads {} to {})", h.version,
                           f::kOldestSegmentVersion, f::kNewestSegmentVersion));
  const std::uint32_t hs = le::get_u32(p + 12);
  if (hs != f::kSegmentHeaderSize)
    return bad(fmt::format("header size {} (expected {})", hs, f::kSegmentHeaderSize));
  h.first = GlobalPosition(le::get_u64(p + 16));
  h.allocated_size = le::get_u64(p + 24);
  h.created_us = static_cast<std::int64_t>(le::get_u64(p + 32));
  if (!all_zero(bytes.subspan(48, f::kSegmentHeaderSize - 48)))
    return bad("reserved bytes are not zero");
  if (h.allocated_size < f::kSegmentHeaderSize)
    return bad(fmt::format("allocated size {} is smaller than the header", h.allocated_size));
  return h;
}

Result<SegmentHeader> read_segment_header(File& file) {
  std::string buf(f::kSegmentHeaderSize, '\0');
  auto size = file.size();
  if (!size) return size.status();
  if (*size < f::kSegmentHeaderSize)
    return Status(Errc::kCorruption,
                  fmt::format("segment {}: header: file is only {} bytes", file.path(), *size));
  ANNAL_RETURN_IF_ERROR(
      file.pread(0, std::span<std::byte>(reinterpret_cast<std::byte*>(buf.data()), buf.size())));
  return decode_segment_header(as_bytes(buf), file.path());
}

// ---- Scanner ----

const char* scan_stop_kind_name(ScanStopKind k) {
  switch (k) {
    case ScanStopKind::kEnd:
      return "end";
    case ScanStopKind::kTorn:
      return "torn";
    case ScanStopKind::kCorrupt:
      return "corrupt";
  }
  return "?";
}

std::optional<FoundRecord> find_valid_record(std::span<const std::byte> segment, std::uint64_t from,
                                             GlobalPosition min_position,
                                             GlobalPosition max_position) {
  std::uint64_t off = f::align_up(from, f::kRecordAlign);
  const std::uint64_t size = segment.size();
  for (; off + f::kRecordMinSize <= size; off += f::kRecordAlign) {
    const std::byte* p = segment.data() + off;
    const std::uint32_t len = le::get_u32(p);
    if (len < f::kRecordMinSize || len % f::kRecordAlign != 0 || len > size - off) continue;
    if (le::get_u32(p + len - 4) != len) continue;
    const std::uint64_t pos = le::get_u64(p + 16);
    if (pos < min_position.value || pos > max_position.value) continue;
    DecodeResult r = decode(segment.subspan(off, len));
    if (r.outcome == DecodeOutcome::kOk) return FoundRecord{off, r.view.position};
  }
  return std::nullopt;
}

SegmentScanner::SegmentScanner(std::span<const std::byte> segment, GlobalPosition first,
                               std::uint64_t offset)
    : bytes_(segment), expected_(first), offset_(offset) {}

bool SegmentScanner::next(RecordView& view, std::uint64_t& offset) {
  if (stopped_) return false;
  if (offset_ > bytes_.size()) {
    classify(offset_, "offset beyond the end of the segment", false);
    return false;
  }
  DecodeResult r = decode(bytes_.subspan(offset_));
  if (r.outcome == DecodeOutcome::kOk) {
    if (r.view.position != expected_) {
      classify(offset_,
               fmt::format("record at offset {} has position {}, expected {}", offset_,
                           r.view.position.value, expected_.value),
               true);
      return false;
    }
    view = r.view;
    offset = offset_;
    offset_ += r.view.size;
    expected_ = expected_.next();
    return true;
  }
  classify(offset_, fmt::format("at offset {}: {}", offset_, r.reason), false);
  return false;
}

void SegmentScanner::classify(std::uint64_t offset, std::string reason, bool misplaced) {
  stopped_ = true;
  stop_.offset = offset;
  stop_.position = expected_;
  const auto rest = offset < bytes_.size() ? bytes_.subspan(offset) : std::span<const std::byte>();
  stop_.garbage_end = offset + nonzero_end(rest);
  if (!misplaced && stop_.garbage_end == offset) {
    stop_.kind = ScanStopKind::kEnd;
    stop_.reason = fmt::format("end of records at offset {}", offset);
    return;
  }
  // At most this many records fit in what remains: bounds a plausible position.
  const std::uint64_t fit = rest.size() / f::kRecordMinSize;
  auto found = find_valid_record(bytes_, offset + f::kRecordAlign, expected_, expected_ + fit);
  const std::optional<std::uint64_t> lost =
      found && !misplaced ? lost_sector(bytes_, offset, found->offset) : std::nullopt;
  if (lost && found->position > expected_) {
    // What a power loss leaves when a disk persisted a later sector of the
    // last write but not an earlier one: the lost sector reads as the zeros
    // that were there before. Bit rot never zeroes a whole aligned sector.
    stop_.kind = ScanStopKind::kTorn;
    stop_.out_of_order = true;
    reason += fmt::format(
        "; the {}-byte sector at offset {} holds only zeros from offset {} on, and a valid "
        "record (position {}) follows at offset {}: a write torn out of order (torn tail of {} "
        "bytes)",
        f::kSectorSize, *lost, std::max(*lost, offset), found->position.value, found->offset,
        stop_.garbage_end - offset);
  } else if (found || misplaced) {
    stop_.kind = ScanStopKind::kCorrupt;
    if (found) {
      stop_.next_valid_offset = found->offset;
      stop_.next_valid_position = found->position;
      reason += fmt::format("; a valid record (position {}) follows at offset {}",
                            found->position.value, found->offset);
    }
  } else {
    stop_.kind = ScanStopKind::kTorn;
    reason += fmt::format("; no valid record follows (torn tail of {} bytes)",
                          stop_.garbage_end - offset);
  }
  stop_.reason = std::move(reason);
}

SegmentScan scan_segment(std::span<const std::byte> segment, GlobalPosition first) {
  SegmentScan s;
  SegmentScanner sc(segment, first);
  RecordView v;
  std::uint64_t off = 0;
  while (sc.next(v, off)) {
    s.offsets.push_back(static_cast<std::uint32_t>(off));
    s.data_end = off + v.size;
    if (v.flags & f::kFlagCommit) {
      s.committed_count = s.offsets.size();
      s.committed_end = s.data_end;
    }
  }
  s.stop = sc.stop();
  return s;
}

// ---- Position index ----

std::string encode_position_index(const PositionIndex& index) {
  std::string out(kIndexHeaderSize + 4 * index.offsets.size(), '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  std::memcpy(p, f::kIndexMagic, 8);
  le::put_u32(p + 8, f::kIndexVersion);
  le::put_u64(p + 16, index.first.value);
  le::put_u64(p + 24, index.offsets.size());
  le::put_u64(p + 32, index.data_end);
  for (std::size_t i = 0; i < index.offsets.size(); ++i)
    le::put_u32(p + kIndexHeaderSize + 4 * i, index.offsets[i]);
  const std::uint64_t seed = XXH3_64bits(p, 40);
  le::put_u64(p + 40,
              XXH3_64bits_withSeed(p + kIndexHeaderSize, out.size() - kIndexHeaderSize, seed));
  return out;
}

Result<PositionIndex> decode_position_index(std::span<const std::byte> bytes,
                                            const std::string& file) {
  auto bad = [&](const std::string& why) {
    return Status(Errc::kCorruption, fmt::format("position index {}: {}", file, why));
  };
  if (bytes.size() < kIndexHeaderSize) return bad(fmt::format("only {} bytes", bytes.size()));
  const std::byte* p = bytes.data();
  if (std::memcmp(p, f::kIndexMagic, 8) != 0) return bad("bad magic (expected ANNALPIX)");
  const std::uint32_t version = le::get_u32(p + 8);
  if (version != f::kIndexVersion) return bad(fmt::format("unsupported version {}", version));
  const std::uint64_t count = le::get_u64(p + 24);
  if (count > (bytes.size() - kIndexHeaderSize) / 4 || kIndexHeaderSize + 4 * count != bytes.size())
    return bad(fmt::format("count {} does not match file size {}", count, bytes.size()));
  const std::uint64_t stored = le::get_u64(p + 40);
  const std::uint64_t computed = XXH3_64bits_withSeed(
      p + kIndexHeaderSize, bytes.size() - kIndexHeaderSize, XXH3_64bits(p, 40));
  if (stored != computed)
    return bad(
        fmt::format("checksum mismatch: stored {:016x}, computed {:016x}", stored, computed));
  if (le::get_u32(p + 12) != 0) return bad("reserved field is not zero");
  PositionIndex idx;
  idx.first = GlobalPosition(le::get_u64(p + 16));
  idx.data_end = le::get_u64(p + 32);
  idx.offsets.resize(count);
  std::uint64_t prev = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint32_t o = le::get_u32(p + kIndexHeaderSize + 4 * i);
    if (o < f::kSegmentHeaderSize || o % f::kRecordAlign != 0 ||
        (i > 0 && o < prev + f::kRecordMinSize) || o + f::kRecordMinSize > idx.data_end)
      return bad(fmt::format("entry {} has implausible offset {}", i, o));
    idx.offsets[i] = o;
    prev = o;
  }
  if (count == 0 && idx.data_end != f::kSegmentHeaderSize)
    return bad(fmt::format("no records but data end {}", idx.data_end));
  return idx;
}

Result<PositionIndex> read_position_index(FileSystem& fs, const std::string& path) {
  auto file = fs.open(path, OpenOptions{.read_only = true});
  if (!file) return file.status();
  auto size = (*file)->size();
  if (!size) return size.status();
  std::string buf(*size, '\0');
  ANNAL_RETURN_IF_ERROR((*file)->pread(
      0, std::span<std::byte>(reinterpret_cast<std::byte*>(buf.data()), buf.size())));
  return decode_position_index(as_bytes(buf), path);
}

Status write_position_index(FileSystem& fs, const std::string& dir, const PositionIndex& index) {
  const std::string final_path = dir + "/" + index_file_name(index.first);
  const std::string tmp_path = final_path + ".tmp";
  if (fs.exists(tmp_path)) ANNAL_RETURN_IF_ERROR(fs.remove(tmp_path));
  const std::string bytes = encode_position_index(index);
  {
    auto file = fs.open(tmp_path, OpenOptions{.create = true, .exclusive = true});
    if (!file) return file.status();
    ANNAL_RETURN_IF_ERROR((*file)->pwrite(0, as_bytes(bytes)));
    ANNAL_RETURN_IF_ERROR((*file)->sync());
  }
  ANNAL_RETURN_IF_ERROR(fs.rename(tmp_path, final_path));
  return fs.sync_dir(dir);
}

}  // namespace annal::engine
