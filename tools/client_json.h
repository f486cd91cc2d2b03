#pragma once
// Events as the client commands print them: one JSON object per line, for jq
// (docs/node.md). JSON payloads are re-emitted minified; anything else is
// base64 with a "<field>_encoding" marker. Strings and base64 are written by
// the offline tools' helpers (tools/offline_json.h), so both print alike.

#include <string>
#include <string_view>

#include "engine/record.h"

namespace annal::tools {

std::string event_json(const engine::EventRecord& e);

}  // namespace annal::tools
