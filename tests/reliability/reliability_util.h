#pragma once
// Helpers shared by the reliability tests: temp directories, seeds from the
// environment, and deterministic event content.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "engine/types.h"
#include "tests/common/temp_dir.h"

namespace annal::reliability {

struct TempDir : test::TempDir {
  explicit TempDir(const char* prefix = "annal-rel", bool in_memory = false)
      : test::TempDir(prefix, in_memory) {}
};
using test::env_u64;

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
