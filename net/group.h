#pragma once
// One consumer group on the node (internal to annal_net): the delivery state
// (groups::GroupState) driven on one strand: it reads the group's target
// from the log on the reading pool while its buffer has room, hands events
// to the joined consumers' connections, applies their acks and nacks, times
// out what is not acked, and writes its progress to its group file (every
// group_persist_period while it changes, and at stop). docs/consumer-groups.md.
//
// Thread safety: the public methods may be called from any thread; they
// post to the strand. info() reads a snapshot kept under a mutex.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "groups/group_file.h"
#include "groups/group_state.h"
#include "net/asio.h"
#include "net/notifier.h"
#include "proto/protocol.h"
#include "read/catch_up.h"

namespace annal::net::detail {

class Connection;
struct Shared;
struct Lane;

// Where a consumer's deliveries go: its connection and its join request id.
struct Member {
  std::weak_ptr<Connection> conn;
  std::uint64_t join_id = 0;
};

class Group : public std::enable_shared_from_this<Group> {
 public:
  // `file`: the group as created or as read at start.
  Group(Shared& shared, std::string dir, groups::GroupFile file, Lane& lane);
  ~Group();

  const std::string& name() const { return name_; }
  // Starts reading and the timer (after construction, once).
  void start();
  void join(std::uint64_t consumer, Member m, std::uint32_t max_in_flight);
  void leave(std::uint64_t consumer);
  void ack(std::vector<std::uint64_t> positions);
  void nack(groups::NackAction action, std::vector<std::uint64_t> positions, std::string reason);
  // Hands the parked events out again; `done` (on the strand) gets how many.
  void replay_parked(std::function<void(Result<std::uint64_t>)> done);
  // New settings (the caller checked that target, start and strategy are
  // unchanged); written to the group file before `done`.
  void update(groups::Settings s, std::function<void(Status)> done);
  // The group was deleted: memberships end with `why`, no file is written
  // again. Returns once no write of the file can follow.
  void close(proto::Error why);
  // The node stops: writes the progress one last time; returns when written.
  void flush_and_stop();

  // The group's figures as of its last step, with the lag against the
  // durable end now. info_async refreshes them on the strand first (after
  // everything posted before it, such as a connection's acks), then calls
  // `done` on the reading pool.
  proto::GroupInfo info() const;
  void info_async(std::function<void(proto::GroupInfo)> done);
  // A page of the parked list from `from` (on the strand).
  void parked_async(std::uint64_t from, std::uint32_t count,
                    std::function<void(proto::GroupParkedOk)> done);
  groups::Settings settings() const;
  // Why the group stopped delivering (a record it cannot read); empty if not.
  std::string failure() const;

 private:
  using Clock = std::chrono::steady_clock;
  void pump();
  void maybe_fetch();
  struct Fetched;
  void on_fetched(const std::shared_ptr<Fetched>& f);
  void fetch_replays(std::vector<std::uint64_t> positions);
  void deliver();
  void send_deliveries(std::vector<groups::GroupState::Delivery>& deliveries);
  void maybe_persist(bool now);
  Status write_file(const groups::GroupFile& g);
  groups::GroupFile file_now() const;
  void refresh_snapshot();
  asio::awaitable<void> ticker();
  Clock::time_point next_wake() const;

  Shared& shared_;
  const std::string dir_;
  const std::string name_;
  asio::strand<asio::io_context::executor_type> strand_;
  Lane& lane_;
  // strand only
  groups::Settings settings_;
  std::int64_t created_us_ = 0;
  groups::GroupState state_;
  read::Filter filter_;
  bool index_phase_ = true;
  bool fetching_ = false;
  bool persisting_ = false;
  bool stopped_ = false;
  std::string failure_;  // a fetch error: the group stops delivering until restart
  Clock::time_point last_persist_;
  std::map<std::uint64_t, Member> members_;
  std::shared_ptr<Waiter> waiter_ = std::make_shared<Waiter>();
  asio::steady_timer timer_;
  // any thread
  struct Lag {
    std::uint64_t cursor = 0;
    std::uint64_t unresolved = 0;
    std::int64_t checkpoint_timestamp_us = 0;
    std::int64_t oldest_unresolved_us = 0;
  };
  mutable std::mutex snap_mu_;
  proto::GroupInfo snap_;
  Lag lag_;
  std::string failure_snap_;
  std::mutex file_mu_;
  bool removed_ = false;  // under file_mu_
};

}  // namespace annal::net::detail
