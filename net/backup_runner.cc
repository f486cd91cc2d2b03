#include "net/backup_runner.h"

#include "engine/thread_name.h"

namespace annal::net::detail {

BackupRunner::BackupRunner(index::Store& store, std::string groups_dir, std::string node_version)
    : store_(store), groups_dir_(std::move(groups_dir)), node_version_(std::move(node_version)) {}

BackupRunner::~BackupRunner() {
  stop();
}

Status BackupRunner::start(index::BackupOptions options, Done done) {
  std::lock_guard l(mu_);
  if (stopping_) return Status(Errc::kShuttingDown, "the node is stopping");
  if (running_)
    return Status(Errc::kBusy, "a backup is already running on this node; one at a time");
  if (thread_.joinable()) thread_.join();  // the previous one, finished
  running_ = true;
  options.node_version = node_version_;
  if (options.groups_dir.empty()) options.groups_dir = groups_dir_;
  options.cancelled = [this] { return cancel_.load(std::memory_order_relaxed); };
  thread_ = std::thread([this, options = std::move(options), done = std::move(done)] {
    engine::set_thread_name("annal-backup");
    auto r = store_.backup(options);
    {
      std::lock_guard l2(mu_);
      running_ = false;
    }
    done(r);
  });
  return Status::ok();
}

void BackupRunner::stop() {
  std::thread t;
  {
    std::lock_guard l(mu_);
    stopping_ = true;
    t = std::move(thread_);
  }
  cancel_ = true;
  if (t.joinable()) t.join();
}

}  // namespace annal::net::detail
