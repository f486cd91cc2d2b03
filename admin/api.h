#pragma once
// The admin endpoint's read-only JSON API (docs/operations.md, "Admin API"):
// node information, pages of the log and of a stream, one event, consumer
// groups. Each handler is a plain function of the node and the request
// target, run on the admin thread (reads are synchronous store reads).

#include "admin/node.h"
#include "admin/reply.h"
#include "admin/target.h"

namespace annal::admin {

Reply api_info(const Node& node);
Reply api_log(const Node& node, const Target& t);
Reply api_stream(const Node& node, const std::string& stream, const Target& t);
Reply api_event(const Node& node, std::string_view position);
Reply api_groups(const Node& node);

// The error reply for a store error: 404 for what is not there, 500 (with
// its code: corruption, io_error, ...) for what could not be read, so that
// damage is never shown as absence.
Reply store_error(const Status& st);

// Default and largest page of /api/log and /api/streams.
inline constexpr std::uint64_t kDefaultPage = 20;
inline constexpr std::uint64_t kMaxPage = 1000;

}  // namespace annal::admin
