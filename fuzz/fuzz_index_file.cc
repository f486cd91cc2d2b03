// libFuzzer target: the stream index's file readers (index/index_file.h,
// index/manifest.h) on arbitrary bytes.
// Byte 0 = mode: bit 0 decodes the rest as a MANIFEST; otherwise the rest is
// written as an index file and opened with IndexFile::open (expected meta
// taken from its own header, so the header check passes), then queried.
// Bit 1 fixes the header, summary and footer checksums first (so mutations
// reach the structural checks); bit 2 also fixes every block checksum.
// Properties: no crash, no out-of-bounds read, no huge allocation driven by
// a count field; a manifest that decodes re-encodes to the same manifest.

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/file.h"
#include "fuzz/fuzz_util.h"
#include "index/index_file.h"
#include "index/manifest.h"

using namespace annal;

namespace {

// A private directory (in memory when /dev/shm exists), removed at exit.
// A plain char array: it must outlive the atexit handler.
char g_dir[64];
char g_file[128];

std::string work_dir() {
  if (g_dir[0] == '\0') {
    std::snprintf(g_dir, sizeof g_dir, "%s/annal-fuzz-ix-XXXXXX",
                  ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (::mkdtemp(g_dir) == nullptr) std::abort();
    std::snprintf(g_file, sizeof g_file, "%s/%s", g_dir, index::index_file_name(7).c_str());
    std::atexit([] {
      ::unlink(g_file);
      ::rmdir(g_dir);
    });
  }
  return g_dir;
}

// Recomputes the header checksum, the footer's summary / digest-sums
// checksums and the footer checksum; with `blocks`, also every block checksum
// (summary slot sums over the bytes the slots delimit, and id digest block
// sums), so mutated entries reach the block decoder.
void fix_checksums(std::string& f, bool blocks) {
  using fuzz::le::get_u32;
  using fuzz::le::get_u64;
  using fuzz::le::put_u64;
  if (f.size() < index::kIndexHeaderSize + index::kIndexFooterSize) return;
  auto* p = reinterpret_cast<std::byte*>(f.data());
  put_u64(p + 56, XXH3_64bits(p, 56));
  const std::uint64_t interval = get_u32(p + 12);
  const std::uint64_t count = get_u64(p + 40);
  const std::uint64_t first = get_u64(p + 24), end = get_u64(p + 32);
  const bool has_ids = (get_u32(p + 52) & index::kIndexFlagIdDigests) != 0;
  const std::uint64_t footer_off = f.size() - index::kIndexFooterSize;
  std::byte* footer = p + footer_off;
  const std::uint64_t room = footer_off - index::kIndexHeaderSize;
  const std::uint64_t entries_bytes = get_u64(footer + 8);
  // Layout: entry blocks (entries_bytes), id digests (8 per position when
  // the flag says so), summary slots (40 per block of `interval` entries),
  // digest block sums (8 per block of `interval` positions).
  if (interval > 0 && end >= first && count <= room / 32 && entries_bytes <= room &&
      end - first <= room / 16) {
    const std::uint64_t ids = has_ids ? end - first : 0;
    const std::uint64_t slots = (count + interval - 1) / interval,
                        sums = (ids + interval - 1) / interval;
    const std::uint64_t need = entries_bytes + ids * index::kIdDigestSize +
                               slots * index::kSummarySlotSize + sums * index::kBlockSumSize;
    if (need == room) {
      const std::uint64_t digests_off = index::kIndexHeaderSize + entries_bytes;
      const std::uint64_t summary_off = digests_off + ids * index::kIdDigestSize;
      const std::uint64_t sums_off = summary_off + slots * index::kSummarySlotSize;
      if (blocks) {
        for (std::uint64_t b = 0; b < slots; ++b) {
          std::byte* slot = p + summary_off + b * index::kSummarySlotSize;
          const std::uint64_t from = get_u64(slot + 24);
          const std::uint64_t to =
              b + 1 < slots ? get_u64(slot + index::kSummarySlotSize + 24) : digests_off;
          if (from <= to && to <= digests_off) put_u64(slot + 32, XXH3_64bits(p + from, to - from));
        }
        for (std::uint64_t b = 0; b < sums; ++b) {
          const std::uint64_t n = std::min(interval, ids - b * interval);
          put_u64(p + sums_off + b * index::kBlockSumSize,
                  XXH3_64bits(p + digests_off + b * interval * index::kIdDigestSize,
                              n * index::kIdDigestSize));
        }
      }
      put_u64(footer + 16, XXH3_64bits(p + summary_off, sums_off - summary_off));
      put_u64(footer + 24, XXH3_64bits(p + sums_off, footer_off - sums_off));
    }
  }
  put_u64(footer + 32, XXH3_64bits(footer, 32));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 1) {
    auto m = index::decode_manifest(rest, "fuzz/MANIFEST");
    if (m) {
      auto again = index::decode_manifest(index::encode_manifest(*m), "x");
      FUZZ_CHECK(again && *again == *m);
    }
    return 0;
  }
  if (mode & 2) fix_checksums(rest, (mode & 4) != 0);
  // Expected meta from the file's own header, number forced to the file name.
  index::IndexFileMeta meta;
  meta.number = 7;
  if (rest.size() >= index::kIndexHeaderSize) {
    auto* p = reinterpret_cast<std::byte*>(rest.data());
    fuzz::le::put_u64(p + 16, 7);
    if (mode & 2) fuzz::le::put_u64(p + 56, XXH3_64bits(p, 56));
    meta.first_position = fuzz::le::get_u64(p + 24);
    meta.end_position = fuzz::le::get_u64(p + 32);
    meta.entry_count = fuzz::le::get_u64(p + 40);
    meta.level = fuzz::le::get_u32(p + 48);
  }
  auto& fs = engine::FileSystem::posix();
  const std::string path = work_dir() + "/" + index::index_file_name(7);
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) std::abort();
    std::fwrite(rest.data(), 1, rest.size(), f);
    std::fclose(f);
  }
  auto opened = index::IndexFile::open(fs, work_dir(), meta, /*verify_entries=*/(mode & 8) != 0);
  if (!opened) return 0;
  const auto& ix = **opened;
  FUZZ_CHECK(ix.size() == meta.entry_count);
  // Queries check the blocks they read: a damaged block is an error, and
  // marks the file damaged; nothing unchecked is returned.
  std::vector<index::IndexEntry> out;
  const std::uint64_t probes[] = {0, 1, UINT64_MAX, 2, 3};
  for (std::uint64_t h : probes) {
    Status st = ix.collect(h, 0, UINT64_MAX, UINT64_MAX, out);
    FUZZ_CHECK(st.is_ok() || ix.damaged());
    std::size_t n = 0;
    auto more =
        ix.visit_desc(h, UINT64_MAX, [&](const index::IndexEntry&) { return ++n < 100000; });
    FUZZ_CHECK(more.is_ok() || ix.damaged());
  }
  Status all = ix.verify_all();
  FUZZ_CHECK(all.is_ok() != ix.damaged());
  if (all.is_ok()) {
    // Verified: a walk yields every entry in strictly increasing order, and
    // queries for any of them no longer fail and find it.
    index::IndexFile::Cursor cursor(ix);
    index::IndexEntry e, prev{};
    std::size_t walked = 0;
    while (cursor.next(e)) {
      FUZZ_CHECK(walked == 0 || prev < e);
      prev = e;
      ++walked;
    }
    FUZZ_CHECK(cursor.status().is_ok() && walked == ix.size());
    if (walked > 0) {
      out.clear();
      FUZZ_CHECK(ix.collect(prev.hash, prev.revision, prev.revision, UINT64_MAX, out).is_ok());
      FUZZ_CHECK(!out.empty() && out.back() == prev);
      bool found = false;
      FUZZ_CHECK(ix.visit_desc(prev.hash, UINT64_MAX, [&](const index::IndexEntry& x) {
                     found = x == prev;
                     return false;
                   }).is_ok());
      FUZZ_CHECK(found);
    }
  }
  return 0;
}
