#pragma once
// What the admin endpoint's handlers look at: the store, the protocol
// server, and the node's settings they report.
//
// Thread safety: the store and server are thread-safe; AdminOptions is set
// before the admin server starts and only read afterwards.

#include <chrono>
#include <cstdint>
#include <string>

#include "index/store.h"
#include "net/server.h"

namespace annal::admin {

struct AdminOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7412;  // 0 = ephemeral; see AdminServer::port()
  std::string data_dir;       // for disk free space and /api/info
  std::uint64_t min_free_bytes = 0;
  std::uint64_t segment_size = 0;
  std::string server_version = "annal 0.1.0";
  bool metrics = true;  // false: /metrics answers 404 (annald --metrics off)
  // How often a tail (/api/tail) looks for new events, and how often an idle
  // one sends a keep-alive comment.
  std::chrono::milliseconds tail_poll{100};
  std::chrono::milliseconds tail_keepalive{15'000};
  // Requests open at once on the endpoint; more are closed at accept.
  std::uint32_t max_sessions = 64;
};

struct Node {
  index::Store& store;
  const net::Server& server;
  const AdminOptions& options;
  std::chrono::system_clock::time_point started;
};

}  // namespace annal::admin
