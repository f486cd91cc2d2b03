#include "admin/tail.h"

#include <fmt/format.h>

#include <vector>

#include "admin/api.h"
#include "admin/event_json.h"
#include "read/paging.h"

namespace annal::admin {
namespace {

// Collects a step's events as SSE messages.
class SseSink final : public read::EventSink {
 public:
  std::size_t size_of(const engine::RecordView& v) const override { return v.size + 128; }
  void add(const engine::RecordView& v) override {
    const std::size_t before = out.size();
    out += fmt::format("event: event\nid: {}\ndata: ", v.position.value);
    out += event_json(v);
    out += "\n\n";
    bytes_ += out.size() - before;
    ++count_;
  }
  std::size_t bytes() const override { return bytes_; }
  std::uint32_t count() const override { return count_; }
  std::string out;

 private:
  std::size_t bytes_ = 0;
  std::uint32_t count_ = 0;
};

asio::awaitable<void> write_all(beast::tcp_stream& stream, const std::string& s) {
  stream.expires_after(std::chrono::seconds(30));  // a reader that stopped reading is dropped
  co_await asio::async_write(stream, asio::buffer(s), asio::use_awaitable);
}

asio::awaitable<void> write_reply(beast::tcp_stream& stream, const Reply& r) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
  res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = r.body;
  res.keep_alive(false);
  res.prepare_payload();
  stream.expires_after(std::chrono::seconds(30));
  co_await http::async_write(stream, res, asio::use_awaitable);
}

}  // namespace

asio::awaitable<void> run_tail(beast::tcp_stream& stream, const Node& node, const Target& target,
                               const std::atomic<bool>& stopping) {
  const bool of_stream = target.has("stream");
  const std::string name = target.get("stream");
  const auto from = target.number("from", 0);
  if (!from.error.empty()) {
    co_await write_reply(stream, error_reply(400, "bad_request", from.error));
    co_return;
  }
  if (of_stream && name.empty()) {
    co_await write_reply(stream,
                         error_reply(400, "bad_request", "query parameter 'stream' is empty"));
    co_return;
  }
  // Without `from`, only what is appended from now on.
  std::uint64_t next = from.value;
  if (!target.has("from")) {
    if (of_stream) {
      auto last = node.store.last_revision(name);
      next = last.is_ok() ? last->value + 1 : 0;
    } else {
      next = node.store.log().durable_end().value;
    }
  }
  co_await write_all(stream,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n"
                     "X-Accel-Buffering: no\r\n\r\n: annal tail\n\n");
  asio::steady_timer timer(co_await asio::this_coro::executor);
  auto idle_since = std::chrono::steady_clock::now();
  read::PageLimits limits;
  limits.max_count = 200;
  limits.max_bytes = 1u << 20;
  while (!stopping.load(std::memory_order_acquire)) {
    SseSink sink;
    read::Page page =
        of_stream ? read::read_stream_page(node.store, name, next, index::Direction::kForward,
                                           limits, sink)
                  : read::read_all_page(node.store, next, index::Direction::kForward, limits, sink);
    const bool missing = !page.status.is_ok() && (page.status.code() == Errc::kStreamNotFound ||
                                                  page.status.code() == Errc::kNotFound);
    if (!page.status.is_ok() && !missing) {
      // Damage or an I/O error: say so and end; never skip past it silently.
      co_await write_all(stream,
                         fmt::format("event: error\ndata: {}\n\n", store_error(page.status).body));
      co_return;
    }
    if (sink.count() > 0) {
      next = page.next;
      co_await write_all(stream, sink.out);
      idle_since = std::chrono::steady_clock::now();
      if (!page.end) continue;  // more is there now
    } else if (page.status.is_ok() && !of_stream) {
      next = std::max(next, page.next);  // skipped removed events
    }
    if (std::chrono::steady_clock::now() - idle_since >= node.options.tail_keepalive) {
      co_await write_all(stream, ": keepalive\n\n");
      idle_since = std::chrono::steady_clock::now();
    }
    timer.expires_after(node.options.tail_poll);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace annal::admin
