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
#include "index/append_validate.h"
#include "index/entry.h"
#include "index/head_cache.h"
#include "index/id_window.h"
#include "index/index_core.h"
#include "index/manifest.h"

namespace annal::index {
namespace {

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
        limits_(clamp_limits(options_.limits, options_.log.segment_size)),
        heads_(options_.head_cache_entries),
        window_(options_.idempotency_window) {}

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

  static void refuse(Status st, const std::function<void(const engine::AppendOutcome&)>& done) {
    engine::AppendOutcome o;
    o.status = std::move(st);
    if (done) done(o);
  }

  void append(StreamAppend a, std::function<void(const engine::AppendOutcome&)> done) {
    normalise_tags(a.events);
    if (Status st = validate_append(limits_, a); !st.is_ok()) return refuse(std::move(st), done);
    std::vector<StreamAppend> parts;
    parts.push_back(std::move(a));
    submit(std::move(parts), std::nullopt, false, std::move(done));
  }

  void append_multi(MultiAppend m, std::function<void(const engine::AppendOutcome&)> done) {
    for (auto& a : m.streams) normalise_tags(a.events);
    if (m.condition) normalise_query(m.condition->fail_if_events_match);
    if (Status st = validate_multi_append(limits_, m, secondary_ != nullptr); !st.is_ok())
      return refuse(std::move(st), done);
    const std::uint64_t checked = m.condition ? precheck(*m.condition) : 0;
    submit(std::move(m.streams), std::move(m.condition), true, std::move(done), checked);
  }

  // On the caller's thread, before the append is queued: the condition
  // against the durable events (the single writer then checks only those
  // that became durable or were prepared since, usually from a table, not
  // the index). The durable end it checked below, or 0 when an event
  // matched or a read failed: the writer then checks everything itself (a
  // retry of this very append must be recognised before its condition).
  std::uint64_t precheck(const AppendCondition& cond) const {
    // The index files only: the memtable's lock is taken by the writer for
    // every insert, and readers contending for it cost more than the check
    // saves. The writer checks the (usually few) positions above.
    const std::uint64_t durable =
        std::min(log_->durable_end().value, secondary_->indexed_through());
    const std::uint64_t from = cond.after ? cond.after->value + 1 : 0;
    if (from >= durable) return 0;  // nothing to check here (or `after` is refused)
    const Query& q = cond.fail_if_events_match;
    QueryCandidates candidates(*secondary_, q, from, false, durable, true);
    for (;;) {
      auto batch = candidates.next();
      if (!batch) return 0;
      if (batch->empty()) return durable;
      bool found = false;
      Status st = log_->visit_many(*batch, [&](std::size_t, const engine::RecordView& v) {
        found = query_matches(q, v);
        return !found;
      });
      if (!st.is_ok() || found) return 0;
    }
  }

  // Queues a validated append for the writer: the events of every stream in
  // order, and what prepare() needs to check them.
  void submit(std::vector<StreamAppend> streams, std::optional<AppendCondition> condition,
              bool multi, std::function<void(const engine::AppendOutcome&)> done,
              std::uint64_t checked_through = 0) {
    engine::AppendRequest req;
    std::size_t total = 0;
    for (const auto& a : streams) total += a.events.size();
    req.events.reserve(total);
    AppendCtx ctx;
    ctx.parts.reserve(streams.size());
    ctx.condition = std::move(condition);
    ctx.checked_through = checked_through;
    ctx.multi = multi;
    for (auto& a : streams) {
      Part part;
      part.first_event = static_cast<std::uint32_t>(req.events.size());
      part.count = static_cast<std::uint32_t>(a.events.size());
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
      part.hash = hash_of(a.stream);
      part.key = HeadCache::key_of(a.stream);
      part.stream = std::move(a.stream);
      part.expected = a.expected;
      ctx.parts.push_back(std::move(part));
    }
    req.user = std::move(ctx);
    req.done = std::move(done);
    log_->append(std::move(req));
  }

  // ---- Writer thread: the writer's view includes prepared, not yet
  // durable appends (pending_). ----
  const Pending* pending_at(std::uint64_t pos) const {
    if (pending_.empty() || pos < pending_.front().first_position) return nullptr;
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

  Result<std::optional<Head>> writer_head(const Part& c) {
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
  Result<std::optional<Dedup>> match_at_revisions(const Part& c, std::uint64_t r0,
                                                  std::span<const EventId> ids) {
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
  Result<WindowResult> match_in_window(const Part& c, std::span<const EventId> ids,
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

  // What one stream of an append resolves to: new events (to be written
  // after `head`), a retry of events already written, or a failed
  // expectation. An error (damage) is returned as such, never as one of them.
  struct PartCheck {
    enum class Kind { kNew, kDuplicate, kWrong } kind = Kind::kNew;
    std::optional<Head> head;
    Dedup dedup{};
  };
  Result<PartCheck> check_part(const Part& c, std::span<const EventId> ids, std::uint64_t next) {
    auto found_head = writer_head(c);
    // A damaged index file (being rebuilt): refuse rather than guess.
    if (!found_head) return found_head.status();
    PartCheck out;
    out.head = *found_head;
    const std::optional<Head>& head = out.head;
    auto wrong = [&] {
      out.kind = PartCheck::Kind::kWrong;
      return out;
    };
    auto retry = [&](const Result<std::optional<Dedup>>& d) -> Result<PartCheck> {
      if (!d) return d.status();
      if (!*d) return wrong();
      out.kind = PartCheck::Kind::kDuplicate;
      out.dedup = **d;
      return out;
    };
    using Kind = ExpectedRevision::Kind;
    switch (c.expected.kind) {
      case Kind::kStreamExists:
        if (!head) return wrong();
        [[fallthrough]];
      case Kind::kAny: {
        if (ids.empty()) return out;
        Dedup d{};
        auto m = match_in_window(c, ids, next, d);
        if (!m) return m.status();
        if (*m == WindowResult::kDuplicate) return retry(std::optional<Dedup>(d));
        if (*m == WindowResult::kConflict) return wrong();
        return out;
      }
      case Kind::kNoStream:
        if (!head) return out;
        if (ids.empty()) return wrong();
        return retry(match_at_revisions(c, 0, ids));
      case Kind::kExact: {
        const std::uint64_t n = c.expected.revision.value;
        if (!head || head->revision < n) return wrong();
        if (head->revision == n) return out;
        if (ids.empty()) return wrong();
        return retry(match_at_revisions(c, n + 1, ids));
      }
    }
    return out;
  }

  // Whether the event at `pos` (below the writer's next position: durable,
  // or prepared and not yet durable) matches `q`. A record that cannot be
  // read is an error: a damaged event must not let a condition pass.
  Result<bool> writer_matches(const Query& q, std::uint64_t pos) const {
    if (const Pending* p = pending_at(pos)) {
      const engine::EventRecord& e = p->events[pos - p->first_position];
      return query_matches(q, e.type, e.tags);
    }
    bool match = false;
    Status st = log_->visit(GlobalPosition(pos),
                            [&](const engine::RecordView& v) { match = query_matches(q, v); });
    if (!st.is_ok()) return unconfirmed(pos, "an append condition", st);
    return match;
  }

  // The first position after the condition's `after` (and below `next`)
  // holding a matching event, among durable events and those prepared in
  // groups not yet durable (the index holds both). Positions below
  // `checked_through` were checked by precheck().
  Result<std::optional<std::uint64_t>> first_conflict(const AppendCondition& cond,
                                                      std::uint64_t next,
                                                      std::uint64_t checked_through) const {
    const Query& q = cond.fail_if_events_match;
    const std::uint64_t from = std::max(cond.after ? cond.after->value + 1 : 0, checked_through);
    if (from >= next) return std::optional<std::uint64_t>();
    // Usually none of the query's keys was added since: one table lookup
    // per key instead of the index.
    if (!query_may_match_since(*secondary_, q, from)) return std::optional<std::uint64_t>();
    QueryCandidates candidates(*secondary_, q, from, false, next);
    for (;;) {
      auto batch = candidates.next();
      if (!batch) return batch.status();
      if (batch->empty()) return std::optional<std::uint64_t>();
      for (std::uint64_t pos : *batch) {
        auto m = writer_matches(q, pos);
        if (!m) return m.status();
        if (*m) return std::optional<std::uint64_t>(pos);
      }
    }
  }

  // Indexes events given to the log directly, not through Store::append
  // (tests and tools): as they are.
  Decision prepare_raw(engine::AppendRequest& req, GlobalPosition next) {
    for (std::uint64_t i = 0; i < req.events.size(); ++i) {
      const auto& e = req.events[i];
      const std::uint64_t hash = hash_of(e.stream);
      const HeadCache::Key key = HeadCache::key_of(e.stream);
      Pending p{next.value + i, e.revision.value, e.stream, hash, key, heads_.get(key), {e.id}, &e};
      core_->add(IndexEntry{hash, e.revision.value, next.value + i});
      if (secondary_)
        secondary_->add(next.value + i, e.timestamp_us, e.stream, e.type, e.tags, e.correlation_id,
                        e.causation_id);
      window_.insert(e.id, next.value + i);
      heads_.put(key, Head{e.revision.value, next.value + i});
      pending_.push_back(std::move(p));
    }
    return Decision::kWrite;
  }

  Decision prepare(engine::AppendRequest& req, GlobalPosition next,
                   engine::AppendOutcome& outcome) override {
    ANNAL_CHECK(ready_, "append before the store finished opening");
    auto* c = std::any_cast<AppendCtx>(&req.user);
    if (c == nullptr) return prepare_raw(req, next);
    if (options_.test_before_prepare) options_.test_before_prepare();
    auto complete = [&](Status st) {
      outcome.status = std::move(st);
      return Decision::kComplete;
    };
    if (c->condition && c->condition->after && c->condition->after->value >= durable_end_)
      return complete(
          Status(Errc::kBadRequest,
                 fmt::format("append condition: after position {} is not below the durable end {}",
                             c->condition->after->value, durable_end_)));
    const std::uint64_t k = req.events.size();
    std::vector<EventId> ids;
    ids.reserve(k);
    for (const auto& e : req.events) ids.push_back(e.id);
    const std::span<const EventId> all_ids(ids);
    std::vector<PartCheck> checks;
    checks.reserve(c->parts.size());
    for (const Part& part : c->parts) {
      auto r = check_part(part, all_ids.subspan(part.first_event, part.count), next.value);
      if (!r) return complete(r.status());
      checks.push_back(*r);
    }
    if (auto d = resolve_retry(*c, checks, outcome)) return *d;
    if (auto w = resolve_wrong(*c, checks, outcome)) return *w;
    if (c->condition) {
      auto conflict = first_conflict(*c->condition, next.value, c->checked_through);
      if (!conflict) return complete(conflict.status());
      if (*conflict) {
        outcome.conflict_position = GlobalPosition(**conflict);
        return complete(
            Status(Errc::kAppendConditionFailed,
                   fmt::format("append condition failed: the event at position {} matches {}{}",
                               **conflict, query_to_string(c->condition->fail_if_events_match),
                               c->condition->after
                                   ? fmt::format(" after position {}", c->condition->after->value)
                                   : std::string())));
      }
    }
    write_parts(req, next, *c, checks, std::move(ids), outcome);
    return Decision::kWrite;
  }

  // Every stream with events resolved to a retry of events written earlier,
  // one after another as this request would write them: the append was
  // written before (its condition and checked streams no longer matter).
  // Streams that are retries beside new ones fail: a retry repeats a whole
  // append or nothing of it.
  std::optional<Decision> resolve_retry(const AppendCtx& c, std::vector<PartCheck>& checks,
                                        engine::AppendOutcome& outcome) {
    std::size_t written = 0, retries = 0;
    for (std::size_t i = 0; i < c.parts.size(); ++i) {
      if (c.parts[i].count == 0) continue;
      ++written;
      if (checks[i].kind == PartCheck::Kind::kDuplicate) ++retries;
    }
    if (retries == 0) return std::nullopt;
    bool whole = retries == written;
    std::optional<std::uint64_t> expect_at;
    for (std::size_t i = 0; i < c.parts.size() && whole; ++i) {
      if (c.parts[i].count == 0) continue;
      const Dedup& d = checks[i].dedup;
      whole = !expect_at || *expect_at == d.first_position;
      expect_at = d.first_position + c.parts[i].count;
    }
    if (!whole) {
      for (std::size_t i = 0; i < c.parts.size(); ++i)
        if (checks[i].kind == PartCheck::Kind::kDuplicate) checks[i].kind = PartCheck::Kind::kWrong;
      return std::nullopt;
    }
    outcome.status = Status::ok();
    outcome.deduplicated = true;
    std::uint32_t total = 0;
    bool first = true;
    for (std::size_t i = 0; i < c.parts.size(); ++i) {
      const Part& part = c.parts[i];
      engine::AppendOutcome::StreamResult r{StreamRevision(UINT64_MAX), part.count, false, {}};
      if (part.count > 0) {
        r.first_revision = StreamRevision(checks[i].dedup.first_revision);
        if (first) {
          outcome.first_position = GlobalPosition(checks[i].dedup.first_position);
          outcome.first_revision = r.first_revision;
          first = false;
        }
      }
      total += part.count;
      if (c.multi) outcome.streams.push_back(r);
    }
    outcome.count = total;
    return Decision::kComplete;
  }

  // kWrongExpectedRevision naming every stream whose expectation failed,
  // with its actual revision.
  std::optional<Decision> resolve_wrong(const AppendCtx& c, const std::vector<PartCheck>& checks,
                                        engine::AppendOutcome& outcome) {
    std::string message;
    bool any = false;
    for (std::size_t i = 0; i < c.parts.size(); ++i) {
      const bool failed = checks[i].kind == PartCheck::Kind::kWrong;
      const std::optional<Head>& head = checks[i].head;
      const std::optional<StreamRevision> actual =
          head ? std::optional<StreamRevision>(StreamRevision(head->revision)) : std::nullopt;
      if (c.multi)
        outcome.streams.push_back(engine::AppendOutcome::StreamResult{
            StreamRevision(UINT64_MAX), 0, failed, failed ? actual : std::nullopt});
      if (!failed) continue;
      if (!any) outcome.actual_revision = actual;
      any = true;
      message +=
          fmt::format("{}stream '{}': expected revision {}, actual {}", message.empty() ? "" : "; ",
                      c.parts[i].stream, expected_text(c.parts[i].expected), actual_text(head));
    }
    if (!any) {
      outcome.streams.clear();
      return std::nullopt;
    }
    outcome.status = Status(Errc::kWrongExpectedRevision, std::move(message));
    return Decision::kComplete;
  }

  // Assigns revisions, indexes the entries (invisible to readers until
  // durable), remembers the ids.
  void write_parts(engine::AppendRequest& req, GlobalPosition next, const AppendCtx& c,
                   const std::vector<PartCheck>& checks, std::vector<EventId> ids,
                   engine::AppendOutcome& outcome) {
    // Write time never steps back (the time map and time reads rely on it):
    // if the clock does, events keep the last time until it catches up.
    const std::int64_t ts = std::max(now_us(), last_timestamp_);
    last_timestamp_ = ts;
    const bool one = c.parts.size() == 1;
    for (std::size_t pi = 0; pi < c.parts.size(); ++pi) {
      const Part& part = c.parts[pi];
      const std::optional<Head>& head = checks[pi].head;
      const std::uint64_t first_rev = head ? head->revision + 1 : 0;
      if (c.multi)
        outcome.streams.push_back(engine::AppendOutcome::StreamResult{
            StreamRevision(part.count > 0 ? first_rev : UINT64_MAX), part.count, false, {}});
      if (part.count == 0) continue;
      const std::uint64_t at = next.value + part.first_event;
      for (std::uint64_t i = 0; i < part.count; ++i) {
        auto& e = req.events[part.first_event + i];
        e.revision = StreamRevision(first_rev + i);
        e.timestamp_us = ts;
        core_->add(IndexEntry{part.hash, first_rev + i, at + i});
        if (secondary_)
          secondary_->add(at + i, ts, part.stream, e.type, e.tags, e.correlation_id,
                          e.causation_id);
        window_.insert(e.id, at + i);
      }
      heads_.put(part.key, Head{first_rev + part.count - 1, at + part.count - 1});
      std::vector<EventId> part_ids =
          one ? std::move(ids)
              : std::vector<EventId>(ids.begin() + part.first_event,
                                     ids.begin() + part.first_event + part.count);
      pending_.push_back(Pending{at, first_rev, part.stream, part.hash, part.key, head,
                                 std::move(part_ids), &req.events[part.first_event]});
    }
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

void Store::append_multi(MultiAppend append,
                         std::function<void(const engine::AppendOutcome&)> done) {
  impl_->append_multi(std::move(append), std::move(done));
}

engine::AppendOutcome Store::append_multi_sync(MultiAppend append) {
  std::promise<engine::AppendOutcome> p;
  auto f = p.get_future();
  impl_->append_multi(std::move(append), [&p](const engine::AppendOutcome& o) { p.set_value(o); });
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

Status Store::visit_query(const Query& query, GlobalPosition from, Direction direction,
                          GlobalPosition end, const StreamVisitor& fn) const {
  const SecondaryIndex* s = impl_->secondary();
  if (s == nullptr)
    return Status(Errc::kInvalidArgument,
                  "this node keeps no secondary index (annald --secondary-index off)");
  Query q = query;
  normalise_query(q);
  ANNAL_RETURN_IF_ERROR(validate_query(q, query_limits(impl_->limits_)));
  return index::visit_query(*s, log(), q, from, direction == Direction::kBackward,
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
