#pragma once
// DEST/MANIFEST of a backup (docs/operations.md, "Backup and restore"): a
// JSON document naming every file of the backup with its size and XXH3-64
// checksum, the log position the backup holds everything below, the node
// version and the time. Written last, just before DEST.partial is renamed
// to DEST; `annal restore` and `annal verify` check every file against it.
//
//   {"format":"annal-backup","version":1,"node_version":"annal 0.1.0",
//    "created_us":1796000000000000,"created":"2026-12-08T01:00:00Z",
//    "position":12345,"mode":"copy","linked":0,"bytes":268447744,
//    "files":[{"path":"00000000000000000000.seg","size":268435456,
//              "xxh3":"0123456789abcdef"}, ...]}
//
// `path` is relative to the backup directory, '/'-separated, sorted; `xxh3`
// is XXH3_64bits (seed 0) of the file's bytes as 16 lowercase hex digits
// (the number, most significant digit first).

#include <cstdint>
#include <string>
#include <vector>

#include "engine/status.h"

namespace annal::index {

inline constexpr char kBackupManifestName[] = "MANIFEST";
inline constexpr std::uint32_t kBackupManifestVersion = 1;

struct BackupFile {
  std::string path;
  std::uint64_t size = 0;
  std::uint64_t xxh3 = 0;
  bool operator==(const BackupFile&) const = default;
};

struct BackupManifest {
  std::uint32_t version = kBackupManifestVersion;
  std::string node_version;
  std::int64_t created_us = 0;
  std::uint64_t position = 0;  // every event below it is in the backup, nothing at or above
  std::string mode = "copy";   // "copy" or "link"
  std::uint64_t linked = 0;    // files hard-linked to the node's
  std::vector<BackupFile> files;
  std::uint64_t bytes() const;
  bool operator==(const BackupManifest&) const = default;
};

std::string encode_backup_manifest(const BackupManifest& m);
// kCorruption naming `path` and what is wrong; kInvalidArgument for a newer
// version.
Result<BackupManifest> decode_backup_manifest(const std::string& json, const std::string& path);

}  // namespace annal::index
