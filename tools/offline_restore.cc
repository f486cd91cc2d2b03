// `annal restore BACKUP DATA` and the backup checks of `annal verify`
// (tools/offline.h; docs/operations.md, "Backup and restore").
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "engine/segment.h"
#include "index/backup_io.h"
#include "index/backup_manifest.h"
#include "tools/offline.h"

// Findings are built with designated initializers that leave defaulted
// members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace {

namespace b = index::backup;
namespace fsys = std::filesystem;

// The directory DATA/.restore.partial: the node refuses to open a data
// directory that holds it (engine/log.cc), so an interrupted restore is
// never mistaken for a shorter log.
constexpr char kRestorePartial[] = ".restore.partial";

Result<index::BackupManifest> load_manifest(const std::string& dir) {
  const std::string path = dir + "/" + index::kBackupManifestName;
  auto bytes = b::read_small(path);
  if (!bytes) {
    if (bytes.status().code() == Errc::kNotFound)
      return Status(Errc::kNotFound,
                    fmt::format("{} has no MANIFEST: it is not a complete annal backup (a "
                                "DEST.partial never is)",
                                dir));
    return bytes.status();
  }
  return index::decode_backup_manifest(*bytes, path);
}

std::string mismatch(const index::BackupFile& want, const b::CopyResult& got) {
  if (got.size != want.size)
    return fmt::format("{} bytes, the MANIFEST says {}", got.size, want.size);
  return fmt::format("checksum {:016x}, the MANIFEST says {:016x}", got.xxh3, want.xxh3);
}

// Every regular file under dir, relative, '/'-separated.
std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fsys::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) out.push_back(fsys::relative(it->path(), dir, ec).string());
  std::sort(out.begin(), out.end());
  return out;
}

// The manifest's newest segment: the node writes into it, so a restore
// copies it (allocated whole) even when linking.
std::string newest_segment(const index::BackupManifest& m) {
  std::string newest;
  for (const auto& f : m.files)
    if (engine::parse_segment_file_name(f.path) && f.path > newest) newest = f.path;
  return newest;
}

Status sync_tree(const std::string& dir) {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (fsys::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory(ec)) dirs.push_back(it->path().string());
  std::sort(dirs.rbegin(), dirs.rend());  // children before their parents
  for (const auto& d : dirs) ANNAL_RETURN_IF_ERROR(b::sync_dir(d));
  return b::sync_dir(dir);
}

// Moves the restored entries from DATA/.restore.partial into DATA; the
// partial directory goes last, so until then the node refuses DATA.
Status move_into_place(const std::string& partial, const std::string& data) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fsys::directory_iterator(partial, ec))
    names.push_back(e.path().filename().string());
  if (ec) return Status(Errc::kIoError, fmt::format("listing {}: {}", partial, ec.message()));
  for (const auto& n : names) {
    fsys::rename(partial + "/" + n, data + "/" + n, ec);
    if (ec)
      return Status(Errc::kIoError,
                    fmt::format("moving {}/{} into {}: {}", partial, n, data, ec.message()));
  }
  ANNAL_RETURN_IF_ERROR(b::sync_dir(data));
  fsys::remove(partial, ec);
  if (ec) return Status(Errc::kIoError, fmt::format("removing {}: {}", partial, ec.message()));
  return b::sync_dir(data);
}

}  // namespace

Result<std::vector<Finding>> check_backup_manifest(const std::string& dir) {
  auto m = load_manifest(dir);
  if (!m) return m.status();
  std::vector<Finding> out;
  std::set<std::string> listed;
  for (const auto& f : m->files) {
    listed.insert(f.path);
    auto got = b::hash_file(dir + "/" + f.path, {});
    std::string detail;
    if (!got)
      detail = got.status().code() == Errc::kNotFound ? "missing: the MANIFEST lists it"
                                                      : got.status().message();
    else if (got->size != f.size || got->xxh3 != f.xxh3)
      detail = mismatch(f, *got) + ": the file changed after the backup";
    if (!detail.empty())
      out.push_back(Finding{.kind = FindingKind::kBackupMismatch,
                            .file = f.path,
                            .detail = detail,
                            .repairable = false});
  }
  for (const auto& p : files_under(dir))
    if (p != index::kBackupManifestName && !listed.count(p))
      out.push_back(Finding{.kind = FindingKind::kBackupMismatch,
                            .file = p,
                            .detail = "not in the backup's MANIFEST",
                            .repairable = false});
  return out;
}

Result<RestoreReport> restore_backup(const std::string& backup, const std::string& data,
                                     const RestoreOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  auto say = [&](const std::string& line) {
    if (options.out) options.out(line);
  };
  auto m = load_manifest(backup);
  if (!m) return m.status();
  auto empty = b::empty_dir_or_missing(data);
  if (!empty)
    return Status(Errc::kAlreadyExists, fmt::format("{}; restore into a new or empty directory",
                                                    empty.status().message()));
  if (!*empty) ANNAL_RETURN_IF_ERROR(b::make_dir(data));
  const std::string partial = data + "/" + kRestorePartial;
  ANNAL_RETURN_IF_ERROR(b::make_dir(partial));
  say(fmt::format("restoring {} files ({} bytes, position {}, taken by {}) from {} into {}",
                  m->files.size(), m->bytes(), m->position, m->node_version, backup, data));
  const std::string newest = newest_segment(*m);
  RestoreReport report;
  report.position = m->position;
  report.node_version = m->node_version;
  bool link = options.link;
  auto run = [&]() -> Status {
    for (const auto& f : m->files) {
      const std::string src = backup + "/" + f.path;
      const std::string dst = partial + "/" + f.path;
      std::error_code ec;
      fsys::create_directories(fsys::path(dst).parent_path(), ec);
      if (ec) return Status(Errc::kIoError, fmt::format("creating the directory of {}", dst));
      auto copy = [&] { return b::copy_file(src, dst, {}, /*allocate=*/f.path == newest); };
      bool cannot = false;
      Result<b::CopyResult> got =
          link && f.path != newest ? b::link_file(src, dst, {}, &cannot) : copy();
      if (!got && cannot) {
        say(fmt::format("cannot hard-link into {} ({}): copying instead", data,
                        got.status().message()));
        link = false;
        got = copy();
      }
      if (!got) {
        if (got.status().code() == Errc::kNotFound)
          return Status(Errc::kCorruption,
                        fmt::format("backup file {} is missing (the MANIFEST lists it); nothing "
                                    "was restored",
                                    src));
        return got.status();
      }
      if (got->size != f.size || got->xxh3 != f.xxh3)
        return Status(Errc::kCorruption,
                      fmt::format("backup file {}: {}: the backup is damaged; nothing was restored",
                                  src, mismatch(f, *got)));
      ++report.files;
      report.bytes += got->size;
      if (got->linked) ++report.linked;
    }
    ANNAL_RETURN_IF_ERROR(sync_tree(partial));
    return move_into_place(partial, data);
  };
  if (Status st = run(); !st.is_ok()) {
    std::error_code ec;
    fsys::remove_all(partial, ec);
    if (!*empty) fsys::remove(data, ec);  // we created it
    return st;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace annal::tools
