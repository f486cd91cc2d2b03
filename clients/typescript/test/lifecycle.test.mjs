// Stream metadata and deletion (protocol v5) against a real annald.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AnnalError, Client, Code, StreamDeleted, StreamNotFound, WrongExpectedRevision } from "../dist/esm/index.js";
import { startNode } from "./node.mjs";

const ev = (n) => ({ type: "Tick", data: JSON.stringify({ n }) });

let node;
before(async () => (node = await startNode()));
after(async () => node && (await node.close()));

test("metadata with max_count, soft delete, hard delete, and a wrong expected revision", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    assert.equal(c.hello.version, 5);
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
