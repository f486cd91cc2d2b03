#pragma once
// Helpers for the libFuzzer targets: a check that aborts (so libFuzzer saves
// the input), checksum fix-ups that let mutated bytes past the checksums to
// the structural checks behind them.

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

#include "engine/endian.h"
#include "engine/format.h"

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace annal::fuzz {

namespace le = engine::le;
namespace format = engine::format;

// Recomputes the checksum of the record at `offset` if its length field is
// plausible; returns the offset after it, or 0 when no record could be fixed.
inline std::size_t fix_record_checksum(std::string& buf, std::size_t offset) {
  if (offset + format::kRecordMinSize > buf.size()) return 0;
  auto* p = reinterpret_cast<std::byte*>(buf.data() + offset);
  const std::uint32_t len = le::get_u32(p);
  if (len < format::kRecordMinSize || len % format::kRecordAlign != 0 || offset + len > buf.size())
    return 0;
  // Seeded with u64le(bytes[0, 8)): the length and flags (docs/storage-format.md).
  le::put_u64(p + 8, XXH3_64bits_withSeed(p + 16, len - 16, le::get_u64(p)));
  return offset + len;
}

// Fixes the checksums of consecutive records from `offset`.
inline void fix_record_chain(std::string& buf, std::size_t offset) {
  while (offset != 0 && offset < buf.size()) offset = fix_record_checksum(buf, offset);
}

inline std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace annal::fuzz
