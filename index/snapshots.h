#pragma once
// The snapshot store (docs/semantics.md, "Snapshots"): per stream, the
// application's snapshots of its state at a revision, kept beside the log in
// DATA/snapshots as one file per snapshot (docs/storage-format.md). Derived
// data the application may drop: not part of the log, never replicated as
// events; the newest `kept` per stream are kept, older ones deleted on save.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/file.h"
#include "engine/status.h"

namespace annal::index {

struct Snapshot {
  std::string stream;
  std::uint64_t revision = 0;  // the stream's state after this revision
  std::string type;
  std::string data;
  std::int64_t saved_us = 0;
};

class SnapshotStore {
 public:
  SnapshotStore(engine::FileSystem& fs, std::string dir, std::size_t kept);
  // Writes the snapshot durably (file, fdatasync, rename, directory fsync),
  // replacing one at the same revision, then deletes all but the newest
  // `kept` of the stream. Returns how many the stream has now.
  Result<std::size_t> save(const Snapshot& s);
  // The newest snapshot at or below `max_revision` with a revision at or
  // above `min_revision` (nullopt: none). A damaged file is kCorruption
  // naming it, never skipped.
  Result<std::optional<Snapshot>> latest(std::string_view stream, std::uint64_t min_revision,
                                         std::uint64_t max_revision) const;
  // Deletes the stream's snapshots below `revision` (UINT64_MAX: all).
  Status drop_below(std::string_view stream, std::uint64_t revision);
  // The directory of one stream's snapshots (a hash of its name).
  std::string stream_dir(std::string_view stream) const;

 private:
  Result<std::vector<std::uint64_t>> revisions(std::string_view stream) const;
  engine::FileSystem& fs_;
  const std::string dir_;
  const std::size_t kept_;
  std::mutex mu_;  // saves and drops, one at a time
};

std::string encode_snapshot(const Snapshot& s);
Result<Snapshot> decode_snapshot(std::string_view bytes, const std::string& file);

}  // namespace annal::index
