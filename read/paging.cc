#include "read/paging.h"

#include <algorithm>

namespace annal::read {

Page read_stream_page(const index::Store& store, const std::string& stream, std::uint64_t from,
                      index::Direction direction, const PageLimits& limits, EventSink& out) {
  const bool forward = direction == index::Direction::kForward;
  Page page;
  page.durable_end = store.log().durable_end().value;
  std::uint64_t cursor = from;
  const std::uint64_t want =
      limits.max_count - std::min<std::uint64_t>(limits.max_count, out.count());
  std::uint64_t visited = 0;
  bool stopped = false;
  // The events are encoded straight from the log's views (no copy first).
  Status st = store.visit_stream(stream, StreamRevision(cursor), want, direction,
                                 [&](const engine::RecordView& v) {
                                   if (!limits.fits(out, v)) {
                                     stopped = true;
                                     return false;
                                   }
                                   out.add(v);
                                   ++visited;
                                   if (forward) {
                                     cursor = v.revision.value + 1;
                                   } else if (v.revision.value == 0) {
                                     page.end = true;
                                     stopped = true;
                                     return false;
                                   } else {
                                     cursor = v.revision.value - 1;
                                   }
                                   if (limits.full(out)) stopped = true;
                                   return !stopped;
                                 });
  if (!st.is_ok()) {
    if (out.count() == 0) {
      page.status = st;
      return page;
    }
    // The page ends before what failed; the next request meets it again.
    page.end = st.code() == Errc::kStreamNotFound || st.code() == Errc::kNotFound;
  } else if (!stopped && visited < want) {
    page.end = true;  // fewer events than asked: the stream ends here (now)
  }
  page.next = !forward && page.end ? kNone : cursor;
  return page;
}

Page read_all_page(const index::Store& store, std::uint64_t from, index::Direction direction,
                   const PageLimits& limits, EventSink& out) {
  const engine::Log& log = store.log();
  const std::uint64_t durable = log.durable_end().value;
  const index::Removal removal = store.removal();  // after the durable end
  Page page;
  page.durable_end = durable;
  auto take = [&](const engine::RecordView& v, std::uint64_t next) {
    if (removal.removed(v)) {
      page.next = next;
      return true;
    }
    if (!limits.fits(out, v)) return false;
    out.add(v);
    page.next = next;
    return !limits.full(out);
  };
  Status st;
  if (direction == index::Direction::kForward) {
    page.next = from;
    if (from < durable) {
      st = log.scan_forward(
          GlobalPosition(from), std::min(limits.max_count, durable - from),
          [&](const engine::RecordView& v) { return take(v, v.position.value + 1); });
    }
    page.end = st.is_ok() && page.next >= durable;
  } else if (durable == 0) {
    page.end = true;
    page.next = kNone;
  } else {
    page.next = std::min(from, durable - 1);
    st = log.scan_backward(GlobalPosition(page.next), limits.max_count,
                           [&](const engine::RecordView& v) {
                             return take(v, v.position.value == 0 ? kNone : v.position.value - 1);
                           });
    page.end = st.is_ok() && page.next == kNone;
  }
  // A failure after some events ends the page before it (`next` names the
  // position that failed); with none, the failure is the answer.
  if (!st.is_ok() && out.count() == 0) page.status = st;
  return page;
}

namespace {

// A page of events found by position through an index (a secondary index key,
// a query): visit(from, direction, durable end, fn) as Store::visit_index.
template <class Visit>
Page read_by_position_page(const index::Store& store, const Visit& visit, std::uint64_t from,
                           index::Direction direction, const PageLimits& limits, EventSink& out) {
  const std::uint64_t durable = store.log().durable_end().value;
  const bool forward = direction == index::Direction::kForward;
  Page page;
  page.durable_end = durable;
  bool stopped = false;  // the page is full, or the next event did not fit
  auto take = [&](const engine::RecordView& v) {
    if (!limits.fits(out, v)) {
      stopped = true;
      return false;
    }
    out.add(v);
    const std::uint64_t p = v.position.value;
    page.next = forward ? p + 1 : (p == 0 ? kNone : p - 1);
    stopped = limits.full(out);
    return !stopped;
  };
  Status st;
  if (forward) {
    page.next = from;
    st = visit(GlobalPosition(from), direction, GlobalPosition(durable), take);
    if (st.is_ok() && !stopped) {
      page.end = true;
      page.next = std::max(from, durable);
    }
  } else if (durable == 0) {
    page.end = true;
    page.next = kNone;
  } else {
    page.next = std::min(from, durable - 1);
    st = visit(GlobalPosition(page.next), direction, GlobalPosition(durable), take);
    // Position 0 taken: nothing is below it (kNone would read "from the end").
    if (st.is_ok() && (!stopped || page.next == kNone)) {
      page.end = true;
      page.next = kNone;
    }
  }
  if (!st.is_ok() && out.count() == 0) page.status = st;
  return page;
}

}  // namespace

Page read_index_page(const index::Store& store, index::IndexKind kind, const std::string& value,
                     std::uint64_t from, index::Direction direction, const PageLimits& limits,
                     EventSink& out) {
  auto visit = [&](GlobalPosition at, index::Direction dir, GlobalPosition end,
                   const index::Store::StreamVisitor& fn) {
    return store.visit_index(kind, value, at, dir, end, fn);
  };
  return read_by_position_page(store, visit, from, direction, limits, out);
}

Page read_query_page(const index::Store& store, const index::Query& query, std::uint64_t from,
                     index::Direction direction, const PageLimits& limits, EventSink& out) {
  auto visit = [&](GlobalPosition at, index::Direction dir, GlobalPosition end,
                   const index::Store::StreamVisitor& fn) {
    return store.visit_query(query, at, dir, end, fn);
  };
  return read_by_position_page(store, visit, from, direction, limits, out);
}

}  // namespace annal::read
