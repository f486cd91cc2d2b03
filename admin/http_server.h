#pragma once
// The node's HTTP admin endpoint (annald --http): /metrics, /health/*, the
// read-only JSON API under /api and the web console, on a port of its own
// (docs/operations.md). Boost.Beast over the project's Asio.
//
// Threads: one thread of its own runs the endpoint's io_context; every
// request is answered there (store reads included: the console's pages are
// small), so the endpoint never takes time from the protocol's network
// threads or the log writer. Tails (/api/tail, Server-Sent Events) poll the
// durable end every AdminOptions::tail_poll rather than hook the writer, so
// an idle or absent console costs the append path nothing.
//
// Thread safety: start() and stop() from one thread (annald's main);
// port() after start() from any thread.

#include <cstdint>
#include <memory>

#include "admin/node.h"
#include "engine/status.h"

namespace annal::admin {

class AdminServer {
 public:
  // The store and the server must outlive the endpoint.
  AdminServer(index::Store& store, const net::Server& server, AdminOptions options);
  ~AdminServer();  // stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds, listens, starts the thread. kIoError naming host:port on failure.
  Status start();
  std::uint16_t port() const;
  // Closes the listener and every open request (tails end), joins the thread.
  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace annal::admin
