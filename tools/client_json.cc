#include "tools/client_json.h"

#include <fmt/format.h>
#include <simdjson.h>

#include "engine/format.h"
#include "tools/offline_json.h"

namespace annal::tools {
namespace {
// A JSON payload re-emitted on one line (it was validated when written);
// falls back to a base64 string if it does not minify.
void json_payload(std::string& o, const std::string& text, const char* key) {
  std::string out(text.size(), '\0');
  std::size_t n = 0;
  if (!text.empty() &&
      simdjson::minify(text.data(), text.size(), out.data(), n) == simdjson::SUCCESS) {
    o += fmt::format(",\"{}\":", key);
    o.append(out.data(), n);
  } else {
    o += fmt::format(",\"{}\":\"{}\",\"{}_encoding\":\"base64\"", key, base64_encode(text), key);
  }
}

}  // namespace

std::string event_json(const engine::EventRecord& e) {
  std::string o;
  if (e.flags & engine::format::kFlagLost)
    return fmt::format("{{\"position\":{},\"lost\":true}}", e.position.value);
  o += fmt::format("{{\"position\":{},\"stream\":", e.position.value);
  append_json_string(o, e.stream);
  o += fmt::format(",\"revision\":{},\"type\":", e.revision.value);
  append_json_string(o, e.type);
  o += fmt::format(",\"id\":\"{}\",\"timestamp_us\":{}", e.id.to_string(), e.timestamp_us);
  if (e.flags & engine::format::kFlagDataJson) {
    json_payload(o, e.data, "data");
  } else {
    o += fmt::format(",\"data\":\"{}\",\"data_encoding\":\"base64\"", base64_encode(e.data));
  }
  if (e.flags & engine::format::kFlagMetadataJson) {
    json_payload(o, e.metadata, "metadata");
  } else if (!e.metadata.empty()) {
    o += fmt::format(",\"metadata\":\"{}\",\"metadata_encoding\":\"base64\"",
                     base64_encode(e.metadata));
  }
  // Protocol v2: tags and ids (UTF-8, checked by the node), only when present.
  if (!e.tags.empty()) {
    o += ",\"tags\":[";
    for (std::size_t i = 0; i < e.tags.size(); ++i) {
      if (i > 0) o += ',';
      append_json_string(o, e.tags[i]);
    }
    o += ']';
  }
  if (!e.correlation_id.empty()) {
    o += ",\"correlation_id\":";
    append_json_string(o, e.correlation_id);
  }
  if (!e.causation_id.empty()) {
    o += ",\"causation_id\":";
    append_json_string(o, e.causation_id);
  }
  o += "}";
  return o;
}

}  // namespace annal::tools
