// Connection: subscribe, unsubscribe, and each subscription's loop: take a
// step (read/catch_up.h) on the reading pool whenever the durable end is
// ahead of the cursor or the index phase is not done, deliver it when the
// write queue has room, otherwise wait for a commit's wake-up or the
// checkpoint period.
#include <fmt/format.h>

#include <array>

#include "index/append_validate.h"
#include "net/connection.h"

namespace annal::net::detail {
namespace {

using asio::redirect_error;
using asio::use_awaitable;

}  // namespace

void Connection::handle_subscribe(std::uint64_t id, std::string_view payload) {
  auto m = proto::decode_subscribe(payload, version_);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (m->target == proto::Target::kStream &&
      (!m->stream_prefix.empty() || !m->type_prefix.empty())) {
    send_error(id, proto::Code::kBadRequest,
               "subscribe: stream_prefix and type_prefix apply only to target all (1)");
    return;
  }
  if (m->target == proto::Target::kIndex &&
      (!m->stream.empty() || !m->stream_prefix.empty() || !m->type_prefix.empty())) {
    send_error(id, proto::Code::kBadRequest,
               "subscribe: target index (2) takes index_kind and index_value, not a stream or "
               "prefixes");
    return;
  }
  if (m->target == proto::Target::kQuery && (!m->stream.empty() || !m->stream_prefix.empty() ||
                                             !m->type_prefix.empty() || !m->index_value.empty())) {
    send_error(id, proto::Code::kBadRequest,
               "subscribe: target query (3) takes a query, not a stream, prefixes or an index "
               "key");
    return;
  }
  if (m->target != proto::Target::kQuery && !m->query.items.empty()) {
    send_error(id, proto::Code::kBadRequest, "subscribe: a query applies only to target query (3)");
    return;
  }
  if (m->target == proto::Target::kQuery) {
    index::normalise_query(m->query);
    Status st = index::validate_query(m->query, index::query_limits(shared_->store.limits()));
    if (!st.is_ok()) {
      send_error(id, proto::code_from_errc(st.code()), "subscribe: " + st.message());
      return;
    }
  }
  if (subs_.count(id)) {
    // The live subscription with this id goes on; this error carries its id.
    send_error(id, proto::Code::kBadRequest,
               fmt::format("subscription id {} is already in use on this connection", id));
    return;
  }
  if (subs_.size() >= shared_->options.max_subscriptions) {
    send_error(
        id, proto::Code::kTooManySubscriptions,
        fmt::format("at most {} subscriptions per connection", shared_->options.max_subscriptions));
    return;
  }
  auto sub = std::make_shared<Subscription>(strand_);
  sub->id = id;
  sub->req = std::move(m.value());
  switch (sub->req.target) {
    case proto::Target::kStream:
      sub->filter.target = read::Target::kStream;
      break;
    case proto::Target::kAll:
      sub->filter.target = read::Target::kAll;
      break;
    case proto::Target::kIndex:
      sub->filter.target = read::Target::kIndex;
      break;
    case proto::Target::kQuery:
      sub->filter.target = read::Target::kQuery;
      sub->filter.query = sub->req.query;
      break;
  }
  sub->filter.stream = sub->req.stream;
  sub->filter.stream_prefix = sub->req.stream_prefix;
  sub->filter.type_prefix = sub->req.type_prefix;
  sub->filter.index_kind = sub->req.index_kind;
  sub->filter.index_value = sub->req.index_value;
  sub->filter.category_separator = shared_->store.category_separator();
  sub->checkpoint_interval = sub->req.checkpoint_interval ? sub->req.checkpoint_interval
                                                          : shared_->options.checkpoint_interval;
  sub->last_checkpoint = Clock::now();
  const auto& log = shared_->store.log();
  std::uint64_t start = 0;
  if (sub->req.target == proto::Target::kAll) {
    sub->next_pos = sub->req.from_end ? log.durable_end() : GlobalPosition(sub->req.from);
    start = sub->next_pos.value;
  } else if (sub->req.target == proto::Target::kIndex || sub->req.target == proto::Target::kQuery) {
    // Catch-up through the secondary index, then the log filtered by the key
    // (or the query).
    sub->next_pos = sub->req.from_end ? log.durable_end() : GlobalPosition(sub->req.from);
    sub->index_phase = !sub->req.from_end;
    start = sub->next_pos.value;
  } else if (sub->req.from_end) {
    // Live only: every event of the stream from the current end of the log.
    sub->next_pos = log.durable_end();
    auto last = shared_->store.last_revision(sub->req.stream);
    sub->next_rev = last.is_ok() ? last->value + 1 : 0;
    start = sub->next_rev;
  } else {
    sub->index_phase = true;
    sub->next_rev = sub->req.from;
    start = sub->next_rev;
  }
  std::weak_ptr<Subscription> weak = sub;
  sub->waiter->inbox = lane_->wakes.get();
  sub->waiter->wake = [weak]() {
    if (auto s = weak.lock()) s->timer.cancel();
  };
  shared_->notifier.add(sub->waiter);
  subs_[id] = sub;
  if (shared_->metrics.enabled) {
    sub->publish_progress();
    sub->on_board = std::make_unique<BoardHold>(&shared_->metrics.subscriptions, &sub->progress);
    sub->open = GaugeHold(&shared_->metrics.subscriptions_active);
    shared_->metrics.subscriptions_total.fetch_add(1, std::memory_order_relaxed);
  }
  send(proto::encode_subscribe_ok(id, proto::SubscribeOk{start}));
  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self, sub]() { return self->run_subscription(sub); },
      log_exceptions("subscription"));
}

void Connection::handle_unsubscribe(std::uint64_t id, std::string_view payload) {
  auto m = proto::decode_unsubscribe(payload);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (leave_group(m->subscription_id)) {
    send(proto::encode_empty(proto::Op::kUnsubscribeOk, id));
    return;
  }
  auto it = subs_.find(m->subscription_id);
  if (it == subs_.end() || it->second->cancelled) {
    send_error(id, proto::Code::kUnknownSubscription,
               fmt::format("no active subscription {} on this connection", m->subscription_id));
    return;
  }
  end_subscription(*it->second);
  // Nothing of that subscription is sent after this frame.
  send(proto::encode_empty(proto::Op::kUnsubscribeOk, id));
}

void Connection::end_subscription(Subscription& sub) {
  sub.cancelled = true;
  sub.waiter->armed.store(false);
  shared_->notifier.remove(sub.waiter);
  sub.timer.cancel();
}

asio::awaitable<std::shared_ptr<const Batch>> Connection::next_batch(const Subscription& sub,
                                                                     GlobalPosition end) {
  read::Filter f = sub.filter;
  f.min_rev = sub.next_rev;
  const bool index_phase = sub.index_phase;
  const GlobalPosition from = sub.next_pos;
  const std::uint64_t max_scan = sub.max_scan();
  read::PageLimits limits;
  limits.max_count = shared_->options.max_read_count;
  limits.max_bytes = shared_->options.max_read_bytes;
  // Live subscribers of the global log with one filter share the step.
  const bool shareable = !index_phase && f.target == read::Target::kAll;
  const std::uint64_t rules = shared_->store.rules_version();
  LiveCache<Batch>::Key key;
  if (shareable) {
    key = {version_, f.stream_prefix, f.type_prefix, max_scan, from.value, rules};
    if (auto cached = shared_->live.find(key)) co_return cached;
  }
  auto fresh = std::make_shared<Batch>(version_);
  fresh->rules_version = rules;
  if (shareable && end.value - from.value <= kInlineLiveScan) {
    // A live step: a few positions just made durable, in memory. Scanned
    // here, so the subscribers of this thread that follow find it cached
    // instead of each queuing the same scan on the reading pool.
    fresh->step = read::scan_log(shared_->store, f, from, end, max_scan, limits, fresh->events);
    if (fresh->step.status.is_ok()) shared_->live.insert(key, fresh, fresh->events.bytes());
    co_return fresh;
  }
  // The pool work captures only pointers and scalars: GCC 12 has bugs
  // destroying non-trivial temporaries inside co_await expressions twice.
  Batch* out = fresh.get();
  const read::Filter* fp = &f;
  const index::Store* sp = &shared_->store;
  const read::PageLimits* lp = &limits;
  auto work = [sp, fp, lp, out, index_phase, from, end, max_scan]() -> asio::awaitable<void> {
    if (!index_phase)
      out->step = read::scan_log(*sp, *fp, from, end, max_scan, *lp, out->events);
    else if (fp->target == read::Target::kIndex || fp->target == read::Target::kQuery)
      out->step = read::read_index_key(*sp, *fp, from, *lp, out->events);
    else
      out->step = read::read_index(*sp, fp->stream, fp->min_rev, *lp, out->events);
    co_return;
  };
  co_await asio::co_spawn(shared_->reads, std::move(work), use_awaitable);
  if (shareable && fresh->step.status.is_ok())
    shared_->live.insert(key, fresh, fresh->events.bytes());
  co_return fresh;
}

void Connection::deliver(Subscription& sub, const std::shared_ptr<const Batch>& batch) {
  const Batch& b = *batch;
  if (b.events.count() > 0) {
    // The batch's bytes are shared by every subscriber it goes to; only the
    // head (this subscription's id and the count) is this connection's own.
    const proto::SubEventsOf<proto::EncodedEvents> m{{b.events.count(), b.events.events()}};
    std::array<char, OutFrame::kSmall> head;
    const std::size_t n = proto::frame_head_size(m, version_);
    proto::write_frame_head(sub.id, m, head.data(), version_);
    send_shared(std::span<const char>(head.data(), n), batch, b.events.events());
  }
  const read::Step& s = b.step;
  sub.next_rev = s.next_rev;
  if (sub.index_phase &&
      (sub.filter.target == read::Target::kIndex || sub.filter.target == read::Target::kQuery)) {
    // Secondary index pages move the position like log steps do.
    sub.next_pos = s.next;
    sub.unreported = b.events.count() > 0 ? s.scanned_after_last_event : sub.unreported + s.scanned;
    if (s.index_done) sub.index_phase = false;
  } else if (sub.index_phase) {
    if (s.index_done) {
      sub.index_phase = false;
      sub.next_pos = s.next;
    }
  } else {
    sub.next_pos = s.next;
    sub.unreported = b.events.count() > 0 ? s.scanned_after_last_event : sub.unreported + s.scanned;
  }
  if (sub.on_board) sub.publish_progress();
}

void Connection::maybe_checkpoint(Subscription& sub) {
  if (!sub.filtered() || sub.unreported == 0) return;
  if (sub.unreported < sub.checkpoint_interval &&
      Clock::now() - sub.last_checkpoint < shared_->options.checkpoint_period)
    return;
  send(proto::encode_checkpoint(sub.id, proto::Checkpoint{sub.next_pos.value}));
  sub.unreported = 0;
  sub.last_checkpoint = Clock::now();
}

asio::awaitable<void> Connection::run_subscription(std::shared_ptr<Subscription> sub) {
  const auto& log = shared_->store.log();
  while (!sub->cancelled && !closed_) {
    co_await wait_for_room(sub.get());
    if (sub->cancelled || closed_) break;
    // Arm before looking at the durable end, so a commit in between wakes us.
    sub->waiter->armed.store(true);
    const GlobalPosition end = log.durable_end();
    if (sub->index_phase || sub->next_pos < end) {
      sub->waiter->armed.store(false);
      std::shared_ptr<const Batch> b = co_await next_batch(*sub, end);
      if (sub->cancelled || closed_) break;
      if (!b->step.status.is_ok()) {
        send_error(sub->id, proto::code_from_errc(b->step.status.code()), b->step.status.message());
        end_subscription(*sub);
        break;
      }
      // A metadata or deletion event became durable while it was read: its
      // removals must hold for what is sent from now on, so read it again.
      if (b->rules_version != shared_->store.rules_version()) continue;
      deliver(*sub, b);
    } else {
      sub->timer.expires_after(shared_->options.checkpoint_period);
      boost::system::error_code ec;
      co_await sub->timer.async_wait(redirect_error(use_awaitable, ec));
      sub->waiter->armed.store(false);
      if (sub->cancelled || closed_) break;
    }
    maybe_checkpoint(*sub);
  }
  shared_->notifier.remove(sub->waiter);
  auto it = subs_.find(sub->id);
  if (it != subs_.end() && it->second == sub) subs_.erase(it);
}

}  // namespace annal::net::detail
