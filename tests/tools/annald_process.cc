#include "tests/tools/annald_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace annal::tools::testing {

using Clock = std::chrono::steady_clock;

namespace {

// fork + execve of annald with stdout and stderr to the given files.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
            const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> argv_store = {ANNALD_PATH};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    // The test's own NOTIFY_SOCKET (if run under systemd) is not the node's.
    if (std::string_view(*e).rfind("NOTIFY_SOCKET=", 0) == 0) continue;
    env_store.emplace_back(*e);
  }
  env_store.insert(env_store.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* out = out_path.c_str();
  const char* err = err_path.c_str();
  const pid_t pid = ::fork();
  if (pid == 0) {
    int o = ::open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int e = out_path == err_path ? o : ::open(err, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (o >= 0) ::dup2(o, 1);
    if (e >= 0) ::dup2(e, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

NotifySocket::NotifySocket(const std::string& name) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (name.empty() || name.size() >= sizeof(addr.sun_path)) return;
  std::memcpy(addr.sun_path, name.data(), name.size());
  if (name[0] == '@') addr.sun_path[0] = '\0';
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  bound_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) ::close(fd_);
}

std::optional<std::string> NotifySocket::receive(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  char buf[4096];
  const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

AnnaldRun run_annald(const std::vector<std::string>& args, const std::string& dir,
                     std::chrono::seconds timeout) {
  static int n = 0;
  const std::string out = dir + "/run" + std::to_string(++n) + ".out";
  const std::string err = dir + "/run" + std::to_string(n) + ".err";
  AnnaldRun r;
  const pid_t pid = spawn(args, {}, out, err);
  auto code = wait_for(pid, timeout);
  if (!code) {
    ADD_FAILURE() << "annald did not exit within " << timeout.count() << " s";
    ::kill(pid, SIGKILL);
    code = wait_for(pid, std::chrono::seconds(10));
  }
  r.exit_code = code.value_or(-1);
  r.out = read_text_file(out);
  r.err = read_text_file(err);
  return r;
}

AnnaldProcess::AnnaldProcess(const std::vector<std::string>& args, const std::string& dir,
                             const std::vector<std::string>& env)
    : log_path_(dir + "/annald.log") {
  pid_ = spawn(args, env, log_path_, log_path_);
}

AnnaldProcess::~AnnaldProcess() {
  stop();
}

std::string AnnaldProcess::log_text() const {
  return read_text_file(log_path_);
}

std::optional<int> AnnaldProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (!exit_ && pid_ > 0) exit_ = wait_for(pid_, timeout);
  return exit_;
}

std::uint16_t AnnaldProcess::wait_port_file(const std::string& path, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::ifstream f(path);
    int port = 0;
    if (f >> port && port > 0) return static_cast<std::uint16_t>(port);
    if (wait_exit(std::chrono::milliseconds(0))) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

std::optional<int> AnnaldProcess::stop(std::chrono::milliseconds grace) {
  if (exit_ || pid_ <= 0) return exit_;
  ::kill(pid_, SIGTERM);
  auto r = wait_exit(grace);
  if (!r) {
    ADD_FAILURE() << "annald ignored SIGTERM for " << grace.count() << " ms; killing it\n"
                  << log_text();
    ::kill(pid_, SIGKILL);
    r = wait_exit(std::chrono::seconds(10));
  }
  return r;
}

}  // namespace annal::tools::testing
