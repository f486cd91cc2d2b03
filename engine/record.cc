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

bool EventRecord::has_extension() const {
  return epoch != 0 || !tags.empty() || !correlation_id.empty() || !causation_id.empty();
}

EventRecord RecordView::to_record() const {
  EventRecord r;
  r.id = id;
  r.stream = std::string(stream);
  r.type = std::string(type);
  r.revision = revision;
  r.position = position;
  r.timestamp_us = timestamp_us;
  r.flags = flags & ~f::kFlagExtended;  // the encoder sets it from the fields
  r.metadata = std::string(metadata);
  r.data = std::string(data);
  r.epoch = epoch;
  for (std::string_view t : tags) r.tags.emplace_back(t);
  r.correlation_id = std::string(correlation_id);
  r.causation_id = std::string(causation_id);
  return r;
}

namespace {

std::size_t extension_bytes(const EventRecord& r) {
  if (!r.has_extension()) return 0;
  std::size_t tag_bytes = 0;
  for (const auto& t : r.tags) tag_bytes += t.size();
  return f::extension_size(r.tags.size(), tag_bytes, r.correlation_id.size(),
                           r.causation_id.size());
}

}  // namespace

std::size_t encoded_size(const EventRecord& r) {
  return f::record_size(r.stream.size(), r.type.size(), r.metadata.size(), r.data.size(),
                        extension_bytes(r));
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
  const bool ext = r.has_extension();
  if (ext) {
    ANNAL_CHECK(r.tags.size() <= 0xFFFF && r.correlation_id.size() <= 0xFFFF &&
                    r.causation_id.size() <= 0xFFFF,
                "tag count, correlation and causation ids must fit in 16-bit lengths");
    for (std::size_t i = 0; i < r.tags.size(); ++i) {
      ANNAL_CHECK(!r.tags[i].empty() && r.tags[i].size() <= 0xFFFF,
                  "a tag must be 1 to 65535 bytes");
      ANNAL_CHECK(i == 0 || r.tags[i - 1] < r.tags[i], "tags must be sorted and distinct");
    }
  }
  const std::uint32_t flags = ext ? (r.flags | f::kFlagExtended) : (r.flags & ~f::kFlagExtended);
  std::byte* p = dst.data();
  const auto len = static_cast<std::uint32_t>(n);
  le::put_u32(p + 0, len);
  le::put_u32(p + 4, flags);
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
  if (ext) {
    le::put_u64(p + off, r.epoch);
    le::put_u16(p + off + 8, static_cast<std::uint16_t>(r.tags.size()));
    le::put_u16(p + off + 10, static_cast<std::uint16_t>(r.correlation_id.size()));
    le::put_u16(p + off + 12, static_cast<std::uint16_t>(r.causation_id.size()));
    le::put_u16(p + off + 14, 0);
    off += f::kRecordExtFixedSize;
    for (const auto& t : r.tags) {
      le::put_u16(p + off, static_cast<std::uint16_t>(t.size()));
      off += 2;
    }
    for (const auto& t : r.tags) put(t);
    put(r.correlation_id);
    put(r.causation_id);
  }
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
  const std::uint64_t base_end = std::uint64_t{f::kRecordFixedSize} + s + t + m + d;
  const bool ext = (flags & f::kFlagExtended) != 0;
  std::uint64_t ext_size = 0;
  std::uint16_t tag_count = 0, corr = 0, cause = 0;
  std::uint64_t tag_bytes = 0;
  if (ext) {
    if (base_end + f::kRecordExtFixedSize + f::kRecordTrailerSize > len)
      return fail(DecodeOutcome::kCorrupt, "the extension runs past the record");
    const std::byte* x = p + base_end;
    tag_count = le::get_u16(x + 8);
    corr = le::get_u16(x + 10);
    cause = le::get_u16(x + 12);
    if (le::get_u16(x + 14) != 0)
      return fail(DecodeOutcome::kCorrupt, "the extension's reserved field is not zero");
    if (base_end + f::kRecordExtFixedSize + 2ull * tag_count + f::kRecordTrailerSize > len)
      return fail(DecodeOutcome::kCorrupt, "the extension's tag lengths run past the record");
    for (std::uint16_t i = 0; i < tag_count; ++i) {
      const std::uint16_t n = le::get_u16(x + f::kRecordExtFixedSize + 2 * i);
      if (n == 0) return fail(DecodeOutcome::kCorrupt, fmt::format("tag {} is empty", i));
      tag_bytes += n;
    }
    ext_size = f::extension_size(tag_count, tag_bytes, corr, cause);
    // One encoding per record: the encoder writes no extension that carries
    // nothing.
    if (le::get_u64(x) == 0 && tag_count == 0 && corr == 0 && cause == 0)
      return fail(DecodeOutcome::kCorrupt, "an extension with nothing in it");
  }
  const std::uint64_t want =
      f::record_size(std::size_t{s}, std::size_t{t}, std::size_t{m}, std::size_t{d}, ext_size);
  if (want != len)
    return fail(
        DecodeOutcome::kCorrupt,
        fmt::format("field lengths (stream {}, type {}, metadata {}, data {}, extension {}) need "
                    "{} bytes, record length is {}",
                    s, t, m, d, ext_size, want, len));
  const std::size_t payload_end = base_end + ext_size;
  if (!all_zero(bytes.subspan(payload_end, len - f::kRecordTrailerSize - payload_end)))
    return fail(DecodeOutcome::kCorrupt, "non-zero padding");
  const char* c = reinterpret_cast<const char*>(p);
  TagView tags;
  if (ext) {
    const char* lengths = c + base_end + f::kRecordExtFixedSize;
    const char* tag0 = lengths + 2 * tag_count;
    tags = TagView(lengths, tag0, tag_count);
    // Sorted and distinct: the index and the checksum of an event's tags
    // must not depend on the order a client sent them in.
    std::string_view prev;
    std::size_t k = 0;
    for (std::string_view tag : tags) {
      if (k++ > 0 && !(prev < tag))
        return fail(DecodeOutcome::kCorrupt, "tags are not sorted and distinct");
      prev = tag;
    }
  }

  DecodeResult r;
  r.outcome = DecodeOutcome::kOk;
  RecordView& v = r.view;
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
  if (ext) {
    const std::size_t x = base_end;
    v.epoch = le::get_u64(p + x);
    v.tags = tags;
    const std::size_t corr_at = x + f::kRecordExtFixedSize + 2 * tag_count + tag_bytes;
    v.correlation_id = std::string_view(c + corr_at, corr);
    v.causation_id = std::string_view(c + corr_at + corr, cause);
  }
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
