#include "read/paging.h"

#include <algorithm>

namespace annal::read {
namespace {

// Events per Store::read_stream call while filling one page.
constexpr std::uint64_t kStreamChunk = 64;

}  // namespace

Page read_stream_page(const index::Store& store, const std::string& stream, std::uint64_t from,
                      index::Direction direction, const PageLimits& limits, EventSink& out) {
  const bool forward = direction == index::Direction::kForward;
  Page page;
  std::uint64_t cursor = from;
  for (;;) {
    const std::uint64_t want =
        std::min<std::uint64_t>(kStreamChunk, limits.max_count - out.count());
    auto r = store.read_stream(stream, StreamRevision(cursor), want, direction);
    if (!r.is_ok()) {
      if (out.count() == 0) {
        page.status = r.status();
        return page;
      }
      // The page ends before what failed; the next request meets it again.
      page.end = r.status().code() == Errc::kStreamNotFound || r.status().code() == Errc::kNotFound;
      break;
    }
    bool full = false;
    for (const auto& e : r.value()) {
      const engine::RecordView v = view_of(e);
      if (!limits.fits(out, v)) {
        full = true;
        break;
      }
      out.add(v);
      if (forward) {
        cursor = e.revision.value + 1;
      } else if (e.revision.value == 0) {
        page.end = true;
      } else {
        cursor = e.revision.value - 1;
      }
    }
    if (full || page.end) break;
    if (r.value().size() < want) {
      page.end = true;
      break;
    }
    if (limits.full(out)) break;
  }
  page.next = !forward && page.end ? kNone : cursor;
  return page;
}

Page read_all_page(const engine::Log& log, std::uint64_t from, index::Direction direction,
                   const PageLimits& limits, EventSink& out) {
  const std::uint64_t durable = log.durable_end().value;
  Page page;
  auto take = [&](const engine::RecordView& v, std::uint64_t next) {
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

}  // namespace annal::read
