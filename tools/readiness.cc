#include "tools/readiness.h"

#include <fmt/format.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace annal::tools {

Status notify_service_manager(std::string_view state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || *env == '\0') return Status::ok();
  const std::string_view name(env);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (name[0] != '/' && name[0] != '@')
    return Status(
        Errc::kInvalidArgument,
        fmt::format("NOTIFY_SOCKET '{}' is neither an absolute path nor @abstract", name));
  if (name.size() >= sizeof(addr.sun_path))
    return Status(Errc::kInvalidArgument, fmt::format("NOTIFY_SOCKET '{}' is too long", name));
  std::memcpy(addr.sun_path, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '@')
    addr.sun_path[0] = '\0';  // abstract: the name is exactly the bytes given, no terminator
  else
    ++len;  // a path: include its terminating NUL
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return Status(Errc::kIoError, fmt::format("cannot create a socket to notify {}: {}", name,
                                              std::strerror(errno)));
  const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                                reinterpret_cast<const sockaddr*>(&addr), len);
  const int err = errno;
  ::close(fd);
  if (sent < 0)
    return Status(Errc::kIoError,
                  fmt::format("cannot notify NOTIFY_SOCKET {}: {}", name, std::strerror(err)));
  if (static_cast<std::size_t>(sent) != state.size())
    return Status(Errc::kIoError, fmt::format("short notification to NOTIFY_SOCKET {}", name));
  return Status::ok();
}

Status write_port_file(const std::string& path, std::uint16_t port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << port << "\n";
    f.flush();
    if (!f) return Status(Errc::kIoError, fmt::format("cannot write {}", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return Status(Errc::kIoError,
                  fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(errno)));
  return Status::ok();
}

Status notify_ready(std::string_view status) {
  return notify_service_manager(fmt::format("READY=1\nSTATUS={}", status));
}

Status notify_stopping(std::string_view status) {
  return notify_service_manager(fmt::format("STOPPING=1\nSTATUS={}", status));
}

}  // namespace annal::tools
