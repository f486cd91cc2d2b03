// Stream index (DIR/index) checks for verify, and dump-index. Built on the
// index's public reading API: read_manifest and IndexFile.

#include <fmt/format.h>
#include <sys/stat.h>

#include "engine/file.h"
#include "index/index_file.h"
#include "index/manifest.h"
#include "tools/offline.h"
#include "tools/offline_json.h"

// Findings and actions are built with designated initializers that leave
// defaulted members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string rel(const std::string& name) {
  return "index/" + name;
}

}  // namespace

void check_stream_index(const std::string& dir, const std::vector<PositionKey>& keys,
                        VerifyReport& report) {
  auto& fs = engine::FileSystem::posix();
  const std::string idir = dir + "/index";
  auto& findings = report.survey.findings;
  if (!exists(idir)) return;  // never written: the node builds it at open
  auto manifest = index::read_manifest(fs, idir);
  if (!manifest) {
    if (manifest.status().code() == Errc::kNotFound) {
      // Index files without a manifest cannot be used.
      auto names = fs.list(idir);
      bool any = false;
      if (names)
        for (const auto& n : *names) any = any || (n.size() > 3 && n.substr(n.size() - 3) == ".ix");
      if (any)
        findings.push_back(
            Finding{.kind = FindingKind::kIndexMissing,
                    .file = rel(index::kManifestName),
                    .detail = "index files exist but the manifest listing them is missing"});
      return;
    }
    findings.push_back(Finding{.kind = FindingKind::kIndexCorrupt,
                               .file = rel(index::kManifestName),
                               .detail = manifest.status().message()});
    return;
  }
  report.indexed_through = manifest->indexed_through;
  const std::uint64_t log_end = keys.size();
  if (manifest->indexed_through > log_end)
    findings.push_back(
        Finding{.kind = FindingKind::kIndexMismatch,
                .file = rel(index::kManifestName),
                .first = GlobalPosition(log_end),
                .end = GlobalPosition(manifest->indexed_through),
                .detail = fmt::format("the manifest says positions below {} are indexed; the log "
                                      "ends at {}",
                                      manifest->indexed_through, log_end)});
  std::vector<bool> seen(log_end, false);
  bool all_files_read = true;
  for (const auto& meta : manifest->files) {
    const std::string name = index::index_file_name(meta.number);
    if (!exists(idir + "/" + name)) {
      all_files_read = false;
      findings.push_back(
          Finding{.kind = FindingKind::kIndexMissing,
                  .file = rel(name),
                  .first = GlobalPosition(meta.first_position),
                  .end = GlobalPosition(meta.end_position),
                  .detail = fmt::format("{} is listed in the manifest but missing", name)});
      continue;
    }
    auto file = index::IndexFile::open(fs, idir, meta, /*verify_entries=*/true);
    if (!file) {
      all_files_read = false;
      findings.push_back(Finding{.kind = FindingKind::kIndexCorrupt,
                                 .file = rel(name),
                                 .first = GlobalPosition(meta.first_position),
                                 .end = GlobalPosition(meta.end_position),
                                 .detail = file.status().message()});
      continue;
    }
    std::uint64_t bad = 0;
    std::string first_bad;
    index::IndexFile::Cursor cursor(**file);
    for (index::IndexEntry e; cursor.next(e);) {
      ++report.index_entries;
      std::string why;
      if (e.position < meta.first_position || e.position >= meta.end_position) {
        why = fmt::format(
            "entry (hash {:016x}, revision {}) points to position {} outside the file's range [{}, "
            "{})",
            e.hash, e.revision, e.position, meta.first_position, meta.end_position);
      } else if (e.position >= log_end) {
        why = fmt::format(
            "entry (hash {:016x}, revision {}) points to position {} past the log's end {}", e.hash,
            e.revision, e.position, log_end);
      } else {
        const PositionKey& k = keys[e.position];
        if (seen[e.position]) {
          why = fmt::format("position {} is indexed twice", e.position);
        } else if (k.state == 2) {
          ++report.lost_revisions;  // a revision lost at repair: reads of it say so
        } else if (k.state == 1 && (k.hash != e.hash || k.revision != e.revision)) {
          why = fmt::format(
              "entry (hash {:016x}, revision {}) points to position {}, which holds (hash {:016x}, "
              "revision {})",
              e.hash, e.revision, e.position, k.hash, k.revision);
        }
        seen[e.position] = true;
      }
      if (!why.empty()) {
        if (bad++ == 0) first_bad = why;
      }
    }
    if (bad > 0)
      findings.push_back(Finding{.kind = FindingKind::kIndexMismatch,
                                 .file = rel(name),
                                 .first = GlobalPosition(meta.first_position),
                                 .end = GlobalPosition(meta.end_position),
                                 .detail = fmt::format("{} wrong entr{}; first: {}", bad,
                                                       bad == 1 ? "y" : "ies", first_bad)});
  }
  if (!all_files_read) return;  // unindexed records are explained by the missing file
  std::uint64_t unindexed = 0;
  std::uint64_t first_unindexed = 0;
  const std::uint64_t through = std::min(manifest->indexed_through, log_end);
  for (std::uint64_t p = 0; p < through; ++p) {
    if (keys[p].state == 1 && !seen[p]) {
      if (unindexed++ == 0) first_unindexed = p;
    }
  }
  if (unindexed > 0)
    findings.push_back(
        Finding{.kind = FindingKind::kIndexMismatch,
                .file = rel(index::kManifestName),
                .first = GlobalPosition(first_unindexed),
                .end = GlobalPosition(through),
                .detail = fmt::format("{} record(s) below the indexed-through position {} have no "
                                      "index entry; first at position {}",
                                      unindexed, through, first_unindexed)});
}

Status dump_index(const std::string& dir, const std::function<void(const std::string&)>& out) {
  auto& fs = engine::FileSystem::posix();
  const std::string idir = dir + "/index";
  if (!exists(idir)) return Status(Errc::kNotFound, fmt::format("{}: no stream index", idir));
  auto manifest = index::read_manifest(fs, idir);
  if (!manifest) return manifest.status();
  out(JsonObject()
          .str("manifest", rel(index::kManifestName))
          .num("indexed_through", manifest->indexed_through)
          .num("next_file_number", manifest->next_file_number)
          .num("files", static_cast<std::uint64_t>(manifest->files.size()))
          .done());
  Status result;
  for (const auto& meta : manifest->files) {
    const std::string name = index::index_file_name(meta.number);
    auto file = index::IndexFile::open(fs, idir, meta, /*verify_entries=*/true);
    JsonObject o;
    o.str("index_file", rel(name))
        .num("level", static_cast<std::uint64_t>(meta.level))
        .num("first_position", meta.first_position)
        .num("end_position", meta.end_position)
        .num("entries", meta.entry_count);
    if (!file) {
      o.str("error", file.status().message());
      out(o.done());
      result = file.status();
      continue;
    }
    out(o.str("status", "ok").done());
    index::IndexFile::Cursor cursor(**file);
    for (index::IndexEntry e; cursor.next(e);) {
      out(JsonObject()
              .str("file", name)
              .str("hash", fmt::format("{:016x}", e.hash))
              .num("revision", e.revision)
              .num("position", e.position)
              .done());
    }
  }
  return result;
}

}  // namespace annal::tools

namespace annal::tools {

namespace {
StreamIndexSummary index_summary(const std::string& idir) {
  StreamIndexSummary s;
  s.present = exists(idir);
  if (!s.present) return s;
  auto manifest = index::read_manifest(engine::FileSystem::posix(), idir);
  if (!manifest) {
    s.error = manifest.status().message();
    return s;
  }
  s.manifest_ok = true;
  s.indexed_through = manifest->indexed_through;
  s.files = manifest->files.size();
  for (const auto& m : manifest->files) {
    s.entries += m.entry_count;
    if (!exists(idir + "/" + index::index_file_name(m.number)))
      s.error += (s.error.empty() ? "" : "; ") + index::index_file_name(m.number) + " missing";
  }
  return s;
}

}  // namespace

StreamIndexSummary stream_index_summary(const std::string& dir) {
  return index_summary(dir + "/index");
}
StreamIndexSummary secondary_index_summary(const std::string& dir) {
  return index_summary(dir + "/secondary");
}

}  // namespace annal::tools
