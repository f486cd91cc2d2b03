#pragma once
// annal wire protocol, versions 1 to 6: message types and their byte
// encoding. The specification is docs/protocol.md; change neither without the
// other, and bump kProtocolVersion (with a version-history entry) on any
// change. A connection speaks the version its hello asked for; every walk
// over a message's fields knows it (v.version()), and the fields a version
// added are walked only from that version on.
//
// Every frame:  u32 length | u8 op | u64 request_id | payload
// `length` counts the bytes after itself (op + request id + payload), so it is
// at least kFrameMinBody. All integers little-endian. Strings and byte blobs
// are u32 length + bytes.
//
// The library annal_proto (no Asio): the node, the client library, the
// tools, tests and fuzz targets all link this one codec.
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

// The newest version this codec speaks, and the oldest a node still accepts.
inline constexpr std::uint16_t kProtocolVersion = 6;
inline constexpr std::uint16_t kMinProtocolVersion = 1;
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
  kReadIndex = 0x15,    // v2
  kSeekTime = 0x16,     // v2
  kAppendMulti = 0x17,  // v3
  kReadQuery = 0x18,    // v3
  // v4: consumer groups and named consumers (docs/consumer-groups.md)
  kGroupCreate = 0x19,
  kGroupDelete = 0x1A,
  kGroupList = 0x1B,
  kGroupInfo = 0x1C,
  kGroupJoin = 0x1D,
  kGroupAck = 0x1E,
  kGroupNack = 0x1F,
  kGroupReplayParked = 0x20,
  kCheckpointSave = 0x21,
  kCheckpointLoad = 0x22,
  kGroupParked = 0x23,
  // v5: stream metadata and deletion (docs/semantics.md)
  kStreamMetadata = 0x24,
  kSetStreamMetadata = 0x25,
  kDeleteStream = 0x26,
  kScavenge = 0x27,
  kSnapshotSave = 0x28,
  kSnapshotRead = 0x29,
  // v6: online backup (proto/backup_messages.h)
  kBackup = 0x2A,
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
  kSeekTimeOk = 0x96,        // v2
  kAppendMultiOk = 0x97,     // v3
  kAppendRefused = 0x98,     // v3
  kGroupOk = 0x99,           // v4
  kGroupListOk = 0x9A,       // v4
  kGroupEvents = 0x9B,       // v4
  kCheckpointOk = 0x9C,      // v4
  kGroupParkedOk = 0x9D,     // v4
  kStreamMetadataOk = 0x9E,  // v5
  kDeleteOk = 0x9F,          // v5
  kScavengeOk = 0xA0,        // v5
  kSnapshotSaved = 0xA1,     // v5
  kSnapshotOk = 0xA2,        // v5
  kBackupOk = 0xA3,          // v6
  kError = 0xFF,
};
const char* op_name(Op op);
bool is_request_op(std::uint8_t op);

// Stable numeric error codes. 1..18 are annal::Errc values unchanged
// (Errc::kAlreadyExists is sent as 109); 100+ exist only on the wire.
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
  kAppendConditionFailed = 16,  // v3
  kStreamDeleted = 17,          // v5: the stream was hard-deleted (tombstone)
  kBusy = 18,                   // v6: a backup (or a scavenge) is already running
  kUnsupportedVersion = 100,
  kUnknownOperation = 101,
  kFrameTooLarge = 102,
  kTooManyRequests = 103,
  kTooManyConnections = 104,
  kIdleTimeout = 105,
  kUnknownSubscription = 106,
  kHandshakeRequired = 107,
  kTooManySubscriptions = 108,
  kAlreadyExists = 109,   // v4: group_create of a name in use
  kConnectionLost = 200,  // client side only: never sent, reported by the client library
};
const char* code_name(Code c);
Code code_from_errc(Errc e);

// ---- message bodies ----
//
// Each message declares its wire layout once, in `fields`: the encoder, the
// size pass and the decoder (proto/wire.h) all walk that one list, in order,
// so the two directions cannot disagree. A visitor `v` offers u8/u16/u32/u64,
// i64, boolean, str, id, enumeration (an u8 or u16 with a range check),
// expected (kind u8 + revision u64), wire_flags, tags (a tag block: u16
// count, u16 length per tag, the tags' bytes: the record's own layout) and
// list (u32 count, then the elements' own fields). `name` strings are the
// field names a decode error reports ("append: field 'event.type' truncated
// ..."). v.version() is the connection's protocol version.

// The wire form of one event in read_ok / sub_events (EventRecord, or
// RecordView when a batch is encoded straight from the log).
template <class V, class E>
void event_fields(V& v, E& e) {
  v.u64(e.position.value, "event.position");
  v.u64(e.revision.value, "event.revision");
  v.i64(e.timestamp_us, "event.timestamp");
  v.wire_flags(e.flags, "event.flags");
  v.id(e.id, "event.id");
  v.str(e.stream, "event.stream");
  v.str(e.type, "event.type");
  v.str(e.metadata, "event.metadata");
  v.str(e.data, "event.data");
  if (v.version() >= 2) {
    v.tags(e.tags, "event.tags");
    v.str(e.correlation_id, "event.correlation_id");
    v.str(e.causation_id, "event.causation_id");
  }
}
// Fixed bytes of one event on the wire (v1: five u64/u32 fields, the id, four
// string lengths; v2 adds the tag count and two string lengths): a decoder
// never reserves more events than this allows.
constexpr std::size_t event_wire_fixed(std::uint16_t version) {
  return version >= 2 ? 70 : 60;
}

// Events already encoded with event_fields (a batch built from the log).
struct EncodedEvents {
  std::uint32_t count = 0;
  std::string_view bytes;
};

struct Hello {
  static constexpr Op kOp = Op::kHello;
  static constexpr const char* kName = "hello";
  std::uint32_t magic = kHelloMagic;
  std::uint16_t version = kProtocolVersion;
  std::string client_name;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u32(m.magic, "magic");
    v.u16(m.version, "version");
    v.str(m.client_name, "client_name");
  }
};
struct HelloOk {
  static constexpr Op kOp = Op::kHelloOk;
  static constexpr const char* kName = "hello_ok";
  std::uint16_t version = kProtocolVersion;
  std::uint32_t max_frame = kDefaultMaxFrame;
  std::uint32_t max_in_flight = 0;
  std::string server_version;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u16(m.version, "version");
    v.u32(m.max_frame, "max_frame");
    v.u32(m.max_in_flight, "max_in_flight");
    v.str(m.server_version, "server_version");
  }
};

// The events of an append (append, append_multi).
template <class V, class Events>
void new_events_fields(V& v, Events& events) {
  // id + type length + flags + metadata length + data length (v2: + tag
  // count + correlation and causation id lengths)
  const std::size_t min_event = v.version() >= 2 ? 42 : 32;
  v.list(events, "count", min_event, [](V& ev, auto& e) {
    ev.id(e.id, "event.id");
    ev.str(e.type, "event.type");
    ev.u32(e.flags, "event.flags");
    ev.str(e.metadata, "event.metadata");
    ev.str(e.data, "event.data");
    if (ev.version() >= 2) {
      ev.tags(e.tags, "event.tags");
      ev.str(e.correlation_id, "event.correlation_id");
      ev.str(e.causation_id, "event.causation_id");
    }
  });
}

// v3: a query (index/query.h): u32 item count; per item u32 type count and
// the types, u32 tag count and the tags (strings). No items: no query.
template <class V, class Q>
void query_fields(V& v, Q& q) {
  v.list(q.items, "query.items", 8, [](V& iv, auto& item) {
    iv.list(item.types, "query.item.types", 4,
            [](V& sv, auto& s) { sv.str(s, "query.item.type"); });
    iv.list(item.tags, "query.item.tags", 4, [](V& sv, auto& s) { sv.str(s, "query.item.tag"); });
  });
}

struct AppendReq {
  static constexpr Op kOp = Op::kAppend;
  static constexpr const char* kName = "append";
  std::string stream;
  ExpectedRevision expected;
  std::vector<index::NewEvent> events;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.stream, "stream");
    v.expected(m.expected, "expected_kind", "expected_revision");
    new_events_fields(v, m.events);
  }
};
struct AppendOk {
  static constexpr Op kOp = Op::kAppendOk;
  static constexpr const char* kName = "append_ok";
  std::uint64_t first_position = 0;
  std::uint64_t first_revision = 0;
  std::uint32_t count = 0;
  bool deduplicated = false;
  // Revision of the last event: what a follow-up append expects.
  std::uint64_t last_revision() const { return first_revision + count - 1; }
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.first_position, "first_position");
    v.u64(m.first_revision, "first_revision");
    v.u32(m.count, "count");
    v.boolean(m.deduplicated, "deduplicated");
  }
};

// v3: several streams in one append, all or nothing, each with its own
// expectation (a stream without events is only checked), and an optional
// condition: refused if an event matching `condition` exists at a position
// after `after` (kNone: at any position). Answered with append_multi_ok, or
// append_refused (wrong expected revision, condition failed), or error.
struct AppendMultiReq {
  static constexpr Op kOp = Op::kAppendMulti;
  static constexpr const char* kName = "append_multi";
  std::vector<index::StreamAppend> streams;
  index::Query condition;  // no items: no condition
  std::uint64_t after = kNone;
  template <class V, class M>
  static void fields(V& v, M& m) {
    // stream length + expectation + event count
    v.list(m.streams, "stream_count", 17, [](V& sv, auto& s) {
      sv.str(s.stream, "stream");
      sv.expected(s.expected, "expected_kind", "expected_revision");
      new_events_fields(sv, s.events);
    });
    query_fields(v, m.condition);
    v.u64(m.after, "after");
  }
  const char* invalid_field() const {
    if (condition.items.empty() && after != kNone) return "after";
    return nullptr;
  }
  static constexpr const char* kInvalidWhy = "needs a condition (after without a query)";
};
struct AppendMultiOk {
  static constexpr Op kOp = Op::kAppendMultiOk;
  static constexpr const char* kName = "append_multi_ok";
  struct Stream {
    std::uint64_t first_revision = kNone;  // kNone: the stream was only checked
    std::uint32_t count = 0;
  };
  std::uint64_t first_position = 0;
  std::uint32_t count = 0;  // events of every stream
  bool deduplicated = false;
  std::vector<Stream> streams;  // in request order
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.first_position, "first_position");
    v.u32(m.count, "count");
    v.boolean(m.deduplicated, "deduplicated");
    v.list(m.streams, "stream_count", 12, [](V& sv, auto& s) {
      sv.u64(s.first_revision, "stream.first_revision");
      sv.u32(s.count, "stream.count");
    });
  }
};
// v3: append_multi refused by its expectations (code 1) or its condition
// (code 16); other errors are `error` frames.
struct AppendRefused {
  static constexpr Op kOp = Op::kAppendRefused;
  static constexpr const char* kName = "append_refused";
  struct Stream {
    bool failed = false;
    std::uint64_t actual_revision = kNone;  // failed: kNone if the stream does not exist
  };
  Code code = Code::kWrongExpectedRevision;
  std::string message;
  std::uint64_t conflict_position = kNone;  // code 16: the first matching event
  std::vector<Stream> streams;              // code 1: one per stream of the request
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.enumeration(m.code, "code", UINT16_MAX, "");
    v.str(m.message, "message");
    v.u64(m.conflict_position, "conflict_position");
    v.list(m.streams, "stream_count", 9, [](V& sv, auto& s) {
      sv.boolean(s.failed, "stream.failed");
      sv.u64(s.actual_revision, "stream.actual_revision");
    });
  }
};
// v3: the events matching a query, in log order; answered with read_ok,
// whose durable_end says up to where the log was read (the head a
// condition's `after` takes is durable_end - 1).
struct ReadQueryReq {
  static constexpr Op kOp = Op::kReadQuery;
  static constexpr const char* kName = "read_query";
  index::Query query;
  std::uint64_t from = 0;  // a global position; kNone with backward = from the end
  std::uint32_t count = 0;
  index::Direction direction = index::Direction::kForward;
  template <class V, class M>
  static void fields(V& v, M& m) {
    query_fields(v, m.query);
    v.u64(m.from, "from");
    v.u32(m.count, "count");
    v.enumeration(m.direction, "direction", 1, "must be 0 (forward) or 1 (backward)");
  }
  const char* invalid_field() const { return query.items.empty() ? "query.items" : nullptr; }
  static constexpr const char* kInvalidWhy = "must not be empty";
};

struct ReadStreamReq {
  static constexpr Op kOp = Op::kReadStream;
  static constexpr const char* kName = "read_stream";
  std::string stream;
  std::uint64_t from = 0;  // kNone with backward = from the end
  std::uint32_t count = 0;
  index::Direction direction = index::Direction::kForward;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.stream, "stream");
    v.u64(m.from, "from");
    v.u32(m.count, "count");
    v.enumeration(m.direction, "direction", 1, "must be 0 (forward) or 1 (backward)");
  }
};
// v2: the events of one secondary index key (a category, event type, tag,
// correlation or causation id) in log order; answered with read_ok.
struct ReadIndexReq {
  static constexpr Op kOp = Op::kReadIndex;
  static constexpr const char* kName = "read_index";
  index::IndexKind kind = index::IndexKind::kCategory;
  std::string value;
  std::uint64_t from = 0;  // a global position; kNone with backward = from the end
  std::uint32_t count = 0;
  index::Direction direction = index::Direction::kForward;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.enumeration(m.kind, "kind", index::kMaxIndexKind,
                  "must be 0 (category), 1 (type), 2 (tag), 3 (correlation) or 4 (causation)");
    v.str(m.value, "value");
    v.u64(m.from, "from");
    v.u32(m.count, "count");
    v.enumeration(m.direction, "direction", 1, "must be 0 (forward) or 1 (backward)");
  }
};
// v2: the first position written at or after a time (then read from there).
struct SeekTimeReq {
  static constexpr Op kOp = Op::kSeekTime;
  static constexpr const char* kName = "seek_time";
  std::int64_t timestamp_us = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.i64(m.timestamp_us, "timestamp_us");
  }
};
struct SeekTimeOk {
  static constexpr Op kOp = Op::kSeekTimeOk;
  static constexpr const char* kName = "seek_time_ok";
  std::uint64_t position = 0;     // durable_end if nothing was written at or after the time
  std::uint64_t durable_end = 0;  // when it was answered
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.position, "position");
    v.u64(m.durable_end, "durable_end");
  }
};
struct ReadAllReq {
  static constexpr Op kOp = Op::kReadAll;
  static constexpr const char* kName = "read_all";
  std::uint64_t from = 0;  // kNone with backward = from the end
  std::uint32_t count = 0;
  index::Direction direction = index::Direction::kForward;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.from, "from");
    v.u32(m.count, "count");
    v.enumeration(m.direction, "direction", 1, "must be 0 (forward) or 1 (backward)");
  }
};
// Events on the wire are full records; a lost entry (format::kFlagLost) has
// only its position and flags, every other field empty or zero.
// `Events` is std::vector<engine::EventRecord> (ReadOk), or EncodedEvents
// for a response built from pre-encoded events (encode only).
template <class Events>
struct ReadOkOf {
  static constexpr Op kOp = Op::kReadOk;
  static constexpr const char* kName = "read_ok";
  bool end = false;               // nothing more in this direction (now)
  std::uint64_t next = kNone;     // where to continue; kNone if end in backward direction
  std::uint64_t durable_end = 0;  // v2: the durable end the page was read below
  Events events;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.boolean(m.end, "end");
    v.u64(m.next, "next");
    if (v.version() >= 2) v.u64(m.durable_end, "durable_end");
    v.events(m.events, "count");
  }
};
using ReadOk = ReadOkOf<std::vector<engine::EventRecord>>;
// Decoded as views into the frame's bytes: valid while they are (no copy and
// no allocation per event).
using ReadOkView = ReadOkOf<std::vector<engine::RecordView>>;

// kIndex (v2): the events of one secondary index key, as read_index.
// kQuery (v3): the events matching a query, as read_query.
enum class Target : std::uint8_t { kStream = 0, kAll = 1, kIndex = 2, kQuery = 3 };
struct SubscribeReq {
  static constexpr Op kOp = Op::kSubscribe;
  static constexpr const char* kName = "subscribe";
  Target target = Target::kAll;
  std::string stream;                     // kStream only
  bool from_end = false;                  // start after the last durable event
  std::uint64_t from = 0;                 // revision (stream) or position (all), inclusive
  std::string stream_prefix;              // kAll only; empty = no filter
  std::string type_prefix;                // kAll only; empty = no filter
  std::uint32_t checkpoint_interval = 0;  // positions scanned; 0 = server default
  index::IndexKind index_kind = index::IndexKind::kCategory;  // v2, kIndex only
  std::string index_value = {};                               // v2, kIndex only
  index::Query query = {};                                    // v3, kQuery only
  template <class V, class M>
  static void fields(V& v, M& m) {
    if (v.version() >= 3)
      v.enumeration(m.target, "target", 3, "must be 0 (stream), 1 (all), 2 (index) or 3 (query)");
    else if (v.version() >= 2)
      v.enumeration(m.target, "target", 2, "must be 0 (stream), 1 (all) or 2 (index)");
    else
      v.enumeration(m.target, "target", 1, "must be 0 (stream) or 1 (all)");
    v.str(m.stream, "stream");
    v.boolean(m.from_end, "from_end");
    v.u64(m.from, "from");
    v.str(m.stream_prefix, "stream_prefix");
    v.str(m.type_prefix, "type_prefix");
    v.u32(m.checkpoint_interval, "checkpoint_interval");
    if (v.version() >= 2) {
      v.enumeration(m.index_kind, "index_kind", index::kMaxIndexKind,
                    "must be 0 (category), 1 (type), 2 (tag), 3 (correlation) or 4 (causation)");
      v.str(m.index_value, "index_value");
    }
    if (v.version() >= 3) query_fields(v, m.query);
  }
  // After a successful decode: (field, why) if the message is inconsistent.
  const char* invalid_field() const {
    if (target == Target::kStream && stream.empty()) return "stream";
    if (target == Target::kIndex && index_value.empty()) return "index_value";
    if (target == Target::kQuery && query.items.empty()) return "query.items";
    return nullptr;
  }
  static constexpr const char* kInvalidWhy = "must not be empty";
};
struct SubscribeOk {
  static constexpr Op kOp = Op::kSubscribeOk;
  static constexpr const char* kName = "subscribe_ok";
  std::uint64_t start = 0;  // first revision/position that can be delivered
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.start, "start");
  }
};
template <class Events>
struct SubEventsOf {
  static constexpr Op kOp = Op::kSubEvents;
  static constexpr const char* kName = "sub_events";
  Events events;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.events(m.events, "count");
  }
};
using SubEvents = SubEventsOf<std::vector<engine::EventRecord>>;
using SubEventsView = SubEventsOf<std::vector<engine::RecordView>>;
struct Checkpoint {
  static constexpr Op kOp = Op::kCheckpoint;
  static constexpr const char* kName = "checkpoint";
  std::uint64_t position = 0;  // every position below has been scanned
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.position, "position");
  }
};
struct UnsubscribeReq {
  static constexpr Op kOp = Op::kUnsubscribe;
  static constexpr const char* kName = "unsubscribe";
  std::uint64_t subscription_id = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.subscription_id, "subscription_id");
  }
};
struct Error {
  static constexpr Op kOp = Op::kError;
  static constexpr const char* kName = "error";
  Code code = Code::kInternal;
  // Code-specific: actual last revision (kWrongExpectedRevision; kNone if the
  // stream does not exist), event index (kInvalidJson, kTooLarge), the
  // server's protocol version (kUnsupportedVersion); otherwise kNone.
  std::uint64_t detail = kNone;
  std::string message;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.enumeration(m.code, "code", UINT16_MAX, "");  // unknown codes are kept, not refused
    v.u64(m.detail, "detail");
    v.str(m.message, "message");
  }
};
struct InfoOk {
  static constexpr Op kOp = Op::kInfoOk;
  static constexpr const char* kName = "info_ok";
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
  // v2
  std::uint64_t max_tags = 0;
  std::uint64_t max_tag_size = 0;
  std::uint64_t max_correlation_id = 0;
  // v3
  std::uint64_t max_append_streams = 0;
  std::uint64_t max_query_items = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.server_version, "server_version");
    v.u16(m.protocol_version, "protocol_version");
    v.u64(m.durable_end, "durable_end");
    v.u64(m.segments, "segments");
    v.u64(m.max_stream_name, "max_stream_name");
    v.u64(m.max_event_type, "max_event_type");
    v.u64(m.max_event_size, "max_event_size");
    v.u64(m.max_append_size, "max_append_size");
    v.u64(m.max_append_events, "max_append_events");
    v.u32(m.max_frame, "max_frame");
    v.u32(m.max_in_flight, "max_in_flight");
    v.u32(m.max_connections, "max_connections");
    v.u32(m.connections, "connections");
    v.u64(m.index_memtable_entries, "index_memtable_entries");
    v.u64(m.index_files, "index_files");
    v.u64(m.indexed_through, "indexed_through");
    if (v.version() >= 2) {
      v.u64(m.max_tags, "max_tags");
      v.u64(m.max_tag_size, "max_tag_size");
      v.u64(m.max_correlation_id, "max_correlation_id");
    }
    if (v.version() >= 3) {
      v.u64(m.max_append_streams, "max_append_streams");
      v.u64(m.max_query_items, "max_query_items");
    }
  }
};

// ---- frames ----

struct FrameHeader {
  std::uint32_t length = 0;  // bytes after the length field
  std::uint8_t op = 0;
  std::uint64_t request_id = 0;
};

// The whole frame of message `m` (length prefix included), from M::fields.
// Instantiated in protocol.cc for every message type above (ReadOkOf and
// SubEventsOf with both event containers).
// `version`: the connection's protocol version (only events depend on it).
template <class M>
std::string encode(std::uint64_t id, const M& m, std::uint16_t version = kProtocolVersion);
// Decodes a payload with M::fields: kBadRequest naming the message and field
// on truncated or trailing bytes, invalid enum values, counts that cannot fit.
template <class M>
Result<M> decode(std::string_view payload, std::uint16_t version = kProtocolVersion);

// A frame built around events already encoded in place (one copy of each
// record's bytes): the caller reserves frame_head_size(m) bytes in front of
// the events, and write_frame_head fills them with the frame header and m's
// fields up to the events. Only the size of m.events.bytes is used: they are
// the bytes that follow the head. For ReadOkOf / SubEventsOf<EncodedEvents>.
template <class M>
std::size_t frame_head_size(const M& m, std::uint16_t version = kProtocolVersion);
template <class M>
void write_frame_head(std::uint64_t id, const M& m, char* head,
                      std::uint16_t version = kProtocolVersion);

// The frame of `m` written into `out` (no allocation): its size, or 0 if it
// does not fit. Instantiated for AppendOk (the per-append answer).
template <class M>
std::size_t encode_to(std::uint64_t id, const M& m, std::span<char> out);

std::string encode_empty(Op op, std::uint64_t id);  // ping, pong, info, unsubscribe-ok
// Builds a frame around an already-encoded payload (tests, malformed input).
std::string make_frame(Op op, std::uint64_t id, std::string_view payload);

// Bytes one event occupies on the wire (for batch budgets).
std::size_t event_wire_size(const engine::EventRecord& e, std::uint16_t version = kProtocolVersion);
std::size_t event_wire_size(const engine::RecordView& v, std::uint16_t version = kProtocolVersion);
// Appends the wire form of one event (event_fields), to build batches from
// views without copying into EventRecord first.
void append_event(std::string& out, const engine::RecordView& v,
                  std::uint16_t version = kProtocolVersion);
void append_event(std::string& out, const engine::EventRecord& e,
                  std::uint16_t version = kProtocolVersion);
// Writes the wire form of `v` at `out`, which must hold
// event_wire_size(v, version) bytes; returns the end.
char* write_event(char* out, const engine::RecordView& v, std::uint16_t version = kProtocolVersion);

// Parses the 4-byte length prefix plus op and request id (13 bytes).
FrameHeader parse_header(std::span<const std::uint8_t, 13> bytes);
std::uint32_t parse_length(std::span<const std::uint8_t, 4> bytes);

// Named forms, for readability at call sites.
inline std::string encode_hello(std::uint64_t id, const Hello& m,
                                std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_hello_ok(std::uint64_t id, const HelloOk& m,
                                   std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_append(std::uint64_t id, const AppendReq& m,
                                 std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_append_ok(std::uint64_t id, const AppendOk& m,
                                    std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_read_stream(std::uint64_t id, const ReadStreamReq& m,
                                      std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_read_all(std::uint64_t id, const ReadAllReq& m,
                                   std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_read_ok(std::uint64_t id, const ReadOk& m,
                                  std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_subscribe(std::uint64_t id, const SubscribeReq& m,
                                    std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_subscribe_ok(std::uint64_t id, const SubscribeOk& m,
                                       std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_sub_events(std::uint64_t id, const SubEvents& m,
                                     std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_checkpoint(std::uint64_t id, const Checkpoint& m,
                                     std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_unsubscribe(std::uint64_t id, const UnsubscribeReq& m,
                                      std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_error(std::uint64_t id, const Error& m,
                                std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline std::string encode_info_ok(std::uint64_t id, const InfoOk& m,
                                  std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}

inline Result<Hello> decode_hello(std::string_view p, std::uint16_t version = kProtocolVersion) {
  return decode<Hello>(p, version);
}
inline Result<HelloOk> decode_hello_ok(std::string_view p,
                                       std::uint16_t version = kProtocolVersion) {
  return decode<HelloOk>(p, version);
}
inline Result<AppendReq> decode_append(std::string_view p,
                                       std::uint16_t version = kProtocolVersion) {
  return decode<AppendReq>(p, version);
}
inline Result<AppendOk> decode_append_ok(std::string_view p,
                                         std::uint16_t version = kProtocolVersion) {
  return decode<AppendOk>(p, version);
}
inline Result<ReadStreamReq> decode_read_stream(std::string_view p,
                                                std::uint16_t version = kProtocolVersion) {
  return decode<ReadStreamReq>(p, version);
}
inline std::string encode_read_index(std::uint64_t id, const ReadIndexReq& m,
                                     std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline Result<ReadIndexReq> decode_read_index(std::string_view p,
                                              std::uint16_t version = kProtocolVersion) {
  return decode<ReadIndexReq>(p, version);
}
inline std::string encode_seek_time(std::uint64_t id, const SeekTimeReq& m,
                                    std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline Result<SeekTimeReq> decode_seek_time(std::string_view p,
                                            std::uint16_t version = kProtocolVersion) {
  return decode<SeekTimeReq>(p, version);
}
inline std::string encode_seek_time_ok(std::uint64_t id, const SeekTimeOk& m,
                                       std::uint16_t version = kProtocolVersion) {
  return encode(id, m, version);
}
inline Result<SeekTimeOk> decode_seek_time_ok(std::string_view p,
                                              std::uint16_t version = kProtocolVersion) {
  return decode<SeekTimeOk>(p, version);
}
inline Result<ReadAllReq> decode_read_all(std::string_view p,
                                          std::uint16_t version = kProtocolVersion) {
  return decode<ReadAllReq>(p, version);
}
inline Result<ReadOk> decode_read_ok(std::string_view p, std::uint16_t version = kProtocolVersion) {
  return decode<ReadOk>(p, version);
}
inline Result<SubscribeReq> decode_subscribe(std::string_view p,
                                             std::uint16_t version = kProtocolVersion) {
  return decode<SubscribeReq>(p, version);
}
inline Result<SubscribeOk> decode_subscribe_ok(std::string_view p,
                                               std::uint16_t version = kProtocolVersion) {
  return decode<SubscribeOk>(p, version);
}
inline Result<SubEvents> decode_sub_events(std::string_view p,
                                           std::uint16_t version = kProtocolVersion) {
  return decode<SubEvents>(p, version);
}
inline Result<Checkpoint> decode_checkpoint(std::string_view p,
                                            std::uint16_t version = kProtocolVersion) {
  return decode<Checkpoint>(p, version);
}
inline Result<UnsubscribeReq> decode_unsubscribe(std::string_view p,
                                                 std::uint16_t version = kProtocolVersion) {
  return decode<UnsubscribeReq>(p, version);
}
inline Result<Error> decode_error(std::string_view p, std::uint16_t version = kProtocolVersion) {
  return decode<Error>(p, version);
}
inline Result<InfoOk> decode_info_ok(std::string_view p, std::uint16_t version = kProtocolVersion) {
  return decode<InfoOk>(p, version);
}

}  // namespace annal::net::proto

// The v4 consumer-group messages, declared in their own header.
#include "proto/group_messages.h"  // IWYU pragma: export
// The v5 stream metadata and deletion messages.
#include "proto/lifecycle_messages.h"  // IWYU pragma: export
// The v6 backup messages.
#include "proto/backup_messages.h"  // IWYU pragma: export
