// The store's write path (index/store_impl.h): appends handed to the log,
// the condition's pre-check, and on the writer thread the checks of each
// append (heads, expected revisions, retries, multi-stream appends, append
// conditions), revision assignment, and what a failed or durable group undoes
// or publishes. See docs/semantics.md.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "index/store_impl.h"

namespace annal::index {

void Store::Impl::refuse(Status st, const std::function<void(const engine::AppendOutcome&)>& done) {
  engine::AppendOutcome o;
  o.status = std::move(st);
  if (done) done(o);
}

void Store::Impl::append(StreamAppend a, std::function<void(const engine::AppendOutcome&)> done) {
  normalise_tags(a.events);
  if (Status st = validate_append(limits_, a); !st.is_ok()) return refuse(std::move(st), done);
  std::vector<StreamAppend> parts;
  parts.push_back(std::move(a));
  submit(std::move(parts), std::nullopt, false, std::move(done));
}

void Store::Impl::append_multi(MultiAppend m,
                               std::function<void(const engine::AppendOutcome&)> done) {
  for (auto& a : m.streams) normalise_tags(a.events);
  if (m.condition) normalise_query(m.condition->fail_if_events_match);
  if (Status st = validate_multi_append(limits_, m, secondary_ != nullptr); !st.is_ok())
    return refuse(std::move(st), done);
  const std::uint64_t checked = m.condition ? precheck(*m.condition) : 0;
  submit(std::move(m.streams), std::move(m.condition), true, std::move(done), checked);
}

auto Store::Impl::precheck(const AppendCondition& cond) const -> std::uint64_t {
  // The index files only: the memtable's lock is taken by the writer for
  // every insert, and readers contending for it cost more than the check
  // saves. The writer checks the (usually few) positions above.
  const std::uint64_t durable = std::min(log_->durable_end().value, secondary_->indexed_through());
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
      // A scavenge's marker is no event: it matches nothing.
      found = !(v.flags & format::kFlagRemoved) && query_matches(q, v);
      return !found;
    });
    if (!st.is_ok() || found) return 0;
  }
}

void Store::Impl::submit(std::vector<StreamAppend> streams,
                         std::optional<AppendCondition> condition, bool multi,
                         std::function<void(const engine::AppendOutcome&)> done,
                         std::uint64_t checked_through, AppendCtx::Lifecycle lifecycle) {
  engine::AppendRequest req;
  std::size_t total = 0;
  for (const auto& a : streams) total += a.events.size();
  req.events.reserve(total);
  AppendCtx ctx;
  ctx.parts.reserve(streams.size());
  ctx.condition = std::move(condition);
  ctx.checked_through = checked_through;
  ctx.multi = multi;
  ctx.lifecycle = lifecycle;
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

auto Store::Impl::pending_at(std::uint64_t pos) const -> const Pending* {
  if (pending_.empty() || pos < pending_.front().first_position) return nullptr;
  for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
    if (pos >= it->first_position + it->ids.size()) return nullptr;
    if (pos >= it->first_position) return &*it;
  }
  return nullptr;
}

auto Store::Impl::writer_record(std::uint64_t pos) const -> Result<RecordLite> {
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

auto Store::Impl::writer_head(const Part& c) -> Result<std::optional<Head>> {
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

auto Store::Impl::match_at_revisions(const Part& c, std::uint64_t r0, std::span<const EventId> ids)
    -> Result<std::optional<Dedup>> {
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

auto Store::Impl::match_in_window(const Part& c, std::span<const EventId> ids, std::uint64_t next,
                                  Dedup& dedup) -> Result<WindowResult> {
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

auto Store::Impl::check_part(const Part& c, std::span<const EventId> ids, std::uint64_t next)
    -> Result<PartCheck> {
  auto found_head = writer_head(c);
  // A damaged index file (being rebuilt): refuse rather than guess.
  if (!found_head) return found_head.status();
  PartCheck out;
  out.head = *found_head;
  // A tombstone refuses every write to the stream and to its metadata.
  const std::string_view target = is_metadata_stream(c.stream)
                                      ? std::string_view(c.stream).substr(kMetaPrefix.size())
                                      : std::string_view(c.stream);
  if (const StreamRules* t = writer_rules(target); t && t->tombstoned)
    return Status(Errc::kStreamDeleted,
                  fmt::format("stream '{}' was deleted for good (hard delete): it cannot be "
                              "written again",
                              target));
  // A soft-deleted stream (every event below its cut) does not exist for
  // expectations; its new events still follow its last revision.
  const StreamRules* rules = writer_rules(c.stream);
  out.deleted = out.head && rules && rules->deleted_at(out.head->revision);
  const Head* head = out.head && !out.deleted ? &*out.head : nullptr;
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
  // New events, unless the ids are a recent append of this stream (a retry)
  // or recent events of something else (a conflict).
  auto by_window = [&]() -> Result<PartCheck> {
    Dedup d{};
    auto m = match_in_window(c, ids, next, d);
    if (!m) return m.status();
    if (*m == WindowResult::kDuplicate) return retry(std::optional<Dedup>(d));
    if (*m == WindowResult::kConflict) return wrong();
    return out;
  };
  using Kind = ExpectedRevision::Kind;
  switch (c.expected.kind) {
    case Kind::kStreamExists:
      if (!head) return wrong();
      [[fallthrough]];
    case Kind::kAny:
      if (ids.empty()) return out;
      return by_window();
    case Kind::kNoStream: {
      if (!head && !out.deleted) return out;
      if (ids.empty()) return head ? wrong() : out;
      // Deleted: a retry of the append that recreated it, while that still
      // left every event below the cut, is in the id window.
      if (!head) return by_window();
      // Recreated after a soft delete: its first revision followed the
      // deleted ones.
      return retry(match_at_revisions(c, rules ? rules->deleted_before : 0, ids));
    }
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

auto Store::Impl::writer_matches(const Query& q, std::uint64_t pos) const -> Result<bool> {
  if (const Pending* p = pending_at(pos)) {
    const engine::EventRecord& e = p->events[pos - p->first_position];
    return query_matches(q, e.type, e.tags);
  }
  bool match = false;
  Status st = log_->visit(GlobalPosition(pos), [&](const engine::RecordView& v) {
    match = !(v.flags & format::kFlagRemoved) && query_matches(q, v);
  });
  if (!st.is_ok()) return unconfirmed(pos, "an append condition", st);
  return match;
}

auto Store::Impl::first_conflict(const AppendCondition& cond, std::uint64_t next,
                                 std::uint64_t checked_through) const
    -> Result<std::optional<std::uint64_t>> {
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

auto Store::Impl::prepare_raw(engine::AppendRequest& req, GlobalPosition next) -> Decision {
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

auto Store::Impl::prepare(engine::AppendRequest& req, GlobalPosition next,
                          engine::AppendOutcome& outcome) -> Decision {
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
  if (c->lifecycle != AppendCtx::Lifecycle::kNone)
    if (auto d = prepare_deletion(req, *c, checks, outcome)) return *d;
  if (c->condition) {
    secondary_->track_recent();  // from the first condition on
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

auto Store::Impl::resolve_retry(const AppendCtx& c, std::vector<PartCheck>& checks,
                                engine::AppendOutcome& outcome) -> std::optional<Decision> {
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

auto Store::Impl::resolve_wrong(const AppendCtx& c, const std::vector<PartCheck>& checks,
                                engine::AppendOutcome& outcome) -> std::optional<Decision> {
  std::string message;
  bool any = false;
  for (std::size_t i = 0; i < c.parts.size(); ++i) {
    const bool failed = checks[i].kind == PartCheck::Kind::kWrong;
    // A soft-deleted stream's actual revision is "no stream".
    const std::optional<Head>& head = checks[i].head;
    const bool exists = head.has_value() && !checks[i].deleted;
    const std::optional<StreamRevision> actual =
        exists ? std::optional<StreamRevision>(StreamRevision(head->revision)) : std::nullopt;
    if (c.multi)
      outcome.streams.push_back(engine::AppendOutcome::StreamResult{
          StreamRevision(UINT64_MAX), 0, failed, failed ? actual : std::nullopt});
    if (!failed) continue;
    if (!any) outcome.actual_revision = actual;
    any = true;
    message +=
        fmt::format("{}stream '{}': expected revision {}, actual {}", message.empty() ? "" : "; ",
                    c.parts[i].stream, expected_text(c.parts[i].expected),
                    exists ? std::to_string(head->revision) : std::string("no stream"));
  }
  if (!any) {
    outcome.streams.clear();
    return std::nullopt;
  }
  outcome.status = Status(Errc::kWrongExpectedRevision, std::move(message));
  return Decision::kComplete;
}

void Store::Impl::write_parts(engine::AppendRequest& req, GlobalPosition next, const AppendCtx& c,
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
        secondary_->add(at + i, ts, part.stream, e.type, e.tags, e.correlation_id, e.causation_id);
      window_.insert(e.id, at + i);
    }
    heads_.put(part.key, Head{first_rev + part.count - 1, at + part.count - 1});
    std::vector<EventId> part_ids =
        one ? std::move(ids)
            : std::vector<EventId>(ids.begin() + part.first_event,
                                   ids.begin() + part.first_event + part.count);
    pending_.push_back(Pending{at, first_rev, part.stream, part.hash, part.key, head,
                               std::move(part_ids), &req.events[part.first_event]});
    if (is_metadata_stream(part.stream)) note_rule_events(req, part, at, first_rev);
  }
}

void Store::Impl::undo(const Pending& p) {
  for (std::size_t i = p.ids.size(); i-- > 0;) {
    core_->remove(IndexEntry{p.hash, p.first_revision + i, p.first_position + i});
    window_.erase(p.ids[i], p.first_position + i);
  }
  if (p.prev_head)
    heads_.put(p.key, *p.prev_head);
  else
    heads_.erase(p.key);
}

void Store::Impl::aborted(const engine::AppendRequest& req) {
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
  // The writer's rules: the readers' plus the changes still pending.
  while (!rule_changes_.empty() && rule_changes_.back().position >= first) rule_changes_.pop_back();
  writer_rules_ = *rules_snapshot();
  for (const RuleChange& rc : rule_changes_) writer_rules_[rc.stream] = rc.rules;
}

void Store::Impl::durable(GlobalPosition end) {
  if (!ready_) return;
  durable_end_ = end.value;
  while (!pending_.empty() &&
         pending_.front().first_position + pending_.front().ids.size() <= end.value)
    pending_.pop_front();
  core_->set_durable(end.value);
  if (secondary_) secondary_->set_durable(end.value);
  // DATA/lifecycle: soon after the rules changed, and every few million
  // events (it bounds the log an open folds).
  if ((lifecycle_dirty_ &&
       std::chrono::steady_clock::now() - lifecycle_written_ >= std::chrono::seconds(1)) ||
      end.value - lifecycle_through_ >= (std::uint64_t{1} << 22))
    persist_lifecycle(end.value);
  std::shared_ptr<const Listeners> ls;
  {
    std::lock_guard lock(listeners_mu_);
    ls = listeners_;
  }
  if (ls)
    for (const auto& [id, fn] : *ls) fn(end);
}

}  // namespace annal::index
