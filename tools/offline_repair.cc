// annal repair: plan from a verify, then (with --apply) back up every byte
// that changes, fix in place, and verify again.
//
// Lost markers: a damaged span of S bytes (S a multiple of 8) that held k
// positions is overwritten by k valid records flagged kFlagLost, one per
// position, so positions stay dense and every intact record stays where it
// was. Each marker is the minimal 72-byte record (no stream, type or data);
// the last one absorbs the slack S - 72k as zero metadata bytes, so any span
// of at least 72k bytes can be filled exactly. A span never holds fewer bytes
// than that, because the k records it once held took at least 72 bytes each.

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "engine/file.h"
#include "engine/format.h"
#include "engine/record.h"
#include "engine/segment.h"
#include "tools/offline.h"

// Findings and actions are built with designated initializers that leave
// defaulted members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace f = engine::format;
namespace stdfs = std::filesystem;

const char* repair_action_name(RepairAction::Kind k) {
  using K = RepairAction::Kind;
  switch (k) {
    case K::kRebuildHeader:
      return "rebuild-header";
    case K::kFillLost:
      return "fill-lost";
    case K::kCutTail:
      return "cut-tail";
    case K::kCreateSegment:
      return "create-segment";
    case K::kRestoreSize:
      return "restore-size";
    case K::kRewriteIdx:
      return "rewrite-idx";
    case K::kMoveAside:
      return "move-aside";
    case K::kDropStreamIndex:
      return "drop-stream-index";
  }
  return "?";
}

std::string repair_action_text(const RepairAction& a) {
  using K = RepairAction::Kind;
  std::string s = fmt::format("{} {}", repair_action_name(a.kind), a.file);
  switch (a.kind) {
    case K::kFillLost:
      s += fmt::format(" bytes=[{},{}) positions=[{},{})", a.offset, a.end, a.first.value,
                       a.first.value + a.count);
      break;
    case K::kCutTail:
      s += fmt::format(" bytes=[{},{})", a.offset, a.end);
      break;
    case K::kRestoreSize:
      s += fmt::format(" size={}->{}", a.offset, a.end);
      break;
    case K::kCreateSegment:
      s += fmt::format(" positions=[{},{})", a.first.value, a.first.value + a.count);
      break;
    default:
      break;
  }
  return s + ": " + a.why;
}

namespace {

std::uint64_t align8(std::uint64_t n) {
  return f::align_up(n, f::kRecordAlign);
}

void add_lost(RepairPlan& plan, GlobalPosition a, GlobalPosition b) {
  if (a >= b) return;
  if (!plan.lost.empty() && plan.lost.back().second == a)
    plan.lost.back().second = b;
  else
    plan.lost.emplace_back(a, b);
}

}  // namespace

RepairPlan plan_repair(const VerifyReport& report) {
  using K = RepairAction::Kind;
  RepairPlan plan;
  const DirectorySurvey& d = report.survey;
  bool log_changed = false;
  bool cuts_log_end = false;  // the last segment's tail is cut: the stream index may be ahead
  for (const Finding& fd : d.findings) {
    if (!fd.repairable) plan.unrepairable.push_back(fd);
    if (fd.kind == FindingKind::kMissingSegment && fd.first && fd.end) {
      plan.actions.push_back(
          RepairAction{.kind = K::kCreateSegment,
                       .file = fd.file,
                       .first = *fd.first,
                       .count = fd.end->value - fd.first->value,
                       .why = "a segment of lost markers keeps positions dense"});
    }
  }
  // Segment-level actions, in log order.
  std::vector<std::pair<std::uint64_t, RepairAction>> ordered;
  for (const RepairAction& a : plan.actions) ordered.emplace_back(a.first.value, a);
  plan.actions.clear();
  for (const SegmentSurvey& s : d.segments) {
    std::vector<RepairAction> acts;
    bool changed = false;
    if (!s.header_ok) {
      acts.push_back(RepairAction{
          .kind = K::kRebuildHeader,
          .file = s.file,
          .offset = 0,
          .end = f::kSegmentHeaderSize,
          .first = s.name_first,
          .why = "header unreadable (" + s.header_error +
                 "); the original is moved aside whole and a copy with a header rebuilt "
                 "from the file name keeps its intact records"});
      changed = true;
    }
    for (const DamagedSpan& span : s.spans) {
      const std::uint64_t k = span.end.value - span.first.value;
      if (k == 0) {
        acts.push_back(
            RepairAction{.kind = K::kCutTail,
                         .file = s.file,
                         .offset = span.offset,
                         .end = span.garbage_end,
                         .first = span.first,
                         .why = "invalid bytes after the last record of a sealed segment"});
        changed = true;
        continue;
      }
      std::uint64_t end = span.garbage_end;
      if (span.at_segment_end)
        end = std::max(align8(span.garbage_end), span.offset + k * f::kRecordMinSize);
      if (end - span.offset < k * f::kRecordMinSize) continue;  // unrepairable, listed above
      acts.push_back(RepairAction{.kind = K::kFillLost,
                                  .file = s.file,
                                  .offset = span.offset,
                                  .end = end,
                                  .first = span.first,
                                  .count = k,
                                  .why = span.reason});
      add_lost(plan, span.first, span.end);
      for (const auto& g : span.guesses) plan.lost_guesses.push_back(g);
      changed = true;
    }
    if (s.last) {
      std::uint64_t cut_from = UINT64_MAX, cut_to = 0;
      if (s.torn_tail) {
        cut_from = s.torn_tail->offset;
        cut_to = s.torn_tail->garbage_end;
      }
      if (s.uncommitted_records > 0) {
        cut_from = std::min(cut_from, s.committed_end);
        cut_to = std::max(cut_to, s.data_end);
        plan.cut_positions += s.uncommitted_records;
      }
      if (cut_from < cut_to) {
        acts.push_back(RepairAction{
            .kind = K::kCutTail,
            .file = s.file,
            .offset = cut_from,
            .end = cut_to,
            .first = GlobalPosition(s.end.value - s.uncommitted_records),
            .why = s.uncommitted_records > 0
                       ? fmt::format("{} record(s) of an append that never completed{}",
                                     s.uncommitted_records, s.torn_tail ? ", and a torn tail" : "")
                       : "torn tail: invalid bytes after the log's last record"});
        changed = true;
        cuts_log_end = true;
      }
    }
    if (s.header_ok && s.file_size < s.header.allocated_size) {
      acts.push_back(RepairAction{.kind = K::kRestoreSize,
                                  .file = s.file,
                                  .offset = s.file_size,
                                  .end = s.header.allocated_size,
                                  .why = "the node maps a segment's whole allocated size"});
      changed = true;
    }
    const bool idx_bad =
        s.idx == IdxState::kMissing || s.idx == IdxState::kCorrupt || s.idx == IdxState::kMismatch;
    if (!s.last && (changed || idx_bad)) {
      acts.push_back(
          RepairAction{.kind = K::kRewriteIdx,
                       .file = engine::index_file_name(s.name_first),
                       .first = s.name_first,
                       .why = changed ? "the segment changes"
                                      : fmt::format("position index {}", idx_state_name(s.idx))});
    } else if (s.last && s.idx_present && s.idx != IdxState::kOk) {
      acts.push_back(RepairAction{
          .kind = K::kMoveAside,
          .file = engine::index_file_name(s.name_first),
          .why = fmt::format("position index of the active segment is {}", idx_state_name(s.idx))});
    }
    log_changed = log_changed || changed;
    for (auto& a : acts) ordered.emplace_back(s.name_first.value, std::move(a));
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [k, a] : ordered) {
    if (a.kind == K::kCreateSegment) {
      add_lost(plan, a.first, a.first + a.count);
      // A created segment is sealed (a segment follows it): give it a .idx.
      plan.actions.push_back(a);
      plan.actions.push_back(RepairAction{.kind = K::kRewriteIdx,
                                          .file = engine::index_file_name(a.first),
                                          .first = a.first,
                                          .why = "position index of the created segment"});
      continue;
    }
    plan.actions.push_back(std::move(a));
  }
  std::sort(plan.lost.begin(), plan.lost.end());
  for (const auto& n : d.orphan_idx)
    plan.actions.push_back(
        RepairAction{.kind = K::kMoveAside, .file = n, .why = "position index without a segment"});
  for (const auto& n : d.unknown_files)
    plan.actions.push_back(
        RepairAction{.kind = K::kMoveAside, .file = n, .why = "not a file annal writes"});
  bool index_bad = false, secondary_bad = false;
  for (const Finding& fd : d.findings) {
    const bool bad = fd.kind == FindingKind::kIndexMissing ||
                     fd.kind == FindingKind::kIndexCorrupt ||
                     fd.kind == FindingKind::kIndexMismatch;
    if (!bad) continue;
    (fd.file.rfind("secondary/", 0) == 0 ? secondary_bad : index_bad) = true;
  }
  if (index_bad || cuts_log_end)
    plan.actions.push_back(RepairAction{
        .kind = K::kDropStreamIndex,
        .file = "index",
        .why = index_bad ? "the stream index is damaged; the node rebuilds it from the log at open"
                         : "the log's end moves back, below what the stream index may cover; the "
                           "node rebuilds it from the log at open"});
  // The secondary index (category, type, tags, ids) may cover the positions
  // a cut removes, and its MANIFEST would then prove them durable.
  if ((cuts_log_end || secondary_bad) && d.has_secondary_index)
    plan.actions.push_back(RepairAction{
        .kind = K::kDropStreamIndex,
        .file = "secondary",
        .why = secondary_bad ? "the secondary index is damaged; the node rebuilds it from the log "
                               "at open"
                             : "the log's end moves back, below what the secondary index may "
                               "cover; the node rebuilds it from the log at open"});
  // The stream rules are folded from the log's metadata streams: a changed
  // log (a marker where a metadata event was, a cut) is folded again.
  if ((log_changed || cuts_log_end) && d.has_lifecycle)
    plan.actions.push_back(RepairAction{
        .kind = K::kDropStreamIndex,
        .file = "lifecycle",
        .why = "the log changes; the node folds the stream rules from the log again at open"});
  return plan;
}

namespace {

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// k lost markers filling exactly `bytes` bytes (see the file comment).
std::string encode_markers(GlobalPosition first, std::uint64_t k, std::uint64_t bytes,
                           std::int64_t now_us) {
  std::string out;
  out.reserve(bytes);
  for (std::uint64_t i = 0; i < k; ++i) {
    engine::EventRecord r;
    r.position = first + i;
    r.flags = f::kFlagLost | f::kFlagCommit;
    r.timestamp_us = now_us;
    if (i + 1 == k) r.metadata.assign(bytes - out.size() - f::kRecordMinSize, '\0');
    engine::encode(r, out);
  }
  ANNAL_CHECK(out.size() == bytes,
              fmt::format("lost markers fill {} bytes, span is {}", out.size(), bytes));
  return out;
}

class Applier {
 public:
  Applier(std::string dir, std::string backup, std::int64_t now_us,
          const std::function<void(const std::string&)>& out)
      : dir_(std::move(dir)), backup_(std::move(backup)), now_us_(now_us), out_(out) {}

  Status run(const RepairPlan& plan, std::uint64_t& backed_up) {
    using K = RepairAction::Kind;
    auto& fs = engine::FileSystem::posix();
    ANNAL_RETURN_IF_ERROR(fs.create_dirs(backup_));
    ANNAL_RETURN_IF_ERROR(fs.sync_dir(dir_));
    // Log changes first, then the files derived from the log.
    for (const auto& a : plan.actions) {
      if (a.kind == K::kRewriteIdx || a.kind == K::kDropStreamIndex || a.kind == K::kMoveAside)
        continue;
      ANNAL_RETURN_IF_ERROR(apply(a));
      out_("  done: " + repair_action_text(a));
    }
    for (const auto& a : plan.actions) {
      if (a.kind != K::kMoveAside && a.kind != K::kDropStreamIndex) continue;
      ANNAL_RETURN_IF_ERROR(move_aside(a.file));
      out_("  done: " + repair_action_text(a));
    }
    for (const auto& a : plan.actions) {
      if (a.kind != K::kRewriteIdx) continue;
      ANNAL_RETURN_IF_ERROR(rewrite_idx(a.first));
      out_("  done: " + repair_action_text(a));
    }
    ANNAL_RETURN_IF_ERROR(fs.sync_dir(backup_));
    ANNAL_RETURN_IF_ERROR(fs.sync_dir(dir_));
    restore_notes_ += "";
    std::ofstream(backup_ + "/RESTORE.txt") << restore_notes_;
    backed_up = backed_up_;
    return Status::ok();
  }

 private:
  Status apply(const RepairAction& a) {
    using K = RepairAction::Kind;
    switch (a.kind) {
      case K::kRebuildHeader:
        return rebuild_header(a);
      case K::kFillLost: {
        const std::string markers = encode_markers(a.first, a.count, a.end - a.offset, now_us_);
        return overwrite(a.file, a.offset, markers);
      }
      case K::kCutTail:
        return overwrite(a.file, a.offset, std::string(a.end - a.offset, '\0'));
      case K::kCreateSegment:
        return create_segment(a);
      case K::kRestoreSize: {
        auto file = open_rw(a.file);
        if (!file) return file.status();
        restore_notes_ += fmt::format(
            "{}: extended from {} to {} bytes (zeros).\n  restore: truncate -s {} DIR/{}\n", a.file,
            a.offset, a.end, a.offset, a.file);
        ANNAL_RETURN_IF_ERROR((*file)->allocate(a.end));
        return (*file)->sync();
      }
      default:
        return Status::ok();
    }
  }

  Result<std::unique_ptr<engine::File>> open_rw(const std::string& name) {
    return engine::FileSystem::posix().open(dir_ + "/" + name, engine::OpenOptions{});
  }

  // Copies the bytes [offset, offset+len) that exist now into the backup.
  Status backup_range(const std::string& name, engine::File& file, std::uint64_t offset,
                      std::uint64_t len) {
    auto size = file.size();
    if (!size) return size.status();
    const std::uint64_t have = offset < *size ? std::min(len, *size - offset) : 0;
    std::string buf(have, '\0');
    if (have > 0)
      ANNAL_RETURN_IF_ERROR(
          file.pread(offset, std::span<std::byte>(reinterpret_cast<std::byte*>(buf.data()), have)));
    const std::string bname = fmt::format("{}@{}", name, offset);
    auto out = engine::FileSystem::posix().open(backup_ + "/" + bname,
                                                engine::OpenOptions{.create = true});
    if (!out) return out.status();
    ANNAL_RETURN_IF_ERROR((*out)->pwrite(0, as_bytes(buf)));
    ANNAL_RETURN_IF_ERROR((*out)->sync());
    backed_up_ += have;
    restore_notes_ += fmt::format(
        "{}: the {} original bytes of {} at offset {} (file size was {}).\n  restore: dd if={} "
        "of=DIR/{} bs=4096 "
        "seek={} oflag=seek_bytes conv=notrunc{}\n",
        bname, have, name, offset, *size, bname, name, offset,
        offset + len > *size ? fmt::format(" && truncate -s {} DIR/{}", *size, name) : "");
    return Status::ok();
  }

  Status overwrite(const std::string& name, std::uint64_t offset, const std::string& bytes) {
    auto file = open_rw(name);
    if (!file) return file.status();
    ANNAL_RETURN_IF_ERROR(backup_range(name, **file, offset, bytes.size()));
    ANNAL_RETURN_IF_ERROR((*file)->pwrite(offset, as_bytes(bytes)));
    return (*file)->sync();
  }

  Status rebuild_header(const RepairAction& a) {
    auto& fs = engine::FileSystem::posix();
    const std::string path = dir_ + "/" + a.file;
    const std::string moved = backup_ + "/" + a.file;
    ANNAL_RETURN_IF_ERROR(fs.rename(path, moved));
    std::error_code ec;
    stdfs::copy_file(moved, path, ec);
    if (ec)
      return Status(Errc::kIoError, fmt::format("copy {} to {}: {}", moved, path, ec.message()));
    auto file = open_rw(a.file);
    if (!file) return file.status();
    auto size = (*file)->size();
    if (!size) return size.status();
    struct stat st {};
    ::stat(moved.c_str(), &st);
    backed_up_ += static_cast<std::uint64_t>(st.st_size);
    restore_notes_ +=
        fmt::format("{}: the whole original segment (moved aside).\n  restore: mv {} DIR/{}\n",
                    a.file, a.file, a.file);
    engine::SegmentHeader h;
    h.first = a.first;
    h.allocated_size = std::max<std::uint64_t>(*size, f::kSegmentHeaderSize);
    h.created_us = now_us_;
    ANNAL_RETURN_IF_ERROR((*file)->pwrite(0, as_bytes(engine::encode_segment_header(h))));
    return (*file)->sync();
  }

  Status create_segment(const RepairAction& a) {
    auto& fs = engine::FileSystem::posix();
    const std::string name = engine::segment_file_name(a.first);
    auto file = fs.open(dir_ + "/" + name, engine::OpenOptions{.create = true, .exclusive = true});
    if (!file) return file.status();
    engine::SegmentHeader h;
    h.first = a.first;
    h.allocated_size = f::kSegmentHeaderSize + a.count * f::kRecordMinSize;
    h.created_us = now_us_;
    std::string bytes = engine::encode_segment_header(h);
    bytes += encode_markers(a.first, a.count, a.count * f::kRecordMinSize, now_us_);
    ANNAL_RETURN_IF_ERROR((*file)->pwrite(0, as_bytes(bytes)));
    ANNAL_RETURN_IF_ERROR((*file)->sync());
    restore_notes_ += fmt::format(
        "{}: created by repair (lost markers for positions [{}, {})).\n  restore: rm DIR/{}\n",
        name, a.first.value, a.first.value + a.count, name);
    return fs.sync_dir(dir_);
  }

  Status move_aside(const std::string& name) {
    auto& fs = engine::FileSystem::posix();
    const std::string from = dir_ + "/" + name;
    if (!fs.exists(from)) return Status::ok();
    ANNAL_RETURN_IF_ERROR(fs.rename(from, backup_ + "/" + name));
    std::error_code ec;
    for (const auto& e : stdfs::recursive_directory_iterator(backup_ + "/" + name, ec))
      if (e.is_regular_file(ec)) backed_up_ += e.file_size(ec);
    if (stdfs::is_regular_file(backup_ + "/" + name, ec))
      backed_up_ += stdfs::file_size(backup_ + "/" + name, ec);
    restore_notes_ += fmt::format("{}: moved aside.\n  restore: mv {} DIR/{}\n", name, name, name);
    return Status::ok();
  }

  Status rewrite_idx(GlobalPosition first) {
    auto& fs = engine::FileSystem::posix();
    const std::string seg = engine::segment_file_name(first);
    auto file = fs.open(dir_ + "/" + seg, engine::OpenOptions{.read_only = true});
    if (!file) return file.status();
    auto size = (*file)->size();
    if (!size) return size.status();
    auto map = (*file)->map(*size);
    if (!map) return map.status();
    engine::SegmentScan scan = engine::scan_segment((*map)->bytes(), first);
    if (scan.stop.kind != engine::ScanStopKind::kEnd)
      return Status(Errc::kCorruption,
                    fmt::format("{} still damaged after repair: {}", seg, scan.stop.reason));
    const std::string idx = engine::index_file_name(first);
    if (fs.exists(dir_ + "/" + idx)) {
      std::error_code ec;
      stdfs::copy_file(dir_ + "/" + idx, backup_ + "/" + idx,
                       stdfs::copy_options::overwrite_existing, ec);
      if (ec) return Status(Errc::kIoError, fmt::format("back up {}: {}", idx, ec.message()));
      backed_up_ += stdfs::file_size(backup_ + "/" + idx, ec);
      restore_notes_ +=
          fmt::format("{}: the original position index.\n  restore: cp {} DIR/{}\n", idx, idx, idx);
    }
    engine::PositionIndex pi;
    pi.first = first;
    pi.data_end = scan.data_end;
    pi.offsets = std::move(scan.offsets);
    return engine::write_position_index(fs, dir_, pi);
  }

  std::string dir_;
  std::string backup_;
  std::int64_t now_us_;
  const std::function<void(const std::string&)>& out_;
  std::uint64_t backed_up_ = 0;
  std::string restore_notes_ =
      "Written by `annal repair --apply`. Each entry below is a file of this folder and how to put "
      "it back\n"
      "(DIR is the data directory; run with the node stopped, in reverse order).\n\n";
};

std::string backup_name(std::int64_t now_us) {
  const std::time_t t = static_cast<std::time_t>(now_us / 1000000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string("repair-backup-") + buf;
}

}  // namespace

Result<RepairResult> repair_directory(const std::string& dir, const RepairOptions& options) {
  auto out = options.out ? options.out : [](const std::string&) {};
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status(Errc::kNotFound, fmt::format("{}: not a directory", dir));
  auto lock = engine::DirectoryLock::acquire(dir);
  if (!lock) return lock.status();

  auto report = verify_directory(dir);
  if (!report) return report.status();
  RepairResult result;
  result.plan = plan_repair(*report);
  const RepairPlan& plan = result.plan;

  for (const Finding& fd : report->survey.findings) out("found: " + finding_text(fd));
  if (plan.empty() && plan.unrepairable.empty()) {
    out("nothing to repair");
    result.clean_after = report->clean();
    return result;
  }
  out(fmt::format("plan ({} action{}):", plan.actions.size(), plan.actions.size() == 1 ? "" : "s"));
  for (const auto& a : plan.actions) out("  " + repair_action_text(a));
  for (const auto& fd : plan.unrepairable) out("  cannot repair: " + finding_text(fd));
  std::uint64_t lost = 0;
  for (const auto& [a, b] : plan.lost) {
    out(fmt::format("positions lost: [{}, {}) ({} event{})", a.value, b.value, b.value - a.value,
                    b.value - a.value == 1 ? "" : "s"));
    lost += b.value - a.value;
  }
  for (const auto& g : plan.lost_guesses)
    out("  lost (unverified, read from the damaged bytes): " + g);
  if (plan.cut_positions > 0)
    out(fmt::format("positions cut at the end of the log: {} (an append that never completed)",
                    plan.cut_positions));
  if (lost == 0 && plan.cut_positions == 0) out("no position is lost");
  if (!options.apply) {
    out("dry run: nothing changed; run again with --apply to perform this plan");
    return result;
  }
  if (plan.empty()) return result;

  std::int64_t now = options.now_us;
  if (now == 0)
    now = std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count();
  std::string bdir = dir + "/" + backup_name(now);
  for (int n = 2; engine::FileSystem::posix().exists(bdir); ++n)
    bdir = dir + "/" + backup_name(now) + fmt::format("-{}", n);
  result.backup_dir = bdir;
  out("applying; originals of every changed byte go to " + bdir);
  Applier applier(dir, bdir, now, out);
  Status applied = applier.run(plan, result.bytes_backed_up);
  if (!applied) return applied;
  result.applied = true;

  auto after = verify_directory(dir);
  if (!after) return after.status();
  result.remaining = after->survey.findings;
  result.clean_after = after->clean();
  for (const auto& fd : result.remaining) out("still found: " + finding_text(fd));
  out(result.clean_after ? "verify after repair: clean" : "verify after repair: damage remains");
  return result;
}

}  // namespace annal::tools
