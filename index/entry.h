#pragma once
// One per-stream index entry and the helpers shared by the index's parts.
// The on-disk layout is described in docs/storage-format.md ("Stream index files").

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace annal::index {

static_assert(std::endian::native == std::endian::little,
              "index files are little-endian and read in place");

// (stream hash, revision) -> global position. Entries sort by (hash, revision,
// position); two streams whose names hash alike share a hash and are told
// apart by the stream name stored in the record at `position`.
struct IndexEntry {
  std::uint64_t hash = 0;
  std::uint64_t revision = 0;
  std::uint64_t position = 0;

  friend constexpr bool operator==(const IndexEntry&, const IndexEntry&) = default;
  friend constexpr bool operator<(const IndexEntry& a, const IndexEntry& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    if (a.revision != b.revision) return a.revision < b.revision;
    return a.position < b.position;
  }
};
static_assert(sizeof(IndexEntry) == 24);

// XXH3_64bits of the stream name (the production stream hash).
std::uint64_t xxh3_stream_hash(std::string_view stream);

inline void put_u32(std::byte* p, std::uint32_t v) {
  std::memcpy(p, &v, 4);
}
inline void put_u64(std::byte* p, std::uint64_t v) {
  std::memcpy(p, &v, 8);
}
inline std::uint32_t get_u32(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t get_u64(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace annal::index
