#pragma once
// File copying for backups and restores (index/store_backup.cc,
// tools/offline_restore.cc): whole files or a prefix of one, copied or
// hard-linked, throttled, checksummed (XXH3-64) as they are read, synced.
// Plain POSIX: a backup reads the live directory beside the node's own file
// layer and writes somewhere else.
//
// Thread safety: a Throttle and a Copier belong to one thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "engine/status.h"

namespace annal::index::backup {

// Sleeps so that bytes moved / elapsed time stays under a budget (0: none).
class Throttle {
 public:
  explicit Throttle(std::uint64_t bytes_per_second);
  void pace(std::uint64_t bytes);

 private:
  using Clock = std::chrono::steady_clock;
  std::uint64_t budget_;
  std::uint64_t done_ = 0;
  Clock::time_point t0_;
};

struct CopyResult {
  std::uint64_t size = 0;  // the destination's size
  std::uint64_t xxh3 = 0;  // XXH3-64 of its bytes (holes read as zeros)
  bool linked = false;
};

struct CopyOptions {
  Throttle* throttle = nullptr;
  // Asked between chunks: true stops the copy with kShuttingDown.
  std::function<bool()> cancelled;
};

// Copies the first `length` bytes of the open file `src_fd` into a new file
// `dest` (which must not exist), then extends it to `size` (>= length) with a
// hole (no blocks), or with allocated blocks (fallocate) when `allocate`,
// fsyncs it and returns its size and checksum. Errors name the files.
Result<CopyResult> copy_prefix(int src_fd, const std::string& src_name, std::uint64_t length,
                               std::uint64_t size, bool allocate, const std::string& dest,
                               const CopyOptions& options);
// copy_prefix of a whole file, by path (kNotFound if it does not exist).
Result<CopyResult> copy_file(const std::string& src, const std::string& dest,
                             const CopyOptions& options, bool allocate = false);
// The checksum of a whole file, read through the throttle.
Result<CopyResult> hash_file(const std::string& path, const CopyOptions& options);
// Hard-links `src` as `dest`: kNotFound if src is gone, kInvalidArgument
// with errno EXDEV/EPERM/EMLINK/ENOTSUP in the message when the file system
// cannot (the caller copies instead); then the checksum, read as above.
Result<CopyResult> link_file(const std::string& src, const std::string& dest,
                             const CopyOptions& options, bool* cannot_link);

// fsync of a directory.
Status sync_dir(const std::string& dir);
// mkdir (kAlreadyExists if it exists).
Status make_dir(const std::string& dir);
// Whether `path` is missing (false), an empty directory (true), or
// something else (kAlreadyExists naming it).
Result<bool> empty_dir_or_missing(const std::string& path);
// Opens `path` read-only: the fd (>= 0), or -1 if it does not exist.
Result<int> open_read(const std::string& path);
void close_fd(int fd);
// The whole (small) file as bytes; kNotFound if missing.
Result<std::string> read_small(const std::string& path);
// Writes `bytes` as a new file `path` and fsyncs it.
Status write_small(const std::string& path, const std::string& bytes);

}  // namespace annal::index::backup
