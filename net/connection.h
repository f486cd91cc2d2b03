#pragma once
// One client connection of the server (internal to annal_net): the socket,
// its frame reader and bounded write queue, the idle watchdog, and the
// request handlers, each role in its own file:
//   connection.cc    socket I/O, write queue, watchdog, lifecycle
//   dispatch.cc      handshake, routing by op, ping and info
//   append.cc        appends and their acknowledgements
//   reads.cc         read_stream, read_all, read_index (paging rules in read/paging.h)
//                    and seek_time
//   subscription.cc  subscribe, unsubscribe and the catch-up→live loop
//
// Thread safety: every member is touched only on the connection's strand,
// except what is marked atomic. Work for the log-reading pool copies what it
// needs and posts its result back to the strand.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include "net/asio.h"
#include "net/group.h"
#include "net/json_check.h"
#include "net/shared.h"
#include "net/subscription.h"
#include "net/wire_sink.h"
#include "proto/protocol.h"
#include "read/paging.h"

namespace annal::net::detail {

// One frame waiting to be written: `small` (inline, at most kSmall bytes: an
// append's answer, or the head of a shared batch), then `head`, then `body`
// (bytes shared with other connections, kept alive by `owner`). Answering an
// append or delivering a shared batch allocates nothing.
struct OutFrame {
  static constexpr std::size_t kSmall = 48;
  std::array<char, kSmall> small;
  std::uint8_t small_size = 0;
  std::string head;
  std::shared_ptr<const void> owner;
  std::string_view body;
  std::size_t size() const { return small_size + head.size() + body.size(); }
};

// A co_spawn completion handler that logs an escaped exception as `what`.
std::function<void(std::exception_ptr)> log_exceptions(std::string what);

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Shared> shared, tcp::socket socket, std::uint64_t id);
  ~Connection();

  // Spawns the reader, writer and idle watchdog on the strand.
  void start();
  // Sends one error frame and closes after it is written (used when refusing).
  void refuse(proto::Code code, const std::string& message);
  // On the strand (posts itself): end subscriptions, refuse new requests.
  void begin_shutdown();
  // On the strand (posts itself): close once the write queue is drained.
  void close_after_flush();
  // Closes immediately (posts itself to the strand).
  void close_now();
  // On the strand (posts itself): answers every append still waiting for
  // durability with shutting_down, outcome unknown (the stop grace ran out).
  void abandon_appends(std::chrono::milliseconds waited);

  std::uint64_t id() const { return id_; }
  // On the connection's network thread (from its lane): answers an append.
  void finish_append(const Ack& ack);
  // From a group's strand (posts itself): one group_events frame for the
  // membership `join_id`, dropped if it has ended; and the end of a
  // membership with an error frame (the group was deleted or failed).
  void push_group_frame(std::uint64_t join_id, std::string frame);
  void end_group_member(std::uint64_t join_id, proto::Error why);
  std::uint32_t in_flight() const { return in_flight_count_.load(); }
  bool closed() const { return closed_flag_.load(); }

 private:
  using Clock = std::chrono::steady_clock;

  // connection.cc
  void enable_keepalive();
  asio::awaitable<void> reader();
  asio::awaitable<void> writer();
  asio::awaitable<void> watchdog();
  asio::awaitable<void> wait_for_room(const Subscription* sub);
  void send(std::string frame);
  // Queues a frame of at most OutFrame::kSmall bytes, copied inline.
  void send_small(std::span<const char> frame);
  // Queues `head` (at most OutFrame::kSmall bytes, copied inline) then
  // `body` (owned by `owner`, shared with others) as one frame.
  void send_shared(std::span<const char> head, std::shared_ptr<const void> owner,
                   std::string_view body);
  void send_error(std::uint64_t id, proto::Code code, std::string message,
                  std::uint64_t detail = proto::kNone);
  void fail_and_close(std::uint64_t id, proto::Code code, std::string message);
  void close();
  void request_started(std::size_t bytes = 0);
  void request_finished(std::size_t bytes = 0);
  bool has_room() const;
  // A request beyond max_in_flight is answered too_many_requests (true).
  bool refuse_if_too_many(std::uint64_t id);

  // dispatch.cc
  void dispatch(const proto::FrameHeader& h, std::string_view payload);
  void handle_hello(std::uint64_t id, std::string_view payload);
  void handle_info(std::uint64_t id, std::string_view payload);
  // v4 group operations; false if `op` is not one.
  bool dispatch_group(proto::Op op, std::uint64_t id, std::string_view payload);
  // v5: stream metadata and deletion (net/lifecycle.cc).
  bool dispatch_lifecycle(proto::Op op, std::uint64_t id, std::string_view payload);
  void handle_stream_metadata(std::uint64_t id, std::string_view payload);
  void handle_set_stream_metadata(std::uint64_t id, std::string_view payload);
  void handle_delete_stream(std::uint64_t id, std::string_view payload);
  void handle_scavenge(std::uint64_t id, std::string_view payload);
  void handle_snapshot_save(std::uint64_t id, std::string_view payload);
  void handle_snapshot_read(std::uint64_t id, std::string_view payload);
  // v6: backup (net/backup.cc).
  void handle_backup(std::uint64_t id, std::string_view payload);
  void answer_on_strand(std::string frame);

  // append.cc
  void handle_append(std::uint64_t id, std::string_view payload);
  void handle_append_multi(std::uint64_t id, std::string_view payload);  // v3
  void finish_append_multi(const Ack& ack);

  // reads.cc
  void handle_read_stream(std::uint64_t id, std::string_view payload);
  void handle_read_all(std::uint64_t id, std::string_view payload);
  void handle_read_index(std::uint64_t id, std::string_view payload);  // v2
  void handle_seek_time(std::uint64_t id, std::string_view payload);   // v2
  void handle_read_query(std::uint64_t id, std::string_view payload);  // v3
  void post_page(std::uint64_t id, const read::Page& page, std::shared_ptr<WireSink> events);
  template <class M, class Fetch>
  void serve_page(std::uint64_t id, std::string_view payload, Fetch fetch);

  // subscription.cc
  void handle_subscribe(std::uint64_t id, std::string_view payload);
  void handle_unsubscribe(std::uint64_t id, std::string_view payload);
  asio::awaitable<void> run_subscription(std::shared_ptr<Subscription> sub);
  asio::awaitable<std::shared_ptr<const Batch>> next_batch(const Subscription& sub,
                                                           GlobalPosition end);
  void deliver(Subscription& sub, const std::shared_ptr<const Batch>& b);
  void maybe_checkpoint(Subscription& sub);
  void end_subscription(Subscription& sub);

  // groups.cc (v4)
  void handle_group_create(std::uint64_t id, std::string_view payload);
  void handle_group_delete(std::uint64_t id, std::string_view payload);
  void handle_group_list(std::uint64_t id, std::string_view payload);
  void handle_group_info(std::uint64_t id, std::string_view payload);
  void handle_group_join(std::uint64_t id, std::string_view payload);
  void handle_group_ack(std::uint64_t id, std::string_view payload);
  void handle_group_nack(std::uint64_t id, std::string_view payload);
  void handle_group_replay_parked(std::uint64_t id, std::string_view payload);
  void handle_checkpoint_save(std::uint64_t id, std::string_view payload);
  void handle_checkpoint_load(std::uint64_t id, std::string_view payload);
  void handle_group_parked(std::uint64_t id, std::string_view payload);
  template <class M>
  std::optional<M> decode_group_request(std::uint64_t id, std::string_view payload);
  template <class M>
  std::optional<std::pair<M, std::shared_ptr<Group>>> membership_request(std::uint64_t id,
                                                                         std::string_view payload);
  // Runs `work(registry)` (which may write files) on the reading pool and
  // sends the frame it returns.
  template <class Work>
  void on_pool(Work work);
  bool leave_group(std::uint64_t join_id);  // false: no such membership
  void leave_groups();

  std::shared_ptr<Shared> shared_;
  tcp::socket socket_;
  asio::any_io_executor strand_;  // the socket's executor: a strand
  Lane* lane_;                    // of the network thread the strand runs on
  std::uint64_t id_;
  std::string peer_;

  bool handshaken_ = false;
  // The protocol version the hello asked for (kMinProtocolVersion ..
  // kProtocolVersion): how events are encoded and decoded on this connection.
  std::uint16_t version_ = proto::kProtocolVersion;
  bool closed_ = false;
  bool shutting_down_ = false;
  bool close_when_drained_ = false;
  std::atomic<bool> closed_flag_{false};
  std::atomic<std::uint32_t> in_flight_count_{0};
  std::uint32_t in_flight_ = 0;
  std::size_t in_flight_bytes_ = 0;  // append payloads not yet answered
  // Appends handed to the store and not yet answered: request id -> payload
  // bytes (ids are the client's, so they may repeat).
  // In the order sent; answers come back in that order, so the one looked
  // for is almost always the first.
  struct PendingAppend {
    std::uint64_t id;
    std::size_t bytes;
    std::chrono::steady_clock::time_point started{};  // for the append latency metric
  };
  std::deque<PendingAppend> pending_appends_;
  Clock::time_point last_activity_;

  std::deque<OutFrame> out_;
  std::size_t out_bytes_ = 0;
  asio::steady_timer write_cv_;  // wakes the writer
  asio::steady_timer room_cv_;   // wakes those waiting for write-queue room
  asio::steady_timer watchdog_timer_;

  std::map<std::uint64_t, std::shared_ptr<Subscription>> subs_;
  // Group memberships by join request id (groups.cc).
  struct GroupJoin {
    std::shared_ptr<Group> group;
    std::uint64_t consumer = 0;
  };
  std::map<std::uint64_t, GroupJoin> joins_;
  JsonCheck json_;
};

}  // namespace annal::net::detail
