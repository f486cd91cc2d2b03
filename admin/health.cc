#include "admin/health.h"

#include <fmt/format.h>

#include "engine/file.h"
#include "tools/offline_json.h"

namespace annal::admin {

Readiness readiness(const Node& node) {
  Readiness r;
  tools::JsonObject checks;
  checks.str("store", "open");

  const bool accepting = node.server.stats().accepting;
  checks.str("server", accepting ? "accepting" : "stopping");
  if (!accepting) r.reasons.push_back("the node is stopping: it accepts no new connections");

  const Status writer = node.store.log().writer_status();
  checks.str("writer", writer.is_ok() ? "ok" : "failed");
  if (!writer.is_ok()) r.reasons.push_back("the log writer failed: " + writer.to_string());

  auto free = engine::FileSystem::posix().free_bytes(node.options.data_dir);
  if (!free.is_ok()) {
    checks.str("disk", "unknown");
    r.reasons.push_back(fmt::format("cannot tell the free space of {}: {}", node.options.data_dir,
                                    free.status().to_string()));
  } else {
    checks.num("disk_free_bytes", *free);
    checks.num("disk_free_floor_bytes", node.options.min_free_bytes);
    const bool above = *free >= node.options.min_free_bytes;
    checks.str("disk", above ? "ok" : "below_floor");
    if (!above)
      r.reasons.push_back(
          fmt::format("{} bytes free on the file system of {}, below the free-space floor of {} "
                      "(appends are refused with no_space)",
                      *free, node.options.data_dir, node.options.min_free_bytes));
  }
  r.ready = r.reasons.empty();
  r.checks_json = checks.done();
  return r;
}

Reply health_live() {
  return json_reply("{\"status\":\"live\"}");
}

Reply health_ready(const Node& node) {
  const Readiness r = readiness(node);
  std::string body = r.ready ? "{\"status\":\"ready\"" : "{\"status\":\"not_ready\"";
  if (!r.ready) {
    body += ",\"reasons\":[";
    for (std::size_t i = 0; i < r.reasons.size(); ++i) {
      if (i > 0) body += ',';
      tools::append_json_string(body, r.reasons[i]);
    }
    body += ']';
  }
  body += ",\"checks\":" + r.checks_json + "}";
  Reply reply = json_reply(std::move(body));
  if (!r.ready) reply.status = 503;
  return reply;
}

Reply error_reply(unsigned status, std::string_view code, std::string_view message) {
  std::string body = "{\"error\":{\"code\":";
  tools::append_json_string(body, code);
  body += ",\"message\":";
  tools::append_json_string(body, message);
  body += "}}";
  Reply r{status, "application/json; charset=utf-8", std::move(body)};
  return r;
}

Reply json_reply(std::string body) {
  return Reply{200, "application/json; charset=utf-8", std::move(body)};
}

}  // namespace annal::admin
