#pragma once
// The per-stream index without the log: a memtable of recent entries, frozen
// memtables waiting to be written, and immutable sorted index files listed by
// a manifest; a background thread writes frozen memtables out and merges
// files (tiered: `merge_fanout` adjacent files of one level become one file
// of the next level). Tested on its own with synthetic entries.
//
// Thread safety: add/remove/set_durable/flush are called from one writer
// thread (the log's). collect/visit_desc/stats from any thread: they work on
// an immutable snapshot (Version) taken under a short lock, so background
// flushes and merges never block them or the writer.
//
// Damage: files are opened without reading their bodies (O(files), not
// O(entries)). Queries check each block of a file they touch (IndexFile); a
// background scrub checks the files found at open. A damaged file is never
// served from: the query gets kCorruption naming it, and the background
// thread rebuilds the file's position range from the log (options.load_range)
// and swaps the new file in.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/file.h"
#include "engine/status.h"
#include "index/entry.h"
#include "index/index_file.h"
#include "index/manifest.h"
#include "index/memtable.h"

namespace annal::index {

struct IndexCoreOptions {
  std::string dir;                    // DATA/index
  const char* name = "stream index";  // in log lines
  engine::FileSystem* fs = nullptr;   // nullptr: posix
  std::size_t memtable_entries = 1u << 20;
  // The memtable's layout (index/memtable.h): keyed for point lookups (the
  // stream index), runs for many keys per event read as ranges (secondary).
  MemtableKind memtable = MemtableKind::kKeyed;
  std::size_t merge_fanout = 4;
  // Check every block of every file before open returns (reopen then reads
  // the whole index). Off: blocks are checked when first queried, and
  // scrub_after_open checks the rest in the background.
  bool verify_on_open = false;
  bool scrub_after_open = true;
  std::uint32_t summary_interval = kDefaultSummaryInterval;
  // Called on the writer thread when a memtable covering [first, end) is
  // frozen: the id digests of those positions (index p - first), stored in
  // its index file so the idempotency window can be reloaded at open without
  // reading the log. Null: zeros.
  std::function<void(std::uint64_t first, std::uint64_t end, std::vector<std::uint64_t>& out)>
      id_digests;
  // Rebuilds a damaged file's range: appends the entries of log positions
  // [first, end) (any order) and sets digests[p - first] to the id digest of
  // position p. Called on the background thread. Null: a damaged file stops
  // the background writer (and the next open rebuilds the whole index).
  std::function<Status(std::uint64_t first, std::uint64_t end, std::vector<IndexEntry>& entries,
                       std::vector<std::uint64_t>& digests)>
      load_range;
};

struct IndexCoreStats {
  std::uint64_t memtable_entries = 0;  // active + frozen
  std::uint64_t frozen_memtables = 0;
  std::uint64_t index_files = 0;
  std::uint64_t indexed_through = 0;
  std::uint64_t resident_bytes_estimate = 0;
  std::uint64_t flushes = 0;
  std::uint64_t merges = 0;
  std::uint64_t repairs = 0;  // damaged files rebuilt from the log
  bool scrub_done = false;    // every file found at open checked
  std::vector<IndexFileMeta> files;
};

class IndexCore {
 public:
  // Loads DIR/MANIFEST and the files it lists (validating sizes, headers,
  // footers and summaries). If they are missing or damaged (or index beyond
  // `log_end`), every index file is removed, the core starts empty and
  // rebuild_reason() says which file and why (also logged). A missing
  // manifest with log_end == 0 is a fresh start, not a rebuild.
  static Result<std::unique_ptr<IndexCore>> open(IndexCoreOptions options, std::uint64_t log_end);
  // Stops the background thread after the write in progress. Does not write
  // the memtable out: call flush() first for a clean shutdown.
  ~IndexCore();
  IndexCore(const IndexCore&) = delete;
  IndexCore& operator=(const IndexCore&) = delete;

  // Positions below this are covered by durable index files.
  std::uint64_t indexed_through() const { return indexed_through_.load(); }
  // Why the index (or a file of it) was last rebuilt; empty if never.
  std::string rebuild_reason() const;

  // ---- Writer thread ----
  // REQUIRES: positions never decrease across calls (log order).
  void add(const IndexEntry& e);
  // All the entries of one position (one event) at once.
  void add(std::span<const IndexEntry> entries);
  // Undoes the most recent add() of `e` (an aborted append).
  void remove(const IndexEntry& e);
  // Undoes every add() at a position >= `position` (an aborted group),
  // newest first.
  void remove_from(std::uint64_t position);
  // Entries below `end` are durable. Freezes the memtable (handing it to the
  // background writer) once it holds memtable_entries durable entries.
  void set_durable(std::uint64_t end);
  // Waits while more than `max_frozen` memtables wait to be written (a
  // rebuild replaying the log must not outrun the background writer).
  void throttle(std::size_t max_frozen);
  // Freezes every durable entry and waits until all frozen memtables are in
  // durable index files (a clean shutdown). REQUIRES: all entries durable.
  Status flush(std::uint64_t end);

  // ---- Any thread ----
  // Entries of `hash` with revision in [lo, hi] and position < pos_limit,
  // sorted by (revision, position). kCorruption if a file it reads is
  // damaged (which schedules its rebuild). `max`: at most this many, the
  // first ones; sources are read in position order and stop once that many
  // are found, which is exact where revisions grow with positions (a stream;
  // the secondary index, whose revisions are positions).
  Result<std::vector<IndexEntry>> collect(std::uint64_t hash, std::uint64_t lo, std::uint64_t hi,
                                          std::uint64_t pos_limit,
                                          std::size_t max = SIZE_MAX) const;
  // The same from the index files alone (positions below indexed_through()):
  // no memtable, so no lock the writer takes for every insert.
  Result<std::vector<IndexEntry>> collect_files(std::uint64_t hash, std::uint64_t lo,
                                                std::uint64_t hi, std::uint64_t pos_limit,
                                                std::size_t max = SIZE_MAX) const;
  // Entries of `hash` (position < pos_limit), newest source first and in
  // descending (revision, position) order within a source, until fn returns
  // false. For one stream the first entry visited is its head. kCorruption
  // as for collect. `max_revision`: start below it (found by binary search
  // in each source), so a walk back from deep in a long list is not a scan.
  Status visit_desc(std::uint64_t hash, std::uint64_t pos_limit,
                    const std::function<bool(const IndexEntry&)>& fn,
                    std::uint64_t max_revision = UINT64_MAX) const;
  IndexCoreStats stats() const;
  // The id digests stored for positions [from, to) ∩ [0, indexed_through())
  // (0 where unknown), read from the index files with pread. out[i] is
  // position max(from, ...)+i; returns the first position covered.
  Result<std::uint64_t> read_id_digests(std::uint64_t from, std::uint64_t to,
                                        std::vector<std::uint64_t>& out) const;
  // Sticky error of the background writer (e.g. a failed fsync).
  Status background_status() const;
  // Waits until no flush, merge, scrub or repair is pending (tests).
  void wait_idle();

 private:
  struct Version {
    std::shared_ptr<Memtable> active;
    std::vector<std::shared_ptr<Memtable>> frozen;  // oldest first
    std::vector<std::shared_ptr<IndexFile>> files;  // by position
  };

  explicit IndexCore(IndexCoreOptions options);
  // f if this index keeps id digests (options.id_digests), else null: its
  // files are written without them.
  std::function<std::uint64_t(std::uint64_t)> digest_fn(
      std::function<std::uint64_t(std::uint64_t)> f) const {
    return options_.id_digests ? std::move(f) : nullptr;
  }
  std::shared_ptr<const Version> current() const;
  // collect's part in v's files (in position order, until `max`).
  Status collect_from_files(const Version& v, std::uint64_t hash, std::uint64_t lo,
                            std::uint64_t hi, std::uint64_t pos_limit, std::vector<IndexEntry>& out,
                            std::size_t max) const;
  void install(std::shared_ptr<const Version> v);  // REQUIRES: mu_ held
  void freeze(std::uint64_t end);
  void background_loop();
  Status flush_one(const std::shared_ptr<Memtable>& m);
  bool merge_some();  // false if there was nothing to merge
  // Checks `inputs` (adjacent), writes their k-way merge as `meta` and opens it.
  Result<std::shared_ptr<IndexFile>> merge_into(
      const std::vector<std::shared_ptr<IndexFile>>& inputs, IndexFileMeta& meta);
  // Deletes files that a durable manifest no longer lists, then fsyncs the
  // directory. Failures are only logged: the next open deletes leftovers.
  void remove_unlisted(const std::vector<std::string>& paths, const char* after);
  void scrub_one();
  void repair_damaged();
  Status rebuild_file(std::size_t index);
  // A query found a damaged file: wake the background thread to rebuild it.
  void note_damage() const;
  bool merge_wanted_locked() const;  // REQUIRES: mu_ held
  static std::pair<std::size_t, std::size_t> pick_merge(
      const std::vector<std::shared_ptr<IndexFile>>& files, std::size_t fanout);
  void fail(const Status& st);

  IndexCoreOptions options_;
  engine::FileSystem& fs_;

  mutable std::mutex mu_;  // guards version_, bg_status_, counters, wake-ups
  mutable std::condition_variable cv_;
  std::string rebuild_reason_;
  mutable bool damage_pending_ = false;
  std::deque<std::shared_ptr<IndexFile>> to_scrub_;  // files found at open, unchecked
  std::shared_ptr<const Version> version_;
  Status bg_status_;
  bool stop_ = false;
  bool busy_ = false;
  std::uint64_t flushes_ = 0;
  std::uint64_t merges_ = 0;
  std::uint64_t repairs_ = 0;

  // Background thread only (and open()).
  Manifest manifest_;
  std::chrono::steady_clock::time_point opened_at_;
  std::uint64_t scrub_entries_ = 0;
  std::atomic<std::uint64_t> indexed_through_{0};

  // Writer thread only.
  std::deque<IndexEntry> unsynced_;  // added, not yet durable (position order)
  // The active memtable as the writer thread knows it (only the writer
  // replaces it, in freeze): inserts need no lock on the version.
  std::shared_ptr<Memtable> writer_active_;
  std::uint64_t active_first_ = 0;
  std::uint64_t durable_end_ = 0;

  std::thread thread_;
};

}  // namespace annal::index
