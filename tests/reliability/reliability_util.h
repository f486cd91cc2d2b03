#pragma once
// Helpers shared by the reliability tests: temp directories, seeds from the
// environment, and deterministic event content.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "engine/types.h"

namespace annal::reliability {

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  // in_memory: under /dev/shm when it exists (for tests whose durability is
  // simulated, so real fdatasyncs only cost time).
  explicit TempDir(const char* prefix = "annal-rel", bool in_memory = false) {
    std::filesystem::path base = std::filesystem::temp_directory_path();
    std::error_code ec;
    if (in_memory && std::filesystem::is_directory("/dev/shm", ec)) base = "/dev/shm";
    std::string tmpl = (base / (std::string(prefix) + "-XXXXXX")).string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
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

// An unsigned integer from the environment, or `fallback` when unset or invalid.
inline std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v, &end, 10);
  return (end != nullptr && *end == '\0') ? n : fallback;
}

inline EventId random_id(std::mt19937_64& rng) {
  EventId id;
  std::uint64_t a = rng(), b = rng();
  for (int i = 0; i < 8; ++i) {
    id.bytes[i] = static_cast<std::uint8_t>(a >> (8 * i));
    id.bytes[8 + i] = static_cast<std::uint8_t>(b >> (8 * i));
  }
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0F) | 0x40);
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3F) | 0x80);
  return id;
}

// Valid JSON of roughly `size` bytes whose content depends on rng.
inline std::string random_json(std::mt19937_64& rng, std::size_t size) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s = "{\"n\":" + std::to_string(rng() % 1000000) + ",\"p\":\"";
  for (std::size_t i = 0; i < size; ++i) s.push_back(kAlphabet[rng() % (sizeof(kAlphabet) - 1)]);
  s += "\"}";
  return s;
}

}  // namespace annal::reliability
