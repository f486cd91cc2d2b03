#pragma once
// The paging rules of read_stream and read_all (docs/protocol.md §3.3): one
// call answers one response — at most PageLimits events and bytes, `end` when
// nothing more is there in that direction now, and `next`, where the client
// continues.

#include <cstdint>
#include <string>

#include "engine/log.h"
#include "index/store.h"
#include "read/event_sink.h"

namespace annal::read {

// "No position / revision": backward reads that reached the start.
inline constexpr std::uint64_t kNone = UINT64_MAX;

struct Page {
  Status status;  // not ok: no events were taken (the error is the answer)
  bool end = false;
  std::uint64_t next = 0;
  std::uint64_t durable_end = 0;  // the durable end the page was read below
};

// Events of `stream` from revision `from` (inclusive) in `direction`.
// A failure after some events were taken ends the page there (the client's
// next request meets it again), except that a stream or position that is
// gone ends the read.
Page read_stream_page(const index::Store& store, const std::string& stream, std::uint64_t from,
                      index::Direction direction, const PageLimits& limits, EventSink& out);

// Durable events of the log from position `from` (inclusive) in `direction`.
// Events removed by their stream's metadata or deletion are skipped: a page
// may hold fewer events than it looked at (`next` goes past them).
Page read_all_page(const index::Store& store, std::uint64_t from, index::Direction direction,
                   const PageLimits& limits, EventSink& out);

// Durable events of a secondary index key (Store::visit_index) from position
// `from` (inclusive) in `direction`. Forward, a page that reaches the end has
// `next` = the durable end it read below (everything before it was looked
// at), so the next page starts there.
Page read_index_page(const index::Store& store, index::IndexKind kind, const std::string& value,
                     std::uint64_t from, index::Direction direction, const PageLimits& limits,
                     EventSink& out);
// The same for the events matching a query (Store::visit_query).
Page read_query_page(const index::Store& store, const index::Query& query, std::uint64_t from,
                     index::Direction direction, const PageLimits& limits, EventSink& out);

}  // namespace annal::read
