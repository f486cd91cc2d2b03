// libFuzzer target: the segment scanner, segment header and position index
// (.idx) decoders (engine/segment.h) on arbitrary bytes.
// Input: byte 0 = mode, byte 1 = first position (small, so positions can
// match), rest = the bytes after a valid 4 KiB segment header. Mode bit 0
// fixes the checksums of the record chain (so the scanner sees valid records
// and damage between them); bit 1 decodes the rest as a segment header;
// bit 2 as a position index (with its checksum fixed when bit 3 is set).
// Properties: no out-of-bounds read; the scan's offsets are increasing,
// aligned, inside the segment; the scanner and scan_segment agree.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "engine/segment.h"
#include "fuzz/fuzz_util.h"

using namespace annal;
namespace le = annal::engine::le;
namespace format = annal::engine::format;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0];
  const GlobalPosition first(data[1]);
  const std::string rest(reinterpret_cast<const char*>(data + 2), size - 2);

  if (mode & 2) {
    auto h = engine::decode_segment_header(fuzz::as_bytes(rest), "fuzz.seg");
    if (h)
      FUZZ_CHECK(
          engine::decode_segment_header(fuzz::as_bytes(engine::encode_segment_header(*h)), "x")
              .is_ok());
  }
  if (mode & 4) {
    std::string idx = rest;
    if ((mode & 8) && idx.size() >= engine::kIndexHeaderSize) {
      auto* p = reinterpret_cast<std::byte*>(idx.data());
      const std::uint64_t seed = XXH3_64bits(p, 40);
      le::put_u64(p + 40, XXH3_64bits_withSeed(p + 48, idx.size() - 48, seed));
    }
    auto pi = engine::decode_position_index(fuzz::as_bytes(idx), "fuzz.idx");
    if (pi) {
      auto again =
          engine::decode_position_index(fuzz::as_bytes(engine::encode_position_index(*pi)), "x");
      FUZZ_CHECK(again.is_ok() && *again == *pi);
    }
  }

  engine::SegmentHeader hdr;
  hdr.first = first;
  hdr.allocated_size = format::kSegmentHeaderSize + rest.size();
  std::string seg = engine::encode_segment_header(hdr) + rest;
  if (mode & 1) fuzz::fix_record_chain(seg, format::kSegmentHeaderSize);
  auto* heap = new std::byte[seg.size()];
  std::memcpy(heap, seg.data(), seg.size());
  std::span<const std::byte> bytes(heap, seg.size());

  FUZZ_CHECK(
      engine::decode_segment_header(bytes.first(format::kSegmentHeaderSize), "fuzz.seg").is_ok());
  engine::SegmentScan scan = engine::scan_segment(bytes, first);
  std::uint64_t prev = 0;
  for (std::uint32_t off : scan.offsets) {
    FUZZ_CHECK(off >= format::kSegmentHeaderSize && off % format::kRecordAlign == 0 &&
               off < seg.size());
    FUZZ_CHECK(prev == 0 || off > prev);
    prev = off;
  }
  FUZZ_CHECK(scan.data_end <= seg.size());
  FUZZ_CHECK(scan.committed_count <= scan.offsets.size());
  FUZZ_CHECK(scan.committed_end <= scan.data_end);
  FUZZ_CHECK(scan.stop.offset == scan.data_end);
  if (scan.stop.kind != engine::ScanStopKind::kEnd) FUZZ_CHECK(scan.stop.garbage_end <= seg.size());

  engine::SegmentScanner scanner(bytes, first);
  engine::RecordView v;
  std::uint64_t off = 0;
  std::size_t n = 0;
  while (scanner.next(v, off)) {
    FUZZ_CHECK(n < scan.offsets.size() && scan.offsets[n] == off);
    FUZZ_CHECK(v.position == first + n);
    FUZZ_CHECK(off + v.size <= seg.size());
    ++n;
  }
  FUZZ_CHECK(n == scan.offsets.size());
  FUZZ_CHECK(scanner.stop().kind == scan.stop.kind && scanner.stop().offset == scan.stop.offset);

  auto found = engine::find_valid_record(bytes, format::kSegmentHeaderSize, first, first + 1000);
  if (found) FUZZ_CHECK(found->offset < seg.size() && found->offset % format::kRecordAlign == 0);
  delete[] heap;
  return 0;
}
