#include "bench/load/append_load.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include "bench/load/handshake.h"
#include "engine/format.h"
#include "net/asio.h"
#include "net/client.h"
#include "proto/protocol.h"

namespace annal::bench {

namespace asio = net::asio;
namespace proto = net::proto;
using net::tcp;

// One io_context per generator thread; connections are spread over them.
struct AppendLoad::Threads {
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<std::thread> threads;
};

struct AppendLoad::Conn {
  explicit Conn(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  std::mt19937_64 rng;
  std::uint64_t next_id = 2;  // 1 was the hello
  // Requests in flight: id and send time (at most --in-flight, so a scan).
  std::vector<std::pair<std::uint64_t, std::int64_t>> pending;
  Histogram latency;
  std::uint64_t events = 0, appends = 0, errors = 0, refused = 0;
  std::uint64_t seen = proto::kNone;  // the newest position acknowledged to it
  std::string first_error;
};

AppendLoad::AppendLoad(const Options& o, AckTimes* acks)
    : o_(o), chooser_(o), acks_(acks), threads_(std::make_unique<Threads>()) {
  for (unsigned t = 0; t < std::min(o.threads, o.connections); ++t)
    threads_->ios.push_back(std::make_unique<asio::io_context>(1));
  if (o.tag_values <= 1000) {
    tags_.resize(std::max(o.tags, 1u));
    for (unsigned t = 0; t < tags_.size(); ++t)
      for (unsigned v = 0; v < o.tag_values; ++v) tags_[t].push_back(fmt::format("k{}:{}", t, v));
  }
}

AppendLoad::~AppendLoad() {
  for (auto& io : threads_->ios) io->stop();
  for (auto& t : threads_->threads)
    if (t.joinable()) t.join();
}

bool AppendLoad::connect_all() {
  for (unsigned i = 0; i < o_.connections; ++i) {
    auto conn = std::make_unique<Conn>(*threads_->ios[i % threads_->ios.size()]);
    proto::HelloOk ok;
    std::string why;
    if (!connect_and_hello(conn->socket, o_.host, fmt::format("annal-bench-append-{}", i), ok,
                           why)) {
      std::fprintf(stderr, "annal bench: %s\n", why.c_str());
      return false;
    }
    if (ok.max_in_flight < o_.in_flight) {
      std::fprintf(stderr, "annal bench: --in-flight %u exceeds the node's max_in_flight %u\n",
                   o_.in_flight, ok.max_in_flight);
      return false;
    }
    // Event ids come from this generator: a fixed --seed repeats the ids of an
    // earlier run, which the node then treats as retries (or conflicts).
    conn->rng.seed(o_.seed != 0
                       ? o_.seed * 1000003 + i
                       : (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}());
    conns_.push_back(std::move(conn));
  }
  return true;
}

bool AppendLoad::may_issue() {
  if (stopping_.load(std::memory_order_relaxed)) return false;
  if (o_.count > 0) {
    if (issued_.fetch_add(o_.batch, std::memory_order_relaxed) >= o_.count) {
      stopping_.store(true);
      return false;
    }
    return true;
  }
  return now_ns() < t_end_;
}

std::string AppendLoad::tag(unsigned key, std::uint64_t value) const {
  if (key < tags_.size()) return tags_[key][value];
  return fmt::format("k{}:{}", key, value);
}

void AppendLoad::add_request(Conn& c, std::string& out) {
  const std::uint64_t id = c.next_id++;
  if (o_.query_reads) {
    // A decision model's read: every event of one tag.
    proto::ReadQueryReq q;
    q.query.items.push_back(index::QueryItem{{}, {tag(0, c.rng() % o_.tag_values)}});
    q.count = o_.chunk;
    out += proto::encode(id, q);
    c.pending.emplace_back(id, now_ns());
    return;
  }
  proto::AppendReq req;
  req.stream = fmt::format("{}-{}", o_.stream_prefix, chooser_.pick(c.rng));
  req.expected = ExpectedRevision::any();
  req.events.resize(o_.batch);
  for (auto& ev : req.events) {
    ev.id = fast_id(c.rng);
    ev.type = "BenchEvent";
    ev.flags = engine::format::kFlagDataJson;
    ev.data = json_data(seq_.fetch_add(1, std::memory_order_relaxed), o_.size);
    ev.tags.reserve(o_.tags);
    for (unsigned t = 0; t < o_.tags; ++t) ev.tags.push_back(tag(t, c.rng() % o_.tag_values));
  }
  if (o_.condition) {
    // The uniqueness guard of a decision: no event with both of these tags.
    proto::AppendMultiReq m;
    m.condition.items.push_back(
        index::QueryItem{{}, {req.events[0].tags[0], req.events[0].tags[1]}});
    m.streams.push_back(
        index::StreamAppend{std::move(req.stream), req.expected, std::move(req.events)});
    if (o_.condition_after) m.after = c.seen;
    out += proto::encode(id, m);
  } else {
    out += proto::encode_append(id, req);
  }
  c.pending.emplace_back(id, now_ns());
}

// One response; false if the connection must stop.
bool AppendLoad::on_frame(Conn& c, std::uint8_t op, std::uint64_t id, std::string_view payload) {
  const std::int64_t t = now_ns();
  auto it = std::find_if(c.pending.begin(), c.pending.end(),
                         [id](const auto& p) { return p.first == id; });
  if (it == c.pending.end()) {
    ++c.errors;
    if (c.first_error.empty()) c.first_error = fmt::format("reply to unknown request {}", id);
    return false;
  }
  const std::int64_t sent = it->second;
  *it = c.pending.back();
  c.pending.pop_back();
  if (op == static_cast<std::uint8_t>(proto::Op::kAppendOk)) {
    auto ok = proto::decode_append_ok(payload);
    if (!ok) {
      ++c.errors;
      if (c.first_error.empty()) c.first_error = ok.status().to_string();
      return false;
    }
    acked_.fetch_add(ok->count, std::memory_order_relaxed);
    if (acks_)
      for (std::uint32_t k = 0; k < ok->count; ++k) acks_->set(ok->first_position + k, t);
    last_ack_.store(t, std::memory_order_relaxed);
    if (t >= t_measure_ && t <= t_end_) {
      ++c.appends;
      c.events += ok->count;
      c.latency.record(t - sent);
    }
    return true;
  }
  if (op == static_cast<std::uint8_t>(proto::Op::kAppendMultiOk) ||
      op == static_cast<std::uint8_t>(proto::Op::kReadOk)) {
    std::uint32_t n = 0;
    if (op == static_cast<std::uint8_t>(proto::Op::kReadOk)) {
      auto ok = proto::decode<proto::ReadOkView>(payload);
      if (!ok) {
        ++c.errors;
        if (c.first_error.empty()) c.first_error = ok.status().to_string();
        return false;
      }
      n = static_cast<std::uint32_t>(ok->events.size());
    } else {
      auto ok = proto::decode<proto::AppendMultiOk>(payload);
      if (!ok) {
        ++c.errors;
        if (c.first_error.empty()) c.first_error = ok.status().to_string();
        return false;
      }
      n = ok->count;
      const std::uint64_t last = ok->first_position + n - 1;
      if (c.seen == proto::kNone || last > c.seen) c.seen = last;
      if (acks_)
        for (std::uint32_t k = 0; k < n; ++k) acks_->set(ok->first_position + k, t);
    }
    acked_.fetch_add(n, std::memory_order_relaxed);
    last_ack_.store(t, std::memory_order_relaxed);
    if (t >= t_measure_ && t <= t_end_) {
      ++c.appends;
      c.events += n;
      c.latency.record(t - sent);
    }
    return true;
  }
  if (op == static_cast<std::uint8_t>(proto::Op::kAppendRefused)) {
    // The condition found a matching event: an answer, counted apart.
    if (t >= t_measure_ && t <= t_end_) ++c.refused;
    return true;
  }
  ++c.errors;
  if (c.first_error.empty()) {
    auto e = proto::decode_error(payload);
    c.first_error = e ? fmt::format("{} ({}): {}", proto::code_name(e->code),
                                    static_cast<int>(e->code), e->message)
                      : fmt::format("unexpected op {:#x}", op);
  }
  return true;
}

AppendResult AppendLoad::run() {
  const std::int64_t t_begin = now_ns();
  t_measure_ = t_begin + static_cast<std::int64_t>(o_.warmup * 1e9);
  t_end_ = o_.count > 0 ? INT64_MAX : t_measure_ + static_cast<std::int64_t>(o_.duration * 1e9);
  for (auto& cp : conns_) {
    Conn& c = *cp;
    asio::co_spawn(
        c.socket.get_executor(),
        [this, &c]() -> asio::awaitable<void> {
          std::string out;
          std::vector<char> in(64 << 10);
          std::size_t have = 0;
          for (unsigned k = 0; k < o_.in_flight && may_issue(); ++k) add_request(c, out);
          boost::system::error_code ec;
          auto fail = [&](const std::string& what) {
            ++c.errors;
            if (c.first_error.empty()) c.first_error = what;
            stopping_.store(true);
          };
          while (true) {
            if (!out.empty()) {
              co_await asio::async_write(c.socket, asio::buffer(out),
                                         asio::redirect_error(asio::use_awaitable, ec));
              if (ec) {
                fail("connection lost: " + ec.message());
                break;
              }
              out.clear();
            }
            if (c.pending.empty()) break;
            const std::size_t n =
                co_await c.socket.async_read_some(asio::buffer(in.data() + have, in.size() - have),
                                                  asio::redirect_error(asio::use_awaitable, ec));
            if (ec) {
              fail("connection lost: " + ec.message());
              break;
            }
            have += n;
            std::size_t at = 0;
            bool stop = false;
            while (have - at >= 4) {
              const auto* p = reinterpret_cast<const std::uint8_t*>(in.data() + at);
              const std::uint32_t len = proto::parse_length(std::span<const std::uint8_t, 4>(p, 4));
              if (len < proto::kFrameMinBody) {
                fail(fmt::format("invalid frame length {} from the node", len));
                stop = true;
                break;
              }
              if (have - at < 4 + std::size_t{len}) {
                if (4 + std::size_t{len} > in.size()) in.resize(4 + std::size_t{len});
                break;
              }
              const auto h = proto::parse_header(std::span<const std::uint8_t, 13>(p, 13));
              if (!on_frame(c, h.op, h.request_id,
                            std::string_view(in.data() + at + 13, len - proto::kFrameMinBody))) {
                stopping_.store(true);
                stop = true;
                break;
              }
              at += 4 + std::size_t{len};
              if (may_issue()) add_request(c, out);
            }
            if (stop) break;
            std::memmove(in.data(), in.data() + at, have - at);
            have -= at;
          }
          boost::system::error_code ignored;
          c.socket.shutdown(tcp::socket::shutdown_both, ignored);
        },
        asio::detached);
  }
  for (auto& io : threads_->ios) threads_->threads.emplace_back([&io] { io->run(); });
  for (auto& t : threads_->threads) t.join();
  threads_->threads.clear();

  AppendResult r;
  const std::int64_t stopped = std::min(now_ns(), t_end_);
  const std::int64_t window_end = o_.count > 0 && last_ack_.load() > 0 ? last_ack_.load() : stopped;
  r.seconds = static_cast<double>(window_end - t_measure_) / 1e9;
  for (auto& c : conns_) {
    r.events += c->events;
    r.appends += c->appends;
    r.errors += c->errors;
    r.refused += c->refused;
    r.latency.merge(c->latency);
    if (r.first_error.empty()) r.first_error = c->first_error;
  }
  r.total_events = acked_.load();
  return r;
}

}  // namespace annal::bench
