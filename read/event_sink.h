#pragma once
// Where a read puts the events it takes, and the limits of one response.
// The network layer's sink encodes them for the wire; tests collect them.

#include <cstddef>
#include <cstdint>

#include "engine/record.h"

namespace annal::read {

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Bytes `v` would add to the response.
  virtual std::size_t size_of(const engine::RecordView& v) const = 0;
  virtual void add(const engine::RecordView& v) = 0;
  virtual std::size_t bytes() const = 0;
  virtual std::uint32_t count() const = 0;
};

// At most `max_count` events and `max_bytes` bytes per response; the first
// event is always taken, whatever its size, so a reader always progresses.
struct PageLimits {
  std::uint64_t max_count = 1000;
  std::size_t max_bytes = 1u << 20;

  bool full(const EventSink& s) const { return s.count() >= max_count || s.bytes() >= max_bytes; }
  // Whether `v` may still be added.
  bool fits(const EventSink& s, const engine::RecordView& v) const {
    if (s.count() == 0) return true;
    return s.count() < max_count && s.bytes() + s.size_of(v) <= max_bytes;
  }
};

// A view of an owned record (valid while `r` is).
inline engine::RecordView view_of(const engine::EventRecord& r) {
  engine::RecordView v;
  v.id = r.id;
  v.stream = r.stream;
  v.type = r.type;
  v.revision = r.revision;
  v.position = r.position;
  v.timestamp_us = r.timestamp_us;
  v.flags = r.flags;
  v.metadata = r.metadata;
  v.data = r.data;
  return v;
}

}  // namespace annal::read
