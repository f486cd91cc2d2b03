#include "proto/protocol.h"

#include <cstring>

#include "proto/wire.h"

namespace annal::net::proto {
namespace {

constexpr std::size_t kHeaderSize = kLengthPrefixSize + kFrameMinBody;

// The 13-byte header of a frame whose payload has `payload_size` bytes.
void write_header(char* at, Op op, std::uint64_t id, std::size_t payload_size) {
  wire::Writer w(at);
  w.u32(static_cast<std::uint32_t>(kFrameMinBody + payload_size), "length");
  *w.end() = static_cast<char>(op);
  wire::Writer(at + 5).u64(id, "request_id");
}
std::string frame_with_payload(Op op, std::uint64_t id, std::size_t payload_size) {
  std::string o(kHeaderSize + payload_size, '\0');
  write_header(o.data(), op, id, payload_size);
  return o;
}

template <class M>
concept HasConsistencyCheck = requires(const M& m) {
  m.invalid_field();
};

}  // namespace

template <class M>
std::string encode(std::uint64_t id, const M& m, std::uint16_t version) {
  wire::Sizer size(version);
  M::fields(size, m);
  std::string o = frame_with_payload(M::kOp, id, size.bytes);
  wire::Writer w(o.data() + kHeaderSize, version);
  M::fields(w, m);
  return o;
}

namespace {
// `m` without its events' bytes: what goes in front of them.
template <class M>
M head_of(const M& m) {
  M h = m;
  h.events.bytes = {};
  return h;
}
}  // namespace

template <class M>
std::size_t frame_head_size(const M& m, std::uint16_t version) {
  const M h = head_of(m);
  wire::Sizer size(version);
  M::fields(size, h);
  return kHeaderSize + size.bytes;
}

template <class M>
void write_frame_head(std::uint64_t id, const M& m, char* head, std::uint16_t version) {
  const M h = head_of(m);
  wire::Sizer size(version);
  M::fields(size, h);
  write_header(head, M::kOp, id, size.bytes + m.events.bytes.size());
  wire::Writer w(head + kHeaderSize, version);
  M::fields(w, h);
}

template <class M>
std::size_t encode_to(std::uint64_t id, const M& m, std::span<char> out) {
  wire::Sizer size;
  M::fields(size, m);
  if (kHeaderSize + size.bytes > out.size()) return 0;
  write_header(out.data(), M::kOp, id, size.bytes);
  wire::Writer w(out.data() + kHeaderSize);
  M::fields(w, m);
  return kHeaderSize + size.bytes;
}
template std::size_t encode_to(std::uint64_t, const AppendOk&, std::span<char>);

template <class M>
Result<M> decode(std::string_view payload, std::uint16_t version) {
  wire::Reader r(payload, M::kName, version);
  M m;
  M::fields(r, m);
  if constexpr (HasConsistencyCheck<M>) {
    if (r.ok())
      if (const char* field = m.invalid_field()) r.fail(field, M::kInvalidWhy);
  }
  return r.finish(std::move(m));
}

#define ANNAL_PROTO_MESSAGE(M)                                            \
  template std::string encode<M>(std::uint64_t, const M&, std::uint16_t); \
  template Result<M> decode<M>(std::string_view, std::uint16_t);
ANNAL_PROTO_MESSAGE(Hello)
ANNAL_PROTO_MESSAGE(HelloOk)
ANNAL_PROTO_MESSAGE(AppendReq)
ANNAL_PROTO_MESSAGE(AppendOk)
ANNAL_PROTO_MESSAGE(ReadStreamReq)
ANNAL_PROTO_MESSAGE(ReadAllReq)
ANNAL_PROTO_MESSAGE(ReadIndexReq)
ANNAL_PROTO_MESSAGE(SeekTimeReq)
ANNAL_PROTO_MESSAGE(SeekTimeOk)
ANNAL_PROTO_MESSAGE(ReadOk)
ANNAL_PROTO_MESSAGE(ReadOkView)
ANNAL_PROTO_MESSAGE(SubscribeReq)
ANNAL_PROTO_MESSAGE(SubscribeOk)
ANNAL_PROTO_MESSAGE(SubEvents)
ANNAL_PROTO_MESSAGE(SubEventsView)
ANNAL_PROTO_MESSAGE(Checkpoint)
ANNAL_PROTO_MESSAGE(UnsubscribeReq)
ANNAL_PROTO_MESSAGE(Error)
ANNAL_PROTO_MESSAGE(InfoOk)
ANNAL_PROTO_MESSAGE(AppendMultiReq)
ANNAL_PROTO_MESSAGE(AppendMultiOk)
ANNAL_PROTO_MESSAGE(AppendRefused)
ANNAL_PROTO_MESSAGE(ReadQueryReq)
ANNAL_PROTO_MESSAGE(GroupCreateReq)
ANNAL_PROTO_MESSAGE(GroupDeleteReq)
ANNAL_PROTO_MESSAGE(GroupInfoReq)
ANNAL_PROTO_MESSAGE(GroupReplayParkedReq)
ANNAL_PROTO_MESSAGE(CheckpointLoadReq)
ANNAL_PROTO_MESSAGE(GroupOk)
ANNAL_PROTO_MESSAGE(GroupListOk)
ANNAL_PROTO_MESSAGE(GroupJoinReq)
ANNAL_PROTO_MESSAGE(GroupEvents)
ANNAL_PROTO_MESSAGE(GroupAckReq)
ANNAL_PROTO_MESSAGE(GroupNackReq)
ANNAL_PROTO_MESSAGE(CheckpointSaveReq)
ANNAL_PROTO_MESSAGE(CheckpointOk)
ANNAL_PROTO_MESSAGE(GroupParkedReq)
ANNAL_PROTO_MESSAGE(GroupParkedOk)
ANNAL_PROTO_MESSAGE(StreamMetadataReq)
ANNAL_PROTO_MESSAGE(StreamMetadataOk)
ANNAL_PROTO_MESSAGE(SetStreamMetadataReq)
ANNAL_PROTO_MESSAGE(DeleteStreamReq)
ANNAL_PROTO_MESSAGE(DeleteOk)
ANNAL_PROTO_MESSAGE(ScavengeReq)
ANNAL_PROTO_MESSAGE(ScavengeOk)
ANNAL_PROTO_MESSAGE(BackupReq)
ANNAL_PROTO_MESSAGE(BackupOk)
ANNAL_PROTO_MESSAGE(SnapshotSaveReq)
ANNAL_PROTO_MESSAGE(SnapshotSaved)
ANNAL_PROTO_MESSAGE(SnapshotReadReq)
ANNAL_PROTO_MESSAGE(SnapshotOk)
#undef ANNAL_PROTO_MESSAGE
// Responses built from events encoded straight from the log (encode only).
template std::string encode<ReadOkOf<EncodedEvents>>(std::uint64_t, const ReadOkOf<EncodedEvents>&,
                                                     std::uint16_t);
template std::string encode<SubEventsOf<EncodedEvents>>(std::uint64_t,
                                                        const SubEventsOf<EncodedEvents>&,
                                                        std::uint16_t);
template std::string encode<GroupEventsOf<EncodedEvents>>(std::uint64_t,
                                                          const GroupEventsOf<EncodedEvents>&,
                                                          std::uint16_t);
template std::size_t frame_head_size(const ReadOkOf<EncodedEvents>&, std::uint16_t);
template std::size_t frame_head_size(const SubEventsOf<EncodedEvents>&, std::uint16_t);
template void write_frame_head(std::uint64_t, const ReadOkOf<EncodedEvents>&, char*, std::uint16_t);
template void write_frame_head(std::uint64_t, const SubEventsOf<EncodedEvents>&, char*,
                               std::uint16_t);

std::string make_frame(Op op, std::uint64_t id, std::string_view payload) {
  std::string o = frame_with_payload(op, id, payload.size());
  if (!payload.empty()) std::memcpy(o.data() + kHeaderSize, payload.data(), payload.size());
  return o;
}

std::string encode_empty(Op op, std::uint64_t id) {
  return frame_with_payload(op, id, 0);
}

std::size_t event_wire_size(const engine::EventRecord& e, std::uint16_t version) {
  wire::Sizer s(version);
  event_fields(s, e);
  return s.bytes;
}
std::size_t event_wire_size(const engine::RecordView& v, std::uint16_t version) {
  wire::Sizer s(version);
  event_fields(s, v);
  return s.bytes;
}

void append_event(std::string& o, const engine::RecordView& v, std::uint16_t version) {
  wire::append_to(
      o, [&v](auto& w) { event_fields(w, v); }, version);
}
char* write_event(char* out, const engine::RecordView& v, std::uint16_t version) {
  wire::Writer w(out, version);
  event_fields(w, v);
  return w.end();
}
void append_event(std::string& o, const engine::EventRecord& e, std::uint16_t version) {
  wire::append_to(
      o, [&e](auto& w) { event_fields(w, e); }, version);
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
    case Op::kReadIndex:
      return "read_index";
    case Op::kSeekTime:
      return "seek_time";
    case Op::kSeekTimeOk:
      return "seek_time_ok";
    case Op::kAppendMulti:
      return "append_multi";
    case Op::kReadQuery:
      return "read_query";
    case Op::kAppendMultiOk:
      return "append_multi_ok";
    case Op::kGroupCreate:
      return "group_create";
    case Op::kGroupDelete:
      return "group_delete";
    case Op::kGroupList:
      return "group_list";
    case Op::kGroupInfo:
      return "group_info";
    case Op::kGroupJoin:
      return "group_join";
    case Op::kGroupAck:
      return "group_ack";
    case Op::kGroupNack:
      return "group_nack";
    case Op::kGroupReplayParked:
      return "group_replay_parked";
    case Op::kCheckpointSave:
      return "checkpoint_save";
    case Op::kCheckpointLoad:
      return "checkpoint_load";
    case Op::kGroupOk:
      return "group_ok";
    case Op::kGroupListOk:
      return "group_list_ok";
    case Op::kGroupEvents:
      return "group_events";
    case Op::kCheckpointOk:
      return "checkpoint_ok";
    case Op::kGroupParked:
      return "group_parked";
    case Op::kGroupParkedOk:
      return "group_parked_ok";
    case Op::kStreamMetadata:
      return "stream_metadata";
    case Op::kStreamMetadataOk:
      return "stream_metadata_ok";
    case Op::kSetStreamMetadata:
      return "set_stream_metadata";
    case Op::kDeleteStream:
      return "delete_stream";
    case Op::kDeleteOk:
      return "delete_ok";
    case Op::kScavenge:
      return "scavenge";
    case Op::kScavengeOk:
      return "scavenge_ok";
    case Op::kSnapshotSave:
      return "snapshot_save";
    case Op::kSnapshotSaved:
      return "snapshot_saved";
    case Op::kSnapshotRead:
      return "snapshot_read";
    case Op::kSnapshotOk:
      return "snapshot_ok";
    case Op::kBackup:
      return "backup";
    case Op::kBackupOk:
      return "backup_ok";
    case Op::kAppendRefused:
      return "append_refused";
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
    case Op::kReadIndex:
    case Op::kSeekTime:
    case Op::kAppendMulti:
    case Op::kReadQuery:
    case Op::kGroupCreate:
    case Op::kGroupDelete:
    case Op::kGroupList:
    case Op::kGroupInfo:
    case Op::kGroupJoin:
    case Op::kGroupAck:
    case Op::kGroupNack:
    case Op::kGroupReplayParked:
    case Op::kCheckpointSave:
    case Op::kCheckpointLoad:
    case Op::kGroupParked:
    case Op::kStreamMetadata:
    case Op::kSetStreamMetadata:
    case Op::kDeleteStream:
    case Op::kScavenge:
    case Op::kSnapshotSave:
    case Op::kSnapshotRead:
    case Op::kBackup:
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
    case Code::kAlreadyExists:
      return "already_exists";
    case Code::kConnectionLost:
      return "connection_lost";
    default:
      break;
  }
  auto v = static_cast<std::uint16_t>(c);
  if (v <= static_cast<std::uint16_t>(Errc::kBusy)) return errc_name(static_cast<Errc>(v));
  return "unknown";
}

Code code_from_errc(Errc e) {
  if (e == Errc::kAlreadyExists) return Code::kAlreadyExists;
  return static_cast<Code>(static_cast<std::uint16_t>(e));
}

}  // namespace annal::net::proto
