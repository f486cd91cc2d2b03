// The store (index/store_impl.h): opening (log, stream index, idempotency
// window, secondary index), reads, durable listeners, and the public Store
// methods; the write path is index/store_write.cc.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <future>

#include "index/store_impl.h"

namespace annal::index {

Store::Impl::~Impl() {
  {
    // A background index repair reads the log: stop it before the log goes.
    std::unique_lock lock(log_gone_mu_);
    log_gone_ = true;
  }
  log_.reset();  // finishes queued appends; the hooks still run meanwhile
  if (ready_ && !options_.test_skip_index_flush_on_close) persist_lifecycle(durable_end_);
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

auto Store::Impl::open() -> Status {
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
  co.id_digests = [this](std::uint64_t first, std::uint64_t end, std::vector<std::uint64_t>& out) {
    out.resize(end - first);
    for (std::uint64_t p = first; p < end; ++p) out[p - first] = window_.digest_at(p);
  };
  co.load_range = [this](std::uint64_t first, std::uint64_t last, std::vector<IndexEntry>& entries,
                         std::vector<std::uint64_t>& digests) {
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
  ANNAL_RETURN_IF_ERROR(open_lifecycle(end));
  snapshots_ =
      std::make_unique<SnapshotStore>(fs, options_.log.dir + "/snapshots", options_.snapshots_kept);
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

auto Store::Impl::open_secondary(std::uint64_t end) -> Status {
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

auto Store::Impl::load_range(std::uint64_t first, std::uint64_t last,
                             std::vector<IndexEntry>& entries, std::vector<std::uint64_t>& digests)
    -> Status {
  std::shared_lock lock(log_gone_mu_);
  if (log_gone_) return Status(Errc::kShuttingDown, "the store is closing");
  return log_->scan_forward(GlobalPosition(first), last - first, [&](const engine::RecordView& v) {
    const std::uint64_t pos = v.position.value;
    digests[pos - first] = IdWindow::digest(v.id);
    if (!(v.stream.empty() && (v.flags & format::kFlagLost)))
      entries.push_back(IndexEntry{hash_of(v.stream), v.revision.value, pos});
    return true;
  });
}

auto Store::Impl::hash_of(std::string_view stream) const -> std::uint64_t {
  return options_.test_stream_hash ? options_.test_stream_hash(stream) : xxh3_stream_hash(stream);
}

auto Store::Impl::durable_head(std::string_view stream, std::uint64_t hash, std::uint64_t end) const
    -> Result<std::optional<Head>> {
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

auto Store::Impl::last_revision(const std::string& stream) const -> Result<StreamRevision> {
  const std::uint64_t end = log_->durable_end().value;
  auto rules = rules_snapshot();
  auto h = durable_head(stream, hash_of(stream), end);
  if (!h) return h.status();
  const StreamRules* r = rules->empty() ? nullptr : find_rules_of(*rules, stream);
  if (r && r->tombstoned) return deleted_for_good(stream);
  if (!*h || (r && r->deleted_at((*h)->revision)))
    return Status(Errc::kStreamNotFound, fmt::format("stream '{}' not found", stream));
  return StreamRevision((*h)->revision);
}

auto Store::Impl::first_unexpired(std::string_view stream, std::uint64_t hash, std::uint64_t lo,
                                  std::uint64_t hi, std::int64_t cutoff_us, std::uint64_t end) const
    -> Result<std::uint64_t> {
  // Write times never step back, so a stream's expired events are a prefix:
  // the first revision in [lo, hi] written at or after the cutoff (hi + 1 if
  // none), by bisection over the stream index.
  std::uint64_t a = lo, b = hi + 1;
  while (a < b) {
    const std::uint64_t mid = a + (b - a) / 2;
    auto entries = core_->collect(hash, mid, mid, end);
    if (!entries) return entries.status();
    std::optional<std::int64_t> ts;
    for (const auto& e : *entries) {
      Status st = log_->visit(GlobalPosition(e.position), [&](const engine::RecordView& v) {
        if (v.stream == stream && v.revision.value == mid) ts = v.timestamp_us;
      });
      if (!st.is_ok()) return unconfirmed(e.position, fmt::format("the age of '{}'", stream), st);
      if (ts) break;
    }
    if (!ts)
      return Status(
          Errc::kCorruption,
          fmt::format("stream '{}': revision {} is missing from the stream index", stream, mid));
    if (*ts >= cutoff_us)
      b = mid;
    else
      a = mid + 1;
  }
  return a;
}

auto Store::Impl::visit_stream(const std::string& stream, StreamRevision from, std::uint64_t count,
                               Direction dir, const StreamVisitor& fn) const -> Status {
  const std::uint64_t end = log_->durable_end().value;
  const std::uint64_t hash = hash_of(stream);
  // Taken after the durable end: rules published before it moved are in.
  auto rules_now = rules_snapshot();
  const StreamRules* rules = find_rules_of(*rules_now, stream);
  if (rules && rules->tombstoned) return deleted_for_good(stream);
  auto found = durable_head(stream, hash, end);
  if (!found) return found.status();
  const std::optional<Head>& head = *found;
  if (!head || (rules && rules->deleted_at(head->revision)))
    return Status(Errc::kStreamNotFound, fmt::format("stream '{}' not found", stream));
  if (count == 0) return Status::ok();
  // Revisions below `kept` are removed by the stream's metadata.
  std::uint64_t kept = rules ? rules->first_kept(head->revision) : 0;
  if (rules && rules->metadata.max_age_s && kept <= head->revision) {
    const std::int64_t cutoff =
        now_us() - static_cast<std::int64_t>(*rules->metadata.max_age_s) * 1'000'000;
    auto first = first_unexpired(stream, hash, kept, head->revision, cutoff, end);
    if (!first) return first.status();
    kept = *first;
  }
  std::uint64_t lo, hi;
  if (dir == Direction::kForward) {
    lo = std::max(from.value, kept);
    if (lo > head->revision) return Status::ok();
    hi = head->revision - lo < count - 1 ? head->revision : lo + count - 1;
  } else {
    hi = std::min(from.value, head->revision);
    if (hi < kept) return Status::ok();
    lo = std::max(hi >= count - 1 ? hi - (count - 1) : 0, kept);
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
    // Removed by a scavenge: gone, whatever the rules say now.
    if (v.flags & format::kFlagRemoved) return true;
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

auto Store::Impl::read_stream(const std::string& stream, StreamRevision from, std::uint64_t count,
                              Direction dir) const -> Result<std::vector<engine::EventRecord>> {
  std::vector<engine::EventRecord> out;
  Status st = visit_stream(stream, from, count, dir, [&](const engine::RecordView& v) {
    out.push_back(v.to_record());
    return true;
  });
  if (!st.is_ok()) return st;
  return out;
}

auto Store::Impl::add_listener(std::function<void(GlobalPosition)> fn) -> std::uint64_t {
  std::lock_guard lock(listeners_mu_);
  auto next = listeners_ ? std::make_shared<Listeners>(*listeners_) : std::make_shared<Listeners>();
  const std::uint64_t id = ++next_listener_;
  next->emplace_back(id, std::move(fn));
  listeners_ = std::move(next);
  return id;
}

void Store::Impl::remove_listener(std::uint64_t handle) {
  std::lock_guard lock(listeners_mu_);
  if (!listeners_) return;
  auto next = std::make_shared<Listeners>(*listeners_);
  std::erase_if(*next, [&](const auto& p) { return p.first == handle; });
  listeners_ = std::move(next);
}

auto Store::Impl::stats() const -> IndexStats {
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
  const GlobalPosition stop = std::min(end, log().durable_end());
  const Removal rm = removal();
  return visit_secondary(*s, log(), kind, value, from, direction == Direction::kBackward, stop,
                         [&](const engine::RecordView& v) { return rm.removed(v) || fn(v); });
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
  const GlobalPosition stop = std::min(end, log().durable_end());
  const Removal rm = removal();
  return index::visit_query(*s, log(), q, from, direction == Direction::kBackward, stop,
                            [&](const engine::RecordView& v) { return rm.removed(v) || fn(v); });
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
