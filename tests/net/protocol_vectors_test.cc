// The codec against the shared protocol vectors (tests/vectors/protocol.json),
// which the Python and TypeScript clients' tests read too: all must produce
// and accept the same bytes for the same fields.

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <set>
#include <string>

#include "proto/protocol.h"
#include "tests/common/hex.h"

namespace annal::net::proto {
namespace {

std::string hex(std::string_view s) {
  return test::to_hex(s);
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

std::string str(simdjson::dom::element e, const char* key) {
  return std::string(std::string_view(e[key]));
}
std::uint64_t u64(simdjson::dom::element e, const char* key) {
  return std::uint64_t(e[key]);
}

// The fields an appended and a stored event share.
template <class E>
E event_fields(simdjson::dom::element e) {
  E out;
  out.id = *EventId::parse(str(e, "id"));
  out.type = str(e, "type");
  out.flags = static_cast<std::uint32_t>(u64(e, "flags"));
  out.metadata = str(e, "metadata");
  out.data = str(e, "data");
  // Version 2 vectors carry tags and ids; version 1 events have none.
  simdjson::dom::array tags;
  if (!e["tags"].get(tags))
    for (simdjson::dom::element t : tags) out.tags.emplace_back(std::string_view(t));
  std::string_view id;
  if (!e["correlation_id"].get(id)) out.correlation_id = id;
  if (!e["causation_id"].get(id)) out.causation_id = id;
  return out;
}

std::vector<std::string> strings(simdjson::dom::element e, const char* key) {
  std::vector<std::string> out;
  for (simdjson::dom::element s : e[key].get_array()) out.emplace_back(std::string_view(s));
  return out;
}

// A query's items (version 3).
index::Query query_of(simdjson::dom::element items) {
  index::Query q;
  for (simdjson::dom::element i : items.get_array())
    q.items.push_back(index::QueryItem{strings(i, "types"), strings(i, "tags")});
  return q;
}

// A consumer group's settings (version 4).
groups::Settings settings_of(simdjson::dom::element s) {
  groups::Settings o;
  o.target = static_cast<groups::Target>(u64(s, "target"));
  o.stream = str(s, "stream");
  o.stream_prefix = str(s, "stream_prefix");
  o.type_prefix = str(s, "type_prefix");
  o.index_kind = static_cast<index::IndexKind>(u64(s, "index_kind"));
  o.index_value = str(s, "index_value");
  o.start = static_cast<groups::Start>(u64(s, "start"));
  o.start_value = u64(s, "start_value");
  o.strategy = static_cast<groups::Strategy>(u64(s, "strategy"));
  o.max_in_flight = static_cast<std::uint32_t>(u64(s, "max_in_flight"));
  o.ack_timeout_ms = static_cast<std::uint32_t>(u64(s, "ack_timeout_ms"));
  o.max_retries = static_cast<std::uint32_t>(u64(s, "max_retries"));
  o.retry_delay_ms = static_cast<std::uint32_t>(u64(s, "retry_delay_ms"));
  return o;
}

std::vector<std::uint64_t> positions_of(simdjson::dom::element f) {
  std::vector<std::uint64_t> out;
  for (simdjson::dom::element p : f["positions"].get_array()) out.push_back(std::uint64_t(p));
  return out;
}

// An expectation as an append encodes it (expected_kind, expected_revision).
ExpectedRevision expected_of(simdjson::dom::element f) {
  ExpectedRevision e;
  e.kind = static_cast<ExpectedRevision::Kind>(u64(f, "expected_kind"));
  e.revision = StreamRevision(u64(f, "expected_revision"));
  return e;
}

engine::EventRecord record_of(simdjson::dom::element e) {
  auto rec = event_fields<engine::EventRecord>(e);
  rec.position = GlobalPosition(u64(e, "position"));
  rec.revision = StreamRevision(u64(e, "revision"));
  rec.timestamp_us = std::int64_t(e["timestamp_us"]);
  rec.stream = str(e, "stream");
  return rec;
}

class ProtocolVectorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = parser_.load(ANNAL_VECTORS_PATH);
    ASSERT_FALSE(r.error()) << "cannot read " << ANNAL_VECTORS_PATH << ": "
                            << simdjson::error_message(r.error());
    doc_ = r.value();
  }
  // The frame's payload (after length, op and request id), checking the header.
  std::string payload_of(simdjson::dom::element v, Op op) {
    const std::string frame = unhex(str(v, "hex"));
    EXPECT_GE(frame.size(), 13u);
    const auto* b = reinterpret_cast<const std::uint8_t*>(frame.data());
    const FrameHeader h = parse_header(std::span<const std::uint8_t, 13>(b, 13));
    EXPECT_EQ(h.length + 4, frame.size());
    EXPECT_EQ(h.op, static_cast<std::uint8_t>(op));
    EXPECT_EQ(h.request_id, u64(v, "request_id"));
    return frame.substr(13);
  }
  simdjson::dom::parser parser_;
  simdjson::dom::element doc_;
};

TEST_F(ProtocolVectorsTest, EveryVectorEncodesAndDecodesAsItsFieldsSay) {
  std::set<std::string> seen;
  std::set<std::uint16_t> versions;
  for (simdjson::dom::element v : doc_["vectors"].get_array()) {
    const std::string op = str(v, "op"), name = str(v, "name");
    const std::uint64_t id = u64(v, "request_id");
    const auto version = static_cast<std::uint16_t>(u64(v, "version"));
    ASSERT_GE(version, kMinProtocolVersion) << name;
    ASSERT_LE(version, kProtocolVersion) << name;
    simdjson::dom::element f = v["fields"];
    seen.insert(op);
    versions.insert(version);
    if (op == "append") {
      AppendReq r;
      r.stream = str(f, "stream");
      r.expected.kind = static_cast<ExpectedRevision::Kind>(u64(f, "expected_kind"));
      r.expected.revision = StreamRevision(u64(f, "expected_revision"));
      for (simdjson::dom::element e : f["events"].get_array())
        r.events.push_back(event_fields<index::NewEvent>(e));
      EXPECT_EQ(hex(encode_append(id, r, version)), str(v, "hex")) << name;
      auto back = decode_append(payload_of(v, Op::kAppend), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->stream, r.stream);
      ASSERT_EQ(back->events.size(), r.events.size());
      for (std::size_t i = 0; i < r.events.size(); ++i) {
        EXPECT_EQ(back->events[i].tags, r.events[i].tags) << name;
        EXPECT_EQ(back->events[i].correlation_id, r.events[i].correlation_id) << name;
        EXPECT_EQ(back->events[i].causation_id, r.events[i].causation_id) << name;
        EXPECT_EQ(back->events[i].data, r.events[i].data) << name;
      }
    } else if (op == "hello") {
      Hello h;
      h.client_name = str(f, "client_name");
      h.version = version;
      EXPECT_EQ(u64(f, "magic"), kHelloMagic);
      EXPECT_EQ(u64(f, "version"), version);
      EXPECT_EQ(hex(encode_hello(id, h)), str(v, "hex")) << name;
    } else if (op == "append_ok") {
      AppendOk ok{u64(f, "first_position"), u64(f, "first_revision"),
                  static_cast<std::uint32_t>(u64(f, "count")), u64(f, "deduplicated") != 0};
      EXPECT_EQ(hex(encode_append_ok(id, ok)), str(v, "hex")) << name;
      auto back = decode_append_ok(payload_of(v, Op::kAppendOk));
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->first_position, ok.first_position);
    } else if (op == "error") {
      Error e{static_cast<Code>(u64(f, "code")), u64(f, "detail"), str(f, "message")};
      EXPECT_EQ(hex(encode_error(id, e)), str(v, "hex")) << name;
      auto back = decode_error(payload_of(v, Op::kError));
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->detail, e.detail);
      EXPECT_EQ(back->message, e.message);
    } else if (op == "read_ok") {
      ReadOk r;
      r.end = u64(f, "end") != 0;
      r.next = u64(f, "next");
      if (version >= 2) r.durable_end = u64(f, "durable_end");
      for (simdjson::dom::element e : f["events"].get_array()) {
        auto rec = event_fields<engine::EventRecord>(e);
        rec.position = GlobalPosition(u64(e, "position"));
        rec.revision = StreamRevision(u64(e, "revision"));
        rec.timestamp_us = std::int64_t(e["timestamp_us"]);
        rec.stream = str(e, "stream");
        r.events.push_back(std::move(rec));
      }
      EXPECT_EQ(hex(encode_read_ok(id, r, version)), str(v, "hex")) << name;
      auto back = decode_read_ok(payload_of(v, Op::kReadOk), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->events, r.events) << name;
      EXPECT_EQ(back->durable_end, r.durable_end) << name;
    } else if (op == "append_multi") {
      AppendMultiReq m;
      for (simdjson::dom::element s : f["streams"].get_array()) {
        index::StreamAppend a;
        a.stream = str(s, "stream");
        a.expected.kind = static_cast<ExpectedRevision::Kind>(u64(s, "expected_kind"));
        a.expected.revision = StreamRevision(u64(s, "expected_revision"));
        for (simdjson::dom::element e : s["events"].get_array())
          a.events.push_back(event_fields<index::NewEvent>(e));
        m.streams.push_back(std::move(a));
      }
      m.condition = query_of(f["condition"]);
      m.after = u64(f, "after");
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<AppendMultiReq>(payload_of(v, Op::kAppendMulti), version);
      ASSERT_TRUE(back.is_ok()) << name;
      ASSERT_EQ(back->streams.size(), m.streams.size());
      EXPECT_EQ(back->streams[1].expected.revision, m.streams[1].expected.revision);
      EXPECT_EQ(back->condition.items.size(), m.condition.items.size());
      EXPECT_EQ(back->condition.items[0].types, m.condition.items[0].types);
      EXPECT_EQ(back->after, m.after);
    } else if (op == "read_query") {
      ReadQueryReq q{query_of(f["query"]), u64(f, "from"),
                     static_cast<std::uint32_t>(u64(f, "count")),
                     static_cast<index::Direction>(u64(f, "direction"))};
      EXPECT_EQ(hex(encode(id, q, version)), str(v, "hex")) << name;
      auto back = decode<ReadQueryReq>(payload_of(v, Op::kReadQuery), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->query.items[1].tags, q.query.items[1].tags);
    } else if (op == "append_multi_ok") {
      AppendMultiOk ok{u64(f, "first_position"),
                       static_cast<std::uint32_t>(u64(f, "count")),
                       u64(f, "deduplicated") != 0,
                       {}};
      for (simdjson::dom::element s : f["streams"].get_array())
        ok.streams.push_back(
            {u64(s, "first_revision"), static_cast<std::uint32_t>(u64(s, "count"))});
      EXPECT_EQ(hex(encode(id, ok, version)), str(v, "hex")) << name;
      auto back = decode<AppendMultiOk>(payload_of(v, Op::kAppendMultiOk), version);
      ASSERT_TRUE(back.is_ok()) << name;
      ASSERT_EQ(back->streams.size(), ok.streams.size());
      EXPECT_EQ(back->streams.back().first_revision, ok.streams.back().first_revision);
    } else if (op == "append_refused") {
      AppendRefused r{
          static_cast<Code>(u64(f, "code")), str(f, "message"), u64(f, "conflict_position"), {}};
      for (simdjson::dom::element s : f["streams"].get_array())
        r.streams.push_back({u64(s, "failed") != 0, u64(s, "actual_revision")});
      EXPECT_EQ(hex(encode(id, r, version)), str(v, "hex")) << name;
      auto back = decode<AppendRefused>(payload_of(v, Op::kAppendRefused), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->conflict_position, r.conflict_position);
      EXPECT_EQ(back->streams.size(), r.streams.size());
    } else if (op == "group_create") {
      GroupCreateReq g{u64(f, "update") != 0, str(f, "name"), settings_of(f["settings"])};
      EXPECT_EQ(hex(encode(id, g, version)), str(v, "hex")) << name;
      auto back = decode<GroupCreateReq>(payload_of(v, Op::kGroupCreate), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->settings.index_value, g.settings.index_value);
      EXPECT_EQ(back->settings.strategy, g.settings.strategy);
      EXPECT_EQ(back->settings.retry_delay_ms, g.settings.retry_delay_ms);
    } else if (op == "group_ack") {
      GroupAckReq a{u64(f, "join_id"), positions_of(f)};
      EXPECT_EQ(hex(encode(id, a, version)), str(v, "hex")) << name;
      auto back = decode<GroupAckReq>(payload_of(v, Op::kGroupAck), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->positions, a.positions);
    } else if (op == "group_nack") {
      GroupNackReq n{u64(f, "join_id"), static_cast<groups::NackAction>(u64(f, "action")),
                     str(f, "reason"), positions_of(f)};
      EXPECT_EQ(hex(encode(id, n, version)), str(v, "hex")) << name;
      auto back = decode<GroupNackReq>(payload_of(v, Op::kGroupNack), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->reason, n.reason);
      EXPECT_EQ(back->action, n.action);
    } else if (op == "group_events") {
      GroupEvents g;
      for (simdjson::dom::element e : f["events"].get_array())
        g.events.push_back(
            GroupEvent{static_cast<std::uint32_t>(u64(e, "attempt")), record_of(e["event"])});
      EXPECT_EQ(hex(encode(id, g, version)), str(v, "hex")) << name;
      auto back = decode<GroupEvents>(payload_of(v, Op::kGroupEvents), version);
      ASSERT_TRUE(back.is_ok()) << name;
      ASSERT_EQ(back->events.size(), g.events.size());
      EXPECT_EQ(back->events[0].attempt, g.events[0].attempt);
      EXPECT_EQ(back->events[0].event, g.events[0].event);
    } else if (op == "group_list_ok") {
      GroupListOk l;
      for (simdjson::dom::element g : f["groups"].get_array()) {
        GroupInfo i;
        i.kind = static_cast<groups::Kind>(u64(g, "kind"));
        i.name = str(g, "name");
        i.settings = settings_of(g["settings"]);
        i.checkpoint = u64(g, "checkpoint");
        i.durable_end = u64(g, "durable_end");
        i.lag_events = u64(g, "lag_events");
        i.lag_us = std::int64_t(g["lag_us"]);
        i.consumers = static_cast<std::uint32_t>(u64(g, "consumers"));
        i.in_flight = u64(g, "in_flight");
        i.buffered = u64(g, "buffered");
        i.parked = u64(g, "parked");
        i.acked_total = u64(g, "acked_total");
        i.parked_total = u64(g, "parked_total");
        i.delivered_total = u64(g, "delivered_total");
        l.groups.push_back(std::move(i));
      }
      EXPECT_EQ(hex(encode(id, l, version)), str(v, "hex")) << name;
      auto back = decode<GroupListOk>(payload_of(v, Op::kGroupListOk), version);
      ASSERT_TRUE(back.is_ok()) << name;
      ASSERT_EQ(back->groups.size(), l.groups.size());
      EXPECT_EQ(back->groups[0].lag_us, l.groups[0].lag_us);
      EXPECT_EQ(back->groups[0].delivered_total, l.groups[0].delivered_total);
    } else if (op == "stream_metadata") {
      StreamMetadataReq m{str(f, "stream")};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<StreamMetadataReq>(payload_of(v, Op::kStreamMetadata), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->stream, m.stream);
    } else if (op == "stream_metadata_ok") {
      StreamMetadataOk m;
      m.revision = u64(f, "revision");
      m.json = str(f, "json");
      m.max_count = u64(f, "max_count");
      m.max_age = u64(f, "max_age");
      m.truncate_before = u64(f, "truncate_before");
      m.deleted_before = u64(f, "deleted_before");
      m.deleted = u64(f, "deleted") != 0;
      m.tombstoned = u64(f, "tombstoned") != 0;
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<StreamMetadataOk>(payload_of(v, Op::kStreamMetadataOk), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->revision, m.revision) << name;
      EXPECT_EQ(back->json, m.json) << name;
      EXPECT_EQ(back->max_count, m.max_count) << name;
      EXPECT_EQ(back->max_age, m.max_age) << name;
      EXPECT_EQ(back->truncate_before, m.truncate_before) << name;
      EXPECT_EQ(back->deleted_before, m.deleted_before) << name;
      EXPECT_EQ(back->deleted, m.deleted) << name;
      EXPECT_EQ(back->tombstoned, m.tombstoned) << name;
    } else if (op == "set_stream_metadata") {
      SetStreamMetadataReq m{str(f, "stream"), expected_of(f), str(f, "json")};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<SetStreamMetadataReq>(payload_of(v, Op::kSetStreamMetadata), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->stream, m.stream);
      EXPECT_EQ(back->expected.kind, m.expected.kind);
      EXPECT_EQ(back->expected.revision, m.expected.revision);
      EXPECT_EQ(back->json, m.json);
    } else if (op == "delete_stream") {
      DeleteStreamReq m{str(f, "stream"), expected_of(f), u64(f, "hard") != 0};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<DeleteStreamReq>(payload_of(v, Op::kDeleteStream), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->stream, m.stream);
      EXPECT_EQ(back->expected.revision, m.expected.revision);
      EXPECT_EQ(back->hard, m.hard);
    } else if (op == "delete_ok") {
      DeleteOk m{u64(f, "position"), u64(f, "truncate_before")};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<DeleteOk>(payload_of(v, Op::kDeleteOk), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->position, m.position);
      EXPECT_EQ(back->truncate_before, m.truncate_before);
    } else if (op == "scavenge") {
      EXPECT_EQ(hex(encode(id, ScavengeReq{}, version)), str(v, "hex")) << name;
      EXPECT_TRUE(decode<ScavengeReq>(payload_of(v, Op::kScavenge), version).is_ok()) << name;
    } else if (op == "scavenge_ok") {
      ScavengeOk m;
      m.segments_checked = u64(f, "segments_checked");
      m.segments_rewritten = u64(f, "segments_rewritten");
      m.events_removed = u64(f, "events_removed");
      m.bytes_read = u64(f, "bytes_read");
      m.bytes_written = u64(f, "bytes_written");
      m.log_bytes_before = u64(f, "log_bytes_before");
      m.log_bytes_after = u64(f, "log_bytes_after");
      m.duration_us = u64(f, "duration_us");
      m.cancelled = u64(f, "cancelled") != 0;
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      const std::string payload = payload_of(v, Op::kScavengeOk);
      auto back = decode<ScavengeOk>(payload, version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->segments_checked, m.segments_checked) << name;
      EXPECT_EQ(back->segments_rewritten, m.segments_rewritten) << name;
      EXPECT_EQ(back->events_removed, m.events_removed) << name;
      EXPECT_EQ(back->bytes_read, m.bytes_read) << name;
      EXPECT_EQ(back->bytes_written, m.bytes_written) << name;
      EXPECT_EQ(back->log_bytes_before, m.log_bytes_before) << name;
      EXPECT_EQ(back->log_bytes_after, m.log_bytes_after) << name;
      EXPECT_EQ(back->duration_us, m.duration_us) << name;
      EXPECT_EQ(back->cancelled, m.cancelled) << name;
      EXPECT_FALSE(decode<ScavengeOk>(payload.substr(0, payload.size() - 1), version).is_ok())
          << name;
    } else if (op == "snapshot_save") {
      SnapshotSaveReq m{str(f, "stream"), u64(f, "revision"), str(f, "type"), str(f, "data")};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<SnapshotSaveReq>(payload_of(v, Op::kSnapshotSave), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->stream, m.stream) << name;
      EXPECT_EQ(back->revision, m.revision) << name;
      EXPECT_EQ(back->type, m.type) << name;
      EXPECT_EQ(back->data, m.data) << name;
    } else if (op == "snapshot_saved") {
      SnapshotSaved m{u64(f, "revision"), static_cast<std::uint32_t>(u64(f, "kept"))};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<SnapshotSaved>(payload_of(v, Op::kSnapshotSaved), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->revision, m.revision) << name;
      EXPECT_EQ(back->kept, m.kept) << name;
    } else if (op == "snapshot_read") {
      SnapshotReadReq m{str(f, "stream"), u64(f, "max_revision"),
                        static_cast<std::uint32_t>(u64(f, "count"))};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      auto back = decode<SnapshotReadReq>(payload_of(v, Op::kSnapshotRead), version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->stream, m.stream) << name;
      EXPECT_EQ(back->max_revision, m.max_revision) << name;
      EXPECT_EQ(back->count, m.count) << name;
    } else if (op == "snapshot_ok") {
      SnapshotOk m;
      m.found = u64(f, "found") != 0;
      m.revision = u64(f, "revision");
      m.type = str(f, "type");
      m.data = str(f, "data");
      m.end = u64(f, "end") != 0;
      m.next = u64(f, "next");
      for (simdjson::dom::element e : f["events"].get_array()) m.events.push_back(record_of(e));
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      const std::string payload = payload_of(v, Op::kSnapshotOk);
      auto back = decode<SnapshotOk>(payload, version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->found, m.found) << name;
      EXPECT_EQ(back->revision, m.revision) << name;
      EXPECT_EQ(back->type, m.type) << name;
      EXPECT_EQ(back->data, m.data) << name;
      EXPECT_EQ(back->end, m.end) << name;
      EXPECT_EQ(back->next, m.next) << name;
      EXPECT_EQ(back->events, m.events) << name;
      EXPECT_FALSE(decode<SnapshotOk>(payload.substr(0, payload.size() - 1), version).is_ok())
          << name;
      EXPECT_FALSE(decode<SnapshotOk>(payload + '\0', version).is_ok()) << name;
    } else if (op == "backup") {
      BackupReq m{str(f, "dest"), u64(f, "link") != 0, u64(f, "bytes_per_second")};
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      const std::string payload = payload_of(v, Op::kBackup);
      auto back = decode<BackupReq>(payload, version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->dest, m.dest) << name;
      EXPECT_EQ(back->link, m.link) << name;
      EXPECT_EQ(back->bytes_per_second, m.bytes_per_second) << name;
      EXPECT_FALSE(decode<BackupReq>(payload.substr(0, payload.size() - 1), version).is_ok())
          << name;
    } else if (op == "backup_ok") {
      BackupOk m;
      m.position = u64(f, "position");
      m.files = static_cast<std::uint32_t>(u64(f, "files"));
      m.bytes = u64(f, "bytes");
      m.linked = static_cast<std::uint32_t>(u64(f, "linked"));
      m.duration_us = u64(f, "duration_us");
      m.dest = str(f, "dest");
      m.note = str(f, "note");
      EXPECT_EQ(hex(encode(id, m, version)), str(v, "hex")) << name;
      const std::string payload = payload_of(v, Op::kBackupOk);
      auto back = decode<BackupOk>(payload, version);
      ASSERT_TRUE(back.is_ok()) << name;
      EXPECT_EQ(back->position, m.position) << name;
      EXPECT_EQ(back->files, m.files) << name;
      EXPECT_EQ(back->bytes, m.bytes) << name;
      EXPECT_EQ(back->linked, m.linked) << name;
      EXPECT_EQ(back->duration_us, m.duration_us) << name;
      EXPECT_EQ(back->dest, m.dest) << name;
      EXPECT_EQ(back->note, m.note) << name;
      EXPECT_FALSE(decode<BackupOk>(payload + '\0', version).is_ok()) << name;
    } else {
      ADD_FAILURE() << "vector '" << name << "' has an op this test does not know: " << op;
    }
  }
  // Versions 1 to 3, then 4 (consumer groups), 5 (metadata, deletion, scavenge,
  // snapshots) and 6 (backup).
  std::set<std::string> every_op{"append",     "append_ok",       "error",
                                 "hello",      "read_ok",         "append_multi",
                                 "read_query", "append_multi_ok", "append_refused"};
  every_op.insert({"group_create", "group_ack", "group_nack", "group_events", "group_list_ok"});
  every_op.insert({"stream_metadata", "stream_metadata_ok", "set_stream_metadata", "delete_stream",
                   "delete_ok", "scavenge", "scavenge_ok"});
  every_op.insert({"snapshot_save", "snapshot_saved", "snapshot_read", "snapshot_ok"});
  every_op.insert({"backup", "backup_ok"});  // 6
  EXPECT_EQ(seen, every_op);
  EXPECT_EQ(versions, (std::set<std::uint16_t>{1, 2, 3, 4, 5, 6}));
}

}  // namespace
}  // namespace annal::net::proto
