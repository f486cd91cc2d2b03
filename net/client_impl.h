#pragma once
// Internal to the client library (net/client.cc, net/client_groups.cc): the
// connection's frame reader, reply decoding, a subscription's queue and the
// Client's implementation (request ids, the in-flight window, the reader
// thread that routes responses to requests and subscriptions).

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <thread>
#include <unordered_map>

#include "net/client.h"
#include "net/frame_buffer.h"

namespace annal::net {
namespace client_detail {

// Largest response frame the client accepts (responses are bounded by the
// node's batch limits plus one event).
constexpr std::uint32_t kClientMaxFrame = 256u << 20;

inline proto::Error make_error(proto::Code code, std::string message) {
  return proto::Error{code, proto::kNone, std::move(message)};
}

inline bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

struct Frame {
  std::uint8_t op = 0;
  std::uint64_t id = 0;
  std::string_view payload;  // into the reader's buffer, or a synthesized error
};

// The client's receive side: every recv takes as much as the socket holds,
// and frames are parsed in place, so a burst of small responses costs one
// recv and a response's events can be decoded as views of its bytes.
class FrameReader {
 public:
  // The next frame; its payload stays valid until the following call.
  // False on EOF, a socket error or an invalid length, with `why`.
  bool next(int fd, Frame& f, std::string& why) {
    in_.consume(done_);
    done_ = 0;
    std::size_t want = 4;
    for (;;) {
      const auto d = in_.data();
      if (d.size() >= 4) {
        const std::uint32_t len = proto::parse_length(d.first<4>());
        if (len < proto::kFrameMinBody || len > kClientMaxFrame) {
          why = fmt::format("invalid frame length {} from the node", len);
          return false;
        }
        want = 4 + static_cast<std::size_t>(len);
        if (d.size() >= want) {
          const auto h = proto::parse_header(d.first<13>());
          f.op = h.op;
          f.id = h.request_id;
          f.payload = in_.view(13, len - proto::kFrameMinBody);
          done_ = want;
          return true;
        }
      }
      const auto space = in_.room(want);
      const ssize_t r = ::recv(fd, space.data(), space.size(), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        why = r < 0       ? fmt::format("receive failed: {}", std::strerror(errno))
              : d.empty() ? "connection closed by the node"
                          : "connection closed in the middle of a frame";
        return false;
      }
      in_.commit(static_cast<std::size_t>(r));
    }
  }

 private:
  detail::FrameBuffer in_;
  std::size_t done_ = 0;  // bytes of the frame last returned
};

template <typename T>
using Decoder = Result<T> (*)(std::string_view, std::uint16_t);

// `version`: the connection's protocol version (how events are encoded).
template <typename T>
Reply<T> decode_reply(const Frame& f, proto::Op expected, Decoder<T> dec,
                      std::uint16_t version = proto::kProtocolVersion) {
  if (f.op == static_cast<std::uint8_t>(proto::Op::kError)) {
    auto e = proto::decode_error(f.payload);
    if (!e.is_ok())
      return make_error(proto::Code::kBadRequest,
                        "undecodable error frame: " + e.status().message());
    return std::move(e.value());
  }
  if (f.op != static_cast<std::uint8_t>(expected))
    return make_error(
        proto::Code::kBadRequest,
        fmt::format("expected {} from the node, got op 0x{:02x}", proto::op_name(expected), f.op));
  auto r = dec(f.payload, version);
  if (!r.is_ok()) return make_error(proto::Code::kBadRequest, r.status().message());
  return std::move(r.value());
}

inline Result<bool> decode_nothing(std::string_view payload, std::uint16_t) {
  if (!payload.empty()) return Status(Errc::kBadRequest, "unexpected payload");
  return true;
}

inline std::string error_frame(const proto::Error& e) {
  return proto::encode_error(0, e).substr(13);
}

}  // namespace client_detail

using namespace client_detail;

struct Subscription::State {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Message> queue;
  std::size_t capacity = 64;
  bool closed = false;  // consumer no longer wants messages
  bool ended = false;
  Message ended_message;

  // On the reader thread. Waits while full (TCP back-pressure to the node).
  void deliver(Message m, const std::atomic<bool>& stopping) {
    std::unique_lock lk(mu);
    if (ended || closed) return;
    if (m.kind == Message::Kind::kEnded) {
      ended = true;
      ended_message = m;
      queue.push_back(std::move(m));
      cv.notify_all();
      return;
    }
    cv.wait(lk, [&] { return queue.size() < capacity || closed || stopping.load(); });
    if (closed || stopping.load()) return;
    queue.push_back(std::move(m));
    cv.notify_all();
  }
  void end(proto::Error e) {
    Message m;
    m.kind = Message::Kind::kEnded;
    m.error = std::move(e);
    std::lock_guard lk(mu);
    if (ended) return;
    ended = true;
    ended_message = m;
    queue.push_back(std::move(m));
    cv.notify_all();
  }
};

class Client::Impl {
 public:
  using Handler = std::function<void(const Frame&)>;

  int fd = -1;
  std::mutex write_mu;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::uint64_t, Handler> pending;
  std::unordered_map<std::uint64_t, std::shared_ptr<Subscription::State>> subs;
  std::uint64_t next_id = 2;                        // 1 was the hello
  std::uint16_t version = proto::kProtocolVersion;  // agreed in the handshake
  std::size_t window = 1;
  std::size_t in_flight = 0;
  bool broken = false;
  proto::Error broken_error;
  std::atomic<bool> stopping{false};
  std::thread reader;
  FrameReader frames;  // the handshake's, then the reader thread's
  std::size_t sub_queue = 64;

  ~Impl() {
    stopping.store(true);
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    {
      std::lock_guard lk(mu);
      for (auto& [id, s] : subs) {
        std::lock_guard sl(s->mu);
        s->cv.notify_all();
      }
    }
    if (reader.joinable()) reader.join();
    if (fd >= 0) ::close(fd);
  }

  void request(const std::function<std::string(std::uint64_t)>& build, Handler h) {
    std::uint64_t id = 0;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return broken || in_flight < window; });
      if (!broken) {
        id = next_id++;
        pending.emplace(id, std::move(h));
        ++in_flight;
      }
    }
    if (id == 0) {
      const std::string e = error_frame(current_error());
      h(Frame{static_cast<std::uint8_t>(proto::Op::kError), 0, e});
      return;
    }
    std::string frame = build(id);
    bool ok;
    {
      std::lock_guard lk(write_mu);
      ok = send_all(fd, frame);
    }
    // A failed send: the reader sees the broken socket and fails every pending request.
    if (!ok) ::shutdown(fd, SHUT_RDWR);
  }

  // A request the node answers only if it is wrong (group_ack, group_nack):
  // not counted in the window, its id never awaited.
  void send_oneway(const std::function<std::string(std::uint64_t)>& build) {
    std::uint64_t id = 0;
    {
      std::lock_guard lk(mu);
      if (broken) return;
      id = next_id++;
    }
    std::string frame = build(id);
    bool ok;
    {
      std::lock_guard lk(write_mu);
      ok = send_all(fd, frame);
    }
    if (!ok) ::shutdown(fd, SHUT_RDWR);
  }

  proto::Error current_error() const {
    std::lock_guard lk(mu);
    return broken_error;
  }

  void run_reader() {
    Frame f;
    std::string why;
    proto::Error last_conn_error = make_error(proto::Code::kConnectionLost, "");
    bool have_conn_error = false;
    while (!stopping.load() && frames.next(fd, f, why)) {
      Handler h;
      std::shared_ptr<Subscription::State> sub;
      {
        std::lock_guard lk(mu);
        auto it = pending.find(f.id);
        if (it != pending.end()) {
          h = std::move(it->second);
          pending.erase(it);
        } else if (auto s = subs.find(f.id); s != subs.end()) {
          sub = s->second;
          if (f.op == static_cast<std::uint8_t>(proto::Op::kError)) subs.erase(s);
        }
      }
      if (h) {
        h(f);
        // Counted out only after the callback ran: drain() then means "every
        // callback has finished".
        std::lock_guard lk(mu);
        --in_flight;
        cv.notify_all();
      } else if (sub) {
        deliver_to(*sub, f);
      } else if (f.op == static_cast<std::uint8_t>(proto::Op::kError) && f.id == 0) {
        // Connection-level error (request id 0): the node closes next. (An
        // error for a one-way request, such as a group_ack the node could not
        // apply, has that request's id and is dropped here.)
        auto e = proto::decode_error(f.payload);
        if (e.is_ok()) {
          last_conn_error = e.value();
          have_conn_error = true;
        }
      }
    }
    proto::Error err = have_conn_error ? last_conn_error
                                       : make_error(proto::Code::kConnectionLost,
                                                    stopping.load() ? "client closed" : why);
    std::unordered_map<std::uint64_t, Handler> failed;
    std::unordered_map<std::uint64_t, std::shared_ptr<Subscription::State>> ended;
    {
      std::lock_guard lk(mu);
      broken = true;
      broken_error = err;
      failed.swap(pending);
      ended.swap(subs);
      cv.notify_all();  // senders waiting for the window see `broken`
    }
    const std::string failure = error_frame(err);
    for (auto& [id, h] : failed)
      h(Frame{static_cast<std::uint8_t>(proto::Op::kError), id, failure});
    for (auto& [id, s] : ended) s->end(err);
    {
      std::lock_guard lk(mu);
      in_flight = 0;
      cv.notify_all();
    }
  }

  void deliver_to(Subscription::State& s, const Frame& f) {
    using Kind = Subscription::Message::Kind;
    Subscription::Message m;
    switch (static_cast<proto::Op>(f.op)) {
      case proto::Op::kSubEvents: {
        auto r = proto::decode_sub_events(f.payload, version);
        if (!r.is_ok()) {
          s.end(make_error(proto::Code::kBadRequest, r.status().message()));
          return;
        }
        m.kind = Kind::kEvents;
        m.events = std::move(r->events);
        s.deliver(std::move(m), stopping);
        return;
      }
      case proto::Op::kGroupEvents: {
        auto r = proto::decode<proto::GroupEvents>(f.payload, version);
        if (!r.is_ok()) {
          s.end(make_error(proto::Code::kBadRequest, r.status().message()));
          return;
        }
        m.kind = Kind::kEvents;
        m.events.reserve(r->events.size());
        m.attempts.reserve(r->events.size());
        for (auto& ge : r->events) {
          m.attempts.push_back(ge.attempt);
          m.events.push_back(std::move(ge.event));
        }
        s.deliver(std::move(m), stopping);
        return;
      }
      case proto::Op::kCheckpoint: {
        auto r = proto::decode_checkpoint(f.payload);
        if (!r.is_ok()) {
          s.end(make_error(proto::Code::kBadRequest, r.status().message()));
          return;
        }
        m.kind = Kind::kCheckpoint;
        m.checkpoint = r->position;
        s.deliver(std::move(m), stopping);
        return;
      }
      case proto::Op::kError: {
        auto r = proto::decode_error(f.payload);
        s.end(r.is_ok() ? r.value() : make_error(proto::Code::kBadRequest, r.status().message()));
        return;
      }
      default:
        s.end(make_error(proto::Code::kBadRequest,
                         fmt::format("unexpected op 0x{:02x} on a subscription", f.op)));
        return;
    }
  }

  template <typename T>
  Reply<T> call(const std::function<std::string(std::uint64_t)>& build, proto::Op expected,
                Decoder<T> dec) {
    auto p = std::make_shared<std::promise<Reply<T>>>();
    auto fut = p->get_future();
    request(build, [p, expected, dec, v = version](const Frame& f) {
      p->set_value(decode_reply<T>(f, expected, dec, v));
    });
    return fut.get();
  }
};

}  // namespace annal::net
