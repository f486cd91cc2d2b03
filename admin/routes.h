#pragma once
// Which handler answers a request (everything but the /api/tail stream).

#include <string_view>

#include "admin/node.h"
#include "admin/reply.h"

namespace annal::admin {

// `target` as received ("/api/log?from=3"); `method` GET or HEAD (others are
// refused before). Unknown paths get 404 not_found.
Reply route(const Node& node, std::string_view target);

}  // namespace annal::admin
