#include "net/group.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <future>

#include "engine/endian.h"
#include "engine/format.h"
#include "net/connection.h"
#include "net/shared.h"

namespace annal::net::detail {
namespace {

using asio::redirect_error;
using asio::use_awaitable;

// A group holds at most this many fetched, unresolved events (and bytes):
// beyond, it stops reading and the log is the buffer, so a stalled consumer
// costs the node no more memory.
constexpr std::size_t kMaxBuffered = 4096;
constexpr std::size_t kMaxBufferedBytes = 16u << 20;
constexpr std::size_t kFetchBatch = 1024;
// The group's timer sleeps until the next timeout, retry delay or due
// progress write, and at most this long (its figures for group_list).
constexpr auto kIdleTick = std::chrono::seconds(1);

// Collects a fetch step's events as groups::Event, each encoded for the
// wire once (protocol v4, the only version that joins groups).
class EventCollector final : public read::EventSink {
 public:
  std::size_t size_of(const engine::RecordView& v) const override {
    return 4 + proto::event_wire_size(shown(v));
  }
  void add(const engine::RecordView& v) override {
    groups::Event e;
    e.position = v.position.value;
    e.revision = v.revision.value;
    e.timestamp_us = v.timestamp_us;
    e.key.assign(v.stream);
    proto::append_event(e.wire, shown(v));
    bytes_ += 4 + e.wire.size();
    events.push_back(std::move(e));
  }
  std::size_t bytes() const override { return bytes_; }
  std::uint32_t count() const override { return static_cast<std::uint32_t>(events.size()); }
  std::vector<groups::Event> events;

 private:
  // A lost entry (repair marker) goes out with only its position and flags.
  static engine::RecordView shown(const engine::RecordView& v) {
    if (!(v.flags & engine::format::kFlagLost)) return v;
    engine::RecordView m;
    m.position = v.position;
    m.flags = v.flags;
    return m;
  }
  std::size_t bytes_ = 0;
};

std::int64_t wall_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Group::Fetched {
  read::Step step;
  EventCollector events;
  bool index_phase = false;
};

Group::Group(Shared& shared, std::string dir, groups::GroupFile file, Lane& lane)
    : shared_(shared),
      dir_(std::move(dir)),
      name_(file.name),
      strand_(asio::make_strand(*lane.io)),
      lane_(lane),
      settings_(file.settings),
      created_us_(file.created_us ? file.created_us : wall_now_us()),
      state_(groups::GroupState::options_of(file.settings), std::move(file.progress)),
      timer_(strand_) {
  switch (settings_.target) {
    case groups::Target::kStream:
      filter_.target = read::Target::kStream;
      break;
    case groups::Target::kAll:
      filter_.target = read::Target::kAll;
      index_phase_ = false;
      break;
    case groups::Target::kIndex:
      filter_.target = read::Target::kIndex;
      break;
  }
  filter_.stream = settings_.stream;
  filter_.stream_prefix = settings_.stream_prefix;
  filter_.type_prefix = settings_.type_prefix;
  filter_.index_kind = settings_.index_kind;
  filter_.index_value = settings_.index_value;
  filter_.category_separator = shared_.store.category_separator();
  refresh_snapshot();
}

Group::~Group() = default;

void Group::start() {
  std::weak_ptr<Group> weak = weak_from_this();
  waiter_->inbox = lane_.wakes.get();
  waiter_->wake = [weak, strand = strand_]() {
    asio::post(strand, [weak] {
      if (auto g = weak.lock()) g->pump();
    });
  };
  shared_.notifier.add(waiter_);
  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self]() { return self->ticker(); }, log_exceptions("group " + name_));
  asio::post(strand_, [self] {
    self->last_persist_ = Clock::now();
    if (auto replay = self->state_.replaying(); !replay.empty())
      self->fetch_replays(std::move(replay));
    self->pump();
  });
}

asio::awaitable<void> Group::ticker() {
  while (!stopped_) {
    timer_.expires_at(next_wake());
    boost::system::error_code ec;
    co_await timer_.async_wait(redirect_error(use_awaitable, ec));
    if (stopped_) break;
    pump();
    // group_list's figures: at most a second old (group_info refreshes them).
    refresh_snapshot();
  }
}

Group::Clock::time_point Group::next_wake() const {
  Clock::time_point t = Clock::now() + kIdleTick;
  if (auto d = state_.next_deadline()) t = std::min(t, *d);
  if (state_.dirty() && !persisting_)
    t = std::min(t, last_persist_ + shared_.options.group_persist_period);
  return t;
}

void Group::pump() {
  if (stopped_) return;
  state_.tick(Clock::now());
  deliver();
  maybe_fetch();
  maybe_persist(false);
  // Something became due sooner than the timer is set for (a delivery with a
  // short ack timeout, progress to write): the ticker re-arms.
  if (next_wake() < timer_.expiry()) timer_.cancel();
}

void Group::maybe_fetch() {
  if (fetching_ || stopped_ || !failure_.empty()) return;
  // Read again once a good part of the buffer is free, not for every
  // event resolved: each step is a round trip through the reading pool.
  if (state_.buffered() > kMaxBuffered - kFetchBatch ||
      state_.buffered_bytes() >= kMaxBufferedBytes)
    return;
  const auto& log = shared_.store.log();
  // Arm before looking at the durable end, so a commit in between wakes us.
  waiter_->armed.store(true);
  const GlobalPosition end = log.durable_end();
  if (!index_phase_ && state_.cursor() >= end.value) return;
  waiter_->armed.store(false);
  fetching_ = true;
  auto f = std::make_shared<Fetched>();
  f->index_phase = index_phase_;
  read::Filter filter = filter_;
  filter.min_rev = state_.cursor_revision();
  const GlobalPosition from(state_.cursor());
  read::PageLimits limits;
  limits.max_count =
      std::min<std::uint64_t>(shared_.options.max_read_count, kMaxBuffered - state_.buffered());
  limits.max_bytes = shared_.options.max_read_bytes;
  asio::post(shared_.reads, [self = shared_from_this(), f, filter = std::move(filter), from, end,
                             limits] {
    const index::Store& store = self->shared_.store;
    if (!f->index_phase)
      f->step = read::scan_log(store, filter, from, end, read::kMaxScanPerStep, limits, f->events);
    else if (filter.target == read::Target::kIndex)
      f->step = read::read_index_key(store, filter, from, limits, f->events);
    else
      f->step = read::read_index(store, filter.stream, filter.min_rev, limits, f->events);
    asio::post(self->strand_, [self, f] { self->on_fetched(f); });
  });
}

void Group::on_fetched(const std::shared_ptr<Fetched>& f) {
  fetching_ = false;
  if (stopped_) return;
  const read::Step& s = f->step;
  if (!s.status.is_ok()) {
    // A record that cannot be read is never skipped: the group stops
    // handing out events and says why (info, joins, its members).
    failure_ = fmt::format("group '{}' cannot read its target: {}", name_, s.status.message());
    spdlog::error("{}", failure_);
    const proto::Error why{proto::code_from_errc(s.status.code()), proto::kNone, failure_};
    for (auto& [consumer, m] : members_)
      if (auto c = m.conn.lock()) c->end_group_member(m.join_id, why);
    for (auto& [consumer, m] : members_) state_.leave(consumer);
    members_.clear();
    refresh_snapshot();
    return;
  }
  std::uint64_t last = 0;
  bool any = false;
  for (auto& e : f->events.events) {
    last = e.position;
    any = true;
    state_.add(std::move(e));
  }
  if (f->index_phase && filter_.target == read::Target::kStream) {
    if (any) state_.set_cursor(last + 1, s.next_rev);
    state_.set_cursor(state_.cursor(), s.next_rev);
    if (s.index_done) {
      index_phase_ = false;
      state_.set_cursor(s.next.value, s.next_rev);
    }
  } else {
    state_.set_cursor(s.next.value, s.next_rev);
    if (f->index_phase && s.index_done) index_phase_ = false;
  }
  pump();
}

void Group::fetch_replays(std::vector<std::uint64_t> positions) {
  auto self = shared_from_this();
  asio::post(shared_.reads, [self, positions = std::move(positions)] {
    auto got = std::make_shared<EventCollector>();
    auto failed = std::make_shared<std::vector<std::string>>();
    for (std::uint64_t p : positions) {
      Status st = self->shared_.store.log().visit(
          GlobalPosition(p), [&](const engine::RecordView& v) { got->add(v); });
      if (!st.is_ok()) failed->push_back(fmt::format("position {}: {}", p, st.message()));
    }
    asio::post(self->strand_, [self, got, failed] {
      for (const std::string& why : *failed)
        spdlog::error("group '{}': a parked event cannot be read to replay it: {}", self->name_,
                      why);
      for (auto& e : got->events) self->state_.add_replayed(std::move(e));
      self->pump();
    });
  });
}

void Group::deliver() {
  if (members_.empty()) return;
  // Events removed by their stream's metadata or deletion since they were
  // read are resolved here, never handed out (docs/semantics.md): a
  // dispatch that met some is taken again, with the room they freed.
  for (;;) {
    auto deliveries = state_.dispatch(Clock::now());
    if (deliveries.empty()) return;
    const index::Removal removal = shared_.store.removal();
    std::vector<std::uint64_t> removed;
    if (!removal.none()) {
      for (auto& d : deliveries)
        std::erase_if(d.items, [&](const groups::GroupState::Item& item) {
          const groups::Event* e = state_.held(item.position);
          if (e == nullptr || !removal.removed(e->key, e->revision, e->timestamp_us)) return false;
          removed.push_back(item.position);
          return true;
        });
    }
    send_deliveries(deliveries);
    if (removed.empty()) return;
    state_.ack(removed);
  }
}

void Group::send_deliveries(std::vector<groups::GroupState::Delivery>& deliveries) {
  for (auto& d : deliveries) {
    if (d.items.empty()) continue;
    auto m = members_.find(d.consumer);
    std::shared_ptr<Connection> conn;
    if (m != members_.end()) conn = m->second.conn.lock();
    if (!conn) {
      // Gone without leaving (cannot happen in order, but never strand them).
      state_.leave(d.consumer);
      if (m != members_.end()) members_.erase(m);
      continue;
    }
    std::string body;
    std::size_t size = 0;
    for (const auto& item : d.items) size += 4 + item.wire.size();
    body.reserve(size);
    for (const auto& item : d.items) {
      char attempt[4];
      engine::le::put_u32(reinterpret_cast<std::byte*>(attempt), item.attempt);
      body.append(attempt, 4);
      body.append(item.wire);
    }
    const proto::GroupEventsOf<proto::EncodedEvents> msg{
        {static_cast<std::uint32_t>(d.items.size()), body}};
    conn->push_group_frame(m->second.join_id, proto::encode(m->second.join_id, msg));
  }
}

void Group::join(std::uint64_t consumer, Member m, std::uint32_t max_in_flight) {
  asio::post(strand_, [self = shared_from_this(), consumer, m, max_in_flight] {
    if (self->stopped_) {
      // Deleted (or the node stops) between the join's lookup and now: the
      // membership ends as the group's other members' did.
      if (auto c = m.conn.lock())
        c->end_group_member(m.join_id,
                            proto::Error{proto::Code::kNotFound, proto::kNone,
                                         fmt::format("group '{}' was deleted", self->name_)});
      return;
    }
    if (!self->failure_.empty()) {
      if (auto c = m.conn.lock())
        c->end_group_member(m.join_id,
                            proto::Error{proto::Code::kCorruption, proto::kNone, self->failure_});
      return;
    }
    self->members_[consumer] = m;
    self->state_.join(consumer, max_in_flight ? max_in_flight : self->settings_.max_in_flight);
    self->pump();
  });
}

void Group::leave(std::uint64_t consumer) {
  asio::post(strand_, [self = shared_from_this(), consumer] {
    self->members_.erase(consumer);
    self->state_.leave(consumer);
    self->pump();
  });
}

void Group::ack(std::vector<std::uint64_t> positions) {
  asio::post(strand_, [self = shared_from_this(), positions = std::move(positions)] {
    self->state_.ack(positions);
    self->pump();
  });
}

void Group::nack(groups::NackAction action, std::vector<std::uint64_t> positions,
                 std::string reason) {
  asio::post(strand_, [self = shared_from_this(), action, positions = std::move(positions),
                       reason = std::move(reason)] {
    self->state_.nack(action, positions, Clock::now(), reason);
    self->pump();
  });
}

void Group::replay_parked(std::function<void(Result<std::uint64_t>)> done) {
  asio::post(strand_, [self = shared_from_this(), done = std::move(done)] {
    auto positions = self->state_.replay_parked();
    const std::uint64_t n = positions.size();
    if (n) self->fetch_replays(std::move(positions));
    self->maybe_persist(true);
    self->refresh_snapshot();
    done(n);
  });
}

void Group::update(groups::Settings s, std::function<void(Status)> done) {
  asio::post(strand_, [self = shared_from_this(), s = std::move(s), done = std::move(done)] {
    self->settings_ = s;
    self->state_.set_options(groups::GroupState::options_of(s));
    const groups::GroupFile g = self->file_now();
    asio::post(self->shared_.reads, [self, g, done] {
      Status st = self->write_file(g);
      asio::post(self->strand_, [self, st, done] {
        self->refresh_snapshot();
        done(st);
      });
    });
  });
}

void Group::close(proto::Error why) {
  {
    std::lock_guard lk(file_mu_);
    removed_ = true;
  }
  asio::post(strand_, [self = shared_from_this(), why = std::move(why)] {
    self->stopped_ = true;
    self->timer_.cancel();
    self->shared_.notifier.remove(self->waiter_);
    for (auto& [consumer, m] : self->members_)
      if (auto c = m.conn.lock()) c->end_group_member(m.join_id, why);
    self->members_.clear();
  });
}

void Group::flush_and_stop() {
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  asio::post(strand_, [self = shared_from_this(), done] {
    self->stopped_ = true;
    self->timer_.cancel();
    self->shared_.notifier.remove(self->waiter_);
    const Status st = self->write_file(self->file_now());
    if (!st.is_ok())
      spdlog::error("group '{}': cannot write its progress at stop: {}", self->name_, st.message());
    done->set_value();
  });
  fut.wait();
}

void Group::maybe_persist(bool now) {
  if (persisting_ || (!state_.dirty() && !now)) return;
  if (!now && Clock::now() - last_persist_ < shared_.options.group_persist_period) return;
  persisting_ = true;
  state_.clear_dirty();
  const groups::GroupFile g = file_now();
  asio::post(shared_.reads, [self = shared_from_this(), g] {
    const Status st = self->write_file(g);
    asio::post(self->strand_, [self, st] {
      self->persisting_ = false;
      self->last_persist_ = Clock::now();
      // Progress that changed while this was written is due a period later.
      if (self->next_wake() < self->timer_.expiry()) self->timer_.cancel();
      if (!st.is_ok()) {
        // Kept dirty: tried again next period. Progress not written is
        // redelivered after a crash, never skipped.
        spdlog::error("group '{}': cannot write its progress: {}", self->name_, st.message());
        self->state_.mark_dirty();
      }
    });
  });
}

Status Group::write_file(const groups::GroupFile& g) {
  std::lock_guard lk(file_mu_);
  if (removed_) return Status::ok();
  return groups::write_group_file(engine::FileSystem::posix(), dir_, g);
}

groups::GroupFile Group::file_now() const {
  groups::GroupFile g;
  g.kind = groups::Kind::kGroup;
  g.name = name_;
  g.settings = settings_;
  g.created_us = created_us_;
  g.progress = state_.progress();
  return g;
}

void Group::refresh_snapshot() {
  proto::GroupInfo i;
  i.kind = groups::Kind::kGroup;
  i.name = name_;
  i.settings = settings_;
  i.checkpoint = state_.checkpoint();
  i.consumers = static_cast<std::uint32_t>(members_.size());
  i.in_flight = state_.in_flight();
  i.buffered = state_.buffered();
  i.parked = state_.parked().size();
  i.acked_total = state_.counters().acked_total;
  i.parked_total = state_.counters().parked_total;
  i.delivered_total = state_.delivered_total();
  Lag l;
  l.cursor = state_.cursor();
  l.checkpoint_timestamp_us = state_.counters().checkpoint_timestamp_us;
  l.oldest_unresolved_us = state_.oldest_unresolved_timestamp();
  l.unresolved = state_.buffered() - state_.replaying_buffered();
  std::lock_guard lk(snap_mu_);
  snap_ = std::move(i);
  lag_ = l;
  failure_snap_ = failure_;
}

void Group::info_async(std::function<void(proto::GroupInfo)> done) {
  asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
    if (!self->stopped_) self->refresh_snapshot();
    // The lag reads the head record: on the reading pool, like any read.
    asio::post(self->shared_.reads, [self, done = std::move(done)] { done(self->info()); });
  });
}

void Group::parked_async(std::uint64_t from, std::uint32_t count,
                         std::function<void(proto::GroupParkedOk)> done) {
  asio::post(strand_, [self = shared_from_this(), from, count, done = std::move(done)] {
    proto::GroupParkedOk page;
    const auto& parked = self->state_.parked();
    for (auto it = parked.lower_bound(from); it != parked.end(); ++it) {
      if (page.parked.size() == count) {
        page.next = it->first;
        break;
      }
      page.parked.push_back(
          {it->first, it->second.failures, it->second.replaying, it->second.reason});
    }
    done(std::move(page));
  });
}

proto::GroupInfo Group::info() const {
  proto::GroupInfo i;
  Lag l;
  {
    std::lock_guard lk(snap_mu_);
    i = snap_;
    l = lag_;
  }
  const engine::Log& log = shared_.store.log();
  i.durable_end = log.durable_end().value;
  i.lag_events = l.unresolved + (i.durable_end > l.cursor ? i.durable_end - l.cursor : 0);
  if (i.lag_events > 0 && i.durable_end > 0) {
    std::int64_t head = 0;
    if (log.visit(GlobalPosition(i.durable_end - 1),
                  [&](const engine::RecordView& v) { head = v.timestamp_us; })
            .is_ok()) {
      const std::int64_t base =
          l.checkpoint_timestamp_us ? l.checkpoint_timestamp_us : l.oldest_unresolved_us;
      i.lag_us = base && head > base ? head - base : 0;
    }
  }
  return i;
}

groups::Settings Group::settings() const {
  std::lock_guard lk(snap_mu_);
  return snap_.settings;
}

std::string Group::failure() const {
  std::lock_guard lk(snap_mu_);
  return failure_snap_;
}

}  // namespace annal::net::detail
