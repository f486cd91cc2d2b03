#pragma once
// /health/live and /health/ready (docs/operations.md, "Health").
// Ready: the store is open (recovered, index open: the endpoint starts only
// after both), the protocol server is accepting, the log writer has not
// failed, and the data directory's file system is above the free-space floor.

#include <string>
#include <vector>

#include "admin/node.h"
#include "admin/reply.h"

namespace annal::admin {

struct Readiness {
  bool ready = true;
  std::vector<std::string> reasons;  // why not, one sentence each
  std::string checks_json;           // {"writer":"ok",...}
};
Readiness readiness(const Node& node);

Reply health_live();
Reply health_ready(const Node& node);

}  // namespace annal::admin
