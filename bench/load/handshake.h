#pragma once
// Connecting one generator connection: TCP connect, hello and hello_ok, and
// single frames read synchronously before the connection goes async.

#include <string>

#include "net/asio.h"
#include "proto/protocol.h"

namespace annal::bench {

// Reads exactly one frame (no byte beyond it); false with `why` on failure.
bool read_frame_sync(net::tcp::socket& s, net::proto::FrameHeader& h, std::string& payload,
                     std::string& why);

// Connects `socket` to HOST:PORT and performs the handshake; false with
// `why` on any failure (the node's own message when it refuses).
bool connect_and_hello(net::tcp::socket& socket, const std::string& host_port,
                       const std::string& client_name, net::proto::HelloOk& ok, std::string& why);

}  // namespace annal::bench
