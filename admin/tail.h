#pragma once
// /api/tail: the log or one stream as Server-Sent Events, from a position
// (or revision) on, live. Each event is "event: event", "id: <position>",
// "data: <event JSON>" and a blank line; ": keepalive" comments keep an idle
// connection open through proxies. The response has no length: it ends when
// the client goes away or the endpoint stops.

#include <atomic>

#include "admin/beast.h"
#include "admin/node.h"
#include "admin/target.h"

namespace annal::admin {

// Writes the response head and then events until the client is gone or
// `stopping` is set. A bad query is answered as a JSON error instead.
asio::awaitable<void> run_tail(beast::tcp_stream& stream, const Node& node, const Target& target,
                               const std::atomic<bool>& stopping);

}  // namespace annal::admin
