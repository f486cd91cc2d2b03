#pragma once
// A read::EventSink that encodes events as wire_events (docs/protocol.md
// §3.3) into one buffer, behind room for the frame's head: a read_ok frame
// is finished in place (each record's bytes are copied once, from the log's
// map into the frame), and a sub_events batch is shared as it is by every
// subscriber it goes to, each with its own small head.

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/format.h"
#include "proto/protocol.h"
#include "read/event_sink.h"

namespace annal::net::detail {

class WireSink final : public read::EventSink {
 public:
  // `expected_bytes`: room to reserve for the events, so a page of them is
  // not copied again as the buffer grows.
  explicit WireSink(std::size_t expected_bytes = 4096) {
    buf_.reserve(head_room() + expected_bytes);
    buf_.assign(head_room(), '\0');
  }
  std::size_t size_of(const engine::RecordView& v) const override {
    return proto::event_wire_size(lost(v) ? marker(v) : v);
  }
  void add(const engine::RecordView& v) override {
    proto::append_event(buf_, lost(v) ? marker(v) : v);
    ++count_;
  }
  std::size_t bytes() const override { return buf_.size() - head_room(); }
  std::uint32_t count() const override { return count_; }
  // The encoded events (a sub_events body).
  std::string_view events() const { return std::string_view(buf_).substr(head_room()); }

  // The read_ok frame around the events, finished in place; the sink is
  // empty afterwards.
  std::string take_read_ok(std::uint64_t id, bool end, std::uint64_t next) {
    const proto::ReadOkOf<proto::EncodedEvents> m{end, next, {count_, events()}};
    const std::size_t head = proto::frame_head_size(m);  // == head_room()
    proto::write_frame_head(id, m, buf_.data() + head_room() - head);
    if (head < head_room()) buf_.erase(0, head_room() - head);
    count_ = 0;
    return std::move(buf_);
  }

 private:
  static std::size_t head_room() {
    static const std::size_t n = proto::frame_head_size(proto::ReadOkOf<proto::EncodedEvents>{});
    return n;
  }
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

  std::string buf_;
  std::uint32_t count_ = 0;
};

}  // namespace annal::net::detail
