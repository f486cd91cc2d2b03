#include "tests/reliability/wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace annal::reliability {

namespace proto = annal::net::proto;

WireConn::WireConn(std::uint16_t port, int recv_timeout_ms) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    return;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    error_ = std::string("connect: ") + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{recv_timeout_ms / 1000, (recv_timeout_ms % 1000) * 1000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

WireConn::WireConn(WireConn&& o) noexcept
    : fd_(o.fd_), buf_(std::move(o.buf_)), error_(std::move(o.error_)) {
  o.fd_ = -1;
}

WireConn::~WireConn() {
  close();
}

void WireConn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool WireConn::send_all(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = std::string("send: ") + std::strerror(errno);
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool WireConn::fill(std::size_t n, bool block) {
  char tmp[65536];
  while (buf_.size() < n) {
    ssize_t r = ::recv(fd_, tmp, sizeof tmp, block ? 0 : MSG_DONTWAIT);
    if (r > 0) {
      buf_.append(tmp, static_cast<std::size_t>(r));
      continue;
    }
    if (r == 0) {
      error_ = "connection closed by the node";
      return false;
    }
    if (errno == EINTR) continue;
    if (!block && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    error_ = std::string("recv: ") + std::strerror(errno);
    return false;
  }
  return true;
}

std::optional<Frame> WireConn::read_frame() {
  if (fd_ < 0 || !fill(13, true)) return std::nullopt;
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf_.data());
  const auto h = proto::parse_header(std::span<const std::uint8_t, 13>(p, 13));
  if (h.length < proto::kFrameMinBody) {
    error_ = "bad frame length from node";
    return std::nullopt;
  }
  const std::size_t total = 4 + static_cast<std::size_t>(h.length);
  if (!fill(total, true)) return std::nullopt;
  Frame f{h.op, h.request_id, buf_.substr(13, total - 13)};
  buf_.erase(0, total);
  return f;
}

std::optional<Frame> WireConn::poll_frame() {
  if (fd_ < 0) return std::nullopt;
  fill(13, false);
  if (buf_.size() < 13) return std::nullopt;
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf_.data());
  const auto h = proto::parse_header(std::span<const std::uint8_t, 13>(p, 13));
  const std::size_t total = 4 + static_cast<std::size_t>(h.length);
  fill(total, false);
  if (buf_.size() < total) return std::nullopt;
  Frame f{h.op, h.request_id, buf_.substr(13, total - 13)};
  buf_.erase(0, total);
  return f;
}

bool WireConn::wait_closed(int timeout_ms) {
  pollfd pfd{fd_, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char tmp[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    int rc = ::poll(&pfd, 1, 50);
    if (rc > 0) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, MSG_DONTWAIT);
      if (n == 0) return true;
      if (n < 0 && errno != EAGAIN && errno != EINTR) return true;  // reset
      if (n > 0) buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  return false;
}

bool WireConn::handshake(const std::string& name) {
  proto::Hello h;
  h.client_name = name;
  if (!send_all(proto::encode_hello(1, h))) return false;
  auto f = read_frame();
  if (!f) return false;
  if (f->op != static_cast<std::uint8_t>(proto::Op::kHelloOk)) {
    error_ = "handshake answered with op " + std::to_string(f->op);
    return false;
  }
  return true;
}

}  // namespace annal::reliability
