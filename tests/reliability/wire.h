#pragma once
// A raw protocol connection for tests that need many connections cheaply or
// malformed input: a blocking TCP socket to 127.0.0.1 plus frame helpers.
// Uses the codec of net/protocol.h, not the client library.

#include <cstdint>
#include <optional>
#include <string>

#include "proto/protocol.h"

namespace annal::reliability {

struct Frame {
  std::uint8_t op = 0;
  std::uint64_t request_id = 0;
  std::string payload;
};

class WireConn {
 public:
  // Connects (blocking) with a receive timeout; ok() tells whether it worked.
  explicit WireConn(std::uint16_t port, int recv_timeout_ms = 10000);
  ~WireConn();
  WireConn(const WireConn&) = delete;
  WireConn& operator=(const WireConn&) = delete;
  WireConn(WireConn&& o) noexcept;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& error() const { return error_; }
  bool send_all(const std::string& bytes);
  // The next whole frame; nullopt on EOF, error or timeout (error() says).
  std::optional<Frame> read_frame();
  // A frame if one is fully available now (non-blocking), else nullopt.
  std::optional<Frame> poll_frame();
  // True once the peer closed the connection (reads return 0) within timeout.
  bool wait_closed(int timeout_ms);
  // Sends hello and waits for hello_ok.
  bool handshake(const std::string& name = "wire");
  void close();

 private:
  bool fill(std::size_t n, bool block);
  int fd_ = -1;
  std::string buf_;
  std::string error_;
};

}  // namespace annal::reliability
