#pragma once
// How the node tells others it is ready: port files, and the service
// manager, with systemd's notification
// protocol (sd_notify(3)): a datagram of "KEY=VALUE\n" lines to the unix
// socket named by $NOTIFY_SOCKET (a path, or "@name" for the abstract
// namespace). The protocol is small and stable; implementing it here keeps
// libsystemd out of the node's dependencies (docs/operations.md, "Package and
// systemd unit").
//
// With NOTIFY_SOCKET unset or empty (not started by systemd with
// Type=notify), every call does nothing and returns ok.
//
// Thread safety: any thread; each call opens its own socket. Reads the
// environment, so do not call concurrently with setenv.

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/status.h"

namespace annal::tools {

// Sends `state` (e.g. "READY=1\nSTATUS=serving"). An error names the socket.
Status notify_service_manager(std::string_view state);

// READY=1 plus STATUS=`status`: call once the node serves (recovered, the
// ports listening, port files written).
Status notify_ready(std::string_view status);

// Writes `port` and a newline to `path` through `path`.tmp and a rename, so
// a reader (a script, a test) never sees a partial number. Errors name the file.
Status write_port_file(const std::string& path, std::uint16_t port);

// STOPPING=1 plus STATUS=`status`: call when a stop begins.
Status notify_stopping(std::string_view status);

}  // namespace annal::tools
