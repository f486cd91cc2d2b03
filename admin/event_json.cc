#include "admin/event_json.h"

#include <fmt/format.h>
#include <simdjson.h>
#include <time.h>

#include "engine/format.h"
#include "tools/offline_json.h"

namespace annal::admin {
namespace {

using tools::append_json_string;

void payload(std::string& o, std::string_view bytes, bool json, std::string_view key) {
  if (json && !bytes.empty()) {
    // Minified: one line, as Server-Sent Events need. The node checked it at
    // append; a payload that does not minify falls through to the forms below.
    std::string out(bytes.size(), '\0');
    std::size_t n = 0;
    if (simdjson::minify(bytes.data(), bytes.size(), out.data(), n) == simdjson::SUCCESS) {
      o += fmt::format(",\"{}\":", key);
      o.append(out.data(), n);
      return;
    }
  }
  if (simdjson::validate_utf8(bytes.data(), bytes.size())) {
    o += fmt::format(",\"{}_text\":", key);
    append_json_string(o, bytes);
  } else {
    o += fmt::format(",\"{}_base64\":\"{}\"", key, tools::base64_encode(bytes));
  }
}

void optional_string(std::string& o, std::string_view key, std::string_view v) {
  o += fmt::format(",\"{}\":", key);
  if (v.empty())
    o += "null";
  else
    append_json_string(o, v);
}

}  // namespace

std::string iso_time_us(std::int64_t us) {
  std::int64_t secs = us / 1'000'000;
  std::int64_t frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  const time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

std::string event_json(const engine::RecordView& v) {
  std::string o;
  o.reserve(256 + v.data.size() + v.metadata.size());
  o += fmt::format("{{\"position\":{}", v.position.value);
  if (v.flags & engine::format::kFlagLost) {
    o += ",\"lost\":true}";
    return o;
  }
  o += ",\"stream\":";
  append_json_string(o, v.stream);
  o += fmt::format(",\"revision\":{},\"type\":", v.revision.value);
  append_json_string(o, v.type);
  o += fmt::format(",\"id\":\"{}\",\"timestamp\":\"{}\"", v.id.to_string(),
                   iso_time_us(v.timestamp_us));
  payload(o, v.data, (v.flags & engine::format::kFlagDataJson) != 0, "data");
  if (!v.metadata.empty())
    payload(o, v.metadata, (v.flags & engine::format::kFlagMetadataJson) != 0, "metadata");
  o += ",\"tags\":[";
  bool first = true;
  for (std::string_view tag : v.tags) {
    if (!first) o += ',';
    first = false;
    append_json_string(o, tag);
  }
  o += ']';
  optional_string(o, "correlation_id", v.correlation_id);
  optional_string(o, "causation_id", v.causation_id);
  o += '}';
  return o;
}

}  // namespace annal::admin
