#include "index/snapshots.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "engine/endian.h"

namespace annal::index {
namespace {

namespace le = engine::le;
constexpr char kMagic[8] = {'A', 'N', 'N', 'A', 'L', 'S', 'N', 'P'};
constexpr std::uint32_t kVersion = 1;

void put(std::string& s, std::uint64_t v, int n) {
  const std::size_t at = s.size();
  s.resize(at + static_cast<std::size_t>(n));
  auto* p = reinterpret_cast<std::byte*>(s.data() + at);
  if (n == 4)
    le::put_u32(p, static_cast<std::uint32_t>(v));
  else
    le::put_u64(p, v);
}

std::string file_name(std::uint64_t revision) {
  return fmt::format("{:020}.snap", revision);
}

}  // namespace

// Layout (little-endian): "ANNALSNP", u32 version 1, u32 reserved 0,
// u64 revision, i64 saved_us, u32 stream length, u32 type length, u32 data
// length, stream, type, data, u64 XXH3_64bits of every byte before it.
std::string encode_snapshot(const Snapshot& s) {
  std::string b(kMagic, 8);
  put(b, kVersion, 4);
  put(b, 0, 4);
  put(b, s.revision, 8);
  put(b, static_cast<std::uint64_t>(s.saved_us), 8);
  put(b, s.stream.size(), 4);
  put(b, s.type.size(), 4);
  put(b, s.data.size(), 4);
  b += s.stream;
  b += s.type;
  b += s.data;
  put(b, XXH3_64bits(b.data(), b.size()), 8);
  return b;
}

Result<Snapshot> decode_snapshot(std::string_view b, const std::string& file) {
  auto bad = [&](const std::string& why) {
    return Status(Errc::kCorruption, fmt::format("snapshot file {}: {}", file, why));
  };
  if (b.size() < 52) return bad(fmt::format("{} bytes, shorter than its header", b.size()));
  auto u32 = [&](std::size_t at) {
    return le::get_u32(reinterpret_cast<const std::byte*>(b.data() + at));
  };
  auto u64 = [&](std::size_t at) {
    return le::get_u64(reinterpret_cast<const std::byte*>(b.data() + at));
  };
  if (std::memcmp(b.data(), kMagic, 8) != 0) return bad("bad magic");
  if (XXH3_64bits(b.data(), b.size() - 8) != u64(b.size() - 8)) return bad("checksum mismatch");
  if (u32(8) != kVersion) return bad(fmt::format("unsupported version {}", u32(8)));
  Snapshot s;
  s.revision = u64(16);
  s.saved_us = static_cast<std::int64_t>(u64(24));
  const std::uint64_t sn = u32(32), tn = u32(36), dn = u32(40);
  if (44 + sn + tn + dn + 8 != b.size()) return bad("lengths do not add up to the file's size");
  s.stream.assign(b.substr(44, sn));
  s.type.assign(b.substr(44 + sn, tn));
  s.data.assign(b.substr(44 + sn + tn, dn));
  return s;
}

SnapshotStore::SnapshotStore(engine::FileSystem& fs, std::string dir, std::size_t kept)
    : fs_(fs), dir_(std::move(dir)), kept_(std::max<std::size_t>(kept, 1)) {}

std::string SnapshotStore::stream_dir(std::string_view stream) const {
  const XXH128_hash_t h = XXH3_128bits(stream.data(), stream.size());
  return fmt::format("{}/{:016x}{:016x}", dir_, h.high64, h.low64);
}

Result<std::vector<std::uint64_t>> SnapshotStore::revisions(std::string_view stream) const {
  std::vector<std::uint64_t> out;
  const std::string d = stream_dir(stream);
  if (!fs_.exists(d)) return out;
  auto names = fs_.list(d);
  if (!names) return names.status();
  for (const auto& n : *names) {
    // <20 digits>.snap; anything else (a .tmp a crash left) is not a snapshot.
    if (n.size() != 25 || !n.ends_with(".snap") || n.find_first_not_of("0123456789") != 20)
      continue;
    out.push_back(std::stoull(n.substr(0, 20)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::size_t> SnapshotStore::save(const Snapshot& s) {
  std::lock_guard l(mu_);
  const std::string d = stream_dir(s.stream);
  if (!fs_.exists(d)) {
    if (!fs_.exists(dir_)) {
      ANNAL_RETURN_IF_ERROR(fs_.create_dirs(dir_));
      ANNAL_RETURN_IF_ERROR(fs_.sync_dir(dir_.substr(0, dir_.rfind('/'))));
    }
    ANNAL_RETURN_IF_ERROR(fs_.create_dirs(d));
    ANNAL_RETURN_IF_ERROR(fs_.sync_dir(dir_));
  }
  ANNAL_RETURN_IF_ERROR(
      engine::write_file_atomically(fs_, d, file_name(s.revision), encode_snapshot(s)));
  auto revs = revisions(s.stream);
  if (!revs) return revs.status();
  std::size_t n = revs->size();
  for (std::size_t i = 0; i + kept_ < revs->size(); ++i, --n)
    ANNAL_RETURN_IF_ERROR(fs_.remove(d + "/" + file_name((*revs)[i])));
  if (n != revs->size()) ANNAL_RETURN_IF_ERROR(fs_.sync_dir(d));
  return n;
}

Result<std::optional<Snapshot>> SnapshotStore::latest(std::string_view stream,
                                                      std::uint64_t min_revision,
                                                      std::uint64_t max_revision) const {
  auto revs = revisions(stream);
  if (!revs) return revs.status();
  for (auto it = revs->rbegin(); it != revs->rend(); ++it) {
    if (*it > max_revision) continue;
    if (*it < min_revision) break;
    const std::string path = stream_dir(stream) + "/" + file_name(*it);
    auto bytes = engine::read_whole_file(fs_, path);
    if (!bytes) return bytes.status();
    auto s = decode_snapshot(*bytes, path);
    if (!s) return s.status();
    if (s->stream != stream || s->revision != *it)
      return Status(Errc::kCorruption, fmt::format("snapshot file {} holds stream '{}' revision {}",
                                                   path, s->stream, s->revision));
    return std::optional<Snapshot>(std::move(*s));
  }
  return std::optional<Snapshot>();
}

Status SnapshotStore::drop_below(std::string_view stream, std::uint64_t revision) {
  std::lock_guard l(mu_);
  auto revs = revisions(stream);
  if (!revs) return revs.status();
  const std::string d = stream_dir(stream);
  bool any = false;
  for (std::uint64_t r : *revs)
    if (r < revision) {
      ANNAL_RETURN_IF_ERROR(fs_.remove(d + "/" + file_name(r)));
      any = true;
    }
  if (any) ANNAL_RETURN_IF_ERROR(fs_.sync_dir(d));
  return Status::ok();
}

}  // namespace annal::index
