#pragma once
// The secondary index: which log positions hold the events of a category, an
// event type, a tag, a correlation id or a causation id. Derived from the log
// like the stream index and kept in the same kind of files (IndexCore:
// checksummed, merged, memory-mapped, rebuilt from the log when missing or
// damaged), in DATA/secondary. An entry is (key hash, position, position):
// the key hash is XXH3 of the kind byte and the value, the "revision" is the
// position itself, so one key's entries sort in log order. A hash names
// candidates only: a reader checks every candidate record against the key
// (SecondaryIndex::matches), so colliding keys are told apart by the log.
//
// It also holds the time map: for every millisecond of write time, an entry (time
// key, timestamp, position) for the first event written in it, so the first
// position at or after a time is found without reading the log from the start.
//
// Thread safety: add/abort_from/set_durable/flush on the log's writer thread
// (the store's hooks); candidates/stats from any thread (IndexCore snapshots).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/file.h"
#include "engine/log.h"
#include "engine/record.h"
#include "engine/status.h"
#include "index/index_core.h"
#include "index/zeroed_table.h"

namespace annal::index {

enum class IndexKind : std::uint8_t {
  kCategory = 0,     // the stream name before its first separator (none: no category)
  kType = 1,         // the event type
  kTag = 2,          // each tag
  kCorrelation = 3,  // the correlation id (non-empty)
  kCausation = 4,    // the causation id (non-empty)
};
inline constexpr std::uint8_t kMaxIndexKind = 4;
const char* index_kind_name(IndexKind k);

// The hash of one key (docs/storage-format.md, "Secondary index files").
std::uint64_t secondary_key_hash(IndexKind kind, std::string_view value);
// The key of the time map's entries (revision = write time, position).
inline constexpr std::uint64_t kTimeMapKey = 0x74696D652D6D6170ull;  // "time-map"
// The time-map bucket (millisecond) a write time falls in (floor, also for
// negative times).
std::int64_t time_bucket_of(std::int64_t timestamp_us);
// Calls fn(kind, value) for every key of one record (none for a lost entry).
template <class F>
void for_each_record_key(const engine::RecordView& v, char separator, F&& fn);

struct SecondaryOptions {
  std::string dir;                   // DATA/secondary
  engine::FileSystem* fs = nullptr;  // nullptr: posix
  std::size_t memtable_entries = 1u << 20;
  std::size_t merge_fanout = 4;
  bool verify_on_open = false;
  // A stream's category is its name up to the first `category_separator`
  // ("order-17" -> "order"); a name without one has no category.
  char category_separator = '-';
  // Reads the log's records of positions [first, end) in order, until fn
  // returns false: the replay at open and the rebuild of a damaged file (on
  // the index's background thread; the store refuses once it is closing).
  std::function<Status(std::uint64_t first, std::uint64_t end,
                       const std::function<bool(const engine::RecordView&)>& fn)>
      scan;
  // TEST ONLY: replaces the key hash, to force collisions.
  std::function<std::uint64_t(IndexKind, std::string_view)> test_hash;
};

class SecondaryIndex {
 public:
  // Opens DIR (rebuilding what is missing or damaged) and replays the log's
  // positions it does not cover yet, up to `log_end` (durable).
  static Result<std::unique_ptr<SecondaryIndex>> open(SecondaryOptions options,
                                                      std::uint64_t log_end);
  ~SecondaryIndex();

  // ---- Writer thread ----
  // Indexes the event at `position` (positions never decrease), written at
  // `timestamp_us`.
  void add(std::uint64_t position, std::int64_t timestamp_us, std::string_view stream,
           std::string_view type, const std::vector<std::string>& tags,
           std::string_view correlation_id, std::string_view causation_id);
  // Removes every entry added at `position` or later and not yet durable (an
  // aborted append).
  void abort_from(std::uint64_t position);
  void set_durable(std::uint64_t end);
  // Writes every entry out (a clean shutdown). REQUIRES: all durable.
  Status flush(std::uint64_t end);
  // False only if no event with key (kind, value) was added at `position`
  // or later (durable or not): a table of the newest position per slot of
  // key hashes (colliding keys share a slot, an aborted event's slot keeps
  // its position), so "false" is certain and "true" means look. It covers
  // the events added since track_recent() was first called (before that,
  // and for earlier positions, always "true"). For the append condition's
  // check of the events since its pre-check.
  bool may_have_since(IndexKind kind, std::string_view value, std::uint64_t position) const;
  // Starts the table (once): a node that never sees a condition neither
  // keeps nor pays for it.
  void track_recent();

  // ---- Any thread ----
  // Candidate positions of (kind, value): at most `max`, ascending, in
  // [from, to] and below `limit` (the durable end). Check each record with
  // matches().
  // `files_only`: from the index files alone (positions below
  // indexed_through()), without the memtable's lock.
  Result<std::vector<std::uint64_t>> candidates(IndexKind kind, std::string_view value,
                                                std::uint64_t from, std::uint64_t to,
                                                std::uint64_t limit, std::size_t max,
                                                bool files_only = false) const;
  // Positions below this are in the index files.
  std::uint64_t indexed_through() const { return core_->indexed_through(); }
  // The same, descending from `from` (inclusive): the last `max` of them.
  Result<std::vector<std::uint64_t>> candidates_desc(IndexKind kind, std::string_view value,
                                                     std::uint64_t from, std::uint64_t limit,
                                                     std::size_t max) const;
  // The position of the first event of the first millisecond of write time at or
  // after `bucket_start_us` (a multiple of 1 ms) that is below `limit`, or
  // nullopt if none. Every event before it was written earlier than that
  // millisecond (timestamps are monotone: the store's clock never steps back).
  Result<std::optional<std::uint64_t>> first_in_bucket(std::int64_t bucket_start_us,
                                                       std::uint64_t limit) const;
  // Whether the record is one of (kind, value)'s events.
  bool matches(const engine::RecordView& v, IndexKind kind, std::string_view value) const;
  std::string_view category_of(std::string_view stream) const;
  IndexCoreStats stats() const;
  std::string rebuild_reason() const;
  void wait_idle();

 private:
  explicit SecondaryIndex(SecondaryOptions options);
  std::uint64_t key(IndexKind kind, std::string_view value) const;
  std::uint64_t time_key() const;
  // Calls fn(kind, value) for every key of one event.
  template <class Tags, class F>
  void for_each_key(std::string_view stream, std::string_view type, const Tags& tags,
                    std::string_view correlation_id, std::string_view causation_id, F&& fn) const;
  // add_key and add_time collect one event's entries in batch_; add_batch
  // hands them to the index at once (one lock, not one per key).
  void add_key(std::uint64_t position, IndexKind kind, std::string_view value);
  void add_view(const engine::RecordView& v);
  void add_time(std::uint64_t position, std::int64_t timestamp_us);
  void add_batch();

  SecondaryOptions options_;
  std::unique_ptr<IndexCore> core_;
  std::vector<IndexEntry> batch_;  // the event being added
  // The millisecond of the last time entry added; unknown (INT64_MIN) after an
  // abort or at open, so the next event adds one (an extra entry is
  // harmless, a missing one would skip a millisecond's first events).
  std::int64_t last_bucket_ = INT64_MIN;
  // may_have_since: per slot of key hashes, one past the newest position
  // added (writer thread only; empty until track_recent). Covers positions
  // from recent_from_ on. 16 MiB, committed as touched: few false "may" for
  // conditions whose `after` is recent even with millions of distinct keys.
  static constexpr std::size_t kRecentSlots = std::size_t{1} << 21;
  ZeroedTable<std::uint64_t> recent_;
  std::uint64_t recent_from_ = 0;
  std::uint64_t added_end_ = 0;  // one past the newest position added
  static std::size_t recent_slot(std::uint64_t hash);
};

// The first position below `end` written at or after `timestamp_us` (`end`
// if none): the time map's entry for that millisecond, then the log from there.
Result<GlobalPosition> seek_secondary_time(const SecondaryIndex& index, const engine::Log& log,
                                           std::int64_t timestamp_us, GlobalPosition end);

// Whether the record is one of (kind, value)'s events, for a node whose
// category separator is `separator`. A lost entry matches no key.
bool key_matches(const engine::RecordView& v, IndexKind kind, std::string_view value,
                 char separator);
std::string_view category_of(std::string_view stream, char separator);

// Calls fn(kind, value) for every key of one event, from its fields (`tags`:
// the event's strings or a record's TagView). The one definition of which
// keys an event has: the writer, the rebuild and verify all use it.
template <class Tags, class F>
void for_each_event_key(std::string_view stream, std::string_view type, const Tags& tags,
                        std::string_view correlation_id, std::string_view causation_id,
                        char separator, F&& fn) {
  if (stream.empty()) return;  // a lost entry (repair marker): nothing to index
  if (auto c = category_of(stream, separator); !c.empty()) fn(IndexKind::kCategory, c);
  fn(IndexKind::kType, type);
  for (std::string_view t : tags) fn(IndexKind::kTag, t);
  if (!correlation_id.empty()) fn(IndexKind::kCorrelation, correlation_id);
  if (!causation_id.empty()) fn(IndexKind::kCausation, causation_id);
}

template <class F>
void for_each_record_key(const engine::RecordView& v, char separator, F&& fn) {
  for_each_event_key(v.stream, v.type, v.tags, v.correlation_id, v.causation_id, separator, fn);
}

// The events of (kind, value) below `end` in log order from `from`
// (inclusive; backward from UINT64_MAX = from the end), read from `log` and
// checked against the key, until fn returns false (Store::visit_index).
Status visit_secondary(const SecondaryIndex& index, const engine::Log& log, IndexKind kind,
                       std::string_view value, GlobalPosition from, bool backward,
                       GlobalPosition end,
                       const std::function<bool(const engine::RecordView&)>& fn);

}  // namespace annal::index
