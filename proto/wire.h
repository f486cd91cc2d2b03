#pragma once
// The three walks over a message's `fields` (proto/protocol.h): Sizer counts
// the bytes, Writer appends them (little-endian), Reader parses them with a
// bounds check per field. Internal to annal_proto and the code that encodes
// events straight from the log.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/format.h"
#include "proto/protocol.h"

namespace annal::net::proto::wire {

// Flags a node puts on the wire; the commit flag is the log's business.
inline constexpr std::uint32_t kWireFlagMask =
    engine::format::kFlagDataJson | engine::format::kFlagMetadataJson | engine::format::kFlagLost;

// The bytes of a tag block's tags (their lengths summed).
inline std::size_t tag_bytes(const std::vector<std::string>& tags) {
  std::size_t n = 0;
  for (const auto& t : tags) n += t.size();
  return n;
}
inline std::size_t tag_bytes(const engine::TagView& tags) {
  std::size_t n = 0;
  for (std::string_view t : tags) n += t.size();
  return n;
}

class Sizer {
 public:
  explicit Sizer(std::uint16_t version = kProtocolVersion) : version_(version) {}
  std::uint16_t version() const { return version_; }
  std::size_t bytes = 0;
  void u16(const std::uint16_t&, const char*) { bytes += 2; }
  void u32(const std::uint32_t&, const char*) { bytes += 4; }
  void u64(const std::uint64_t&, const char*) { bytes += 8; }
  void i64(const std::int64_t&, const char*) { bytes += 8; }
  void boolean(const bool&, const char*) { bytes += 1; }
  void wire_flags(const std::uint32_t&, const char*) { bytes += 4; }
  void str(std::string_view s, const char*) { bytes += 4 + s.size(); }
  void id(const EventId&, const char*) { bytes += 16; }
  template <class E>
  void enumeration(const E&, const char*, std::uint64_t, const char*) {
    bytes += sizeof(E);
  }
  void expected(const ExpectedRevision&, const char*, const char*) { bytes += 9; }
  template <class T, class F>
  void list(const std::vector<T>& items, const char*, std::size_t, F&& elem) {
    bytes += 4;
    for (const auto& e : items) elem(*this, e);
  }
  template <class E>
  void events(const std::vector<E>& items, const char*) {
    bytes += 4;
    for (const auto& e : items) event_fields(*this, e);
  }
  void events(const EncodedEvents& e, const char*) { bytes += 4 + e.bytes.size(); }
  template <class Tags>
  void tags(const Tags& t, const char*) {
    bytes += 2 + 2 * t.size() + tag_bytes(t);
  }

 private:
  std::uint16_t version_;
};

// Writes into storage already sized by a Sizer pass over the same fields:
// no capacity check or growth per field, one memcpy per string.
class Writer {
 public:
  explicit Writer(char* out, std::uint16_t version = kProtocolVersion)
      : p_(out), version_(version) {}
  std::uint16_t version() const { return version_; }
  void u16(const std::uint16_t& v, const char*) { le(v, 2); }
  void u32(const std::uint32_t& v, const char*) { le(v, 4); }
  void u64(const std::uint64_t& v, const char*) { le(v, 8); }
  void i64(const std::int64_t& v, const char*) { le(static_cast<std::uint64_t>(v), 8); }
  void boolean(const bool& v, const char*) { *p_++ = v ? '\1' : '\0'; }
  void wire_flags(const std::uint32_t& v, const char*) { le(v & kWireFlagMask, 4); }
  void str(std::string_view s, const char*) {
    le(s.size(), 4);
    bytes(s);
  }
  void id(const EventId& v, const char*) {
    std::memcpy(p_, v.bytes.data(), v.bytes.size());
    p_ += v.bytes.size();
  }
  template <class E>
  void enumeration(const E& v, const char*, std::uint64_t, const char*) {
    le(static_cast<std::uint64_t>(v), sizeof(E));
  }
  void expected(const ExpectedRevision& e, const char*, const char*) {
    le(static_cast<std::uint64_t>(e.kind), 1);
    le(e.kind == ExpectedRevision::Kind::kExact ? e.revision.value : 0, 8);
  }
  template <class T, class F>
  void list(const std::vector<T>& items, const char*, std::size_t, F&& elem) {
    le(items.size(), 4);
    for (const auto& e : items) elem(*this, e);
  }
  template <class E>
  void events(const std::vector<E>& items, const char*) {
    le(items.size(), 4);
    for (const auto& e : items) event_fields(*this, e);
  }
  void events(const EncodedEvents& e, const char*) {
    le(e.count, 4);
    bytes(e.bytes);
  }
  // The caller (the store, or a decoder) bounds the count and each length.
  template <class Tags>
  void tags(const Tags& t, const char*) {
    le(t.size(), 2);
    for (std::string_view tag : t) le(tag.size(), 2);
    for (std::string_view tag : t) bytes(tag);
  }
  char* end() const { return p_; }

 private:
  void le(std::uint64_t v, int n) {
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(p_, &v, static_cast<std::size_t>(n));  // one store
    } else {
      for (int i = 0; i < n; ++i) p_[i] = static_cast<char>(v >> (8 * i));
    }
    p_ += n;
  }
  void bytes(std::string_view s) {
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  char* p_;
  std::uint16_t version_;
};

// Appends the fields `walk` writes to `out`, sized by a Sizer pass first.
template <class Walk>
void append_to(std::string& out, Walk&& walk, std::uint16_t version = kProtocolVersion) {
  Sizer size(version);
  walk(size);
  const std::size_t at = out.size();
  out.resize(at + size.bytes);
  Writer w(out.data() + at, version);
  walk(w);
}

class Reader {
 public:
  Reader(std::string_view in, const char* what, std::uint16_t version = kProtocolVersion)
      : in_(in), what_(what), version_(version) {}
  std::uint16_t version() const { return version_; }

  void u16(std::uint16_t& v, const char* f) { v = static_cast<std::uint16_t>(le(2, f)); }
  void u32(std::uint32_t& v, const char* f) { v = static_cast<std::uint32_t>(le(4, f)); }
  void u64(std::uint64_t& v, const char* f) { v = le(8, f); }
  void i64(std::int64_t& v, const char* f) { v = static_cast<std::int64_t>(le(8, f)); }
  void wire_flags(std::uint32_t& v, const char* f) { u32(v, f); }
  void boolean(bool& v, const char* f) {
    const std::uint64_t b = le(1, f);
    if (b > 1) fail(f, "must be 0 or 1");
    v = b == 1;
  }
  void str(std::string& v, const char* f) {
    std::string_view view;
    str(view, f);
    v.assign(view);
  }
  // A view into the decoded buffer: valid while that buffer is.
  void str(std::string_view& v, const char* f) {
    const std::uint64_t n = le(4, f);
    if (!need(n, f)) return;
    v = in_.substr(pos_, n);
    pos_ += n;
  }
  void id(EventId& v, const char* f) {
    if (!need(16, f)) return;
    std::memcpy(v.bytes.data(), in_.data() + pos_, 16);
    pos_ += 16;
  }
  template <class E>
  void enumeration(E& v, const char* f, std::uint64_t max, const char* why) {
    const std::uint64_t x = le(sizeof(E), f);
    if (x > max) fail(f, why);
    v = static_cast<E>(x);
  }
  void expected(ExpectedRevision& e, const char* kind_field, const char* revision_field) {
    const std::uint64_t kind = le(1, kind_field);
    const std::uint64_t rev = le(8, revision_field);
    if (kind > 3) fail(kind_field, "must be 0..3");
    if (!ok()) return;
    e.kind = static_cast<ExpectedRevision::Kind>(kind);
    e.revision = e.kind == ExpectedRevision::Kind::kExact ? StreamRevision(rev) : StreamRevision{};
  }
  // `min_bytes`: the least one element takes, so a count can never make the
  // decoder reserve more elements than the payload could hold.
  template <class T, class F>
  void list(std::vector<T>& items, const char* f, std::size_t min_bytes, F&& elem) {
    const std::uint64_t n = le(4, f);
    if (!ok()) return;
    if (n * min_bytes > remaining()) {
      fail(f, "exceeds payload");
      return;
    }
    items.resize(n);
    for (auto& e : items) {
      elem(*this, e);
      if (!ok()) return;
    }
  }
  template <class E>
  void events(std::vector<E>& items, const char* f) {
    list(items, f, event_wire_fixed(version_), [](Reader& r, E& e) { event_fields(r, e); });
  }
  // A tag block as views into the decoded buffer (valid while it is).
  void tags(engine::TagView& t, const char* f) {
    const std::uint64_t n = le(2, f);
    if (!need(2 * n, f)) return;
    const char* lengths = in_.data() + pos_;
    pos_ += 2 * n;
    std::uint64_t total = 0;
    for (std::uint64_t i = 0; i < n; ++i)
      total += static_cast<std::uint8_t>(lengths[2 * i]) |
               static_cast<std::uint64_t>(static_cast<std::uint8_t>(lengths[2 * i + 1])) << 8;
    if (!need(total, f)) return;
    t = engine::TagView(lengths, in_.data() + pos_, static_cast<std::uint16_t>(n));
    pos_ += total;
  }
  void tags(std::vector<std::string>& t, const char* f) {
    engine::TagView view;
    tags(view, f);
    if (!ok()) return;
    t.clear();
    t.reserve(view.size());
    for (std::string_view tag : view) t.emplace_back(tag);
  }

  bool ok() const { return error_.empty(); }
  void fail(const char* field, const std::string& why) {
    if (ok()) error_ = std::string(what_) + ": field '" + field + "' " + why;
  }
  std::size_t remaining() const { return in_.size() - pos_; }
  // Completes decoding: an error if a field failed or bytes are left over.
  template <typename T>
  Result<T> finish(T value) {
    if (!ok()) return Status(Errc::kBadRequest, error_);
    if (pos_ != in_.size())
      return Status(Errc::kBadRequest, std::string(what_) + ": " +
                                           std::to_string(in_.size() - pos_) +
                                           " unexpected trailing bytes");
    return value;
  }

 private:
  bool need(std::uint64_t n, const char* f) {
    if (ok() && remaining() >= n) [[likely]]
      return true;
    return need_failed(n, f);
  }
  [[gnu::cold, gnu::noinline]] bool need_failed(std::uint64_t n, const char* f) {
    if (!ok()) return false;
    fail(f, "truncated (needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) +
                " left)");
    return false;
  }
  std::uint64_t le(std::size_t n, const char* f) {
    if (!need(n, f)) return 0;
    std::uint64_t v = 0;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(&v, in_.data() + pos_, n);  // one load, not a loop per byte
    } else {
      for (std::size_t i = 0; i < n; ++i)
        v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += n;
    return v;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  const char* what_;
  std::uint16_t version_;
  std::string error_;
};

}  // namespace annal::net::proto::wire
