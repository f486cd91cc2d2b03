// Consumer groups and named consumers (protocol v4) against a real annald.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AnnalError, Client, Code } from "../dist/esm/index.js";
import { startNode } from "./node.mjs";

const ev = (n) => ({ type: "Tick", data: JSON.stringify({ n }) });

let node;
before(async () => (node = await startNode()));
after(async () => node && (await node.close()));

async function take(member, n) {
  const out = [];
  for await (const d of member) {
    out.push(d);
    if (out.length === n) return out;
  }
  throw new Error("the membership ended");
}

async function waitInfo(c, name, done) {
  let info;
  for (let i = 0; i < 500; i++) {
    info = await c.groupInfo(name);
    if (done(info)) return info;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`group ${name} did not get there: ${JSON.stringify(info, (k, v) => (typeof v === "bigint" ? `${v}` : v))}`);
}

test("two members share a group; acks move the checkpoint; errors have codes", async () => {
  const c = await Client.connect({ port: node.port });
  const c1 = await Client.connect({ port: node.port });
  const c2 = await Client.connect({ port: node.port });
  try {
    await c.groupCreate("ts", { target: "all" });
    await assert.rejects(c.groupCreate("ts"), (e) => e instanceof AnnalError && e.code === Code.AlreadyExists);
    const base = BigInt((await c.info()).durableEnd);
    for (let i = 0; i < 10; i++) await c.append(`ts-${i % 3}`, [ev(i)]);
    const m1 = await c1.groupJoin("ts", 5);
    const m2 = await c2.groupJoin("ts", 5);
    const got = [...(await take(m1, 5)), ...(await take(m2, 5))];
    const positions = got.map((d) => d.event.position).sort((a, b) => (a < b ? -1 : 1));
    assert.deepEqual(positions, Array.from({ length: 10 }, (_, i) => base + BigInt(i)));
    assert.ok(got.every((d) => d.attempt === 1));
    m1.ack(got.slice(0, 5).map((d) => d.event.position));
    m2.ack(got.slice(5).map((d) => d.event.position));
    const info = await waitInfo(c, "ts", (i) => i.checkpoint === base + 10n);
    assert.equal(info.lagEvents, 0n);
    assert.equal(info.settings.target, "all");
    await m2.leave();
    await c.groupDelete("ts");
    await assert.rejects(c.groupInfo("ts"), (e) => e instanceof AnnalError && e.code === Code.NotFound);
  } finally {
    c.close();
    c1.close();
    c2.close();
  }
});

test("ordered: park by nack, then replay the parked event", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    await c.groupCreate("ts-ord", { target: "stream", stream: "ts-one", strategy: "ordered", maxRetries: 0 });
    for (let i = 0; i < 3; i++) await c.append("ts-one", [ev(i)]);
    const m = await c.groupJoin("ts-ord");
    const [first] = await take(m, 1);
    assert.equal(first.event.revision, 0n);
    m.nack([first.event.position], "retry", "db down"); // max_retries 0: parked
    const [second] = await take(m, 1);
    assert.equal(second.event.revision, 1n);
    m.ack([second.event.position]);
    const [third] = await take(m, 1);
    m.ack([third.event.position]);
    await waitInfo(c, "ts-ord", (i) => i.parked === 1n);
    const [parked] = await c.groupParked("ts-ord");
    assert.equal(parked.position, first.event.position);
    assert.equal(parked.reason, "db down");
    assert.equal(await c.groupReplayParked("ts-ord"), 1n);
    const [again] = await take(m, 1);
    assert.equal(again.event.position, first.event.position);
    m.ack([again.event.position]);
    await waitInfo(c, "ts-ord", (i) => i.parked === 0n);
  } finally {
    c.close();
  }
});

test("named consumer checkpoints", async () => {
  const c = await Client.connect({ port: node.port });
  try {
    assert.equal(await c.checkpointLoad("ts-proj"), null);
    await c.append("ts-p", [ev(0)]);
    await c.checkpointSave("ts-proj", 1n);
    assert.equal(await c.checkpointLoad("ts-proj"), 1n);
    const list = await c.groupList();
    assert.ok(list.some((g) => g.name === "ts-proj" && g.kind === "named"));
    await assert.rejects(c.checkpointSave("ts-proj", 1n << 40n), (e) => e instanceof AnnalError && e.code === Code.InvalidArgument);
  } finally {
    c.close();
  }
});
