#include "net/protocol.h"

#include <cstring>

#include "engine/format.h"

namespace annal::net::proto {
namespace {

// ---- little-endian writer/reader ----

void put_u8(std::string& o, std::uint8_t v) {
  o.push_back(static_cast<char>(v));
}
void put_u16(std::string& o, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u32(std::string& o, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& o, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) o.push_back(static_cast<char>(v >> (8 * i)));
}
void put_str(std::string& o, std::string_view s) {
  put_u32(o, static_cast<std::uint32_t>(s.size()));
  o.append(s);
}
void put_id(std::string& o, const EventId& id) {
  o.append(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
}

class Reader {
 public:
  Reader(std::string_view in, const char* what) : in_(in), what_(what) {}

  bool u8(std::uint8_t& v, const char* field) {
    if (!need(1, field)) return false;
    v = static_cast<std::uint8_t>(in_[pos_]);
    pos_ += 1;
    return true;
  }
  bool u16(std::uint16_t& v, const char* field) {
    std::uint64_t x;
    if (!le(2, x, field)) return false;
    v = static_cast<std::uint16_t>(x);
    return true;
  }
  bool u32(std::uint32_t& v, const char* field) {
    std::uint64_t x;
    if (!le(4, x, field)) return false;
    v = static_cast<std::uint32_t>(x);
    return true;
  }
  bool u64(std::uint64_t& v, const char* field) { return le(8, v, field); }
  bool str(std::string& v, const char* field) {
    std::uint32_t n;
    if (!u32(n, field)) return false;
    if (!need(n, field)) return false;
    v.assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool id(EventId& v, const char* field) {
    if (!need(16, field)) return false;
    std::memcpy(v.bytes.data(), in_.data() + pos_, 16);
    pos_ += 16;
    return true;
  }
  bool boolean(bool& v, const char* field) {
    std::uint8_t b;
    if (!u8(b, field)) return false;
    if (b > 1) return fail(field, "must be 0 or 1");
    v = b == 1;
    return true;
  }
  bool fail(const char* field, const std::string& why) {
    if (error_.empty()) error_ = std::string(what_) + ": field '" + field + "' " + why;
    return false;
  }
  std::size_t remaining() const { return in_.size() - pos_; }
  // Completes decoding: an error if a field failed or bytes are left over.
  template <typename T>
  Result<T> finish(T value) {
    if (!error_.empty()) return Status(Errc::kBadRequest, error_);
    if (pos_ != in_.size())
      return Status(Errc::kBadRequest, std::string(what_) + ": " +
                                           std::to_string(in_.size() - pos_) +
                                           " unexpected trailing bytes");
    return value;
  }

 private:
  bool need(std::size_t n, const char* field) {
    if (in_.size() - pos_ < n)
      return fail(field, "truncated (needs " + std::to_string(n) + " bytes, " +
                             std::to_string(in_.size() - pos_) + " left)");
    return true;
  }
  bool le(int n, std::uint64_t& v, const char* field) {
    if (!need(static_cast<std::size_t>(n), field)) return false;
    v = 0;
    for (int i = 0; i < n; ++i)
      v |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += static_cast<std::size_t>(n);
    return true;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  const char* what_;
  std::string error_;
};

std::string begin_frame(Op op, std::uint64_t id, std::size_t payload_hint = 0) {
  std::string o;
  o.reserve(kLengthPrefixSize + kFrameMinBody + payload_hint);
  put_u32(o, 0);  // patched by end_frame
  put_u8(o, static_cast<std::uint8_t>(op));
  put_u64(o, id);
  return o;
}
std::string end_frame(std::string o) {
  auto len = static_cast<std::uint32_t>(o.size() - kLengthPrefixSize);
  for (int i = 0; i < 4; ++i) o[static_cast<std::size_t>(i)] = static_cast<char>(len >> (8 * i));
  return o;
}

constexpr std::uint32_t kWireFlagMask =
    engine::format::kFlagDataJson | engine::format::kFlagMetadataJson | engine::format::kFlagLost;

void put_event(std::string& o, const engine::EventRecord& e) {
  put_u64(o, e.position.value);
  put_u64(o, e.revision.value);
  put_u64(o, static_cast<std::uint64_t>(e.timestamp_us));
  put_u32(o, e.flags & kWireFlagMask);
  put_id(o, e.id);
  put_str(o, e.stream);
  put_str(o, e.type);
  put_str(o, e.metadata);
  put_str(o, e.data);
}

bool get_event(Reader& r, engine::EventRecord& e) {
  std::uint64_t ts;
  return r.u64(e.position.value, "event.position") && r.u64(e.revision.value, "event.revision") &&
         r.u64(ts, "event.timestamp") && (e.timestamp_us = static_cast<std::int64_t>(ts), true) &&
         r.u32(e.flags, "event.flags") && r.id(e.id, "event.id") &&
         r.str(e.stream, "event.stream") && r.str(e.type, "event.type") &&
         r.str(e.metadata, "event.metadata") && r.str(e.data, "event.data");
}

bool get_events(Reader& r, std::vector<engine::EventRecord>& out) {
  std::uint32_t n;
  if (!r.u32(n, "count")) return false;
  // Each event takes at least 60 bytes: never reserve more than the payload can hold.
  if (static_cast<std::uint64_t>(n) * 60 > r.remaining()) return r.fail("count", "exceeds payload");
  out.resize(n);
  for (auto& e : out)
    if (!get_event(r, e)) return false;
  return true;
}

bool get_direction(Reader& r, index::Direction& d) {
  std::uint8_t v;
  if (!r.u8(v, "direction")) return false;
  if (v > 1) return r.fail("direction", "must be 0 (forward) or 1 (backward)");
  d = static_cast<index::Direction>(v);
  return true;
}

}  // namespace

const char* op_name(Op op) {
  switch (op) {
    case Op::kHello:
      return "hello";
    case Op::kPing:
      return "ping";
    case Op::kInfo:
      return "info";
    case Op::kAppend:
      return "append";
    case Op::kReadStream:
      return "read_stream";
    case Op::kReadAll:
      return "read_all";
    case Op::kSubscribe:
      return "subscribe";
    case Op::kUnsubscribe:
      return "unsubscribe";
    case Op::kHelloOk:
      return "hello_ok";
    case Op::kPong:
      return "pong";
    case Op::kInfoOk:
      return "info_ok";
    case Op::kAppendOk:
      return "append_ok";
    case Op::kReadOk:
      return "read_ok";
    case Op::kSubscribeOk:
      return "subscribe_ok";
    case Op::kSubEvents:
      return "sub_events";
    case Op::kCheckpoint:
      return "checkpoint";
    case Op::kUnsubscribeOk:
      return "unsubscribe_ok";
    case Op::kError:
      return "error";
  }
  return "unknown";
}

bool is_request_op(std::uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::kHello:
    case Op::kPing:
    case Op::kInfo:
    case Op::kAppend:
    case Op::kReadStream:
    case Op::kReadAll:
    case Op::kSubscribe:
    case Op::kUnsubscribe:
      return true;
    default:
      return false;
  }
}

const char* code_name(Code c) {
  switch (c) {
    case Code::kUnsupportedVersion:
      return "unsupported_version";
    case Code::kUnknownOperation:
      return "unknown_operation";
    case Code::kFrameTooLarge:
      return "frame_too_large";
    case Code::kTooManyRequests:
      return "too_many_requests";
    case Code::kTooManyConnections:
      return "too_many_connections";
    case Code::kIdleTimeout:
      return "idle_timeout";
    case Code::kUnknownSubscription:
      return "unknown_subscription";
    case Code::kHandshakeRequired:
      return "handshake_required";
    case Code::kTooManySubscriptions:
      return "too_many_subscriptions";
    case Code::kConnectionLost:
      return "connection_lost";
    default:
      break;
  }
  auto v = static_cast<std::uint16_t>(c);
  if (v <= static_cast<std::uint16_t>(Errc::kInternal)) return errc_name(static_cast<Errc>(v));
  return "unknown";
}

Code code_from_errc(Errc e) {
  return static_cast<Code>(static_cast<std::uint16_t>(e));
}

std::string make_frame(Op op, std::uint64_t id, std::string_view payload) {
  std::string o = begin_frame(op, id, payload.size());
  o.append(payload);
  return end_frame(std::move(o));
}

std::string encode_empty(Op op, std::uint64_t id) {
  return end_frame(begin_frame(op, id));
}

std::string encode_hello(std::uint64_t id, const Hello& m) {
  std::string o = begin_frame(Op::kHello, id);
  put_u32(o, m.magic);
  put_u16(o, m.version);
  put_str(o, m.client_name);
  return end_frame(std::move(o));
}

std::string encode_hello_ok(std::uint64_t id, const HelloOk& m) {
  std::string o = begin_frame(Op::kHelloOk, id);
  put_u16(o, m.version);
  put_u32(o, m.max_frame);
  put_u32(o, m.max_in_flight);
  put_str(o, m.server_version);
  return end_frame(std::move(o));
}

std::string encode_append(std::uint64_t id, const AppendReq& m) {
  std::size_t hint = m.stream.size() + 32;
  for (const auto& e : m.events) hint += 48 + e.type.size() + e.metadata.size() + e.data.size();
  std::string o = begin_frame(Op::kAppend, id, hint);
  put_str(o, m.stream);
  put_u8(o, static_cast<std::uint8_t>(m.expected.kind));
  put_u64(o, m.expected.kind == ExpectedRevision::Kind::kExact ? m.expected.revision.value : 0);
  put_u32(o, static_cast<std::uint32_t>(m.events.size()));
  for (const auto& e : m.events) {
    put_id(o, e.id);
    put_str(o, e.type);
    put_u32(o, e.flags);
    put_str(o, e.metadata);
    put_str(o, e.data);
  }
  return end_frame(std::move(o));
}

std::string encode_append_ok(std::uint64_t id, const AppendOk& m) {
  std::string o = begin_frame(Op::kAppendOk, id);
  put_u64(o, m.first_position);
  put_u64(o, m.first_revision);
  put_u32(o, m.count);
  put_u8(o, m.deduplicated ? 1 : 0);
  return end_frame(std::move(o));
}

std::string encode_read_stream(std::uint64_t id, const ReadStreamReq& m) {
  std::string o = begin_frame(Op::kReadStream, id);
  put_str(o, m.stream);
  put_u64(o, m.from);
  put_u32(o, m.count);
  put_u8(o, static_cast<std::uint8_t>(m.direction));
  return end_frame(std::move(o));
}

std::string encode_read_all(std::uint64_t id, const ReadAllReq& m) {
  std::string o = begin_frame(Op::kReadAll, id);
  put_u64(o, m.from);
  put_u32(o, m.count);
  put_u8(o, static_cast<std::uint8_t>(m.direction));
  return end_frame(std::move(o));
}

std::string encode_read_ok(std::uint64_t id, const ReadOk& m) {
  std::string events;
  for (const auto& e : m.events) put_event(events, e);
  return make_frame(
      Op::kReadOk, id,
      read_ok_payload(m.end, m.next, static_cast<std::uint32_t>(m.events.size()), events));
}

std::string read_ok_payload(bool end, std::uint64_t next, std::uint32_t count,
                            std::string_view encoded_events) {
  std::string o;
  o.reserve(13 + encoded_events.size());
  put_u8(o, end ? 1 : 0);
  put_u64(o, next);
  put_u32(o, count);
  o.append(encoded_events);
  return o;
}

std::string sub_events_payload(std::uint32_t count, std::string_view encoded_events) {
  std::string o;
  o.reserve(4 + encoded_events.size());
  put_u32(o, count);
  o.append(encoded_events);
  return o;
}

std::string encode_subscribe(std::uint64_t id, const SubscribeReq& m) {
  std::string o = begin_frame(Op::kSubscribe, id);
  put_u8(o, static_cast<std::uint8_t>(m.target));
  put_str(o, m.stream);
  put_u8(o, m.from_end ? 1 : 0);
  put_u64(o, m.from);
  put_str(o, m.stream_prefix);
  put_str(o, m.type_prefix);
  put_u32(o, m.checkpoint_interval);
  return end_frame(std::move(o));
}

std::string encode_subscribe_ok(std::uint64_t id, const SubscribeOk& m) {
  std::string o = begin_frame(Op::kSubscribeOk, id);
  put_u64(o, m.start);
  return end_frame(std::move(o));
}

std::string encode_sub_events(std::uint64_t id, const SubEvents& m) {
  std::string events;
  for (const auto& e : m.events) put_event(events, e);
  return make_frame(Op::kSubEvents, id,
                    sub_events_payload(static_cast<std::uint32_t>(m.events.size()), events));
}

std::string encode_checkpoint(std::uint64_t id, const Checkpoint& m) {
  std::string o = begin_frame(Op::kCheckpoint, id);
  put_u64(o, m.position);
  return end_frame(std::move(o));
}

std::string encode_unsubscribe(std::uint64_t id, const UnsubscribeReq& m) {
  std::string o = begin_frame(Op::kUnsubscribe, id);
  put_u64(o, m.subscription_id);
  return end_frame(std::move(o));
}

std::string encode_error(std::uint64_t id, const Error& m) {
  std::string o = begin_frame(Op::kError, id);
  put_u16(o, static_cast<std::uint16_t>(m.code));
  put_u64(o, m.detail);
  put_str(o, m.message);
  return end_frame(std::move(o));
}

std::string encode_info_ok(std::uint64_t id, const InfoOk& m) {
  std::string o = begin_frame(Op::kInfoOk, id);
  put_str(o, m.server_version);
  put_u16(o, m.protocol_version);
  put_u64(o, m.durable_end);
  put_u64(o, m.segments);
  put_u64(o, m.max_stream_name);
  put_u64(o, m.max_event_type);
  put_u64(o, m.max_event_size);
  put_u64(o, m.max_append_size);
  put_u64(o, m.max_append_events);
  put_u32(o, m.max_frame);
  put_u32(o, m.max_in_flight);
  put_u32(o, m.max_connections);
  put_u32(o, m.connections);
  put_u64(o, m.index_memtable_entries);
  put_u64(o, m.index_files);
  put_u64(o, m.indexed_through);
  return end_frame(std::move(o));
}

std::size_t event_wire_size(const engine::EventRecord& e) {
  return 60 + e.stream.size() + e.type.size() + e.metadata.size() + e.data.size();
}
std::size_t event_wire_size(const engine::RecordView& v) {
  return 60 + v.stream.size() + v.type.size() + v.metadata.size() + v.data.size();
}

void append_event(std::string& o, const engine::RecordView& v) {
  put_u64(o, v.position.value);
  put_u64(o, v.revision.value);
  put_u64(o, static_cast<std::uint64_t>(v.timestamp_us));
  put_u32(o, v.flags & kWireFlagMask);
  put_id(o, v.id);
  put_str(o, v.stream);
  put_str(o, v.type);
  put_str(o, v.metadata);
  put_str(o, v.data);
}

void append_event(std::string& o, const engine::EventRecord& e) {
  put_event(o, e);
}

std::uint32_t parse_length(std::span<const std::uint8_t, 4> b) {
  return static_cast<std::uint32_t>(b[0]) | static_cast<std::uint32_t>(b[1]) << 8 |
         static_cast<std::uint32_t>(b[2]) << 16 | static_cast<std::uint32_t>(b[3]) << 24;
}

FrameHeader parse_header(std::span<const std::uint8_t, 13> b) {
  FrameHeader h;
  h.length = parse_length(b.first<4>());
  h.op = b[4];
  for (int i = 0; i < 8; ++i) h.request_id |= static_cast<std::uint64_t>(b[5 + i]) << (8 * i);
  return h;
}

Result<Hello> decode_hello(std::string_view p) {
  Reader r(p, "hello");
  Hello m;
  r.u32(m.magic, "magic") && r.u16(m.version, "version") && r.str(m.client_name, "client_name");
  return r.finish(std::move(m));
}

Result<HelloOk> decode_hello_ok(std::string_view p) {
  Reader r(p, "hello_ok");
  HelloOk m;
  r.u16(m.version, "version") && r.u32(m.max_frame, "max_frame") &&
      r.u32(m.max_in_flight, "max_in_flight") && r.str(m.server_version, "server_version");
  return r.finish(std::move(m));
}

Result<AppendReq> decode_append(std::string_view p) {
  Reader r(p, "append");
  AppendReq m;
  std::uint8_t kind = 0;
  std::uint64_t rev = 0;
  std::uint32_t n = 0;
  if (r.str(m.stream, "stream") && r.u8(kind, "expected_kind") && r.u64(rev, "expected_revision") &&
      r.u32(n, "count")) {
    if (kind > 3) {
      r.fail("expected_kind", "must be 0..3");
    } else if (static_cast<std::uint64_t>(n) * 32 > r.remaining()) {
      r.fail("count", "exceeds payload");
    } else {
      m.expected.kind = static_cast<ExpectedRevision::Kind>(kind);
      if (m.expected.kind == ExpectedRevision::Kind::kExact)
        m.expected.revision = StreamRevision(rev);
      m.events.resize(n);
      for (auto& e : m.events)
        if (!(r.id(e.id, "event.id") && r.str(e.type, "event.type") &&
              r.u32(e.flags, "event.flags") && r.str(e.metadata, "event.metadata") &&
              r.str(e.data, "event.data")))
          break;
    }
  }
  return r.finish(std::move(m));
}

Result<AppendOk> decode_append_ok(std::string_view p) {
  Reader r(p, "append_ok");
  AppendOk m;
  r.u64(m.first_position, "first_position") && r.u64(m.first_revision, "first_revision") &&
      r.u32(m.count, "count") && r.boolean(m.deduplicated, "deduplicated");
  return r.finish(std::move(m));
}

Result<ReadStreamReq> decode_read_stream(std::string_view p) {
  Reader r(p, "read_stream");
  ReadStreamReq m;
  r.str(m.stream, "stream") && r.u64(m.from, "from") && r.u32(m.count, "count") &&
      get_direction(r, m.direction);
  return r.finish(std::move(m));
}

Result<ReadAllReq> decode_read_all(std::string_view p) {
  Reader r(p, "read_all");
  ReadAllReq m;
  r.u64(m.from, "from") && r.u32(m.count, "count") && get_direction(r, m.direction);
  return r.finish(std::move(m));
}

Result<ReadOk> decode_read_ok(std::string_view p) {
  Reader r(p, "read_ok");
  ReadOk m;
  r.boolean(m.end, "end") && r.u64(m.next, "next") && get_events(r, m.events);
  return r.finish(std::move(m));
}

Result<SubscribeReq> decode_subscribe(std::string_view p) {
  Reader r(p, "subscribe");
  SubscribeReq m;
  std::uint8_t target = 0;
  if (r.u8(target, "target") && r.str(m.stream, "stream") && r.boolean(m.from_end, "from_end") &&
      r.u64(m.from, "from") && r.str(m.stream_prefix, "stream_prefix") &&
      r.str(m.type_prefix, "type_prefix") && r.u32(m.checkpoint_interval, "checkpoint_interval")) {
    if (target > 1) r.fail("target", "must be 0 (stream) or 1 (all)");
    m.target = static_cast<Target>(target);
    if (m.target == Target::kStream && m.stream.empty()) r.fail("stream", "must not be empty");
  }
  return r.finish(std::move(m));
}

Result<SubscribeOk> decode_subscribe_ok(std::string_view p) {
  Reader r(p, "subscribe_ok");
  SubscribeOk m;
  r.u64(m.start, "start");
  return r.finish(std::move(m));
}

Result<SubEvents> decode_sub_events(std::string_view p) {
  Reader r(p, "sub_events");
  SubEvents m;
  get_events(r, m.events);
  return r.finish(std::move(m));
}

Result<Checkpoint> decode_checkpoint(std::string_view p) {
  Reader r(p, "checkpoint");
  Checkpoint m;
  r.u64(m.position, "position");
  return r.finish(std::move(m));
}

Result<UnsubscribeReq> decode_unsubscribe(std::string_view p) {
  Reader r(p, "unsubscribe");
  UnsubscribeReq m;
  r.u64(m.subscription_id, "subscription_id");
  return r.finish(std::move(m));
}

Result<Error> decode_error(std::string_view p) {
  Reader r(p, "error");
  Error m;
  std::uint16_t code = 0;
  r.u16(code, "code") && r.u64(m.detail, "detail") && r.str(m.message, "message");
  m.code = static_cast<Code>(code);
  return r.finish(std::move(m));
}

Result<InfoOk> decode_info_ok(std::string_view p) {
  Reader r(p, "info_ok");
  InfoOk m;
  r.str(m.server_version, "server_version") && r.u16(m.protocol_version, "protocol_version") &&
      r.u64(m.durable_end, "durable_end") && r.u64(m.segments, "segments") &&
      r.u64(m.max_stream_name, "max_stream_name") && r.u64(m.max_event_type, "max_event_type") &&
      r.u64(m.max_event_size, "max_event_size") && r.u64(m.max_append_size, "max_append_size") &&
      r.u64(m.max_append_events, "max_append_events") && r.u32(m.max_frame, "max_frame") &&
      r.u32(m.max_in_flight, "max_in_flight") && r.u32(m.max_connections, "max_connections") &&
      r.u32(m.connections, "connections") &&
      r.u64(m.index_memtable_entries, "index_memtable_entries") &&
      r.u64(m.index_files, "index_files") && r.u64(m.indexed_through, "indexed_through");
  return r.finish(std::move(m));
}

}  // namespace annal::net::proto
