#pragma once
// Runs the real annald binary for the tests of its options, config file, logs
// and readiness: to completion (--check-config, --help, bad options), or as
// a node that serves until stop(). Output goes to files in the test's
// directory; nodes listen on 127.0.0.1 port 0 and are stopped by their PID.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace annal::tools::testing {

struct AnnaldRun {
  int exit_code = -1;  // exit status, or 128 + signal
  std::string out, err;
};

// Runs `annald ARGS` (with `env` added to the environment) and waits up to
// `timeout` for it to exit (killed after that: a test failure).
AnnaldRun run_annald(const std::vector<std::string>& args, const std::string& dir,
                     std::chrono::seconds timeout = std::chrono::seconds(60));

class AnnaldProcess {
 public:
  // Starts `annald ARGS` with stdout+stderr to dir/annald.log and `env`
  // ("NAME=value") added to the environment.
  AnnaldProcess(const std::vector<std::string>& args, const std::string& dir,
                const std::vector<std::string>& env = {});
  ~AnnaldProcess();  // stop()
  AnnaldProcess(const AnnaldProcess&) = delete;
  AnnaldProcess& operator=(const AnnaldProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Waits until `path` holds a port number: the port, or 0 if the process
  // exited first or the time ran out.
  std::uint16_t wait_port_file(const std::string& path,
                               std::chrono::seconds timeout = std::chrono::seconds(60));
  // SIGTERM, then SIGKILL after `grace`; the exit status.
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(20));
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string log_text() const;

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_;
};

// A unix datagram socket standing in for systemd's notification socket
// (NOTIFY_SOCKET), bound at `name`: a path, or "@name" for the abstract
// namespace.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  bool bound() const { return bound_; }
  // The next datagram, or nullopt after `timeout_ms`.
  std::optional<std::string> receive(int timeout_ms = 10'000);

 private:
  int fd_ = -1;
  bool bound_ = false;
};

std::string read_text_file(const std::string& path);
void write_text_file(const std::string& path, const std::string& text);

}  // namespace annal::tools::testing
