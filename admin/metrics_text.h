#pragma once
// /metrics: the node's metrics in the Prometheus text exposition format
// 0.0.4. Every metric, its type and meaning: docs/operations.md, "Metrics".

#include <string>

#include "admin/node.h"

namespace annal::admin {

std::string render_metrics(const Node& node);

// Prometheus text-format helpers (exposed for tests).
std::string escape_label(std::string_view v);
// A double as Prometheus writes it ("0.000025", "1e+06", "+Inf").
std::string format_value(double v);

}  // namespace annal::admin
