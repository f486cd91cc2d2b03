// Stream lifecycle in the store (index/store_impl.h; docs/semantics.md,
// "Metadata and deletion"): the rules folded from the metadata streams at
// open and kept in DATA/lifecycle, set_metadata and delete_stream, the
// writer's view of the rules and the readers' (published at on_disk, before
// the durable end moves), and Removal, the check of reads in log order.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <future>
#include <thread>

#include "index/store_impl.h"

namespace annal::index {

auto Store::Impl::open_lifecycle(std::uint64_t end) -> Status {
  engine::FileSystem& fs =
      options_.log.fs != nullptr ? *options_.log.fs : engine::FileSystem::posix();
  const std::string path = options_.log.dir + "/" + kLifecycleFileName;
  LifecycleFile f;
  bool trusted = false;
  if (fs.exists(path)) {
    auto bytes = engine::read_whole_file(fs, path);
    if (!bytes) return bytes.status();
    auto decoded = decode_lifecycle(*bytes);
    if (!decoded) {
      spdlog::warn("{}: {}; folding the metadata streams from the whole log", path,
                   decoded.status().to_string());
    } else if (decoded->through > end) {
      spdlog::warn(
          "{} covers positions up to {}, beyond the log's end {} (a repair cut the log); "
          "folding the metadata streams from the whole log",
          path, decoded->through, end);
    } else {
      f.through = decoded->through;
      f.rules.swap(decoded->rules);
      trusted = true;
    }
  }
  const std::uint64_t from = trusted ? f.through : 0;
  std::uint64_t seen = 0;
  Status failed;
  Status st = log_->scan_forward(
      GlobalPosition(from), end - std::min(end, from), [&](const engine::RecordView& v) {
        if (!is_metadata_stream(v.stream)) return true;
        ++seen;
        StreamRules& r = f.rules[std::string(v.stream.substr(2))];
        failed = apply_metadata_event(r, v.revision.value, v.type, v.data);
        return failed.is_ok();
      });
  ANNAL_RETURN_IF_ERROR(st);
  ANNAL_RETURN_IF_ERROR(failed);
  writer_rules_ = f.rules;
  rules_ = std::make_shared<const RulesMap>(std::move(f.rules));
  if (!trusted || from < end) {
    spdlog::info(
        "stream lifecycle: {} metadata events folded from positions [{}, {}), {} "
        "streams with rules",
        seen, from, end, writer_rules_.size());
    persist_lifecycle(end);
  } else {
    lifecycle_through_ = end;
  }
  return Status::ok();
}

void Store::Impl::persist_lifecycle(std::uint64_t through) {
  engine::FileSystem& fs =
      options_.log.fs != nullptr ? *options_.log.fs : engine::FileSystem::posix();
  LifecycleFile f;
  f.through = through;
  f.rules = *rules_snapshot();
  Status st =
      engine::write_file_atomically(fs, options_.log.dir, kLifecycleFileName, encode_lifecycle(f));
  lifecycle_written_ = std::chrono::steady_clock::now();
  if (!st.is_ok()) {
    // Only a cache of the log: the next open folds more of it.
    spdlog::error("stream lifecycle: writing {}/{} failed: {}", options_.log.dir,
                  kLifecycleFileName, st.to_string());
    return;
  }
  lifecycle_through_ = through;
  lifecycle_dirty_ = false;
}

auto Store::Impl::rules_snapshot() const -> std::shared_ptr<const RulesMap> {
  std::lock_guard lock(rules_mu_);
  return rules_;
}

auto Store::Impl::writer_rules(std::string_view stream) const -> const StreamRules* {
  return find_rules_of(writer_rules_, stream);
}

void Store::Impl::note_rule_events(const engine::AppendRequest& req, const Part& part,
                                   std::uint64_t at, std::uint64_t first_rev) {
  const std::string target = part.stream.substr(kMetaPrefix.size());
  StreamRules r;
  if (const StreamRules* old = writer_rules(target)) r = *old;
  for (std::uint32_t i = 0; i < part.count; ++i) {
    const auto& e = req.events[part.first_event + i];
    // The node wrote or checked every metadata event: a failure is a bug.
    Status st = apply_metadata_event(r, first_rev + i, e.type, e.data);
    ANNAL_CHECK(st.is_ok(), "a metadata event the node accepted does not parse");
  }
  writer_rules_[target] = r;
  rule_changes_.push_back(RuleChange{at + part.count - 1, target, r});
}

void Store::Impl::on_disk(GlobalPosition end) {
  if (rule_changes_.empty() || rule_changes_.front().position >= end.value) return;
  auto next = std::make_shared<RulesMap>(*rules_snapshot());
  while (!rule_changes_.empty() && rule_changes_.front().position < end.value) {
    RuleChange& c = rule_changes_.front();
    (*next)[c.stream] = c.rules;
    rule_changes_.pop_front();
  }
  {
    std::lock_guard lock(rules_mu_);
    rules_ = std::move(next);
  }
  rules_version_.fetch_add(1, std::memory_order_release);
  lifecycle_dirty_ = true;
}

auto Store::Impl::prepare_deletion(engine::AppendRequest& req, const AppendCtx& c,
                                   const std::vector<PartCheck>& checks,
                                   engine::AppendOutcome& outcome) -> std::optional<Decision> {
  const Part& target = c.parts[0];
  const PartCheck& check = checks[0];
  if (c.lifecycle == AppendCtx::Lifecycle::kDelete && (!check.head || check.deleted)) {
    outcome.status = Status(Errc::kStreamNotFound,
                            fmt::format("stream '{}' not found: nothing to delete", target.stream));
    return Decision::kComplete;
  }
  const std::uint64_t tb = check.head ? check.head->revision + 1 : 0;
  req.events[c.parts[1].first_event].data = deletion_data(tb);
  outcome.truncate_before = tb;
  return std::nullopt;
}

namespace {

Status check_lifecycle_name(const Limits& limits, const std::string& stream) {
  if (stream.empty()) return Status(Errc::kBadRequest, "stream name is empty");
  if (is_metadata_stream(stream))
    return Status(
        Errc::kBadRequest,
        fmt::format("stream '{}' is a metadata stream, which has no metadata of its own", stream));
  if (stream.size() + kMetaPrefix.size() > limits.max_stream_name)
    return Status(Errc::kTooLarge,
                  fmt::format("stream name of {} bytes: its metadata stream's name would exceed "
                              "max_stream_name ({})",
                              stream.size(), limits.max_stream_name));
  return Status::ok();
}

NewEvent lifecycle_event(std::string_view type, std::string data) {
  NewEvent e;
  e.id = EventId::random();
  e.type = std::string(type);
  e.flags = engine::format::kFlagDataJson;
  e.data = std::move(data);
  return e;
}

template <class F>
engine::AppendOutcome wait_for(F&& start) {
  std::promise<engine::AppendOutcome> p;
  auto f = p.get_future();
  start([&p](const engine::AppendOutcome& o) { p.set_value(o); });
  return f.get();
}

}  // namespace

void Store::set_metadata(std::string stream, ExpectedRevision expected, std::string json,
                         std::function<void(const engine::AppendOutcome&)> done) {
  Impl& im = *impl_;
  if (Status st = check_lifecycle_name(im.limits_, stream); !st.is_ok())
    return Impl::refuse(std::move(st), done);
  if (json.size() > im.limits_.max_event_size)
    return Impl::refuse(
        Status(Errc::kTooLarge, fmt::format("metadata of {} bytes exceeds "
                                            "max_event_size ({})",
                                            json.size(), im.limits_.max_event_size)),
        done);
  if (auto f = parse_metadata(json); !f) return Impl::refuse(f.status(), done);
  std::vector<StreamAppend> parts;
  parts.push_back(StreamAppend{metadata_stream_of(stream), expected, {}});
  parts[0].events.push_back(lifecycle_event(kMetadataType, std::move(json)));
  im.submit(std::move(parts), std::nullopt, false, std::move(done));
}

engine::AppendOutcome Store::set_metadata_sync(std::string stream, ExpectedRevision expected,
                                               std::string json) {
  return wait_for(
      [&](auto done) { set_metadata(std::move(stream), expected, std::move(json), done); });
}

void Store::delete_stream(std::string stream, ExpectedRevision expected, bool hard,
                          std::function<void(const engine::AppendOutcome&)> done) {
  Impl& im = *impl_;
  if (Status st = check_lifecycle_name(im.limits_, stream); !st.is_ok())
    return Impl::refuse(std::move(st), done);
  std::vector<StreamAppend> parts;
  parts.push_back(StreamAppend{stream, expected, {}});
  parts.push_back(StreamAppend{metadata_stream_of(stream), ExpectedRevision::any(), {}});
  parts[1].events.push_back(lifecycle_event(hard ? kTombstoneType : kDeletedType, "{}"));
  im.submit(std::move(parts), std::nullopt, false, std::move(done), 0,
            hard ? AppendCtx::Lifecycle::kTombstone : AppendCtx::Lifecycle::kDelete);
}

engine::AppendOutcome Store::delete_stream_sync(std::string stream, ExpectedRevision expected,
                                                bool hard) {
  return wait_for([&](auto done) { delete_stream(std::move(stream), expected, hard, done); });
}

Result<StreamMetadata> Store::read_metadata(const std::string& stream) const {
  const Impl& im = *impl_;
  ANNAL_RETURN_IF_ERROR(check_lifecycle_name(im.limits_, stream));
  const std::uint64_t end = im.log_->durable_end().value;
  auto snap = im.rules_snapshot();
  StreamMetadata m;
  if (const StreamRules* r = find_rules_of(*snap, stream)) m.rules = *r;
  const std::string meta = metadata_stream_of(stream);
  auto mh = im.durable_head(meta, im.hash_of(meta), end);
  if (!mh) return mh.status();
  if (*mh) m.revision = StreamRevision((*mh)->revision);
  if (m.rules.has_metadata) {
    Status read_st;
    bool found = false;
    Status st = im.visit_stream(meta, StreamRevision(m.rules.meta_revision), 1, Direction::kForward,
                                [&](const engine::RecordView& v) {
                                  found = true;
                                  m.json.assign(v.data);
                                  return false;
                                });
    if (!st.is_ok()) return st;
    if (!found)
      return Status(Errc::kCorruption,
                    fmt::format("stream '{}': its metadata event (revision {} of '{}') is "
                                "missing from the stream index",
                                stream, m.rules.meta_revision, meta));
  }
  auto h = im.durable_head(stream, im.hash_of(stream), end);
  if (!h) return h.status();
  m.deleted = *h && m.rules.deleted_at((*h)->revision);
  return m;
}

std::uint64_t Store::rules_version() const {
  return impl_->rules_version_.load(std::memory_order_acquire);
}

Removal Store::removal() const {
  Removal r;
  r.store_ = this;
  r.rules_ = impl_->rules_snapshot();
  r.now_us_ = now_us();
  r.end_ = impl_->log_->durable_end().value;
  return r;
}

Result<std::optional<StreamRevision>> Store::raw_head(std::string_view stream,
                                                      std::uint64_t end) const {
  auto h = impl_->durable_head(stream, impl_->hash_of(stream), end);
  if (!h) return h.status();
  if (!*h) return std::optional<StreamRevision>();
  return std::optional<StreamRevision>(StreamRevision((*h)->revision));
}

bool Removal::removed_slow(const engine::RecordView& v) const {
  if (v.flags & engine::format::kFlagLost) return false;
  return removed_at(v.stream, v.revision.value, v.timestamp_us);
}

bool Removal::removed(std::string_view stream, std::uint64_t revision,
                      std::int64_t timestamp_us) const {
  return !none() && !stream.empty() && removed_at(stream, revision, timestamp_us);
}

bool Removal::removed_at(std::string_view stream, std::uint64_t revision,
                         std::int64_t timestamp_us) const {
  const StreamRules* r = find_rules_of(*rules_, stream);
  if (r == nullptr) return false;
  std::uint64_t head = revision;
  if (r->metadata.max_count) {
    auto it = heads_.find(stream);
    if (it == heads_.end()) {
      auto h = store_->raw_head(stream, end_);
      // The head cannot be read: keep the event (max_count is not applied)
      // rather than hide it; reads that need the head report the damage.
      const std::uint64_t known = h && *h ? (*h)->value : 0;
      it = heads_.emplace(std::string(stream), known).first;
    }
    head = std::max(it->second, revision);
  }
  return r->removes(revision, timestamp_us, head, now_us_);
}

namespace {

// The stream a snapshot belongs to must have visible events (and not be
// tombstoned): its last revision and the first revision a snapshot may have.
struct SnapshotBounds {
  std::uint64_t head = 0;
  std::uint64_t min_revision = 0;
};

}  // namespace

static Result<SnapshotBounds> snapshot_bounds(const Store::Impl& im, const std::string& stream) {
  ANNAL_RETURN_IF_ERROR(check_lifecycle_name(im.limits_, stream));
  const std::uint64_t end = im.log_->durable_end().value;
  auto snap = im.rules_snapshot();
  const StreamRules* r = find_rules_of(*snap, stream);
  if (r && r->tombstoned) return deleted_for_good(stream);
  auto h = im.durable_head(stream, im.hash_of(stream), end);
  if (!h) return h.status();
  if (!*h || (r && r->deleted_at((*h)->revision)))
    return Status(Errc::kStreamNotFound, fmt::format("stream '{}' not found", stream));
  return SnapshotBounds{(*h)->revision, r ? r->deleted_before : 0};
}

Result<std::size_t> Store::save_snapshot(const std::string& stream, std::uint64_t revision,
                                         std::string type, std::string data) {
  const Impl& im = *impl_;
  if (type.empty()) return Status(Errc::kBadRequest, "snapshot type is empty");
  if (type.size() > im.limits_.max_event_type)
    return Status(Errc::kTooLarge, fmt::format("snapshot type of {} bytes exceeds max_event_type "
                                               "({})",
                                               type.size(), im.limits_.max_event_type));
  if (data.size() > im.limits_.max_event_size)
    return Status(Errc::kTooLarge, fmt::format("snapshot of {} bytes exceeds max_event_size ({})",
                                               data.size(), im.limits_.max_event_size));
  auto b = snapshot_bounds(im, stream);
  if (!b) return b.status();
  if (revision > b->head)
    return Status(Errc::kBadRequest,
                  fmt::format("snapshot of '{}' at revision {}: the stream's last revision is {}",
                              stream, revision, b->head));
  if (revision < b->min_revision)
    return Status(Errc::kBadRequest,
                  fmt::format("snapshot of '{}' at revision {}: revisions below {} were deleted",
                              stream, revision, b->min_revision));
  return impl_->snapshots_->save(
      Snapshot{stream, revision, std::move(type), std::move(data), now_us()});
}

Result<std::optional<Snapshot>> Store::read_snapshot(const std::string& stream,
                                                     std::uint64_t max_revision) const {
  auto b = snapshot_bounds(*impl_, stream);
  if (!b) return b.status();
  return impl_->snapshots_->latest(stream, b->min_revision, std::min(max_revision, b->head));
}

Result<ScavengeReport> Store::scavenge(const ScavengeOptions& options) {
  std::unique_lock running(impl_->scavenge_mu_, std::try_to_lock);
  if (!running.owns_lock()) {
    if (impl_->backup_running_.load())
      return Status(Errc::kBusy,
                    "a backup is running (it copies the sealed segments a scavenge rewrites); "
                    "scavenge again when it is done");
    return Status(Errc::kInvalidArgument, "a scavenge is already running");
  }
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  ScavengeReport report;
  engine::Log& lg = log();
  auto total_bytes = [&] {
    std::uint64_t b = 0;
    for (const auto& s : lg.segments()) b += s.bytes_allocated;
    return b;
  };
  report.log_bytes_before = total_bytes();
  // The throttle: sleep so that bytes written / elapsed stays under budget.
  std::uint64_t paced = 0;
  auto pace = [&](std::uint64_t bytes) {
    paced += bytes;
    if (options.bytes_per_second == 0) return;
    const auto due =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                 static_cast<double>(paced) / static_cast<double>(options.bytes_per_second)));
    std::this_thread::sleep_until(due);
  };
  for (const auto& seg : lg.segments()) {
    if (!seg.sealed) continue;
    if (options.cancelled && options.cancelled()) {
      report.cancelled = true;
      break;
    }
    ++report.segments_checked;
    report.bytes_read += seg.bytes_used;
    // The rules as they are now; metadata streams carry them and stay whole.
    const Removal rm = removal();
    auto r = lg.rewrite_sealed(
        seg.first,
        [&](const engine::RecordView& v) { return !is_metadata_stream(v.stream) && rm.removed(v); },
        pace);
    if (!r) {
      if (r.status().code() == Errc::kInvalidArgument) continue;  // became the newest: skip
      return r.status();
    }
    if (r->rewritten) {
      ++report.segments_rewritten;
      report.events_removed += r->removed;
      report.bytes_freed += r->bytes_before - r->bytes_after;
    }
  }
  report.bytes_written = paced;
  // Snapshots are removed with their stream.
  if (!report.cancelled) {
    auto rules = impl_->rules_snapshot();
    for (const auto& [stream, r] : *rules) {
      if (r.deleted_before == 0 && !r.tombstoned) continue;
      ANNAL_RETURN_IF_ERROR(
          impl_->snapshots_->drop_below(stream, r.tombstoned ? UINT64_MAX : r.deleted_before));
    }
  }
  report.log_bytes_after = total_bytes();
  report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  spdlog::info(
      "scavenge: {} of {} sealed segments rewritten, {} events removed, {} bytes freed, log {} -> "
      "{} bytes in {:.3f} s{}",
      report.segments_rewritten, report.segments_checked, report.events_removed, report.bytes_freed,
      report.log_bytes_before, report.log_bytes_after, report.seconds,
      report.cancelled ? " (cancelled)" : "");
  return report;
}

}  // namespace annal::index
