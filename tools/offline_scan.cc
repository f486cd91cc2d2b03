#include "tools/offline_scan.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "engine/endian.h"
#include "engine/file.h"
#include "engine/format.h"

// Findings and actions are built with designated initializers that leave
// defaulted members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace f = engine::format;
namespace le = engine::le;

const char* idx_state_name(IdxState s) {
  switch (s) {
    case IdxState::kNotExpected:
      return "none";
    case IdxState::kOk:
      return "ok";
    case IdxState::kMissing:
      return "missing";
    case IdxState::kCorrupt:
      return "corrupt";
    case IdxState::kMismatch:
      return "mismatch";
  }
  return "?";
}

const char* finding_kind_name(FindingKind k) {
  switch (k) {
    case FindingKind::kSegmentHeader:
      return "segment-header";
    case FindingKind::kCorruptRecord:
      return "corrupt-record";
    case FindingKind::kSegmentTail:
      return "segment-tail";
    case FindingKind::kTornTail:
      return "torn-tail";
    case FindingKind::kIncompleteAppend:
      return "incomplete-append";
    case FindingKind::kMissingSegment:
      return "missing-segment";
    case FindingKind::kSegmentOverlap:
      return "segment-overlap";
    case FindingKind::kTruncatedSegment:
      return "truncated-segment";
    case FindingKind::kIdxMissing:
      return "idx-missing";
    case FindingKind::kIdxCorrupt:
      return "idx-corrupt";
    case FindingKind::kIdxMismatch:
      return "idx-mismatch";
    case FindingKind::kIdxOrphan:
      return "idx-orphan";
    case FindingKind::kIndexMissing:
      return "index-missing";
    case FindingKind::kIndexCorrupt:
      return "index-corrupt";
    case FindingKind::kIndexMismatch:
      return "index-mismatch";
    case FindingKind::kUnknownFile:
      return "unknown-file";
    case FindingKind::kGroupCorrupt:
      return "group-corrupt";
    case FindingKind::kBackupMismatch:
      return "backup-mismatch";
  }
  return "?";
}

bool is_known_entry(const std::string& name) {
  if (name == "LOCK" || name == "index" || name == "secondary" || name == "groups" ||
      name == "snapshots")
    return true;
  // The stream rules folded from the metadata streams (index/lifecycle.h),
  // and its write a crash interrupted (replaced at the next write).
  if (name == "lifecycle" || name == "lifecycle.tmp") return true;
  // A backup's manifest (index/backup_manifest.h): `annal verify` on a
  // backup checks every file against it (check_backup_manifest).
  if (name == "MANIFEST") return true;
  // A scavenge's rewrite a crash interrupted before its switch; the node
  // removes it at open (docs/storage-format.md, "Scavenged segments").
  if (name.ends_with(".seg.scavenge.tmp") &&
      engine::parse_segment_file_name(name.substr(0, name.size() - 13)))
    return true;
  // The next segment, zero-filled ahead of use by the node (engine/log.cc).
  if (name == "spare.seg.tmp") return true;
  if (name.rfind("repair-backup-", 0) == 0) return true;
  if (engine::parse_segment_file_name(name) || engine::parse_index_file_name(name)) return true;
  // A position index write a crash interrupted; the node removes it at open.
  if (name.size() > 8 && name.ends_with(".idx.tmp") &&
      engine::parse_index_file_name(name.substr(0, name.size() - 4)))
    return true;
  return false;
}

namespace {

struct TailStop {
  bool valid_follows = false;  // not a tail
  std::uint64_t offset = 0;
  std::uint64_t garbage_end = 0;
  GlobalPosition position;
  std::string reason;
};

// Reads what a damaged span still seems to say about the records it held.
std::vector<std::string> guess_span(std::span<const std::byte> b, std::uint64_t off,
                                    std::uint64_t limit, GlobalPosition pos, GlobalPosition end) {
  std::vector<std::string> out;
  limit = std::min<std::uint64_t>(limit, b.size());
  while (pos < end && off + f::kRecordMinSize <= limit) {
    const std::byte* p = b.data() + off;
    const std::uint32_t len = le::get_u32(p);
    if (len < f::kRecordMinSize || len % f::kRecordAlign != 0 || off + len > limit) break;
    const std::uint64_t rec_pos = le::get_u64(p + 16);
    const std::uint16_t s = le::get_u16(p + 56);
    if (rec_pos == pos.value && f::kRecordFixedSize + s <= len) {
      std::string_view stream(reinterpret_cast<const char*>(p + f::kRecordFixedSize), s);
      out.push_back(fmt::format("{}:{}@{}", pos.value, stream, le::get_u64(p + 24)));
    }
    off += len;
    pos = pos.next();
  }
  return out;
}

struct Scanned {
  SegmentSurvey seg;
  TailStop tail;
};

Scanned scan_one(const std::string& dir, const std::string& name, GlobalPosition name_first,
                 const SurveyOptions& opt, std::uint64_t& bytes_done, std::uint64_t bytes_total) {
  Scanned out;
  SegmentSurvey& s = out.seg;
  s.file = name;
  s.path = dir + "/" + name;
  s.name_first = name_first;
  s.first = name_first;
  s.end = name_first;
  s.data_end = f::kSegmentHeaderSize;
  s.committed_end = f::kSegmentHeaderSize;
  out.tail.position = name_first;
  out.tail.offset = f::kSegmentHeaderSize;
  out.tail.garbage_end = f::kSegmentHeaderSize;

  auto& fs = engine::FileSystem::posix();
  auto file = fs.open(s.path, engine::OpenOptions{.read_only = true});
  if (!file) {
    s.header_error = file.status().message();
    return out;
  }
  auto size = (*file)->size();
  if (!size) {
    s.header_error = size.status().message();
    return out;
  }
  s.file_size = *size;
  // The whole file is read into one reused buffer with plain sequential
  // reads: on this kind of disk, page faults on a map (even with
  // MADV_SEQUENTIAL / MADV_WILLNEED) reached only ~60% of their speed.
  thread_local std::unique_ptr<std::byte[]> buf;
  thread_local std::uint64_t buf_size = 0;
  if (buf_size < s.file_size) {
    buf.reset(new std::byte[s.file_size]);
    buf_size = s.file_size;
  }
  std::span<const std::byte> b(buf.get(), s.file_size);
  {
    const int fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      s.header_error = fmt::format("open {}: {}", s.path, std::strerror(errno));
      return out;
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    constexpr std::uint64_t kChunk = 1u << 20;
    std::uint64_t at = 0;
    while (at < s.file_size) {
      const ssize_t n = ::read(fd, buf.get() + at, std::min(kChunk, s.file_size - at));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      at += static_cast<std::uint64_t>(n);
      if (opt.on_progress && at % (16u << 20) == 0) opt.on_progress(bytes_done + at, bytes_total);
    }
    ::close(fd);
    if (at < s.file_size) {
      s.header_error = fmt::format("read {}: only {} of {} bytes", s.path, at, s.file_size);
      return out;
    }
  }

  auto header = engine::decode_segment_header(
      b.first(std::min<std::size_t>(b.size(), f::kSegmentHeaderSize)), name);
  if (header) {
    s.header = *header;
    s.header_ok = true;
    if (header->first != name_first) {
      s.header_ok = false;
      s.header_error =
          fmt::format("segment {}: header says first position {}, the file name says {}", name,
                      header->first.value, name_first.value);
    }
  } else {
    s.header_error = header.status().message();
  }

  if (b.size() <= f::kSegmentHeaderSize) {
    bytes_done += s.file_size;
    return out;
  }

  GlobalPosition pos = name_first;
  std::uint64_t off = f::kSegmentHeaderSize;

  bool any_real = false;
  for (;;) {
    engine::SegmentScanner sc(b, pos, off);
    engine::RecordView v;
    std::uint64_t at = 0;
    while (sc.next(v, at)) {
      s.offsets.push_back(static_cast<std::uint32_t>(at));
      ++s.records;
      s.data_end = at + v.size;
      if (v.flags & f::kFlagLost) {
        ++s.lost_markers;
      } else {
        if (!any_real) s.first_ts = v.timestamp_us;
        s.last_ts = v.timestamp_us;
        any_real = true;
      }
      if (v.flags & (f::kFlagCommit | f::kFlagLost)) {
        s.committed_end = s.data_end;
        s.uncommitted_records = 0;
      } else {
        ++s.uncommitted_records;
      }
      if (opt.on_record) opt.on_record(s, at, v);
    }
    const engine::ScanStop& st = sc.stop();
    pos = sc.next_position();
    if (st.kind == engine::ScanStopKind::kCorrupt && st.next_valid_offset) {
      DamagedSpan span;
      span.offset = st.offset;
      span.garbage_end = *st.next_valid_offset;
      span.first = st.position;
      span.end = *st.next_valid_position;
      span.reason = st.reason;
      span.guesses = guess_span(b, span.offset, span.garbage_end, span.first, span.end);
      s.spans.push_back(std::move(span));
      // Lost positions count as accounted for: repair writes markers for them.
      s.uncommitted_records = 0;
      off = *st.next_valid_offset;
      pos = *st.next_valid_position;
      continue;
    }
    out.tail.offset = st.offset;
    out.tail.position = st.position;
    out.tail.garbage_end =
        st.kind == engine::ScanStopKind::kEnd ? st.offset : std::max(st.garbage_end, st.offset);
    out.tail.reason = st.reason;
    break;
  }
  s.end = pos;
  bytes_done += s.file_size;
  return out;
}

}  // namespace

Result<DirectorySurvey> survey_directory(const std::string& dir, const SurveyOptions& opt) {
  auto& fs = engine::FileSystem::posix();
  DirectorySurvey d;
  d.dir = dir;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status(Errc::kNotFound, fmt::format("{}: not a directory", dir));
  auto names = fs.list(dir);
  if (!names) return names.status();
  std::sort(names->begin(), names->end());

  std::map<std::uint64_t, std::string> segs;
  std::set<std::uint64_t> idxs;
  for (const auto& n : *names) {
    if (auto p = engine::parse_segment_file_name(n)) {
      segs.emplace(p->value, n);
    } else if (auto q = engine::parse_index_file_name(n)) {
      idxs.insert(q->value);
    } else if (n == "index") {
      d.has_stream_index = true;
    } else if (n == "lifecycle") {
      d.has_lifecycle = true;
    } else if (n == "secondary") {
      d.has_secondary_index = true;
    } else if (!is_known_entry(n)) {
      d.unknown_files.push_back(n);
    }
  }
  if (!opt.only_segment.empty()) {
    auto p = engine::parse_segment_file_name(opt.only_segment);
    if (!p || !segs.count(p->value))
      return Status(Errc::kNotFound, fmt::format("{}: no segment {}", dir, opt.only_segment));
    std::string keep = segs[p->value];
    segs.clear();
    segs.emplace(p->value, keep);
  }

  std::uint64_t total = 0;
  for (const auto& [first, name] : segs) {
    struct stat fst {};
    if (::stat((dir + "/" + name).c_str(), &fst) == 0)
      total += static_cast<std::uint64_t>(fst.st_size);
  }

  std::uint64_t done = 0;
  std::vector<TailStop> tails;
  for (auto it = segs.begin(); it != segs.end(); ++it) {
    const auto& [first, name] = *it;
    // Let the kernel read the next segment while this one is checksummed.
    if (auto nx = std::next(it); nx != segs.end()) {
      const int fd = ::open((dir + "/" + nx->second).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
        ::close(fd);
      }
    }
    Scanned sc = scan_one(dir, name, GlobalPosition(first), opt, done, total);
    tails.push_back(sc.tail);
    d.segments.push_back(std::move(sc.seg));
    if (opt.on_progress) opt.on_progress(done, total);
  }
  d.bytes_scanned = done;
  if (!d.segments.empty()) d.segments.back().last = true;

  auto add = [&](Finding fnd) { d.findings.push_back(std::move(fnd)); };

  for (std::size_t i = 0; i < d.segments.size(); ++i) {
    SegmentSurvey& s = d.segments[i];
    const TailStop& t = tails[i];
    d.records += s.records;
    d.lost_markers += s.lost_markers;
    const bool single = !opt.only_segment.empty();

    if (i == 0 && !single && s.name_first.value > 0) {
      add(Finding{
          .kind = FindingKind::kMissingSegment,
          .file = engine::segment_file_name(GlobalPosition(0)),
          .first = GlobalPosition(0),
          .end = s.name_first,
          .detail = fmt::format("no segment holds positions [0, {}): the log's first segment is {}",
                                s.name_first.value, s.file)});
    }
    if (!s.header_ok) {
      add(Finding{
          .kind = FindingKind::kSegmentHeader,
          .file = s.file,
          .offset = 0,
          .bytes = std::min<std::uint64_t>(s.file_size, f::kSegmentHeaderSize),
          .detail = s.header_error +
                    (s.records > 0 ? fmt::format("; its {} records are intact (positions from {})",
                                                 s.records, s.first.value)
                                   : std::string("; no valid record follows it"))});
    }
    if (s.header_ok && s.file_size < s.header.allocated_size) {
      add(Finding{.kind = FindingKind::kTruncatedSegment,
                  .file = s.file,
                  .offset = s.file_size,
                  .bytes = s.header.allocated_size - s.file_size,
                  .detail = fmt::format("the file has {} bytes, its header says {} were allocated",
                                        s.file_size, s.header.allocated_size)});
    }
    for (const auto& span : s.spans) {
      const std::uint64_t need = (span.end.value - span.first.value) * f::kRecordMinSize;
      const bool room = span.garbage_end - span.offset >= need;
      add(Finding{
          .kind = FindingKind::kCorruptRecord,
          .file = s.file,
          .offset = span.offset,
          .bytes = span.garbage_end - span.offset,
          .first = span.first,
          .end = span.end,
          .detail = span.reason +
                    (room ? "" : "; the span is too small to hold a lost marker per position"),
          .guesses = span.guesses,
          .repairable = room});
    }

    if (s.last || single) {
      // The end of the log: a torn tail and an incomplete append are cut.
      if (t.garbage_end > t.offset) {
        DamagedSpan tail;
        tail.offset = t.offset;
        tail.garbage_end = t.garbage_end;
        tail.first = t.position;
        tail.end = t.position;
        tail.reason = t.reason;
        tail.guesses = guess_span({}, 0, 0, t.position, t.position);
        s.torn_tail = tail;
        if (!single)
          add(Finding{.kind = FindingKind::kTornTail,
                      .file = s.file,
                      .offset = t.offset,
                      .bytes = t.garbage_end - t.offset,
                      .first = t.position,
                      .detail = t.reason +
                                "; nothing after it was acknowledged unless a later append was"});
      }
      if (s.uncommitted_records > 0 && !single) {
        add(Finding{
            .kind = FindingKind::kIncompleteAppend,
            .file = s.file,
            .offset = s.committed_end,
            .bytes = s.data_end - s.committed_end,
            .first = GlobalPosition(s.end.value - s.uncommitted_records),
            .end = s.end,
            .detail = fmt::format("{} record(s) after the last commit flag: an append that never "
                                  "completed (never acknowledged)",
                                  s.uncommitted_records)});
      }
    } else {
      const SegmentSurvey& nx = d.segments[i + 1];
      const GlobalPosition F = nx.name_first;
      const GlobalPosition P = t.position;
      const bool garbage = t.garbage_end > t.offset;
      const bool truncated = s.header_ok && s.file_size < s.header.allocated_size;
      if (P < F && (garbage || truncated || s.header_ok == false)) {
        DamagedSpan span;
        span.offset = t.offset;
        span.garbage_end = t.garbage_end;
        span.first = P;
        span.end = F;
        span.at_segment_end = true;
        span.reason = garbage
                          ? t.reason
                          : fmt::format(
                                "segment ends at offset {} (file {} of {} allocated bytes): "
                                "positions [{}, {}) are not in it",
                                t.offset, s.file_size, s.header.allocated_size, P.value, F.value);
        {
          const std::uint64_t limit = garbage ? t.garbage_end : t.offset;
          (void)limit;
        }
        s.spans.push_back(span);
        s.end = F;
        add(Finding{.kind = FindingKind::kSegmentTail,
                    .file = s.file,
                    .offset = t.offset,
                    .bytes = t.garbage_end - t.offset,
                    .first = P,
                    .end = F,
                    .detail = span.reason});
      } else if (P < F) {
        add(Finding{.kind = FindingKind::kMissingSegment,
                    .file = engine::segment_file_name(P),
                    .first = P,
                    .end = F,
                    .detail = fmt::format(
                        "no segment holds positions [{}, {}): {} ends cleanly at {}, the next "
                        "segment {} starts at {}",
                        P.value, F.value, s.file, P.value, nx.file, F.value)});
      } else if (P == F && garbage) {
        DamagedSpan span;
        span.offset = t.offset;
        span.garbage_end = t.garbage_end;
        span.first = P;
        span.end = P;
        span.at_segment_end = true;
        span.reason = t.reason;
        s.spans.push_back(span);
        add(Finding{
            .kind = FindingKind::kSegmentTail,
            .file = s.file,
            .offset = t.offset,
            .bytes = t.garbage_end - t.offset,
            .first = P,
            .end = P,
            .detail = t.reason + "; no position is lost (the next segment starts right after)"});
      } else if (P > F) {
        add(Finding{.kind = FindingKind::kSegmentOverlap,
                    .file = nx.file,
                    .first = F,
                    .end = P,
                    .detail = fmt::format(
                        "{} starts at position {} but {} already holds positions up to {}", nx.file,
                        F.value, s.file, P.value - 1),
                    .repairable = false});
      }
    }

    // Position index.
    const std::string idx_name = engine::index_file_name(s.name_first);
    s.idx_present = idxs.count(s.name_first.value) > 0;
    if (s.idx_present) idxs.erase(s.name_first.value);
    const bool expected = !s.last;
    const bool damaged = !s.spans.empty() || !s.header_ok || s.torn_tail;
    if (s.idx_present) {
      auto idx = engine::read_position_index(engine::FileSystem::posix(), dir + "/" + idx_name);
      if (!idx) {
        s.idx = IdxState::kCorrupt;
        s.idx_detail = idx.status().message();
      } else if (idx->first != s.name_first) {
        s.idx = IdxState::kMismatch;
        s.idx_detail = fmt::format("{} says first position {}", idx_name, idx->first.value);
      } else if (!damaged && (idx->offsets != s.offsets || idx->data_end != s.data_end)) {
        s.idx = IdxState::kMismatch;
        std::size_t k = 0;
        while (k < idx->offsets.size() && k < s.offsets.size() && idx->offsets[k] == s.offsets[k])
          ++k;
        s.idx_detail = fmt::format(
            "{} lists {} records ending at offset {}; the segment has {} ending at {} (first "
            "difference at "
            "position {})",
            idx_name, idx->offsets.size(), idx->data_end, s.offsets.size(), s.data_end,
            s.name_first.value + k);
      } else {
        s.idx = IdxState::kOk;
      }
    } else {
      s.idx = expected ? IdxState::kMissing : IdxState::kNotExpected;
      if (expected) s.idx_detail = fmt::format("sealed segment {} has no {}", s.file, idx_name);
    }
    if (s.idx == IdxState::kCorrupt)
      add(Finding{.kind = FindingKind::kIdxCorrupt, .file = idx_name, .detail = s.idx_detail});
    else if (s.idx == IdxState::kMismatch)
      add(Finding{.kind = FindingKind::kIdxMismatch,
                  .file = idx_name,
                  .first = s.first,
                  .end = s.end,
                  .detail = s.idx_detail});
    else if (s.idx == IdxState::kMissing && !single)
      add(Finding{.kind = FindingKind::kIdxMissing,
                  .file = idx_name,
                  .first = s.first,
                  .end = s.end,
                  .detail = s.idx_detail});
  }
  if (opt.only_segment.empty()) {
    for (auto first : idxs) {
      const std::string n = engine::index_file_name(GlobalPosition(first));
      d.orphan_idx.push_back(n);
      add(Finding{.kind = FindingKind::kIdxOrphan,
                  .file = n,
                  .detail = fmt::format("{} has no segment {}", n,
                                        engine::segment_file_name(GlobalPosition(first)))});
    }
    for (const auto& n : d.unknown_files)
      add(Finding{.kind = FindingKind::kUnknownFile,
                  .file = n,
                  .detail = fmt::format("{} is not a file annal writes", n)});
  }
  if (!d.segments.empty()) d.end = d.segments.back().end;
  return d;
}

}  // namespace annal::tools
