#pragma once
// The store's implementation, shared by its two files: index/store.cc
// (opening, reads, listeners) and index/store_write.cc (the write path:
// validation hand-off, the checks on the writer thread, multi-stream appends
// and append conditions). Internal: included by those two files only.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <shared_mutex>

#include "engine/format.h"
#include "index/append_validate.h"
#include "index/entry.h"
#include "index/head_cache.h"
#include "index/id_window.h"
#include "index/index_core.h"
#include "index/manifest.h"
#include "index/store.h"

namespace annal::index {
namespace store_internal {

namespace format = engine::format;
using Head = HeadCache::Head;

// One stream of an append: its events are req.events[first_event,
// first_event + count) (none: the stream is only checked).
struct Part {
  std::string stream;
  std::uint64_t hash = 0;
  HeadCache::Key key;
  ExpectedRevision expected;
  std::uint32_t first_event = 0;
  std::uint32_t count = 0;
};

// What Store::append hands to prepare() through AppendRequest::user.
struct AppendCtx {
  std::vector<Part> parts;
  std::optional<AppendCondition> condition;
  // The condition's events below this durable position were checked before
  // the append was queued (none matched); the writer checks from here.
  std::uint64_t checked_through = 0;
  bool multi = false;  // append_multi: the outcome lists every stream
  // A deletion (parts: the stream, checked; its metadata stream, written):
  // the writer fills in the event's data once it knows the stream's head.
  enum class Lifecycle { kNone, kDelete, kTombstone } lifecycle = Lifecycle::kNone;
};

// A change of a stream's rules by an event not yet on disk (the writer's
// rules include it; readers' from on_disk).
struct RuleChange {
  std::uint64_t position = 0;
  std::string stream;
  StreamRules rules;
};

// A prepared append that is not durable yet: the writer's view of it, so
// checks of later appends (and their rollback) need not read the log.
struct Pending {
  std::uint64_t first_position = 0;
  std::uint64_t first_revision = 0;
  std::string stream;
  std::uint64_t hash = 0;
  HeadCache::Key key;
  std::optional<Head> prev_head;
  std::vector<EventId> ids;
  // The events themselves (engine::WriteHooks keeps them in place until
  // durable or aborted): what an append condition checks them against.
  const engine::EventRecord* events = nullptr;
};

// The parts of a record the write path looks at.
struct RecordLite {
  std::string stream;
  EventId id;
  std::uint64_t revision = 0;
};

// A record the stream index names could not be read to confirm `what`:
// corruption naming the position (the log's status names segment and
// offset). A position past the log's end is an index that disagrees with the
// log, which is corruption too, never absence.
inline Status unconfirmed(std::uint64_t pos, std::string_view what, const Status& st) {
  const Errc code = st.code() == Errc::kIoError ? Errc::kIoError : Errc::kCorruption;
  spdlog::error("stream index: cannot read position {} to confirm {}: {}", pos, what,
                st.to_string());
  return Status(code, fmt::format("position {} (needed to confirm {}) cannot be read: {}", pos,
                                  what, st.message()));
}

inline const StreamRules* find_rules_of(const RulesMap& m, std::string_view stream) {
  if (m.empty()) return nullptr;
  auto it = m.find(stream);
  return it == m.end() ? nullptr : &it->second;
}

inline Status deleted_for_good(std::string_view stream) {
  return Status(Errc::kStreamDeleted,
                fmt::format("stream '{}' was deleted for good (hard delete)", stream));
}

inline std::string expected_text(const ExpectedRevision& e) {
  return e.to_string();
}

inline std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace store_internal

using namespace store_internal;  // NOLINT(google-build-using-namespace): internal header

class Store::Impl final : public engine::WriteHooks {
 public:
  explicit Impl(StoreOptions options)
      : options_(std::move(options)),
        limits_(clamp_limits(options_.limits, options_.log.segment_size)),
        heads_(options_.head_cache_entries),
        window_(options_.idempotency_window) {}

  ~Impl() override;

  Status open();

  Status open_secondary(std::uint64_t end);

  // IndexCoreOptions::load_range: the index entries and id digests of log
  // positions [first, last), for the rebuild of a damaged index file.
  Status load_range(std::uint64_t first, std::uint64_t last, std::vector<IndexEntry>& entries,
                    std::vector<std::uint64_t>& digests);

  std::uint64_t hash_of(std::string_view stream) const;

  static void refuse(Status st, const std::function<void(const engine::AppendOutcome&)>& done);

  void append(StreamAppend a, std::function<void(const engine::AppendOutcome&)> done);

  void append_multi(MultiAppend m, std::function<void(const engine::AppendOutcome&)> done);

  // On the caller's thread, before the append is queued: the condition
  // against the durable events (the single writer then checks only those
  // that became durable or were prepared since, usually from a table, not
  // the index). The durable end it checked below, or 0 when an event
  // matched or a read failed: the writer then checks everything itself (a
  // retry of this very append must be recognised before its condition).
  std::uint64_t precheck(const AppendCondition& cond) const;

  // Queues a validated append for the writer: the events of every stream in
  // order, and what prepare() needs to check them.
  void submit(std::vector<StreamAppend> streams, std::optional<AppendCondition> condition,
              bool multi, std::function<void(const engine::AppendOutcome&)> done,
              std::uint64_t checked_through = 0,
              AppendCtx::Lifecycle lifecycle = AppendCtx::Lifecycle::kNone);

  // ---- Writer thread: the writer's view includes prepared, not yet
  // durable appends (pending_). ----
  const Pending* pending_at(std::uint64_t pos) const;

  // The record at `pos` as the writer sees it. Every position the index or
  // the id window names is below the writer's next position, so a failure
  // here is damage (or an I/O error), never "no such record": it is an error
  // the caller must pass on, not a mismatch it could skip.
  Result<RecordLite> writer_record(std::uint64_t pos) const;

  Result<std::optional<Head>> writer_head(const Part& c);

  struct Dedup {
    std::uint64_t first_position;
    std::uint64_t first_revision;
  };

  // exact / no_stream retry: are `ids` this stream's events at revisions
  // [r0, r0 + n)? nullopt if not (all of them).
  Result<std::optional<Dedup>> match_at_revisions(const Part& c, std::uint64_t r0,
                                                  std::span<const EventId> ids);

  enum class WindowResult { kNew, kDuplicate, kConflict };
  // any / stream_exists retry: were these ids appended recently, all of them,
  // in order, to this stream? `next` is the position this append would get.
  // A candidate that cannot be read is an error, not a digest collision: a
  // damaged record must not let its retry be written a second time.
  Result<WindowResult> match_in_window(const Part& c, std::span<const EventId> ids,
                                       std::uint64_t next, Dedup& dedup);

  // What one stream of an append resolves to: new events (to be written
  // after `head`), a retry of events already written, or a failed
  // expectation. An error (damage) is returned as such, never as one of them.
  struct PartCheck {
    enum class Kind { kNew, kDuplicate, kWrong } kind = Kind::kNew;
    std::optional<Head> head;
    bool deleted = false;  // every event below its cut: expectations see no stream
    Dedup dedup{};
  };
  Result<PartCheck> check_part(const Part& c, std::span<const EventId> ids, std::uint64_t next);

  // Whether the event at `pos` (below the writer's next position: durable,
  // or prepared and not yet durable) matches `q`. A record that cannot be
  // read is an error: a damaged event must not let a condition pass.
  Result<bool> writer_matches(const Query& q, std::uint64_t pos) const;

  // The first position after the condition's `after` (and below `next`)
  // holding a matching event, among durable events and those prepared in
  // groups not yet durable (the index holds both). Positions below
  // `checked_through` were checked by precheck().
  Result<std::optional<std::uint64_t>> first_conflict(const AppendCondition& cond,
                                                      std::uint64_t next,
                                                      std::uint64_t checked_through) const;

  // Indexes events given to the log directly, not through Store::append
  // (tests and tools): as they are.
  Decision prepare_raw(engine::AppendRequest& req, GlobalPosition next);

  Decision prepare(engine::AppendRequest& req, GlobalPosition next,
                   engine::AppendOutcome& outcome) override;

  // Every stream with events resolved to a retry of events written earlier,
  // one after another as this request would write them: the append was
  // written before (its condition and checked streams no longer matter).
  // Streams that are retries beside new ones fail: a retry repeats a whole
  // append or nothing of it.
  std::optional<Decision> resolve_retry(const AppendCtx& c, std::vector<PartCheck>& checks,
                                        engine::AppendOutcome& outcome);

  // kWrongExpectedRevision naming every stream whose expectation failed,
  // with its actual revision.
  std::optional<Decision> resolve_wrong(const AppendCtx& c, const std::vector<PartCheck>& checks,
                                        engine::AppendOutcome& outcome);

  // Assigns revisions, indexes the entries (invisible to readers until
  // durable), remembers the ids.
  void write_parts(engine::AppendRequest& req, GlobalPosition next, const AppendCtx& c,
                   const std::vector<PartCheck>& checks, std::vector<EventId> ids,
                   engine::AppendOutcome& outcome);

  void undo(const Pending& p);

  void aborted(const engine::AppendRequest& req) override;

  void on_disk(GlobalPosition end) override;

  void durable(GlobalPosition end) override;

  // ---- Stream lifecycle (index/store_lifecycle.cc) ----
  // At open: the rules from DATA/lifecycle and the metadata streams' events
  // after it (or the whole log when it is missing or damaged).
  Status open_lifecycle(std::uint64_t end);
  // Writes DATA/lifecycle (a cache of the log: a failure only costs the next
  // open a longer scan).
  void persist_lifecycle(std::uint64_t through);
  // The writer's rules of `stream` (including appends not yet durable).
  const StreamRules* writer_rules(std::string_view stream) const;
  // Folds the written metadata-stream events of `part` into the writer's
  // rules.
  void note_rule_events(const engine::AppendRequest& req, const Part& part, std::uint64_t at,
                        std::uint64_t first_rev);
  // A deletion's part of prepare(): checks and fills in its event.
  std::optional<Decision> prepare_deletion(engine::AppendRequest& req, const AppendCtx& c,
                                           const std::vector<PartCheck>& checks,
                                           engine::AppendOutcome& outcome);
  std::shared_ptr<const RulesMap> rules_snapshot() const;

  // ---- Readers ----
  Result<std::optional<Head>> durable_head(std::string_view stream, std::uint64_t hash,
                                           std::uint64_t end) const;

  Result<StreamRevision> last_revision(const std::string& stream) const;

  // max_age: the first revision of [lo, hi] written at or after cutoff_us.
  Result<std::uint64_t> first_unexpired(std::string_view stream, std::uint64_t hash,
                                        std::uint64_t lo, std::uint64_t hi, std::int64_t cutoff_us,
                                        std::uint64_t end) const;

  Status visit_stream(const std::string& stream, StreamRevision from, std::uint64_t count,
                      Direction dir, const StreamVisitor& fn) const;

  Result<std::vector<engine::EventRecord>> read_stream(const std::string& stream,
                                                       StreamRevision from, std::uint64_t count,
                                                       Direction dir) const;

  std::uint64_t add_listener(std::function<void(GlobalPosition)> fn);

  void remove_listener(std::uint64_t handle);

  IndexStats stats() const;
  const SecondaryIndex* secondary() const { return secondary_.get(); }

  StoreOptions options_;
  Limits limits_;
  std::unique_ptr<engine::Log> log_;
  std::unique_ptr<IndexCore> core_;
  std::unique_ptr<SecondaryIndex> secondary_;  // null when options_.secondary_index is off
  std::int64_t last_timestamp_ = 0;            // writer thread: the newest event's write time
  mutable HeadCache heads_;
  IdWindow window_;                // writer thread
  std::deque<Pending> pending_;    // writer thread
  std::uint64_t durable_end_ = 0;  // writer thread
  std::atomic<bool> ready_{false};
  // Stream lifecycle: the rules readers see (published at on_disk), the
  // writer's (with not yet durable changes), and those changes.
  mutable std::mutex rules_mu_;
  std::shared_ptr<const RulesMap> rules_ = std::make_shared<RulesMap>();
  std::atomic<std::uint64_t> rules_version_{0};
  RulesMap writer_rules_;                // writer thread
  std::deque<RuleChange> rule_changes_;  // writer thread
  std::uint64_t lifecycle_through_ = 0;  // writer thread: DATA/lifecycle covers below
  bool lifecycle_dirty_ = false;         // writer thread
  std::chrono::steady_clock::time_point lifecycle_written_{};
  // One scavenge or backup at a time: a scavenge rewrites the sealed
  // segments a backup copies (index/store_backup.cc).
  std::mutex scavenge_mu_;
  std::atomic<bool> backup_running_{false};
  std::unique_ptr<SnapshotStore> snapshots_;
  std::shared_mutex log_gone_mu_;  // load_range (background) vs the destructor
  bool log_gone_ = false;

  using Listeners = std::vector<std::pair<std::uint64_t, std::function<void(GlobalPosition)>>>;
  std::mutex listeners_mu_;
  std::shared_ptr<const Listeners> listeners_;
  std::uint64_t next_listener_ = 0;
};

}  // namespace annal::index
