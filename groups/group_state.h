#pragma once
// The delivery state of one consumer group, as a plain state machine (no
// threads, no I/O, no clock of its own): the events fetched from the group's
// target and not yet resolved, who holds which, the ordered strategy's
// per-key queues, retries, timeouts and the parked list, and the progress the
// group file keeps (docs/consumer-groups.md). The node drives it from one
// strand (net/group.h); tests drive it directly.
//
// An event is *resolved* once it is acked, skipped or parked. The group's
// *checkpoint* is the lowest position not known to be resolved: every event
// of the target below it is resolved, and those at or above it that are
// resolved already are listed in Progress::resolved, so a restart fetches
// from the checkpoint and skips them.
//
// Ordering (kOrdered): the events of one key (the stream) are delivered in
// position order, one at a time: an event is handed out only once every
// earlier event of its key that the group fetched is resolved. Retries,
// timeouts and a consumer leaving keep the key's turn with the same event.
//
// Thread safety: none; one caller at a time.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "groups/settings.h"

namespace annal::groups {

using Clock = std::chrono::steady_clock;

// One event of the group's target, as fetched from the log.
struct Event {
  std::uint64_t position = 0;
  std::uint64_t revision = 0;  // in its stream
  std::int64_t timestamp_us = 0;
  std::string key;   // the stream: the ordered strategy's key
  std::string wire;  // the event as sent to consumers (opaque here)
};

struct Parked {
  std::uint64_t position = 0;
  std::uint32_t failures = 0;
  bool replaying = false;  // handed out again by replay_parked, not yet resolved
  std::string reason;
};

// What survives a restart (the group file).
struct Progress {
  std::uint64_t checkpoint = 0;
  std::uint64_t checkpoint_revision = 0;           // stream groups: the revision to fetch from
  std::int64_t checkpoint_timestamp_us = 0;        // newest event resolved below the checkpoint
  std::map<std::uint64_t, std::int64_t> resolved;  // position -> timestamp, at/above checkpoint
  std::map<std::uint64_t, Parked> parked;
  std::uint64_t acked_total = 0;
  std::uint64_t parked_total = 0;
};

class GroupState {
 public:
  struct Options {
    Strategy strategy = Strategy::kRoundRobin;
    std::uint32_t max_retries = 10;
    std::chrono::milliseconds ack_timeout{30'000};
    std::chrono::milliseconds retry_delay{1'000};
    std::uint32_t max_batch = 256;  // events per delivery
  };
  static Options options_of(const Settings& s);

  explicit GroupState(Options o, Progress restored = {});
  // Settings changed (update): applies to deliveries from now on. The
  // strategy cannot change while events are held (the node refuses that).
  void set_options(Options o) { opts_ = o; }

  // ---- fetching ----
  // Where the next fetch starts: every event of the target below `position`
  // (below `revision` in a stream group) has been added.
  std::uint64_t cursor() const { return cursor_; }
  std::uint64_t cursor_revision() const { return cursor_rev_; }
  void set_cursor(std::uint64_t position, std::uint64_t revision);
  // False if the event at `position` is resolved already (a restart fetches
  // from the checkpoint and skips those).
  bool wants(std::uint64_t position) const;
  // An event at or above the cursor, in position order.
  void add(Event e);
  // An event handed out again from the parked list (replay_parked).
  void add_replayed(Event e);
  std::size_t buffered() const { return entries_.size(); }
  // Of those, the parked events handed out again.
  std::size_t replaying_buffered() const { return replay_count_; }
  std::size_t buffered_bytes() const { return bytes_; }

  // ---- consumers ----
  void join(std::uint64_t consumer, std::uint32_t max_in_flight);
  // Its events still held go back to be delivered again (not a failure).
  void leave(std::uint64_t consumer);
  std::size_t consumers() const { return consumers_.size(); }

  struct Item {
    std::uint64_t position = 0;
    std::uint32_t attempt = 0;  // 1 on the first delivery
    std::string_view wire;      // valid until the state changes
  };
  struct Delivery {
    std::uint64_t consumer = 0;
    std::vector<Item> items;
  };
  // Hands ready events to consumers with room, round robin over consumers.
  std::vector<Delivery> dispatch(Clock::time_point now);
  // The event held at `position` (nullptr if none): what a delivery checks
  // before it goes out.
  const Event* held(std::uint64_t position) const {
    auto it = entries_.find(position);
    return it == entries_.end() ? nullptr : &it->second.ev;
  }

  // Positions never delivered, or resolved already, are ignored (a late ack
  // after a redelivery, a duplicate). Each returns how many it resolved.
  std::size_t ack(std::span<const std::uint64_t> positions);
  std::size_t nack(NackAction action, std::span<const std::uint64_t> positions,
                   Clock::time_point now, std::string_view reason);
  // Ack timeouts and retry delays due by `now`.
  void tick(Clock::time_point now);
  // The earliest timeout or retry due, if any.
  std::optional<Clock::time_point> next_deadline() const;

  // ---- parked events ----
  const std::map<std::uint64_t, Parked>& parked() const { return progress_.parked; }
  // Marks every parked event not already replaying as replaying; the caller
  // reads them from the log and add_replayed()s them. Also what a restart
  // must re-read: replaying() lists every parked event marked so.
  std::vector<std::uint64_t> replay_parked();
  std::vector<std::uint64_t> replaying() const;

  // ---- progress ----
  std::uint64_t checkpoint() const;
  // The group file's contents now.
  Progress progress() const;
  // Set by every change of progress; the caller clears it once written.
  bool dirty() const { return dirty_; }
  void clear_dirty() { dirty_ = false; }
  void mark_dirty() { dirty_ = true; }
  std::uint64_t in_flight() const { return in_flight_; }
  std::uint64_t delivered_total() const { return delivered_total_; }
  const Progress& counters() const { return progress_; }
  // The oldest unresolved event's timestamp (0 if none), for lag.
  std::int64_t oldest_unresolved_timestamp() const;

 private:
  enum class State : std::uint8_t { kWaiting, kReady, kInFlight, kDelayed };
  struct Entry {
    Event ev;
    State state = State::kReady;
    bool replay = false;
    std::uint32_t deliveries = 0;
    std::uint32_t failures = 0;
    std::uint64_t holder = 0;
    Clock::time_point deadline;
    std::uint64_t next_waiting = kNoPosition;  // kOrdered: the key's next waiting event
  };
  static constexpr std::uint64_t kNoPosition = UINT64_MAX;
  // kOrdered: whether a key has an event ready, in flight or delayed, and
  // its later events waiting for their turn (a list through
  // Entry::next_waiting). Kept while the key is free, so a stream going busy
  // and free again allocates nothing; free keys are swept when there are
  // many (sweep_keys).
  struct KeyTurn {
    bool busy = false;
    std::uint64_t head = kNoPosition;
    std::uint64_t tail = kNoPosition;
  };
  struct Consumer {
    std::uint32_t max_in_flight = 0;
    std::uint32_t in_flight = 0;
  };
  enum class Resolution { kAcked, kSkipped, kParked };
  using Entries = std::map<std::uint64_t, Entry>;

  void insert(Event e, bool replay);
  void make_ready(std::uint64_t position, Entry& e);
  void release(Entry& e);  // out of ready_/timed_, credit back to its holder
  void fail(Entries::iterator it, Clock::time_point now, bool delayed, std::string_view reason);
  void resolve(Entries::iterator it, Resolution r, std::string_view reason);
  void prune();
  void sweep_keys();

  Options opts_;
  Progress progress_;
  std::uint64_t cursor_ = 0;
  std::uint64_t cursor_rev_ = 0;
  Entries entries_;
  std::size_t bytes_ = 0;
  std::set<std::uint64_t> ready_;
  // In flight or delayed, by deadline: a tick looks only at those due.
  std::set<std::pair<Clock::time_point, std::uint64_t>> timed_;
  std::unordered_map<std::string, KeyTurn> keys_;
  std::map<std::uint64_t, Consumer> consumers_;
  std::uint64_t next_turn_ = 0;  // round robin: the consumer id to start from
  std::uint64_t in_flight_ = 0;
  std::size_t replay_count_ = 0;
  std::uint64_t delivered_total_ = 0;
  bool dirty_ = false;
};

}  // namespace annal::groups
