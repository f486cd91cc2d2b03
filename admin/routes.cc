#include "admin/routes.h"

#include <fmt/format.h>

#include "admin/api.h"
#include "admin/console/console_assets.h"
#include "admin/health.h"
#include "admin/metrics_text.h"
#include "admin/target.h"

namespace annal::admin {

Reply route(const Node& node, std::string_view raw) {
  auto t = Target::parse(raw);
  if (!t) return error_reply(400, "bad_request", "malformed percent-escape in the request target");
  const std::string& p = t->path;
  if (p == "/metrics") {
    if (!node.options.metrics)
      return error_reply(404, "not_found", "metrics are off (annald --metrics off)");
    return Reply{200, "text/plain; version=0.0.4; charset=utf-8", render_metrics(node)};
  }
  if (p == "/health/live") return health_live();
  if (p == "/health/ready") return health_ready(node);
  if (p == "/api/info") return api_info(node);
  if (p == "/api/log") return api_log(node, *t);
  if (p == "/api/groups") return api_groups(node);
  constexpr std::string_view kStreams = "/api/streams/", kEvents = "/api/events/";
  if (p.starts_with(kStreams)) return api_stream(node, p.substr(kStreams.size()), *t);
  if (p.starts_with(kEvents)) return api_event(node, std::string_view(p).substr(kEvents.size()));
  if (p == "/" || p == "/index.html" || p.starts_with("/console/")) {
    if (const ConsoleAsset* a = find_console_asset(p)) {
      return Reply{200, std::string(a->content_type), std::string(a->body)};
    }
    return error_reply(404, "not_found", fmt::format("no console file at {}", p));
  }
  return error_reply(404, "not_found", fmt::format("nothing at {}", p));
}

}  // namespace annal::admin
