// Secondary index (DIR/secondary) checks for verify and its summary for
// inspect. Built on the index's public reading API (read_manifest, IndexFile)
// and the key derivation of index/secondary.h: every entry must name a key
// of the record at its position (or, in the time map, that record's write
// time), every record below the manifest's indexed_through must have all its
// keys, and the first event of every millisecond of write time a time entry.

#include <fmt/format.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "engine/file.h"
#include "engine/format.h"
#include "index/index_file.h"
#include "index/manifest.h"
#include "index/secondary.h"
#include "tools/offline.h"

// Findings are built with designated initializers that leave defaulted
// members out on purpose; GCC 12 warns about that.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace annal::tools {

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string rel(const std::string& name) {
  return "secondary/" + name;
}

// A position's keys as one number: the sum of a mix of each key hash, so the
// index's entries for a position can be compared with the record's keys
// without keeping either list (8 bytes per position).
std::uint64_t mix(std::uint64_t h) {
  h ^= h >> 31;
  h *= 0x7FB5D329728EA185ull;
  h ^= h >> 27;
  h *= 0x81DADEF4BC2DD44Dull;
  return h ^ (h >> 33);
}

}  // namespace

std::optional<char> secondary_separator(const std::string& dir) {
  std::ifstream in(dir + "/secondary/KEYS");
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  const std::string prefix = "category_separator=";
  if (line.size() != prefix.size() + 1 || line.rfind(prefix, 0) != 0) return std::nullopt;
  return line.back();
}

void SecondaryExpect::add(const engine::RecordView& v) {
  const std::uint64_t p = v.position.value;
  if (p >= digest.size()) {
    const std::uint64_t n = std::max<std::uint64_t>(p + 1, digest.size() * 2);
    digest.resize(n, 0);
    time.resize(n, kNoTime);
    removed.resize(n, false);
  }
  if (v.stream.empty()) return;  // a lost marker: no keys
  if (v.flags & engine::format::kFlagRemoved) {
    removed[p] = true;
    time[p] = v.timestamp_us;
    return;
  }
  std::uint64_t d = 0;
  index::for_each_record_key(v, separator, [&](index::IndexKind k, std::string_view value) {
    d += mix(index::secondary_key_hash(k, value));
  });
  digest[p] = d;
  time[p] = v.timestamp_us;
}

void check_secondary_index(const std::string& dir, const SecondaryExpect& expect,
                           std::uint64_t log_end, VerifyReport& report) {
  auto& fs = engine::FileSystem::posix();
  const std::string sdir = dir + "/secondary";
  auto& findings = report.survey.findings;
  if (!exists(sdir)) return;  // never written: the node builds it at open
  auto manifest = index::read_manifest(fs, sdir);
  if (!manifest) {
    if (manifest.status().code() != Errc::kNotFound)
      findings.push_back(Finding{.kind = FindingKind::kIndexCorrupt,
                                 .file = rel(index::kManifestName),
                                 .detail = manifest.status().message()});
    return;  // no manifest: the node rebuilds the index at open (as after KEYS changed)
  }
  if (manifest->indexed_through > log_end)
    findings.push_back(
        Finding{.kind = FindingKind::kIndexMismatch,
                .file = rel(index::kManifestName),
                .first = GlobalPosition(log_end),
                .end = GlobalPosition(manifest->indexed_through),
                .detail = fmt::format("the manifest says positions below {} are indexed; the log "
                                      "ends at {}",
                                      manifest->indexed_through, log_end)});
  const std::uint64_t through = std::min(manifest->indexed_through, log_end);
  std::vector<std::uint64_t> actual(through, 0);
  std::vector<bool> timed(through, false);
  bool all_files_read = true;
  for (const auto& meta : manifest->files) {
    const std::string name = index::index_file_name(meta.number);
    auto file = exists(sdir + "/" + name)
                    ? index::IndexFile::open(fs, sdir, meta, /*verify_entries=*/true)
                    : Result<std::shared_ptr<index::IndexFile>>(
                          Status(Errc::kNotFound, name + " is listed in the manifest but missing"));
    if (!file) {
      all_files_read = false;
      findings.push_back(Finding{.kind = file.status().code() == Errc::kNotFound
                                             ? FindingKind::kIndexMissing
                                             : FindingKind::kIndexCorrupt,
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
      ++report.secondary_entries;
      std::string why;
      if (e.position < meta.first_position || e.position >= meta.end_position ||
          e.position >= through) {
        why = fmt::format("entry (hash {:016x}) points to position {} outside [{}, {})", e.hash,
                          e.position, meta.first_position, std::min(meta.end_position, through));
      } else if (e.hash == index::kTimeMapKey && e.revision != e.position) {
        // A lost marker or an unreadable record (reported on its own) says
        // nothing about the entry.
        const std::int64_t t = expect.time_at(e.position);
        if (t != SecondaryExpect::kNoTime && t != static_cast<std::int64_t>(e.revision))
          why = fmt::format("time entry says position {} was written at {}; it was at {}",
                            e.position, e.revision, t);
        timed[e.position] = true;
      } else if (e.revision != e.position) {
        why = fmt::format("entry (hash {:016x}) has revision {} for position {}", e.hash,
                          e.revision, e.position);
      } else {
        actual[e.position] += mix(e.hash);
      }
      if (!why.empty() && bad++ == 0) first_bad = why;
    }
    if (bad > 0)
      findings.push_back(Finding{.kind = FindingKind::kIndexMismatch,
                                 .file = rel(name),
                                 .first = GlobalPosition(meta.first_position),
                                 .end = GlobalPosition(meta.end_position),
                                 .detail = fmt::format("{} wrong entr{}; first: {}", bad,
                                                       bad == 1 ? "y" : "ies", first_bad)});
  }
  if (!all_files_read) return;  // what is missing is explained by the missing file
  std::uint64_t wrong = 0, first_wrong = 0, untimed = 0, first_untimed = 0;
  constexpr std::int64_t kUnknownBucket = INT64_MIN;
  std::int64_t last_bucket = INT64_MAX;  // no bucket yet: position 0 is checked
  for (std::uint64_t p = 0; p < through; ++p) {
    const std::int64_t t = expect.time_at(p);
    if (t == SecondaryExpect::kNoTime) {
      // A lost marker or an unreadable record (checked elsewhere): its
      // bucket's time entry may point at it, so the next event's bucket is
      // not checked.
      last_bucket = kUnknownBucket;
      continue;
    }
    if (!expect.removed_at(p) && actual[p] != expect.digest[p] && wrong++ == 0) first_wrong = p;
    const std::int64_t s = index::time_bucket_of(t);
    if (last_bucket != kUnknownBucket && s != last_bucket && !timed[p] && untimed++ == 0)
      first_untimed = p;
    last_bucket = s;
  }
  if (wrong > 0)
    findings.push_back(Finding{
        .kind = FindingKind::kIndexMismatch,
        .file = rel(index::kManifestName),
        .first = GlobalPosition(first_wrong),
        .end = GlobalPosition(through),
        .detail = fmt::format("{} record(s) below the indexed-through position {} are missing "
                              "keys or have keys they do not carry; first at position {}",
                              wrong, through, first_wrong)});
  if (untimed > 0)
    findings.push_back(Finding{
        .kind = FindingKind::kIndexMismatch,
        .file = rel(index::kManifestName),
        .first = GlobalPosition(first_untimed),
        .end = GlobalPosition(through),
        .detail =
            fmt::format("{} millisecond(s) of write time have no time-map entry for their first "
                        "event; first at position {}",
                        untimed, first_untimed)});
}

}  // namespace annal::tools
