#pragma once
// The node's backups (docs/operations.md, "Backup and restore"): each
// `backup` request runs index::Store::backup on a thread of its own
// (`annal-backup`), so a copy of minutes to hours never holds a network
// thread; one at a time; cancelled at stop.
//
// Thread safety: start() and stop() may be called from any thread.

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "index/store.h"

namespace annal::net::detail {

class BackupRunner {
 public:
  using Done = std::function<void(const Result<index::BackupReport>&)>;
  BackupRunner(index::Store& store, std::string groups_dir, std::string node_version);
  ~BackupRunner();  // stop()
  BackupRunner(const BackupRunner&) = delete;
  BackupRunner& operator=(const BackupRunner&) = delete;

  // Starts a backup; `done` runs on the backup's thread with its report or
  // error. kBusy (and `done` is not called) while another one runs,
  // kShuttingDown after stop().
  Status start(index::BackupOptions options, Done done);
  // Cancels a running backup between chunks (it answers shutting_down and
  // removes DEST.partial) and joins its thread.
  void stop();

 private:
  index::Store& store_;
  const std::string groups_dir_;
  const std::string node_version_;
  std::mutex mu_;
  bool running_ = false;   // (mu_)
  bool stopping_ = false;  // (mu_)
  std::thread thread_;     // (mu_) the last backup's, joined before the next
  std::atomic<bool> cancel_{false};
};

}  // namespace annal::net::detail
