#pragma once
// annal wire protocol, version 1: message types and their byte encoding.
// The specification is docs/protocol.md; change neither without the other,
// and bump kProtocolVersion (with a version-history entry) on any change.
//
// Every frame:  u32 length | u8 op | u64 request_id | payload
// `length` counts the bytes after itself (op + request id + payload), so it is
// at least kFrameMinBody. All integers little-endian. Strings and byte blobs
// are u32 length + bytes.
//
// Thread safety: everything here is a pure function of its arguments.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/record.h"
#include "engine/status.h"
#include "engine/types.h"
#include "index/store.h"

namespace annal::net::proto {

inline constexpr std::uint16_t kProtocolVersion = 1;
inline constexpr std::uint32_t kHelloMagic = 0x4C4E4E41;  // "ANNL" as little-endian bytes
inline constexpr std::size_t kLengthPrefixSize = 4;
inline constexpr std::size_t kFrameMinBody = 9;  // op + request id
inline constexpr std::uint32_t kDefaultMaxFrame = 32u << 20;
// "no value" for u64 fields (end of stream, stream does not exist, ...)
inline constexpr std::uint64_t kNone = UINT64_MAX;

enum class Op : std::uint8_t {
  // client -> server requests
  kHello = 0x01,
  kPing = 0x02,
  kInfo = 0x03,
  kAppend = 0x10,
  kReadStream = 0x11,
  kReadAll = 0x12,
  kSubscribe = 0x13,
  kUnsubscribe = 0x14,
  // server -> client responses and pushes
  kHelloOk = 0x81,
  kPong = 0x82,
  kInfoOk = 0x83,
  kAppendOk = 0x90,
  kReadOk = 0x91,
  kSubscribeOk = 0x92,
  kSubEvents = 0x93,
  kCheckpoint = 0x94,
  kUnsubscribeOk = 0x95,
  kError = 0xFF,
};
const char* op_name(Op op);
bool is_request_op(std::uint8_t op);

// Stable numeric error codes. 1..15 are annal::Errc values unchanged; 100+
// exist only on the wire.
enum class Code : std::uint16_t {
  kOk = 0,
  kWrongExpectedRevision = 1,
  kStreamNotFound = 2,
  kInvalidJson = 3,
  kTooLarge = 4,
  kBadRequest = 5,
  kWriterFailed = 6,
  kNoSpace = 7,
  kShuttingDown = 8,
  kCorruption = 9,
  kIoError = 10,
  kNotFound = 11,
  kLostAtRepair = 12,
  kLocked = 13,
  kInvalidArgument = 14,
  kInternal = 15,
  kUnsupportedVersion = 100,
  kUnknownOperation = 101,
  kFrameTooLarge = 102,
  kTooManyRequests = 103,
  kTooManyConnections = 104,
  kIdleTimeout = 105,
  kUnknownSubscription = 106,
  kHandshakeRequired = 107,
  kTooManySubscriptions = 108,
  kConnectionLost = 200,  // client side only: never sent, reported by the client library
};
const char* code_name(Code c);
Code code_from_errc(Errc e);

// ---- message bodies ----

struct Hello {
  std::uint32_t magic = kHelloMagic;
  std::uint16_t version = kProtocolVersion;
  std::string client_name;
};
struct HelloOk {
  std::uint16_t version = kProtocolVersion;
  std::uint32_t max_frame = kDefaultMaxFrame;
  std::uint32_t max_in_flight = 0;
  std::string server_version;
};

struct AppendReq {
  std::string stream;
  ExpectedRevision expected;
  std::vector<index::NewEvent> events;
};
struct AppendOk {
  std::uint64_t first_position = 0;
  std::uint64_t first_revision = 0;
  std::uint32_t count = 0;
  bool deduplicated = false;
  // Revision of the last event: what a follow-up append expects.
  std::uint64_t last_revision() const { return first_revision + count - 1; }
};

struct ReadStreamReq {
  std::string stream;
  std::uint64_t from = 0;  // kNone with backward = from the end
  std::uint32_t count = 0;
  index::Direction direction = index::Direction::kForward;
};
struct ReadAllReq {
  std::uint64_t from = 0;  // kNone with backward = from the end
  std::uint32_t count = 0;
  index::Direction direction = index::Direction::kForward;
};
// Events on the wire are full records; a lost entry (format::kFlagLost) has
// only its position and flags, every other field empty or zero.
struct ReadOk {
  bool end = false;            // nothing more in this direction (now)
  std::uint64_t next = kNone;  // where to continue; kNone if end in backward direction
  std::vector<engine::EventRecord> events;
};

enum class Target : std::uint8_t { kStream = 0, kAll = 1 };
struct SubscribeReq {
  Target target = Target::kAll;
  std::string stream;                     // kStream only
  bool from_end = false;                  // start after the last durable event
  std::uint64_t from = 0;                 // revision (stream) or position (all), inclusive
  std::string stream_prefix;              // kAll only; empty = no filter
  std::string type_prefix;                // kAll only; empty = no filter
  std::uint32_t checkpoint_interval = 0;  // positions scanned; 0 = server default
};
struct SubscribeOk {
  std::uint64_t start = 0;  // first revision/position that can be delivered
};
struct SubEvents {
  std::vector<engine::EventRecord> events;
};
struct Checkpoint {
  std::uint64_t position = 0;  // every position below has been scanned
};
struct UnsubscribeReq {
  std::uint64_t subscription_id = 0;
};
struct Error {
  Code code = Code::kInternal;
  // Code-specific: actual last revision (kWrongExpectedRevision; kNone if the
  // stream does not exist), event index (kInvalidJson, kTooLarge), the
  // server's protocol version (kUnsupportedVersion); otherwise kNone.
  std::uint64_t detail = kNone;
  std::string message;
};
struct InfoOk {
  std::string server_version;
  std::uint16_t protocol_version = kProtocolVersion;
  std::uint64_t durable_end = 0;
  std::uint64_t segments = 0;
  std::uint64_t max_stream_name = 0;
  std::uint64_t max_event_type = 0;
  std::uint64_t max_event_size = 0;
  std::uint64_t max_append_size = 0;
  std::uint64_t max_append_events = 0;
  std::uint32_t max_frame = 0;
  std::uint32_t max_in_flight = 0;
  std::uint32_t max_connections = 0;
  std::uint32_t connections = 0;
  std::uint64_t index_memtable_entries = 0;
  std::uint64_t index_files = 0;
  std::uint64_t indexed_through = 0;
};

// ---- frames ----

struct FrameHeader {
  std::uint32_t length = 0;  // bytes after the length field
  std::uint8_t op = 0;
  std::uint64_t request_id = 0;
};

// Frame encoders: each returns the whole frame, length prefix included.
std::string encode_hello(std::uint64_t id, const Hello& m);
std::string encode_hello_ok(std::uint64_t id, const HelloOk& m);
std::string encode_empty(Op op, std::uint64_t id);  // ping, pong, info, unsubscribe-ok
std::string encode_append(std::uint64_t id, const AppendReq& m);
std::string encode_append_ok(std::uint64_t id, const AppendOk& m);
std::string encode_read_stream(std::uint64_t id, const ReadStreamReq& m);
std::string encode_read_all(std::uint64_t id, const ReadAllReq& m);
std::string encode_read_ok(std::uint64_t id, const ReadOk& m);
std::string encode_subscribe(std::uint64_t id, const SubscribeReq& m);
std::string encode_subscribe_ok(std::uint64_t id, const SubscribeOk& m);
std::string encode_sub_events(std::uint64_t id, const SubEvents& m);
std::string encode_checkpoint(std::uint64_t id, const Checkpoint& m);
std::string encode_unsubscribe(std::uint64_t id, const UnsubscribeReq& m);
std::string encode_error(std::uint64_t id, const Error& m);
std::string encode_info_ok(std::uint64_t id, const InfoOk& m);

// Bytes one event occupies on the wire (for batch budgets).
std::size_t event_wire_size(const engine::EventRecord& e);
std::size_t event_wire_size(const engine::RecordView& v);
// Appends the wire form of one event (used to build batches from views
// without copying into EventRecord first).
void append_event(std::string& out, const engine::RecordView& v);
void append_event(std::string& out, const engine::EventRecord& e);
// Builds a frame around an already-encoded payload.
std::string make_frame(Op op, std::uint64_t id, std::string_view payload);
// Payload of a ReadOk / SubEvents frame, from pre-encoded events.
std::string read_ok_payload(bool end, std::uint64_t next, std::uint32_t count,
                            std::string_view encoded_events);
std::string sub_events_payload(std::uint32_t count, std::string_view encoded_events);

// Parses the 4-byte length prefix plus op and request id (13 bytes).
FrameHeader parse_header(std::span<const std::uint8_t, 13> bytes);
std::uint32_t parse_length(std::span<const std::uint8_t, 4> bytes);

// Payload decoders: kBadRequest naming the field on truncated or trailing
// bytes, invalid enum values, etc.
Result<Hello> decode_hello(std::string_view payload);
Result<HelloOk> decode_hello_ok(std::string_view payload);
Result<AppendReq> decode_append(std::string_view payload);
Result<AppendOk> decode_append_ok(std::string_view payload);
Result<ReadStreamReq> decode_read_stream(std::string_view payload);
Result<ReadAllReq> decode_read_all(std::string_view payload);
Result<ReadOk> decode_read_ok(std::string_view payload);
Result<SubscribeReq> decode_subscribe(std::string_view payload);
Result<SubscribeOk> decode_subscribe_ok(std::string_view payload);
Result<SubEvents> decode_sub_events(std::string_view payload);
Result<Checkpoint> decode_checkpoint(std::string_view payload);
Result<UnsubscribeReq> decode_unsubscribe(std::string_view payload);
Result<Error> decode_error(std::string_view payload);
Result<InfoOk> decode_info_ok(std::string_view payload);

}  // namespace annal::net::proto
