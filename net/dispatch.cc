// Connection: the handshake, routing a frame to its handler by op, and the
// requests answered on the spot (ping, info).
#include <fmt/format.h>

#include "net/connection.h"

namespace annal::net::detail {

void Connection::dispatch(const proto::FrameHeader& h, std::string_view payload) {
  const auto op = static_cast<proto::Op>(h.op);
  if (!handshaken_) {
    if (op != proto::Op::kHello) {
      fail_and_close(h.request_id, proto::Code::kHandshakeRequired,
                     fmt::format("the first frame must be hello (0x01), got op 0x{:02x}", h.op));
      return;
    }
    handle_hello(h.request_id, payload);
    return;
  }
  if (!proto::is_request_op(h.op)) {
    send_error(h.request_id, proto::Code::kUnknownOperation,
               fmt::format("unknown operation 0x{:02x}", h.op));
    return;
  }
  shared_->metrics.count_request(h.op);
  if (shutting_down_ && op != proto::Op::kPing) {
    send_error(h.request_id, proto::Code::kShuttingDown, "node is shutting down");
    return;
  }
  switch (op) {
    case proto::Op::kHello:
      send_error(h.request_id, proto::Code::kBadRequest, "hello was already received");
      return;
    case proto::Op::kPing:
      if (!payload.empty()) {
        send_error(h.request_id, proto::Code::kBadRequest, "ping: unexpected payload");
        return;
      }
      send(proto::encode_empty(proto::Op::kPong, h.request_id));
      return;
    case proto::Op::kInfo:
      handle_info(h.request_id, payload);
      return;
    case proto::Op::kAppend:
      handle_append(h.request_id, payload);
      return;
    case proto::Op::kReadStream:
      handle_read_stream(h.request_id, payload);
      return;
    case proto::Op::kReadAll:
      handle_read_all(h.request_id, payload);
      return;
    case proto::Op::kSubscribe:
      handle_subscribe(h.request_id, payload);
      return;
    case proto::Op::kUnsubscribe:
      handle_unsubscribe(h.request_id, payload);
      return;
    case proto::Op::kReadIndex:
      if (version_ < 2) break;  // a v2 operation: unknown to a v1 connection
      handle_read_index(h.request_id, payload);
      return;
    case proto::Op::kSeekTime:
      if (version_ < 2) break;
      handle_seek_time(h.request_id, payload);
      return;
    case proto::Op::kAppendMulti:
      if (version_ < 3) break;  // a v3 operation
      handle_append_multi(h.request_id, payload);
      return;
    case proto::Op::kReadQuery:
      if (version_ < 3) break;
      handle_read_query(h.request_id, payload);
      return;
    default:
      if (version_ >= 4 && dispatch_group(op, h.request_id, payload)) return;
      if (version_ >= 5 && dispatch_lifecycle(op, h.request_id, payload)) return;
      if (version_ >= 6 && op == proto::Op::kBackup) {
        handle_backup(h.request_id, payload);
        return;
      }
      break;
  }
  send_error(h.request_id, proto::Code::kUnknownOperation,
             fmt::format("unknown operation 0x{:02x}{}", h.op,
                         version_ < proto::kProtocolVersion
                             ? fmt::format(" for protocol version {}", version_)
                             : std::string()));
}

bool Connection::dispatch_group(proto::Op op, std::uint64_t id, std::string_view payload) {
  switch (op) {
    case proto::Op::kGroupCreate:
      handle_group_create(id, payload);
      return true;
    case proto::Op::kGroupDelete:
      handle_group_delete(id, payload);
      return true;
    case proto::Op::kGroupList:
      handle_group_list(id, payload);
      return true;
    case proto::Op::kGroupInfo:
      handle_group_info(id, payload);
      return true;
    case proto::Op::kGroupJoin:
      handle_group_join(id, payload);
      return true;
    case proto::Op::kGroupAck:
      handle_group_ack(id, payload);
      return true;
    case proto::Op::kGroupNack:
      handle_group_nack(id, payload);
      return true;
    case proto::Op::kGroupReplayParked:
      handle_group_replay_parked(id, payload);
      return true;
    case proto::Op::kCheckpointSave:
      handle_checkpoint_save(id, payload);
      return true;
    case proto::Op::kCheckpointLoad:
      handle_checkpoint_load(id, payload);
      return true;
    case proto::Op::kGroupParked:
      handle_group_parked(id, payload);
      return true;
    default:
      return false;
  }
}

void Connection::handle_hello(std::uint64_t id, std::string_view payload) {
  auto m = proto::decode_hello(payload);
  if (!m.is_ok()) {
    fail_and_close(id, proto::Code::kBadRequest, m.status().message());
    return;
  }
  if (m->magic != proto::kHelloMagic) {
    fail_and_close(
        id, proto::Code::kBadRequest,
        fmt::format("hello: bad magic 0x{:08x}, expected 0x{:08x}", m->magic, proto::kHelloMagic));
    return;
  }
  if (m->version < proto::kMinProtocolVersion || m->version > proto::kProtocolVersion) {
    send_error(id, proto::Code::kUnsupportedVersion,
               fmt::format("protocol version {} is not supported; this node speaks {} to {}",
                           m->version, proto::kMinProtocolVersion, proto::kProtocolVersion),
               proto::kProtocolVersion);
    close_when_drained_ = true;
    write_cv_.cancel();
    return;
  }
  handshaken_ = true;
  version_ = m->version;
  proto::HelloOk ok;
  ok.version = version_;
  ok.max_frame = shared_->options.max_frame;
  ok.max_in_flight = shared_->options.max_in_flight;
  ok.server_version = shared_->options.server_version;
  send(proto::encode_hello_ok(id, ok));
}

void Connection::handle_info(std::uint64_t id, std::string_view payload) {
  if (!payload.empty()) {
    send_error(id, proto::Code::kBadRequest,
               fmt::format("info: unexpected payload of {} bytes", payload.size()));
    return;
  }
  auto& store = shared_->store;
  const auto& opts = shared_->options;
  const auto& limits = store.limits();
  const auto stats = store.stats();
  proto::InfoOk m;
  m.server_version = opts.server_version;
  m.durable_end = store.log().durable_end().value;
  m.segments = store.log().segments().size();
  m.max_stream_name = limits.max_stream_name;
  m.max_event_type = limits.max_event_type;
  m.max_event_size = limits.max_event_size;
  m.max_append_size = limits.max_append_size;
  m.max_append_events = limits.max_append_events;
  m.max_frame = opts.max_frame;
  m.max_in_flight = opts.max_in_flight;
  m.max_connections = opts.max_connections;
  m.connections = shared_->open_connections.load();
  m.index_memtable_entries = stats.memtable_entries;
  m.index_files = stats.index_files;
  m.indexed_through = stats.indexed_through;
  m.max_tags = limits.max_tags;
  m.max_tag_size = limits.max_tag_size;
  m.max_correlation_id = limits.max_correlation_id;
  m.max_append_streams = limits.max_append_streams;
  m.max_query_items = limits.max_query_items;
  send(proto::encode_info_ok(id, m, version_));
}

}  // namespace annal::net::detail
