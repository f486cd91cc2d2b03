#include "index/index_file.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <xxhash.h>

namespace annal::index {
namespace {

struct XxhState {
  XXH3_state_t* s = XXH3_createState();
  XxhState() { XXH3_64bits_reset(s); }
  ~XxhState() { XXH3_freeState(s); }
  XxhState(const XxhState&) = delete;
  XxhState& operator=(const XxhState&) = delete;
  void update(const void* p, std::size_t n) { XXH3_64bits_update(s, p, n); }
  std::uint64_t digest() const { return XXH3_64bits_digest(s); }
};

std::uint64_t checksum(const std::byte* p, std::size_t n) { return XXH3_64bits(p, n); }

std::uint64_t file_size_for(std::uint64_t entries, std::uint64_t ids, std::uint32_t interval) {
  std::uint64_t slots = (entries + interval - 1) / interval;
  return kIndexHeaderSize + entries * kIndexEntrySize + ids * kIdDigestSize + slots * kSummarySlotSize +
         kIndexFooterSize;
}

}  // namespace

std::string index_file_name(std::uint64_t number) { return fmt::format("{:020}.ix", number); }

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

  XxhState entries_sum;
  std::vector<std::byte> summary;
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
    if (count % summary_interval == 0) summary.insert(summary.end(), raw, raw + kSummarySlotSize);
    entries_sum.update(raw, sizeof raw);
    buf.insert(buf.end(), raw, raw + sizeof raw);
    ++count;
    if (buf.size() >= kBuf) ANNAL_RETURN_IF_ERROR(drain());
  }
  // The id digests, one per position, after the entries (same checksum).
  for (std::uint64_t p = meta.first_position; p < meta.end_position; ++p) {
    std::byte raw[kIdDigestSize];
    put_u64(raw, id_digest ? id_digest(p) : 0);
    entries_sum.update(raw, sizeof raw);
    buf.insert(buf.end(), raw, raw + sizeof raw);
    if (buf.size() >= kBuf) ANNAL_RETURN_IF_ERROR(drain());
  }
  ANNAL_RETURN_IF_ERROR(drain());
  const std::uint64_t summary_sum = checksum(summary.data(), summary.size());
  buf = summary;
  std::byte footer[kIndexFooterSize];
  std::memcpy(footer, kIndexFooterMagic, 8);
  put_u64(footer + 8, entries_sum.digest());
  put_u64(footer + 16, summary_sum);
  put_u64(footer + 24, checksum(footer, 24));
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
                                                   const IndexFileMeta& expected, bool verify_entries) {
  std::shared_ptr<IndexFile> f(new IndexFile());
  f->path_ = dir + "/" + index_file_name(expected.number);
  const std::string& path = f->path_;
  if (!fs.exists(path)) return Status(Errc::kNotFound, fmt::format("index file {} is missing", path));
  auto opened = fs.open(path, engine::OpenOptions{.read_only = true});
  if (!opened) return opened.status();
  auto& file = *opened;
  auto size = file->size();
  if (!size) return size.status();
  auto corrupt = [&](const std::string& what, std::uint64_t offset) {
    return Status(Errc::kCorruption, fmt::format("index file {}: {} (offset {})", path, what, offset));
  };
  if (*size < kIndexHeaderSize + kIndexFooterSize) return corrupt(fmt::format("too short: {} bytes", *size), 0);
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
    return corrupt(fmt::format("header (number {}, positions [{}, {}), {} entries, level {}) does not match "
                               "the manifest (number {}, positions [{}, {}), {} entries, level {})",
                               m.number, m.first_position, m.end_position, m.entry_count, m.level,
                               expected.number, expected.first_position, expected.end_position,
                               expected.entry_count, expected.level),
                   0);
  if (m.end_position < m.first_position) return corrupt("end position before first position", 32);
  const std::uint64_t want = file_size_for(m.entry_count, m.end_position - m.first_position, f->summary_interval_);
  if (*size != want) return corrupt(fmt::format("size {} bytes, expected {}", *size, want), 0);
  // "entries" below: the entries and the id digests, one checksum.
  const std::uint64_t entries_bytes =
      m.entry_count * kIndexEntrySize + (m.end_position - m.first_position) * kIdDigestSize;
  const std::uint64_t summary_off = kIndexHeaderSize + entries_bytes;
  const std::uint64_t footer_off = *size - kIndexFooterSize;
  std::vector<std::byte> tail(footer_off + kIndexFooterSize - summary_off);
  ANNAL_RETURN_IF_ERROR(file->pread(summary_off, tail));
  const std::byte* footer = tail.data() + (footer_off - summary_off);
  if (std::memcmp(footer, kIndexFooterMagic, 8) != 0) return corrupt("bad footer magic", footer_off);
  if (get_u64(footer + 24) != checksum(footer, 24)) return corrupt("footer checksum mismatch", footer_off + 24);
  const std::size_t summary_bytes = footer_off - summary_off;
  if (get_u64(footer + 16) != checksum(tail.data(), summary_bytes))
    return corrupt("summary checksum mismatch", summary_off);
  f->summary_.resize(summary_bytes / kSummarySlotSize);
  for (std::size_t i = 0; i < f->summary_.size(); ++i)
    f->summary_[i] = Key{get_u64(tail.data() + i * 16), get_u64(tail.data() + i * 16 + 8)};
  if (verify_entries) {
    XxhState sum;
    std::vector<std::byte> chunk(std::min<std::uint64_t>(entries_bytes, 4u << 20));
    for (std::uint64_t off = 0; off < entries_bytes;) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), entries_bytes - off));
      ANNAL_RETURN_IF_ERROR(file->pread(kIndexHeaderSize + off, std::span<std::byte>(chunk.data(), n)));
      sum.update(chunk.data(), n);
      off += n;
    }
    if (sum.digest() != get_u64(footer + 8)) return corrupt("entries checksum mismatch", kIndexHeaderSize);
  }
  auto mapped = file->map(static_cast<std::size_t>(*size));
  if (!mapped) return mapped.status();
  f->map_ = std::move(mapped).value();
  f->entries_ = f->map_->data() + kIndexHeaderSize;
  return f;
}

std::uint64_t IndexFile::id_digest(std::uint64_t position) const {
  return get_u64(entries_ + meta_.entry_count * kIndexEntrySize + (position - meta_.first_position) * kIdDigestSize);
}

Status IndexFile::read_id_digests(engine::FileSystem& fs, std::uint64_t from, std::uint64_t to,
                                  std::vector<std::uint64_t>& out) const {
  from = std::max(from, meta_.first_position);
  to = std::min(to, meta_.end_position);
  if (from >= to) return Status::ok();
  // Read through the map this IndexFile holds, not by reopening path_: a
  // background merge may already have removed the file (it is still valid
  // for every holder of this IndexFile). Reopening failed with not_found and
  // made Store::open fail after a crash (power-loss test, seed 34).
  (void)fs;
  const std::size_t at = out.size();
  out.resize(at + (to - from));
  const std::byte* p = map_->data() + kIndexHeaderSize + meta_.entry_count * kIndexEntrySize +
                       (from - meta_.first_position) * kIdDigestSize;
  std::memcpy(out.data() + at, p, (to - from) * kIdDigestSize);
  return Status::ok();
}

IndexEntry IndexFile::at(std::size_t i) const {
  const std::byte* p = entries_ + i * kIndexEntrySize;
  return IndexEntry{get_u64(p), get_u64(p + 8), get_u64(p + 16)};
}

std::size_t IndexFile::lower_bound(std::uint64_t hash, std::uint64_t revision) const {
  // The summary holds the key of every summary_interval_-th entry: find the
  // block the key falls in, then binary-search that block in the map.
  auto less = [](const Key& a, const Key& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.revision < b.revision;
  };
  const Key key{hash, revision};
  auto it = std::lower_bound(summary_.begin(), summary_.end(), key, less);
  std::size_t block = static_cast<std::size_t>(it - summary_.begin());
  // Entries before summary slot `block` are < key; the first >= key is in
  // (block-1)*interval .. block*interval.
  std::size_t lo = block == 0 ? 0 : (block - 1) * summary_interval_;
  std::size_t hi = std::min<std::size_t>(size(), block * static_cast<std::size_t>(summary_interval_));
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

void IndexFile::collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi, std::uint64_t pos_limit,
                        std::vector<IndexEntry>& out) const {
  for (std::size_t i = lower_bound(hash, lo); i < size(); ++i) {
    IndexEntry e = at(i);
    if (e.hash != hash || e.revision > hi) break;
    if (e.position < pos_limit) out.push_back(e);
  }
}

bool IndexFile::visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                           const std::function<bool(const IndexEntry&)>& fn) const {
  std::size_t end = hash == UINT64_MAX ? size() : lower_bound(hash + 1, 0);
  for (std::size_t i = end; i > 0; --i) {
    IndexEntry e = at(i - 1);
    if (e.hash != hash) break;
    if (e.position < pos_limit && !fn(e)) return false;
  }
  return true;
}

}  // namespace annal::index
