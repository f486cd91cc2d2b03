#include "groups/group_file.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

#include "engine/endian.h"

namespace annal::groups {
namespace {

namespace le = engine::le;

class Out {
 public:
  void u8(std::uint8_t v) { s_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { put(&le::put_u16, v, 2); }
  void u32(std::uint32_t v) { put(&le::put_u32, v, 4); }
  void u64(std::uint64_t v) { put(&le::put_u64, v, 8); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void str(const std::string& v) {
    u32(static_cast<std::uint32_t>(v.size()));
    s_ += v;
  }
  std::string& bytes() { return s_; }

 private:
  template <class F, class T>
  void put(F f, T v, std::size_t n) {
    const std::size_t at = s_.size();
    s_.resize(at + n);
    f(reinterpret_cast<std::byte*>(s_.data() + at), v);
  }
  std::string s_;
};

class In {
 public:
  explicit In(std::string_view b) : b_(b) {}
  bool u8(std::uint8_t& v, const char* f) {
    if (!need(1, f)) return false;
    v = static_cast<std::uint8_t>(b_[at_++]);
    return true;
  }
  bool u16(std::uint16_t& v, const char* f) { return get(&le::get_u16, v, 2, f); }
  bool u32(std::uint32_t& v, const char* f) { return get(&le::get_u32, v, 4, f); }
  bool u64(std::uint64_t& v, const char* f) { return get(&le::get_u64, v, 8, f); }
  bool i64(std::int64_t& v, const char* f) {
    std::uint64_t u = 0;
    if (!u64(u, f)) return false;
    v = static_cast<std::int64_t>(u);
    return true;
  }
  bool str(std::string& v, const char* f) {
    std::uint32_t n = 0;
    if (!u32(n, f) || !need(n, f)) return false;
    v.assign(b_.substr(at_, n));
    at_ += n;
    return true;
  }
  template <class E>
  bool enumeration(E& v, std::uint8_t max, const char* f) {
    std::uint8_t x = 0;
    if (!u8(x, f)) return false;
    if (x > max) return fail(f, fmt::format("has invalid value {}", x));
    v = static_cast<E>(x);
    return true;
  }
  bool fail(const char* f, const std::string& why) {
    if (error_.empty()) error_ = fmt::format("field '{}' {}", f, why);
    return false;
  }
  const std::string& error() const { return error_; }
  std::size_t remaining() const { return b_.size() - at_; }

 private:
  bool need(std::size_t n, const char* f) {
    if (b_.size() - at_ < n) return fail(f, "is truncated");
    return true;
  }
  template <class F, class T>
  bool get(F f, T& v, std::size_t n, const char* field) {
    if (!need(n, field)) return false;
    v = static_cast<T>(f(reinterpret_cast<const std::byte*>(b_.data() + at_)));
    at_ += n;
    return true;
  }
  std::string_view b_;
  std::size_t at_ = 0;
  std::string error_;
};

}  // namespace

std::string encode_group_file(const GroupFile& g) {
  Out o;
  o.u32(kGroupFileMagic);
  o.u16(kGroupFileVersion);
  o.u8(static_cast<std::uint8_t>(g.kind));
  o.str(g.name);
  o.i64(g.created_us);
  const Settings& s = g.settings;
  o.u8(static_cast<std::uint8_t>(s.target));
  o.str(s.stream);
  o.str(s.stream_prefix);
  o.str(s.type_prefix);
  o.u8(static_cast<std::uint8_t>(s.index_kind));
  o.str(s.index_value);
  o.u8(static_cast<std::uint8_t>(s.start));
  o.u64(s.start_value);
  o.u8(static_cast<std::uint8_t>(s.strategy));
  o.u32(s.max_in_flight);
  o.u32(s.ack_timeout_ms);
  o.u32(s.max_retries);
  o.u32(s.retry_delay_ms);
  const Progress& p = g.progress;
  o.u64(p.checkpoint);
  o.u64(p.checkpoint_revision);
  o.i64(p.checkpoint_timestamp_us);
  o.u64(p.acked_total);
  o.u64(p.parked_total);
  o.u32(static_cast<std::uint32_t>(p.resolved.size()));
  for (const auto& [pos, ts] : p.resolved) {
    o.u64(pos);
    o.i64(ts);
  }
  o.u32(static_cast<std::uint32_t>(p.parked.size()));
  for (const auto& [pos, pk] : p.parked) {
    o.u64(pos);
    o.u32(pk.failures);
    o.u8(pk.replaying ? 1 : 0);
    o.str(pk.reason);
  }
  std::string& b = o.bytes();
  o.u64(XXH3_64bits(b.data(), b.size()));
  return std::move(b);
}

Result<GroupFile> decode_group_file(std::string_view bytes) {
  auto corrupt = [](const std::string& why) {
    return Status(Errc::kCorruption, "group file: " + why);
  };
  if (bytes.size() < 8 + 6) return corrupt("shorter than its header and checksum");
  const std::uint64_t sum =
      le::get_u64(reinterpret_cast<const std::byte*>(bytes.data() + bytes.size() - 8));
  if (sum != XXH3_64bits(bytes.data(), bytes.size() - 8)) return corrupt("checksum mismatch");
  In in(bytes.substr(0, bytes.size() - 8));
  GroupFile g;
  std::uint32_t magic = 0;
  std::uint16_t version = 0;
  in.u32(magic, "magic");
  if (magic != kGroupFileMagic) return corrupt(fmt::format("bad magic 0x{:08x}", magic));
  in.u16(version, "version");
  if (version != kGroupFileVersion)
    return corrupt(fmt::format("version {} is not supported (this build reads {})", version,
                               kGroupFileVersion));
  in.enumeration(g.kind, 1, "kind");
  in.str(g.name, "name");
  in.i64(g.created_us, "created");
  Settings& s = g.settings;
  in.enumeration(s.target, kMaxTarget, "target");
  in.str(s.stream, "stream");
  in.str(s.stream_prefix, "stream_prefix");
  in.str(s.type_prefix, "type_prefix");
  in.enumeration(s.index_kind, index::kMaxIndexKind, "index_kind");
  in.str(s.index_value, "index_value");
  in.enumeration(s.start, kMaxStart, "start");
  in.u64(s.start_value, "start_value");
  in.enumeration(s.strategy, kMaxStrategy, "strategy");
  in.u32(s.max_in_flight, "max_in_flight");
  in.u32(s.ack_timeout_ms, "ack_timeout_ms");
  in.u32(s.max_retries, "max_retries");
  in.u32(s.retry_delay_ms, "retry_delay_ms");
  Progress& p = g.progress;
  in.u64(p.checkpoint, "checkpoint");
  in.u64(p.checkpoint_revision, "checkpoint_revision");
  in.i64(p.checkpoint_timestamp_us, "checkpoint_timestamp");
  in.u64(p.acked_total, "acked_total");
  in.u64(p.parked_total, "parked_total");
  std::uint32_t n = 0;
  if (in.u32(n, "resolved_count")) {
    if (n > in.remaining() / 16) return corrupt("field 'resolved_count' exceeds the file");
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint64_t pos = 0;
      std::int64_t ts = 0;
      if (!in.u64(pos, "resolved.position") || !in.i64(ts, "resolved.timestamp")) break;
      p.resolved[pos] = ts;
    }
  }
  if (in.u32(n, "parked_count")) {
    if (n > in.remaining() / 17) return corrupt("field 'parked_count' exceeds the file");
    for (std::uint32_t i = 0; i < n; ++i) {
      Parked pk;
      std::uint8_t replaying = 0;
      if (!in.u64(pk.position, "parked.position") || !in.u32(pk.failures, "parked.failures") ||
          !in.u8(replaying, "parked.replaying") || !in.str(pk.reason, "parked.reason"))
        break;
      pk.replaying = replaying != 0;
      p.parked[pk.position] = std::move(pk);
    }
  }
  if (!in.error().empty()) return corrupt(in.error());
  if (in.remaining() != 0) return corrupt(fmt::format("{} trailing bytes", in.remaining()));
  return g;
}

std::string group_file_name(Kind kind, const std::string& name) {
  std::string out;
  out.reserve(name.size() * 2 + 8);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : name) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  out += kind == Kind::kGroup ? ".group" : ".consumer";
  return out;
}

Status write_group_file(engine::FileSystem& fs, const std::string& dir, const GroupFile& g) {
  return engine::write_file_atomically(fs, dir, group_file_name(g.kind, g.name),
                                       encode_group_file(g));
}

Status remove_group_file(engine::FileSystem& fs, const std::string& dir, Kind kind,
                         const std::string& name) {
  const std::string path = dir + "/" + group_file_name(kind, name);
  if (!fs.exists(path)) return Status::ok();
  ANNAL_RETURN_IF_ERROR(fs.remove(path));
  return fs.sync_dir(dir);
}

Result<std::vector<GroupFile>> read_group_files(engine::FileSystem& fs, const std::string& dir) {
  if (!fs.exists(dir)) {
    // The new directory's entry in its parent must survive a power loss
    // too, or the group files written into it could vanish with it.
    ANNAL_RETURN_IF_ERROR(fs.create_dirs(dir));
    const auto slash = dir.find_last_of('/');
    if (slash != std::string::npos && slash > 0)
      ANNAL_RETURN_IF_ERROR(fs.sync_dir(dir.substr(0, slash)));
  }
  auto names = fs.list(dir);
  if (!names) return names.status();
  std::vector<GroupFile> out;
  for (const std::string& name : *names) {
    const std::string path = dir + "/" + name;
    if (name.ends_with(".tmp")) {
      // A write that did not reach its rename: the previous file stands.
      ANNAL_RETURN_IF_ERROR(fs.remove(path));
      continue;
    }
    if (!name.ends_with(".group") && !name.ends_with(".consumer")) continue;
    auto opened = fs.open(path, engine::OpenOptions{.read_only = true});
    if (!opened) return opened.status();
    auto size = (*opened)->size();
    if (!size) return size.status();
    std::string bytes(*size, '\0');
    ANNAL_RETURN_IF_ERROR((*opened)->pread(
        0, std::span<std::byte>(reinterpret_cast<std::byte*>(bytes.data()), bytes.size())));
    auto g = decode_group_file(bytes);
    if (!g) return Status(g.status().code(), fmt::format("{}: {}", path, g.status().message()));
    out.push_back(std::move(g).value());
  }
  return out;
}

}  // namespace annal::groups
