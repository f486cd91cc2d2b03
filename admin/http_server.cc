#include "admin/http_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <set>
#include <thread>

#include "admin/beast.h"
#include "admin/routes.h"
#include "admin/tail.h"
#include "engine/thread_name.h"

namespace annal::admin {

class AdminServer::Impl {
 public:
  Impl(index::Store& store, const net::Server& server, AdminOptions options)
      : options_(std::move(options)),
        node_{store, server, options_, std::chrono::system_clock::now()} {}

  Status start() {
    try {
      boost::system::error_code ec;
      const auto address = asio::ip::make_address(options_.host, ec);
      if (ec)
        return Status(Errc::kInvalidArgument,
                      fmt::format("--http: '{}' is not an IP address", options_.host));
      tcp::endpoint ep(address, options_.port);
      acceptor_.open(ep.protocol());
      acceptor_.set_option(asio::socket_base::reuse_address(true));
      acceptor_.bind(ep);
      acceptor_.listen();
      port_ = acceptor_.local_endpoint().port();
    } catch (const boost::system::system_error& e) {
      return Status(Errc::kIoError, fmt::format("cannot listen for HTTP on {}:{}: {}",
                                                options_.host, options_.port, e.what()));
    }
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] {
      engine::set_thread_name("annal-http");
      io_.run();
    });
    return Status::ok();
  }

  std::uint16_t port() const { return port_; }

  void stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      for (auto* s : sessions_) s->cancel();  // ends reads, writes and tails
    });
    // Tails notice `stopping_` within a poll; then the context runs out of
    // work. Whatever is left after two seconds is dropped.
    for (int i = 0; i < 200 && !io_.stopped(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    io_.stop();
    thread_.join();
  }

 private:
  asio::awaitable<void> accept_loop() {
    while (!stopping_) {
      boost::system::error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (stopping_ || ec == asio::error::operation_aborted) co_return;
        spdlog::warn("http: accept failed: {}", ec.message());
        continue;
      }
      if (sessions_.size() >= options_.max_sessions) {
        socket.close(ec);  // over the limit: the client sees the connection closed
        continue;
      }
      asio::co_spawn(io_, session(std::move(socket)), asio::detached);
    }
  }

  // One connection: requests answered in turn (HTTP/1.1 keep-alive) until
  // the client closes, goes idle for 60 s, or asks for a tail.
  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    sessions_.insert(&stream.socket());
    struct Leave {
      Impl* self;
      tcp::socket* s;
      ~Leave() { self->sessions_.erase(s); }
    } leave{this, &stream.socket()};
    beast::flat_buffer buffer;
    try {
      while (!stopping_) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(16 * 1024);
        stream.expires_after(std::chrono::seconds(60));
        co_await http::async_read(stream, buffer, parser, asio::use_awaitable);
        auto& req = parser.get();
        const bool keep_alive = req.keep_alive();
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
          co_await write(stream, req,
                         error_reply(405, "method_not_allowed",
                                     fmt::format("{} is not allowed: the admin "
                                                 "endpoint is read-only (GET)",
                                                 std::string(req.method_string()))));
          break;
        }
        const std::string_view target(req.target().data(), req.target().size());
        if (target == "/api/tail" || target.starts_with("/api/tail?")) {
          auto t = Target::parse(target);
          if (!t) {
            co_await write(stream, req, error_reply(400, "bad_request", "malformed target"));
            break;
          }
          co_await run_tail(stream, node_, *t, stopping_);
          break;
        }
        co_await write(stream, req, route(node_, target));
        if (!keep_alive) break;
      }
    } catch (const boost::system::system_error& e) {
      // The client went away, timed out, or sent something that is not HTTP.
      if (e.code() != http::error::end_of_stream && e.code() != asio::error::operation_aborted &&
          e.code() != beast::error::timeout && e.code() != asio::error::eof &&
          e.code() != asio::error::connection_reset)
        spdlog::debug("http: {}", e.what());
    }
    boost::system::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  static asio::awaitable<void> write(beast::tcp_stream& stream,
                                     const http::request<http::empty_body>& req, const Reply& r) {
    http::response<http::string_body> res{static_cast<http::status>(r.status), req.version()};
    res.set(http::field::server, "annal");
    res.set(http::field::content_type, r.content_type);
    res.set(http::field::cache_control, "no-store");
    res.set("X-Content-Type-Options", "nosniff");
    res.keep_alive(req.keep_alive());
    res.body() = r.body;
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    stream.expires_after(std::chrono::seconds(30));
    if (req.method() == http::verb::head) {
      http::response_serializer<http::string_body> sr{res};
      sr.split(true);
      co_await http::async_write_header(stream, sr, asio::use_awaitable);
    } else {
      co_await http::async_write(stream, res, asio::use_awaitable);
    }
  }

  AdminOptions options_;
  Node node_;
  asio::io_context io_{1};
  tcp::acceptor acceptor_{io_};
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::set<tcp::socket*> sessions_;  // the io_context's thread only
  std::thread thread_;
};

AdminServer::AdminServer(index::Store& store, const net::Server& server, AdminOptions options)
    : impl_(std::make_unique<Impl>(store, server, std::move(options))) {}
AdminServer::~AdminServer() {
  stop();
}
Status AdminServer::start() {
  return impl_->start();
}
std::uint16_t AdminServer::port() const {
  return impl_->port();
}
void AdminServer::stop() {
  impl_->stop();
}

}  // namespace annal::admin
