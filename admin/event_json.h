#pragma once
// An event as the admin API shows it (docs/operations.md, "Admin API"):
// one JSON object, on one line (it travels in Server-Sent Events too).
// Payloads: JSON kept as JSON ("data"), other valid UTF-8 as a string
// ("data_text"), anything else as base64 ("data_base64"); the same for
// metadata, which is left out when empty.

#include <cstdint>
#include <string>

#include "engine/record.h"

namespace annal::admin {

std::string event_json(const engine::RecordView& v);

// "2026-12-08T01:02:03.456789Z" for microseconds since the epoch.
std::string iso_time_us(std::int64_t us);

}  // namespace annal::admin
