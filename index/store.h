#pragma once
// The store: the log plus the per-stream index and the write semantics
// (expected revisions, idempotent retries, limits). See docs/semantics.md.
//
// Thread safety: every method may be called from any thread. Appends are
// sequenced on the log's writer thread (engine::WriteHooks), so expected-
// revision checks and revision assignment happen in log order.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/format.h"
#include "engine/log.h"
#include "engine/status.h"
#include "engine/types.h"
#include "index/lifecycle.h"
#include "index/query.h"
#include "index/secondary.h"
#include "index/snapshots.h"

namespace annal::index {

struct Limits {
  std::size_t max_stream_name = 1024;       // bytes
  std::size_t max_event_type = 1024;        // bytes
  std::size_t max_event_size = 4u << 20;    // metadata + data of one event
  std::size_t max_append_size = 16u << 20;  // all events of one append, encoded
  std::size_t max_append_events = 10000;
  std::size_t max_tags = 32;             // per event, after duplicates are dropped
  std::size_t max_tag_size = 256;        // bytes of one tag
  std::size_t max_correlation_id = 256;  // bytes of a correlation or causation id
  std::size_t max_append_streams = 100;  // streams of one multi-stream append
  std::size_t max_query_items = 64;      // items of one query (append condition, read)
  std::size_t max_query_item_types = 32;
};

struct StoreOptions {
  engine::LogOptions log;  // log.dir is the data directory
  Limits limits;
  // Index entries kept in memory before they are written out as an immutable
  // sorted index file.
  std::size_t memtable_entries = 1u << 20;
  // How many of the most recent events' ids are remembered for idempotent
  // retries with `any` / `stream_exists` expectations (survives restarts).
  std::uint64_t idempotency_window = 1u << 20;
  // Stream heads (last revision of a stream) cached in memory.
  std::size_t head_cache_entries = 1u << 20;
  // TEST ONLY: replaces the XXH3 stream-name hash, to force collisions.
  std::function<std::uint64_t(std::string_view)> test_stream_hash;

  // Index files of one level merged into one file of the next level once
  // this many accumulate (tiered merging).
  std::size_t index_merge_fanout = 4;
  // Index files are opened by their header, footer and summary (checksummed),
  // so a reopen does not read the whole index. Every block of entries is
  // checked the first time a query reads it, and a background scrub checks
  // all blocks after open; a damaged file fails the queries that touch it
  // (kCorruption) until it is rebuilt from the log, in the background.
  // true: check every block before open returns (reopen then reads the
  // whole index: ~24 bytes per event).
  bool verify_index_on_open = false;
  // TEST ONLY: the destructor does not write the memtable out, leaving the
  // index as a kill would (the log itself is always durable).
  bool test_skip_index_flush_on_close = false;
  // The secondary index (category, type, tag, correlation and causation id;
  // index/secondary.h), in DATA/secondary. Off: it is neither kept nor read
  // (reads by it are kInvalidArgument), and its files are left alone.
  bool secondary_index = true;
  // Snapshots kept per stream in DATA/snapshots (the newest ones).
  std::size_t snapshots_kept = 8;
  char category_separator = '-';
  // TEST ONLY: replaces the secondary index's key hash, to force collisions.
  std::function<std::uint64_t(IndexKind, std::string_view)> test_secondary_hash;
  // TEST ONLY: called on the writer thread before each append is checked
  // (a test holds the writer there to queue appends into one group).
  std::function<void()> test_before_prepare;
};

struct NewEvent {
  EventId id;
  std::string type;
  std::uint32_t flags = 0;  // engine::format::kFlagDataJson / kFlagMetadataJson
  std::string metadata;
  std::string data;
  // Stored in the record's extension (docs/storage-format.md). Tags may come
  // in any order and repeat: the store sorts them and drops duplicates.
  std::vector<std::string> tags = {};
  std::string correlation_id = {};
  std::string causation_id = {};
};

struct StreamAppend {
  std::string stream;
  ExpectedRevision expected;
  std::vector<NewEvent> events;
};

// Several streams in one append, all or nothing (docs/semantics.md): each
// stream with its own expected revision; a stream without events is only
// checked (its expectation must not be `any`). The events are written in the
// order given, each stream's contiguously, as one atomic group. `condition`
// (DCB): refused with kAppendConditionFailed if an event matching its query
// exists after its position, among durable events or those already accepted
// into the not yet durable groups.
struct MultiAppend {
  std::vector<StreamAppend> streams;
  std::optional<AppendCondition> condition;
};

enum class Direction : std::uint8_t { kForward = 0, kBackward = 1 };

// A stream's metadata and deletion state (docs/semantics.md, "Metadata and
// deletion"), as durable.
struct StreamMetadata {
  // The metadata stream's revision of the metadata as set (the expected
  // revision of the next set_metadata); nullopt if the stream has no
  // metadata stream yet.
  std::optional<StreamRevision> revision;
  std::string json = "{}";  // the metadata as last set ("{}" if never)
  StreamRules rules;        // what annal acts on, folded over the metadata stream
  bool deleted = false;     // soft-deleted now: reads as not found
};

class Store;

struct ScavengeOptions {
  // Bytes of segment written per second at most (0: as fast as the disk).
  std::uint64_t bytes_per_second = 0;
  // Asked between chunks: true stops the scavenge (what is done stays done).
  std::function<bool()> cancelled;
};

struct ScavengeReport {
  std::uint64_t segments_checked = 0;    // sealed segments read
  std::uint64_t segments_rewritten = 0;  // of them, rewritten
  std::uint64_t events_removed = 0;      // replaced by removed markers now
  std::uint64_t bytes_read = 0;          // of the segments checked
  std::uint64_t bytes_written = 0;       // records written into rewritten segments
  std::uint64_t bytes_freed = 0;         // the rewritten segments' files shrank by this
  std::uint64_t log_bytes_before = 0;    // every segment file, before and after (appends
  std::uint64_t log_bytes_after = 0;     // made meanwhile count too)
  double seconds = 0;
  bool cancelled = false;
};

// An online backup of the data directory (docs/operations.md, "Backup and
// restore"; the code is index/store_backup.cc).
struct BackupOptions {
  // Absolute path; must not exist or be an empty directory, its parent must
  // exist, and it must not be inside the data directory. Written as
  // DEST.partial and renamed to DEST when complete.
  std::string dest;
  // Hard-link the immutable files (sealed segments and their position
  // indexes, index files) instead of copying them; falls back to copying
  // (and says so in the report's note) when DEST is on another file system.
  bool link = false;
  // Bytes read per second at most (0: as fast as the disk).
  std::uint64_t bytes_per_second = 0;
  std::string node_version;  // recorded in the manifest
  // The consumer groups' files (empty: DATA/groups); stored as groups/.
  std::string groups_dir;
  // Asked between chunks: true stops the backup with kShuttingDown (and
  // removes DEST.partial).
  std::function<bool()> cancelled;
};

struct BackupReport {
  std::string dest;          // the canonical path of the backup
  GlobalPosition position;   // every event below it is in the backup
  std::uint64_t files = 0;   // in the manifest
  std::uint64_t bytes = 0;   // their sizes summed
  std::uint64_t linked = 0;  // of them, hard-linked
  std::string note;          // e.g. why --link fell back to copying
  double seconds = 0;
};

// The deletion rules at one moment, for reads in log order (read_all,
// subscriptions, consumer groups, secondary index reads): whether an event
// is removed. Take it after reading the durable end the read stops at.
class Removal {
 public:
  Removal() = default;
  // No stream has rules: nothing is removed (the common case, checked first).
  bool none() const { return !rules_ || rules_->empty(); }
  // Whether `v` is removed now by its stream's metadata or deletion. Lost
  // markers (repair) are never removed: they are damage, reported.
  // A removed marker (scavenge) always is.
  bool removed(const engine::RecordView& v) const {
    return (v.flags & engine::format::kFlagRemoved) != 0 || (!none() && removed_slow(v));
  }
  // The same for an event known by its stream, revision and write time.
  bool removed(std::string_view stream, std::uint64_t revision, std::int64_t timestamp_us) const;

 private:
  friend class Store;
  bool removed_slow(const engine::RecordView& v) const;
  bool removed_at(std::string_view stream, std::uint64_t revision, std::int64_t timestamp_us) const;
  const Store* store_ = nullptr;
  std::shared_ptr<const RulesMap> rules_;
  std::int64_t now_us_ = 0;
  std::uint64_t end_ = 0;
  // Last revisions of streams with max_count, looked up once per Removal.
  mutable std::unordered_map<std::string, std::uint64_t, NameHash, std::equal_to<>> heads_;
};

struct IndexStats {
  std::uint64_t memtable_entries = 0;
  std::uint64_t index_files = 0;
  std::uint64_t indexed_through = 0;  // positions below this are in index files
  std::uint64_t resident_bytes_estimate = 0;
  std::string last_rebuild_reason;  // empty if none
  std::uint64_t index_repairs = 0;  // damaged index files rebuilt while open
  bool index_scrub_done = false;    // every index file found at open checked
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> open(StoreOptions options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Validates limits (kTooLarge / kBadRequest, naming what), then sequences
  // the append. `done` runs on the log's writer thread once the outcome is
  // durable or failed; it must not block. An append refused by the limits
  // completes at once, with `done` called on the calling thread.
  void append(StreamAppend append, std::function<void(const engine::AppendOutcome&)> done);
  engine::AppendOutcome append_sync(StreamAppend append);
  // A multi-stream and/or conditional append. The outcome's `streams` has
  // one entry per stream, in request order (its first revision and count,
  // or with kWrongExpectedRevision whether it failed and its actual
  // revision); a refused condition names the first conflicting position
  // (`conflict_position`). An append of one stream without a condition
  // behaves exactly as append().
  void append_multi(MultiAppend append, std::function<void(const engine::AppendOutcome&)> done);
  engine::AppendOutcome append_multi_sync(MultiAppend append);

  // Up to `count` events of `stream`: forward from revision `from`, or
  // backward from `from` inclusive (StreamRevision(UINT64_MAX) = from the
  // end). kStreamNotFound if the stream has no durable event.
  Result<std::vector<engine::EventRecord>> read_stream(const std::string& stream,
                                                       StreamRevision from, std::uint64_t count,
                                                       Direction direction) const;
  // The same events as views into the log, valid only during `fn`, which
  // returns false to stop: no copy per event. The same errors; events
  // visited before an error stay visited.
  using StreamVisitor = std::function<bool(const engine::RecordView&)>;
  Status visit_stream(const std::string& stream, StreamRevision from, std::uint64_t count,
                      Direction direction, const StreamVisitor& fn) const;
  // The stream's last durable revision; kStreamNotFound if none.
  Result<StreamRevision> last_revision(const std::string& stream) const;

  // ---- Stream lifecycle (docs/semantics.md, "Metadata and deletion") ----
  // Sets `stream`'s metadata: a JSON object (index/lifecycle.h
  // parse_metadata: max_count, max_age, truncate_before, and the
  // application's own keys), appended as a $metadata event to its metadata
  // stream "$$stream" with `expected` (that stream's revision: metadata is
  // versioned like any stream). Effective for every read from the moment it
  // is durable. kBadRequest for bad metadata, kStreamDeleted if the stream
  // was hard-deleted.
  void set_metadata(std::string stream, ExpectedRevision expected, std::string json,
                    std::function<void(const engine::AppendOutcome&)> done);
  engine::AppendOutcome set_metadata_sync(std::string stream, ExpectedRevision expected,
                                          std::string json);
  // The durable metadata and deletion state (kStreamDeleted is not an error
  // here: it is in the rules).
  Result<StreamMetadata> read_metadata(const std::string& stream) const;
  // Deletes `stream` (its expectation checked as by an append): soft (it
  // reads as not found; a later append continues its revisions) or hard (a
  // tombstone: never written again, kStreamDeleted). The outcome's
  // truncate_before is the stream's last revision + 1. Soft-deleting a
  // stream with no visible event is kStreamNotFound.
  void delete_stream(std::string stream, ExpectedRevision expected, bool hard,
                     std::function<void(const engine::AppendOutcome&)> done);
  engine::AppendOutcome delete_stream_sync(std::string stream, ExpectedRevision expected,
                                           bool hard);
  // ---- Snapshots (docs/semantics.md, "Snapshots") ----
  // Saves the application's snapshot of `stream` after `revision` (at most
  // its last durable revision; not below a deletion): durable on return.
  // kStreamNotFound for a stream without visible events, kStreamDeleted for
  // a tombstoned one, kBadRequest / kTooLarge naming what is wrong. Returns
  // the stream's snapshot count after the save.
  Result<std::size_t> save_snapshot(const std::string& stream, std::uint64_t revision,
                                    std::string type, std::string data);
  // The newest snapshot at or below `max_revision` (UINT64_MAX: the newest)
  // that is still valid (at or above the stream's last deletion, at most its
  // last revision); nullopt if none. Errors as save_snapshot's.
  Result<std::optional<Snapshot>> read_snapshot(const std::string& stream,
                                                std::uint64_t max_revision) const;

  // The rules now, for a read in log order below a durable end read before.
  Removal removal() const;
  // Grows each time the readers' rules change (a metadata or deletion event
  // became durable): a reader that read under an older version may read again.
  std::uint64_t rules_version() const;
  // Rewrites every sealed segment holding events removed by their stream's
  // rules (engine::Log::rewrite_sealed), freeing their space; surviving
  // events keep their positions and bytes, metadata streams are kept whole.
  // Online (reads and appends go on), throttled, crash-safe per segment;
  // running it again resumes (segments with nothing left to remove are only
  // read). One at a time: kInvalidArgument while another runs.
  Result<ScavengeReport> scavenge(const ScavengeOptions& options);
  // Takes a consistent copy of the data directory while appends go on
  // (BackupOptions; docs/operations.md, "Backup and restore"): the position
  // is the durable end when it starts; the consumer group files, the stream
  // rules, snapshots and both indexes are taken first (each is at or below
  // the durable end, hence at or below the position), then the sealed
  // segments, then the newest segment up to the position's byte offset.
  // Excludes scavenge (kBusy if one runs; a scavenge started meanwhile
  // fails with kBusy), one backup at a time (kBusy). Errors: kInvalidArgument
  // (relative, inside the data directory, no parent), kAlreadyExists (DEST
  // not empty), kNoSpace, kIoError, kShuttingDown (cancelled); DEST.partial
  // is removed on failure. Blocks for the whole copy: call it on a thread of
  // its own.
  Result<BackupReport> backup(const BackupOptions& options);
  // The last durable revision of `stream` regardless of removals (for
  // Removal's max_count); nullopt if none. Errors if it cannot be read.
  Result<std::optional<StreamRevision>> raw_head(std::string_view stream, std::uint64_t end) const;

  // The events of a secondary index key (the category, event type, tag,
  // correlation or causation id `value`) below position `end` (at most the
  // durable end), in log order from position `from` (inclusive) in
  // `direction` (backward from UINT64_MAX = from the end), until fn returns
  // false. Every record is read and checked against the key (hash collisions
  // never show); a record that cannot be read ends it with that error
  // (kCorruption naming it), never skipped. kInvalidArgument if the node
  // keeps no secondary index.
  Status visit_index(IndexKind kind, std::string_view value, GlobalPosition from,
                     Direction direction, GlobalPosition end, const StreamVisitor& fn) const;

  // The events matching `query` (index/query.h) below `end` (at most the
  // durable end), from `from` (inclusive) in `direction`, until fn returns
  // false; errors as for visit_index.
  Status visit_query(const Query& query, GlobalPosition from, Direction direction,
                     GlobalPosition end, const StreamVisitor& fn) const;

  // Called on the writer thread with the new durable end after every group
  // commit. Returns a handle for remove_durable_listener. Listeners must not
  // block.
  std::uint64_t add_durable_listener(std::function<void(GlobalPosition end)> fn);
  void remove_durable_listener(std::uint64_t handle);

  engine::Log& log();
  const engine::Log& log() const;
  const Limits& limits() const;
  // The category separator of the secondary index (StoreOptions).
  char category_separator() const;
  IndexStats stats() const;
  // The secondary index's files and memtable (nullopt if it is off).
  std::optional<IndexCoreStats> secondary_stats() const;
  // The first durable position whose event was written at or after
  // `timestamp_us` (the durable end if none), from the secondary index's time
  // map and a short scan of the log. kInvalidArgument if it is off.
  Result<GlobalPosition> seek_time(std::int64_t timestamp_us) const;
  // Waits until the index's background flushes and merges are done (tests,
  // benchmarks).
  void wait_index_idle();

  class Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace annal::index
