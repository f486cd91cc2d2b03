// libFuzzer target: the frame decoder and request parser (net/protocol.h), as
// the node's connection uses them: a byte stream cut into frames by the
// length prefix (rejected below kFrameMinBody or above a maximum), each
// payload handed to the decoder for its op. Responses' decoders (the client
// side) are fuzzed too.
// Properties: no out-of-bounds read, no huge allocation from a length field;
// every request that decodes re-encodes to a frame that decodes to the same
// message (the encoder and decoder agree). Frames are decoded in the protocol
// version the last hello in the input asked for (v2 until one does), as on
// the node's connection, so both versions' event layouts are fuzzed.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/format.h"
#include "fuzz/fuzz_util.h"
#include "proto/protocol.h"

using namespace annal;
namespace proto = annal::net::proto;

namespace {

constexpr std::uint32_t kMaxFrame = 1u << 20;

std::string_view payload_of(const std::string& frame) {
  return std::string_view(frame).substr(proto::kLengthPrefixSize + proto::kFrameMinBody);
}

bool same_events(const std::vector<index::NewEvent>& a, const std::vector<index::NewEvent>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || a[i].type != b[i].type || a[i].flags != b[i].flags ||
        a[i].metadata != b[i].metadata || a[i].data != b[i].data || a[i].tags != b[i].tags ||
        a[i].correlation_id != b[i].correlation_id || a[i].causation_id != b[i].causation_id)
      return false;
  return true;
}

// `version`: the connection's protocol version; a hello may change it.
void one_frame(std::uint8_t op, std::uint64_t id, std::string_view payload,
               std::uint16_t& version) {
  const std::uint16_t v = version;
  switch (static_cast<proto::Op>(op)) {
    case proto::Op::kHello: {
      auto m = proto::decode_hello(payload);
      if (!m) break;
      auto again = proto::decode_hello(payload_of(proto::encode_hello(id, *m)));
      FUZZ_CHECK(again && again->magic == m->magic && again->version == m->version &&
                 again->client_name == m->client_name);
      if (m->version >= proto::kMinProtocolVersion && m->version <= proto::kProtocolVersion)
        version = m->version;
      break;
    }
    case proto::Op::kAppend: {
      auto m = proto::decode_append(payload, v);
      if (!m) break;
      auto again = proto::decode_append(payload_of(proto::encode_append(id, *m, v)), v);
      FUZZ_CHECK(again && again->stream == m->stream && again->expected == m->expected &&
                 same_events(again->events, m->events));
      break;
    }
    case proto::Op::kReadStream: {
      auto m = proto::decode_read_stream(payload);
      if (!m) break;
      auto again = proto::decode_read_stream(payload_of(proto::encode_read_stream(id, *m)));
      FUZZ_CHECK(again && again->stream == m->stream && again->from == m->from &&
                 again->count == m->count && again->direction == m->direction);
      break;
    }
    case proto::Op::kReadAll: {
      auto m = proto::decode_read_all(payload);
      if (!m) break;
      auto again = proto::decode_read_all(payload_of(proto::encode_read_all(id, *m)));
      FUZZ_CHECK(again && again->from == m->from && again->count == m->count &&
                 again->direction == m->direction);
      break;
    }
    case proto::Op::kSubscribe: {
      auto m = proto::decode_subscribe(payload, v);
      if (!m) break;
      auto again = proto::decode_subscribe(payload_of(proto::encode_subscribe(id, *m, v)), v);
      FUZZ_CHECK(again && again->target == m->target && again->stream == m->stream &&
                 again->from_end == m->from_end && again->from == m->from &&
                 again->stream_prefix == m->stream_prefix && again->type_prefix == m->type_prefix &&
                 again->checkpoint_interval == m->checkpoint_interval &&
                 again->index_kind == m->index_kind && again->index_value == m->index_value);
      break;
    }
    case proto::Op::kSeekTime: {
      auto m = proto::decode_seek_time(payload, v);
      if (!m) break;
      auto again = proto::decode_seek_time(payload_of(proto::encode_seek_time(id, *m, v)), v);
      FUZZ_CHECK(again && again->timestamp_us == m->timestamp_us);
      break;
    }
    case proto::Op::kSeekTimeOk:
      (void)proto::decode_seek_time_ok(payload, v);
      break;
    case proto::Op::kReadIndex: {
      auto m = proto::decode_read_index(payload, v);
      if (!m) break;
      auto again = proto::decode_read_index(payload_of(proto::encode_read_index(id, *m, v)), v);
      FUZZ_CHECK(again && again->kind == m->kind && again->value == m->value &&
                 again->from == m->from && again->count == m->count &&
                 again->direction == m->direction);
      break;
    }
    case proto::Op::kAppendMulti: {
      auto m = proto::decode<proto::AppendMultiReq>(payload, v);
      if (!m) break;
      auto again = proto::decode<proto::AppendMultiReq>(payload_of(proto::encode(id, *m, v)), v);
      FUZZ_CHECK(again && again->streams.size() == m->streams.size() &&
                 again->condition.items.size() == m->condition.items.size() &&
                 again->after == m->after);
      for (std::size_t i = 0; again && i < m->streams.size(); ++i)
        FUZZ_CHECK(again->streams[i].stream == m->streams[i].stream &&
                   again->streams[i].events.size() == m->streams[i].events.size());
      for (std::size_t i = 0; again && i < m->condition.items.size(); ++i)
        FUZZ_CHECK(again->condition.items[i].types == m->condition.items[i].types &&
                   again->condition.items[i].tags == m->condition.items[i].tags);
      break;
    }
    case proto::Op::kReadQuery: {
      auto m = proto::decode<proto::ReadQueryReq>(payload, v);
      if (!m) break;
      auto again = proto::decode<proto::ReadQueryReq>(payload_of(proto::encode(id, *m, v)), v);
      FUZZ_CHECK(again && again->query.items.size() == m->query.items.size() &&
                 again->from == m->from && again->count == m->count &&
                 again->direction == m->direction);
      break;
    }
    case proto::Op::kAppendMultiOk:
      (void)proto::decode<proto::AppendMultiOk>(payload, v);
      break;
    case proto::Op::kAppendRefused:
      (void)proto::decode<proto::AppendRefused>(payload, v);
      break;
    case proto::Op::kUnsubscribe: {
      auto m = proto::decode_unsubscribe(payload);
      if (!m) break;
      auto again = proto::decode_unsubscribe(payload_of(proto::encode_unsubscribe(id, *m)));
      FUZZ_CHECK(again && again->subscription_id == m->subscription_id);
      break;
    }
    // The client's side: responses from a (possibly hostile) server.
    case proto::Op::kHelloOk:
      (void)proto::decode_hello_ok(payload);
      break;
    case proto::Op::kAppendOk:
      (void)proto::decode_append_ok(payload);
      break;
    case proto::Op::kReadOk:
    case proto::Op::kSubEvents: {
      auto m = proto::decode_read_ok(payload, v);
      if (m) {
        // The encoder sends only the wire flags (data/metadata JSON, lost);
        // the client's decoder passes any other bits through. Compare what
        // the wire can carry.
        constexpr std::uint32_t kWire = engine::format::kFlagDataJson |
                                        engine::format::kFlagMetadataJson |
                                        engine::format::kFlagLost;
        for (auto& e : m->events) e.flags &= kWire;
        auto again = proto::decode_read_ok(payload_of(proto::encode_read_ok(id, *m, v)), v);
        FUZZ_CHECK(again && again->end == m->end && again->next == m->next &&
                   again->durable_end == m->durable_end && again->events == m->events);
      }
      (void)proto::decode_sub_events(payload, v);
      (void)proto::decode<proto::ReadOkView>(payload, v);
      break;
    }
    case proto::Op::kSubscribeOk:
      (void)proto::decode_subscribe_ok(payload);
      break;
    case proto::Op::kCheckpoint:
      (void)proto::decode_checkpoint(payload);
      break;
    case proto::Op::kError:
      (void)proto::decode_error(payload);
      break;
    case proto::Op::kInfoOk:
      (void)proto::decode_info_ok(payload);
      break;
    default:
      (void)proto::is_request_op(op);
      (void)proto::op_name(static_cast<proto::Op>(op));
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t off = 0;
  std::uint16_t version = proto::kProtocolVersion;
  while (size - off >= proto::kLengthPrefixSize + proto::kFrameMinBody) {
    std::uint8_t hdr[13];
    std::memcpy(hdr, data + off, sizeof hdr);
    const std::uint32_t len = proto::parse_length(std::span<const std::uint8_t, 4>(hdr, 4));
    if (len < proto::kFrameMinBody || len > kMaxFrame) return 0;  // the node closes the connection
    const proto::FrameHeader h = proto::parse_header(std::span<const std::uint8_t, 13>(hdr));
    FUZZ_CHECK(h.length == len);
    const std::size_t body = len - proto::kFrameMinBody;
    if (size - off - sizeof hdr < body) return 0;  // the node waits for more bytes
    // An exact-size heap copy of the payload, so an over-read is an ASan report.
    std::string payload(reinterpret_cast<const char*>(data + off + sizeof hdr), body);
    one_frame(h.op, h.request_id, payload, version);
    off += sizeof hdr + body;
  }
  return 0;
}
