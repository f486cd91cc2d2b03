#include "index/backup_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace annal::index::backup {

namespace {

constexpr std::size_t kChunk = 1u << 20;
constexpr std::uint64_t kWriteBehind = 8u << 20;

Status os_error(const std::string& what, const std::string& path, int err) {
  const Errc code = err == ENOENT   ? Errc::kNotFound
                    : err == ENOSPC ? Errc::kNoSpace
                    : err == EEXIST ? Errc::kAlreadyExists
                                    : Errc::kIoError;
  return Status(code, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct HashState {
  XXH3_state_t* s = XXH3_createState();
  HashState() { XXH3_64bits_reset(s); }
  HashState(const HashState&) = delete;
  HashState& operator=(const HashState&) = delete;
  ~HashState() { XXH3_freeState(s); }
  void add(const void* p, std::size_t n) { XXH3_64bits_update(s, p, n); }
  std::uint64_t digest() const { return XXH3_64bits_digest(s); }
};

Status read_exact(int fd, const std::string& name, std::uint64_t off, char* buf, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return os_error("reading", name, errno);
    }
    if (r == 0)
      return Status(Errc::kIoError, fmt::format("reading {}: file ends at {} bytes, expected {}",
                                                name, off + got, off + n));
    got += static_cast<std::size_t>(r);
  }
  return Status::ok();
}

Status write_all(int fd, const std::string& name, std::uint64_t off, const char* buf,
                 std::size_t n) {
  std::size_t put = 0;
  while (put < n) {
    const ssize_t r = ::pwrite(fd, buf + put, n - put, static_cast<off_t>(off + put));
    if (r < 0) {
      if (errno == EINTR) continue;
      return os_error("writing", name, errno);
    }
    put += static_cast<std::size_t>(r);
  }
  return Status::ok();
}

Status check_cancel(const CopyOptions& o, const std::string& name) {
  if (o.cancelled && o.cancelled())
    return Status(Errc::kShuttingDown, fmt::format("cancelled while copying {}", name));
  return Status::ok();
}

// Reads [0, length) of src (hashing it, through the throttle), handing each
// chunk to `sink` (may be null), then hashes zeros up to `size`.
Status stream(int fd, const std::string& name, std::uint64_t length, std::uint64_t size,
              const CopyOptions& o, HashState& h,
              const std::function<Status(std::uint64_t, const char*, std::size_t)>& sink) {
  std::vector<char> buf(kChunk);
  for (std::uint64_t off = 0; off < length;) {
    ANNAL_RETURN_IF_ERROR(check_cancel(o, name));
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, length - off));
    ANNAL_RETURN_IF_ERROR(read_exact(fd, name, off, buf.data(), n));
    h.add(buf.data(), n);
    if (sink) ANNAL_RETURN_IF_ERROR(sink(off, buf.data(), n));
    if (o.throttle != nullptr) o.throttle->pace(n);
    off += n;
  }
  if (size > length) {
    std::fill(buf.begin(), buf.end(), '\0');
    for (std::uint64_t off = length; off < size;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - off));
      h.add(buf.data(), n);
      off += n;
    }
  }
  return Status::ok();
}

Result<std::uint64_t> file_size(int fd, const std::string& name) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return os_error("stat of", name, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

}  // namespace

Throttle::Throttle(std::uint64_t bytes_per_second) : budget_(bytes_per_second), t0_(Clock::now()) {}

void Throttle::pace(std::uint64_t bytes) {
  done_ += bytes;
  if (budget_ == 0) return;
  const auto due = t0_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                             static_cast<double>(done_) / static_cast<double>(budget_)));
  std::this_thread::sleep_until(due);
}

Result<CopyResult> copy_prefix(int src_fd, const std::string& src_name, std::uint64_t length,
                               std::uint64_t size, bool allocate, const std::string& dest,
                               const CopyOptions& options) {
  ANNAL_CHECK(size >= length, "a copy shorter than its prefix");
  Fd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (out.fd < 0) return os_error("creating", dest, errno);
  if (allocate && size > 0) {
    const int e = ::posix_fallocate(out.fd, 0, static_cast<off_t>(size));
    if (e != 0) return os_error("allocating", dest, e);
  }
  HashState h;
  // Written back as it goes, 8 MiB at a time, waiting for each: the copy
  // never holds more than that dirty, so neither the final fsync nor the
  // kernel's own writeback lands a burst on the node's fdatasyncs.
  std::uint64_t flushed = 0;
  ANNAL_RETURN_IF_ERROR(stream(src_fd, src_name, length, size, options, h,
                               [&](std::uint64_t off, const char* p, std::size_t n) -> Status {
                                 ANNAL_RETURN_IF_ERROR(write_all(out.fd, dest, off, p, n));
                                 if (off + n - flushed >= kWriteBehind) {
                                   ::sync_file_range(
                                       out.fd, static_cast<off_t>(flushed),
                                       static_cast<off_t>(off + n - flushed),
                                       SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
                                   flushed = off + n;
                                 }
                                 return Status::ok();
                               }));
  if (!allocate && size > length && ::ftruncate(out.fd, static_cast<off_t>(size)) != 0)
    return os_error("extending", dest, errno);
  if (::fsync(out.fd) != 0) return os_error("syncing", dest, errno);
  return CopyResult{size, h.digest(), false};
}

Result<CopyResult> copy_file(const std::string& src, const std::string& dest,
                             const CopyOptions& options, bool allocate) {
  Fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return os_error("opening", src, errno);
  auto size = file_size(in.fd, src);
  if (!size) return size.status();
  return copy_prefix(in.fd, src, *size, *size, allocate, dest, options);
}

Result<CopyResult> hash_file(const std::string& path, const CopyOptions& options) {
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return os_error("opening", path, errno);
  auto size = file_size(in.fd, path);
  if (!size) return size.status();
  HashState h;
  ANNAL_RETURN_IF_ERROR(stream(in.fd, path, *size, *size, options, h, nullptr));
  return CopyResult{*size, h.digest(), false};
}

Result<CopyResult> link_file(const std::string& src, const std::string& dest,
                             const CopyOptions& options, bool* cannot_link) {
  if (::link(src.c_str(), dest.c_str()) != 0) {
    const int e = errno;
    if (e == EXDEV || e == EPERM || e == EMLINK || e == ENOTSUP) {
      if (cannot_link != nullptr) *cannot_link = true;
      return Status(Errc::kInvalidArgument,
                    fmt::format("cannot hard-link {} as {}: {}", src, dest, std::strerror(e)));
    }
    return os_error(fmt::format("linking {} as", src), dest, e);
  }
  // The link is the same inode: hash what the backup now holds.
  auto r = hash_file(dest, options);
  if (r) r->linked = true;
  return r;
}

Status sync_dir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd < 0) return os_error("opening directory", dir, errno);
  if (::fsync(d.fd) != 0) return os_error("syncing directory", dir, errno);
  return Status::ok();
}

Status make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0) return os_error("creating directory", dir, errno);
  return Status::ok();
}

Result<bool> empty_dir_or_missing(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return os_error("stat of", path, errno);
  }
  if (!S_ISDIR(st.st_mode))
    return Status(Errc::kAlreadyExists, fmt::format("{} exists and is not a directory", path));
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(path.c_str()), &::closedir);
  if (!d) return os_error("listing", path, errno);
  while (const dirent* e = ::readdir(d.get())) {
    const std::string n = e->d_name;
    if (n != "." && n != "..")
      return Status(Errc::kAlreadyExists,
                    fmt::format("{} exists and is not empty (it holds {})", path, n));
  }
  return true;
}

Result<int> open_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return -1;
    return os_error("opening", path, errno);
  }
  return fd;
}

void close_fd(int fd) {
  if (fd >= 0) ::close(fd);
}

Result<std::string> read_small(const std::string& path) {
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return os_error("opening", path, errno);
  auto size = file_size(in.fd, path);
  if (!size) return size.status();
  std::string s(*size, '\0');
  ANNAL_RETURN_IF_ERROR(read_exact(in.fd, path, 0, s.data(), s.size()));
  return s;
}

Status write_small(const std::string& path, const std::string& bytes) {
  Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (out.fd < 0) return os_error("creating", path, errno);
  ANNAL_RETURN_IF_ERROR(write_all(out.fd, path, 0, bytes.data(), bytes.size()));
  if (::fsync(out.fd) != 0) return os_error("syncing", path, errno);
  return Status::ok();
}

}  // namespace annal::index::backup
