#include "net/json_check.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/format.h"

namespace annal::net::detail {
namespace {

constexpr std::uint32_t kAllowedEventFlags =
    engine::format::kFlagDataJson | engine::format::kFlagMetadataJson;

bool valid_utf8(std::string_view s) {
  return simdjson::validate_utf8(s.data(), s.size());
}

}  // namespace

std::optional<std::string> JsonCheck::non_utf8(const index::NewEvent& e) {
  for (std::size_t t = 0; t < e.tags.size(); ++t)
    if (!valid_utf8(e.tags[t])) return fmt::format("tag {} is not valid UTF-8", t);
  if (!valid_utf8(e.correlation_id)) return std::string("correlation_id is not valid UTF-8");
  if (!valid_utf8(e.causation_id)) return std::string("causation_id is not valid UTF-8");
  return std::nullopt;
}

simdjson::error_code JsonCheck::parse(const std::string& text) {
  buf_.resize(text.size() + simdjson::SIMDJSON_PADDING);
  std::copy(text.begin(), text.end(), buf_.begin());
  return parser_.parse(buf_.data(), text.size(), false).error();
}

std::optional<EventRejection> JsonCheck::check(const std::string& stream,
                                               const std::vector<index::NewEvent>& events) {
  auto invalid = [&](std::size_t i, std::string_view field, simdjson::error_code err) {
    return EventRejection{proto::Code::kInvalidJson, i,
                          fmt::format("event {} of append to '{}': {} is not valid JSON: {}", i,
                                      stream, field, simdjson::error_message(err))};
  };
  std::optional<EventRejection> out;
  for (std::size_t i = 0; i < events.size() && !out; ++i) {
    const auto& e = events[i];
    if (e.flags & ~kAllowedEventFlags) {
      out = EventRejection{proto::Code::kBadRequest, i,
                           fmt::format("event {} of append to '{}': unknown flags 0x{:x}", i,
                                       stream, e.flags & ~kAllowedEventFlags)};
    } else if (auto why = non_utf8(e)) {
      out = EventRejection{proto::Code::kBadRequest, i,
                           fmt::format("event {} of append to '{}': {}", i, stream, *why)};
    } else if (e.flags & engine::format::kFlagDataJson) {
      if (auto err = parse(e.data); err != simdjson::SUCCESS) out = invalid(i, "data", err);
    }
    if (!out && (e.flags & engine::format::kFlagMetadataJson)) {
      if (auto err = parse(e.metadata); err != simdjson::SUCCESS) out = invalid(i, "metadata", err);
    }
  }
  // Large payloads leave a large buffer behind: give it back.
  if (buf_.capacity() > (1u << 20)) std::vector<char>().swap(buf_);
  return out;
}

}  // namespace annal::net::detail
