#include "net/connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/format.h"

namespace annal::net::detail {
namespace {

using Clock = std::chrono::steady_clock;
using asio::redirect_error;
using asio::use_awaitable;

// Positions a subscription scans in one slice of work, matching or not, so a
// filtered subscription over a long log yields to others and checkpoints.
constexpr std::uint64_t kMaxScanPerBatch = 4096;
// Events per read_stream call while filling one batch.
constexpr std::uint64_t kStreamChunk = 64;

constexpr std::uint32_t kAllowedEventFlags =
    engine::format::kFlagDataJson | engine::format::kFlagMetadataJson;

}  // namespace

// ---------------------------------------------------------------------------
// DurableNotifier

void DurableNotifier::notify(GlobalPosition) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  for (const auto& w : waiters_)
    if (w->armed.exchange(false)) w->inbox->push(w);
}

void DurableNotifier::add(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  if (!closed_) waiters_.push_back(w);
}

void DurableNotifier::remove(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  std::erase(waiters_, w);
}

void DurableNotifier::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  waiters_.clear();
}

// ---------------------------------------------------------------------------
// Subscriptions

struct Subscription {
  std::uint64_t id = 0;
  proto::SubscribeReq req;
  bool cancelled = false;
  // Stream subscriptions catch up through the stream index first, then follow
  // the global log filtered by stream name and revision.
  bool index_phase = false;
  std::uint64_t next_rev = 0;
  GlobalPosition next_pos;
  std::uint64_t unreported = 0;  // positions scanned since the last event or checkpoint
  std::uint64_t checkpoint_interval = 0;
  Clock::time_point last_checkpoint;
  asio::steady_timer timer;
  std::shared_ptr<Waiter> waiter = std::make_shared<Waiter>();

  explicit Subscription(const asio::any_io_executor& ex) : timer(ex) {}
  bool filtered() const {
    return req.target == proto::Target::kAll &&
           (!req.stream_prefix.empty() || !req.type_prefix.empty());
  }
};

namespace {

struct Filter {
  proto::Target target = proto::Target::kAll;
  std::string stream;         // kStream
  std::uint64_t min_rev = 0;  // kStream
  std::string stream_prefix;
  std::string type_prefix;

  bool matches(const engine::RecordView& v) const {
    const bool lost = (v.flags & engine::format::kFlagLost) != 0;
    if (target == proto::Target::kStream)
      return !lost && v.stream == stream && v.revision.value >= min_rev;
    if (stream_prefix.empty() && type_prefix.empty()) return true;  // lost entries too
    return !lost && v.stream.starts_with(stream_prefix) && v.type.starts_with(type_prefix);
  }
};

// Runs on the reading pool.
Batch scan_log(const engine::Log& log, const Filter& f, GlobalPosition from, GlobalPosition end,
               std::uint32_t max_count, std::size_t max_bytes) {
  Batch b;
  b.next = from;
  b.next_rev = f.min_rev;
  std::uint64_t limit = std::min<std::uint64_t>(end.value - from.value, kMaxScanPerBatch);
  b.status = log.scan_forward(from, limit, [&](const engine::RecordView& v) {
    b.next = v.position.next();
    ++b.scanned;
    ++b.scanned_after_last_event;
    if (!f.matches(v)) return true;
    proto::append_event(b.events, v);
    ++b.count;
    b.scanned_after_last_event = 0;
    if (f.target == proto::Target::kStream) b.next_rev = v.revision.value + 1;
    return b.count < max_count && b.events.size() < max_bytes;
  });
  return b;
}

// Runs on the reading pool.
Batch read_index(const index::Store& store, const std::string& stream, std::uint64_t from_rev,
                 std::uint32_t max_count, std::size_t max_bytes) {
  Batch b;
  b.next_rev = from_rev;
  // Anything of the stream at or beyond this position may be missing from the
  // index reads below; the log phase starts here (revision-filtered).
  const GlobalPosition log_end = store.log().durable_end();
  while (true) {
    std::uint64_t want = std::min<std::uint64_t>(kStreamChunk, max_count - b.count);
    auto r =
        store.read_stream(stream, StreamRevision(b.next_rev), want, index::Direction::kForward);
    if (!r.is_ok()) {
      if (r.status().code() == Errc::kStreamNotFound) {
        b.index_done = true;
        break;
      }
      b.status = r.status();
      return b;
    }
    for (const auto& e : r.value()) {
      proto::append_event(b.events, e);
      ++b.count;
      b.next_rev = e.revision.value + 1;
    }
    if (r.value().size() < want) {
      b.index_done = true;
      break;
    }
    if (b.count >= max_count || b.events.size() >= max_bytes) break;
  }
  b.next = log_end;
  return b;
}

}  // namespace

Lane& Shared::lane_of(const asio::any_io_executor& ex) {
  auto& ctx = asio::query(ex, asio::execution::context);
  for (auto& l : lanes)
    if (static_cast<asio::execution_context*>(l.io) == &ctx) return l;
  ANNAL_CHECK(false, "a connection on an io_context the server does not run");
  return lanes.front();
}

// ---------------------------------------------------------------------------
// Connection

Connection::Connection(std::shared_ptr<Shared> shared, tcp::socket socket, std::uint64_t id)
    : shared_(std::move(shared)),
      socket_(std::move(socket)),
      strand_(socket_.get_executor()),
      lane_(&shared_->lane_of(strand_)),
      id_(id),
      last_activity_(Clock::now()),
      write_cv_(strand_, Clock::time_point::max()),
      room_cv_(strand_, Clock::time_point::max()),
      watchdog_timer_(strand_) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("?") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  socket_.set_option(tcp::no_delay(true), ec);
  shared_->open_connections.fetch_add(1);
}

Connection::~Connection() {
  if (!closed_) shared_->open_connections.fetch_sub(1);
}

namespace {
auto log_exceptions(std::string what) {
  return [what = std::move(what)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("{}: {}", what, ex.what());
    }
  };
}
}  // namespace

void Connection::start() {
  auto self = shared_from_this();
  spdlog::debug("connection {} from {}", id_, peer_);
  asio::co_spawn(
      strand_, [self]() { return self->reader(); }, log_exceptions("reader"));
  asio::co_spawn(
      strand_, [self]() { return self->writer(); }, log_exceptions("writer"));
  asio::co_spawn(
      strand_, [self]() { return self->watchdog(); }, log_exceptions("watchdog"));
}

void Connection::refuse(proto::Code code, const std::string& message) {
  auto self = shared_from_this();
  asio::post(strand_, [self, code, message]() {
    self->send_error(0, code, message);
    self->close_when_drained_ = true;
    asio::co_spawn(
        self->strand_, [self]() { return self->writer(); }, log_exceptions("writer"));
    asio::co_spawn(
        self->strand_, [self]() { return self->watchdog(); }, log_exceptions("watchdog"));
  });
}

void Connection::begin_shutdown() {
  auto self = shared_from_this();
  asio::post(strand_, [self]() {
    self->shutting_down_ = true;
    for (auto& [id, sub] : self->subs_) {
      if (sub->cancelled) continue;
      self->send_error(id, proto::Code::kShuttingDown, "node is shutting down; subscription ended");
      self->end_subscription(*sub);
    }
  });
}

void Connection::close_after_flush() {
  auto self = shared_from_this();
  asio::post(strand_, [self]() {
    self->close_when_drained_ = true;
    self->write_cv_.cancel();
  });
}

void Connection::close_now() {
  auto self = shared_from_this();
  asio::post(strand_, [self]() { self->close(); });
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  closed_flag_.store(true);
  shared_->open_connections.fetch_sub(1);
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  write_cv_.cancel();
  room_cv_.cancel();
  watchdog_timer_.cancel();
  for (auto& [id, sub] : subs_) end_subscription(*sub);
  spdlog::debug("connection {} ({}) closed", id_, peer_);
}

void Connection::end_subscription(Subscription& sub) {
  sub.cancelled = true;
  sub.waiter->armed.store(false);
  shared_->notifier.remove(sub.waiter);
  sub.timer.cancel();
}

bool Connection::has_room() const {
  return out_bytes_ < shared_->options.write_queue_high_water &&
         in_flight_bytes_ < shared_->options.max_in_flight_bytes;
}

void Connection::request_started(std::size_t bytes) {
  ++in_flight_;
  in_flight_bytes_ += bytes;
  in_flight_count_.fetch_add(1);
  shared_->in_flight.fetch_add(1);
}

void Connection::request_finished(std::size_t bytes) {
  --in_flight_;
  in_flight_bytes_ -= bytes;
  in_flight_count_.fetch_sub(1);
  room_cv_.cancel();
  write_cv_.cancel();  // the writer may be waiting to close once nothing is in flight
  last_activity_ = Clock::now();
  shared_->in_flight.fetch_sub(1);
}

void Connection::send(std::string frame) {
  if (closed_) return;
  out_bytes_ += frame.size();
  out_.push_back(std::move(frame));
  write_cv_.cancel();
}

void Connection::send_error(std::uint64_t id, proto::Code code, std::string message,
                            std::uint64_t detail) {
  send(proto::encode_error(id, proto::Error{code, detail, std::move(message)}));
}

void Connection::fail_and_close(std::uint64_t id, proto::Code code, std::string message) {
  spdlog::info("connection {} ({}): {}: {}; closing", id_, peer_, proto::code_name(code), message);
  send_error(id, code, std::move(message));
  close_when_drained_ = true;
  room_cv_.cancel();
  write_cv_.cancel();
}

asio::awaitable<void> Connection::wait_for_room(const Subscription* sub) {
  while (!closed_ && !has_room() && !(sub && sub->cancelled)) {
    boost::system::error_code ec;
    co_await room_cv_.async_wait(redirect_error(use_awaitable, ec));
  }
}

asio::awaitable<void> Connection::reader() {
  std::array<std::uint8_t, 13> hdr{};
  const std::uint32_t max_frame = shared_->options.max_frame;
  while (!closed_ && !close_when_drained_) {
    co_await wait_for_room(nullptr);
    if (closed_ || close_when_drained_) break;
    boost::system::error_code ec;
    co_await asio::async_read(socket_, asio::buffer(hdr.data(), 4),
                              redirect_error(use_awaitable, ec));
    if (ec) {
      // EOF between frames: answer what is in flight, then close.
      if (ec == asio::error::eof && !closed_) {
        close_when_drained_ = true;
        write_cv_.cancel();
      } else {
        close();
      }
      break;
    }
    last_activity_ = Clock::now();
    const std::uint32_t len = proto::parse_length(std::span<const std::uint8_t, 4>(hdr.data(), 4));
    if (len < proto::kFrameMinBody) {
      fail_and_close(
          0, proto::Code::kBadRequest,
          fmt::format("frame length {} is below the minimum {}", len, proto::kFrameMinBody));
      break;
    }
    if (len > max_frame) {
      fail_and_close(0, proto::Code::kFrameTooLarge,
                     fmt::format("frame length {} exceeds the maximum {}", len, max_frame));
      break;
    }
    co_await asio::async_read(socket_, asio::buffer(hdr.data() + 4, 9),
                              redirect_error(use_awaitable, ec));
    if (ec) {
      close();  // closed in the middle of a frame: nobody left to answer
      break;
    }
    const proto::FrameHeader h = proto::parse_header(std::span<const std::uint8_t, 13>(hdr));
    std::string payload(len - proto::kFrameMinBody, '\0');
    if (!payload.empty()) {
      co_await asio::async_read(socket_, asio::buffer(payload), redirect_error(use_awaitable, ec));
      if (ec) {
        close();
        break;
      }
    }
    last_activity_ = Clock::now();
    dispatch(h, std::move(payload));
  }
}

asio::awaitable<void> Connection::writer() {
  std::vector<std::string> batch;
  std::vector<asio::const_buffer> bufs;
  while (!closed_) {
    if (out_.empty()) {
      if (close_when_drained_ && in_flight_ == 0) {
        close();
        break;
      }
      boost::system::error_code ec;
      co_await write_cv_.async_wait(redirect_error(use_awaitable, ec));
      continue;
    }
    batch.clear();
    bufs.clear();
    std::size_t bytes = 0;
    while (!out_.empty() && batch.size() < 64 && bytes < (1u << 20)) {
      bytes += out_.front().size();
      batch.push_back(std::move(out_.front()));
      out_.pop_front();
    }
    for (const auto& b : batch) bufs.emplace_back(asio::buffer(b));
    boost::system::error_code ec;
    co_await asio::async_write(socket_, bufs, redirect_error(use_awaitable, ec));
    out_bytes_ -= bytes;
    room_cv_.cancel();
    if (ec) {
      close();
      break;
    }
    last_activity_ = Clock::now();
  }
}

asio::awaitable<void> Connection::watchdog() {
  const auto idle = shared_->options.idle_timeout;
  const auto tick = idle.count() > 0 ? std::clamp<std::chrono::milliseconds>(
                                           idle / 4, std::chrono::milliseconds(10),
                                           std::chrono::milliseconds(1000))
                                     : std::chrono::milliseconds(1000);
  while (!closed_) {
    watchdog_timer_.expires_after(tick);
    boost::system::error_code ec;
    co_await watchdog_timer_.async_wait(redirect_error(use_awaitable, ec));
    if (closed_) break;
    if (idle.count() <= 0) continue;
    const bool idle_now = Clock::now() - last_activity_ >= idle;
    if (!idle_now) continue;
    if (close_when_drained_) {
      close();  // a peer that stopped reading its last responses
      break;
    }
    if (in_flight_ == 0 && subs_.empty()) {
      fail_and_close(0, proto::Code::kIdleTimeout,
                     fmt::format("no request for {} ms; closing", idle.count()));
    }
  }
}

void Connection::dispatch(const proto::FrameHeader& h, std::string payload) {
  const auto op = static_cast<proto::Op>(h.op);
  if (!handshaken_) {
    if (op != proto::Op::kHello) {
      fail_and_close(h.request_id, proto::Code::kHandshakeRequired,
                     fmt::format("the first frame must be hello (0x01), got op 0x{:02x}", h.op));
      return;
    }
    handle_hello(h.request_id, payload);
    return;
  }
  if (!proto::is_request_op(h.op)) {
    send_error(h.request_id, proto::Code::kUnknownOperation,
               fmt::format("unknown operation 0x{:02x}", h.op));
    return;
  }
  if (shutting_down_ && op != proto::Op::kPing) {
    send_error(h.request_id, proto::Code::kShuttingDown, "node is shutting down");
    return;
  }
  switch (op) {
    case proto::Op::kHello:
      send_error(h.request_id, proto::Code::kBadRequest, "hello was already received");
      return;
    case proto::Op::kPing:
      if (!payload.empty()) {
        send_error(h.request_id, proto::Code::kBadRequest, "ping: unexpected payload");
        return;
      }
      send(proto::encode_empty(proto::Op::kPong, h.request_id));
      return;
    case proto::Op::kInfo:
      handle_info(h.request_id);
      return;
    case proto::Op::kAppend:
      handle_append(h.request_id, payload);
      return;
    case proto::Op::kReadStream:
      handle_read_stream(h.request_id, payload);
      return;
    case proto::Op::kReadAll:
      handle_read_all(h.request_id, payload);
      return;
    case proto::Op::kSubscribe:
      handle_subscribe(h.request_id, payload);
      return;
    case proto::Op::kUnsubscribe:
      handle_unsubscribe(h.request_id, payload);
      return;
    default:
      send_error(h.request_id, proto::Code::kUnknownOperation,
                 fmt::format("unknown operation 0x{:02x}", h.op));
      return;
  }
}

void Connection::handle_hello(std::uint64_t id, std::string_view payload) {
  auto m = proto::decode_hello(payload);
  if (!m.is_ok()) {
    fail_and_close(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (m->magic != proto::kHelloMagic) {
    fail_and_close(
        id, proto::Code::kBadRequest,
        fmt::format("hello: bad magic 0x{:08x}, expected 0x{:08x}", m->magic, proto::kHelloMagic));
    return;
  }
  if (m->version != proto::kProtocolVersion) {
    send_error(id, proto::Code::kUnsupportedVersion,
               fmt::format("protocol version {} is not supported; this node speaks {}", m->version,
                           proto::kProtocolVersion),
               proto::kProtocolVersion);
    close_when_drained_ = true;
    write_cv_.cancel();
    return;
  }
  handshaken_ = true;
  proto::HelloOk ok;
  ok.max_frame = shared_->options.max_frame;
  ok.max_in_flight = shared_->options.max_in_flight;
  ok.server_version = shared_->options.server_version;
  send(proto::encode_hello_ok(id, ok));
}

bool Connection::validate_json(std::uint64_t id, const proto::AppendReq& req) {
  auto invalid = [&](std::size_t i, std::string_view field, simdjson::error_code err) {
    send_error(id, proto::Code::kInvalidJson,
               fmt::format("event {} of append to '{}': {} is not valid JSON: {}", i, req.stream,
                           field, simdjson::error_message(err)),
               i);
    return false;
  };
  auto check = [&](const std::string& text) -> simdjson::error_code {
    json_buf_.resize(text.size() + simdjson::SIMDJSON_PADDING);
    std::copy(text.begin(), text.end(), json_buf_.begin());
    return json_parser_.parse(json_buf_.data(), text.size(), false).error();
  };
  for (std::size_t i = 0; i < req.events.size(); ++i) {
    const auto& e = req.events[i];
    if (e.flags & ~kAllowedEventFlags) {
      send_error(id, proto::Code::kBadRequest,
                 fmt::format("event {} of append to '{}': unknown flags 0x{:x}", i, req.stream,
                             e.flags & ~kAllowedEventFlags),
                 i);
      return false;
    }
    if (e.flags & engine::format::kFlagDataJson) {
      if (auto err = check(e.data); err != simdjson::SUCCESS) return invalid(i, "data", err);
    }
    if (e.flags & engine::format::kFlagMetadataJson) {
      if (auto err = check(e.metadata); err != simdjson::SUCCESS)
        return invalid(i, "metadata", err);
    }
  }
  // Large payloads leave a large buffer behind: give it back.
  if (json_buf_.capacity() > (1u << 20)) std::vector<char>().swap(json_buf_);
  return true;
}

void Connection::handle_append(std::uint64_t id, std::string_view payload) {
  if (in_flight_ >= shared_->options.max_in_flight) {
    send_error(id, proto::Code::kTooManyRequests,
               fmt::format("more than {} requests in flight on this connection",
                           shared_->options.max_in_flight));
    return;
  }
  auto m = proto::decode_append(payload);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (!validate_json(id, *m)) return;
  const std::size_t bytes = payload.size();
  request_started(bytes);
  index::StreamAppend sa{std::move(m->stream), m->expected, std::move(m->events)};
  shared_->store.append(std::move(sa),
                        [self = shared_from_this(), id, bytes](const engine::AppendOutcome& o) {
                          // On the log's writer thread: hand the outcome to the lane,
                          // which answers every ack of a group commit in one post.
                          self->lane_->acks->push(Ack{self, id, bytes, o});
                        });
}

void Connection::finish_append(const Ack& ack) {
  const engine::AppendOutcome& o = ack.outcome;
  if (o.status.is_ok()) {
    proto::AppendOk ok;
    ok.first_position = o.first_position.value;
    ok.first_revision = o.first_revision.value;
    ok.count = o.count;
    ok.deduplicated = o.deduplicated;
    send(proto::encode_append_ok(ack.id, ok));
  } else {
    std::uint64_t detail = proto::kNone;
    if (o.status.code() == Errc::kWrongExpectedRevision && o.actual_revision)
      detail = o.actual_revision->value;
    send_error(ack.id, proto::code_from_errc(o.status.code()), o.status.message(), detail);
  }
  request_finished(ack.bytes);
}

void Connection::handle_read_stream(std::uint64_t id, std::string_view payload) {
  if (in_flight_ >= shared_->options.max_in_flight) {
    send_error(id, proto::Code::kTooManyRequests,
               fmt::format("more than {} requests in flight on this connection",
                           shared_->options.max_in_flight));
    return;
  }
  auto m = proto::decode_read_stream(payload);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  auto self = shared_from_this();
  asio::post(shared_->reads, [self, id, req = std::move(m.value())]() {
    const auto& opts = self->shared_->options;
    const std::uint64_t max_count = req.count == 0
                                        ? opts.max_read_count
                                        : std::min<std::uint64_t>(req.count, opts.max_read_count);
    const bool forward = req.direction == index::Direction::kForward;
    std::string events;
    std::uint32_t n = 0;
    std::uint64_t cursor = req.from;
    bool end = false;
    std::string frame;
    while (true) {
      std::uint64_t want = std::min<std::uint64_t>(kStreamChunk, max_count - n);
      auto r =
          self->shared_->store.read_stream(req.stream, StreamRevision(cursor), want, req.direction);
      if (!r.is_ok()) {
        if (n == 0) {
          frame = proto::encode_error(id, proto::Error{proto::code_from_errc(r.status().code()),
                                                       proto::kNone, r.status().message()});
        } else {
          end = r.status().code() == Errc::kStreamNotFound || r.status().code() == Errc::kNotFound;
        }
        break;
      }
      for (const auto& e : r.value()) {
        proto::append_event(events, e);
        ++n;
        if (forward) {
          cursor = e.revision.value + 1;
        } else if (e.revision.value == 0) {
          end = true;
          cursor = proto::kNone;
        } else {
          cursor = e.revision.value - 1;
        }
      }
      if (r.value().size() < want) {
        end = true;
        break;
      }
      if (end || n >= max_count || events.size() >= opts.max_read_bytes) break;
    }
    if (frame.empty()) {
      if (!forward && end) cursor = proto::kNone;
      frame =
          proto::make_frame(proto::Op::kReadOk, id, proto::read_ok_payload(end, cursor, n, events));
    }
    asio::post(self->strand_, [self, frame = std::move(frame)]() mutable {
      self->send(std::move(frame));
      self->request_finished();
    });
  });
}

void Connection::handle_read_all(std::uint64_t id, std::string_view payload) {
  if (in_flight_ >= shared_->options.max_in_flight) {
    send_error(id, proto::Code::kTooManyRequests,
               fmt::format("more than {} requests in flight on this connection",
                           shared_->options.max_in_flight));
    return;
  }
  auto m = proto::decode_read_all(payload);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  request_started();
  auto self = shared_from_this();
  asio::post(shared_->reads, [self, id, req = m.value()]() {
    const auto& opts = self->shared_->options;
    const auto& log = self->shared_->store.log();
    const std::uint64_t max_count = req.count == 0
                                        ? opts.max_read_count
                                        : std::min<std::uint64_t>(req.count, opts.max_read_count);
    const std::uint64_t durable = log.durable_end().value;
    std::string events;
    std::uint32_t n = 0;
    bool end = false;
    std::uint64_t next = req.from;
    Status st;
    auto visit = [&](const engine::RecordView& v) {
      proto::append_event(events, v);
      ++n;
      return n < max_count && events.size() < opts.max_read_bytes;
    };
    if (req.direction == index::Direction::kForward) {
      if (req.from < durable) {
        std::uint64_t last = req.from;
        st = log.scan_forward(GlobalPosition(req.from), std::min(max_count, durable - req.from),
                              [&](const engine::RecordView& v) {
                                last = v.position.value;
                                return visit(v);
                              });
        next = n > 0 ? last + 1 : req.from;
      }
      end = next >= durable;
    } else {
      std::uint64_t from = std::min(req.from, durable == 0 ? 0 : durable - 1);
      if (durable == 0) {
        end = true;
        next = proto::kNone;
      } else {
        std::uint64_t last = from;
        st = log.scan_backward(GlobalPosition(from), max_count, [&](const engine::RecordView& v) {
          last = v.position.value;
          return visit(v);
        });
        end = n == 0 || last == 0;
        next = end ? proto::kNone : last - 1;
      }
    }
    std::string frame = st.is_ok()
                            ? proto::make_frame(proto::Op::kReadOk, id,
                                                proto::read_ok_payload(end, next, n, events))
                            : proto::encode_error(id, proto::Error{proto::code_from_errc(st.code()),
                                                                   proto::kNone, st.message()});
    asio::post(self->strand_, [self, frame = std::move(frame)]() mutable {
      self->send(std::move(frame));
      self->request_finished();
    });
  });
}

void Connection::handle_info(std::uint64_t id) {
  auto& store = shared_->store;
  const auto& opts = shared_->options;
  const auto& limits = store.limits();
  const auto stats = store.stats();
  proto::InfoOk m;
  m.server_version = opts.server_version;
  m.durable_end = store.log().durable_end().value;
  m.segments = store.log().segments().size();
  m.max_stream_name = limits.max_stream_name;
  m.max_event_type = limits.max_event_type;
  m.max_event_size = limits.max_event_size;
  m.max_append_size = limits.max_append_size;
  m.max_append_events = limits.max_append_events;
  m.max_frame = opts.max_frame;
  m.max_in_flight = opts.max_in_flight;
  m.max_connections = opts.max_connections;
  m.connections = shared_->open_connections.load();
  m.index_memtable_entries = stats.memtable_entries;
  m.index_files = stats.index_files;
  m.indexed_through = stats.indexed_through;
  send(proto::encode_info_ok(id, m));
}

void Connection::handle_subscribe(std::uint64_t id, std::string_view payload) {
  auto m = proto::decode_subscribe(payload);
  if (!m.is_ok()) {
    send_error(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (subs_.count(id)) {
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
  sub->checkpoint_interval = sub->req.checkpoint_interval ? sub->req.checkpoint_interval
                                                          : shared_->options.checkpoint_interval;
  sub->last_checkpoint = Clock::now();
  const auto& log = shared_->store.log();
  std::uint64_t start = 0;
  if (sub->req.target == proto::Target::kAll) {
    sub->next_pos = sub->req.from_end ? log.durable_end() : GlobalPosition(sub->req.from);
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

asio::awaitable<void> Connection::run_subscription(std::shared_ptr<Subscription> sub) {
  const auto& opts = shared_->options;
  const auto& store = shared_->store;
  while (!sub->cancelled && !closed_) {
    co_await wait_for_room(sub.get());
    if (sub->cancelled || closed_) break;
    // Arm before looking at the durable end, so a commit in between wakes us.
    sub->waiter->armed.store(true);
    const GlobalPosition end = store.log().durable_end();
    if (sub->index_phase || sub->next_pos < end) {
      sub->waiter->armed.store(false);
      Filter f;
      f.target = sub->req.target;
      f.stream = sub->req.stream;
      f.min_rev = sub->next_rev;
      f.stream_prefix = sub->req.stream_prefix;
      f.type_prefix = sub->req.type_prefix;
      const bool index_phase = sub->index_phase;
      const GlobalPosition from = sub->next_pos;
      const std::uint32_t max_count = opts.max_read_count;
      const std::size_t max_bytes = opts.max_read_bytes;
      const index::Store* sp = &store;
      // The pool work captures only pointers and scalars: GCC 12 has bugs
      // destroying non-trivial temporaries inside co_await expressions twice.
      // Live subscribers of the global log with one filter share the scan.
      const bool shareable = !index_phase && f.target == proto::Target::kAll;
      LiveCache<Batch>::Key key;
      std::shared_ptr<const Batch> cached;
      if (shareable) {
        key = {f.stream_prefix, f.type_prefix, 0, from.value};
        cached = shared_->live.find(key);
      }
      if (!cached) {
        auto fresh = std::make_shared<Batch>();
        Batch* out = fresh.get();
        const Filter* fp = &f;
        auto work = [sp, fp, out, index_phase, from, end, max_count,
                     max_bytes]() -> asio::awaitable<void> {
          if (index_phase) {
            *out = read_index(*sp, fp->stream, fp->min_rev, max_count, max_bytes);
          } else {
            *out = scan_log(sp->log(), *fp, from, end, max_count, max_bytes);
          }
          co_return;
        };
        co_await asio::co_spawn(shared_->reads, std::move(work), use_awaitable);
        if (shareable && fresh->status.is_ok())
          shared_->live.insert(key, fresh, fresh->events.size());
        cached = std::move(fresh);
      }
      const Batch& b = *cached;
      if (sub->cancelled || closed_) break;
      if (!b.status.is_ok()) {
        send_error(sub->id, proto::code_from_errc(b.status.code()), b.status.message());
        end_subscription(*sub);
        break;
      }
      if (b.count > 0) {
        send(proto::make_frame(proto::Op::kSubEvents, sub->id,
                               proto::sub_events_payload(b.count, b.events)));
      }
      sub->next_rev = b.next_rev;
      if (index_phase) {
        if (b.index_done) {
          sub->index_phase = false;
          sub->next_pos = b.next;
        }
      } else {
        sub->next_pos = b.next;
        sub->unreported = b.count > 0 ? b.scanned_after_last_event : sub->unreported + b.scanned;
      }
    } else {
      sub->timer.expires_after(opts.checkpoint_period);
      boost::system::error_code ec;
      co_await sub->timer.async_wait(redirect_error(use_awaitable, ec));
      sub->waiter->armed.store(false);
      if (sub->cancelled || closed_) break;
    }
    if (sub->filtered() && sub->unreported > 0 &&
        (sub->unreported >= sub->checkpoint_interval ||
         Clock::now() - sub->last_checkpoint >= opts.checkpoint_period)) {
      send(proto::encode_checkpoint(sub->id, proto::Checkpoint{sub->next_pos.value}));
      sub->unreported = 0;
      sub->last_checkpoint = Clock::now();
    }
  }
  shared_->notifier.remove(sub->waiter);
  auto it = subs_.find(sub->id);
  if (it != subs_.end() && it->second == sub) subs_.erase(it);
}

}  // namespace annal::net::detail
