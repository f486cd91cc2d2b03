#pragma once
// A consumer group's (or a named consumer's) durable state: one file per
// name in DATA/groups, rewritten whole and atomically (a temporary file,
// fdatasync, rename, directory fsync), with a checksum. Format:
// docs/storage-format.md ("Consumer group files").
//
// Thread safety: the functions are pure or touch only the named file; the
// node writes one group's file from one place at a time.

#include <cstdint>
#include <string>
#include <vector>

#include "engine/file.h"
#include "engine/status.h"
#include "groups/group_state.h"
#include "groups/settings.h"

namespace annal::groups {

inline constexpr std::uint32_t kGroupFileMagic = 0x50524741;  // "AGRP" as little-endian bytes
inline constexpr std::uint16_t kGroupFileVersion = 1;

struct GroupFile {
  Kind kind = Kind::kGroup;
  std::string name;
  Settings settings;  // kGroup
  Progress progress;
  std::int64_t created_us = 0;  // wall clock, for operators
};

std::string encode_group_file(const GroupFile& g);
// kCorruption naming the field on a bad checksum, truncation or bad value.
Result<GroupFile> decode_group_file(std::string_view bytes);

// The file name of `name` in the groups directory: its bytes in hex (a
// name may hold any character but NUL and control characters).
std::string group_file_name(Kind kind, const std::string& name);

Status write_group_file(engine::FileSystem& fs, const std::string& dir, const GroupFile& g);
Status remove_group_file(engine::FileSystem& fs, const std::string& dir, Kind kind,
                         const std::string& name);
// Every group file in `dir` (created if missing); a damaged file is an
// error naming it, never skipped (a group silently gone would redeliver
// everything, or nothing).
Result<std::vector<GroupFile>> read_group_files(engine::FileSystem& fs, const std::string& dir);

}  // namespace annal::groups
