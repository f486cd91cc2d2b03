// Store::backup: an online, consistent copy of the data directory
// (index/store.h; docs/operations.md, "Backup and restore").
//
// Why this order is consistent: every file beside the log describes the log
// at or below the durable end when it was written (the indexes' MANIFESTs
// index only durable positions, a group's checkpoint only moves over
// delivered, hence durable, events, the stream rules file folds at most to
// the durable end, a snapshot is of a durable revision). They are taken
// first; the backup's position P is the durable end read after them, so each
// is at or below P, and the restored node replays the log from each of
// their positions to P at open, as after a crash. Then the log: sealed
// segments whole (immutable while the backup excludes scavenge), and the
// segment holding P - 1 up to the byte where P would start, extended with
// zeros (a hole) to its allocated size: recovery reads a clean end there.
#include <fmt/format.h>
#include <limits.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <xxhash.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "engine/segment.h"
#include "index/backup_io.h"
#include "index/backup_manifest.h"
#include "index/manifest.h"
#include "index/store_impl.h"

namespace annal::index {

namespace {

namespace b = backup;
namespace fsys = std::filesystem;

constexpr char kPartialMarker[] = ".annal-backup-partial";

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<std::string> real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr)
    return Status(Errc::kInvalidArgument,
                  fmt::format("{}: {}", p, std::strerror(errno)));  // NOLINT(concurrency-mt-unsafe)
  return std::string(buf);
}

bool is_within(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

// DEST checked and made canonical (its parent resolved, its own name kept).
Result<std::string> check_dest(const std::string& dest_in, const std::string& data_dir) {
  std::string dest = dest_in;
  if (dest.empty() || dest.front() != '/')
    return Status(Errc::kInvalidArgument,
                  fmt::format("backup destination '{}' is not an absolute path (it is a path on "
                              "the node's machine)",
                              dest_in));
  while (dest.size() > 1 && dest.back() == '/') dest.pop_back();
  const std::size_t slash = dest.rfind('/');
  const std::string name = dest.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    return Status(Errc::kInvalidArgument,
                  fmt::format("backup destination '{}' does not name a directory", dest_in));
  const std::string parent = slash == 0 ? "/" : dest.substr(0, slash);
  auto rparent = real_path(parent);
  if (!rparent)
    return Status(Errc::kInvalidArgument,
                  fmt::format("backup destination '{}': its parent directory cannot be used ({})",
                              dest_in, rparent.status().message()));
  const std::string canon = (*rparent == "/" ? "" : *rparent) + "/" + name;
  auto rdata = real_path(data_dir);
  if (!rdata) return Status(Errc::kIoError, rdata.status().message());
  if (is_within(canon, *rdata))
    return Status(
        Errc::kInvalidArgument,
        fmt::format("backup destination '{}' is inside the data directory {}", dest_in, *rdata));
  if (is_within(*rdata, canon))
    return Status(
        Errc::kInvalidArgument,
        fmt::format("backup destination '{}' contains the data directory {}", dest_in, *rdata));
  auto empty = b::empty_dir_or_missing(canon);
  if (!empty) return empty.status();
  return canon;
}

// The backup under construction: DEST.partial, the manifest's entries, the
// throttle and what link mode did.
class Builder {
 public:
  Builder(std::string partial, const BackupOptions& o)
      : partial_(std::move(partial)), throttle_(o.bytes_per_second) {
    copy_.throttle = &throttle_;
    copy_.cancelled = o.cancelled;
    link_ = o.link;
  }

  const std::string& partial() const { return partial_; }
  std::vector<BackupFile>& files() { return files_; }
  std::uint64_t linked() const { return linked_; }
  const std::string& note() const { return note_; }

  Status mkdir(const std::string& rel) {
    ANNAL_RETURN_IF_ERROR(b::make_dir(partial_ + "/" + rel));
    dirs_.push_back(rel);
    return Status::ok();
  }

  // A whole file from the node's directory (absolute `src`) as `rel`; a file
  // that is gone (a group deleted, a snapshot pruned meanwhile) is skipped.
  Status copy(const std::string& src, const std::string& rel, bool may_link) {
    if (may_link && link_) {
      bool cannot = false;
      auto r = b::link_file(src, partial_ + "/" + rel, copy_, &cannot);
      if (r) return add(rel, *r);
      if (r.status().code() == Errc::kNotFound) return Status::ok();
      if (!cannot) return r.status();
      stop_linking(r.status());
    }
    auto r = b::copy_file(src, partial_ + "/" + rel, copy_);
    if (!r && r.status().code() == Errc::kNotFound) return Status::ok();
    if (!r) return r.status();
    return add(rel, *r);
  }

  // An immutable file held open as `fd`: hard-linked by name in link mode
  // (copied from the open file if the name is gone meanwhile), else copied.
  Status link_or_copy(const std::string& src, int fd, std::uint64_t size, const std::string& rel) {
    if (link_) {
      bool cannot = false;
      auto r = b::link_file(src, partial_ + "/" + rel, copy_, &cannot);
      if (r) return add(rel, *r);
      if (cannot) {
        stop_linking(r.status());
      } else if (r.status().code() != Errc::kNotFound) {
        return r.status();
      }
    }
    return copy_prefix(fd, src, size, size, rel);
  }

  // The first `length` bytes of an open file, extended with a hole to `size`.
  Status copy_prefix(int fd, const std::string& src, std::uint64_t length, std::uint64_t size,
                     const std::string& rel) {
    auto r = b::copy_prefix(fd, src, length, size, false, partial_ + "/" + rel, copy_);
    if (!r) return r.status();
    return add(rel, *r);
  }

  Status write(const std::string& rel, const std::string& bytes) {
    ANNAL_RETURN_IF_ERROR(b::write_small(partial_ + "/" + rel, bytes));
    return add(rel, b::CopyResult{bytes.size(), XXH3_64bits(bytes.data(), bytes.size()), false});
  }

  Status sync_dirs() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it)
      ANNAL_RETURN_IF_ERROR(b::sync_dir(partial_ + "/" + *it));
    return b::sync_dir(partial_);
  }

 private:
  // Link mode, but the destination cannot hard-link: copy from now on, and say so.
  void stop_linking(const Status& why) {
    link_ = false;
    note_ = fmt::format(
        "--link: files were copied instead: the destination cannot hard-link the data "
        "directory's files ({})",
        why.message());
    spdlog::warn("backup: {}", note_);
  }
  Status add(const std::string& rel, const b::CopyResult& r) {
    files_.push_back(BackupFile{rel, r.size, r.xxh3});
    if (r.linked) ++linked_;
    return Status::ok();
  }

  std::string partial_;
  b::Throttle throttle_;
  b::CopyOptions copy_;
  bool link_ = false;
  std::uint64_t linked_ = 0;
  std::string note_;
  std::vector<BackupFile> files_;
  std::vector<std::string> dirs_;
};

bool has_suffix(const std::string& n, std::string_view s) {
  return n.ends_with(s);
}

Result<std::vector<std::string>> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fsys::directory_iterator it(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return out;
  if (ec) return Status(Errc::kIoError, fmt::format("listing {}: {}", dir, ec.message()));
  for (const auto& e : it) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// DATA/index or DATA/secondary: its MANIFEST and exactly the files it
// lists, held open together so that a merge deleting one meanwhile cannot
// tear the set (an open file stays readable after its unlink). A file gone
// between reading the manifest and opening it means a newer manifest: read
// again.
Status take_index(Builder& bld, const std::string& data, const std::string& sub) {
  const std::string dir = data + "/" + sub;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto bytes = b::read_small(dir + "/" + kManifestName);
    if (!bytes) {
      if (bytes.status().code() == Errc::kNotFound) return Status::ok();  // rebuilt at open
      return bytes.status();
    }
    auto m = decode_manifest(*bytes, dir + "/" + kManifestName);
    if (!m) return m.status();
    std::vector<std::pair<std::string, int>> open;
    bool gone = false;
    for (const auto& f : m->files) {
      const std::string name = index_file_name(f.number);
      auto fd = b::open_read(dir + "/" + name);
      if (!fd || *fd < 0) {
        gone = true;
        if (!fd) {
          for (auto& [n, o] : open) b::close_fd(o);
          return fd.status();
        }
        break;
      }
      open.emplace_back(name, *fd);
    }
    if (gone) {
      for (auto& [n, o] : open) b::close_fd(o);
      continue;
    }
    Status st = bld.mkdir(sub);
    for (auto& [name, fd] : open) {
      if (!st.is_ok()) break;
      struct stat sb {};
      if (::fstat(fd, &sb) != 0) {
        st = Status(Errc::kIoError, fmt::format("stat of {}/{}", dir, name));
        break;
      }
      const auto size = static_cast<std::uint64_t>(sb.st_size);
      st = bld.link_or_copy(dir + "/" + name, fd, size, sub + "/" + name);
    }
    for (auto& [n, o] : open) b::close_fd(o);
    ANNAL_RETURN_IF_ERROR(st);
    ANNAL_RETURN_IF_ERROR(bld.write(sub + "/" + kManifestName, *bytes));
    if (sub == "secondary") ANNAL_RETURN_IF_ERROR(bld.copy(dir + "/KEYS", sub + "/KEYS", false));
    return Status::ok();
  }
  return Status(
      Errc::kIoError,
      fmt::format("{}: the index manifest kept changing while its files were opened", dir));
}

// Files beside the log: consumer groups, the stream rules, snapshots, indexes.
Status take_side_files(Builder& bld, const std::string& data, const std::string& groups_dir) {
  auto groups = list_dir(groups_dir);
  if (!groups) return groups.status();
  if (!groups->empty()) ANNAL_RETURN_IF_ERROR(bld.mkdir("groups"));
  for (const auto& n : *groups)
    if (has_suffix(n, ".group") || has_suffix(n, ".consumer"))
      ANNAL_RETURN_IF_ERROR(bld.copy(groups_dir + "/" + n, "groups/" + n, false));
  ANNAL_RETURN_IF_ERROR(bld.copy(data + "/lifecycle", "lifecycle", false));
  auto streams = list_dir(data + "/snapshots");
  if (!streams) return streams.status();
  if (!streams->empty()) ANNAL_RETURN_IF_ERROR(bld.mkdir("snapshots"));
  for (const auto& s : *streams) {
    auto snaps = list_dir(data + "/snapshots/" + s);
    if (!snaps) return snaps.status();
    bool made = false;
    for (const auto& n : *snaps) {
      if (!has_suffix(n, ".snap")) continue;
      if (!made) ANNAL_RETURN_IF_ERROR(bld.mkdir("snapshots/" + s));
      made = true;
      ANNAL_RETURN_IF_ERROR(
          bld.copy(data + "/snapshots/" + s + "/" + n, "snapshots/" + s + "/" + n, false));
    }
  }
  ANNAL_RETURN_IF_ERROR(take_index(bld, data, "index"));
  return take_index(bld, data, "secondary");
}

// Refuses a copy that would not fit, or that would push the node's own file
// system below its free-space floor.
Status check_space(const std::string& partial, const std::string& data, std::uint64_t need,
                   std::uint64_t floor) {
  struct statvfs vs {};
  if (::statvfs(partial.c_str(), &vs) != 0) return Status::ok();  // cannot tell: try
  const std::uint64_t avail = static_cast<std::uint64_t>(vs.f_bavail) * vs.f_frsize;
  struct stat a {
  }, d{};
  const bool same =
      ::stat(partial.c_str(), &a) == 0 && ::stat(data.c_str(), &d) == 0 && a.st_dev == d.st_dev;
  const std::uint64_t want = need + (same ? floor : 0);
  if (avail < want)
    return Status(Errc::kNoSpace,
                  fmt::format("backup needs about {} MiB at {} ({} MiB free{}); nothing was kept",
                              want >> 20, partial, avail >> 20,
                              same ? ", and the node's free-space floor must stay free on this, "
                                     "its own file system"
                                   : ""));
  return Status::ok();
}

// The log below `position`: sealed segments whole (with their position
// indexes), the segment holding position - 1 up to its end offset.
Status take_log(Builder& bld, const engine::Log& log, GlobalPosition position, bool link,
                const std::string& data) {
  if (position.value == 0) return Status::ok();  // an empty log: the node creates its first segment
  auto end = log.end_offset(position);
  if (!end) return end.status();
  std::vector<engine::SegmentInfo> segs;
  for (const auto& s : log.segments())
    if (s.first < position) segs.push_back(s);
  ANNAL_CHECK(!segs.empty(), "a backup position without a segment");
  std::uint64_t need = *end;
  for (std::size_t i = 0; i + 1 < segs.size(); ++i)
    if (!link) need += segs[i].bytes_allocated;
  ANNAL_RETURN_IF_ERROR(check_space(bld.partial(), data, need,
                                    log.options().min_free_bytes + log.options().segment_size));
  for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
    ANNAL_CHECK(segs[i].sealed,
                fmt::format("segment {} below the newest is not sealed", segs[i].file));
    ANNAL_RETURN_IF_ERROR(bld.copy(data + "/" + segs[i].file, segs[i].file, true));
    const std::string idx = engine::index_file_name(segs[i].first);
    ANNAL_RETURN_IF_ERROR(bld.copy(data + "/" + idx, idx, true));  // missing: rebuilt at open
  }
  const engine::SegmentInfo& last = segs.back();
  auto fd = b::open_read(data + "/" + last.file);
  if (!fd) return fd.status();
  if (*fd < 0)
    return Status(Errc::kIoError,
                  fmt::format("segment {} disappeared during the backup", last.file));
  Status st = bld.copy_prefix(*fd, data + "/" + last.file, *end, last.bytes_allocated, last.file);
  b::close_fd(*fd);
  return st;
}

void remove_tree(const std::string& dir) {
  std::error_code ec;
  fsys::remove_all(dir, ec);
  if (ec) spdlog::warn("backup: could not remove {}: {}", dir, ec.message());
}

// DEST.partial, fresh: a leftover of an interrupted backup (it holds the
// marker) is removed, anything else there is refused.
Status start_partial(const std::string& partial) {
  auto empty = b::empty_dir_or_missing(partial);
  if (!empty) {
    std::error_code ec;
    if (!fsys::exists(partial + "/" + kPartialMarker, ec))
      return Status(Errc::kAlreadyExists,
                    fmt::format("{} exists and was not left by an annal backup; remove it or "
                                "choose another destination",
                                partial));
    spdlog::info("backup: removing {}, left by an interrupted backup", partial);
    remove_tree(partial);
  } else if (*empty) {
    remove_tree(partial);
  }
  ANNAL_RETURN_IF_ERROR(b::make_dir(partial));
  return b::write_small(partial + "/" + kPartialMarker, "an annal backup in progress\n");
}

}  // namespace

Result<BackupReport> Store::backup(const BackupOptions& options) {
  const std::string data = impl_->options_.log.dir;
  auto dest = check_dest(options.dest, data);
  if (!dest) return dest.status();
  std::unique_lock running(impl_->scavenge_mu_, std::try_to_lock);
  if (!running.owns_lock())
    return Status(Errc::kBusy,
                  impl_->backup_running_.load()
                      ? "a backup is already running; one at a time"
                      : "a scavenge is running (it rewrites the sealed segments a backup copies); "
                        "back up when it is done");
  impl_->backup_running_ = true;
  struct Clear {
    std::atomic<bool>& f;
    ~Clear() { f = false; }
  } clear{impl_->backup_running_};

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const std::string partial = *dest + ".partial";
  ANNAL_RETURN_IF_ERROR(start_partial(partial));
  Builder bld(partial, options);
  BackupManifest m;
  auto run = [&]() -> Status {
    const std::string groups = options.groups_dir.empty() ? data + "/groups" : options.groups_dir;
    ANNAL_RETURN_IF_ERROR(take_side_files(bld, data, groups));
    m.position = log().durable_end().value;
    spdlog::info("backup to {}: position {}, {}", *dest, m.position,
                 options.link ? "linking immutable files" : "copying");
    ANNAL_RETURN_IF_ERROR(take_log(bld, log(), GlobalPosition(m.position), options.link, data));
    m.node_version = options.node_version;
    m.created_us = wall_us();
    m.mode = options.link ? "link" : "copy";
    m.linked = bld.linked();
    m.files = bld.files();
    std::sort(m.files.begin(), m.files.end(),
              [](const BackupFile& a, const BackupFile& c) { return a.path < c.path; });
    ANNAL_RETURN_IF_ERROR(
        b::write_small(partial + "/" + kBackupManifestName, encode_backup_manifest(m)));
    if (::unlink((partial + "/" + kPartialMarker).c_str()) != 0)
      return Status(Errc::kIoError, fmt::format("removing {}/{}", partial, kPartialMarker));
    ANNAL_RETURN_IF_ERROR(bld.sync_dirs());
    std::error_code ec;
    if (fsys::exists(*dest, ec)) fsys::remove(*dest, ec);  // an empty directory
    fsys::rename(partial, *dest, ec);
    if (ec)
      return Status(Errc::kIoError,
                    fmt::format("renaming {} to {}: {}", partial, *dest, ec.message()));
    return b::sync_dir(fsys::path(*dest).parent_path().string());
  };
  if (Status st = run(); !st.is_ok()) {
    spdlog::error("backup to {} failed: {}", *dest, st.to_string());
    remove_tree(partial);
    return st;
  }
  BackupReport r;
  r.dest = *dest;
  r.position = GlobalPosition(m.position);
  r.files = m.files.size();
  r.bytes = m.bytes();
  r.linked = m.linked;
  r.note = bld.note();
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  spdlog::info("backup to {} done: position {}, {} files, {} bytes ({} linked) in {:.3f} s{}{}",
               r.dest, r.position.value, r.files, r.bytes, r.linked, r.seconds,
               r.note.empty() ? "" : "; ", r.note);
  return r;
}

}  // namespace annal::index
