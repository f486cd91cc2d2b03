#include "engine/record.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

#include "engine/endian.h"
#include "engine/format.h"

namespace annal::engine {

namespace f = format;

bool EventRecord::is_lost() const {
  return (flags & f::kFlagLost) != 0;
}

EventRecord RecordView::to_record() const {
  EventRecord r;
  r.id = id;
  r.stream = std::string(stream);
  r.type = std::string(type);
  r.revision = revision;
  r.position = position;
  r.timestamp_us = timestamp_us;
  r.flags = flags;
  r.metadata = std::string(metadata);
  r.data = std::string(data);
  return r;
}

std::size_t encoded_size(const EventRecord& r) {
  return f::record_size(r.stream.size(), r.type.size(), r.metadata.size(), r.data.size());
}

void encode_into(const EventRecord& r, std::span<std::byte> dst) {
  const std::size_t n = encoded_size(r);
  ANNAL_CHECK(dst.size() >= n,
              fmt::format("encode_into: {} bytes for a {}-byte record", dst.size(), n));
  ANNAL_CHECK(r.stream.size() <= 0xFFFF && r.type.size() <= 0xFFFF,
              "stream name and event type must fit in 16-bit lengths");
  ANNAL_CHECK(r.metadata.size() <= 0xFFFFFFFFu && r.data.size() <= 0xFFFFFFFFu && n <= 0xFFFFFFFFu,
              "record too large for 32-bit lengths");
  ANNAL_CHECK((r.flags & ~f::kKnownFlags) == 0, fmt::format("unknown record flags {:#x}", r.flags));
  std::byte* p = dst.data();
  const auto len = static_cast<std::uint32_t>(n);
  le::put_u32(p + 0, len);
  le::put_u32(p + 4, r.flags);
  le::put_u64(p + 16, r.position.value);
  le::put_u64(p + 24, r.revision.value);
  le::put_u64(p + 32, static_cast<std::uint64_t>(r.timestamp_us));
  std::memcpy(p + 40, r.id.bytes.data(), 16);
  le::put_u16(p + 56, static_cast<std::uint16_t>(r.stream.size()));
  le::put_u16(p + 58, static_cast<std::uint16_t>(r.type.size()));
  le::put_u32(p + 60, static_cast<std::uint32_t>(r.metadata.size()));
  le::put_u32(p + 64, static_cast<std::uint32_t>(r.data.size()));
  std::size_t off = f::kRecordFixedSize;
  auto put = [&](const std::string& s) {
    if (!s.empty()) std::memcpy(p + off, s.data(), s.size());
    off += s.size();
  };
  put(r.stream);
  put(r.type);
  put(r.metadata);
  put(r.data);
  std::memset(p + off, 0, n - f::kRecordTrailerSize - off);
  le::put_u32(p + n - f::kRecordTrailerSize, len);
  const std::uint64_t seed = le::get_u64(p);
  le::put_u64(p + 8, XXH3_64bits_withSeed(p + 16, n - 16, seed));
}

void encode(const EventRecord& r, std::string& out) {
  const std::size_t at = out.size();
  out.resize(at + encoded_size(r));
  encode_into(r,
              std::span<std::byte>(reinterpret_cast<std::byte*>(out.data() + at), out.size() - at));
}

namespace {

DecodeResult fail(DecodeOutcome o, std::string reason) {
  DecodeResult r;
  r.outcome = o;
  r.reason = std::move(reason);
  return r;
}

bool all_zero(std::span<const std::byte> b) {
  for (auto x : b)
    if (x != std::byte{0}) return false;
  return true;
}

}  // namespace

DecodeResult decode(std::span<const std::byte> bytes) {
  if (bytes.size() < 4) {
    if (all_zero(bytes)) return fail(DecodeOutcome::kEnd, "end of data");
    return fail(DecodeOutcome::kTruncated,
                fmt::format("only {} bytes left for a length field", bytes.size()));
  }
  const std::byte* p = bytes.data();
  const std::uint32_t len = le::get_u32(p);
  if (len == 0) return fail(DecodeOutcome::kEnd, "zero length: end of data");
  if (len % f::kRecordAlign != 0 || len < f::kRecordMinSize)
    return fail(DecodeOutcome::kCorrupt, fmt::format("invalid record length {}", len));
  if (len > bytes.size())
    return fail(
        DecodeOutcome::kTruncated,
        fmt::format("record length {} runs past the {} bytes available", len, bytes.size()));
  const std::uint32_t flags = le::get_u32(p + 4);
  const std::uint32_t trailer = le::get_u32(p + len - f::kRecordTrailerSize);
  if (trailer != len)
    return fail(DecodeOutcome::kCorrupt,
                fmt::format("trailing length {} does not match leading length {}", trailer, len));
  const std::uint64_t stored = le::get_u64(p + 8);
  const std::uint64_t computed = XXH3_64bits_withSeed(p + 16, len - 16, le::get_u64(p));
  if (stored != computed)
    return fail(
        DecodeOutcome::kCorrupt,
        fmt::format("checksum mismatch: stored {:016x}, computed {:016x}", stored, computed));
  if ((flags & ~f::kKnownFlags) != 0)
    return fail(DecodeOutcome::kCorrupt,
                fmt::format("unknown flag bits {:#x}", flags & ~f::kKnownFlags));
  const std::uint16_t s = le::get_u16(p + 56);
  const std::uint16_t t = le::get_u16(p + 58);
  const std::uint32_t m = le::get_u32(p + 60);
  const std::uint32_t d = le::get_u32(p + 64);
  // 64-bit arithmetic: m and d are attacker-controlled 32-bit values.
  const std::uint64_t want =
      f::record_size(std::size_t{s}, std::size_t{t}, std::size_t{m}, std::size_t{d});
  if (want != len)
    return fail(
        DecodeOutcome::kCorrupt,
        fmt::format("field lengths (stream {}, type {}, metadata {}, data {}) need {} bytes, "
                    "record length is {}",
                    s, t, m, d, want, len));
  const std::size_t payload_end = f::kRecordFixedSize + s + t + m + d;
  if (!all_zero(bytes.subspan(payload_end, len - f::kRecordTrailerSize - payload_end)))
    return fail(DecodeOutcome::kCorrupt, "non-zero padding");

  DecodeResult r;
  r.outcome = DecodeOutcome::kOk;
  RecordView& v = r.view;
  const char* c = reinterpret_cast<const char*>(p);
  v.flags = flags;
  v.position = GlobalPosition(le::get_u64(p + 16));
  v.revision = StreamRevision(le::get_u64(p + 24));
  v.timestamp_us = static_cast<std::int64_t>(le::get_u64(p + 32));
  std::memcpy(v.id.bytes.data(), p + 40, 16);
  std::size_t off = f::kRecordFixedSize;
  v.stream = std::string_view(c + off, s);
  off += s;
  v.type = std::string_view(c + off, t);
  off += t;
  v.metadata = std::string_view(c + off, m);
  off += m;
  v.data = std::string_view(c + off, d);
  v.size = len;
  v.checksum = stored;
  return r;
}

DecodeResult decode_backward(std::span<const std::byte> bytes) {
  if (bytes.size() < 4) {
    if (all_zero(bytes)) return fail(DecodeOutcome::kEnd, "start of data");
    return fail(DecodeOutcome::kTruncated,
                fmt::format("only {} bytes left for a length field", bytes.size()));
  }
  const std::uint32_t len = le::get_u32(bytes.data() + bytes.size() - 4);
  if (len == 0) return fail(DecodeOutcome::kEnd, "zero trailing length: no record ends here");
  if (len % f::kRecordAlign != 0 || len < f::kRecordMinSize)
    return fail(DecodeOutcome::kCorrupt, fmt::format("invalid trailing record length {}", len));
  if (len > bytes.size())
    return fail(
        DecodeOutcome::kTruncated,
        fmt::format("trailing length {} runs before the {} bytes available", len, bytes.size()));
  DecodeResult r = decode(bytes.last(len));
  if (r.outcome == DecodeOutcome::kOk && r.view.size != len)
    return fail(DecodeOutcome::kCorrupt, "leading and trailing lengths disagree");
  if (r.outcome == DecodeOutcome::kEnd || r.outcome == DecodeOutcome::kTruncated)
    r.outcome = DecodeOutcome::kCorrupt;  // a trailing length that points at no record
  return r;
}

}  // namespace annal::engine
