#include "net/shared.h"

#include "engine/status.h"
#include "net/group_registry.h"

namespace annal::net::detail {

Shared::Shared(index::Store& s, ServerOptions o, asio::thread_pool::executor_type r)
    : store(s), options(std::move(o)), reads(r) {
  metrics.enabled = options.metrics;
}
Shared::~Shared() = default;

Lane& Shared::lane_of(const asio::any_io_executor& ex) {
  auto& ctx = asio::query(ex, asio::execution::context);
  for (auto& l : lanes)
    if (static_cast<asio::execution_context*>(l.io) == &ctx) return l;
  ANNAL_CHECK(false, "a connection on an io_context the server does not run");
  return lanes.front();
}

}  // namespace annal::net::detail
