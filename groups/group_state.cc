#include "groups/group_state.h"

#include <algorithm>

namespace annal::groups {

GroupState::Options GroupState::options_of(const Settings& s) {
  Options o;
  o.strategy = s.strategy;
  o.max_retries = s.max_retries;
  o.ack_timeout = std::chrono::milliseconds(s.ack_timeout_ms);
  o.retry_delay = std::chrono::milliseconds(s.retry_delay_ms);
  return o;
}

GroupState::GroupState(Options o, Progress restored)
    : opts_(o),
      progress_(std::move(restored)),
      cursor_(progress_.checkpoint),
      cursor_rev_(progress_.checkpoint_revision) {}

void GroupState::set_cursor(std::uint64_t position, std::uint64_t revision) {
  cursor_ = std::max(cursor_, position);
  cursor_rev_ = std::max(cursor_rev_, revision);
  prune();
}

bool GroupState::wants(std::uint64_t position) const {
  return position >= progress_.checkpoint && !progress_.resolved.count(position) &&
         !entries_.count(position);
}

void GroupState::add(Event e) {
  const std::uint64_t pos = e.position;
  const std::uint64_t rev = e.revision;
  if (!wants(pos)) return;
  insert(std::move(e), false);
  cursor_ = std::max(cursor_, pos + 1);
  cursor_rev_ = std::max(cursor_rev_, rev + 1);
}

void GroupState::add_replayed(Event e) {
  auto p = progress_.parked.find(e.position);
  if (p == progress_.parked.end() || !p->second.replaying || entries_.count(e.position)) return;
  insert(std::move(e), true);
}

void GroupState::insert(Event e, bool replay) {
  const std::uint64_t pos = e.position;
  bytes_ += e.wire.size() + e.key.size();
  Entry& entry = entries_[pos];
  entry.ev = std::move(e);
  entry.replay = replay;
  if (replay) ++replay_count_;
  if (opts_.strategy == Strategy::kOrdered) {
    if (keys_.size() > 4 * entries_.size() + 1024) sweep_keys();
    KeyTurn& turn = keys_[entry.ev.key];
    if (turn.busy) {
      // The key's turn is taken: wait behind its earlier events.
      entry.state = State::kWaiting;
      if (turn.tail == kNoPosition)
        turn.head = pos;
      else
        entries_.at(turn.tail).next_waiting = pos;
      turn.tail = pos;
      return;
    }
    turn.busy = true;
  }
  make_ready(pos, entry);
}

void GroupState::make_ready(std::uint64_t position, Entry& e) {
  e.state = State::kReady;
  ready_.insert(position);
}

void GroupState::join(std::uint64_t consumer, std::uint32_t max_in_flight) {
  consumers_[consumer] = Consumer{std::max<std::uint32_t>(1, max_in_flight), 0};
}

void GroupState::leave(std::uint64_t consumer) {
  if (!consumers_.erase(consumer)) return;
  for (auto it = timed_.begin(); it != timed_.end();) {
    Entry& e = entries_.at(it->second);
    if (e.state == State::kInFlight && e.holder == consumer) {
      --in_flight_;
      e.holder = 0;
      make_ready(it->second, e);
      it = timed_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<GroupState::Delivery> GroupState::dispatch(Clock::time_point now) {
  std::vector<Delivery> out;
  while (!ready_.empty() && !consumers_.empty()) {
    // The consumer with the most room takes the next batch (ties: the next
    // in turn after the last served), so ready events go out in as few
    // frames as possible: a consumer that just acked a batch takes the
    // events its acks released. Faster consumers ack sooner and get more.
    auto it = consumers_.lower_bound(next_turn_);
    std::uint64_t id = 0;
    Consumer* c = nullptr;
    std::uint32_t room = 0;
    for (std::size_t n = 0; n < consumers_.size(); ++n, ++it) {
      if (it == consumers_.end()) it = consumers_.begin();
      Consumer& k = it->second;
      const std::uint32_t r = k.in_flight < k.max_in_flight ? k.max_in_flight - k.in_flight : 0;
      if (r > room) {
        room = r;
        id = it->first;
        c = &k;
      }
    }
    if (!c) break;
    Delivery& d = out.emplace_back(Delivery{id, {}});
    for (std::uint32_t k = 0; k < std::min(room, opts_.max_batch) && !ready_.empty(); ++k) {
      const std::uint64_t pos = *ready_.begin();
      ready_.erase(ready_.begin());
      Entry& e = entries_.at(pos);
      e.state = State::kInFlight;
      e.holder = id;
      e.deadline = now + opts_.ack_timeout;
      ++e.deliveries;
      timed_.emplace(e.deadline, pos);
      ++c->in_flight;
      ++in_flight_;
      ++delivered_total_;
      d.items.push_back(Item{pos, e.deliveries, e.ev.wire});
    }
    next_turn_ = id + 1;
  }
  return out;
}

void GroupState::release(Entry& e) {
  const std::uint64_t pos = e.ev.position;
  switch (e.state) {
    case State::kReady:
      ready_.erase(pos);
      break;
    case State::kInFlight: {
      timed_.erase({e.deadline, pos});
      --in_flight_;
      auto c = consumers_.find(e.holder);
      if (c != consumers_.end() && c->second.in_flight > 0) --c->second.in_flight;
      e.holder = 0;
      break;
    }
    case State::kDelayed:
      timed_.erase({e.deadline, pos});
      break;
    case State::kWaiting:
      break;
  }
}

std::size_t GroupState::ack(std::span<const std::uint64_t> positions) {
  std::size_t n = 0;
  for (std::uint64_t pos : positions) {
    auto it = entries_.find(pos);
    if (it == entries_.end() || it->second.deliveries == 0) continue;
    resolve(it, Resolution::kAcked, {});
    ++n;
  }
  return n;
}

std::size_t GroupState::nack(NackAction action, std::span<const std::uint64_t> positions,
                             Clock::time_point now, std::string_view reason) {
  std::size_t n = 0;
  for (std::uint64_t pos : positions) {
    auto it = entries_.find(pos);
    if (it == entries_.end() || it->second.deliveries == 0) continue;
    switch (action) {
      case NackAction::kRetry:
        fail(it, now, false, reason);
        break;
      case NackAction::kRetryLater:
        fail(it, now, true, reason);
        break;
      case NackAction::kPark:
        resolve(it, Resolution::kParked, reason);
        break;
      case NackAction::kSkip:
        resolve(it, Resolution::kSkipped, {});
        break;
    }
    ++n;
  }
  return n;
}

void GroupState::fail(Entries::iterator it, Clock::time_point now, bool delayed,
                      std::string_view reason) {
  Entry& e = it->second;
  if (e.state == State::kWaiting) return;  // never delivered in this turn
  release(e);
  ++e.failures;
  if (e.failures > opts_.max_retries) {
    resolve(it, Resolution::kParked,
            reason.empty() ? std::string_view("maximum retries reached") : reason);
    return;
  }
  if (delayed) {
    e.state = State::kDelayed;
    e.deadline = now + opts_.retry_delay;
    timed_.emplace(e.deadline, it->first);
  } else {
    make_ready(it->first, e);
  }
}

void GroupState::resolve(Entries::iterator it, Resolution r, std::string_view reason) {
  Entry& e = it->second;
  const std::uint64_t pos = it->first;
  release(e);
  if (opts_.strategy == Strategy::kOrdered && e.state != State::kWaiting) {
    // The key's turn passes to its next waiting event.
    auto k = keys_.find(e.ev.key);
    if (k != keys_.end()) {
      KeyTurn& turn = k->second;
      if (turn.head == kNoPosition) {
        turn.busy = false;
      } else {
        const std::uint64_t next = turn.head;
        Entry& n = entries_.at(next);
        turn.head = n.next_waiting;
        if (turn.head == kNoPosition) turn.tail = kNoPosition;
        n.next_waiting = kNoPosition;
        make_ready(next, n);
      }
    }
  }
  if (r == Resolution::kParked) {
    Parked& p = progress_.parked[pos];
    p.position = pos;
    p.failures = e.failures;
    p.replaying = false;
    p.reason.assign(reason);
    ++progress_.parked_total;
  } else {
    if (e.replay) progress_.parked.erase(pos);
    ++progress_.acked_total;
  }
  if (!e.replay) progress_.resolved[pos] = e.ev.timestamp_us;
  bytes_ -= e.ev.wire.size() + e.ev.key.size();
  if (e.replay) --replay_count_;
  entries_.erase(it);
  dirty_ = true;
  prune();
}

void GroupState::tick(Clock::time_point now) {
  while (!timed_.empty() && timed_.begin()->first <= now) {
    const std::uint64_t pos = timed_.begin()->second;
    auto it = entries_.find(pos);
    if (it->second.state == State::kDelayed) {
      timed_.erase(timed_.begin());
      make_ready(pos, it->second);
    } else {
      fail(it, now, false, "ack timeout");  // takes it out of timed_
    }
  }
}

std::optional<Clock::time_point> GroupState::next_deadline() const {
  if (timed_.empty()) return std::nullopt;
  return timed_.begin()->first;
}

std::vector<std::uint64_t> GroupState::replay_parked() {
  std::vector<std::uint64_t> out;
  for (auto& [pos, p] : progress_.parked) {
    if (p.replaying) continue;
    p.replaying = true;
    p.failures = 0;
    out.push_back(pos);
  }
  if (!out.empty()) dirty_ = true;
  return out;
}

std::vector<std::uint64_t> GroupState::replaying() const {
  std::vector<std::uint64_t> out;
  for (const auto& [pos, p] : progress_.parked)
    if (p.replaying && !entries_.count(pos)) out.push_back(pos);
  return out;
}

std::uint64_t GroupState::checkpoint() const {
  for (const auto& [pos, e] : entries_)
    if (!e.replay) return pos;
  return cursor_;
}

void GroupState::sweep_keys() {
  std::erase_if(keys_, [](const auto& kv) { return !kv.second.busy; });
}

void GroupState::prune() {
  const std::uint64_t cp = checkpoint();
  auto& resolved = progress_.resolved;
  while (!resolved.empty() && resolved.begin()->first < cp) {
    progress_.checkpoint_timestamp_us = resolved.begin()->second;
    resolved.erase(resolved.begin());
  }
  if (cp != progress_.checkpoint) {
    progress_.checkpoint = cp;
    dirty_ = true;
  }
}

Progress GroupState::progress() const {
  Progress p = progress_;
  p.checkpoint = checkpoint();
  p.checkpoint_revision = cursor_rev_;
  for (const auto& [pos, e] : entries_)
    if (!e.replay) {
      p.checkpoint_revision = e.ev.revision;
      break;
    }
  return p;
}

std::int64_t GroupState::oldest_unresolved_timestamp() const {
  for (const auto& [pos, e] : entries_)
    if (!e.replay) return e.ev.timestamp_us;
  return 0;
}

}  // namespace annal::groups
