#include "index/index_file.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace annal::index {
namespace {

struct XxhState {
  XXH3_state_t* s = XXH3_createState();
  XxhState() { XXH3_64bits_reset(s); }
  ~XxhState() { XXH3_freeState(s); }
  XxhState(const XxhState&) = delete;
  XxhState& operator=(const XxhState&) = delete;
  void update(const void* p, std::size_t n) { XXH3_64bits_update(s, p, n); }
  void reset() { XXH3_64bits_reset(s); }
  std::uint64_t digest() const { return XXH3_64bits_digest(s); }
};

std::uint64_t checksum(const std::byte* p, std::size_t n) {
  return XXH3_64bits(p, n);
}

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) {
  return (a + b - 1) / b;
}

std::uint64_t file_size_for(std::uint64_t entries, std::uint64_t ids, std::uint32_t interval) {
  return kIndexHeaderSize + entries * kIndexEntrySize + ids * kIdDigestSize +
         ceil_div(entries, interval) * kSummarySlotSize + ceil_div(ids, interval) * kBlockSumSize +
         kIndexFooterSize;
}

}  // namespace

std::string index_file_name(std::uint64_t number) {
  return fmt::format("{:020}.ix", number);
}

Status write_index_file(engine::FileSystem& fs, const std::string& dir, IndexFileMeta& meta,
                        const std::function<bool(IndexEntry&)>& next,
                        const std::function<std::uint64_t(std::uint64_t)>& id_digest,
                        std::uint32_t summary_interval) {
  const std::string path = dir + "/" + index_file_name(meta.number);
  const std::string tmp = path + ".tmp";
  if (fs.exists(tmp)) ANNAL_RETURN_IF_ERROR(fs.remove(tmp));
  auto opened = fs.open(tmp, engine::OpenOptions{.create = true, .exclusive = true});
  if (!opened) return opened.status();
  std::unique_ptr<engine::File> file = std::move(opened).value();

  constexpr std::size_t kBuf = 1 << 20;
  std::vector<std::byte> buf;
  buf.reserve(kBuf + 64);
  std::uint64_t offset = kIndexHeaderSize;
  auto drain = [&]() -> Status {
    if (buf.empty()) return Status::ok();
    ANNAL_RETURN_IF_ERROR(file->pwrite(offset, buf));
    offset += buf.size();
    buf.clear();
    return Status::ok();
  };

  // Per block of summary_interval entries: a summary slot (the block's first
  // key and the checksum of its entries). Per block of summary_interval id
  // digests: their checksum.
  std::vector<std::byte> summary;
  std::vector<std::byte> digest_sums;
  XxhState block_sum;
  auto end_block = [&](std::vector<std::byte>& sums) {
    std::byte raw[8];
    put_u64(raw, block_sum.digest());
    sums.insert(sums.end(), raw, raw + 8);
    block_sum.reset();
  };
  std::uint64_t count = 0;
  IndexEntry e;
  IndexEntry prev{};
  while (next(e)) {
    ANNAL_CHECK(count == 0 || prev < e, fmt::format("index file {}: entries out of order", tmp));
    prev = e;
    std::byte raw[kIndexEntrySize];
    put_u64(raw, e.hash);
    put_u64(raw + 8, e.revision);
    put_u64(raw + 16, e.position);
    if (count % summary_interval == 0) {
      if (count > 0) end_block(summary);
      summary.insert(summary.end(), raw, raw + 16);
    }
    block_sum.update(raw, sizeof raw);
    buf.insert(buf.end(), raw, raw + sizeof raw);
    ++count;
    if (buf.size() >= kBuf) ANNAL_RETURN_IF_ERROR(drain());
  }
  if (count > 0) end_block(summary);
  // The id digests, one per position, after the entries.
  for (std::uint64_t p = meta.first_position; p < meta.end_position; ++p) {
    const std::uint64_t k = p - meta.first_position;
    if (k > 0 && k % summary_interval == 0) end_block(digest_sums);
    std::byte raw[kIdDigestSize];
    put_u64(raw, id_digest ? id_digest(p) : 0);
    block_sum.update(raw, sizeof raw);
    buf.insert(buf.end(), raw, raw + sizeof raw);
    if (buf.size() >= kBuf) ANNAL_RETURN_IF_ERROR(drain());
  }
  if (meta.end_position > meta.first_position) end_block(digest_sums);
  ANNAL_RETURN_IF_ERROR(drain());
  std::byte footer[kIndexFooterSize];
  std::memcpy(footer, kIndexFooterMagic, 8);
  put_u64(footer + 8, checksum(summary.data(), summary.size()));
  put_u64(footer + 16, checksum(digest_sums.data(), digest_sums.size()));
  put_u64(footer + 24, checksum(footer, 24));
  buf = std::move(summary);
  buf.insert(buf.end(), digest_sums.begin(), digest_sums.end());
  buf.insert(buf.end(), footer, footer + sizeof footer);
  ANNAL_RETURN_IF_ERROR(drain());

  meta.entry_count = count;
  std::byte header[kIndexHeaderSize] = {};
  std::memcpy(header, kIndexFileMagic, 8);
  put_u32(header + 8, kIndexFileVersion);
  put_u32(header + 12, summary_interval);
  put_u64(header + 16, meta.number);
  put_u64(header + 24, meta.first_position);
  put_u64(header + 32, meta.end_position);
  put_u64(header + 40, count);
  put_u32(header + 48, meta.level);
  put_u64(header + 56, checksum(header, 56));
  ANNAL_RETURN_IF_ERROR(file->pwrite(0, std::span<const std::byte>(header, sizeof header)));
  ANNAL_RETURN_IF_ERROR(file->datasync());
  file.reset();
  ANNAL_RETURN_IF_ERROR(fs.rename(tmp, path));
  return fs.sync_dir(dir);
}

Result<std::shared_ptr<IndexFile>> IndexFile::open(engine::FileSystem& fs, const std::string& dir,
                                                   const IndexFileMeta& expected,
                                                   bool verify_entries) {
  std::shared_ptr<IndexFile> f(new IndexFile());
  f->path_ = dir + "/" + index_file_name(expected.number);
  const std::string& path = f->path_;
  if (!fs.exists(path))
    return Status(Errc::kNotFound, fmt::format("index file {} is missing", path));
  auto opened = fs.open(path, engine::OpenOptions{.read_only = true});
  if (!opened) return opened.status();
  auto& file = *opened;
  auto size = file->size();
  if (!size) return size.status();
  auto corrupt = [&](const std::string& what, std::uint64_t offset) {
    return Status(Errc::kCorruption,
                  fmt::format("index file {}: {} (offset {})", path, what, offset));
  };
  if (*size < kIndexHeaderSize + kIndexFooterSize)
    return corrupt(fmt::format("too short: {} bytes", *size), 0);
  std::byte header[kIndexHeaderSize];
  ANNAL_RETURN_IF_ERROR(file->pread(0, header));
  if (std::memcmp(header, kIndexFileMagic, 8) != 0) return corrupt("bad magic", 0);
  if (get_u64(header + 56) != checksum(header, 56)) return corrupt("header checksum mismatch", 56);
  if (get_u32(header + 8) != kIndexFileVersion)
    return corrupt(fmt::format("unsupported version {}", get_u32(header + 8)), 8);
  IndexFileMeta& m = f->meta_;
  f->summary_interval_ = get_u32(header + 12);
  m.number = get_u64(header + 16);
  m.first_position = get_u64(header + 24);
  m.end_position = get_u64(header + 32);
  m.entry_count = get_u64(header + 40);
  m.level = get_u32(header + 48);
  if (f->summary_interval_ == 0) return corrupt("summary interval 0", 12);
  if (!(m == expected))
    return corrupt(
        fmt::format("header (number {}, positions [{}, {}), {} entries, level {}) does not match "
                    "the manifest (number {}, positions [{}, {}), {} entries, level {})",
                    m.number, m.first_position, m.end_position, m.entry_count, m.level,
                    expected.number, expected.first_position, expected.end_position,
                    expected.entry_count, expected.level),
        0);
  if (m.end_position < m.first_position) return corrupt("end position before first position", 32);
  // Bound the counts by the file size first, so the size arithmetic below
  // cannot overflow on a damaged (or hostile) header.
  if (m.entry_count > *size / kIndexEntrySize ||
      m.end_position - m.first_position > *size / kIdDigestSize)
    return corrupt(fmt::format("{} entries over {} positions cannot fit in {} bytes", m.entry_count,
                               m.end_position - m.first_position, *size),
                   40);
  const std::uint64_t want =
      file_size_for(m.entry_count, m.end_position - m.first_position, f->summary_interval_);
  if (*size != want) return corrupt(fmt::format("size {} bytes, expected {}", *size, want), 0);
  const std::uint64_t ids = m.end_position - m.first_position;
  const std::uint64_t slots = ceil_div(m.entry_count, f->summary_interval_);
  const std::uint64_t sums = ceil_div(ids, f->summary_interval_);
  const std::uint64_t summary_off =
      kIndexHeaderSize + m.entry_count * kIndexEntrySize + ids * kIdDigestSize;
  const std::uint64_t sums_off = summary_off + slots * kSummarySlotSize;
  const std::uint64_t footer_off = *size - kIndexFooterSize;
  // Only the tail is read at open: slots and block checksums (32 bytes per
  // summary_interval entries) and the footer.
  std::vector<std::byte> tail(*size - summary_off);
  ANNAL_RETURN_IF_ERROR(file->pread(summary_off, tail));
  const std::byte* footer = tail.data() + (footer_off - summary_off);
  const std::byte* summary = tail.data();
  const std::byte* block_sums = tail.data() + (sums_off - summary_off);
  if (std::memcmp(footer, kIndexFooterMagic, 8) != 0)
    return corrupt("bad footer magic", footer_off);
  if (get_u64(footer + 24) != checksum(footer, 24))
    return corrupt("footer checksum mismatch", footer_off + 24);
  if (get_u64(footer + 8) != checksum(summary, slots * kSummarySlotSize))
    return corrupt("summary checksum mismatch", summary_off);
  if (get_u64(footer + 16) != checksum(block_sums, sums * kBlockSumSize))
    return corrupt("id digest block checksums mismatch", sums_off);
  f->summary_.resize(slots);
  for (std::size_t i = 0; i < slots; ++i) {
    const std::byte* s = summary + i * kSummarySlotSize;
    f->summary_[i] = Slot{get_u64(s), get_u64(s + 8), get_u64(s + 16)};
  }
  f->digest_sums_.resize(sums);
  for (std::size_t i = 0; i < sums; ++i)
    f->digest_sums_[i] = get_u64(block_sums + i * kBlockSumSize);
  const std::size_t blocks = f->blocks();
  f->checked_ = std::make_unique<std::atomic<std::uint64_t>[]>((blocks + 63) / 64);
  for (std::size_t i = 0; i < (blocks + 63) / 64; ++i)
    f->checked_[i].store(0, std::memory_order_relaxed);
  f->unverified_.store(blocks, std::memory_order_release);
  auto mapped = file->map(static_cast<std::size_t>(*size));
  if (!mapped) return mapped.status();
  f->map_ = std::move(mapped).value();
  f->entries_ = f->map_->data() + kIndexHeaderSize;
  f->digests_ = f->entries_ + m.entry_count * kIndexEntrySize;
  f->file_ = std::move(file);
  if (verify_entries) ANNAL_RETURN_IF_ERROR(f->verify_all());
  return f;
}

IndexFile::Block IndexFile::block(std::size_t b) const {
  const std::size_t interval = summary_interval_;
  if (b < summary_.size()) {
    const std::size_t first = b * interval;
    return Block{kIndexHeaderSize + first * kIndexEntrySize,
                 (std::min<std::size_t>(size(), first + interval) - first) * kIndexEntrySize,
                 summary_[b].sum};
  }
  const std::size_t first = (b - summary_.size()) * interval;
  const std::size_t ids = static_cast<std::size_t>(meta_.end_position - meta_.first_position);
  return Block{kIndexHeaderSize + meta_.entry_count * kIndexEntrySize + first * kIdDigestSize,
               (std::min(ids, first + interval) - first) * kIdDigestSize,
               digest_sums_[b - summary_.size()]};
}

Status IndexFile::check_bytes(std::size_t b, const std::byte* p) const {
  const Block k = block(b);
  if (checksum(p, k.bytes) != k.sum) {
    damaged_.store(true, std::memory_order_release);
    return Status(
        Errc::kCorruption,
        fmt::format("index file {}: checksum mismatch in the {} block at offset {} ({} bytes)",
                    path_, b < summary_.size() ? "entries" : "id digests", k.offset, k.bytes));
  }
  const std::uint64_t bit = std::uint64_t{1} << (b % 64);
  if (!(checked_[b / 64].fetch_or(bit, std::memory_order_acq_rel) & bit))
    unverified_.fetch_sub(1, std::memory_order_acq_rel);
  return Status::ok();
}

bool IndexFile::is_checked(std::size_t b) const {
  return (checked_[b / 64].load(std::memory_order_acquire) >> (b % 64)) & 1;
}

Status IndexFile::check_block(std::size_t b) const {
  if (is_checked(b)) return Status::ok();
  return check_bytes(b, map_->data() + block(b).offset);
}

Status IndexFile::verify_all() const {
  if (verified()) return Status::ok();
  // Read with pread in ~4 MiB runs of whole blocks, so a full check does not
  // make the file's pages resident in this process (the map stays cold).
  std::lock_guard lock(file_mu_);
  std::vector<std::byte> buf;
  std::size_t b = 0;
  while (b < blocks()) {
    if (is_checked(b)) {
      ++b;
      continue;
    }
    const Block first = block(b);
    std::size_t e = b + 1;
    std::uint64_t bytes = first.bytes;
    // Blocks are contiguous within the entries and within the digests.
    while (e < blocks() && (e < summary_.size()) == (b < summary_.size()) && bytes < (4u << 20)) {
      bytes += block(e).bytes;
      ++e;
    }
    buf.resize(static_cast<std::size_t>(bytes));
    ANNAL_RETURN_IF_ERROR(file_->pread(first.offset, buf));
    for (std::size_t k = b; k < e; ++k) {
      const Block blk = block(k);
      if (!is_checked(k))
        ANNAL_RETURN_IF_ERROR(check_bytes(k, buf.data() + (blk.offset - first.offset)));
    }
    b = e;
  }
  return Status::ok();
}

std::uint64_t IndexFile::id_digest(std::uint64_t position) const {
  return get_u64(digests_ + (position - meta_.first_position) * kIdDigestSize);
}

Status IndexFile::read_id_digests(std::uint64_t from, std::uint64_t to,
                                  std::vector<std::uint64_t>& out) const {
  from = std::max(from, meta_.first_position);
  to = std::min(to, meta_.end_position);
  if (from >= to) return Status::ok();
  // Read through the map this IndexFile holds, not by reopening path_: a
  // background merge may already have removed the file (it is still valid
  // for every holder of this IndexFile). Reopening failed with not_found and
  // made Store::open fail after a crash (power-loss test, seed 34).
  const std::uint64_t k0 = from - meta_.first_position, k1 = to - meta_.first_position;
  for (std::uint64_t b = k0 / summary_interval_; b * summary_interval_ < k1; ++b)
    ANNAL_RETURN_IF_ERROR(check_block(summary_.size() + static_cast<std::size_t>(b)));
  const std::size_t at = out.size();
  out.resize(at + (to - from));
  std::memcpy(out.data() + at, digests_ + k0 * kIdDigestSize, (to - from) * kIdDigestSize);
  return Status::ok();
}

IndexEntry IndexFile::at(std::size_t i) const {
  const std::byte* p = entries_ + i * kIndexEntrySize;
  return IndexEntry{get_u64(p), get_u64(p + 8), get_u64(p + 16)};
}

Result<std::size_t> IndexFile::lower_bound(std::uint64_t hash, std::uint64_t revision) const {
  // The summary holds the key of every summary_interval_-th entry: find the
  // block the key falls in, then binary-search that block in the map.
  auto less = [](const Slot& a, const Slot& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.revision < b.revision;
  };
  const Slot key{hash, revision, 0};
  auto it = std::lower_bound(summary_.begin(), summary_.end(), key, less);
  std::size_t block = static_cast<std::size_t>(it - summary_.begin());
  // Entries before summary slot `block` are < key; the first >= key is in
  // (block-1)*interval .. block*interval.
  if (block == 0) return std::size_t{0};
  ANNAL_RETURN_IF_ERROR(check_block(block - 1));
  std::size_t lo = (block - 1) * summary_interval_;
  std::size_t hi =
      std::min<std::size_t>(size(), block * static_cast<std::size_t>(summary_interval_));
  while (lo < hi) {
    std::size_t mid = lo + (hi - lo) / 2;
    const std::byte* p = entries_ + mid * kIndexEntrySize;
    std::uint64_t h = get_u64(p), r = get_u64(p + 8);
    if (h < hash || (h == hash && r < revision))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

Status IndexFile::collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi,
                          std::uint64_t pos_limit, std::vector<IndexEntry>& out,
                          std::size_t max) const {
  auto start = lower_bound(hash, lo);
  if (!start) return start.status();
  for (std::size_t i = *start; i < size() && out.size() < max; ++i) {
    if (i == *start || i % summary_interval_ == 0) ANNAL_RETURN_IF_ERROR(check_entries_from(i));
    IndexEntry e = at(i);
    if (e.hash != hash || e.revision > hi) break;
    if (e.position < pos_limit) out.push_back(e);
  }
  return Status::ok();
}

Result<bool> IndexFile::visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                                   const std::function<bool(const IndexEntry&)>& fn,
                                   std::uint64_t max_revision) const {
  std::size_t end = size();
  if (max_revision != UINT64_MAX) {
    auto lb = lower_bound(hash, max_revision + 1);
    if (!lb) return lb.status();
    end = *lb;
  } else if (hash != UINT64_MAX) {
    auto lb = lower_bound(hash + 1, 0);
    if (!lb) return lb.status();
    end = *lb;
  }
  for (std::size_t i = end; i > 0; --i) {
    if (i == end || i % summary_interval_ == 0) ANNAL_RETURN_IF_ERROR(check_entries_from(i - 1));
    IndexEntry e = at(i - 1);
    if (e.hash != hash) break;
    if (e.position < pos_limit && !fn(e)) return false;
  }
  return true;
}

}  // namespace annal::index
