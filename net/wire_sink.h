#pragma once
// A read::EventSink that encodes events as wire_events (docs/protocol.md
// §3.3) into one buffer, behind room for the frame's head: a read_ok frame
// is finished in place (each record's bytes are copied once, from the log's
// map into the frame), and a sub_events batch is shared as it is by every
// subscriber it goes to, each with its own small head. The buffer is never
// zero-filled: every byte of it is written before it is sent.

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "engine/format.h"
#include "proto/protocol.h"
#include "read/event_sink.h"

namespace annal::net::detail {

class WireSink final : public read::EventSink {
 public:
  // `version`: the protocol version of the connections the events go to (a
  // v1 connection gets them without tags and ids). `expected_bytes`: room to
  // reserve for the events, so a page of them is not copied again as the
  // buffer grows.
  explicit WireSink(std::uint16_t version, std::size_t expected_bytes = 4096) : version_(version) {
    grow(head_room() + expected_bytes);
  }
  std::uint16_t version() const { return version_; }
  std::size_t size_of(const engine::RecordView& v) const override {
    return proto::event_wire_size(lost(v) ? marker(v) : v, version_);
  }
  void add(const engine::RecordView& v) override {
    const engine::RecordView& e = lost(v) ? marker(v) : v;
    const std::size_t n = proto::event_wire_size(e, version_);
    if (size_ + n > cap_) grow(std::max(cap_ * 2, size_ + n));
    proto::write_event(buf_.get() + size_, e, version_);
    size_ += n;
    ++count_;
  }
  std::size_t bytes() const override { return size_ - head_room(); }
  std::uint32_t count() const override { return count_; }
  // The encoded events (a sub_events body).
  std::string_view events() const { return {buf_.get() + head_room(), size_ - head_room()}; }

  // Finishes the read_ok frame around the events, in place, and returns it
  // (valid while the sink is).
  std::string_view finish_read_ok(std::uint64_t id, bool end, std::uint64_t next,
                                  std::uint64_t durable_end) {
    const proto::ReadOkOf<proto::EncodedEvents> m{end, next, durable_end, {count_, events()}};
    // head_room() is the newest version's; an older version's head is
    // shorter and starts further in.
    const std::size_t head = proto::frame_head_size(m, version_);
    char* at = buf_.get() + head_room() - head;
    proto::write_frame_head(id, m, at, version_);
    return {at, size_ - (head_room() - head)};
  }

 private:
  static std::size_t head_room() {
    static const std::size_t n = proto::frame_head_size(proto::ReadOkOf<proto::EncodedEvents>{});
    return n;
  }
  void grow(std::size_t cap) {
    auto next = std::make_unique_for_overwrite<char[]>(cap);
    if (size_ > 0) std::memcpy(next.get(), buf_.get(), size_);
    buf_ = std::move(next);
    cap_ = cap;
    if (size_ == 0) size_ = head_room();
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

  std::uint16_t version_;
  std::unique_ptr<char[]> buf_;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
  std::uint32_t count_ = 0;
};

}  // namespace annal::net::detail
