#include "index/manifest.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>
#include <memory>

namespace annal::index {
namespace {
constexpr std::size_t kHeader = 32;
constexpr std::size_t kFileRecord = 40;
}  // namespace

std::string encode_manifest(const Manifest& m) {
  std::string out(kHeader + m.files.size() * kFileRecord + 8, '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  std::memcpy(p, kManifestMagic, 8);
  put_u32(p + 8, kManifestVersion);
  put_u32(p + 12, static_cast<std::uint32_t>(m.files.size()));
  put_u64(p + 16, m.indexed_through);
  put_u64(p + 24, m.next_file_number);
  std::byte* q = p + kHeader;
  for (const auto& f : m.files) {
    put_u64(q, f.number);
    put_u32(q + 8, f.level);
    put_u32(q + 12, 0);
    put_u64(q + 16, f.first_position);
    put_u64(q + 24, f.end_position);
    put_u64(q + 32, f.entry_count);
    q += kFileRecord;
  }
  put_u64(q, XXH3_64bits(p, static_cast<std::size_t>(q - p)));
  return out;
}

Result<Manifest> decode_manifest(const std::string& bytes, const std::string& path) {
  auto corrupt = [&](const std::string& what) {
    return Status(Errc::kCorruption, fmt::format("index manifest {}: {}", path, what));
  };
  const auto* p = reinterpret_cast<const std::byte*>(bytes.data());
  if (bytes.size() < kHeader + 8) return corrupt(fmt::format("too short: {} bytes", bytes.size()));
  if (std::memcmp(p, kManifestMagic, 8) != 0) return corrupt("bad magic");
  std::uint32_t n = get_u32(p + 12);
  if (bytes.size() != kHeader + std::size_t{n} * kFileRecord + 8)
    return corrupt(fmt::format("size {} bytes does not fit {} files", bytes.size(), n));
  if (get_u64(p + bytes.size() - 8) != XXH3_64bits(p, bytes.size() - 8))
    return corrupt("checksum mismatch");
  if (get_u32(p + 8) != kManifestVersion)
    return corrupt(fmt::format("unsupported version {}", get_u32(p + 8)));
  Manifest m;
  m.indexed_through = get_u64(p + 16);
  m.next_file_number = get_u64(p + 24);
  const std::byte* q = p + kHeader;
  std::uint64_t expect_first = 0;
  for (std::uint32_t i = 0; i < n; ++i, q += kFileRecord) {
    IndexFileMeta f;
    f.number = get_u64(q);
    f.level = get_u32(q + 8);
    f.first_position = get_u64(q + 16);
    f.end_position = get_u64(q + 24);
    f.entry_count = get_u64(q + 32);
    if (f.first_position != expect_first || f.end_position < f.first_position ||
        f.number >= m.next_file_number)
      return corrupt(fmt::format("file {} has inconsistent range [{}, {})",
                                 index_file_name(f.number), f.first_position, f.end_position));
    expect_first = f.end_position;
    m.files.push_back(f);
  }
  if (expect_first != m.indexed_through)
    return corrupt(
        fmt::format("files end at {} but indexed_through is {}", expect_first, m.indexed_through));
  return m;
}

Status write_manifest(engine::FileSystem& fs, const std::string& dir, const Manifest& m) {
  return engine::write_file_atomically(fs, dir, kManifestName, encode_manifest(m));
}

Result<Manifest> read_manifest(engine::FileSystem& fs, const std::string& dir) {
  const std::string path = dir + "/" + kManifestName;
  if (!fs.exists(path))
    return Status(Errc::kNotFound, fmt::format("index manifest {} is missing", path));
  auto opened = fs.open(path, engine::OpenOptions{.read_only = true});
  if (!opened) return opened.status();
  auto size = (*opened)->size();
  if (!size) return size.status();
  if (*size > (64u << 20))
    return Status(Errc::kCorruption, fmt::format("index manifest {}: {} bytes", path, *size));
  std::string bytes(static_cast<std::size_t>(*size), '\0');
  ANNAL_RETURN_IF_ERROR((*opened)->pread(
      0, std::span<std::byte>(reinterpret_cast<std::byte*>(bytes.data()), bytes.size())));
  return decode_manifest(bytes, path);
}

}  // namespace annal::index
