#include "index/store.h"

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
#include "index/entry.h"
#include "index/head_cache.h"
#include "index/id_window.h"
#include "index/index_core.h"
#include "index/manifest.h"

namespace annal::index {
namespace {

namespace format = engine::format;
using Head = HeadCache::Head;

// What Store::append hands to prepare() through AppendRequest::user.
struct AppendCtx {
  std::string stream;
  std::uint64_t hash = 0;
  HeadCache::Key key;
  ExpectedRevision expected;
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
  bool counted_in_core = true;
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
Status unconfirmed(std::uint64_t pos, std::string_view what, const Status& st) {
  const Errc code = st.code() == Errc::kIoError ? Errc::kIoError : Errc::kCorruption;
  spdlog::error("stream index: cannot read position {} to confirm {}: {}", pos, what,
                st.to_string());
  return Status(code, fmt::format("position {} (needed to confirm {}) cannot be read: {}", pos,
                                  what, st.message()));
}

std::string expected_text(const ExpectedRevision& e) {
  return e.to_string();
}

std::string actual_text(const std::optional<Head>& h) {
  return h ? std::to_string(h->revision) : std::string("no stream");
}

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

class Store::Impl final : public engine::WriteHooks {
 public:
  explicit Impl(StoreOptions options)
      : options_(std::move(options)),
        heads_(options_.head_cache_entries),
        window_(options_.idempotency_window) {
    limits_ = options_.limits;
    limits_.max_stream_name = std::min<std::size_t>(limits_.max_stream_name, UINT16_MAX);
    limits_.max_event_type = std::min<std::size_t>(limits_.max_event_type, UINT16_MAX);
    // The record's extension holds these counts and lengths as u16.
    limits_.max_tags = std::min<std::size_t>(limits_.max_tags, UINT16_MAX);
    limits_.max_tag_size = std::min<std::size_t>(limits_.max_tag_size, UINT16_MAX);
    limits_.max_correlation_id = std::min<std::size_t>(limits_.max_correlation_id, UINT16_MAX);
    // One append must fit in one segment (records never span segments).
    const std::uint64_t seg = options_.log.segment_size;
    const std::uint64_t room =
        seg > format::kSegmentHeaderSize ? seg - format::kSegmentHeaderSize : 0;
    limits_.max_append_size =
        static_cast<std::size_t>(std::min<std::uint64_t>(limits_.max_append_size, room));
    limits_.max_event_size = std::min(limits_.max_event_size, limits_.max_append_size);
  }

  ~Impl() override {
    {
      // A background index repair reads the log: stop it before the log goes.
      std::unique_lock lock(log_gone_mu_);
      log_gone_ = true;
    }
    log_.reset();  // finishes queued appends; the hooks still run meanwhile
    if (core_ && !options_.test_skip_index_flush_on_close) {
      Status st = core_->flush(durable_end_);
      if (!st.is_ok()) spdlog::error("stream index flush at close failed: {}", st.to_string());
    }
    if (secondary_ && !options_.test_skip_index_flush_on_close) {
      Status st = secondary_->flush(durable_end_);
      if (!st.is_ok()) spdlog::error("secondary index flush at close failed: {}", st.to_string());
    }
    secondary_.reset();
    core_.reset();
  }

  Status open() {
    using Clock = std::chrono::steady_clock;
    auto secs = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double>(b - a).count();
    };
    const auto t0 = Clock::now();
    engine::LogOptions lo = options_.log;
    lo.hooks = this;
    // The index only ever covers durable positions: what its manifest says
    // it indexed was acknowledged, and recovery must not cut it as a torn
    // tail. A missing or damaged manifest proves nothing (floor 0).
    engine::FileSystem& fs = lo.fs != nullptr ? *lo.fs : engine::FileSystem::posix();
    for (const char* sub : {"/index", "/secondary"})
      if (auto m = read_manifest(fs, lo.dir + sub); m.is_ok())
        lo.durable_floor = std::max(lo.durable_floor, m->indexed_through);
    auto log = engine::Log::open(lo);
    if (!log) return log.status();
    log_ = std::move(log).value();
    const std::uint64_t end = log_->durable_end().value;
    IndexCoreOptions co;
    co.dir = options_.log.dir + "/index";
    co.fs = options_.log.fs;
    co.memtable_entries = options_.memtable_entries;
    co.merge_fanout = options_.index_merge_fanout;
    co.verify_on_open = options_.verify_index_on_open;
    co.id_digests = [this](std::uint64_t first, std::uint64_t end,
                           std::vector<std::uint64_t>& out) {
      out.resize(end - first);
      for (std::uint64_t p = first; p < end; ++p) out[p - first] = window_.digest_at(p);
    };
    co.load_range = [this](std::uint64_t first, std::uint64_t last,
                           std::vector<IndexEntry>& entries, std::vector<std::uint64_t>& digests) {
      return load_range(first, last, entries, digests);
    };
    auto core = IndexCore::open(co, end);
    if (!core) return core.status();
    core_ = std::move(core).value();
    const std::string rebuild_reason = core_->rebuild_reason();
    const auto t1 = Clock::now();

    // The idempotency window: the last idempotency_window events' id digests,
    // from the index files (which store them) and then from the log tail.
    const std::uint64_t indexed = core_->indexed_through();
    const std::uint64_t w = options_.idempotency_window;
    const std::uint64_t wfrom = end > w ? end - w : 0;
    window_.reserve(static_cast<std::size_t>(end - wfrom));
    std::uint64_t from = indexed;
    if (wfrom < indexed) {
      std::vector<std::uint64_t> digests;
      auto first = core_->read_id_digests(wfrom, indexed, digests);
      if (first) {
        for (std::size_t i = 0; i < digests.size(); ++i)
          window_.insert_digest(digests[i], *first + i);
      } else {
        // A damaged digest block: take the window's ids from the log instead
        // (bounded by idempotency_window); the file is rebuilt in the
        // background.
        spdlog::warn("stream index: reloading the idempotency window from the log: {}",
                     first.status().to_string());
        from = wfrom;
      }
    }
    const auto t2 = Clock::now();
    // Replay the unindexed tail into the memtable (and the window).
    std::uint64_t n = 0;
    Status st =
        log_->scan_forward(GlobalPosition(from), UINT64_MAX, [&](const engine::RecordView& v) {
          const std::uint64_t pos = v.position.value;
          window_.insert(v.id, pos);
          if (pos >= indexed) {
            if (!(v.stream.empty() && (v.flags & format::kFlagLost)))
              core_->add(IndexEntry{hash_of(v.stream), v.revision.value, pos});
            if (++n % 4096 == 0) {
              core_->set_durable(pos + 1);
              core_->throttle(2);
            }
          }
          return true;
        });
    if (!st.is_ok()) return st;
    // The replay read the tail through the segment maps; after a kill that is
    // up to memtable_entries events that need not stay resident.
    core_->set_durable(end);
    durable_end_ = end;
    // The clock of the last event written: new events never get an earlier time.
    for (std::uint64_t p = end; p > 0 && p + 64 > end; --p) {
      bool lost = false;
      Status vs = log_->visit(GlobalPosition(p - 1), [&](const engine::RecordView& v) {
        lost = v.stream.empty();
        if (!lost) last_timestamp_ = v.timestamp_us;
      });
      if (!vs.is_ok() || !lost) break;
    }
    if (options_.secondary_index) {
      ANNAL_RETURN_IF_ERROR(open_secondary(end));
    }
    if (from < end) log_->release_resident();
    const auto t3 = Clock::now();
    spdlog::info(
        "store {} opened in {:.3f} s (log and index files {:.3f} s, id window {:.3f} s, {} events "
        "replayed into "
        "the index in {:.3f} s){}",
        options_.log.dir, secs(t0, t3), secs(t0, t1), secs(t1, t2), n, secs(t2, t3),
        rebuild_reason.empty() ? "" : "; index rebuilt: " + rebuild_reason);
    ready_ = true;
    return Status::ok();
  }

  Status open_secondary(std::uint64_t end) {
    SecondaryOptions so;
    so.dir = options_.log.dir + "/secondary";
    so.fs = options_.log.fs;
    so.memtable_entries = options_.memtable_entries;
    so.merge_fanout = options_.index_merge_fanout;
    so.verify_on_open = options_.verify_index_on_open;
    so.category_separator = options_.category_separator;
    so.test_hash = options_.test_secondary_hash;
    so.scan = [this](std::uint64_t first, std::uint64_t last,
                     const std::function<bool(const engine::RecordView&)>& fn) {
      std::shared_lock lock(log_gone_mu_);
      if (log_gone_) return Status(Errc::kShuttingDown, "the store is closing");
      if (first >= last) return Status::ok();
      return log_->scan_forward(GlobalPosition(first), last - first, fn);
    };
    auto s = SecondaryIndex::open(std::move(so), end);
    if (!s) return s.status();
    secondary_ = std::move(s).value();
    return Status::ok();
  }

  // IndexCoreOptions::load_range: the index entries and id digests of log
  // positions [first, last), for the rebuild of a damaged index file.
  Status load_range(std::uint64_t first, std::uint64_t last, std::vector<IndexEntry>& entries,
                    std::vector<std::uint64_t>& digests) {
    std::shared_lock lock(log_gone_mu_);
    if (log_gone_) return Status(Errc::kShuttingDown, "the store is closing");
    return log_->scan_forward(
        GlobalPosition(first), last - first, [&](const engine::RecordView& v) {
          const std::uint64_t pos = v.position.value;
          digests[pos - first] = IdWindow::digest(v.id);
          if (!(v.stream.empty() && (v.flags & format::kFlagLost)))
            entries.push_back(IndexEntry{hash_of(v.stream), v.revision.value, pos});
          return true;
        });
  }

  std::uint64_t hash_of(std::string_view stream) const {
    return options_.test_stream_hash ? options_.test_stream_hash(stream) : xxh3_stream_hash(stream);
  }

  // ---- Validation ----
  // Tags are sorted and deduplicated before this (normalise_tags).
  Status validate_extension(const std::string& stream, std::size_t i, const NewEvent& e) const {
    if (e.tags.size() > limits_.max_tags)
      return Status(Errc::kTooLarge,
                    fmt::format("append to '{}': event {} has {} tags; the limit (max_tags) is {}",
                                stream, i, e.tags.size(), limits_.max_tags));
    for (const auto& t : e.tags) {
      if (t.empty())
        return Status(Errc::kBadRequest,
                      fmt::format("append to '{}': event {} has an empty tag", stream, i));
      if (t.size() > limits_.max_tag_size)
        return Status(Errc::kTooLarge,
                      fmt::format("append to '{}': event {} has a tag of {} bytes; the limit "
                                  "(max_tag_size) is {}",
                                  stream, i, t.size(), limits_.max_tag_size));
    }
    for (const auto* id : {&e.correlation_id, &e.causation_id})
      if (id->size() > limits_.max_correlation_id)
        return Status(Errc::kTooLarge,
                      fmt::format("append to '{}': event {} has a {} id of {} bytes; the limit "
                                  "(max_correlation_id) is {}",
                                  stream, i, id == &e.correlation_id ? "correlation" : "causation",
                                  id->size(), limits_.max_correlation_id));
    return Status::ok();
  }
  static std::size_t extension_bytes(const NewEvent& e) {
    if (e.tags.empty() && e.correlation_id.empty() && e.causation_id.empty()) return 0;
    std::size_t tag_bytes = 0;
    for (const auto& t : e.tags) tag_bytes += t.size();
    return format::extension_size(e.tags.size(), tag_bytes, e.correlation_id.size(),
                                  e.causation_id.size());
  }
  // One event has one encoding: its tags sorted bytewise, without repeats.
  static void normalise_tags(StreamAppend& a) {
    for (auto& e : a.events) {
      if (e.tags.size() < 2) continue;
      std::sort(e.tags.begin(), e.tags.end());
      e.tags.erase(std::unique(e.tags.begin(), e.tags.end()), e.tags.end());
    }
  }

  Status validate(const StreamAppend& a) const {
    if (a.stream.empty()) return Status(Errc::kBadRequest, "stream name is empty");
    if (a.stream.size() > limits_.max_stream_name)
      return Status(Errc::kTooLarge,
                    fmt::format("stream name is {} bytes; the limit (max_stream_name) is {}",
                                a.stream.size(), limits_.max_stream_name));
    if (a.events.empty())
      return Status(Errc::kBadRequest, fmt::format("append to '{}' has no events", a.stream));
    if (a.events.size() > limits_.max_append_events)
      return Status(Errc::kTooLarge,
                    fmt::format("append to '{}' has {} events; the limit (max_append_events) is {}",
                                a.stream, a.events.size(), limits_.max_append_events));
    std::size_t total = 0;
    for (std::size_t i = 0; i < a.events.size(); ++i) {
      const NewEvent& e = a.events[i];
      if (e.id.is_nil())
        return Status(Errc::kBadRequest,
                      fmt::format("append to '{}': event {} has a nil event id", a.stream, i));
      if (e.type.empty())
        return Status(Errc::kBadRequest,
                      fmt::format("append to '{}': event {} has an empty event type", a.stream, i));
      if (e.type.size() > limits_.max_event_type)
        return Status(
            Errc::kTooLarge,
            fmt::format(
                "append to '{}': event {} type is {} bytes; the limit (max_event_type) is {}",
                a.stream, i, e.type.size(), limits_.max_event_type));
      if ((e.flags & ~(format::kFlagDataJson | format::kFlagMetadataJson)) != 0)
        return Status(
            Errc::kBadRequest,
            fmt::format("append to '{}': event {} has unknown flags {:#x}", a.stream, i, e.flags));
      if (Status t = validate_extension(a.stream, i, e); !t.is_ok()) return t;
      const std::size_t body = e.metadata.size() + e.data.size();
      if (body > limits_.max_event_size)
        return Status(
            Errc::kTooLarge,
            fmt::format("append to '{}': event {} is {} bytes (metadata + data); the limit "
                        "(max_event_size) is {}",
                        a.stream, i, body, limits_.max_event_size));
      total += format::record_size(a.stream.size(), e.type.size(), e.metadata.size(), e.data.size(),
                                   extension_bytes(e));
    }
    // One event id names one event: an append carrying an id twice would leave
    // readers with two events under one id and make retries ambiguous.
    if (a.events.size() > 1) {
      // Sorted as two integers each (any order finds equal neighbours);
      // comparing ids byte by byte took as long as checking their JSON.
      struct Key {
        std::uint64_t hi, lo;
        std::size_t index;
      };
      std::vector<Key> ids(a.events.size());
      for (std::size_t i = 0; i < a.events.size(); ++i) {
        std::memcpy(&ids[i].hi, a.events[i].id.bytes.data(), 8);
        std::memcpy(&ids[i].lo, a.events[i].id.bytes.data() + 8, 8);
        ids[i].index = i;
      }
      std::sort(ids.begin(), ids.end(), [](const Key& x, const Key& y) {
        return x.hi != y.hi ? x.hi < y.hi : x.lo < y.lo;
      });
      for (std::size_t k = 1; k < ids.size(); ++k)
        if (ids[k].hi == ids[k - 1].hi && ids[k].lo == ids[k - 1].lo) {
          const auto [first, second] = std::minmax(ids[k - 1].index, ids[k].index);
          return Status(Errc::kBadRequest,
                        fmt::format("append to '{}': events {} and {} have the same event id {}",
                                    a.stream, first, second, a.events[first].id.to_string()));
        }
    }
    if (total > limits_.max_append_size)
      return Status(
          Errc::kTooLarge,
          fmt::format("append to '{}' is {} bytes encoded; the limit (max_append_size, clamped to "
                      "the segment size) is {}",
                      a.stream, total, limits_.max_append_size));
    return Status::ok();
  }

  void append(StreamAppend a, std::function<void(const engine::AppendOutcome&)> done) {
    normalise_tags(a);
    Status st = validate(a);
    if (!st.is_ok()) {
      engine::AppendOutcome o;
      o.status = std::move(st);
      if (done) done(o);
      return;
    }
    engine::AppendRequest req;
    req.events.reserve(a.events.size());
    for (auto& e : a.events) {
      engine::EventRecord r;
      r.id = e.id;
      r.stream = a.stream;
      r.type = std::move(e.type);
      r.flags = e.flags;
      r.metadata = std::move(e.metadata);
      r.data = std::move(e.data);
      r.tags = std::move(e.tags);
      r.correlation_id = std::move(e.correlation_id);
      r.causation_id = std::move(e.causation_id);
      req.events.push_back(std::move(r));
    }
    AppendCtx ctx;
    ctx.hash = hash_of(a.stream);
    ctx.key = HeadCache::key_of(a.stream);
    ctx.stream = std::move(a.stream);
    ctx.expected = a.expected;
    req.user = std::move(ctx);
    req.done = std::move(done);
    log_->append(std::move(req));
  }

  // ---- Writer thread: the writer's view includes prepared, not yet
  // durable appends (pending_). ----
  const Pending* pending_at(std::uint64_t pos) const {
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
      if (pos >= it->first_position + it->ids.size()) return nullptr;
      if (pos >= it->first_position) return &*it;
    }
    return nullptr;
  }

  // The record at `pos` as the writer sees it. Every position the index or
  // the id window names is below the writer's next position, so a failure
  // here is damage (or an I/O error), never "no such record": it is an error
  // the caller must pass on, not a mismatch it could skip.
  Result<RecordLite> writer_record(std::uint64_t pos) const {
    if (const Pending* p = pending_at(pos)) {
      return RecordLite{p->stream, p->ids[pos - p->first_position],
                        p->first_revision + (pos - p->first_position)};
    }
    RecordLite out;
    Status st = log_->visit(GlobalPosition(pos), [&](const engine::RecordView& v) {
      out = RecordLite{std::string(v.stream), v.id, v.revision.value};
    });
    if (!st.is_ok()) return unconfirmed(pos, "an append's expected revision or event ids", st);
    return out;
  }

  Result<std::optional<Head>> writer_head(const AppendCtx& c) {
    if (auto h = heads_.get(c.key)) return h;
    std::optional<Head> found;
    Status unread;
    Status st = core_->visit_desc(c.hash, UINT64_MAX, [&](const IndexEntry& e) {
      auto r = writer_record(e.position);
      if (!r) {
        unread = r.status();
        return false;
      }
      if (r->stream == c.stream && r->revision == e.revision) {
        found = Head{e.revision, e.position};
        return false;
      }
      return true;  // another stream with the same hash
    });
    if (!st.is_ok()) return st;
    if (!unread.is_ok()) return unread;
    if (found) heads_.put(c.key, *found);
    return found;
  }

  struct Dedup {
    std::uint64_t first_position;
    std::uint64_t first_revision;
  };

  // exact / no_stream retry: are `ids` this stream's events at revisions
  // [r0, r0 + n)? nullopt if not (all of them).
  Result<std::optional<Dedup>> match_at_revisions(const AppendCtx& c, std::uint64_t r0,
                                                  const std::vector<EventId>& ids) {
    const std::uint64_t n = ids.size();
    auto entries = core_->collect(c.hash, r0, r0 + n - 1, UINT64_MAX);
    if (!entries) return entries.status();
    std::vector<std::optional<std::uint64_t>> pos_of(n);
    for (const auto& e : *entries) {
      const std::uint64_t i = e.revision - r0;
      if (pos_of[i]) continue;
      auto r = writer_record(e.position);
      if (!r) return r.status();
      if (r->stream != c.stream) continue;  // another stream with the same hash
      if (r->id != ids[i]) return std::optional<Dedup>();
      pos_of[i] = e.position;
    }
    for (const auto& p : pos_of)
      if (!p) return std::optional<Dedup>();
    return std::optional<Dedup>(Dedup{*pos_of[0], r0});
  }

  enum class WindowResult { kNew, kDuplicate, kConflict };
  // any / stream_exists retry: were these ids appended recently, all of them,
  // in order, to this stream? `next` is the position this append would get.
  // A candidate that cannot be read is an error, not a digest collision: a
  // damaged record must not let its retry be written a second time.
  Result<WindowResult> match_in_window(const AppendCtx& c, const std::vector<EventId>& ids,
                                       std::uint64_t next, Dedup& dedup) {
    std::vector<std::uint64_t> cands;
    std::vector<std::uint64_t> starts;
    bool any_hit = false;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      cands.clear();
      window_.find(ids[i], cands);
      for (std::uint64_t p : cands) {
        auto r = writer_record(p);
        if (!r) return r.status();
        if (r->id != ids[i]) continue;  // a digest collision
        any_hit = true;
        if (i == 0) starts.push_back(p);
      }
    }
    if (!any_hit) return WindowResult::kNew;
    for (std::uint64_t p : starts) {
      if (p + ids.size() > next) continue;  // fewer events after p than ids
      bool all = true;
      std::uint64_t rev0 = 0;
      for (std::size_t i = 0; i < ids.size() && all; ++i) {
        auto r = writer_record(p + i);
        if (!r) return r.status();
        all = r->id == ids[i] && r->stream == c.stream;
        if (all && i == 0) rev0 = r->revision;
      }
      if (all) {
        dedup = Dedup{p, rev0};
        return WindowResult::kDuplicate;
      }
    }
    return WindowResult::kConflict;
  }

  Decision prepare(engine::AppendRequest& req, GlobalPosition next,
                   engine::AppendOutcome& outcome) override {
    ANNAL_CHECK(ready_, "append before the store finished opening");
    const std::uint64_t k = req.events.size();
    std::vector<EventId> ids;
    ids.reserve(k);
    for (const auto& e : req.events) ids.push_back(e.id);
    auto* c = std::any_cast<AppendCtx>(&req.user);
    if (c == nullptr) {
      // Written to the log directly, not through Store::append: indexed as
      // given (tests and tools).
      for (std::uint64_t i = 0; i < k; ++i) {
        const auto& e = req.events[i];
        AppendCtx raw{e.stream, hash_of(e.stream), HeadCache::key_of(e.stream),
                      ExpectedRevision::any()};
        Pending p{next.value + i, e.revision.value,    e.stream, raw.hash,
                  raw.key,        heads_.get(raw.key), {e.id}};
        core_->add(IndexEntry{raw.hash, e.revision.value, next.value + i});
        if (secondary_)
          secondary_->add(next.value + i, e.timestamp_us, e.stream, e.type, e.tags,
                          e.correlation_id, e.causation_id);
        window_.insert(e.id, next.value + i);
        heads_.put(raw.key, Head{e.revision.value, next.value + i});
        pending_.push_back(std::move(p));
      }
      return Decision::kWrite;
    }
    auto found_head = writer_head(*c);
    if (!found_head) {
      // A damaged index file (being rebuilt): refuse rather than guess.
      outcome.status = found_head.status();
      return Decision::kComplete;
    }
    const std::optional<Head> head = *found_head;
    auto index_error = [&](const Status& st) {
      outcome.status = st;
      return Decision::kComplete;
    };
    auto wrong = [&] {
      outcome.status = Status(Errc::kWrongExpectedRevision,
                              fmt::format("stream '{}': expected revision {}, actual {}", c->stream,
                                          expected_text(c->expected), actual_text(head)));
      outcome.actual_revision =
          head ? std::optional<StreamRevision>(StreamRevision(head->revision)) : std::nullopt;
      return Decision::kComplete;
    };
    auto duplicate = [&](const Dedup& d) {
      outcome.status = Status::ok();
      outcome.first_position = GlobalPosition(d.first_position);
      outcome.first_revision = StreamRevision(d.first_revision);
      outcome.count = static_cast<std::uint32_t>(k);
      outcome.deduplicated = true;
      return Decision::kComplete;
    };
    using Kind = ExpectedRevision::Kind;
    switch (c->expected.kind) {
      case Kind::kStreamExists:
        if (!head) return wrong();
        [[fallthrough]];
      case Kind::kAny: {
        Dedup d{};
        auto m = match_in_window(*c, ids, next.value, d);
        if (!m) return index_error(m.status());
        switch (*m) {
          case WindowResult::kNew:
            break;
          case WindowResult::kDuplicate:
            return duplicate(d);
          case WindowResult::kConflict:
            return wrong();
        }
        break;
      }
      case Kind::kNoStream:
        if (head) {
          auto d = match_at_revisions(*c, 0, ids);
          if (!d) return index_error(d.status());
          if (*d) return duplicate(**d);
          return wrong();
        }
        break;
      case Kind::kExact: {
        const std::uint64_t n = c->expected.revision.value;
        if (!head || head->revision < n) return wrong();
        if (head->revision > n) {
          auto d = match_at_revisions(*c, n + 1, ids);
          if (!d) return index_error(d.status());
          if (*d) return duplicate(**d);
          return wrong();
        }
        break;
      }
    }
    // Write: assign revisions, index the entries (invisible to readers until
    // durable), remember the ids.
    const std::uint64_t first_rev = head ? head->revision + 1 : 0;
    // Write time never steps back (the time map and time reads rely on it):
    // if the clock does, events keep the last time until it catches up.
    const std::int64_t ts = std::max(now_us(), last_timestamp_);
    last_timestamp_ = ts;
    for (std::uint64_t i = 0; i < k; ++i) {
      auto& e = req.events[i];
      e.revision = StreamRevision(first_rev + i);
      e.timestamp_us = ts;
      core_->add(IndexEntry{c->hash, first_rev + i, next.value + i});
      if (secondary_)
        secondary_->add(next.value + i, ts, c->stream, e.type, e.tags, e.correlation_id,
                        e.causation_id);
      window_.insert(ids[i], next.value + i);
    }
    heads_.put(c->key, Head{first_rev + k - 1, next.value + k - 1});
    pending_.push_back(
        Pending{next.value, first_rev, c->stream, c->hash, c->key, head, std::move(ids)});
    return Decision::kWrite;
  }

  void undo(const Pending& p) {
    for (std::size_t i = p.ids.size(); i-- > 0;) {
      core_->remove(IndexEntry{p.hash, p.first_revision + i, p.first_position + i});
      window_.erase(p.ids[i], p.first_position + i);
    }
    if (p.prev_head)
      heads_.put(p.key, *p.prev_head);
    else
      heads_.erase(p.key);
  }

  void aborted(const engine::AppendRequest& req) override {
    // Called in reverse order of prepare: the newest pending appends are
    // this request's (one Pending per event for raw appends).
    std::size_t left = req.events.size();
    std::uint64_t first = UINT64_MAX;
    while (left > 0 && !pending_.empty()) {
      Pending p = std::move(pending_.back());
      pending_.pop_back();
      undo(p);
      first = std::min(first, p.first_position);
      left -= std::min(left, p.ids.size());
    }
    if (secondary_ && first != UINT64_MAX) secondary_->abort_from(first);
  }

  void durable(GlobalPosition end) override {
    if (!ready_) return;
    durable_end_ = end.value;
    while (!pending_.empty() &&
           pending_.front().first_position + pending_.front().ids.size() <= end.value)
      pending_.pop_front();
    core_->set_durable(end.value);
    if (secondary_) secondary_->set_durable(end.value);
    std::shared_ptr<const Listeners> ls;
    {
      std::lock_guard lock(listeners_mu_);
      ls = listeners_;
    }
    if (ls)
      for (const auto& [id, fn] : *ls) fn(end);
  }

  // ---- Readers ----
  Result<std::optional<Head>> durable_head(std::string_view stream, std::uint64_t hash,
                                           std::uint64_t end) const {
    if (auto h = heads_.get(HeadCache::key_of(stream)); h && h->position < end) return h;
    std::optional<Head> found;
    Status unread;
    Status vs = core_->visit_desc(hash, end, [&](const IndexEntry& e) {
      bool match = false;
      Status st = log_->visit(GlobalPosition(e.position), [&](const engine::RecordView& v) {
        match = (v.stream == stream && v.revision.value == e.revision) ||
                (v.stream.empty() && (v.flags & format::kFlagLost));
      });
      if (!st.is_ok()) {
        // Not "another stream with this hash": the head cannot be known.
        unread = unconfirmed(e.position, fmt::format("the head of stream '{}'", stream), st);
        return false;
      }
      if (match) found = Head{e.revision, e.position};
      return !match;
    });
    if (!vs.is_ok()) return vs;
    if (!unread.is_ok()) return unread;
    return found;
  }

  Result<StreamRevision> last_revision(const std::string& stream) const {
    auto h = durable_head(stream, hash_of(stream), log_->durable_end().value);
    if (!h) return h.status();
    if (!*h) return Status(Errc::kStreamNotFound, fmt::format("stream '{}' not found", stream));
    return StreamRevision((*h)->revision);
  }

  Status visit_stream(const std::string& stream, StreamRevision from, std::uint64_t count,
                      Direction dir, const StreamVisitor& fn) const {
    const std::uint64_t end = log_->durable_end().value;
    const std::uint64_t hash = hash_of(stream);
    auto found = durable_head(stream, hash, end);
    if (!found) return found.status();
    const std::optional<Head>& head = *found;
    if (!head) return Status(Errc::kStreamNotFound, fmt::format("stream '{}' not found", stream));
    if (count == 0) return Status::ok();
    std::uint64_t lo, hi;
    if (dir == Direction::kForward) {
      if (from.value > head->revision) return Status::ok();
      lo = from.value;
      hi = head->revision - lo < count - 1 ? head->revision : lo + count - 1;
    } else {
      hi = std::min(from.value, head->revision);
      lo = hi >= count - 1 ? hi - (count - 1) : 0;
    }
    auto collected = core_->collect(hash, lo, hi, end);
    if (!collected) return collected.status();
    auto& entries = *collected;
    if (dir == Direction::kBackward) std::reverse(entries.begin(), entries.end());
    // Read in one pass over the log. Entries of another stream with the same
    // hash may share a revision with this one's: an entry is skipped only
    // when this stream's event at its revision was already taken.
    std::vector<std::uint64_t> positions;
    positions.reserve(entries.size());
    for (const auto& e : entries) positions.push_back(e.position);
    bool any = false;
    std::uint64_t last = 0;
    Status err;
    // Skipped unread: the revision was already served from a record that
    // checked out, so a damaged duplicate cannot fail the read.
    auto taken = [&](std::size_t i) { return any && last == entries[i].revision; };
    auto visit = [&](std::size_t i, const engine::RecordView& v) {
      const IndexEntry& e = entries[i];
      if (v.flags & format::kFlagLost) {
        if (v.stream.empty() || v.stream == stream) {
          err = Status(Errc::kLostAtRepair,
                       fmt::format("stream '{}' revision {} (position {}) was lost and replaced "
                                   "by a repair marker",
                                   stream, e.revision, e.position));
          return false;
        }
        return true;
      }
      if (v.stream != stream) return true;  // another stream with the same hash
      if (v.revision.value != e.revision) {
        err = Status(
            Errc::kCorruption,
            fmt::format(
                "stream '{}': the index maps revision {} to position {}, which holds revision {}",
                stream, e.revision, e.position, v.revision.value));
        return false;
      }
      any = true;
      last = e.revision;
      return fn(v);
    };
    Status st = log_->visit_many(positions, visit, taken);
    if (!st.is_ok()) return st;
    return err;
  }

  Result<std::vector<engine::EventRecord>> read_stream(const std::string& stream,
                                                       StreamRevision from, std::uint64_t count,
                                                       Direction dir) const {
    std::vector<engine::EventRecord> out;
    Status st = visit_stream(stream, from, count, dir, [&](const engine::RecordView& v) {
      out.push_back(v.to_record());
      return true;
    });
    if (!st.is_ok()) return st;
    return out;
  }

  std::uint64_t add_listener(std::function<void(GlobalPosition)> fn) {
    std::lock_guard lock(listeners_mu_);
    auto next =
        listeners_ ? std::make_shared<Listeners>(*listeners_) : std::make_shared<Listeners>();
    const std::uint64_t id = ++next_listener_;
    next->emplace_back(id, std::move(fn));
    listeners_ = std::move(next);
    return id;
  }

  void remove_listener(std::uint64_t handle) {
    std::lock_guard lock(listeners_mu_);
    if (!listeners_) return;
    auto next = std::make_shared<Listeners>(*listeners_);
    std::erase_if(*next, [&](const auto& p) { return p.first == handle; });
    listeners_ = std::move(next);
  }

  IndexStats stats() const {
    IndexStats s;
    auto cs = core_->stats();
    s.memtable_entries = cs.memtable_entries;
    s.index_files = cs.index_files;
    s.indexed_through = cs.indexed_through;
    s.resident_bytes_estimate =
        cs.resident_bytes_estimate + heads_.memory_bytes() + window_.memory_bytes();
    s.last_rebuild_reason = core_->rebuild_reason();
    s.index_repairs = cs.repairs;
    s.index_scrub_done = cs.scrub_done;
    return s;
  }
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
  std::shared_mutex log_gone_mu_;  // load_range (background) vs the destructor
  bool log_gone_ = false;

  using Listeners = std::vector<std::pair<std::uint64_t, std::function<void(GlobalPosition)>>>;
  std::mutex listeners_mu_;
  std::shared_ptr<const Listeners> listeners_;
  std::uint64_t next_listener_ = 0;
};

Result<std::unique_ptr<Store>> Store::open(StoreOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  ANNAL_RETURN_IF_ERROR(impl->open());
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

void Store::append(StreamAppend append, std::function<void(const engine::AppendOutcome&)> done) {
  impl_->append(std::move(append), std::move(done));
}

engine::AppendOutcome Store::append_sync(StreamAppend append) {
  std::promise<engine::AppendOutcome> p;
  auto f = p.get_future();
  impl_->append(std::move(append), [&p](const engine::AppendOutcome& o) { p.set_value(o); });
  return f.get();
}

Result<std::vector<engine::EventRecord>> Store::read_stream(const std::string& stream,
                                                            StreamRevision from,
                                                            std::uint64_t count,
                                                            Direction direction) const {
  return impl_->read_stream(stream, from, count, direction);
}

Status Store::visit_stream(const std::string& stream, StreamRevision from, std::uint64_t count,
                           Direction direction, const StreamVisitor& fn) const {
  return impl_->visit_stream(stream, from, count, direction, fn);
}

Result<StreamRevision> Store::last_revision(const std::string& stream) const {
  return impl_->last_revision(stream);
}

Status Store::visit_index(IndexKind kind, std::string_view value, GlobalPosition from,
                          Direction direction, GlobalPosition end, const StreamVisitor& fn) const {
  const SecondaryIndex* s = impl_->secondary();
  if (s == nullptr)
    return Status(Errc::kInvalidArgument,
                  "this node keeps no secondary index (annald --secondary-index off)");
  return visit_secondary(*s, log(), kind, value, from, direction == Direction::kBackward,
                         std::min(end, log().durable_end()), fn);
}

char Store::category_separator() const {
  return impl_->options_.category_separator;
}

Result<GlobalPosition> Store::seek_time(std::int64_t timestamp_us) const {
  const SecondaryIndex* s = impl_->secondary();
  if (s == nullptr)
    return Status(Errc::kInvalidArgument,
                  "this node keeps no time map (annald --secondary-index off)");
  return seek_secondary_time(*s, log(), timestamp_us, log().durable_end());
}

std::optional<IndexCoreStats> Store::secondary_stats() const {
  const SecondaryIndex* s = impl_->secondary();
  if (s == nullptr) return std::nullopt;
  return s->stats();
}

std::uint64_t Store::add_durable_listener(std::function<void(GlobalPosition end)> fn) {
  return impl_->add_listener(std::move(fn));
}
void Store::remove_durable_listener(std::uint64_t handle) {
  impl_->remove_listener(handle);
}

engine::Log& Store::log() {
  return *impl_->log_;
}
const engine::Log& Store::log() const {
  return *impl_->log_;
}
const Limits& Store::limits() const {
  return impl_->limits_;
}
IndexStats Store::stats() const {
  return impl_->stats();
}
void Store::wait_index_idle() {
  impl_->core_->wait_idle();
  if (impl_->secondary_) impl_->secondary_->wait_idle();
}

}  // namespace annal::index
