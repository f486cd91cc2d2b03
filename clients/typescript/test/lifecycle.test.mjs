// Stream metadata, deletion, scavenge and snapshots (protocol v5) against a real annald.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";

import { AnnalError, Client, Code, ConnectionLost, StreamDeleted, StreamNotFound, WrongExpectedRevision, protocol } from "../dist/esm/index.js";
import { startNode } from "./node.mjs";

const ev = (n) => ({ type: "Tick", data: JSON.stringify({ n }) });

let node;
before(async () => (node = await startNode()));
after(async () => node && (await node.close()));

test("metadata with max_count, soft delete, hard delete, and a wrong expected revision", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    assert.equal(c.hello.version, 6);
    assert.deepEqual(await c.streamMetadata("ts-1"), {
      revision: null, json: "{}", maxCount: null, maxAge: null, truncateBefore: 0n, deletedBefore: 0n, deleted: false, tombstoned: false,
    });
    for (let i = 0; i < 3; i++) await c.append("ts-1", [ev(i)]);

    // Metadata, with an expectation of the metadata stream.
    const set = await c.setStreamMetadata("ts-1", { kind: "no_stream" }, '{"max_count":1,"app":"x"}');
    assert.equal(set.firstRevision, 0n);
    assert.equal(set.count, 1);
    await assert.rejects(c.setStreamMetadata("ts-1", { kind: "no_stream" }, "{}"),
      (e) => e instanceof WrongExpectedRevision && e.code === Code.WrongExpectedRevision && e.actualRevision === 0n);
    await assert.rejects(c.setStreamMetadata("ts-1", { kind: "exact", revision: 5n }, "{}"),
      (e) => e instanceof WrongExpectedRevision && e.actualRevision === 0n);
    await assert.rejects(c.setStreamMetadata("ts-1", { kind: "any" }, '{"max_count":"one"}'),
      (e) => e instanceof AnnalError && e.code === Code.BadRequest && e.message.includes("max_count"));
    const md = await c.streamMetadata("ts-1");
    assert.equal(md.revision, 0n);
    assert.equal(md.json, '{"max_count":1,"app":"x"}');
    assert.equal(md.maxCount, 1n);
    assert.equal(md.maxAge, null);
    assert.equal(md.deleted, false);
    assert.deepEqual((await c.readStream("ts-1")).events.map((e) => e.revision), [2n]); // only the newest

    // Soft delete: not found, then an append continues the revisions.
    const d = await c.deleteStream("ts-1", { kind: "exact", revision: 2n });
    assert.equal(d.truncateBefore, 3n);
    assert.ok(d.position >= 3n);
    await assert.rejects(c.readStream("ts-1"), (e) => e instanceof StreamNotFound && e.code === Code.StreamNotFound);
    const soft = await c.streamMetadata("ts-1");
    assert.equal(soft.deleted, true);
    assert.equal(soft.tombstoned, false);
    assert.equal(soft.deletedBefore, 3n);
    const again = await c.append("ts-1", [ev(3)], { kind: "no_stream" });
    assert.equal(again.firstRevision, 3n);
    assert.deepEqual((await c.readStream("ts-1")).events.map((e) => e.revision), [3n]);

    // Hard delete: a tombstone answers code 17 to appends and reads.
    await c.append("th-1", [ev(0), ev(1)]);
    const h = await c.deleteStream("th-1", { kind: "any" }, true);
    assert.equal(h.truncateBefore, 2n);
    await assert.rejects(c.append("th-1", [ev(2)]),
      (e) => e instanceof StreamDeleted && e.code === 17 && e.code === Code.StreamDeleted && e.codeName === "stream_deleted" && e.message.includes("th-1"));
    await assert.rejects(c.readStream("th-1"), (e) => e instanceof StreamDeleted);
    await assert.rejects(c.setStreamMetadata("th-1", { kind: "any" }, "{}"), (e) => e instanceof StreamDeleted);
    assert.equal((await c.streamMetadata("th-1")).tombstoned, true);
    // A stream that never existed: soft delete is not found, hard delete works.
    await assert.rejects(c.deleteStream("ts-never", { kind: "any" }), (e) => e instanceof StreamNotFound);
    await c.deleteStream("ts-never", { kind: "no_stream" }, true);
    await assert.rejects(c.append("ts-never", [ev(0)], { kind: "no_stream" }), (e) => e instanceof StreamDeleted);
  } finally {
    c.close();
  }
});

test("scavenge answers with its report when the run is done", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    await c.append("sc-1", [ev(0), ev(1)]);
    await c.deleteStream("sc-1", { kind: "any" });
    const r = await c.scavenge();
    assert.deepEqual(Object.keys(r), [
      "segmentsChecked", "segmentsRewritten", "eventsRemoved", "bytesRead", "bytesWritten", "logBytesBefore", "logBytesAfter", "durationUs", "cancelled",
    ]);
    for (const k of Object.keys(r)) if (k !== "cancelled") assert.equal(typeof r[k], "bigint", k);
    // This node has one (active) segment: nothing to rewrite.
    assert.ok(r.segmentsChecked >= 0n);
    assert.equal(r.segmentsRewritten, 0n);
    assert.equal(r.eventsRemoved, 0n);
    assert.ok(r.logBytesAfter <= r.logBytesBefore);
    assert.equal(r.cancelled, false);
    assert.equal((await c.scavenge(60000)).cancelled, false);
    await assert.rejects(c.readStream("sc-1"), (e) => e instanceof StreamNotFound);
  } finally {
    c.close();
  }
});

test("a stream is read from its latest snapshot in one request", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    for (let i = 0; i < 10; i++) await c.append("tacct-1", [ev(i)]);
    assert.deepEqual(await c.snapshotSave("tacct-1", 6n, "Balance", '{"balance":60}'), { revision: 6n, kept: 1 });

    const r = await c.snapshotRead("tacct-1", null, 100);
    assert.equal(r.found, true);
    assert.equal(r.revision, 6n);
    assert.equal(r.type, "Balance");
    assert.ok(Buffer.isBuffer(r.data));
    assert.equal(r.data.toString(), '{"balance":60}');
    assert.deepEqual(r.events.map((e) => e.revision), [7n, 8n, 9n]);
    assert.deepEqual(r.events.map((e) => JSON.parse(e.data.toString()).n), [7, 8, 9]);
    assert.equal(r.end, true);
    assert.equal(r.next, 10n);
    // Without count: the snapshot alone, and the revision to read from next.
    const alone = await c.snapshotRead("tacct-1");
    assert.deepEqual([alone.found, alone.revision, alone.events.length, alone.end, alone.next], [true, 6n, 0, false, 7n]);

    // None at or below 5: not found, the events from the stream's start.
    const none = await c.snapshotRead("tacct-1", 5n, 3);
    assert.equal(none.found, false);
    assert.deepEqual(none.events.map((e) => e.revision), [0n, 1n, 2n]);
    assert.equal(none.end, false);
    assert.equal(none.next, 3n);

    // A save must name a revision of the stream.
    await assert.rejects(c.snapshotSave("tacct-1", 99n, "Balance", "{}"), (e) => e instanceof AnnalError && e.code === Code.BadRequest);
    // Bytes too; a save at the same revision replaces the snapshot.
    assert.deepEqual(await c.snapshotSave("tacct-1", 6n, "Balance", Buffer.from('{"balance":61}')), { revision: 6n, kept: 1 });
    assert.equal((await c.snapshotRead("tacct-1", protocol.NONE)).data.toString(), '{"balance":61}');

    await assert.rejects(c.snapshotRead("tacct-never", null, 1), (e) => e instanceof StreamNotFound);
    await assert.rejects(c.snapshotSave("tacct-never", 0n, "Balance", "{}"), (e) => e instanceof StreamNotFound);
    // They go with the stream: a tombstoned stream answers stream_deleted.
    await c.deleteStream("tacct-1", { kind: "any" }, true);
    await assert.rejects(c.snapshotRead("tacct-1", null, 100), (e) => e instanceof StreamDeleted);
    await assert.rejects(c.snapshotSave("tacct-1", 9n, "Balance", "{}"), (e) => e instanceof StreamDeleted);
  } finally {
    c.close();
  }
});

// A stand-in node: the handshake, then scavenge answered after `delayMs` (or the
// connection dropped when `drop` is set); other requests are never answered.
async function fakeNode(delayMs) {
  const fake = { scavenges: 0, drop: false, sockets: new Set() };
  const reply = Buffer.alloc(8 * 8 + 1); // cancelled = 0
  [3n, 1n, 250n, 1000n, 600n, 5000n, 4650n, 1234n].forEach((v, i) => reply.writeBigUInt64LE(v, 8 * i));
  fake.server = net.createServer((s) => {
    fake.sockets.add(s);
    s.on("close", () => fake.sockets.delete(s));
    let buf = Buffer.alloc(0);
    s.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 13 && buf.length >= 4 + buf.readUInt32LE(0)) {
        const { length, op, requestId } = protocol.parseHeader(buf);
        buf = buf.subarray(4 + length);
        if (op === protocol.Op.Hello) {
          const hello = Buffer.alloc(2 + 4 + 4 + 4 + 4); // version, max_frame, max_in_flight, server_version
          hello.writeUInt16LE(5, 0);
          hello.writeUInt32LE(1 << 20, 2);
          hello.writeUInt32LE(16, 6);
          hello.writeUInt32LE(4, 10);
          hello.write("fake", 14);
          s.write(protocol.frame(protocol.Op.HelloOk, requestId, hello));
        } else if (op === protocol.Op.Scavenge) {
          fake.scavenges++;
          if (fake.drop) s.destroy();
          else setTimeout(() => s.writable && s.write(protocol.frame(protocol.Op.ScavengeOk, requestId, reply)), delayMs);
        }
      }
    });
  });
  await new Promise((resolve) => fake.server.listen(0, "127.0.0.1", resolve));
  fake.port = fake.server.address().port;
  fake.close = () => {
    for (const s of fake.sockets) s.destroy();
    return new Promise((resolve) => fake.server.close(resolve));
  };
  return fake;
}

test("scavenge waits past the connection's timeout, takes its own, and is never resent", async () => {
  const fake = await fakeNode(300);
  const c = await Client.connect({ port: fake.port, timeoutMs: 100, retryForMs: 5000 });
  try {
    // Other requests keep the connection's timeout.
    await assert.rejects(c.ping(), (e) => e instanceof AnnalError && /timed out after 100 ms/.test(e.message));
    const r = await c.scavenge(); // answered after 300 ms
    assert.deepEqual(r, {
      segmentsChecked: 3n, segmentsRewritten: 1n, eventsRemoved: 250n, bytesRead: 1000n, bytesWritten: 600n,
      logBytesBefore: 5000n, logBytesAfter: 4650n, durationUs: 1234n, cancelled: false,
    });
    await assert.rejects(c.scavenge(50), (e) => e instanceof AnnalError && e.code === Code.ConnectionLost && /timed out after 50 ms/.test(e.message));
    assert.equal(fake.scavenges, 2);
    // A broken connection fails the scavenge without sending it again, retryForMs or not.
    fake.drop = true;
    await assert.rejects(c.scavenge(), (e) => e instanceof ConnectionLost);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(fake.scavenges, 3);
    // The next call reconnects first.
    fake.drop = false;
    assert.equal((await c.scavenge()).segmentsChecked, 3n);
    assert.equal(fake.scavenges, 4);
  } finally {
    c.close();
    await fake.close();
  }
});
