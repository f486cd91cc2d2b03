// disk_probe: the disk's own limits, measured the way annal uses the disk
// (buffered pwrite + fdatasync), so benchmark figures can be read as a
// fraction of what the hardware allows. Used by bench/run.sh when fio is not
// installed (and alongside it when it is).
//
//   annal_disk_probe [--dir DIR] [--seconds S] [--sync-only] [--json]
//
// Measures, each for S seconds (default 1.5):
//   sync_written:     4 KiB sequential pwrite + fdatasync into blocks already
//                     written and synced (metadata unchanged per sync)
//   sync_352B:        the same with 352-byte writes (one 256-byte event's
//                     record), as annal writes at 1 append in flight
//   sync_fallocated:  the same into a freshly fallocate()d file (unwritten
//                     extents: every sync also commits extent conversion), as
//                     annal's preallocated segments do
//   group_<N>K:       N KiB pwrite + fdatasync in a loop into written blocks:
//                     bandwidth a group commit of that size can reach
//   seq_write:        256 MiB of 1 MiB buffered writes then one fdatasync
// and prints latency percentiles and rates.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "annal_disk_probe: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

struct SyncResult {
  std::string name;
  std::size_t block = 0;
  std::uint64_t ops = 0;
  double seconds = 0;
  std::vector<double> lat_us;
  double pct(double q) const {
    if (lat_us.empty()) return 0;
    auto v = lat_us;
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  }
  double ops_per_s() const { return seconds > 0 ? static_cast<double>(ops) / seconds : 0; }
  double mb_per_s() const { return ops_per_s() * static_cast<double>(block) / 1e6; }
};

void pwrite_all(int fd, const char* p, std::size_t n, off_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("pwrite");
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    off += w;
  }
}

// A file of `size` bytes whose blocks are written and synced.
int written_file(const std::string& path, std::size_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + path);
  std::vector<char> buf(1 << 20, 0);
  for (std::size_t off = 0; off < size; off += buf.size())
    pwrite_all(fd, buf.data(), std::min(buf.size(), size - off), static_cast<off_t>(off));
  if (::fsync(fd) != 0) die("fsync");
  return fd;
}

int fallocated_file(const std::string& path, std::size_t size) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + path);
  if (::posix_fallocate(fd, 0, static_cast<off_t>(size)) != 0) die("fallocate");
  if (::fsync(fd) != 0) die("fsync");
  return fd;
}

SyncResult sync_loop(const std::string& name, int fd, std::size_t file_size, std::size_t block,
                     double seconds) {
  SyncResult r;
  r.name = name;
  r.block = block;
  std::vector<char> buf(block, 'a');
  off_t off = 0;
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    // Wrap around: the blocks stay written (no metadata change per sync).
    if (static_cast<std::size_t>(off) + block > file_size) off = 0;
    const auto a = Clock::now();
    pwrite_all(fd, buf.data(), block, off);
    if (::fdatasync(fd) != 0) die("fdatasync");
    const auto b = Clock::now();
    r.lat_us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
    off += static_cast<off_t>(block);
    ++r.ops;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

void print(const SyncResult& r, bool json, bool last) {
  if (json) {
    std::printf(
        "    \"%s\": {\"block_bytes\": %zu, \"ops\": %llu, \"seconds\": %.3f, \"syncs_per_s\": "
        "%.1f, "
        "\"mb_per_s\": %.2f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": "
        "%.4f}%s\n",
        r.name.c_str(), r.block, static_cast<unsigned long long>(r.ops), r.seconds, r.ops_per_s(),
        r.mb_per_s(), r.pct(0.5) / 1e3, r.pct(0.9) / 1e3, r.pct(0.99) / 1e3, r.pct(1.0) / 1e3,
        last ? "" : ",");
  } else {
    std::printf(
        "%-18s %7zu B  %8.0f syncs/s  %8.2f MB/s  p50 %.3f ms  p90 %.3f  p99 %.3f  max %.3f\n",
        r.name.c_str(), r.block, r.ops_per_s(), r.mb_per_s(), r.pct(0.5) / 1e3, r.pct(0.9) / 1e3,
        r.pct(0.99) / 1e3, r.pct(1.0) / 1e3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = std::filesystem::temp_directory_path().string();
  double seconds = 1.5;
  bool json = false;
  bool only_sync = false;  // --sync-only: just sync_written (a quick look right before an item)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (a == "--seconds" && i + 1 < argc)
      seconds = std::atof(argv[++i]);
    else if (a == "--json")
      json = true;
    else if (a == "--sync-only")
      only_sync = true;
    else {
      std::fprintf(stderr,
                   "usage: annal_disk_probe [--dir DIR] [--seconds S] [--sync-only] [--json]\n");
      return 2;
    }
  }
  const std::string base = dir + "/annal-disk-probe-" + std::to_string(::getpid());
  std::filesystem::create_directories(base);
  const std::size_t kFile = 64u << 20;
  std::vector<SyncResult> results;
  {
    int fd = written_file(base + "/written", kFile);
    results.push_back(sync_loop("sync_written", fd, kFile, 4096, seconds));
    // What annal does at 1 in flight: one ~350-byte record per fdatasync,
    // several records per 4 KiB page.
    results.push_back(sync_loop("sync_352B", fd, kFile, 352, seconds));
    for (std::size_t kib : {64u, 256u, 1024u}) {
      if (only_sync) break;
      // Into the same written blocks (sync_loop wraps around at the end).
      results.push_back(
          sync_loop("group_" + std::to_string(kib) + "K", fd, kFile, kib * 1024, seconds));
    }
    ::close(fd);
  }
  if (!only_sync) {
    int fd = fallocated_file(base + "/fallocated", kFile);
    results.push_back(sync_loop("sync_fallocated", fd, kFile, 4096, seconds));
    ::close(fd);
  }
  // Sequential bandwidth: 256 MiB buffered, one fdatasync (new file).
  const std::size_t kSeq = 256u << 20;
  double seq_mb_s = 0;
  if (!only_sync) {
    const std::string path = base + "/seq";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("open " + path);
    std::vector<char> buf(1 << 20, 'b');
    const auto t0 = Clock::now();
    for (std::size_t off = 0; off < kSeq; off += buf.size())
      pwrite_all(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (::fdatasync(fd) != 0) die("fdatasync");
    seq_mb_s =
        static_cast<double>(kSeq) / 1e6 / std::chrono::duration<double>(Clock::now() - t0).count();
    ::close(fd);
  }
  std::filesystem::remove_all(base);
  if (json) {
    std::printf(
        "{\n  \"tool\": \"annal_disk_probe\",\n  \"dir\": \"%s\",\n  \"seq_write_mb_per_s\": "
        "%.1f,\n  \"tests\": {\n",
        dir.c_str(), seq_mb_s);
    for (std::size_t i = 0; i < results.size(); ++i)
      print(results[i], true, i + 1 == results.size());
    std::printf("  }\n}\n");
  } else {
    for (const auto& r : results) print(r, false, false);
    if (!only_sync)
      std::printf("%-18s %.1f MB/s (256 MiB buffered, one fdatasync)\n", "seq_write", seq_mb_s);
  }
  return 0;
}
