#pragma once
// All file I/O of the engine goes through FileSystem, so tests can substitute
// a fault-injecting implementation (engine/fault_fs.h).
//
// Thread safety: FileSystem implementations are safe to call from any thread.
// A File may be used by one writer thread and any number of readers of
// already-written ranges concurrently.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace annal::engine {

// A read-only memory map of a file. Unmapped when the last reference goes.
class Mapping {
 public:
  virtual ~Mapping() = default;
  virtual const std::byte* data() const = 0;
  virtual std::size_t size() const = 0;
  std::span<const std::byte> bytes() const { return {data(), size()}; }
  // Drops the whole map's pages from this process's resident set (they stay
  // in the page cache, and the next access maps them again): for maps that
  // were read once in bulk, such as a segment scanned at recovery.
  virtual void release_resident() const {}
};

class File {
 public:
  virtual ~File() = default;
  File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  virtual const std::string& path() const = 0;
  // Writes all of data at offset; never a short write (retries EINTR / partial).
  virtual Status pwrite(std::uint64_t offset, std::span<const std::byte> data) = 0;
  // Reads exactly out.size() bytes at offset, or fails (kIoError / kCorruption on EOF).
  virtual Status pread(std::uint64_t offset, std::span<std::byte> out) = 0;
  // Reserves [0, size) on disk (fallocate mode 0). ENOSPC gives kNoSpace.
  virtual Status allocate(std::uint64_t size) = 0;
  virtual Status datasync() = 0;  // fdatasync
  virtual Status sync() = 0;      // fsync
  virtual Result<std::uint64_t> size() = 0;
  // Maps [0, length) read-only (MAP_SHARED, PROT_READ). length must be <= file size.
  virtual Result<std::shared_ptr<const Mapping>> map(std::size_t length) = 0;
};

struct OpenOptions {
  bool create = false;     // O_CREAT
  bool exclusive = false;  // O_EXCL (with create)
  bool read_only = false;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual Result<std::unique_ptr<File>> open(const std::string& path, OpenOptions options) = 0;
  virtual Status sync_dir(const std::string& dir) = 0;
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Status remove(const std::string& path) = 0;
  virtual Status create_dirs(const std::string& dir) = 0;
  // Names (not paths) of the entries in dir, unsorted.
  virtual Result<std::vector<std::string>> list(const std::string& dir) = 0;
  virtual bool exists(const std::string& path) = 0;
  // Bytes available to an unprivileged writer on the file system holding dir.
  virtual Result<std::uint64_t> free_bytes(const std::string& dir) = 0;

  // The real file system (process-wide instance).
  static FileSystem& posix();
};

// Holds an exclusive flock on DIR/LOCK for as long as it lives. Fails with
// kLocked, naming the directory, if another process holds it.
// Replaces dir/name with `bytes`, durably and atomically: dir/name.tmp
// (a leftover from a crash removed first), the bytes, fdatasync, rename over
// dir/name, fsync of dir. After a crash dir/name is the old file or the new
// one, never a mix; a .tmp may be left behind.
// The whole content of the file at `path`.
Result<std::string> read_whole_file(FileSystem& fs, const std::string& path);

Status write_file_atomically(FileSystem& fs, const std::string& dir, const std::string& name,
                             std::string_view bytes);

class DirectoryLock {
 public:
  static Result<std::unique_ptr<DirectoryLock>> acquire(const std::string& dir);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  explicit DirectoryLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace annal::engine
