// The codec against the shared protocol vectors (tests/vectors/protocol.json),
// which the C++ and Python tests read too.
import assert from "node:assert/strict";
import { test } from "node:test";

import { protocol as p } from "../dist/esm/index.js";
import { vectors } from "./node.mjs";

function split(hex) {
  const b = Buffer.from(hex, "hex");
  const h = p.parseHeader(b);
  assert.equal(h.length, b.length - 4);
  return { op: h.op, id: h.requestId, payload: b.subarray(13) };
}

const KIND = ["any", "no_stream", "stream_exists", "exact"];

test("requests encode to the vector bytes", () => {
  let n = 0;
  for (const v of vectors()) {
    const f = v.fields;
    let got;
    if (v.op === "append") {
      const expected = { kind: KIND[f.expected_kind], revision: BigInt(f.expected_revision) };
      got = p.encodeAppend(BigInt(v.request_id), f.stream, expected, f.events.map((e) => ({
        id: e.id, type: e.type, data: e.data, metadata: e.metadata,
        dataJson: (e.flags & p.FLAG_DATA_JSON) !== 0, metadataJson: (e.flags & p.FLAG_METADATA_JSON) !== 0,
        tags: e.tags, correlationId: e.correlation_id, causationId: e.causation_id,
      })), v.version);
    } else if (v.op === "hello") {
      assert.equal(f.magic, p.HELLO_MAGIC);
      assert.equal(f.version, v.version);
      got = p.encodeHello(BigInt(v.request_id), f.client_name, v.version);
    } else if (v.op === "append_multi") {
      const streams = f.streams.map((s) => ({
        stream: s.stream,
        expected: { kind: KIND[s.expected_kind], revision: BigInt(s.expected_revision) },
        events: s.events.map((e) => ({
          id: e.id, type: e.type, data: e.data, metadata: e.metadata,
          dataJson: (e.flags & p.FLAG_DATA_JSON) !== 0, metadataJson: (e.flags & p.FLAG_METADATA_JSON) !== 0,
          tags: e.tags, correlationId: e.correlation_id, causationId: e.causation_id,
        })),
      }));
      got = p.encodeAppendMulti(BigInt(v.request_id), streams, f.condition, BigInt(f.after));
    } else if (v.op === "read_query") {
      got = p.encodeReadQuery(BigInt(v.request_id), f.query, BigInt(f.from), f.count, f.direction === 1);
    } else continue;
    assert.equal(got.toString("hex"), v.hex, v.name);
    n++;
  }
  assert.ok(n >= 6);
});

test("responses decode to the vector fields", () => {
  const seen = new Set();
  for (const v of vectors()) {
    const f = v.fields;
    if (!["append_ok", "error", "read_ok", "append_multi_ok", "append_refused"].includes(v.op)) continue;
    const { op, id, payload } = split(v.hex);
    assert.equal(id, BigInt(v.request_id));
    seen.add(v.op);
    // JSON.parse rounds numbers past 2^53; the only such values are "none" (2^64 - 1).
    const orNull = (x) => (x > Number.MAX_SAFE_INTEGER ? null : BigInt(x));
    if (v.op === "append_multi_ok") {
      assert.equal(op, p.Op.AppendMultiOk);
      assert.deepEqual(p.decodeAppendMultiOk(payload), {
        firstPosition: BigInt(f.first_position), count: f.count, deduplicated: f.deduplicated !== 0,
        streams: f.streams.map((s) => ({ firstRevision: orNull(s.first_revision), count: s.count })),
      });
    } else if (v.op === "append_refused") {
      assert.equal(op, p.Op.AppendRefused);
      assert.deepEqual(p.decodeAppendRefused(payload), {
        code: f.code, message: f.message, conflictPosition: orNull(f.conflict_position),
        streams: f.streams.map((s) => ({ failed: s.failed !== 0, actualRevision: orNull(s.actual_revision) })),
      });
    } else if (v.op === "append_ok") {
      assert.equal(op, p.Op.AppendOk);
      assert.deepEqual(p.decodeAppendOk(payload), {
        firstPosition: BigInt(f.first_position), firstRevision: BigInt(f.first_revision), count: f.count, deduplicated: f.deduplicated !== 0,
      });
    } else if (v.op === "error") {
      assert.equal(op, p.Op.Error);
      const e = p.decodeError(payload);
      assert.equal(e.code, f.code);
      assert.equal(e.message, f.message);
      // JSON.parse rounds numbers past 2^53; the only such detail is "none" (2^64 - 1).
      assert.equal(e.detail, f.detail > Number.MAX_SAFE_INTEGER ? p.NONE : BigInt(f.detail));
    } else {
      assert.equal(op, p.Op.ReadOk);
      const page = p.decodeReadOk(payload, v.version);
      assert.equal(page.end, f.end !== 0);
      assert.equal(page.next, BigInt(f.next));
      assert.equal(page.durableEnd, BigInt(f.durable_end ?? 0));
      assertEvents(page.events, f.events);
    }
  }
  assert.deepEqual([...seen].sort(), ["append_multi_ok", "append_ok", "append_refused", "error", "read_ok"]);
});

function assertEvents(events, wanted) {
  assert.equal(events.length, wanted.length);
  events.forEach((got, i) => {
    const w = wanted[i];
    assert.equal(got.position, BigInt(w.position));
    assert.equal(got.revision, BigInt(w.revision));
    assert.equal(got.timestampUs, BigInt(w.timestamp_us));
    assert.equal(got.flags, w.flags);
    assert.equal(got.id, w.id);
    assert.equal(got.stream, w.stream);
    assert.equal(got.type, w.type);
    assert.equal(got.metadata.toString(), w.metadata);
    assert.equal(got.data.toString(), w.data);
    assert.deepEqual(got.tags, w.tags ?? []);
    assert.equal(got.correlationId, w.correlation_id ?? "");
    assert.equal(got.causationId, w.causation_id ?? "");
  });
}

test("a truncated or padded payload is a protocol error", () => {
  for (const v of vectors().filter((x) => x.op === "read_ok")) {
    const { payload } = split(v.hex);
    assert.throws(() => p.decodeReadOk(payload.subarray(0, payload.length - 1), v.version), /ends inside/);
    assert.throws(() => p.decodeReadOk(Buffer.concat([payload, Buffer.alloc(1)]), v.version), /trailing/);
  }
});

test("version 1 cannot carry tags", () => {
  assert.throws(() => p.encodeAppend(1n, "s", { kind: "any" }, [{ type: "T", tags: ["a"] }], 1), /version 1/);
});

const TARGETS = ["stream", "all", "index"];
const KINDS = ["category", "type", "tag", "correlation", "causation"];
const STARTS = ["beginning", "end", "position", "time"];
const STRATEGIES = ["round-robin", "ordered"];
const NACKS = ["retry", "retry-later", "park", "skip"];
const settingsOf = (s) => ({
  target: TARGETS[s.target], stream: s.stream, streamPrefix: s.stream_prefix, typePrefix: s.type_prefix,
  index: { kind: KINDS[s.index_kind], value: s.index_value }, start: STARTS[s.start], startValue: BigInt(s.start_value),
  strategy: STRATEGIES[s.strategy], maxInFlight: s.max_in_flight, ackTimeoutMs: s.ack_timeout_ms,
  maxRetries: s.max_retries, retryDelayMs: s.retry_delay_ms,
});

test("version 4: consumer-group frames", () => {
  const seen = new Set();
  for (const v of vectors().filter((x) => x.version === 4)) {
    const f = v.fields;
    const id = BigInt(v.request_id);
    if (v.op === "group_create") {
      assert.equal(p.encodeGroupCreate(id, f.name, settingsOf(f.settings), f.update === 1).toString("hex"), v.hex, v.name);
    } else if (v.op === "group_ack") {
      assert.equal(p.encodeGroupAck(id, BigInt(f.join_id), f.positions.map(BigInt)).toString("hex"), v.hex, v.name);
    } else if (v.op === "group_nack") {
      assert.equal(p.encodeGroupNack(id, BigInt(f.join_id), NACKS[f.action], f.reason, f.positions.map(BigInt)).toString("hex"), v.hex, v.name);
    } else if (v.op === "group_events") {
      const { op, payload } = split(v.hex);
      assert.equal(op, p.Op.GroupEvents);
      const [d] = p.decodeGroupEvents(payload);
      const w = f.events[0];
      assert.equal(d.attempt, w.attempt);
      assert.equal(d.event.position, BigInt(w.event.position));
      assert.equal(d.event.data.toString(), w.event.data);
      assert.deepEqual(d.event.tags, w.event.tags);
    } else if (v.op === "group_list_ok") {
      const { op, payload } = split(v.hex);
      assert.equal(op, p.Op.GroupListOk);
      const [g] = p.decodeGroupListOk(payload);
      const w = f.groups[0];
      assert.equal(g.name, w.name);
      assert.equal(g.lagUs, BigInt(w.lag_us));
      assert.equal(g.deliveredTotal, BigInt(w.delivered_total));
      assert.deepEqual(g.settings, settingsOf(w.settings));
    } else continue;
    seen.add(v.op);
  }
  assert.deepEqual([...seen].sort(), ["group_ack", "group_create", "group_events", "group_list_ok", "group_nack"]);
});

test("version 5: stream metadata, deletion and scavenge frames", () => {
  const seen = new Set();
  // JSON.parse rounds numbers past 2^53; the only such values are "none" (2^64 - 1).
  const orNull = (x) => (x > Number.MAX_SAFE_INTEGER ? null : BigInt(x));
  for (const v of vectors().filter((x) => x.version === 5)) {
    const f = v.fields;
    const id = BigInt(v.request_id);
    const expected = () => ({ kind: KIND[f.expected_kind], revision: BigInt(f.expected_revision) });
    if (v.op === "stream_metadata") {
      assert.equal(p.encodeStreamMetadata(id, f.stream).toString("hex"), v.hex, v.name);
    } else if (v.op === "set_stream_metadata") {
      assert.equal(p.encodeSetStreamMetadata(id, f.stream, expected(), f.json).toString("hex"), v.hex, v.name);
    } else if (v.op === "delete_stream") {
      assert.equal(p.encodeDeleteStream(id, f.stream, expected(), f.hard === 1).toString("hex"), v.hex, v.name);
    } else if (v.op === "stream_metadata_ok") {
      const { op, id: gotId, payload } = split(v.hex);
      assert.equal(op, p.Op.StreamMetadataOk);
      assert.equal(gotId, id);
      assert.deepEqual(p.decodeStreamMetadataOk(payload), {
        revision: orNull(f.revision), json: f.json, maxCount: orNull(f.max_count), maxAge: orNull(f.max_age),
        truncateBefore: BigInt(f.truncate_before), deletedBefore: BigInt(f.deleted_before),
        deleted: f.deleted === 1, tombstoned: f.tombstoned === 1,
      }, v.name);
      assert.throws(() => p.decodeStreamMetadataOk(payload.subarray(0, payload.length - 1)), /ends inside/);
    } else if (v.op === "delete_ok") {
      const { op, id: gotId, payload } = split(v.hex);
      assert.equal(op, p.Op.DeleteOk);
      assert.equal(gotId, id);
      assert.deepEqual(p.decodeDeleteOk(payload), { position: BigInt(f.position), truncateBefore: BigInt(f.truncate_before) });
    } else if (v.op === "scavenge") {
      assert.deepEqual(f, {});
      assert.equal(p.encodeScavenge(id).toString("hex"), v.hex, v.name);
    } else if (v.op === "scavenge_ok") {
      const { op, id: gotId, payload } = split(v.hex);
      assert.equal(op, p.Op.ScavengeOk);
      assert.equal(gotId, id);
      assert.deepEqual(p.decodeScavengeOk(payload), {
        segmentsChecked: BigInt(f.segments_checked), segmentsRewritten: BigInt(f.segments_rewritten),
        eventsRemoved: BigInt(f.events_removed), bytesRead: BigInt(f.bytes_read), bytesWritten: BigInt(f.bytes_written),
        logBytesBefore: BigInt(f.log_bytes_before), logBytesAfter: BigInt(f.log_bytes_after),
        durationUs: BigInt(f.duration_us), cancelled: f.cancelled === 1,
      }, v.name);
      assert.throws(() => p.decodeScavengeOk(payload.subarray(0, payload.length - 1)), /ends inside/);
      assert.throws(() => p.decodeScavengeOk(Buffer.concat([payload, Buffer.alloc(1)])), /trailing/);
    } else if (v.op === "error") {
      const { op, payload } = split(v.hex);
      assert.equal(op, p.Op.Error);
      const e = p.decodeError(payload);
      assert.equal(e.code, p.Code.StreamDeleted);
      assert.equal(p.codeName(e.code), "stream_deleted");
    } else continue;
    seen.add(v.op);
  }
  assert.deepEqual([...seen].sort(), ["delete_ok", "delete_stream", "error", "scavenge", "scavenge_ok", "set_stream_metadata", "stream_metadata", "stream_metadata_ok"]);
});

test("version 5: snapshot frames", () => {
  const seen = [];
  // JSON.parse rounds numbers past 2^53; the only such values are "none" (2^64 - 1).
  const orNull = (x) => (x > Number.MAX_SAFE_INTEGER ? null : BigInt(x));
  for (const v of vectors().filter((x) => x.op.startsWith("snapshot_"))) {
    assert.equal(v.version, 5, v.name);
    const f = v.fields;
    const id = BigInt(v.request_id);
    if (v.op === "snapshot_save") {
      const got = p.encodeSnapshotSave(id, f.stream, BigInt(f.revision), f.type, f.data);
      assert.equal(got.toString("hex"), v.hex, v.name);
      assert.deepEqual(p.encodeSnapshotSave(id, f.stream, BigInt(f.revision), f.type, Buffer.from(f.data)), got);
    } else if (v.op === "snapshot_read") {
      const max = orNull(f.max_revision);
      const got = p.encodeSnapshotRead(id, f.stream, max, f.count);
      assert.equal(got.toString("hex"), v.hex, v.name);
      assert.deepEqual(p.encodeSnapshotRead(id, f.stream, max ?? p.NONE, f.count), got);
    } else if (v.op === "snapshot_saved") {
      const { op, id: gotId, payload } = split(v.hex);
      assert.equal(op, p.Op.SnapshotSaved);
      assert.equal(gotId, id);
      assert.deepEqual(p.decodeSnapshotSaved(payload), { revision: BigInt(f.revision), kept: f.kept });
      assert.throws(() => p.decodeSnapshotSaved(payload.subarray(0, payload.length - 1)), /ends inside/);
    } else if (v.op === "snapshot_ok") {
      const { op, id: gotId, payload } = split(v.hex);
      assert.equal(op, p.Op.SnapshotOk);
      assert.equal(gotId, id);
      const page = p.decodeSnapshotOk(payload, v.version);
      assert.deepEqual(
        { found: page.found, revision: page.revision, type: page.type, data: page.data.toString(), end: page.end, next: page.next },
        { found: f.found === 1, revision: BigInt(f.revision), type: f.type, data: f.data, end: f.end === 1, next: BigInt(f.next) },
        v.name,
      );
      assert.ok(Buffer.isBuffer(page.data));
      assertEvents(page.events, f.events);
      assert.throws(() => p.decodeSnapshotOk(payload.subarray(0, payload.length - 1)), /ends inside/);
      assert.throws(() => p.decodeSnapshotOk(Buffer.concat([payload, Buffer.alloc(1)])), /trailing/);
    } else assert.fail(`unknown op ${v.op}`);
    seen.push(`${v.op}/${f.found ?? "-"}/${(f.events ?? []).length}`);
  }
  // One save and its answer, two reads, and an answer with and one without a snapshot.
  assert.deepEqual(seen.sort(), ["snapshot_ok/0/0", "snapshot_ok/1/2", "snapshot_read/-/0", "snapshot_read/-/0", "snapshot_save/-/0", "snapshot_saved/-/0"]);
});

test("version 6: backup frames", () => {
  const seen = new Set();
  // JSON.parse rounds numbers past 2^53; the only such value is "none" (2^64 - 1).
  const u64 = (x) => (x > Number.MAX_SAFE_INTEGER ? p.NONE : BigInt(x));
  for (const v of vectors().filter((x) => x.version === 6)) {
    const f = v.fields;
    const id = BigInt(v.request_id);
    if (v.op === "backup") {
      assert.equal(p.encodeBackup(id, f.dest, f.link === 1, u64(f.bytes_per_second)).toString("hex"), v.hex, v.name);
    } else if (v.op === "backup_ok") {
      const { op, id: gotId, payload } = split(v.hex);
      assert.equal(op, p.Op.BackupOk);
      assert.equal(gotId, id);
      assert.deepEqual(p.decodeBackupOk(payload), {
        position: BigInt(f.position), files: f.files, bytes: BigInt(f.bytes), linked: f.linked,
        durationUs: BigInt(f.duration_us), dest: f.dest, note: f.note,
      }, v.name);
      assert.throws(() => p.decodeBackupOk(payload.subarray(0, payload.length - 1)), /ends inside/);
      assert.throws(() => p.decodeBackupOk(Buffer.concat([payload, Buffer.alloc(1)])), /trailing/);
    } else if (v.op === "error") {
      const { op, payload } = split(v.hex);
      assert.equal(op, p.Op.Error);
      const e = p.decodeError(payload);
      assert.equal(e.code, p.Code.Busy);
      assert.equal(p.codeName(e.code), "busy");
    } else continue;
    seen.add(v.op);
  }
  assert.deepEqual([...seen].sort(), ["backup", "backup_ok", "error"]);
});
