#pragma once
// The checks an append passes before it is queued for the writer: limits,
// names, event ids, flags, tags, and (multi-stream) the streams and the
// condition. Each error names the stream, the event index and the limit
// (kBadRequest / kTooLarge). See docs/semantics.md.
//
// Thread safety: pure functions.

#include "engine/status.h"
#include "index/query.h"
#include "index/store.h"

namespace annal::index {

// Limits as the store applies them: clamped to what the record format can
// hold (u16 lengths) and to one segment (records never span segments).
Limits clamp_limits(Limits limits, std::uint64_t segment_size);

// Sorts every event's tags bytewise and drops repeats: one event, one encoding.
void normalise_tags(std::vector<NewEvent>& events);

Status validate_append(const Limits& limits, const StreamAppend& a);
// `secondary`: whether the node keeps the secondary index (a condition needs it).
// The query limits that follow from the store's limits.
QueryLimits query_limits(const Limits& limits);

Status validate_multi_append(const Limits& limits, const MultiAppend& m, bool secondary);

}  // namespace annal::index
