#pragma once
// The append-only log: a directory of checksummed, preallocated segment files
// addressed by a dense global position. See docs/storage-format.md.
//
// Durability contract: an append's `done` callback reports success only after
// an fdatasync covering every byte of it returned success. Readers see only
// durable events (position < durable_end()).
//
// Thread safety: append() may be called from any thread; one internal writer
// thread batches queued appends (group commit: many appends, one write, one
// fdatasync), and an append that finds the log idle is written by its caller
// (LogOptions::write_when_idle); one group is written at a time. Reads may run
// on any thread concurrently with the writer.

#include <any>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/file.h"
#include "engine/log_metrics.h"
#include "engine/record.h"
#include "engine/status.h"
#include "engine/types.h"

namespace annal::engine {

// What an append resolved to.
struct AppendOutcome {
  Status status;
  GlobalPosition first_position;  // position of the first event
  StreamRevision first_revision;  // revision of the first event (as stored)
  std::uint32_t count = 0;
  bool deduplicated = false;  // an idempotent retry: nothing was written
  // With kWrongExpectedRevision: the stream's actual last revision, nullopt if
  // the stream does not exist.
  std::optional<StreamRevision> actual_revision;
  // Multi-stream appends (the store): one entry per stream of the request,
  // in its order. `failed` marks the streams whose expectation failed
  // (kWrongExpectedRevision), with their actual revision.
  struct StreamResult {
    StreamRevision first_revision;  // of its first event (count 0: none written)
    std::uint32_t count = 0;
    bool failed = false;
    std::optional<StreamRevision> actual_revision;
  };
  std::vector<StreamResult> streams;
  // With kAppendConditionFailed: the first position holding a matching event.
  std::optional<GlobalPosition> conflict_position;
  // A stream deletion (the store): the stream's revisions below this were
  // removed (its last revision + 1 at the time; 0 if it had none).
  std::uint64_t truncate_before = 0;
};

struct AppendRequest {
  // Events to append, in order. The log assigns positions (and sets the commit
  // flag on the last one); everything else is taken as given, or filled in by
  // WriteHooks::prepare.
  std::vector<EventRecord> events;
  // Called exactly once, on the thread that wrote the group (see
  // LogOptions::write_when_idle), after the outcome is durable (or failed).
  // Must not block: post elsewhere for heavy work. May run inside
  // Log::append, so the caller must not hold a lock `done` takes.
  std::function<void(const AppendOutcome&)> done;
  // Free for the layer above (e.g. the stream and expected revision).
  std::any user;
};

// Lets the layer above (the stream index) decide, in log order and on the
// thread that writes the group, what each append writes. One group is written
// at a time: hooks are never called from two threads at once, and each call
// happens after (mutex-ordered) the calls for the groups before it.
class WriteHooks {
 public:
  virtual ~WriteHooks() = default;
  enum class Decision { kWrite, kComplete };
  // req.events stays at the same address, unchanged but for positions and
  // flags, from prepare until durable() covers it or aborted(req) is called
  // (the hooks may keep pointers to the events until then).
  // Called in queue order before the request is encoded; `next` is the
  // position its first event will get. Return kWrite to write req.events
  // (possibly modified: revisions, timestamps), or kComplete to finish the
  // request without writing anything, with `outcome` filled in (an error, or
  // an idempotent success). kComplete outcomes are delivered after the group's
  // fdatasync, like the others.
  virtual Decision prepare(AppendRequest& req, GlobalPosition next, AppendOutcome& outcome) = 0;
  // A request prepared with kWrite whose group failed. Called in reverse order
  // of prepare, before the failed outcomes are delivered.
  virtual void aborted(const AppendRequest& req) = 0;
  // Everything below `end` is on disk, but readers do not see it yet
  // (durable_end() has not moved): what must hold for readers from the
  // moment they see it (the store's deletion rules) is published here.
  virtual void on_disk(GlobalPosition /*end*/) {}
  // Everything below `end` is durable. Called after each successful sync,
  // before that group's outcomes are delivered.
  virtual void durable(GlobalPosition end) = 0;
};

struct LogOptions {
  std::string dir;
  std::uint64_t segment_size = 256ull << 20;
  // Appends are refused with kNoSpace while the file system has less free.
  std::uint64_t min_free_bytes = 64ull << 20;
  // How long a comfortable free-space answer is reused before the file system
  // is asked again (also re-asked once a quarter of the headroom it showed
  // has been written). 0 asks before every group commit.
  std::chrono::milliseconds floor_check_interval{50};
  // Upper bound on the bytes one group commit writes.
  std::size_t max_group_bytes = 4u << 20;
  // Zero-fill segments before use (the first one at creation, later ones in
  // a background thread, as a spare file renamed into place at the roll):
  // fdatasync into already-written blocks need not commit extent metadata,
  // which roughly halves its latency. Costs one segment of disk for the spare.
  bool prepare_segments = true;
  // When an append finds the log idle (no group being written, nothing
  // queued), the appending thread writes, syncs and completes it itself
  // instead of handing it to the writer thread and being handed the outcome
  // back: two cross-thread wake-ups fewer for a lone append. Appends that
  // arrive meanwhile queue for the writer thread as usual. The caller's
  // thread is busy for the fdatasync: off by default, because a network
  // thread stuck in a hung fdatasync cannot serve its other connections (nor
  // answer them at a bounded stop). annald --write-when-idle.
  bool write_when_idle = false;
  // Positions below this are known to have been acknowledged (the store
  // passes the stream index MANIFEST's indexed_through, which only ever
  // covers durable positions). Recovery never cuts them as a torn tail: an
  // invalid record there is damage, and open fails with kCorruption.
  std::uint64_t durable_floor = 0;
  FileSystem* fs = nullptr;     // nullptr: FileSystem::posix()
  WriteHooks* hooks = nullptr;  // nullptr: events written as given
  // TEST ONLY: acknowledge before fdatasync. Exists so the power-loss test can
  // prove it catches a broken durability contract. Never set in production.
  bool test_ack_before_sync = false;
  // Count group commits, bytes, fdatasync latency (Log::metrics()). Off
  // skips the counting and its clock reads (annald --metrics off).
  bool metrics = true;
};

struct SegmentInfo {
  std::string file;  // file name, e.g. 00000000000000000000.seg
  GlobalPosition first;
  std::uint64_t count = 0;       // events in the segment
  std::uint64_t bytes_used = 0;  // header + records
  std::uint64_t bytes_allocated = 0;
  bool sealed = false;
};

// What Log::rewrite_sealed did to one segment.
struct SegmentRewrite {
  std::string file;
  bool rewritten = false;          // false: nothing (more) to remove in it
  std::uint64_t removed = 0;       // events replaced by removed markers now
  std::uint64_t bytes_before = 0;  // the file's size before
  std::uint64_t bytes_after = 0;   // and after
};

struct RecoveryReport {
  GlobalPosition end;  // one past the last event
  std::uint64_t segments = 0;
  std::uint64_t torn_bytes_cut = 0;          // torn tail cut at open
  std::uint64_t incomplete_events_cut = 0;   // events of an uncommitted trailing append
  std::uint64_t out_of_order_tears_cut = 0;  // torn tails with a lost sector before valid records
  std::uint64_t position_indexes_rebuilt = 0;
};

class Log {
 public:
  // Opens (creating if empty) the log in options.dir and recovers it: cuts a
  // torn tail (reported), refuses mid-log corruption with kCorruption naming
  // segment, offset and position range.
  static Result<std::unique_ptr<Log>> open(LogOptions options);
  // Stops the writer after finishing what is queued (completing or failing
  // it), and closes files.
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  const RecoveryReport& recovery() const;

  // Queues an append. Events must be non-empty and the append must fit in one
  // segment (kTooLarge otherwise). Completion via req.done.
  void append(AppendRequest req);
  // Convenience: append and wait.
  AppendOutcome append_sync(std::vector<EventRecord> events);

  // One past the last durable event: readers may read [0, durable_end()).
  GlobalPosition durable_end() const;
  // Non-ok once the writer has failed (sticky); appends then fail with it.
  Status writer_status() const;
  // Counters and histograms of the writer (engine/log_metrics.h).
  const LogMetrics& metrics() const;

  // Visits up to max_count durable records from `from` upward (forward) or
  // from `from` downward inclusive (backward). Every record is checksum
  // verified; a failure is kCorruption naming segment and offset, and nothing
  // of that record reaches fn. fn returns false to stop. Views are valid only
  // during the call.
  // A forward scan from at or beyond durable_end() visits nothing; a backward
  // scan from beyond it starts at the last durable event. Lost markers
  // (written by `annal repair`) are visited like any record: flags carry
  // format::kFlagLost and metadata/data are empty.
  Status scan_forward(GlobalPosition from, std::uint64_t max_count,
                      const std::function<bool(const RecordView&)>& fn) const;
  Status scan_backward(GlobalPosition from, std::uint64_t max_count,
                       const std::function<bool(const RecordView&)>& fn) const;
  // The record at a durable position (kNotFound beyond durable_end()). A lost
  // marker is returned as a record whose is_lost() is true.
  Result<EventRecord> read(GlobalPosition position) const;
  // Calls fn with a view of the record at `position` (no copy).
  Status visit(GlobalPosition position, const std::function<void(const RecordView&)>& fn) const;
  // visit() for many positions in turn, finding the segment once per run of
  // positions it holds: fn(i, view of positions[i]) until fn returns false.
  // A position for which `skip(i)` (if given) is true is not read at all.
  // The first position that cannot be read ends it with that error.
  Status visit_many(std::span<const std::uint64_t> positions,
                    const std::function<bool(std::size_t, const RecordView&)>& fn,
                    const std::function<bool(std::size_t)>& skip = nullptr) const;

  std::vector<SegmentInfo> segments() const;
  const LogOptions& options() const;
  // The byte offset, in the segment holding position `end - 1`, one past that
  // record: where a copy of the segment must stop to hold exactly the
  // positions below `end` (a backup, index/store_backup.cc).
  // REQUIRES: 0 < end <= durable_end() (kNotFound otherwise).
  Result<std::uint64_t> end_offset(GlobalPosition end) const;

  // Scavenge (docs/storage-format.md, "Scavenged segments"): rewrites the
  // sealed segment starting at `first` (not the newest segment) with every
  // record for which `remove` is true replaced by a removed marker
  // (format::kFlagRemoved), every other record copied byte for byte at the
  // same position, into a file only as large as its records: written as
  // <name>.scavenge.tmp and fdatasynced, then the old position index is
  // removed, the file renamed over the segment and the index written again
  // (each step synced), so a crash leaves the old or the new segment, never
  // a mix (a missing index is rebuilt at open). Readers switch to the new
  // file at once; those holding the old one finish on it. `pace(bytes)` is
  // called after each chunk written (a throttle may sleep in it). One
  // rewrite at a time (callers serialise); appends go on meanwhile.
  Result<SegmentRewrite> rewrite_sealed(GlobalPosition first,
                                        const std::function<bool(const RecordView&)>& remove,
                                        const std::function<void(std::uint64_t)>& pace);
  // Drops every segment map's pages from this process's resident set (the
  // page cache keeps them; readers fault back what they read). For after a
  // bulk read, such as the stream index replaying the log at open.
  void release_resident() const;

  class Impl;

 private:
  explicit Log(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace annal::engine
