#pragma once
// Damaging files on purpose: the tests that check every corruption is found.

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

namespace annal::test {

// XORs the byte at `offset` of `path` with `mask` (in place). Aborts if the
// file cannot be opened or is shorter, so a test never "damages" nothing.
inline void flip_bits(const std::string& path, std::uint64_t offset, std::uint8_t mask = 0x10) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char b = 0;
  if (!f.read(&b, 1)) std::abort();
  b = static_cast<char>(b ^ static_cast<char>(mask));
  f.seekp(static_cast<std::streamoff>(offset));
  if (!f.write(&b, 1)) std::abort();
}

}  // namespace annal::test
