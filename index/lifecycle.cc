#include "index/lifecycle.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/endian.h"

namespace annal::index {
namespace {

namespace le = engine::le;

Status bad(std::string message) {
  return Status(Errc::kBadRequest, std::move(message));
}

// A non-negative integer (or null: unset) at `key`.
Status take_u64(simdjson::dom::object& obj, const char* key, std::optional<std::uint64_t>& out) {
  simdjson::dom::element e;
  if (obj.at_key(key).get(e) != simdjson::SUCCESS) return Status::ok();  // absent
  if (e.is_null()) return Status::ok();
  std::uint64_t v = 0;
  if (e.is_uint64()) {
    v = e.get_uint64().value_unsafe();
  } else if (e.is_int64()) {
    return bad(fmt::format("metadata: \"{}\" must not be negative", key));
  } else {
    return bad(fmt::format("metadata: \"{}\" must be a non-negative integer or null", key));
  }
  out = v;
  return Status::ok();
}

}  // namespace

Result<MetadataFields> parse_metadata(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root); err != simdjson::SUCCESS)
    return bad(fmt::format("metadata is not valid JSON: {}", simdjson::error_message(err)));
  simdjson::dom::object obj;
  if (root.get(obj) != simdjson::SUCCESS) return bad("metadata must be a JSON object");
  MetadataFields f;
  std::optional<std::uint64_t> tb;
  ANNAL_RETURN_IF_ERROR(take_u64(obj, "max_count", f.max_count));
  ANNAL_RETURN_IF_ERROR(take_u64(obj, "max_age", f.max_age_s));
  ANNAL_RETURN_IF_ERROR(take_u64(obj, "truncate_before", tb));
  if (f.max_count && *f.max_count == 0)
    return bad("metadata: \"max_count\" must be at least 1 (delete the stream to remove all)");
  if (f.max_age_s && *f.max_age_s == 0) return bad("metadata: \"max_age\" must be at least 1");
  if (f.max_age_s && *f.max_age_s > (std::uint64_t{1} << 40))
    return bad("metadata: \"max_age\" is over 2^40 seconds");
  f.truncate_before = tb.value_or(0);
  return f;
}

Status apply_metadata_event(StreamRules& rules, std::uint64_t revision, std::string_view type,
                            std::string_view data) {
  const bool deleted = type == kDeletedType, tomb = type == kTombstoneType;
  if (type != kMetadataType && !deleted && !tomb) return Status::ok();
  auto f = parse_metadata(data);
  if (!f)
    return Status(Errc::kCorruption, fmt::format("a {} event (metadata stream revision {}): {}",
                                                 type, revision, f.status().message()));
  if (deleted || tomb) {
    rules.deleted_before = std::max(rules.deleted_before, f->truncate_before);
    rules.tombstoned = rules.tombstoned || tomb;
  } else {
    rules.metadata = *f;
    rules.meta_revision = revision;
    rules.has_metadata = true;
  }
  return Status::ok();
}

std::string deletion_data(std::uint64_t truncate_before) {
  return fmt::format("{{\"truncate_before\":{}}}", truncate_before);
}

// Layout (little-endian): "ANNALLCY", u32 version 1, u32 reserved 0, u64
// through, u64 count, count entries sorted by name (u16 name length, name,
// u8 flags [1 max_count, 2 max_age, 4 tombstoned, 8 has metadata], u64
// max_count, u64 max_age, u64 truncate_before, u64 deleted_before, u64
// meta_revision), u64 XXH3_64bits of every byte before it.
namespace {
constexpr char kMagic[8] = {'A', 'N', 'N', 'A', 'L', 'L', 'C', 'Y'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kEntryFixed = 2 + 1 + 5 * 8;

void put64(std::string& s, std::uint64_t v) {
  const std::size_t at = s.size();
  s.resize(at + 8);
  le::put_u64(reinterpret_cast<std::byte*>(s.data() + at), v);
}
std::uint64_t get64(const char* p) {
  return le::get_u64(reinterpret_cast<const std::byte*>(p));
}
}  // namespace

std::string encode_lifecycle(const LifecycleFile& f) {
  std::vector<const RulesMap::value_type*> sorted;
  sorted.reserve(f.rules.size());
  for (const auto& kv : f.rules) sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  std::string s(kMagic, 8);
  s.resize(16);
  le::put_u32(reinterpret_cast<std::byte*>(s.data() + 8), kVersion);
  le::put_u32(reinterpret_cast<std::byte*>(s.data() + 12), 0);
  put64(s, f.through);
  put64(s, sorted.size());
  for (const auto* kv : sorted) {
    const StreamRules& r = kv->second;
    const std::size_t at = s.size();
    s.resize(at + 2);
    le::put_u16(reinterpret_cast<std::byte*>(s.data() + at),
                static_cast<std::uint16_t>(kv->first.size()));
    s += kv->first;
    s.push_back(static_cast<char>((r.metadata.max_count ? 1 : 0) | (r.metadata.max_age_s ? 2 : 0) |
                                  (r.tombstoned ? 4 : 0) | (r.has_metadata ? 8 : 0)));
    put64(s, r.metadata.max_count.value_or(0));
    put64(s, r.metadata.max_age_s.value_or(0));
    put64(s, r.metadata.truncate_before);
    put64(s, r.deleted_before);
    put64(s, r.meta_revision);
  }
  put64(s, XXH3_64bits(s.data(), s.size()));
  return s;
}

Result<LifecycleFile> decode_lifecycle(std::string_view b) {
  auto corrupt = [](std::string what) {
    return Status(Errc::kCorruption, "lifecycle file: " + std::move(what));
  };
  if (b.size() < 40) return corrupt(fmt::format("{} bytes, shorter than its header", b.size()));
  if (std::memcmp(b.data(), kMagic, 8) != 0) return corrupt("bad magic");
  const std::uint64_t sum = get64(b.data() + b.size() - 8);
  if (XXH3_64bits(b.data(), b.size() - 8) != sum) return corrupt("checksum mismatch");
  const std::uint32_t version = le::get_u32(reinterpret_cast<const std::byte*>(b.data() + 8));
  if (version != kVersion) return corrupt(fmt::format("unsupported version {}", version));
  LifecycleFile f;
  f.through = get64(b.data() + 16);
  const std::uint64_t count = get64(b.data() + 24);
  std::size_t at = 32;
  const std::size_t stop = b.size() - 8;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (stop - at < 2) return corrupt(fmt::format("entry {} runs past the end", i));
    const std::size_t n = le::get_u16(reinterpret_cast<const std::byte*>(b.data() + at));
    if (stop - at < kEntryFixed + n) return corrupt(fmt::format("entry {} runs past the end", i));
    std::string name(b.substr(at + 2, n));
    const char* p = b.data() + at + 2 + n;
    const auto flags = static_cast<std::uint8_t>(p[0]);
    StreamRules r;
    if (flags & 1) r.metadata.max_count = get64(p + 1);
    if (flags & 2) r.metadata.max_age_s = get64(p + 9);
    r.metadata.truncate_before = get64(p + 17);
    r.deleted_before = get64(p + 25);
    r.meta_revision = get64(p + 33);
    r.tombstoned = (flags & 4) != 0;
    r.has_metadata = (flags & 8) != 0;
    f.rules.emplace(std::move(name), r);
    at += kEntryFixed + n;
  }
  if (at != stop) return corrupt(fmt::format("{} bytes after the last entry", stop - at));
  return f;
}

}  // namespace annal::index
