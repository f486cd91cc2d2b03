#include "index/index_block.h"

#include <cstring>

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

std::size_t runs_of(std::size_t count) {
  return (count + kRestartInterval - 1) / kRestartInterval;
}

std::uint16_t get_u16(const std::byte* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Decodes one entry after `prev` (ignored for a whole entry); nullptr or
// what is wrong. `whole` says whether it was written whole.
const char* decode_entry(const std::byte*& p, const std::byte* end, const IndexEntry& prev,
                         IndexEntry& e, bool& whole) {
  std::uint64_t head = 0;
  if (!get_varint(p, end, head)) return "truncated or overlong entry head";
  whole = (head & 1) != 0;
  const std::uint64_t delta = head >> 2;
  std::uint64_t predicted = 0;
  if (whole) {
    if (end - p < 8) return "truncated entry hash";
    e.hash = get_u64(p);
    p += 8;
    e.revision = delta;
    predicted = delta;
  } else {
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
  return nullptr;
}

}  // namespace

void BlockBuilder::add(const IndexEntry& e) {
  if (finished_) {
    out_.clear();
    restarts_.clear();
    count_ = 0;
    finished_ = false;
  }
  const bool restart = count_ % kRestartInterval == 0;
  const bool whole = restart || prev_.hash != e.hash;
  if (restart) restarts_.push_back(static_cast<std::uint16_t>(out_.size()));
  const std::uint64_t delta = whole ? e.revision : e.revision - prev_.revision;
  const std::uint64_t predicted = whole ? e.revision : prev_.position + delta;
  const std::uint64_t residual = e.position - predicted;  // mod 2^64
  put_varint(delta << 2 | std::uint64_t{residual != 0} << 1 | std::uint64_t{whole}, out_);
  if (whole) {
    std::byte raw[8];
    put_u64(raw, e.hash);
    out_.insert(out_.end(), raw, raw + 8);
  }
  if (residual != 0) put_varint(zigzag(residual), out_);
  prev_ = e;
  ++count_;
}

const std::vector<std::byte>& BlockBuilder::finish() {
  for (std::uint16_t r : restarts_) {
    std::byte raw[2];
    std::memcpy(raw, &r, 2);
    out_.insert(out_.end(), raw, raw + 2);
  }
  finished_ = true;
  return out_;
}

const char* decode_index_block(const std::byte* p, std::size_t n, std::size_t count,
                               std::vector<IndexEntry>& out) {
  out.clear();
  // Every entry takes at least one byte and a run two more for its restart:
  // a count beyond that is damage, and must not drive the allocation.
  const std::size_t runs = runs_of(count);
  if (count == 0) return n == 0 ? nullptr : "bytes in an empty block";
  if (count > n || 2 * runs > n - count) return "more entries than bytes";
  out.reserve(count);
  const std::byte* const start = p;
  const std::byte* const restarts = p + n - 2 * runs;
  const std::byte* const end = restarts;
  IndexEntry prev{};
  for (std::size_t i = 0; i < count; ++i) {
    const bool restart = i % kRestartInterval == 0;
    if (restart &&
        get_u16(restarts + 2 * (i / kRestartInterval)) != static_cast<std::size_t>(p - start))
      return "a restart offset does not point at its entry";
    IndexEntry e;
    bool whole = false;
    if (const char* bad = decode_entry(p, end, prev, e, whole)) return bad;
    if (restart && !whole) return "a restart entry is not written whole";
    if (whole && !restart && i > 0 && e.hash <= prev.hash) return "keys out of order";
    if (i > 0 && !(prev < e)) return "entries out of order";
    out.push_back(e);
    prev = e;
  }
  if (p != end) return "bytes after the block's last entry";
  return nullptr;
}

BlockView::BlockView(const std::byte* p, std::size_t n, std::size_t count)
    : p_(p), count_(count), runs_(runs_of(count)), restarts_(p + n - 2 * runs_of(count)) {}

std::size_t BlockView::offset(std::size_t r) const {
  return get_u16(restarts_ + 2 * r);
}

IndexEntry BlockView::first_of(std::size_t r) const {
  const std::byte* p = p_ + offset(r);
  IndexEntry e;
  bool whole = false;
  (void)decode_entry(p, restarts_, IndexEntry{}, e, whole);  // checked when the block was
  return e;
}

std::size_t BlockView::run(std::size_t r, IndexEntry* out) const {
  const std::byte* p = p_ + offset(r);
  const std::size_t first = r * kRestartInterval;
  const std::size_t n = count_ - first < kRestartInterval ? count_ - first : kRestartInterval;
  IndexEntry prev{};
  for (std::size_t i = 0; i < n; ++i) {
    IndexEntry e;
    bool whole = false;
    (void)decode_entry(p, restarts_, prev, e, whole);
    out[i] = e;
    prev = e;
  }
  return n;
}

std::size_t BlockView::run_before(const IndexEntry& key) const {
  std::size_t lo = 0, hi = runs_;  // first run whose first entry >= key
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (first_of(mid) < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo == 0 ? 0 : lo - 1;
}

std::size_t BlockView::run_at_or_before(const IndexEntry& key) const {
  std::size_t lo = 0, hi = runs_;  // first run whose first entry > key
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (key < first_of(mid))
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo == 0 ? runs_ : lo - 1;
}

}  // namespace annal::index
