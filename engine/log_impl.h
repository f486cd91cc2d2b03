#pragma once
// The log's implementation class, shared by engine/log.cc (recovery, the
// writer, the syncer, readers) and engine/log_scavenge.cc (rewriting sealed
// segments). Internal: included by those files only.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "engine/format.h"
#include "engine/log.h"
#include "engine/segment.h"
#include "engine/thread_name.h"

namespace annal::engine {

namespace f = format;

namespace log_internal {

inline std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// One segment file. Readers hold a shared_ptr, which keeps the map alive.
//
// Thread safety: `first`, `name`, `allocated` and `map` never change after
// construction. offsets[i] for i < count is immutable once `count` (or the
// log's durable end) covering it was published with release; the writer fills
// entries beyond it. `file` is touched by the writer thread only.
struct Segment {
  std::string name;
  GlobalPosition first;
  std::uint32_t version = f::kSegmentVersion;  // of its header
  std::uint64_t allocated = 0;
  std::shared_ptr<const Mapping> map;
  std::unique_ptr<File> file;
  std::unique_ptr<std::uint32_t[]> offsets;
  std::uint64_t capacity = 0;
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> data_end{f::kSegmentHeaderSize};
  std::atomic<bool> sealed{false};
};

struct Queued {
  AppendRequest req;
  std::size_t bytes = 0;
};

// One request inside a group commit.
struct Entry {
  AppendRequest req;
  AppendOutcome outcome;
  bool written = false;  // prepared with kWrite and encoded into the group
};

inline Status validate_events(const std::vector<EventRecord>& events, std::uint64_t capacity) {
  if (events.empty()) return Status(Errc::kInvalidArgument, "append has no events");
  std::uint64_t total = 0;
  for (const auto& e : events) {
    if (e.stream.size() > 0xFFFF)
      return Status(Errc::kTooLarge,
                    fmt::format("stream name of {} bytes (max 65535)", e.stream.size()));
    if (e.type.size() > 0xFFFF)
      return Status(Errc::kTooLarge,
                    fmt::format("event type of {} bytes (max 65535)", e.type.size()));
    if ((e.flags & ~f::kKnownFlags) != 0)
      return Status(Errc::kInvalidArgument, fmt::format("unknown event flags {:#x}", e.flags));
    total += encoded_size(e);
  }
  if (total > capacity)
    return Status(
        Errc::kTooLarge,
        fmt::format("append of {} encoded bytes does not fit in one segment ({} bytes of records)",
                    total, capacity));
  return Status::ok();
}

}  // namespace log_internal

using namespace log_internal;  // NOLINT(google-build-using-namespace): internal header

class Log::Impl {
 public:
  explicit Impl(LogOptions options)
      : opts_(std::move(options)),
        fs_(opts_.fs != nullptr ? opts_.fs : &FileSystem::posix()),
        hooks_(opts_.hooks) {}

  ~Impl() { stop(); }

  Status recover();
  void start() {
    sync_done_ = sync_want_ = next_;
    syncer_ = std::thread([this] {
      set_thread_name("annal-sync");
      sync_loop();
    });
    writer_ = std::thread([this] {
      set_thread_name("annal-writer");
      run();
    });
    if (opts_.prepare_segments)
      preparer_ = std::thread([this] {
        set_thread_name("annal-prepare");
        prepare_spares();
      });
  }
  void stop() {
    {
      std::lock_guard l(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    {
      std::lock_guard l(mu_);
      syncer_stop_ = true;
    }
    sync_cv_.notify_all();
    if (syncer_.joinable()) syncer_.join();
    {
      std::lock_guard l(spare_mu_);
      spare_stopping_ = true;
      abandon_spare_.store(true, std::memory_order_relaxed);
    }
    spare_cv_.notify_all();
    if (preparer_.joinable()) preparer_.join();
  }

  void append(AppendRequest req);
  GlobalPosition durable_end() const {
    return GlobalPosition(durable_end_.load(std::memory_order_acquire));
  }
  Status writer_status() const {
    std::lock_guard l(status_mu_);
    return writer_status_;
  }

  Status scan_forward(GlobalPosition from, std::uint64_t max_count,
                      const std::function<bool(const RecordView&)>& fn) const;
  Status scan_backward(GlobalPosition from, std::uint64_t max_count,
                       const std::function<bool(const RecordView&)>& fn) const;
  Status visit(GlobalPosition p, const std::function<void(const RecordView&)>& fn) const;
  Status visit_many(std::span<const std::uint64_t> positions,
                    const std::function<bool(std::size_t, const RecordView&)>& fn,
                    const std::function<bool(std::size_t)>& skip) const;
  std::vector<SegmentInfo> segments() const;
  Result<std::uint64_t> end_offset(GlobalPosition end) const;
  Result<SegmentRewrite> rewrite_sealed(GlobalPosition first,
                                        const std::function<bool(const RecordView&)>& remove,
                                        const std::function<void(std::uint64_t)>& pace);
  void release_resident() const {
    std::vector<std::shared_ptr<Segment>> segs;
    {
      std::lock_guard l(segments_mu_);
      segs = segments_;
    }
    for (const auto& s : segs) s->map->release_resident();
  }

  LogOptions opts_;
  LogMetrics metrics_;
  FileSystem* fs_;
  WriteHooks* hooks_;
  RecoveryReport report_;

 private:
  std::string path_of(const std::string& name) const { return opts_.dir + "/" + name; }
  std::uint64_t record_capacity() const { return opts_.segment_size - f::kSegmentHeaderSize; }

  // Recovery helpers.
  Result<std::shared_ptr<Segment>> open_sealed(GlobalPosition first, bool has_index);
  Result<std::shared_ptr<Segment>> open_active(GlobalPosition first, bool has_index);
  Result<std::shared_ptr<Segment>> map_segment(std::unique_ptr<File> file, GlobalPosition first,
                                               const std::string& name);
  Status corruption(const Segment& seg, const ScanStop& stop) const;

  // Writer-thread helpers.
  Result<std::shared_ptr<Segment>> create_segment(GlobalPosition first, bool zero_fill);
  Result<std::shared_ptr<Segment>> install_spare(GlobalPosition first, std::unique_ptr<File> spare);
  // Writes and fdatasyncs a new segment's header.
  Status write_header(File& file, GlobalPosition first);
  // Maps a segment file whose header is written and wraps it.
  Result<std::shared_ptr<Segment>> make_segment(const std::string& name, GlobalPosition first,
                                                std::unique_ptr<File> file);
  Status zero_fill(File& file, std::uint64_t from, const std::atomic<bool>* abandon);
  void prepare_spares();
  std::string spare_path() const { return path_of(kSpareName); }
  Status seal(Segment& seg);
  Status roll();
  Status upgrade_active();
  void run();
  void process(std::deque<Queued>& batch);
  void commit_group(std::vector<Entry>& group);
  // fdatasync of a group commit, timed into metrics_ when they are on.
  Status timed_datasync(File& file);
  // A group commit became durable: count it (when metrics are on).
  void count_durable(std::uint64_t events);
  // Syncer thread.
  void sync_loop();
  // Writer: completes the written groups a returned sync covers (or fails
  // them all after a failed sync). REQUIRES: the caller set writing_.
  void complete_synced();
  // Writer: waits until every written group is completed.
  void drain_syncs();
  bool sync_answered() const;  // REQUIRES mu_
  void fail_writer(const Status& cause);
  Status check_floor();
  void deliver(std::vector<Entry>& group);

  // Reader helpers.
  // The segment holding p (p < durable end) and the first position after it.
  std::pair<std::shared_ptr<Segment>, std::uint64_t> find(GlobalPosition p) const;
  Status view_at(const Segment& seg, GlobalPosition p, RecordView& out) const;

  // Segments, ordered by first position. Guarded by segments_mu_ (held only
  // briefly, never during I/O).
  mutable std::mutex segments_mu_;
  std::vector<std::shared_ptr<Segment>> segments_;

  // Writer state (recovery's before the writer starts; then the thread that
  // set writing_).
  std::shared_ptr<Segment> active_;
  std::uint64_t active_end_ = f::kSegmentHeaderSize;  // written bytes of active_
  std::uint64_t next_ = 0;                            // position the next event gets
  std::string buf_;
  // The free-space floor's last comfortable answer (check_floor).
  std::chrono::steady_clock::time_point floor_checked_{};
  std::uint64_t floor_budget_ = 0;
  std::uint64_t written_since_floor_check_ = 0;

  std::atomic<std::uint64_t> durable_end_{0};

  // The queue appenders use; never held during I/O.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Queued> queue_;
  bool stopping_ = false;
  // A group is being prepared, written or synced (by the writer thread, or
  // by an appender that found the log idle): the writer state above and the
  // hooks belong to that thread alone until it clears this. Guarded by mu_.
  bool writing_ = false;

  // Pipelined group commit. The writer thread writes a group and hands the
  // fdatasync to the syncer thread, then goes on preparing and writing the
  // next groups; one fdatasync covers everything written before it started.
  // A group is completed (durable() hook, outcomes) on the writer thread once
  // a sync covering its last position returned. Guarded by mu_: the
  // syncer's request and answer. Writer only: inflight_.
  struct Written {
    std::vector<Entry> group;
    std::uint64_t end = 0;         // one past its last position
    std::uint64_t end_offset = 0;  // one past its bytes in active_
  };
  std::deque<Written> inflight_;
  std::size_t inflight_count_ = 0;  // inflight_.size(), for appenders (mu_)
  bool sync_here_ = false;          // the group is synced by the thread writing it
  std::uint64_t sync_want_ = 0;     // sync every write up to this position (mu_)
  std::uint64_t sync_done_ = 0;     // a sync covering this position returned (mu_)
  Status sync_failed_;              // the sync that failed (mu_)
  File* sync_file_ = nullptr;       // the active segment's file (mu_)
  bool syncer_stop_ = false;        // (mu_)
  std::condition_variable sync_cv_;
  std::thread syncer_;

  mutable std::mutex status_mu_;
  Status writer_status_;
  std::atomic<bool> failed_{false};

  std::thread writer_;

  // The spare segment: zero-filled in the background by preparer_, taken by
  // the writer at a roll. Guarded by spare_mu_.
  static constexpr const char* kSpareName = "spare.seg.tmp";
  // A sealed segment being rewritten by a scavenge (engine/log_scavenge.cc).
  static constexpr std::string_view kScavengeTmpSuffix = ".scavenge.tmp";
  std::mutex spare_mu_;
  std::condition_variable spare_cv_;
  std::unique_ptr<File> spare_;  // ready to use
  bool spare_wanted_ = true;
  bool spare_stopping_ = false;
  std::atomic<bool> abandon_spare_{false};
  std::thread preparer_;
};

}  // namespace annal::engine
