#include "index/index_block.h"

namespace annal::index {
namespace {

void put_varint(std::uint64_t v, std::vector<std::byte>& out) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::byte>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::byte>(v));
}

// false if the varint runs past end or beyond 64 bits.
bool get_varint(const std::byte*& p, const std::byte* end, std::uint64_t& v) {
  v = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (p == end) return false;
    const auto b = static_cast<std::uint64_t>(*p++);
    if (shift == 63 && b > 1) return false;
    v |= (b & 0x7F) << shift;
    if (b < 0x80) return true;
  }
  return false;
}

std::uint64_t zigzag(std::uint64_t d) {
  return (d << 1) ^ (0 - (d >> 63));
}
std::uint64_t unzigzag(std::uint64_t z) {
  return (z >> 1) ^ (0 - (z & 1));
}

}  // namespace

void encode_index_entry(const IndexEntry* prev, const IndexEntry& e, std::vector<std::byte>& out) {
  const bool new_key = prev == nullptr || prev->hash != e.hash;
  const std::uint64_t delta = new_key ? e.revision : e.revision - prev->revision;
  const std::uint64_t predicted = new_key ? e.revision : prev->position + delta;
  const std::uint64_t residual = e.position - predicted;  // mod 2^64
  put_varint(delta << 2 | std::uint64_t{residual != 0} << 1 | std::uint64_t{new_key}, out);
  if (new_key) {
    std::byte raw[8];
    put_u64(raw, e.hash);
    out.insert(out.end(), raw, raw + 8);
  }
  if (residual != 0) put_varint(zigzag(residual), out);
}

const char* decode_index_block(const std::byte* p, std::size_t n, std::size_t count,
                               std::vector<IndexEntry>& out) {
  out.clear();
  // Every entry takes at least one byte: a count beyond n is damage, and
  // must not drive the allocation.
  if (count > n) return "more entries than bytes";
  out.reserve(count);
  const std::byte* end = p + n;
  IndexEntry prev{};
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t head = 0;
    if (!get_varint(p, end, head)) return "truncated or overlong entry head";
    const bool new_key = (head & 1) != 0;
    const std::uint64_t delta = head >> 2;
    IndexEntry e;
    std::uint64_t predicted = 0;
    if (new_key) {
      if (end - p < 8) return "truncated entry hash";
      e.hash = get_u64(p);
      p += 8;
      e.revision = delta;
      predicted = delta;
      if (i > 0 && e.hash <= prev.hash) return "keys out of order";
    } else {
      if (i == 0) return "the block's first entry does not name its key";
      e.hash = prev.hash;
      e.revision = prev.revision + delta;
      predicted = prev.position + delta;
    }
    e.position = predicted;
    if (head & 2) {
      std::uint64_t z = 0;
      if (!get_varint(p, end, z)) return "truncated or overlong position residual";
      if (z == 0) return "a zero position residual";
      e.position = predicted + unzigzag(z);
    }
    if (i > 0 && !(prev < e)) return "entries out of order";
    out.push_back(e);
    prev = e;
  }
  if (p != end) return "bytes after the block's last entry";
  return nullptr;
}

}  // namespace annal::index
