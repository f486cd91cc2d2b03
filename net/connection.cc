#include "net/connection.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "net/frame_buffer.h"

namespace annal::net::detail {
namespace {

using asio::redirect_error;
using asio::use_awaitable;

}  // namespace

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
  enable_keepalive();
  shared_->open_connections.fetch_add(1);
}

void Connection::enable_keepalive() {
  const ServerOptions& o = shared_->options;
  if (o.keepalive_idle.count() <= 0) return;
  const int fd = socket_.native_handle();
  const int on = 1;
  const int idle = static_cast<int>(o.keepalive_idle.count());
  const int interval = static_cast<int>(std::max<std::int64_t>(1, o.keepalive_interval.count()));
  const int probes = static_cast<int>(std::max(1u, o.keepalive_probes));
  // Sent data unacknowledged for as long as a dead peer takes to be found by
  // probes also ends the connection (else retransmissions last ~15 minutes).
  const unsigned user_timeout_ms = static_cast<unsigned>((idle + interval * probes) * 1000);
  const bool ok = ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0 &&
                  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) == 0 &&
                  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval) == 0 &&
                  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes) == 0 &&
                  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
                               sizeof user_timeout_ms) == 0;
  if (!ok)
    spdlog::warn("connection {} ({}): cannot enable TCP keepalive: {}", id_, peer_,
                 std::strerror(errno));
}

Connection::~Connection() {
  if (!closed_) shared_->open_connections.fetch_sub(1);
  // Appends whose outcome never came back to this connection (it closed
  // first; their callbacks hold it only weakly) stop counting as the
  // server's work in flight.
  if (const std::uint32_t n = in_flight_count_.load()) shared_->in_flight.fetch_sub(n);
}

std::function<void(std::exception_ptr)> log_exceptions(std::string what) {
  return [what = std::move(what)](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("{}: {}", what, ex.what());
    }
  };
}

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
    for (auto& [id, j] : self->joins_)
      self->send_error(id, proto::Code::kShuttingDown, "node is shutting down; membership ended");
    self->leave_groups();
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
  leave_groups();
  spdlog::debug("connection {} ({}) closed", id_, peer_);
}

bool Connection::refuse_if_too_many(std::uint64_t id) {
  if (in_flight_ < shared_->options.max_in_flight) return false;
  send_error(id, proto::Code::kTooManyRequests,
             fmt::format("more than {} requests in flight on this connection",
                         shared_->options.max_in_flight));
  return true;
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
  out_.emplace_back().head = std::move(frame);
  write_cv_.cancel();
}

void Connection::send_small(std::span<const char> frame) {
  send_shared(frame, nullptr, {});
}

void Connection::send_shared(std::span<const char> head, std::shared_ptr<const void> owner,
                             std::string_view body) {
  if (closed_) return;
  ANNAL_CHECK(head.size() <= OutFrame::kSmall, "a shared frame's head exceeds OutFrame::kSmall");
  OutFrame& f = out_.emplace_back();
  std::copy(head.begin(), head.end(), f.small.begin());
  f.small_size = static_cast<std::uint8_t>(head.size());
  f.owner = std::move(owner);
  f.body = body;
  out_bytes_ += f.size();
  write_cv_.cancel();
}

void Connection::send_error(std::uint64_t id, proto::Code code, std::string message,
                            std::uint64_t detail) {
  shared_->metrics.count_error(static_cast<std::uint16_t>(code));
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
  const std::uint32_t max_frame = shared_->options.max_frame;
  FrameBuffer in;
  while (!closed_ && !close_when_drained_) {
    co_await wait_for_room(nullptr);
    if (closed_ || close_when_drained_) break;
    // Every complete frame the buffer holds, in place, while there is room.
    std::size_t want = 4;  // buffered bytes the frame in progress needs
    while (has_room() && !closed_ && !close_when_drained_) {
      const auto d = in.data();
      if (d.size() < 4) break;
      const std::uint32_t len = proto::parse_length(d.first<4>());
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
      want = 4 + static_cast<std::size_t>(len);
      if (d.size() < want) break;
      const proto::FrameHeader h = proto::parse_header(d.first<13>());
      dispatch(h, in.view(13, len - proto::kFrameMinBody));
      in.consume(want);
      want = 4;
    }
    if (closed_ || close_when_drained_) break;
    if (!has_room()) continue;
    boost::system::error_code ec;
    const auto space = in.room(want);
    const std::size_t n = co_await socket_.async_read_some(asio::buffer(space.data(), space.size()),
                                                           redirect_error(use_awaitable, ec));
    if (ec) {
      // EOF: answer what is in flight, then close. A partial frame before it
      // has nobody to answer.
      if (ec == asio::error::eof && !closed_) {
        if (!in.data().empty())
          spdlog::debug("connection {} ({}): {} bytes of an incomplete frame before EOF", id_,
                        peer_, in.data().size());
        close_when_drained_ = true;
        write_cv_.cancel();
      } else {
        close();
      }
      break;
    }
    in.commit(n);
    last_activity_ = Clock::now();
  }
}

asio::awaitable<void> Connection::writer() {
  std::vector<OutFrame> batch;
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
    for (const auto& f : batch) {
      if (f.small_size > 0) bufs.emplace_back(asio::buffer(f.small.data(), f.small_size));
      if (!f.head.empty()) bufs.emplace_back(asio::buffer(f.head));
      if (!f.body.empty()) bufs.emplace_back(asio::buffer(f.body.data(), f.body.size()));
    }
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

}  // namespace annal::net::detail
