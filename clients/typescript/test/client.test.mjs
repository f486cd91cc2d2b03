// The client against a real annald.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, ConnectionLost, NONE, StreamNotFound, WrongExpectedRevision, AnnalError, Code } from "../dist/esm/index.js";
import { startNode } from "./node.mjs";

const ev = (n, type = "OrderPlaced") => ({ type, data: JSON.stringify({ n }) });

let node;
before(async () => (node = await startNode()));
after(async () => node && (await node.close()));

test("append, then read back forward, backward and through the global log", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    assert.ok(c.hello.maxInFlight > 0);
    const r = await c.append("order-1", [ev(0), ev(1), ev(2)], { kind: "no_stream" });
    assert.equal(r.firstRevision, 0n);
    assert.equal(r.count, 3);
    assert.equal(r.deduplicated, false);
    const page = await c.readStream("order-1");
    assert.ok(page.end);
    assert.deepEqual(page.events.map((e) => JSON.parse(e.data.toString()).n), [0, 1, 2]);
    const back = await c.readStream("order-1", NONE, 0, true);
    assert.deepEqual(back.events.map((e) => e.revision), [2n, 1n, 0n]);
    const all = [];
    for await (const e of c.iterAll()) all.push(e);
    assert.ok(all.some((e) => e.stream === "order-1"));
    const info = await c.info();
    // the node's newest version: at least the one this client speaks
    assert.ok(info.protocolVersion >= c.hello.version, `protocol version ${info.protocolVersion}`);
    assert.equal(info.maxTags, 32n);
    await c.ping();
  } finally {
    c.close();
  }
});

test("tags and ids round-trip through reads and subscriptions", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    assert.equal(c.hello.version, 6);
    const sub = await c.subscribe({ stream: "tags-ts", from: 0n });
    await c.append("tags-ts", [
      { type: "Placed", data: "{}", tags: ["region:eu", "customer:42", "region:eu"], correlationId: "cmd-9", causationId: "evt-1" },
      ev(1),
    ]);
    const want = { tags: ["customer:42", "region:eu"], correlationId: "cmd-9", causationId: "evt-1" };
    const pick = (e) => ({ tags: e.tags, correlationId: e.correlationId, causationId: e.causationId });
    const page = await c.readStream("tags-ts");
    assert.deepEqual(pick(page.events[0]), want);
    assert.deepEqual(pick(page.events[1]), { tags: [], correlationId: "", causationId: "" });
    for await (const e of sub) {
      assert.deepEqual(pick(e), want);
      break;
    }
    await sub.unsubscribe();
    await assert.rejects(c.append("tags-ts", [{ type: "T", data: "{}", tags: [""] }]), (e) =>
      e instanceof AnnalError && e.code === Code.BadRequest && /empty tag/.test(e.message));
  } finally {
    c.close();
  }
});

test("index reads and subscriptions", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    const sub = await c.subscribe({ index: { kind: "tag", value: "vip-ts" }, checkpointInterval: 10 });
    const start = (await c.info()).durableEnd;
    for (let i = 0; i < 30; i++) {
      await c.append((i % 2 ? "ixorder-" : "ixuser-") + (i % 4), [
        { type: i % 3 === 0 ? "IxPaid" : "IxPlaced", data: "{}", tags: i % 5 === 0 ? ["vip-ts"] : [], correlationId: `ix-cmd-${i % 2}` },
      ]);
    }
    const all = [];
    for await (const e of c.iterAll(start)) all.push(e);
    const orders = all.filter((e) => e.stream.startsWith("ixorder-")).map((e) => e.position);
    const got = [];
    for await (const e of c.iterIndex("category", "ixorder")) got.push(e.position);
    assert.deepEqual(got, orders);
    const page = await c.readIndex("type", "IxPaid", 0n, 3);
    assert.deepEqual(page.events.map((e) => e.type), ["IxPaid", "IxPaid", "IxPaid"]);
    assert.equal(page.end, false);
    const back = await c.readIndex("correlation", "ix-cmd-1", NONE, 1, true);
    assert.equal(back.events[0].position, all[all.length - 1].position);
    const mid = all[Math.floor(all.length / 2)];
    const at = await c.seekTime(mid.timestampUs);
    assert.ok(at <= mid.position);
    const atEvent = all.find((e) => e.position === at);
    if (atEvent) assert.ok(atEvent.timestampUs >= mid.timestampUs);
    const none = await c.readIndex("type", "IxNope");
    assert.ok(none.end);
    assert.equal(none.events.length, 0);
    assert.ok(none.durableEnd >= start + 30n);
    const vip = all.filter((e) => e.tags.includes("vip-ts")).map((e) => e.position);
    const seen = [];
    for await (const item of sub) {
      if ("checkpoint" in item) continue;
      seen.push(item.position);
      if (seen.length === vip.length) break;
    }
    assert.deepEqual(seen, vip);
    await sub.unsubscribe();
  } finally {
    c.close();
  }
});

test("errors carry the protocol's code and detail", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    await c.append("e-s", [ev(0)], { kind: "no_stream" });
    await assert.rejects(c.append("e-s", [ev(1)], { kind: "exact", revision: 5n }), (e) =>
      e instanceof WrongExpectedRevision && e.actualRevision === 0n && e.code === Code.WrongExpectedRevision);
    await assert.rejects(c.append("e-new", [ev(1)], { kind: "stream_exists" }), (e) =>
      e instanceof WrongExpectedRevision && e.actualRevision === undefined);
    await assert.rejects(c.readStream("e-nope"), (e) => e instanceof StreamNotFound);
    await assert.rejects(c.append("e-s", [ev(2), { type: "T", data: "{not json" }]), (e) =>
      e instanceof AnnalError && e.code === Code.InvalidJson && e.detail === 1n && /invalid_json/.test(e.message));
    assert.equal((await c.append("e-s", [ev(3)], { kind: "exact", revision: 0n })).firstRevision, 1n);
  } finally {
    c.close();
  }
});

test("a retry with the same event ids is deduplicated", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    const events = [{ ...ev(0), id: "0f8fad5b-d9cb-469f-a165-70867728950e" }, { ...ev(1), id: "7c9e6679-7425-40de-944b-e07fc1f90ae7" }];
    const first = await c.append("retry", events);
    const again = await c.append("retry", events);
    assert.equal(again.deduplicated, true);
    assert.equal(again.firstPosition, first.firstPosition);
  } finally {
    c.close();
  }
});

test("many appends in flight on one connection", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => c.append(`p-${i % 7}`, [ev(i)])));
    const positions = results.map((r) => r.firstPosition).sort((a, b) => (a < b ? -1 : 1));
    for (let i = 1; i < positions.length; i++) assert.equal(positions[i], positions[i - 1] + 1n);
  } finally {
    c.close();
  }
});

test("a subscription catches up, then goes live, without gap or duplicate", async () => {
  const c = await Client.connect({ port: node.port });
  const w = await Client.connect({ port: node.port });
  try {
    for (let i = 0; i < 10; i++) await w.append("sub-ts", [ev(i)]);
    const sub = await c.subscribe({ stream: "sub-ts", from: 0n });
    assert.equal(sub.start, 0n);
    const writer = (async () => {
      for (let i = 10; i < 30; i++) await w.append("sub-ts", [ev(i)]);
    })();
    const seen = [];
    for await (const e of sub) {
      seen.push(e.revision);
      if (seen.length === 30) break;
    }
    await writer;
    assert.deepEqual(seen, Array.from({ length: 30 }, (_, i) => BigInt(i)));
    await sub.unsubscribe();
  } finally {
    c.close();
    w.close();
  }
});

test("a filtered subscription of the global log sends checkpoints", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    for (let i = 0; i < 40; i++) await c.append(`noise-ts-${i}`, [ev(i, "Noise")]);
    await c.append("wanted-ts-1", [ev(99, "Wanted")]);
    const sub = await c.subscribe({ from: 0n, streamPrefix: "wanted-ts-", checkpointInterval: 10 });
    const got = [];
    for await (const item of sub) {
      got.push(item);
      if (!("checkpoint" in item)) break;
    }
    assert.ok(got.some((x) => "checkpoint" in x));
    assert.equal(got.at(-1).stream, "wanted-ts-1");
  } finally {
    c.close();
  }
});

test("pending requests and subscriptions fail with ConnectionLost when the node dies", async () => {
  const n = await startNode();
  try {
    const c = await Client.connect({ port: n.port });
    await c.append("k", [ev(0)]);
    const sub = await c.subscribe({ stream: "k", from: 0n });
    const it = sub[Symbol.asyncIterator]();
    assert.equal((await it.next()).value.revision, 0n);
    await n.stop("SIGKILL");
    await assert.rejects(it.next(), (e) => e instanceof ConnectionLost);
    await assert.rejects(c.append("k", [ev(1)]), (e) => e instanceof ConnectionLost);
    c.close();
  } finally {
    await n.close();
  }
});

test("appends retry across a node restart without writing twice", async () => {
  const n = await startNode();
  try {
    const c = await Client.connect({ port: n.port, retryForMs: 30000 });
    const first = [{ ...ev(0), id: "3f2504e0-4f89-41d3-9a0c-0305e82c3301" }];
    await c.append("rr", first);
    await n.stop("SIGKILL");
    // The node is down: the append keeps reconnecting until it is back.
    let settled = false;
    const pending = c.append("rr", [ev(1)]).finally(() => (settled = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(settled, false);
    await n.start();
    const second = await pending;
    assert.equal(second.firstRevision, 1n);
    assert.equal(second.deduplicated, false);
    // A retry of a written append is deduplicated: the ids are the events'.
    const again = await c.append("rr", first);
    assert.equal(again.deduplicated, true);
    assert.equal(again.firstRevision, 0n);
    assert.deepEqual((await c.readStream("rr")).events.map((e) => e.revision), [0n, 1n]);
    c.close();
  } finally {
    await n.close();
  }
});

test("the CommonJS build loads with require()", async () => {
  const { createRequire } = await import("node:module");
  const require = createRequire(import.meta.url);
  const cjs = require("../dist/cjs/index.js");
  assert.equal(typeof cjs.Client.connect, "function");
  assert.equal(cjs.Code.WrongExpectedRevision, 1);
});

test("protocol 3: multi-stream appends, conditions and reads by query", async () => {
  const { AppendRefused } = await import("../dist/esm/index.js");
  const c = await Client.connect({ port: node.port });
  try {
    const enrol = (student, course) => ({ type: "Enrolled", data: "{}", tags: [`course:${course}`, `student:${student}`] });
    const r = await c.appendMulti([
      { stream: "dcb-student-1", events: [enrol(1, 70)], expected: { kind: "no_stream" } },
      { stream: "dcb-course-70", events: [{ type: "SeatTaken", data: "{}", tags: ["course:70"] }] },
    ]);
    assert.equal(r.count, 2);
    assert.deepEqual(r.streams.map((s) => s.firstRevision), [0n, 0n]);
    // A checked stream whose expectation fails: every stream reported, nothing written.
    await assert.rejects(
      c.appendMulti([
        { stream: "dcb-student-2", events: [enrol(2, 70)] },
        { stream: "dcb-course-70", events: [], expected: { kind: "exact", revision: 5n } },
      ]),
      (e) => e instanceof AppendRefused && e.code === Code.WrongExpectedRevision && e.streams[1].failed && e.streams[1].actualRevision === 0n,
    );
    // The decision: read the course's enrolments, append on that read.
    const course = [{ types: ["Enrolled"], tags: ["course:70"] }];
    const page = await c.readQuery(course);
    assert.deepEqual(page.events.map((e) => e.stream), ["dcb-student-1"]);
    const head = page.durableEnd - 1n;
    const ok = await c.appendMulti([{ stream: "dcb-student-3", events: [enrol(3, 70)] }], course, head);
    await assert.rejects(
      c.appendMulti([{ stream: "dcb-student-4", events: [enrol(4, 70)] }], course, head),
      (e) => e instanceof AppendRefused && e.code === Code.AppendConditionFailed && e.conflictPosition === ok.firstPosition,
    );
    // A retry of a written conditional append is deduplicated, not refused.
    const once = [{ stream: "dcb-student-5", events: [{ ...enrol(5, 71), id: "3f2504e0-4f89-41d3-9a0c-0305e82c3399" }] }];
    const guard = [{ tags: ["student:5"] }];
    const first = await c.appendMulti(once, guard);
    const again = await c.appendMulti(once, guard);
    assert.equal(again.deduplicated, true);
    assert.equal(again.firstPosition, first.firstPosition);
    // A subscription by query: history, then live.
    const sub = await c.subscribe({ query: course, from: 0n });
    await c.append("dcb-student-6", [enrol(6, 70)]);
    const seen = [];
    for await (const item of sub) {
      if (item.checkpoint !== undefined) continue;
      seen.push(item.stream);
      if (seen.length === 3) break;
    }
    assert.deepEqual(seen, ["dcb-student-1", "dcb-student-3", "dcb-student-6"]);
    await assert.rejects(c.readQuery([{ tags: [""] }]), (e) => e instanceof AnnalError && e.code === Code.BadRequest);
  } finally {
    c.close();
  }
});
