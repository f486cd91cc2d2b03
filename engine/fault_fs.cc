#include "engine/fault_fs.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace annal::engine {

namespace {

std::string normal_path(const std::string& p) {
  std::string s = std::filesystem::path(p).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string parent_of(const std::string& p) {
  return normal_path(std::filesystem::path(normal_path(p)).parent_path().string());
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

class FaultInjectionFileSystem::FaultFile final : public File {
 public:
  FaultFile(FaultInjectionFileSystem& fs, std::unique_ptr<File> base, std::string path)
      : fs_(fs), base_(std::move(base)), path_(std::move(path)) {}
  const std::string& path() const override { return base_->path(); }
  Status pwrite(std::uint64_t offset, std::span<const std::byte> data) override {
    return fs_.do_pwrite(*base_, path_, offset, data);
  }
  Status pread(std::uint64_t offset, std::span<std::byte> out) override {
    return base_->pread(offset, out);
  }
  Status allocate(std::uint64_t size) override { return fs_.do_allocate(*base_, path_, size); }
  Status datasync() override { return fs_.do_sync(*base_, path_, true); }
  Status sync() override { return fs_.do_sync(*base_, path_, false); }
  Result<std::uint64_t> size() override { return base_->size(); }
  Result<std::shared_ptr<const Mapping>> map(std::size_t length) override {
    return base_->map(length);
  }

 private:
  FaultInjectionFileSystem& fs_;
  std::unique_ptr<File> base_;
  std::string path_;  // normalised, the key of the fault state
};

FaultInjectionFileSystem::FaultInjectionFileSystem(FileSystem& base) : base_(base) {}
FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

Status FaultInjectionFileSystem::check_alive(const char* op, const std::string& path,
                                             bool* dies_now) {
  if (dies_now != nullptr) *dies_now = false;
  if (frozen_)
    return Status(Errc::kIoError,
                  fmt::format("{} {}: process is dead (fault injection)", op, path));
  if (freeze_countdown_ > 0 && --freeze_countdown_ == 0) {
    frozen_ = true;
    if (dies_now != nullptr) *dies_now = true;
    return Status(Errc::kIoError,
                  fmt::format("{} {}: process died here (fault injection)", op, path));
  }
  return Status::ok();
}

Result<std::unique_ptr<File>> FaultInjectionFileSystem::open(const std::string& path,
                                                             OpenOptions options) {
  const std::string key = normal_path(path);
  std::lock_guard l(mu_);
  const bool creating = options.create && !base_.exists(path);
  if (creating) ANNAL_RETURN_IF_ERROR(check_alive("create", path, nullptr));
  auto f = base_.open(path, options);
  if (!f) return f.status();
  if (creating) dir_ops_[parent_of(key)].created.push_back(key);
  return std::unique_ptr<File>(std::make_unique<FaultFile>(*this, std::move(*f), key));
}

Status FaultInjectionFileSystem::do_pwrite(File& base, const std::string& path,
                                           std::uint64_t offset, std::span<const std::byte> data) {
  std::lock_guard l(mu_);
  bool dies_now = false;
  Status alive = check_alive("write", path, &dies_now);
  std::size_t n = data.size();
  Status result;
  if (!alive) {
    if (!dies_now) return alive;
    n = data.empty() ? 0
                     : static_cast<std::size_t>(rng_() % (data.size() + 1));  // torn at any byte
    result = alive;
  } else if (pwrite_enospc_ > 0) {
    --pwrite_enospc_;
    n = data.size() / 2;
    result = Status(
        Errc::kNoSpace,
        fmt::format("write {} at offset {}: No space left on device (injected)", path, offset));
  }
  if (n > 0) {
    Write w;
    w.seq = ++seq_;
    w.offset = offset;
    auto size = base.size();
    if (!size) return size.status();
    if (offset < *size) {
      w.pre.resize(std::min<std::uint64_t>(n, *size - offset));
      ANNAL_RETURN_IF_ERROR(base.pread(
          offset, std::span<std::byte>(reinterpret_cast<std::byte*>(w.pre.data()), w.pre.size())));
    }
    w.post.assign(reinterpret_cast<const char*>(data.data()), n);
    ANNAL_RETURN_IF_ERROR(base.pwrite(offset, data.first(n)));
    unsynced_[path].push_back(std::move(w));
  }
  return result;
}

Status FaultInjectionFileSystem::do_allocate(File& base, const std::string& path,
                                             std::uint64_t size) {
  std::lock_guard l(mu_);
  ANNAL_RETURN_IF_ERROR(check_alive("allocate", path, nullptr));
  if (allocate_enospc_)
    return Status(
        Errc::kNoSpace,
        fmt::format("allocate {} bytes for {}: No space left on device (injected)", size, path));
  return base.allocate(size);
}

Status FaultInjectionFileSystem::do_sync(File& base, const std::string& path, bool data_only) {
  std::lock_guard l(mu_);
  ANNAL_RETURN_IF_ERROR(check_alive(data_only ? "fdatasync" : "fsync", path, nullptr));
  if (data_only) {
    ++datasync_calls_;
    if (datasync_countdown_ > 0 && --datasync_countdown_ == 0)
      return Status(Errc::kIoError,
                    fmt::format("fdatasync {}: Input/output error (injected)", path));
  }
  ANNAL_RETURN_IF_ERROR(data_only ? base.datasync() : base.sync());
  unsynced_.erase(path);
  return Status::ok();
}

Status FaultInjectionFileSystem::sync_dir(const std::string& dir) {
  std::lock_guard l(mu_);
  ANNAL_RETURN_IF_ERROR(check_alive("fsync directory", dir, nullptr));
  ANNAL_RETURN_IF_ERROR(base_.sync_dir(dir));
  dir_ops_.erase(normal_path(dir));
  return Status::ok();
}

Status FaultInjectionFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard l(mu_);
  ANNAL_RETURN_IF_ERROR(check_alive("rename", from, nullptr));
  std::optional<std::string> replaced;
  if (base_.exists(to)) {
    // Until the directory is synced, a crash may bring the old file back.
    auto file = base_.open(to, OpenOptions{.read_only = true});
    if (!file) return file.status();
    auto size = (*file)->size();
    if (!size) return size.status();
    replaced.emplace(*size, '\0');
    ANNAL_RETURN_IF_ERROR((*file)->pread(
        0, std::span<std::byte>(reinterpret_cast<std::byte*>(replaced->data()), replaced->size())));
  }
  ANNAL_RETURN_IF_ERROR(base_.rename(from, to));
  const std::string f = normal_path(from), t = normal_path(to);
  if (auto it = unsynced_.find(f); it != unsynced_.end()) {
    unsynced_[t] = std::move(it->second);
    unsynced_.erase(f);
  }
  dir_ops_[parent_of(t)].renames.push_back(Rename{f, t, std::move(replaced)});
  return Status::ok();
}

Status FaultInjectionFileSystem::remove(const std::string& path) {
  std::lock_guard l(mu_);
  ANNAL_RETURN_IF_ERROR(check_alive("remove", path, nullptr));
  ANNAL_RETURN_IF_ERROR(base_.remove(path));
  const std::string key = normal_path(path);
  unsynced_.erase(key);
  auto& created = dir_ops_[parent_of(key)].created;
  created.erase(std::remove(created.begin(), created.end(), key), created.end());
  return Status::ok();
}

Status FaultInjectionFileSystem::create_dirs(const std::string& dir) {
  return base_.create_dirs(dir);
}
Result<std::vector<std::string>> FaultInjectionFileSystem::list(const std::string& dir) {
  return base_.list(dir);
}
bool FaultInjectionFileSystem::exists(const std::string& path) {
  return base_.exists(path);
}

Result<std::uint64_t> FaultInjectionFileSystem::free_bytes(const std::string& dir) {
  {
    std::lock_guard l(mu_);
    if (free_bytes_) return *free_bytes_;
  }
  return base_.free_bytes(dir);
}

void FaultInjectionFileSystem::fail_nth_datasync(std::uint64_t n) {
  std::lock_guard l(mu_);
  datasync_countdown_ = n;
}
void FaultInjectionFileSystem::set_allocate_enospc(bool on) {
  std::lock_guard l(mu_);
  allocate_enospc_ = on;
}
void FaultInjectionFileSystem::fail_pwrites_enospc(std::uint64_t count) {
  std::lock_guard l(mu_);
  pwrite_enospc_ = count;
}
void FaultInjectionFileSystem::set_free_bytes(std::optional<std::uint64_t> bytes) {
  std::lock_guard l(mu_);
  free_bytes_ = bytes;
}
void FaultInjectionFileSystem::freeze_after(std::uint64_t n, std::uint64_t seed) {
  std::lock_guard l(mu_);
  freeze_countdown_ = n;
  rng_.seed(seed);
}
bool FaultInjectionFileSystem::frozen() const {
  std::lock_guard l(mu_);
  return frozen_;
}
std::uint64_t FaultInjectionFileSystem::datasync_calls() const {
  std::lock_guard l(mu_);
  return datasync_calls_;
}
std::uint64_t FaultInjectionFileSystem::out_of_order_tears() const {
  std::lock_guard l(mu_);
  return out_of_order_tears_;
}
std::uint64_t FaultInjectionFileSystem::unsynced_writes() const {
  std::lock_guard l(mu_);
  std::uint64_t n = 0;
  for (const auto& [p, w] : unsynced_) n += w.size();
  return n;
}

Status FaultInjectionFileSystem::crash(std::uint64_t seed, CrashOptions options) {
  std::lock_guard l(mu_);
  std::mt19937_64 rng(seed);
  // The newest unsynced write may survive in part.
  const Write* last = nullptr;
  std::string last_path;
  for (const auto& [path, writes] : unsynced_)
    for (const auto& w : writes)
      if (last == nullptr || w.seq > last->seq) {
        last = &w;
        last_path = path;
      }
  const bool sectors = options.tear_last_write && options.mode == TearMode::kSectors;
  std::size_t keep = 0;
  if (last != nullptr && options.tear_last_write && !sectors)
    keep = static_cast<std::size_t>(rng() % (last->post.size() + 1));

  for (auto& [path, writes] : unsynced_) {
    if (!base_.exists(path)) continue;
    auto f = base_.open(path, OpenOptions{});
    if (!f) return f.status();
    for (auto it = writes.rbegin(); it != writes.rend(); ++it) {
      std::string restore = it->pre;
      restore.resize(it->post.size(), '\0');  // past the old EOF: zeros
      ANNAL_RETURN_IF_ERROR((*f)->pwrite(it->offset, as_bytes(restore)));
    }
    if (last != nullptr && path == last_path && keep > 0)
      ANNAL_RETURN_IF_ERROR((*f)->pwrite(last->offset, as_bytes(last->post).first(keep)));
    if (sectors) ANNAL_RETURN_IF_ERROR(keep_sectors(**f, writes, rng));
  }
  for (auto& [dir, ops] : dir_ops_) {
    for (auto it = ops.renames.rbegin(); it != ops.renames.rend(); ++it) {
      if (base_.exists(it->to)) ANNAL_RETURN_IF_ERROR(base_.rename(it->to, it->from));
      if (it->replaced) {
        auto f = base_.open(it->to, OpenOptions{.create = true});
        if (!f) return f.status();
        ANNAL_RETURN_IF_ERROR((*f)->pwrite(0, as_bytes(*it->replaced)));
        ANNAL_RETURN_IF_ERROR((*f)->sync());
      }
    }
    for (const auto& p : ops.created)
      if (base_.exists(p)) ANNAL_RETURN_IF_ERROR(base_.remove(p));
  }
  // Renamed-back files created in another unsynced directory are covered by
  // that directory's list; what remains is durable.
  unsynced_.clear();
  dir_ops_.clear();
  datasync_countdown_ = 0;
  allocate_enospc_ = false;
  pwrite_enospc_ = 0;
  free_bytes_.reset();
  freeze_countdown_ = 0;
  frozen_ = false;
  return Status::ok();
}

Status FaultInjectionFileSystem::keep_sectors(File& file, const std::vector<Write>& writes,
                                              std::mt19937_64& rng) {
  // A file's writes are in the order they were made (seq ascending), so a
  // sector kept from a newer write lands over an older one's, as on a disk.
  for (const Write& w : writes) {
    const std::uint64_t end = w.offset + w.post.size();
    bool dropped = false;
    for (std::uint64_t s = w.offset - w.offset % kSectorSize; s < end; s += kSectorSize) {
      const std::uint64_t from = std::max(s, w.offset);
      const std::uint64_t to = std::min(s + kSectorSize, end);
      if (rng() % 2 == 0) {
        dropped = true;
        continue;
      }
      if (dropped) ++out_of_order_tears_;
      dropped = false;
      ANNAL_RETURN_IF_ERROR(
          file.pwrite(from, as_bytes(w.post).subspan(from - w.offset, to - from)));
    }
  }
  return Status::ok();
}

}  // namespace annal::engine
