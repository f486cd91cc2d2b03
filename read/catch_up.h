#pragma once
// The steps of a subscription's cursor (docs/protocol.md §3.4): a stream
// subscription first catches up through the stream index, then follows the
// global log filtered by stream name and revision; a subscription of the log
// scans it, filtered by prefixes. Each step takes at most one batch and says
// where the next one starts; the caller decides when to take it (catch-up
// and live differ only in whether the durable end has moved).

#include <cstdint>
#include <string>

#include "engine/log.h"
#include "index/store.h"
#include "read/event_sink.h"

namespace annal::read {

// Positions one scan step looks at, matching or not, so a filtered
// subscription over a long log yields to others and checkpoints.
inline constexpr std::uint64_t kMaxScanPerStep = 4096;

// kIndex: the events of one secondary index key; catches up through the
// secondary index, then follows the log filtered by the key.
// kQuery: the events matching a query (index/query.h), likewise.
enum class Target { kStream, kAll, kIndex, kQuery };

struct Filter {
  Target target = Target::kAll;
  std::string stream;         // kStream
  std::uint64_t min_rev = 0;  // kStream: revisions below are delivered already
  std::string stream_prefix;  // kAll
  std::string type_prefix;    // kAll
  index::IndexKind index_kind = index::IndexKind::kCategory;  // kIndex
  std::string index_value;                                    // kIndex
  char category_separator = '-';                              // kIndex
  index::Query query;                                         // kQuery

  bool filtered() const {
    return target == Target::kIndex || target == Target::kQuery ||
           (target == Target::kAll && (!stream_prefix.empty() || !type_prefix.empty()));
  }
  // Lost entries (repair markers) match only an unfiltered log subscription.
  bool matches(const engine::RecordView& v) const;
};

struct Step {
  Status status;               // not ok: the subscription ends with it
  GlobalPosition next;         // log steps: the next position to scan
  std::uint64_t next_rev = 0;  // stream subscriptions: the next revision wanted
  std::uint64_t scanned = 0;   // log steps: positions looked at
  std::uint64_t scanned_after_last_event = 0;
  bool index_done = false;  // index step: the index has nothing more; follow the log from `next`
};

// Scans [from, end) for events matching `f`, at most `max_scan` positions.
// Events removed by their stream's metadata or deletion are skipped (looked
// at, not matching).
Step scan_log(const index::Store& store, const Filter& f, GlobalPosition from, GlobalPosition end,
              std::uint64_t max_scan, const PageLimits& limits, EventSink& out);

// The stream's events from revision `from_rev` through the stream index. When
// the index has no more, `index_done` is set and `next` is the durable end seen
// before the reads, so the log steps that follow miss nothing.
Step read_index(const index::Store& store, const std::string& stream, std::uint64_t from_rev,
                const PageLimits& limits, EventSink& out);

// One page of a secondary index key's (kIndex) or a query's (kQuery) events
// from position `from`. When the page reaches the end, `index_done` is set and `next` is
// the durable end it read below, where the log steps start.
Step read_index_key(const index::Store& store, const Filter& f, GlobalPosition from,
                    const PageLimits& limits, EventSink& out);

}  // namespace annal::read
