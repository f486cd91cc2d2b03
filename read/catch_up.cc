#include "read/catch_up.h"

#include <algorithm>

#include "engine/format.h"
#include "read/paging.h"

namespace annal::read {
bool Filter::matches(const engine::RecordView& v) const {
  const bool lost = (v.flags & engine::format::kFlagLost) != 0;
  if (target == Target::kStream) return !lost && v.stream == stream && v.revision.value >= min_rev;
  if (target == Target::kIndex)
    return index::key_matches(v, index_kind, index_value, category_separator);
  if (target == Target::kQuery) return index::query_matches(query, v);
  if (!filtered()) return true;
  return !lost && v.stream.starts_with(stream_prefix) && v.type.starts_with(type_prefix);
}

Step scan_log(const index::Store& store, const Filter& f, GlobalPosition from, GlobalPosition end,
              std::uint64_t max_scan, const PageLimits& limits, EventSink& out) {
  const engine::Log& log = store.log();
  const index::Removal removal = store.removal();
  Step s;
  s.next = from;
  s.next_rev = f.min_rev;
  if (from >= end) return s;
  const std::uint64_t limit =
      std::min(end.value - from.value, std::max<std::uint64_t>(max_scan, 1));
  s.status = log.scan_forward(from, limit, [&](const engine::RecordView& v) {
    if (f.matches(v) && !removal.removed(v)) {
      if (!limits.fits(out, v)) return false;  // the next step starts with it
      out.add(v);
      s.scanned_after_last_event = 0;
      if (f.target == Target::kStream) s.next_rev = v.revision.value + 1;
    } else {
      ++s.scanned_after_last_event;
    }
    ++s.scanned;
    s.next = v.position.next();
    return !limits.full(out);
  });
  return s;
}

Step read_index(const index::Store& store, const std::string& stream, std::uint64_t from_rev,
                const PageLimits& limits, EventSink& out) {
  Step s;
  s.next_rev = from_rev;
  // Anything of the stream at or beyond this position may be missing from the
  // index reads below; the log steps start here (revision-filtered).
  const GlobalPosition log_end = store.log().durable_end();
  // One page of the stream, by the paging rules of read_stream.
  const Page page =
      read_stream_page(store, stream, from_rev, index::Direction::kForward, limits, out);
  if (!page.status.is_ok()) {
    if (page.status.code() != Errc::kStreamNotFound) {
      s.status = page.status;
      return s;
    }
  } else {
    s.next_rev = page.next;
    // Not at the end: more may follow (or a failure after the events taken,
    // which the next step meets); the next step reads the index again.
    if (!page.end) return s;
  }
  s.index_done = true;
  s.next = log_end;
  return s;
}

Step read_index_key(const index::Store& store, const Filter& f, GlobalPosition from,
                    const PageLimits& limits, EventSink& out) {
  Step s;
  const Page page =
      f.target == Target::kQuery
          ? read_query_page(store, f.query, from.value, index::Direction::kForward, limits, out)
          : read_index_page(store, f.index_kind, f.index_value, from.value,
                            index::Direction::kForward, limits, out);
  s.status = page.status;
  s.next = GlobalPosition(page.next);
  s.scanned = page.next - from.value;
  // Where the last event was is not known here: claim nothing scanned after
  // it (a checkpoint then waits for the log steps; never too far).
  s.scanned_after_last_event = out.count() > 0 ? 0 : s.scanned;
  s.index_done = page.status.is_ok() && page.end;
  return s;
}

}  // namespace annal::read
