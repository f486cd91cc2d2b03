#include "net/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/thread_name.h"
#include "net/asio.h"
#include "net/connection.h"
#include "net/group_registry.h"

namespace annal::net {

using detail::Connection;
using detail::Shared;

class Server::Impl {
 public:
  Impl(index::Store& store, ServerOptions options)
      : store_(store),
        threads_n_(options.threads ? options.threads
                                   : std::max(1u, std::thread::hardware_concurrency())),
        reads_(std::max(1u, options.read_threads)),
        shared_(std::make_shared<Shared>(store, std::move(options), reads_.get_executor())) {}

  ~Impl() { stop(shared_->options.shutdown_grace); }

  // One single-threaded io_context per network thread: a connection lives on
  // one of them for its whole life, so its handlers never hop between threads
  // (each hop was a futex wake-up per append; docs/benchmarks.md).
  void make_contexts() {
    for (unsigned i = 0; i < threads_n_; ++i) {
      ios_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(asio::make_work_guard(*ios_.back()));
      // Create the context's reactor (epoll, eventfd, timerfd) now rather
      // than at its first connection, so the node's descriptors are settled
      // once it listens.
      { asio::steady_timer reactor_now(*ios_.back()); }
      detail::Lane lane;
      lane.io = ios_.back().get();
      lane.acks = std::make_unique<detail::Inbox<detail::Ack>>(
          *lane.io, [](detail::Ack& a) { a.conn->finish_append(a); });
      lane.wakes = std::make_unique<detail::Inbox<std::shared_ptr<detail::Waiter>>>(
          *lane.io, [](std::shared_ptr<detail::Waiter>& w) { w->wake(); });
      shared_->lanes.push_back(std::move(lane));
    }
  }
  asio::io_context& next_context() { return *ios_[next_context_++ % ios_.size()]; }

  Status start() {
    const auto& o = shared_->options;
    make_contexts();
    // Consumer groups start reading before the first connection can join.
    const std::string groups_dir =
        o.groups_dir.empty() ? store_.log().options().dir + "/groups" : o.groups_dir;
    shared_->scavenger = std::make_unique<detail::Scavenger>(
        store_, detail::ScavengerOptions{.bytes_per_second = o.scavenge_bytes_per_second,
                                         .interval = o.scavenge_interval,
                                         .free_below = o.scavenge_free_below});
    shared_->backups = std::make_unique<detail::BackupRunner>(store_, groups_dir, o.server_version);
    shared_->groups = std::make_unique<detail::GroupRegistry>(*shared_, groups_dir);
    if (Status st = shared_->groups->open(); !st.is_ok()) {
      for (auto& io : ios_) io->stop();
      return Status(st.code(), "consumer groups: " + st.message());
    }
    asio::io_context& io0 = *ios_.front();
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(o.host, ec);
    if (ec) {
      tcp::resolver resolver(io0);
      auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
      if (ec || results.empty())
        return Status(Errc::kInvalidArgument,
                      fmt::format("cannot resolve listen host '{}': {}", o.host, ec.message()));
      addr = results.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, o.port);
    // The acceptor lives on its own strand: the accept loop and stop()'s close
    // never run concurrently.
    acceptor_.emplace(asio::make_strand(io0));
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Status(Errc::kIoError,
                    fmt::format("cannot listen on {}:{}: {}", o.host, o.port, ec.message()));
    port_ = acceptor_->local_endpoint().port();
    auto shared = shared_;
    listener_ =
        store_.add_durable_listener([shared](GlobalPosition end) { shared->notifier.notify(end); });
    has_listener_ = true;
    running_ = true;
    asio::co_spawn(acceptor_->get_executor(), accept_loop(), asio::detached);
    for (std::size_t i = 0; i < ios_.size(); ++i)
      threads_.emplace_back([ctx = ios_[i].get(), i] {
        engine::set_thread_name(fmt::format("annal-net-{}", i));
        ctx->run();
      });
    return Status::ok();
  }

  std::uint16_t port() const { return port_; }
  const ServerOptions& options() const { return shared_->options; }

  ServerStats stats() const {
    ServerStats s;
    s.connections_accepted = accepted_.load();
    s.connections_refused = refused_.load();
    s.connections_open = shared_->open_connections.load();
    s.requests_in_flight = shared_->in_flight.load();
    s.accepting = running_.load() && !shared_->stopping.load();
    return s;
  }

  const NetMetrics& metrics() const { return shared_->metrics; }
  std::vector<proto::GroupInfo> groups() const {
    return shared_->groups ? shared_->groups->list() : std::vector<proto::GroupInfo>{};
  }

  void stop(std::chrono::milliseconds grace) {
    if (!running_.exchange(false)) return;
    shared_->stopping = true;
    if (acceptor_) {
      asio::post(acceptor_->get_executor(), [this] {
        boost::system::error_code ec;
        acceptor_->close(ec);
      });
    }
    auto conns = live_connections();
    for (auto& c : conns) c->begin_shutdown();
    // Appends complete when the log acknowledges or fails them, but a disk
    // that hangs in fdatasync would hold them (and us) forever: wait up to
    // the grace, then answer the rest "outcome unknown".
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + grace;
    auto last_note = started;
    while (shared_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (std::chrono::steady_clock::now() - last_note > std::chrono::seconds(2)) {
        spdlog::info("shutdown: waiting for {} requests in flight", shared_->in_flight.load());
        last_note = std::chrono::steady_clock::now();
      }
    }
    if (shared_->in_flight.load() > 0) {
      spdlog::warn("shutdown: {} requests still in flight after {} ms", shared_->in_flight.load(),
                   grace.count());
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started);
      for (auto& c : live_connections()) c->abandon_appends(waited);
    }
    // The last answers get up to a second to be written (a peer that does
    // not read them is closed regardless).
    const auto flush_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    // Connections accepted while stopping began are included now.
    conns = live_connections();
    for (auto& c : conns) c->begin_shutdown();
    for (auto& c : conns) c->close_after_flush();
    while (shared_->open_connections.load() > 0 &&
           std::chrono::steady_clock::now() < flush_deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    for (auto& c : conns) c->close_now();
    conns.clear();
    if (has_listener_) {
      store_.remove_durable_listener(listener_);
      has_listener_ = false;
    }
    // Every group writes its progress once more, on its strand (the network
    // threads still run).
    if (shared_->groups) shared_->groups->stop();
    // A running scavenge stops between chunks (what it finished stays).
    if (shared_->scavenger) shared_->scavenger->stop();
    // A running backup stops between chunks and removes DEST.partial.
    if (shared_->backups) shared_->backups->stop();
    shared_->notifier.close();
    // Let the closes run, then stop.
    for (int i = 0; i < 500 && shared_->open_connections.load() > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    guards_.clear();
    for (auto& io : ios_) io->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // Acks that arrive from now on have no thread to answer them; queued ones
    // hold their connections alive.
    for (auto& lane : shared_->lanes) {
      lane.acks->close();
      lane.wakes->close();
    }
    reads_.join();
  }

 private:
  asio::awaitable<void> accept_loop() {
    std::uint64_t next_id = 1;
    while (true) {
      tcp::socket socket(asio::make_strand(next_context()));
      boost::system::error_code ec;
      co_await acceptor_->async_accept(socket, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
        spdlog::warn("accept failed: {}", ec.message());
        if (ec == asio::error::no_descriptors) {
          asio::steady_timer t(acceptor_->get_executor(), std::chrono::milliseconds(50));
          co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        continue;
      }
      const bool full = shared_->open_connections.load() >= shared_->options.max_connections;
      auto conn = std::make_shared<Connection>(shared_, std::move(socket), next_id++);
      if (full || shared_->stopping.load()) {
        ++refused_;
        if (full)
          conn->refuse(proto::Code::kTooManyConnections,
                       fmt::format("the node serves at most {} connections",
                                   shared_->options.max_connections));
        else
          conn->refuse(proto::Code::kShuttingDown, "node is shutting down");
        continue;
      }
      ++accepted_;
      {
        std::lock_guard lock(mu_);
        std::erase_if(conns_, [](const auto& kv) { return kv.second.expired(); });
        conns_[conn->id()] = conn;
      }
      conn->start();
    }
  }

  std::vector<std::shared_ptr<Connection>> live_connections() {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<Connection>> out;
    for (auto& [id, w] : conns_)
      if (auto c = w.lock()) out.push_back(std::move(c));
    return out;
  }

  index::Store& store_;
  unsigned threads_n_;
  asio::thread_pool reads_;  // declared before ios_: destroyed after them
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::size_t next_context_ = 0;  // accept loop only
  std::shared_ptr<Shared> shared_;
  std::optional<tcp::acceptor> acceptor_;
  std::vector<std::thread> threads_;
  std::uint16_t port_ = 0;
  std::uint64_t listener_ = 0;
  bool has_listener_ = false;
  std::atomic<bool> running_{false};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::mutex mu_;
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> conns_;
};

Server::Server(index::Store& store, ServerOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}
Server::~Server() = default;
Status Server::start() {
  return impl_->start();
}
std::uint16_t Server::port() const {
  return impl_->port();
}
const ServerOptions& Server::options() const {
  return impl_->options();
}
ServerStats Server::stats() const {
  return impl_->stats();
}
const NetMetrics& Server::metrics() const {
  return impl_->metrics();
}
std::vector<proto::GroupInfo> Server::groups() const {
  return impl_->groups();
}
void Server::stop() {
  impl_->stop(impl_->options().shutdown_grace);
}
void Server::stop(std::chrono::milliseconds grace) {
  impl_->stop(grace);
}

}  // namespace annal::net
