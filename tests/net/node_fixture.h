#pragma once
// Starts the real annald binary on 127.0.0.1 with an ephemeral port and a
// temporary data directory, and talks to it with the client library or with
// raw sockets (for malformed input).

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/client.h"
#include "proto/protocol.h"
#include "tests/common/temp_dir.h"

namespace annal::net::testing {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("annal-net") {}
};

class Node {
 public:
  // Starts annald on dir/data with the given extra flags; waits for the port.
  // If `expect_start` is false, the caller checks exit_code() instead.
  explicit Node(const std::string& dir, std::vector<std::string> extra_flags = {},
                bool expect_start = true);
  ~Node();  // stop()

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool started() const { return port_ != 0; }
  std::string log_text() const;

  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status
  // (exit code, or 128 + signal), or nullopt if already stopped.
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(20));
  // Waits for the process to exit by itself (e.g. a refused start).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  std::unique_ptr<Client> client(std::size_t subscription_queue = 64,
                                 std::uint16_t protocol_version = proto::kProtocolVersion) const;
  // Resident memory of the node, from /proc/PID/status (kB).
  long rss_kb(const char* field = "VmRSS:") const;

 private:
  std::string dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::optional<int> exit_;
};

// A raw TCP connection for sending arbitrary bytes.
class RawConn {
 public:
  explicit RawConn(std::uint16_t port);
  ~RawConn();
  bool send(std::string_view bytes);
  // Sends hello and reads hello_ok.
  bool handshake();
  struct Frame {
    std::uint8_t op = 0;
    std::uint64_t id = 0;
    std::string payload;
  };
  // Reads one frame; nullopt on close or timeout.
  std::optional<Frame> read_frame(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True if the peer closed the connection (read returns EOF) within timeout.
  bool closed_by_peer(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void close();

 private:
  bool read_exact(char* out, std::size_t n, std::chrono::milliseconds timeout);
  int fd_ = -1;
};

proto::Error error_of(const RawConn::Frame& f);

// One event with JSON data.
index::NewEvent json_event(const std::string& type, const std::string& data,
                           const std::string& metadata = "");

// Runs `annal ARGS --server 127.0.0.1:PORT` as a user would; its exit
// status, with stdout and stderr in *out.
int run_annal(std::uint16_t port, const std::string& args, std::string* out);

// Scales loop sizes: ANNAL_NET_TEST_SCALE (default 1).
int scale();

}  // namespace annal::net::testing
