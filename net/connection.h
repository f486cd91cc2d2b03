#pragma once
// One client connection of the server (internal to annal_net): the frame
// reader, the bounded write queue, request handlers and subscriptions.
//
// Thread safety: every member is touched only on the connection's strand,
// except what is marked atomic. Work for the log-reading pool copies what it
// needs and posts its result back to the strand.

#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "index/store.h"
#include "net/asio.h"
#include "net/inbox.h"
#include "net/live_cache.h"
#include "net/protocol.h"
#include "net/server.h"

namespace annal::net::detail {

// A subscription waiting for new durable events. `wake` posts to the owning
// strand; it is called at most once per arming.
struct Waiter {
  std::atomic<bool> armed{false};
  std::function<void()> wake;                       // runs on the subscription's network thread
  Inbox<std::shared_ptr<Waiter>>* inbox = nullptr;  // that thread's wake-up inbox
};

// Events read for a response or a subscription batch.
struct Batch {
  Status status;
  std::string events;  // encoded events
  std::uint32_t count = 0;
  GlobalPosition next;         // log phase: next position to scan
  std::uint64_t next_rev = 0;  // stream subscriptions: next revision wanted
  std::uint64_t scanned = 0;   // log phase: positions scanned
  std::uint64_t scanned_after_last_event = 0;
  bool index_done = false;  // index phase: caught up with the index
};

class Connection;

// An append's outcome on its way from the log writer to its connection.
struct Ack {
  std::shared_ptr<Connection> conn;
  std::uint64_t id = 0;
  std::size_t bytes = 0;
  engine::AppendOutcome outcome;
};

// What the log writer hands to one network thread: acknowledgements and
// subscription wake-ups, each one post per group commit (not one per append
// or per subscriber).
struct Lane {
  asio::io_context* io = nullptr;
  std::unique_ptr<Inbox<Ack>> acks;
  std::unique_ptr<Inbox<std::shared_ptr<Waiter>>> wakes;
};

// Fans the store's durable-end notifications out to armed waiters.
// Thread safety: all methods may be called from any thread.
class DurableNotifier {
 public:
  void notify(GlobalPosition end);
  void add(const std::shared_ptr<Waiter>& w);
  void remove(const std::shared_ptr<Waiter>& w);
  // After close() no waiter is ever woken again (the I/O context may be gone).
  void close();

 private:
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::shared_ptr<Waiter>> waiters_;
};

// What every connection shares with the server.
struct Shared {
  index::Store& store;
  ServerOptions options;
  asio::thread_pool::executor_type reads;  // the pool is owned by the server
  DurableNotifier notifier;
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<bool> stopping{false};
  std::atomic<std::uint32_t> open_connections{0};
  // One per network thread, filled by the server before it accepts.
  std::vector<Lane> lanes;
  LiveCache<Batch> live;  // batches live subscribers share

  // The lane of the io_context behind `ex` (a connection's strand).
  Lane& lane_of(const asio::any_io_executor& ex);

  Shared(index::Store& s, ServerOptions o, asio::thread_pool::executor_type r)
      : store(s), options(std::move(o)), reads(r) {}
};

struct Subscription;

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

  std::uint64_t id() const { return id_; }
  // On the connection's network thread (from its lane): answers an append.
  void finish_append(const Ack& ack);
  std::uint32_t in_flight() const { return in_flight_count_.load(); }
  bool closed() const { return closed_flag_.load(); }

 private:
  asio::awaitable<void> reader();
  asio::awaitable<void> writer();
  asio::awaitable<void> watchdog();
  asio::awaitable<void> run_subscription(std::shared_ptr<Subscription> sub);
  asio::awaitable<void> wait_for_room(const Subscription* sub);

  void dispatch(const proto::FrameHeader& h, std::string payload);
  void handle_hello(std::uint64_t id, std::string_view payload);
  void handle_append(std::uint64_t id, std::string_view payload);
  void handle_read_stream(std::uint64_t id, std::string_view payload);
  void handle_read_all(std::uint64_t id, std::string_view payload);
  void handle_subscribe(std::uint64_t id, std::string_view payload);
  void handle_unsubscribe(std::uint64_t id, std::string_view payload);
  void handle_info(std::uint64_t id);

  void send(std::string frame);
  void send_error(std::uint64_t id, proto::Code code, std::string message,
                  std::uint64_t detail = proto::kNone);
  void fail_and_close(std::uint64_t id, proto::Code code, std::string message);
  void end_subscription(Subscription& sub);
  void close();
  void request_started(std::size_t bytes = 0);
  void request_finished(std::size_t bytes = 0);
  bool has_room() const;
  // Validates every JSON-flagged payload; an error names the event index.
  bool validate_json(std::uint64_t id, const proto::AppendReq& req);

  std::shared_ptr<Shared> shared_;
  tcp::socket socket_;
  asio::any_io_executor strand_;  // the socket's executor: a strand
  Lane* lane_;                    // of the network thread the strand runs on
  std::uint64_t id_;
  std::string peer_;

  bool handshaken_ = false;
  bool closed_ = false;
  bool shutting_down_ = false;
  bool close_when_drained_ = false;
  std::atomic<bool> closed_flag_{false};
  std::atomic<std::uint32_t> in_flight_count_{0};
  std::uint32_t in_flight_ = 0;
  std::size_t in_flight_bytes_ = 0;  // append payloads not yet answered
  std::chrono::steady_clock::time_point last_activity_;

  std::deque<std::string> out_;
  std::size_t out_bytes_ = 0;
  asio::steady_timer write_cv_;  // wakes the writer
  asio::steady_timer room_cv_;   // wakes those waiting for write-queue room
  asio::steady_timer watchdog_timer_;

  std::map<std::uint64_t, std::shared_ptr<Subscription>> subs_;

  simdjson::dom::parser json_parser_;
  std::vector<char> json_buf_;
};

}  // namespace annal::net::detail
