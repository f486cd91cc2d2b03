#pragma once
// Helpers every test folder uses: a temporary directory that removes itself,
// and numbers from the environment (for the longer variants of bounded tests).

#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace annal::test {

// A fresh directory under the system temp dir (or /dev/shm with in_memory,
// when it exists: for tests whose durability is simulated, so real fdatasyncs
// only cost time), removed recursively on destruction.
class TempDir {
 public:
  explicit TempDir(const char* prefix = "annal-test", bool in_memory = false) {
    std::filesystem::path base = std::filesystem::temp_directory_path();
    std::error_code ec;
    if (in_memory && std::filesystem::is_directory("/dev/shm", ec)) base = "/dev/shm";
    std::string tmpl = (base / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An unsigned integer from the environment, or `fallback` when unset or not
// a whole number.
inline std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  return (end != nullptr && *end == '\0') ? n : fallback;
}

}  // namespace annal::test
