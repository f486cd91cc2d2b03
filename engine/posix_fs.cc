// FileSystem::posix() and DirectoryLock.

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/file.h"

namespace annal::engine {

namespace {

Status errno_status(int err, const std::string& what) {
  const Errc code = (err == ENOSPC || err == EDQUOT) ? Errc::kNoSpace : Errc::kIoError;
  return Status(code, fmt::format("{}: {}", what, std::strerror(err)));
}

class PosixMapping final : public Mapping {
 public:
  PosixMapping(void* addr, std::size_t size) : addr_(addr), size_(size) {}
  ~PosixMapping() override {
    if (addr_ != nullptr && size_ > 0) ::munmap(addr_, size_);
  }
  const std::byte* data() const override { return static_cast<const std::byte*>(addr_); }
  std::size_t size() const override { return size_; }
  void release_resident() const override {
    // A read-only MAP_SHARED map: MADV_DONTNEED only unmaps the pages from
    // this process; the file's data and the page cache are untouched.
    if (addr_ != nullptr && size_ > 0) (void)::madvise(addr_, size_, MADV_DONTNEED);
  }

 private:
  void* addr_;
  std::size_t size_;
};

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }

  const std::string& path() const override { return path_; }

  Status pwrite(std::uint64_t offset, std::span<const std::byte> data) override {
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status(errno, fmt::format("write {} at offset {}", path_, offset + done));
      }
      done += static_cast<std::size_t>(n);
    }
    return Status::ok();
  }

  Status pread(std::uint64_t offset, std::span<std::byte> out) override {
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n =
          ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status(errno, fmt::format("read {} at offset {}", path_, offset + done));
      }
      if (n == 0)
        return Status(Errc::kCorruption, fmt::format("read {} at offset {}: unexpected end of file",
                                                     path_, offset + done));
      done += static_cast<std::size_t>(n);
    }
    return Status::ok();
  }

  Status allocate(std::uint64_t size) override {
    int rc;
    do {
      rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(size));
    } while (rc == EINTR);
    if (rc != 0) return errno_status(rc, fmt::format("allocate {} bytes for {}", size, path_));
    return Status::ok();
  }

  Status datasync() override {
    if (::fdatasync(fd_) != 0) return errno_status(errno, fmt::format("fdatasync {}", path_));
    return Status::ok();
  }

  Status sync() override {
    if (::fsync(fd_) != 0) return errno_status(errno, fmt::format("fsync {}", path_));
    return Status::ok();
  }

  Result<std::uint64_t> size() override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return errno_status(errno, fmt::format("stat {}", path_));
    return static_cast<std::uint64_t>(st.st_size);
  }

  Result<std::shared_ptr<const Mapping>> map(std::size_t length) override {
    if (length == 0)
      return std::shared_ptr<const Mapping>(std::make_shared<PosixMapping>(nullptr, 0));
    void* addr = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd_, 0);
    if (addr == MAP_FAILED)
      return errno_status(errno, fmt::format("mmap {} ({} bytes)", path_, length));
    return std::shared_ptr<const Mapping>(std::make_shared<PosixMapping>(addr, length));
  }

 private:
  int fd_;
  std::string path_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<File>> open(const std::string& path, OpenOptions options) override {
    int flags = O_CLOEXEC | (options.read_only ? O_RDONLY : O_RDWR);
    if (options.create) flags |= O_CREAT;
    if (options.create && options.exclusive) flags |= O_EXCL;
    int fd;
    do {
      fd = ::open(path.c_str(), flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
      if (errno == ENOENT)
        return Status(Errc::kNotFound, fmt::format("open {}: no such file", path));
      return errno_status(errno, fmt::format("open {}", path));
    }
    return std::unique_ptr<File>(std::make_unique<PosixFile>(fd, path));
  }

  Status sync_dir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status(errno, fmt::format("open directory {}", dir));
    Status s;
    if (::fsync(fd) != 0) s = errno_status(errno, fmt::format("fsync directory {}", dir));
    ::close(fd);
    return s;
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0)
      return errno_status(errno, fmt::format("rename {} to {}", from, to));
    return Status::ok();
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status(errno, fmt::format("remove {}", path));
    return Status::ok();
  }

  Status create_dirs(const std::string& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return Status(Errc::kIoError, fmt::format("create directory {}: {}", dir, ec.message()));
    return Status::ok();
  }

  Result<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno_status(errno, fmt::format("list directory {}", dir));
    std::vector<std::string> out;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(std::move(name));
    }
    ::closedir(d);
    return out;
  }

  bool exists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  Result<std::uint64_t> free_bytes(const std::string& dir) override {
    struct statvfs sv;
    if (::statvfs(dir.c_str(), &sv) != 0)
      return errno_status(errno, fmt::format("statvfs {}", dir));
    return static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
  }
};

}  // namespace

FileSystem& FileSystem::posix() {
  static PosixFileSystem fs;
  return fs;
}

Result<std::unique_ptr<DirectoryLock>> DirectoryLock::acquire(const std::string& dir) {
  const std::string path = dir + "/LOCK";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status(errno, fmt::format("open lock file {}", path));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK)
      return Status(Errc::kLocked,
                    fmt::format("data directory {} is locked by another process ({})", dir, path));
    return errno_status(err, fmt::format("lock {}", path));
  }
  return std::unique_ptr<DirectoryLock>(new DirectoryLock(fd));
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace annal::engine
