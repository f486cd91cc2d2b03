#pragma once
// A read::EventSink that encodes events as wire_events (docs/protocol.md
// §3.3) into one buffer, ready to be a read_ok or sub_events payload.

#include <cstdint>
#include <string>

#include "engine/format.h"
#include "proto/protocol.h"
#include "read/event_sink.h"

namespace annal::net::detail {

class WireSink final : public read::EventSink {
 public:
  std::size_t size_of(const engine::RecordView& v) const override {
    return proto::event_wire_size(lost(v) ? marker(v) : v);
  }
  void add(const engine::RecordView& v) override {
    proto::append_event(events_, lost(v) ? marker(v) : v);
    ++count_;
  }
  std::size_t bytes() const override { return events_.size(); }
  std::uint32_t count() const override { return count_; }
  const std::string& events() const { return events_; }

 private:
  static bool lost(const engine::RecordView& v) {
    return (v.flags & engine::format::kFlagLost) != 0;
  }
  // A lost entry on the wire has only its position and flags (§3.3): the
  // repair marker's own time and zero-filled fields are not the event's.
  static engine::RecordView marker(const engine::RecordView& v) {
    engine::RecordView m;
    m.position = v.position;
    m.flags = v.flags;
    return m;
  }

  std::string events_;
  std::uint32_t count_ = 0;
};

}  // namespace annal::net::detail
