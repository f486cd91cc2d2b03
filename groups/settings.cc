#include "groups/settings.h"

#include <fmt/format.h>

namespace annal::groups {

Status validate_name(const std::string& name) {
  if (name.empty()) return Status(Errc::kInvalidArgument, "group name must not be empty");
  if (name.size() > kMaxNameLength)
    return Status(Errc::kInvalidArgument,
                  fmt::format("group name is {} bytes, at most {}", name.size(), kMaxNameLength));
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f)
      return Status(Errc::kInvalidArgument, "group name must not contain control characters");
  return Status::ok();
}

Status validate(const Settings& s) {
  auto bad = [](const char* field, const std::string& why) {
    return Status(Errc::kInvalidArgument, fmt::format("group setting '{}' {}", field, why));
  };
  switch (s.target) {
    case Target::kStream:
      if (s.stream.empty()) return bad("stream", "must not be empty for target stream");
      if (!s.stream_prefix.empty() || !s.type_prefix.empty() || !s.index_value.empty())
        return bad("target", "stream takes only a stream (no prefixes or index key)");
      break;
    case Target::kAll:
      if (!s.stream.empty() || !s.index_value.empty())
        return bad("target", "all takes only stream_prefix and type_prefix");
      break;
    case Target::kIndex:
      if (s.index_value.empty()) return bad("index_value", "must not be empty for target index");
      if (!s.stream.empty() || !s.stream_prefix.empty() || !s.type_prefix.empty())
        return bad("target", "index takes only index_kind and index_value");
      break;
  }
  if (s.max_in_flight == 0 || s.max_in_flight > kMaxInFlightLimit)
    return bad("max_in_flight", fmt::format("must be 1..{}", kMaxInFlightLimit));
  if (s.ack_timeout_ms == 0) return bad("ack_timeout_ms", "must be at least 1");
  return Status::ok();
}

const char* target_name(Target t) {
  switch (t) {
    case Target::kStream:
      return "stream";
    case Target::kAll:
      return "all";
    case Target::kIndex:
      return "index";
  }
  return "unknown";
}
const char* strategy_name(Strategy s) {
  return s == Strategy::kOrdered ? "ordered" : "round-robin";
}
const char* start_name(Start s) {
  switch (s) {
    case Start::kBeginning:
      return "beginning";
    case Start::kEnd:
      return "end";
    case Start::kPosition:
      return "position";
    case Start::kTime:
      return "time";
  }
  return "unknown";
}

}  // namespace annal::groups
