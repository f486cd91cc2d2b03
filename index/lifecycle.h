#pragma once
// Stream lifecycle (docs/semantics.md, "Metadata and deletion"): the rules
// that remove a stream's events from every read (max_count, max_age,
// truncate_before, soft deletion, the tombstone), how the events of a
// stream's metadata stream ("$$" + its name) set them, whether one event is
// removed, and the file the store keeps them in between opens
// (DATA/lifecycle, docs/storage-format.md).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "engine/status.h"

namespace annal::index {

// A stream's metadata stream is "$$" + its name; every stream whose name
// starts with "$$" is one (clients cannot append to them directly).
inline constexpr std::string_view kMetaPrefix = "$$";
// The event types of a metadata stream.
inline constexpr std::string_view kMetadataType = "$metadata";    // the metadata, as set
inline constexpr std::string_view kDeletedType = "$deleted";      // a soft delete
inline constexpr std::string_view kTombstoneType = "$tombstone";  // a hard delete

inline bool is_metadata_stream(std::string_view stream) {
  return stream.starts_with(kMetaPrefix);
}
inline std::string metadata_stream_of(std::string_view stream) {
  return std::string(kMetaPrefix) + std::string(stream);
}

// The keys of a metadata JSON object annal acts on; every other key is the
// application's and kept as written.
struct MetadataFields {
  std::optional<std::uint64_t> max_count;  // keep at most this many newest events (>= 1)
  std::optional<std::uint64_t> max_age_s;  // keep events younger than this (seconds, >= 1)
  std::uint64_t truncate_before = 0;       // remove revisions below this
  bool operator==(const MetadataFields&) const = default;
};

// Parses a metadata event's data: a JSON object whose "max_count",
// "max_age" and "truncate_before", if present, are non-negative integers
// (null: unset). kBadRequest naming the key otherwise.
Result<MetadataFields> parse_metadata(std::string_view json);

// What one stream's metadata stream says, folded over its events.
struct StreamRules {
  MetadataFields metadata;           // the latest $metadata event's
  std::uint64_t deleted_before = 0;  // revisions below were deleted ($deleted, $tombstone)
  bool tombstoned = false;           // hard-deleted: never written again
  std::uint64_t meta_revision = 0;   // the metadata stream's revision that set `metadata`
  bool has_metadata = false;

  // Revisions below this are removed whatever the head (truncate_before,
  // deletion).
  std::uint64_t cut() const {
    return metadata.truncate_before > deleted_before ? metadata.truncate_before : deleted_before;
  }
  // The first kept revision of a stream whose last revision is `head`
  // (max_count counted from it).
  std::uint64_t first_kept(std::uint64_t head) const {
    std::uint64_t c = cut();
    if (metadata.max_count && head + 1 > *metadata.max_count)
      c = std::max<std::uint64_t>(c, head + 1 - *metadata.max_count);
    return c;
  }
  // Whether the event at `revision` written at `timestamp_us` is removed,
  // the stream's last revision being `head`, at time `now_us`.
  bool removes(std::uint64_t revision, std::int64_t timestamp_us, std::uint64_t head,
               std::int64_t now_us) const {
    if (revision < first_kept(head)) return true;
    return metadata.max_age_s &&
           timestamp_us < now_us - static_cast<std::int64_t>(*metadata.max_age_s) * 1'000'000;
  }
  // A stream whose every event is below the cut (soft-deleted, or truncated
  // past its head): it reads as not found and an append may expect
  // `no_stream`; its revisions continue after the removed ones.
  bool deleted_at(std::uint64_t head) const { return cut() > head; }
  bool operator==(const StreamRules&) const = default;
};

// Applies the event of a metadata stream at `revision` (type and data as
// written) to `rules`. Events of other types are ignored; malformed data
// (which the node never writes) is kCorruption naming it.
Status apply_metadata_event(StreamRules& rules, std::uint64_t revision, std::string_view type,
                            std::string_view data);

// The data of a $deleted / $tombstone event.
std::string deletion_data(std::uint64_t truncate_before);

// Rules by stream name (the stream itself, not its metadata stream). Only
// streams that have a metadata stream are in it.
// Looked up by a record's stream name (a view) without building a string:
// the check runs for every event a read in log order looks at.
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using RulesMap = std::unordered_map<std::string, StreamRules, NameHash, std::equal_to<>>;

// DATA/lifecycle: the rules of every stream with metadata, as folded from
// the log below `through` (docs/storage-format.md).
struct LifecycleFile {
  std::uint64_t through = 0;
  RulesMap rules;
};
inline constexpr const char* kLifecycleFileName = "lifecycle";
std::string encode_lifecycle(const LifecycleFile& f);
// kCorruption naming what is wrong (the caller rebuilds it from the log).
Result<LifecycleFile> decode_lifecycle(std::string_view bytes);

}  // namespace annal::index
