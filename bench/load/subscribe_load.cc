#include "bench/load/subscribe_load.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "bench/load/handshake.h"
#include "net/asio.h"
#include "net/frame_buffer.h"
#include "proto/protocol.h"

namespace annal::bench {

namespace asio = net::asio;
namespace proto = net::proto;
using net::tcp;

struct SubscribeLoad::Sub {
  explicit Sub(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  std::uint64_t sub_id = 0;
  std::uint64_t next = 0;  // position expected next
  std::atomic<std::uint64_t> received{0};
  std::uint64_t before_ack = 0;
  Histogram delay;
  std::string error;  // set on the load's thread; read after it stopped
  std::atomic<bool> failed{false};

  void fail(std::string why) {
    if (error.empty()) error = std::move(why);
    failed.store(true);
  }
};

namespace {

// One frame of a subscriber; false if it must stop.
bool on_frame(SubscribeLoad::Sub& s, AckTimes& acks, std::uint8_t op, std::uint64_t id,
              std::string_view payload) {
  if (id != s.sub_id) {
    s.fail(fmt::format("frame for request {} on subscription {}", id, s.sub_id));
    return false;
  }
  if (op == static_cast<std::uint8_t>(proto::Op::kCheckpoint)) return true;
  if (op != static_cast<std::uint8_t>(proto::Op::kSubEvents)) {
    auto e = proto::decode_error(payload);
    s.fail(e ? fmt::format("subscription ended: {} ({}): {}", proto::code_name(e->code),
                           static_cast<int>(e->code), e->message)
             : fmt::format("unexpected op {:#x}", op));
    return false;
  }
  auto m = proto::decode<proto::SubEventsView>(payload);  // views into the frame
  if (!m) {
    s.fail(m.status().to_string());
    return false;
  }
  const std::int64_t t = now_ns();
  std::uint64_t got = 0;
  for (const auto& e : m->events) {
    if (e.position.value != s.next) {
      s.fail(fmt::format("expected position {}, got {}", s.next, e.position.value));
      if (e.position.value < s.next) continue;  // a duplicate
    }
    s.next = e.position.value + 1;
    ++got;
    const std::int64_t a = acks.get(e.position.value);
    if (a == 0 || a > t) {
      ++s.before_ack;
      s.delay.record(0);
    } else {
      s.delay.record(t - a);
    }
  }
  s.received.fetch_add(got, std::memory_order_relaxed);
  return true;
}

asio::awaitable<void> receive(SubscribeLoad::Sub& s, AckTimes& acks) {
  net::detail::FrameBuffer in;
  std::size_t want = 4;
  for (;;) {
    auto d = in.data();
    while (d.size() >= 4) {
      const std::uint32_t len = proto::parse_length(d.first<4>());
      if (len < proto::kFrameMinBody || len > proto::kDefaultMaxFrame) {
        s.fail(fmt::format("invalid frame length {} from the node", len));
        co_return;
      }
      want = 4 + std::size_t{len};
      if (d.size() < want) break;
      const auto h = proto::parse_header(d.first<13>());
      if (!on_frame(s, acks, h.op, h.request_id, in.view(13, len - proto::kFrameMinBody)))
        co_return;
      in.consume(want);
      want = 4;
      d = in.data();
    }
    const auto space = in.room(want);
    boost::system::error_code ec;
    const std::size_t n = co_await s.socket.async_read_some(
        asio::buffer(space.data(), space.size()), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // closed by finish(), or the node went away (counted there)
    in.commit(n);
  }
}

}  // namespace

SubscribeLoad::SubscribeLoad(const Options& o, AckTimes& acks, std::uint64_t base)
    : o_(o), acks_(acks), base_(base), io_(std::make_unique<asio::io_context>(1)) {}

SubscribeLoad::~SubscribeLoad() {
  io_->stop();
  if (thread_.joinable()) thread_.join();
}

bool SubscribeLoad::connect_all() {
  for (unsigned i = 0; i < o_.subscribers; ++i) {
    auto s = std::make_unique<Sub>(*io_);
    proto::HelloOk ok;
    std::string why;
    if (!connect_and_hello(s->socket, o_.host, fmt::format("annal-bench-sub-{}", i), ok, why)) {
      std::fprintf(stderr, "annal bench: %s\n", why.c_str());
      return false;
    }
    proto::SubscribeReq q;
    q.target = proto::Target::kAll;
    q.from = base_;
    s->sub_id = 2;
    boost::system::error_code ec;
    asio::write(s->socket, asio::buffer(proto::encode_subscribe(s->sub_id, q)), ec);
    proto::FrameHeader h;
    std::string payload;
    if (ec || !read_frame_sync(s->socket, h, payload, why)) {
      std::fprintf(stderr, "annal bench: subscribe: %s\n", ec ? ec.message().c_str() : why.c_str());
      return false;
    }
    if (h.op != static_cast<std::uint8_t>(proto::Op::kSubscribeOk)) {
      auto e = proto::decode_error(payload);
      std::fprintf(stderr, "annal bench: subscribe refused: %s\n",
                   e ? e->message.c_str() : "unexpected reply");
      return false;
    }
    s->next = base_;
    subs_.push_back(std::move(s));
  }
  return true;
}

void SubscribeLoad::start() {
  for (auto& s : subs_) asio::co_spawn(*io_, receive(*s, acks_), asio::detached);
  thread_ = std::thread([this] { io_->run(); });
}

std::uint64_t SubscribeLoad::slowest() const {
  std::uint64_t lo = UINT64_MAX;
  for (const auto& s : subs_) lo = std::min(lo, s->received.load(std::memory_order_relaxed));
  return subs_.empty() ? 0 : lo;
}

SubscribeResult SubscribeLoad::finish(std::uint64_t end, double settle) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(settle);
  for (auto& s : subs_)
    while (s->received.load() < end - base_ && !s->failed.load() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  asio::post(*io_, [this] {
    for (auto& s : subs_) {
      boost::system::error_code ignored;
      s->socket.close(ignored);
    }
  });
  thread_.join();
  SubscribeResult r;
  r.min_received = UINT64_MAX;
  for (auto& s : subs_) {
    const std::uint64_t got = s->received.load();
    if (s->error.empty() && got != end - base_)
      s->error = fmt::format("received {} of {} events", got, end - base_);
    r.delay.merge(s->delay);
    r.min_received = std::min(r.min_received, got);
    r.before_ack += s->before_ack;
    if (s->error.empty())
      ++r.complete;
    else if (r.first_error.empty())
      r.first_error = s->error;
  }
  if (subs_.empty()) r.min_received = 0;
  return r;
}

}  // namespace annal::bench
