#pragma once
// Runs the real annald as a child process on 127.0.0.1 with an ephemeral
// port (--listen 127.0.0.1:0 --port-file), for the crash loop and the
// connection-load test. Stopped by PID only.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace annal::reliability {

class NodeProcess {
 public:
  // Starts `annald --data data_dir ...extra`; its stderr goes to log_path.
  // Waits up to `timeout` for the port file; started() tells whether it came up.
  NodeProcess(std::string annald, std::string data_dir, std::string work_dir,
              std::vector<std::string> extra,
              std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~NodeProcess();  // SIGKILL if still running
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  bool started() const { return port_ != 0; }
  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string log_tail(std::size_t bytes = 4000) const;

  // SIGKILL and reap.
  void kill9();
  // SIGTERM, wait up to `grace`, then SIGKILL. The exit status (code, or
  // 128 + signal).
  int terminate(std::chrono::milliseconds grace = std::chrono::seconds(20));
  // Entries in /proc/PID/fd, -1 if unreadable.
  long open_fds() const;
  // Descriptors of the node that are sockets (listening and connected): what
  // the connection tests count, since the node's background work (segment
  // files, the index's files) opens and closes other descriptors at any time.
  long open_sockets() const;
  // A field of /proc/PID/status in kB (VmRSS:, VmHWM:), -1 if unreadable.
  long status_kb(const char* field) const;

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

// Runs a program to completion; returns its exit code (128 + signal if
// killed) and its combined output in *output.
int run_program(const std::vector<std::string>& argv, std::string* output);

}  // namespace annal::reliability
