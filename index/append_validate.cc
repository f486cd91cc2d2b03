#include "index/append_validate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>

#include "engine/format.h"
#include "index/lifecycle.h"
#include "index/query.h"

namespace annal::index {
namespace {

namespace format = engine::format;

// Tags are sorted and deduplicated before this (normalise_tags).
Status validate_extension(const Limits& limits, const std::string& stream, std::size_t i,
                          const NewEvent& e) {
  if (e.tags.size() > limits.max_tags)
    return Status(Errc::kTooLarge,
                  fmt::format("append to '{}': event {} has {} tags; the limit (max_tags) is {}",
                              stream, i, e.tags.size(), limits.max_tags));
  for (const auto& t : e.tags) {
    if (t.empty())
      return Status(Errc::kBadRequest,
                    fmt::format("append to '{}': event {} has an empty tag", stream, i));
    if (t.size() > limits.max_tag_size)
      return Status(Errc::kTooLarge,
                    fmt::format("append to '{}': event {} has a tag of {} bytes; the limit "
                                "(max_tag_size) is {}",
                                stream, i, t.size(), limits.max_tag_size));
  }
  for (const auto* id : {&e.correlation_id, &e.causation_id})
    if (id->size() > limits.max_correlation_id)
      return Status(Errc::kTooLarge,
                    fmt::format("append to '{}': event {} has a {} id of {} bytes; the limit "
                                "(max_correlation_id) is {}",
                                stream, i, id == &e.correlation_id ? "correlation" : "causation",
                                id->size(), limits.max_correlation_id));
  return Status::ok();
}

std::size_t extension_bytes(const NewEvent& e) {
  if (e.tags.empty() && e.correlation_id.empty() && e.causation_id.empty()) return 0;
  std::size_t tag_bytes = 0;
  for (const auto& t : e.tags) tag_bytes += t.size();
  return format::extension_size(e.tags.size(), tag_bytes, e.correlation_id.size(),
                                e.causation_id.size());
}

Status validate_stream_name(const Limits& limits, const std::string& stream) {
  if (stream.empty()) return Status(Errc::kBadRequest, "stream name is empty");
  if (stream.size() > limits.max_stream_name)
    return Status(Errc::kTooLarge,
                  fmt::format("stream name is {} bytes; the limit (max_stream_name) is {}",
                              stream.size(), limits.max_stream_name));
  if (is_metadata_stream(stream))
    return Status(Errc::kBadRequest,
                  fmt::format("stream '{}' is a metadata stream (its name starts with '{}'): it "
                              "is written by set_metadata and delete_stream only",
                              stream, kMetaPrefix));
  return Status::ok();
}

// One stream's events; adds their encoded size to `total`.
Status validate_events(const Limits& limits, const std::string& stream,
                       const std::vector<NewEvent>& events, std::size_t& total) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    const NewEvent& e = events[i];
    if (e.id.is_nil())
      return Status(Errc::kBadRequest,
                    fmt::format("append to '{}': event {} has a nil event id", stream, i));
    if (e.type.empty())
      return Status(Errc::kBadRequest,
                    fmt::format("append to '{}': event {} has an empty event type", stream, i));
    if (e.type.size() > limits.max_event_type)
      return Status(
          Errc::kTooLarge,
          fmt::format("append to '{}': event {} type is {} bytes; the limit (max_event_type) is {}",
                      stream, i, e.type.size(), limits.max_event_type));
    if ((e.flags & ~(format::kFlagDataJson | format::kFlagMetadataJson)) != 0)
      return Status(
          Errc::kBadRequest,
          fmt::format("append to '{}': event {} has unknown flags {:#x}", stream, i, e.flags));
    ANNAL_RETURN_IF_ERROR(validate_extension(limits, stream, i, e));
    const std::size_t body = e.metadata.size() + e.data.size();
    if (body > limits.max_event_size)
      return Status(Errc::kTooLarge,
                    fmt::format("append to '{}': event {} is {} bytes (metadata + data); the limit "
                                "(max_event_size) is {}",
                                stream, i, body, limits.max_event_size));
    total += format::record_size(stream.size(), e.type.size(), e.metadata.size(), e.data.size(),
                                 extension_bytes(e));
  }
  return Status::ok();
}

// One event id names one event: an append carrying an id twice would leave
// readers with two events under one id and make retries ambiguous.
struct IdKey {
  std::uint64_t hi, lo;
  std::uint32_t part, index;
};
Status check_distinct_ids(std::vector<IdKey>& ids, const std::vector<const StreamAppend*>& parts) {
  if (ids.size() < 2) return Status::ok();
  // Sorted as two integers each (any order finds equal neighbours);
  // comparing ids byte by byte took as long as checking their JSON.
  std::sort(ids.begin(), ids.end(), [](const IdKey& x, const IdKey& y) {
    return x.hi != y.hi ? x.hi < y.hi : x.lo < y.lo;
  });
  for (std::size_t k = 1; k < ids.size(); ++k) {
    if (ids[k].hi != ids[k - 1].hi || ids[k].lo != ids[k - 1].lo) continue;
    auto [a, b] = std::minmax(ids[k - 1], ids[k], [](const IdKey& x, const IdKey& y) {
      return x.part != y.part ? x.part < y.part : x.index < y.index;
    });
    const StreamAppend& pa = *parts[a.part];
    const StreamAppend& pb = *parts[b.part];
    const std::string id = pa.events[a.index].id.to_string();
    if (a.part == b.part)
      return Status(Errc::kBadRequest,
                    fmt::format("append to '{}': events {} and {} have the same event id {}",
                                pa.stream, a.index, b.index, id));
    return Status(Errc::kBadRequest,
                  fmt::format("append: event {} of '{}' and event {} of '{}' have the same event "
                              "id {}",
                              a.index, pa.stream, b.index, pb.stream, id));
  }
  return Status::ok();
}

void collect_ids(const StreamAppend& a, std::uint32_t part, std::vector<IdKey>& out) {
  for (std::size_t i = 0; i < a.events.size(); ++i) {
    IdKey k{0, 0, part, static_cast<std::uint32_t>(i)};
    std::memcpy(&k.hi, a.events[i].id.bytes.data(), 8);
    std::memcpy(&k.lo, a.events[i].id.bytes.data() + 8, 8);
    out.push_back(k);
  }
}

}  // namespace

Limits clamp_limits(Limits limits, std::uint64_t segment_size) {
  limits.max_stream_name = std::min<std::size_t>(limits.max_stream_name, UINT16_MAX);
  limits.max_event_type = std::min<std::size_t>(limits.max_event_type, UINT16_MAX);
  // The record's extension holds these counts and lengths as u16.
  limits.max_tags = std::min<std::size_t>(limits.max_tags, UINT16_MAX);
  limits.max_tag_size = std::min<std::size_t>(limits.max_tag_size, UINT16_MAX);
  limits.max_correlation_id = std::min<std::size_t>(limits.max_correlation_id, UINT16_MAX);
  // One append must fit in one segment (records never span segments).
  const std::uint64_t room =
      segment_size > format::kSegmentHeaderSize ? segment_size - format::kSegmentHeaderSize : 0;
  limits.max_append_size =
      static_cast<std::size_t>(std::min<std::uint64_t>(limits.max_append_size, room));
  limits.max_event_size = std::min(limits.max_event_size, limits.max_append_size);
  return limits;
}

void normalise_tags(std::vector<NewEvent>& events) {
  for (auto& e : events) {
    if (e.tags.size() < 2) continue;
    std::sort(e.tags.begin(), e.tags.end());
    e.tags.erase(std::unique(e.tags.begin(), e.tags.end()), e.tags.end());
  }
}

Status validate_append(const Limits& limits, const StreamAppend& a) {
  ANNAL_RETURN_IF_ERROR(validate_stream_name(limits, a.stream));
  if (a.events.empty())
    return Status(Errc::kBadRequest, fmt::format("append to '{}' has no events", a.stream));
  if (a.events.size() > limits.max_append_events)
    return Status(Errc::kTooLarge,
                  fmt::format("append to '{}' has {} events; the limit (max_append_events) is {}",
                              a.stream, a.events.size(), limits.max_append_events));
  std::size_t total = 0;
  ANNAL_RETURN_IF_ERROR(validate_events(limits, a.stream, a.events, total));
  std::vector<IdKey> ids;
  ids.reserve(a.events.size());
  collect_ids(a, 0, ids);
  ANNAL_RETURN_IF_ERROR(check_distinct_ids(ids, {&a}));
  if (total > limits.max_append_size)
    return Status(
        Errc::kTooLarge,
        fmt::format("append to '{}' is {} bytes encoded; the limit (max_append_size, clamped to "
                    "the segment size) is {}",
                    a.stream, total, limits.max_append_size));
  return Status::ok();
}

Status validate_multi_append(const Limits& limits, const MultiAppend& m, bool secondary) {
  if (m.streams.empty()) return Status(Errc::kBadRequest, "multi-stream append names no streams");
  if (m.streams.size() > limits.max_append_streams)
    return Status(Errc::kTooLarge,
                  fmt::format("append names {} streams; the limit (max_append_streams) is {}",
                              m.streams.size(), limits.max_append_streams));
  std::size_t events = 0;
  std::size_t total = 0;
  std::vector<const StreamAppend*> parts;
  std::set<std::string_view> names;
  for (const auto& a : m.streams) {
    ANNAL_RETURN_IF_ERROR(validate_stream_name(limits, a.stream));
    if (!names.insert(a.stream).second)
      return Status(Errc::kBadRequest,
                    fmt::format("append names stream '{}' twice (one entry per stream: put all "
                                "of its events in it)",
                                a.stream));
    if (a.events.empty() && a.expected.kind == ExpectedRevision::Kind::kAny)
      return Status(Errc::kBadRequest,
                    fmt::format("append: stream '{}' has no events and expects any revision, "
                                "which checks nothing",
                                a.stream));
    ANNAL_RETURN_IF_ERROR(validate_events(limits, a.stream, a.events, total));
    events += a.events.size();
    parts.push_back(&a);
  }
  if (events == 0)
    return Status(Errc::kBadRequest,
                  "append has no events (streams that are only checked need at least one "
                  "written event beside them)");
  if (events > limits.max_append_events)
    return Status(Errc::kTooLarge,
                  fmt::format("append has {} events; the limit (max_append_events) is {}", events,
                              limits.max_append_events));
  std::vector<IdKey> ids;
  ids.reserve(events);
  for (std::uint32_t i = 0; i < parts.size(); ++i) collect_ids(*parts[i], i, ids);
  ANNAL_RETURN_IF_ERROR(check_distinct_ids(ids, parts));
  if (total > limits.max_append_size)
    return Status(Errc::kTooLarge,
                  fmt::format("append is {} bytes encoded; the limit (max_append_size, clamped to "
                              "the segment size) is {}",
                              total, limits.max_append_size));
  if (m.condition) {
    if (!secondary)
      return Status(Errc::kInvalidArgument,
                    "an append condition needs the secondary index, which this node does not "
                    "keep (annald --secondary-index off)");
    ANNAL_RETURN_IF_ERROR(validate_query(m.condition->fail_if_events_match, query_limits(limits)));
  }
  return Status::ok();
}

QueryLimits query_limits(const Limits& limits) {
  QueryLimits q;
  q.max_items = limits.max_query_items;
  q.max_types = limits.max_query_item_types;
  q.max_tags = limits.max_tags;
  q.max_type_size = limits.max_event_type;
  q.max_tag_size = limits.max_tag_size;
  return q;
}

}  // namespace annal::index
