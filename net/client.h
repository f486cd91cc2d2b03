#pragma once
// The annal client library: one TCP connection to an annald node speaking
// protocol v3 (docs/protocol.md), or an older version with a node that only
// speaks that (v1: events carry no tags or ids; before v3: no multi-stream
// appends, queries or conditions), with pipelining.
//
// Every request gets a fresh request id; responses are matched by id, so any
// number of threads may issue requests on one Client concurrently, and the
// *_async calls let one thread keep many requests in flight. The client never
// has more requests in flight than the node allows (HelloOk.max_in_flight):
// a request beyond that blocks in the calling thread until a slot frees.
//
// Thread safety: all methods are safe from any thread. Async callbacks run on
// the client's reader thread: they must not block and must not call the sync
// methods of the same Client (that would wait for the thread running them).
// A subscription's messages are queued (bounded); while a subscription's queue
// is full the reader thread waits, which back-pressures the node through TCP
// and also delays the other responses on this connection: use a separate
// Client for subscriptions that are consumed slowly.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "proto/protocol.h"

namespace annal::net {

// A value or a protocol error (code, detail, message).
template <typename T>
class [[nodiscard]] Reply {
 public:
  Reply(T value) : v_(std::move(value)) {}             // NOLINT(google-explicit-constructor)
  Reply(proto::Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const proto::Error& error() const { return std::get<proto::Error>(v_); }
  // "code_name (N): message"
  std::string error_string() const;

 private:
  std::variant<T, proto::Error> v_;
};

std::string error_string(const proto::Error& e);
template <typename T>
std::string Reply<T>::error_string() const {
  return ok() ? std::string("ok") : net::error_string(error());
}

struct ClientOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7411;
  std::string client_name = "annal-client";
  std::chrono::milliseconds connect_timeout{5000};
  // Messages buffered per subscription before the reader thread waits.
  std::size_t subscription_queue = 64;
  // The protocol version asked for; a node that only speaks an older one is
  // spoken to in that (hello().version says which).
  std::uint16_t protocol_version = proto::kProtocolVersion;
};

// Parses "HOST:PORT" (or "[v6]:PORT"); nullopt if malformed.
std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& text);

class Client;

// append_multi's answer: written (or recognised as a retry), or refused by an
// expectation or the condition (a refusal is an answer, not an error).
struct AppendMultiOutcome {
  std::optional<proto::AppendMultiOk> ok;
  std::optional<proto::AppendRefused> refused;
  bool written() const { return ok.has_value(); }
};

// A subscription on a Client's connection. Must not outlive its Client.
class Subscription {
 public:
  struct Message {
    enum class Kind { kEvents, kCheckpoint, kEnded };
    Kind kind = Kind::kEvents;
    std::vector<engine::EventRecord> events;  // kEvents
    std::vector<std::uint32_t> attempts;      // kEvents of a group: each event's delivery count
    std::uint64_t checkpoint = 0;             // kCheckpoint
    proto::Error error;                       // kEnded
  };

  ~Subscription();  // unsubscribes if still active
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  std::uint64_t id() const { return id_; }
  // SubscribeOk.start: the first revision/position that can be delivered.
  std::uint64_t start() const { return start_; }
  // The next message; nullopt on timeout. After kEnded, always kEnded.
  std::optional<Message> next(std::chrono::milliseconds timeout);
  // Asks the node to stop; messages after the acknowledgement are dropped.
  Reply<bool> unsubscribe();

  struct State;

 private:
  friend class Client;
  Subscription(Client* owner, std::uint64_t id, std::uint64_t start, std::shared_ptr<State> state);
  Client* owner_;
  std::uint64_t id_;
  std::uint64_t start_;
  std::shared_ptr<State> state_;
};

// v4: one consumer's membership of a consumer group (Client::group_join).
// Messages are kEvents (with attempts) until kEnded (the group was deleted,
// the node stops, the connection is lost). Must not outlive its Client.
class GroupMember {
 public:
  ~GroupMember();  // leaves if still joined
  GroupMember(const GroupMember&) = delete;
  GroupMember& operator=(const GroupMember&) = delete;

  std::uint64_t id() const { return sub_->id(); }
  // The group's checkpoint when joined.
  std::uint64_t start() const { return sub_->start(); }
  std::optional<Subscription::Message> next(std::chrono::milliseconds timeout) {
    return sub_->next(timeout);
  }
  // Resolve delivered events by position. One-way: the node answers only a
  // request it cannot apply, and ignores positions it does not hold.
  void ack(const std::vector<std::uint64_t>& positions);
  void nack(groups::NackAction action, const std::vector<std::uint64_t>& positions,
            const std::string& reason = {});
  // Leaves the group: events delivered and not resolved go to others.
  Reply<bool> leave() { return sub_->unsubscribe(); }

 private:
  friend class Client;
  GroupMember(Client* owner, std::unique_ptr<Subscription> sub)
      : owner_(owner), sub_(std::move(sub)) {}
  Client* owner_;
  std::unique_ptr<Subscription> sub_;
};

class Client {
 public:
  // Connects and performs the handshake.
  static Reply<std::unique_ptr<Client>> connect(const ClientOptions& options);
  ~Client();  // closes the connection; pending requests fail with connection_lost
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const proto::HelloOk& hello() const { return hello_; }

  using AppendCallback = std::function<void(Reply<proto::AppendOk>)>;
  using ReadCallback = std::function<void(Reply<proto::ReadOk>)>;

  void append_async(const proto::AppendReq& req, AppendCallback cb);
  void read_stream_async(const proto::ReadStreamReq& req, ReadCallback cb);
  void read_all_async(const proto::ReadAllReq& req, ReadCallback cb);
  // The same reads with the events decoded as views into the response's
  // bytes, valid only while the callback runs: no copy and no allocation per
  // event, for consumers that handle a page at once. RecordView::to_record()
  // copies one event out.
  using ReadViewCallback = std::function<void(Reply<proto::ReadOkView>)>;
  void read_stream_view_async(const proto::ReadStreamReq& req, ReadViewCallback cb);
  void read_all_view_async(const proto::ReadAllReq& req, ReadViewCallback cb);

  // v2: the events of one secondary index key (category, type, tag,
  // correlation or causation id); bad_request on a v1 connection.
  void read_index_async(const proto::ReadIndexReq& req, ReadCallback cb);
  void read_index_view_async(const proto::ReadIndexReq& req, ReadViewCallback cb);
  Reply<proto::ReadOk> read_index(const proto::ReadIndexReq& req);
  // v2: the first position written at or after `timestamp_us`.
  Reply<proto::SeekTimeOk> seek_time(std::int64_t timestamp_us);

  Reply<proto::AppendOk> append(const proto::AppendReq& req);
  // v3: several streams and/or a condition (docs/semantics.md). Errors other
  // than a refusal (bad_request, too_large, ...) are the Reply's error.
  using AppendMultiCallback = std::function<void(Reply<AppendMultiOutcome>)>;
  void append_multi_async(const proto::AppendMultiReq& req, AppendMultiCallback cb);
  Reply<AppendMultiOutcome> append_multi(const proto::AppendMultiReq& req);
  // v3: the events matching a query; read_ok's durable_end - 1 is the head a
  // condition's `after` takes (see docs/semantics.md for paging).
  void read_query_async(const proto::ReadQueryReq& req, ReadCallback cb);
  Reply<proto::ReadOk> read_query(const proto::ReadQueryReq& req);
  Reply<proto::ReadOk> read_stream(const proto::ReadStreamReq& req);
  Reply<proto::ReadOk> read_all(const proto::ReadAllReq& req);
  Reply<proto::InfoOk> info();
  Reply<bool> ping();
  Reply<std::unique_ptr<Subscription>> subscribe(const proto::SubscribeReq& req);

  // v4: consumer groups and named consumers (docs/consumer-groups.md);
  // bad_request on an older connection. net/client_groups.cc.
  Reply<proto::GroupOk> group_create(const std::string& name, const groups::Settings& settings,
                                     bool update = false);
  Reply<proto::GroupOk> group_delete(const std::string& name);
  Reply<std::vector<proto::GroupInfo>> group_list();
  Reply<proto::GroupInfo> group_info(const std::string& name);
  // The parked list, a page from position `from` (count 0: the node's page).
  Reply<proto::GroupParkedOk> group_parked(const std::string& name, std::uint64_t from = 0,
                                           std::uint32_t count = 0);
  // How many parked events were handed out again.
  Reply<std::uint64_t> group_replay_parked(const std::string& name);
  // max_in_flight 0: the group's setting.
  Reply<std::unique_ptr<GroupMember>> group_join(const std::string& name,
                                                 std::uint32_t max_in_flight = 0);
  // A named consumer's checkpoint, stored durably before the reply.
  Reply<bool> checkpoint_save(const std::string& name, std::uint64_t position);
  // nullopt: no checkpoint of that name.
  Reply<std::optional<std::uint64_t>> checkpoint_load(const std::string& name);

  // v5: stream metadata and deletion (docs/semantics.md; net/client_lifecycle.cc).
  Reply<proto::StreamMetadataOk> stream_metadata(const std::string& stream);
  // append_ok of the metadata event; `expected` is the metadata stream's.
  Reply<proto::AppendOk> set_stream_metadata(const std::string& stream, ExpectedRevision expected,
                                             const std::string& json);
  Reply<proto::DeleteOk> delete_stream(const std::string& stream, ExpectedRevision expected,
                                       bool hard = false);
  // Runs a scavenge on the node and waits for its report (throttled by the
  // node's --scavenge-mb-per-s: minutes for a large log).
  Reply<proto::ScavengeOk> scavenge();
  // v6: takes a backup of the node's data directory into `dest`, a path on
  // the node's machine (docs/operations.md, "Backup and restore"), and waits
  // until it is complete (throttled: minutes for a large log).
  // bytes_per_second 0: the node's default (--backup-mb-per-s).
  Reply<proto::BackupOk> backup(const std::string& dest, bool link = false,
                                std::uint64_t bytes_per_second = 0);
  // Snapshots (docs/semantics.md, "Snapshots").
  Reply<proto::SnapshotSaved> snapshot_save(const std::string& stream, std::uint64_t revision,
                                            const std::string& type, const std::string& data);
  // The newest snapshot at or below max_revision, and up to `count` events
  // after it (a stream read from its latest snapshot).
  Reply<proto::SnapshotOk> snapshot_read(const std::string& stream,
                                         std::uint64_t max_revision = proto::kNone,
                                         std::uint32_t count = 0);

  // Requests sent and not yet answered.
  std::size_t in_flight() const;
  // False once the connection is gone.
  bool connected() const;
  // Waits until every request sent has been answered (or failed) and its
  // callback has returned.
  void drain();

  class Impl;

 private:
  friend class Subscription;
  friend class GroupMember;
  // Subscribes with an already-encoded request (subscribe, group_join).
  Reply<std::unique_ptr<Subscription>> subscribe_with(
      const std::function<std::string(std::uint64_t)>& build);
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  proto::HelloOk hello_;
};

}  // namespace annal::net
