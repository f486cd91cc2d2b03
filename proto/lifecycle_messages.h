#pragma once
// annal wire protocol version 5: stream metadata and deletion (docs/protocol.md
// section 3.8, docs/semantics.md "Metadata and deletion"), declared like every
// message in proto/protocol.h (which includes this header at its end; the
// codec's encode/decode are instantiated for them in protocol.cc).

#include <cstdint>
#include <string>
#include <vector>

#include "proto/protocol.h"

namespace annal::net::proto {

// The metadata and deletion state of a stream; answered with
// stream_metadata_ok.
struct StreamMetadataReq {
  static constexpr Op kOp = Op::kStreamMetadata;
  static constexpr const char* kName = "stream_metadata";
  std::string stream;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.stream, "stream");
  }
};
struct StreamMetadataOk {
  static constexpr Op kOp = Op::kStreamMetadataOk;
  static constexpr const char* kName = "stream_metadata_ok";
  // The metadata stream's last revision (what set_stream_metadata expects
  // next); kNone: it has none.
  std::uint64_t revision = kNone;
  std::string json = "{}";            // the metadata as last set
  std::uint64_t max_count = kNone;    // kNone: not set
  std::uint64_t max_age = kNone;      // seconds; kNone: not set
  std::uint64_t truncate_before = 0;  // from the metadata
  std::uint64_t deleted_before = 0;   // from deletions
  bool deleted = false;               // soft-deleted now (reads as not found)
  bool tombstoned = false;            // hard-deleted: never written again
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.revision, "revision");
    v.str(m.json, "json");
    v.u64(m.max_count, "max_count");
    v.u64(m.max_age, "max_age");
    v.u64(m.truncate_before, "truncate_before");
    v.u64(m.deleted_before, "deleted_before");
    v.boolean(m.deleted, "deleted");
    v.boolean(m.tombstoned, "tombstoned");
  }
};
// Sets a stream's metadata (a JSON object) with an expectation of its
// metadata stream's revision; answered with append_ok (the metadata event's
// position and revision) or an error as an append's.
struct SetStreamMetadataReq {
  static constexpr Op kOp = Op::kSetStreamMetadata;
  static constexpr const char* kName = "set_stream_metadata";
  std::string stream;
  ExpectedRevision expected;
  std::string json;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.stream, "stream");
    v.expected(m.expected, "expected_kind", "expected_revision");
    v.str(m.json, "json");
  }
};
// Deletes a stream (soft, or hard: a tombstone) with an expectation of the
// stream's revision; answered with delete_ok.
struct DeleteStreamReq {
  static constexpr Op kOp = Op::kDeleteStream;
  static constexpr const char* kName = "delete_stream";
  std::string stream;
  ExpectedRevision expected;
  bool hard = false;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.stream, "stream");
    v.expected(m.expected, "expected_kind", "expected_revision");
    v.boolean(m.hard, "hard");
  }
};
struct DeleteOk {
  static constexpr Op kOp = Op::kDeleteOk;
  static constexpr const char* kName = "delete_ok";
  std::uint64_t position = 0;         // of the deletion's event in the metadata stream
  std::uint64_t truncate_before = 0;  // revisions below were removed
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.position, "position");
    v.u64(m.truncate_before, "truncate_before");
  }
};

// Runs a scavenge (docs/operations.md) and answers when it is done.
struct ScavengeReq {
  static constexpr Op kOp = Op::kScavenge;
  static constexpr const char* kName = "scavenge";
  template <class V, class M>
  static void fields(V&, M&) {}
};
struct ScavengeOk {
  static constexpr Op kOp = Op::kScavengeOk;
  static constexpr const char* kName = "scavenge_ok";
  std::uint64_t segments_checked = 0;
  std::uint64_t segments_rewritten = 0;
  std::uint64_t events_removed = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
  std::uint64_t log_bytes_before = 0;
  std::uint64_t log_bytes_after = 0;
  std::uint64_t duration_us = 0;
  bool cancelled = false;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.segments_checked, "segments_checked");
    v.u64(m.segments_rewritten, "segments_rewritten");
    v.u64(m.events_removed, "events_removed");
    v.u64(m.bytes_read, "bytes_read");
    v.u64(m.bytes_written, "bytes_written");
    v.u64(m.log_bytes_before, "log_bytes_before");
    v.u64(m.log_bytes_after, "log_bytes_after");
    v.u64(m.duration_us, "duration_us");
    v.boolean(m.cancelled, "cancelled");
  }
};

// Saves a snapshot of a stream's state after `revision` (docs/semantics.md,
// "Snapshots"); answered with snapshot_saved once it is durable.
struct SnapshotSaveReq {
  static constexpr Op kOp = Op::kSnapshotSave;
  static constexpr const char* kName = "snapshot_save";
  std::string stream;
  std::uint64_t revision = 0;
  std::string type;
  std::string data;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.stream, "stream");
    v.u64(m.revision, "revision");
    v.str(m.type, "type");
    v.str(m.data, "data");
  }
};
struct SnapshotSaved {
  static constexpr Op kOp = Op::kSnapshotSaved;
  static constexpr const char* kName = "snapshot_saved";
  std::uint64_t revision = 0;
  std::uint32_t kept = 0;  // the stream's snapshots now
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.u64(m.revision, "revision");
    v.u32(m.kept, "kept");
  }
};
// The newest snapshot at or below max_revision (kNone: the newest), and up
// to `count` of the stream's events after it (0: none): a stream read "from
// its latest snapshot" in one request. Answered with snapshot_ok.
struct SnapshotReadReq {
  static constexpr Op kOp = Op::kSnapshotRead;
  static constexpr const char* kName = "snapshot_read";
  std::string stream;
  std::uint64_t max_revision = kNone;
  std::uint32_t count = 0;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.str(m.stream, "stream");
    v.u64(m.max_revision, "max_revision");
    v.u32(m.count, "count");
  }
};
struct SnapshotOk {
  static constexpr Op kOp = Op::kSnapshotOk;
  static constexpr const char* kName = "snapshot_ok";
  bool found = false;          // no snapshot: the events start at the first kept revision
  std::uint64_t revision = 0;  // the snapshot's (found)
  std::string type;
  std::string data;
  bool end = false;        // the events reach the stream's last revision
  std::uint64_t next = 0;  // the revision to read from next
  std::vector<engine::EventRecord> events;
  template <class V, class M>
  static void fields(V& v, M& m) {
    v.boolean(m.found, "found");
    v.u64(m.revision, "revision");
    v.str(m.type, "type");
    v.str(m.data, "data");
    v.boolean(m.end, "end");
    v.u64(m.next, "next");
    v.events(m.events, "count");
  }
};

}  // namespace annal::net::proto
