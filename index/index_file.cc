#include "index/index_file.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "index/index_block.h"

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

std::uint64_t file_size_for(std::uint64_t entries, std::uint64_t entries_bytes, std::uint64_t ids,
                            std::uint32_t interval) {
  return kIndexHeaderSize + entries_bytes + ids * kIdDigestSize +
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
  if (summary_interval == 0 || summary_interval > kMaxSummaryInterval)
    return Status(Errc::kInvalidArgument,
                  fmt::format("index file {}: summary interval {} outside 1..{}", path,
                              summary_interval, kMaxSummaryInterval));
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
  // key, its offset and the checksum of its bytes). Per block of
  // summary_interval id digests: their checksum.
  std::vector<std::byte> summary;
  std::vector<std::byte> digest_sums;
  BlockBuilder block;  // the entry block being encoded
  XxhState block_sum;
  auto end_block = [&](std::vector<std::byte>& sums) {
    std::byte raw[8];
    put_u64(raw, block_sum.digest());
    sums.insert(sums.end(), raw, raw + 8);
    block_sum.reset();
  };
  std::uint64_t entries_bytes = 0;
  auto end_entry_block = [&]() -> Status {
    const std::vector<std::byte>& bytes = block.finish();
    block_sum.update(bytes.data(), bytes.size());
    end_block(summary);
    buf.insert(buf.end(), bytes.begin(), bytes.end());
    entries_bytes += bytes.size();
    return buf.size() >= kBuf ? drain() : Status::ok();
  };
  std::uint64_t count = 0;
  IndexEntry e;
  IndexEntry prev{};
  while (next(e)) {
    ANNAL_CHECK(count == 0 || prev < e, fmt::format("index file {}: entries out of order", tmp));
    if (e.revision > kMaxIndexRevision)
      return Status(Errc::kInvalidArgument,
                    fmt::format("index file {}: revision {} beyond the format's limit {}", tmp,
                                e.revision, kMaxIndexRevision));
    const bool first_of_block = count % summary_interval == 0;
    if (first_of_block) {
      if (count > 0) ANNAL_RETURN_IF_ERROR(end_entry_block());
      std::byte raw[32];
      put_u64(raw, e.hash);
      put_u64(raw + 8, e.revision);
      put_u64(raw + 16, e.position);
      put_u64(raw + 24, kIndexHeaderSize + entries_bytes);
      summary.insert(summary.end(), raw, raw + 32);
    }
    block.add(e);
    prev = e;
    ++count;
  }
  if (count > 0) ANNAL_RETURN_IF_ERROR(end_entry_block());
  // The id digests, one per position, after the entries (none without a
  // digest function: the secondary index has no idempotency window).
  const bool digests = static_cast<bool>(id_digest);
  for (std::uint64_t p = meta.first_position; digests && p < meta.end_position; ++p) {
    const std::uint64_t k = p - meta.first_position;
    if (k > 0 && k % summary_interval == 0) end_block(digest_sums);
    std::byte raw[kIdDigestSize];
    put_u64(raw, id_digest(p));
    block_sum.update(raw, sizeof raw);
    buf.insert(buf.end(), raw, raw + sizeof raw);
    if (buf.size() >= kBuf) ANNAL_RETURN_IF_ERROR(drain());
  }
  if (digests && meta.end_position > meta.first_position) end_block(digest_sums);
  ANNAL_RETURN_IF_ERROR(drain());
  std::byte footer[kIndexFooterSize];
  std::memcpy(footer, kIndexFooterMagic, 8);
  put_u64(footer + 8, entries_bytes);
  put_u64(footer + 16, checksum(summary.data(), summary.size()));
  put_u64(footer + 24, checksum(digest_sums.data(), digest_sums.size()));
  put_u64(footer + 32, checksum(footer, 32));
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
  put_u32(header + 52, digests ? kIndexFlagIdDigests : 0);
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
  const std::uint32_t flags = get_u32(header + 52);
  if (f->summary_interval_ == 0 || f->summary_interval_ > kMaxSummaryInterval)
    return corrupt(
        fmt::format("summary interval {} outside 1..{}", f->summary_interval_, kMaxSummaryInterval),
        12);
  if ((flags & ~kIndexFlagIdDigests) != 0)
    return corrupt(fmt::format("unknown flags {:#x}", flags), 52);
  if (!(m == expected))
    return corrupt(
        fmt::format("header (number {}, positions [{}, {}), {} entries, level {}) does not match "
                    "the manifest (number {}, positions [{}, {}), {} entries, level {})",
                    m.number, m.first_position, m.end_position, m.entry_count, m.level,
                    expected.number, expected.first_position, expected.end_position,
                    expected.entry_count, expected.level),
        0);
  if (m.end_position < m.first_position) return corrupt("end position before first position", 32);
  const std::uint64_t footer_off = *size - kIndexFooterSize;
  std::byte footer[kIndexFooterSize];
  ANNAL_RETURN_IF_ERROR(file->pread(footer_off, footer));
  if (std::memcmp(footer, kIndexFooterMagic, 8) != 0)
    return corrupt("bad footer magic", footer_off);
  if (get_u64(footer + 32) != checksum(footer, 32))
    return corrupt("footer checksum mismatch", footer_off + 32);
  const std::uint64_t entries_bytes = get_u64(footer + 8);
  const std::uint64_t ids = (flags & kIndexFlagIdDigests) ? m.end_position - m.first_position : 0;
  // Bound the counts by the file size first, so the size arithmetic below
  // cannot overflow on a damaged (or hostile) header: every entry takes at
  // least a byte.
  if (entries_bytes > *size || m.entry_count > entries_bytes || ids > *size / kIdDigestSize)
    return corrupt(fmt::format("{} entries in {} bytes and {} id digests cannot fit in {} bytes",
                               m.entry_count, entries_bytes, ids, *size),
                   40);
  const std::uint64_t want = file_size_for(m.entry_count, entries_bytes, ids, f->summary_interval_);
  if (*size != want) return corrupt(fmt::format("size {} bytes, expected {}", *size, want), 0);
  const std::uint64_t slots = ceil_div(m.entry_count, f->summary_interval_);
  const std::uint64_t sums = ceil_div(ids, f->summary_interval_);
  const std::uint64_t entries_end = kIndexHeaderSize + entries_bytes;
  const std::uint64_t summary_off = entries_end + ids * kIdDigestSize;
  const std::uint64_t sums_off = summary_off + slots * kSummarySlotSize;
  // Only the tail is read at open: slots and block checksums (48 bytes per
  // summary_interval entries) and the footer.
  std::vector<std::byte> tail(footer_off - summary_off);
  ANNAL_RETURN_IF_ERROR(file->pread(summary_off, tail));
  const std::byte* summary = tail.data();
  const std::byte* block_sums = tail.data() + (sums_off - summary_off);
  if (get_u64(footer + 16) != checksum(summary, slots * kSummarySlotSize))
    return corrupt("summary checksum mismatch", summary_off);
  if (get_u64(footer + 24) != checksum(block_sums, sums * kBlockSumSize))
    return corrupt("id digest block checksums mismatch", sums_off);
  f->summary_.resize(slots);
  for (std::size_t i = 0; i < slots; ++i) {
    const std::byte* s = summary + i * kSummarySlotSize;
    Slot& slot = f->summary_[i];
    slot = Slot{get_u64(s), get_u64(s + 8), get_u64(s + 16), get_u64(s + 24), get_u64(s + 32)};
    // Blocks start at the entries, follow each other without gaps (a block
    // of n entries takes at least n bytes), and their first keys do not
    // decrease.
    const std::uint64_t at =
        i == 0 ? kIndexHeaderSize : f->summary_[i - 1].offset + f->entries_in(i - 1);
    if (i == 0 ? slot.offset != at : slot.offset < at)
      return corrupt(fmt::format("summary slot {} says its block starts at {}", i, slot.offset),
                     summary_off + i * kSummarySlotSize + 24);
    const Slot& before = f->summary_[i > 0 ? i - 1 : 0];
    if (i > 0 && !(IndexEntry{before.hash, before.revision, before.position} <
                   IndexEntry{slot.hash, slot.revision, slot.position}))
      return corrupt(fmt::format("summary slot {} is out of order", i),
                     summary_off + i * kSummarySlotSize);
  }
  if (slots > 0 && f->summary_.back().offset + f->entries_in(slots - 1) > entries_end)
    return corrupt("the last entry block runs past the entries", summary_off);
  f->entries_bytes_ = entries_bytes;
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
  if (flags & kIndexFlagIdDigests) f->digests_ = f->map_->data() + entries_end;
  f->file_ = std::move(file);
  if (verify_entries) ANNAL_RETURN_IF_ERROR(f->verify_all());
  return f;
}

std::size_t IndexFile::entries_in(std::size_t b) const {
  const std::uint64_t first = static_cast<std::uint64_t>(b) * summary_interval_;
  return static_cast<std::size_t>(std::min<std::uint64_t>(summary_interval_, size() - first));
}

IndexFile::Block IndexFile::block(std::size_t b) const {
  const std::size_t interval = summary_interval_;
  if (b < summary_.size()) {
    const std::uint64_t end =
        b + 1 < summary_.size() ? summary_[b + 1].offset : kIndexHeaderSize + entries_bytes_;
    return Block{summary_[b].offset, static_cast<std::size_t>(end - summary_[b].offset),
                 summary_[b].sum};
  }
  const std::size_t first = (b - summary_.size()) * interval;
  const std::size_t ids = static_cast<std::size_t>(meta_.end_position - meta_.first_position);
  return Block{kIndexHeaderSize + entries_bytes_ + first * kIdDigestSize,
               (std::min(ids, first + interval) - first) * kIdDigestSize,
               digest_sums_[b - summary_.size()]};
}

Status IndexFile::corrupt_block(std::size_t b, const std::string& what) const {
  damaged_.store(true, std::memory_order_release);
  const Block k = block(b);
  return Status(
      Errc::kCorruption,
      fmt::format("index file {}: {} in the {} block at offset {} ({} bytes)", path_, what,
                  b < summary_.size() ? "entries" : "id digests", k.offset, k.bytes));
}

Status IndexFile::check_bytes(std::size_t b, const std::byte* p,
                              std::vector<IndexEntry>* out) const {
  const Block k = block(b);
  if (checksum(p, k.bytes) != k.sum) return corrupt_block(b, "checksum mismatch");
  if (b < summary_.size()) {
    // A block that passes its checksum was written by a writer: its
    // structure is checked as well, so a bug or a forged checksum is
    // damage, never an out-of-bounds read or a wrong answer.
    std::vector<IndexEntry> scratch;
    std::vector<IndexEntry>& entries = out != nullptr ? *out : scratch;
    if (const char* bad = decode_index_block(p, k.bytes, entries_in(b), entries))
      return corrupt_block(b, bad);
    const Slot& s = summary_[b];
    if (!(entries.front() == IndexEntry{s.hash, s.revision, s.position}))
      return corrupt_block(b, "first entry differs from its summary slot");
    if (b + 1 < summary_.size()) {
      const Slot& n = summary_[b + 1];
      if (!(entries.back() < IndexEntry{n.hash, n.revision, n.position}))
        return corrupt_block(b, "last entry not before the next block's first entry");
    }
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

Status IndexFile::load_block(std::size_t b, std::vector<IndexEntry>& out) const {
  const Block k = block(b);
  const std::byte* p = map_->data() + k.offset;
  if (!is_checked(b)) return check_bytes(b, p, &out);
  if (const char* bad = decode_index_block(p, k.bytes, entries_in(b), out))
    return corrupt_block(b, bad);
  return Status::ok();
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
  if (digests_ == nullptr) return 0;
  return get_u64(digests_ + (position - meta_.first_position) * kIdDigestSize);
}

Status IndexFile::read_id_digests(std::uint64_t from, std::uint64_t to,
                                  std::vector<std::uint64_t>& out) const {
  from = std::max(from, meta_.first_position);
  to = std::min(to, meta_.end_position);
  if (from >= to) return Status::ok();
  const std::size_t at = out.size();
  if (digests_ == nullptr) {
    out.resize(at + (to - from), 0);
    return Status::ok();
  }
  // Read through the map this IndexFile holds, not by reopening path_: a
  // background merge may already have removed the file (it is still valid
  // for every holder of this IndexFile). Reopening failed with not_found and
  // made Store::open fail after a crash (power-loss test, seed 34).
  const std::uint64_t k0 = from - meta_.first_position, k1 = to - meta_.first_position;
  for (std::uint64_t b = k0 / summary_interval_; b * summary_interval_ < k1; ++b)
    ANNAL_RETURN_IF_ERROR(check_block(summary_.size() + static_cast<std::size_t>(b)));
  out.resize(at + (to - from));
  std::memcpy(out.data() + at, digests_ + k0 * kIdDigestSize, (to - from) * kIdDigestSize);
  return Status::ok();
}

bool IndexFile::Cursor::next(IndexEntry& e) {
  while (i_ == buf_.size()) {
    if (!status_.is_ok() || block_ >= f_.summary_.size()) return false;
    status_ = f_.load_block(block_++, buf_);
    i_ = 0;
    if (!status_.is_ok()) return false;
  }
  e = buf_[i_++];
  return true;
}

std::size_t IndexFile::first_block(std::uint64_t hash, std::uint64_t revision) const {
  // The summary holds the first key of every block: the first entry >= key
  // is in the block before the first slot >= key (or in that slot's block,
  // when it is the first).
  auto less = [](const Slot& a, const Slot& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.revision < b.revision;
  };
  const Slot key{hash, revision, 0, 0, 0};
  auto it = std::lower_bound(summary_.begin(), summary_.end(), key, less);
  const std::size_t b = static_cast<std::size_t>(it - summary_.begin());
  return b == 0 ? 0 : b - 1;
}

Result<BlockView> IndexFile::view_block(std::size_t b) const {
  ANNAL_RETURN_IF_ERROR(check_block(b));
  const Block k = block(b);
  return BlockView(map_->data() + k.offset, k.bytes, entries_in(b));
}

Status IndexFile::collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi,
                          std::uint64_t pos_limit, std::vector<IndexEntry>& out,
                          std::size_t max) const {
  // The block, then the run of kRestartInterval entries in it, where the
  // first entry >= (hash, lo) can be; then forward, run by run.
  const IndexEntry from{hash, lo, 0};
  std::array<IndexEntry, kRestartInterval> run;
  const std::size_t first = first_block(hash, lo);
  for (std::size_t b = first; b < summary_.size() && out.size() < max; ++b) {
    const Slot& s = summary_[b];
    if (b > first && (s.hash > hash || (s.hash == hash && s.revision > hi))) break;
    auto view = view_block(b);
    if (!view) return view.status();
    for (std::size_t r = b == first ? view->run_before(from) : 0; r < view->runs(); ++r) {
      const std::size_t n = view->run(r, run.data());
      for (std::size_t i = 0; i < n; ++i) {
        const IndexEntry& e = run[i];
        if (e < from) continue;
        if (e.hash != hash || e.revision > hi) return Status::ok();
        if (e.position < pos_limit) {
          out.push_back(e);
          if (out.size() >= max) return Status::ok();
        }
      }
    }
  }
  return Status::ok();
}

Result<bool> IndexFile::visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                                   const std::function<bool(const IndexEntry&)>& fn,
                                   std::uint64_t max_revision) const {
  // The last block whose first key is <= (hash, max_revision), then the
  // last run in it starting at or before the key; backward, run by run.
  const IndexEntry key{hash, max_revision, UINT64_MAX};
  auto after = [](const Slot& s, std::uint64_t h, std::uint64_t r) {
    return s.hash != h ? s.hash > h : s.revision > r;
  };
  std::size_t b = summary_.size();
  {
    std::size_t lo = 0, hi = summary_.size();
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (after(summary_[mid], hash, max_revision))
        hi = mid;
      else
        lo = mid + 1;
    }
    if (lo == 0) return true;  // every entry is after the key
    b = lo - 1;
  }
  std::array<IndexEntry, kRestartInterval> run;
  bool first = true;
  for (;; --b) {
    auto view = view_block(b);
    if (!view) return view.status();
    std::size_t r = first ? view->run_at_or_before(key) : view->runs() - 1;
    first = false;
    if (r == view->runs()) return true;  // (cannot happen: the slot is <= key)
    for (;; --r) {
      for (std::size_t i = view->run(r, run.data()); i > 0; --i) {
        const IndexEntry& e = run[i - 1];
        if (key < e) continue;
        if (e.hash != hash) return true;
        if (e.position < pos_limit && !fn(e)) return false;
      }
      if (r == 0) break;
    }
    // A block starting before the hash: earlier blocks hold none of it.
    if (b == 0 || summary_[b].hash != hash) return true;
  }
}

}  // namespace annal::index
