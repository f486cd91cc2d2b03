#pragma once
// A fault-injecting FileSystem for tests (LevelDB's fault-injection env,
// RocksDB's FaultInjectionTestFS): it wraps a real FileSystem, so files are
// real and memory maps keep working, and remembers what a power loss would
// take away.
//
// Model:
// - Every pwrite is recorded with the pre-image of the bytes it overwrote,
//   until the file's next datasync()/sync(). crash() restores those
//   pre-images (newest first), i.e. drops every unsynced write, optionally
//   keeping a random prefix of the very last write (a write torn at any byte,
//   TearMode::kPrefix), or keeping a random subset of the 512-byte sectors of
//   every unsynced write (TearMode::kSectors: what a disk with a volatile
//   cache may persist at a power loss, where a later sector of a write can
//   survive an earlier one).
// - Files created (and renames done) since their directory's last sync_dir()
//   are removed (undone) by crash(); a file a rename replaced comes back.
//   Removals and allocations are durable at once.
// - Faults: the Nth datasync() fails with EIO; allocate() and/or pwrite() fail
//   with ENOSPC (a failing pwrite first writes half of its bytes); free_bytes()
//   reports a configured value; freeze_after(n) makes the n-th mutating
//   operation from now the moment of a crash: a pwrite then writes only a
//   random prefix, and it and every later mutating call fail with kIoError,
//   as if the process had died there.
// Everything is deterministic given the seeds and the order of calls.
//
// Thread safety: all methods may be called from any thread (one internal
// mutex). crash() must only be called once nothing uses files opened through
// this file system any more (close the Log first); maps may outlive it.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/file.h"

namespace annal::engine {

class FaultInjectionFileSystem final : public FileSystem {
 public:
  explicit FaultInjectionFileSystem(FileSystem& base = FileSystem::posix());
  ~FaultInjectionFileSystem() override;

  Result<std::unique_ptr<File>> open(const std::string& path, OpenOptions options) override;
  Status sync_dir(const std::string& dir) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status create_dirs(const std::string& dir) override;
  Result<std::vector<std::string>> list(const std::string& dir) override;
  bool exists(const std::string& path) override;
  Result<std::uint64_t> free_bytes(const std::string& dir) override;

  // ---- Faults (all reset by crash()) ----
  // The n-th datasync() from now (1-based) fails with EIO; 0 disables.
  void fail_nth_datasync(std::uint64_t n);
  // While set, allocate() fails with ENOSPC.
  void set_allocate_enospc(bool on);
  // The next `count` pwrites write half their bytes, then fail with ENOSPC.
  void fail_pwrites_enospc(std::uint64_t count);
  // free_bytes() reports this instead of the real value (nullopt: real).
  void set_free_bytes(std::optional<std::uint64_t> bytes);
  // The n-th mutating operation from now (1-based) is where the process
  // "dies"; see the model above. `seed` picks the torn prefix.
  void freeze_after(std::uint64_t n, std::uint64_t seed);
  bool frozen() const;

  // Simulated power loss; see the model above. Unfreezes and clears faults.
  enum class TearMode {
    kPrefix,   // the newest unsynced write keeps a random prefix, older ones nothing
    kSectors,  // every unsynced write keeps a random subset of its sectors
  };
  static constexpr std::uint64_t kSectorSize = 512;
  struct CrashOptions {
    bool tear_last_write = true;  // false: every unsynced write is dropped whole
    TearMode mode = TearMode::kPrefix;
  };
  Status crash(std::uint64_t seed, CrashOptions options);
  Status crash(std::uint64_t seed) { return crash(seed, CrashOptions{}); }

  // Counters since construction.
  std::uint64_t datasync_calls() const;
  std::uint64_t unsynced_writes() const;
  // kSectors crashes: sectors of unsynced writes kept after a dropped one of
  // the same write (a tear that is not a prefix).
  std::uint64_t out_of_order_tears() const;

  class FaultFile;

 private:
  struct Write {
    std::uint64_t seq;
    std::uint64_t offset;
    std::string pre;   // the bytes that were there (shorter than post past EOF)
    std::string post;  // the bytes written
  };
  struct Rename {
    std::string from, to;
    std::optional<std::string> replaced;  // what `to` held before, if it existed
  };
  struct DirOps {
    std::vector<std::string> created;  // paths
    std::vector<Rename> renames;
  };

  // Returns non-ok if the operation must fail because the process is "dead"
  // (or dies right now; then *dies_now is set). Requires mu_.
  Status check_alive(const char* op, const std::string& path, bool* dies_now);
  Status do_pwrite(File& base, const std::string& path, std::uint64_t offset,
                   std::span<const std::byte> data);
  Status do_allocate(File& base, const std::string& path, std::uint64_t size);
  Status do_sync(File& base, const std::string& path, bool data_only);
  // Rewrites, oldest first, the sectors of `writes` that a kSectors crash keeps.
  Status keep_sectors(File& file, const std::vector<Write>& writes, std::mt19937_64& rng);

  FileSystem& base_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Write>> unsynced_;  // by path
  std::map<std::string, DirOps> dir_ops_;               // by directory
  std::uint64_t seq_ = 0;

  std::uint64_t datasync_countdown_ = 0;
  bool allocate_enospc_ = false;
  std::uint64_t pwrite_enospc_ = 0;
  std::optional<std::uint64_t> free_bytes_;
  std::uint64_t freeze_countdown_ = 0;
  bool frozen_ = false;
  std::mt19937_64 rng_{0};
  std::uint64_t datasync_calls_ = 0;
  std::uint64_t out_of_order_tears_ = 0;
};

}  // namespace annal::engine
