#pragma once
// The index manifest, DATA/index/MANIFEST: which index files are live and
// through which log position they index. Replaced atomically (temp file,
// fdatasync, rename, directory fsync). Format: docs/storage-format.md ("Stream index files").

#include <cstdint>
#include <string>
#include <vector>

#include "engine/file.h"
#include "engine/status.h"
#include "index/index_file.h"

namespace annal::index {

inline constexpr char kManifestMagic[8] = {'A', 'N', 'N', 'A', 'L', 'I', 'M', 'F'};
inline constexpr std::uint32_t kManifestVersion = 1;
inline constexpr char kManifestName[] = "MANIFEST";

struct Manifest {
  // Every log position below this is covered by `files`.
  std::uint64_t indexed_through = 0;
  std::uint64_t next_file_number = 1;
  // Ordered by first_position; ranges are adjacent.
  std::vector<IndexFileMeta> files;
  bool operator==(const Manifest&) const = default;
};

std::string encode_manifest(const Manifest& m);
// kCorruption naming `path` on any damage.
Result<Manifest> decode_manifest(const std::string& bytes, const std::string& path);

Status write_manifest(engine::FileSystem& fs, const std::string& dir, const Manifest& m);
// kNotFound if there is no manifest, kCorruption if it is damaged.
Result<Manifest> read_manifest(engine::FileSystem& fs, const std::string& dir);

}  // namespace annal::index
