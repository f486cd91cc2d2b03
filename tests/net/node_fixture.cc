#include "tests/net/node_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/format.h"

namespace annal::net::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Node::Node(const std::string& dir, std::vector<std::string> extra, bool expect_start)
    : dir_(dir), log_path_(dir + "/annald.log") {
  const std::string port_file = dir + "/port";
  std::error_code ec;
  fs::remove(port_file, ec);
  std::vector<std::string> args = {ANNALD_PATH,   "--data",         dir + "/data", "--listen",
                                   "127.0.0.1:0", "--port-file",    port_file,     "--log-level",
                                   "info",        "--segment-size", "8M",          "--min-free",
                                   "1M",          "--threads",      "2",           "--http",
                                   "127.0.0.1:0"};  // the admin endpoint too, on a port of its own
  // A test's own --segment-size replaces the default one.
  for (std::size_t i = 0; i + 1 < extra.size(); ++i)
    if (extra[i] == "--segment-size") {
      args[10] = extra[i + 1];
      extra.erase(extra.begin() + static_cast<std::ptrdiff_t>(i),
                  extra.begin() + static_cast<std::ptrdiff_t>(i) + 2);
      break;
    }
  for (auto& e : extra) args.push_back(e);
  // Everything the child needs is built before fork: only async-signal-safe
  // calls between fork and exec.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Keep sanitizer bookkeeping small, so memory figures mean something.
  std::vector<std::string> env_store;
  bool has_asan = false;
  for (char** e = environ; *e; ++e) {
    env_store.emplace_back(*e);
    if (env_store.back().rfind("ASAN_OPTIONS=", 0) == 0) has_asan = true;
  }
  if (!has_asan) env_store.emplace_back("ASAN_OPTIONS=quarantine_size_mb=4");
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* log_path = log_path_.c_str();
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  if (!expect_start) return;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    std::ifstream f(port_file);
    int p = 0;
    if (f >> p && p > 0) {
      port_ = static_cast<std::uint16_t>(p);
      return;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      ADD_FAILURE() << "annald exited with " << *exit_ << " before listening:\n" << log_text();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "annald did not write its port file in time:\n" << log_text();
}

Node::~Node() {
  stop();
}

std::string Node::log_text() const {
  std::ifstream f(log_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<int> Node::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_) return exit_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<int> Node::stop(std::chrono::milliseconds grace) {
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

std::unique_ptr<Client> Node::client(std::size_t subscription_queue,
                                     std::uint16_t protocol_version) const {
  ClientOptions o;
  o.port = port_;
  o.subscription_queue = subscription_queue;
  o.protocol_version = protocol_version;
  auto c = Client::connect(o);
  if (!c.ok()) {
    ADD_FAILURE() << "connect: " << c.error_string();
    return nullptr;
  }
  return std::move(c.value());
}

long Node::rss_kb(const char* field) const {
  std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, n, field) == 0) return std::atol(line.c_str() + n);
  return -1;
}

// ---------------------------------------------------------------------------

RawConn::RawConn(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ADD_FAILURE() << "raw connect: " << std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
  }
  int one = 1;
  if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawConn::~RawConn() {
  close();
}

void RawConn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawConn::send(std::string_view b) {
  while (!b.empty()) {
    ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    b.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool RawConn::read_exact(char* out, std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (n > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    ssize_t r = ::recv(fd_, out, n, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    out += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

std::optional<RawConn::Frame> RawConn::read_frame(std::chrono::milliseconds timeout) {
  std::array<std::uint8_t, 13> h{};
  if (!read_exact(reinterpret_cast<char*>(h.data()), 13, timeout)) return std::nullopt;
  auto hdr = proto::parse_header(std::span<const std::uint8_t, 13>(h));
  if (hdr.length < 9 || hdr.length > (64u << 20)) return std::nullopt;
  Frame f;
  f.op = hdr.op;
  f.id = hdr.request_id;
  f.payload.resize(hdr.length - 9);
  if (!f.payload.empty() && !read_exact(f.payload.data(), f.payload.size(), timeout))
    return std::nullopt;
  return f;
}

bool RawConn::handshake() {
  if (!send(proto::encode_hello(1, proto::Hello{}))) return false;
  auto f = read_frame();
  return f && f->op == static_cast<std::uint8_t>(proto::Op::kHelloOk);
}

bool RawConn::closed_by_peer(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
    if (r == 0) return true;
    if (r < 0 && errno != EINTR && errno != EAGAIN) return true;  // reset
  }
  return false;
}

proto::Error error_of(const RawConn::Frame& f) {
  EXPECT_EQ(f.op, static_cast<std::uint8_t>(proto::Op::kError)) << "op " << int(f.op);
  auto e = proto::decode_error(f.payload);
  if (!e.is_ok()) return proto::Error{proto::Code::kInternal, proto::kNone, "undecodable"};
  return e.value();
}

index::NewEvent json_event(const std::string& type, const std::string& data,
                           const std::string& metadata) {
  index::NewEvent e;
  e.id = EventId::random();
  e.type = type;
  e.data = data;
  e.flags = engine::format::kFlagDataJson;
  if (!metadata.empty()) {
    e.metadata = metadata;
    e.flags |= engine::format::kFlagMetadataJson;
  }
  return e;
}

int scale() {
  const char* s = std::getenv("ANNAL_NET_TEST_SCALE");
  int v = s ? std::atoi(s) : 1;
  return v > 0 ? v : 1;
}

// Runs `annal ARGS --server 127.0.0.1:PORT` as a user would; its exit
// status, with stdout and stderr in *out.
int run_annal(std::uint16_t port, const std::string& args, std::string* out) {
  const std::string cmd = std::string(ANNAL_CLI_PATH) + " " + args +
                          " --server 127.0.0.1:" + std::to_string(port) + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  out->clear();
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out->append(buf, n);
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace annal::net::testing
