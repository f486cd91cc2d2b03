// An order aggregate with optimistic concurrency, and a projection fed by a
// subscription that keeps its checkpoint (the Python twin is
// examples/python/orders.py). Run against a local node:
//
//   (cd clients/typescript && npm ci && npm run build)
//   node examples/typescript/orders.mjs --port 7411
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { Client, Code, WrongExpectedRevision } from "../../clients/typescript/dist/esm/index.js";

const event = (type, data) => ({ type, data: JSON.stringify(data) });

// The aggregate's state, rebuilt from its events.
async function load(c, stream) {
  const order = { revision: -1n, customer: "", items: {}, paid: false };
  try {
    for await (const e of c.iterStream(stream)) {
      const d = JSON.parse(e.data.toString());
      if (e.type === "OrderPlaced") order.customer = d.customer;
      else if (e.type === "ItemAdded") order.items[d.sku] = (order.items[d.sku] ?? 0) + d.price;
      else if (e.type === "OrderPaid") order.paid = true;
      order.revision = e.revision;
    }
  } catch (e) {
    if (e.code !== Code.StreamNotFound) throw e; // a new order: no stream yet
  }
  return order;
}

const total = (o) => Object.values(o.items).reduce((a, b) => a + b, 0);

// Load, decide, append expecting the revision read; retry on a conflict.
async function handle(c, stream, decide) {
  for (let attempt = 0; attempt < 10; attempt++) {
    const order = await load(c, stream);
    const events = decide(order);
    if (events.length === 0) return;
    const expected = order.revision < 0n ? { kind: "no_stream" } : { kind: "exact", revision: order.revision };
    try {
      await c.append(stream, events, expected);
      return;
    } catch (e) {
      if (!(e instanceof WrongExpectedRevision)) throw e; // someone else wrote first: decide again
    }
  }
  throw new Error(`${stream}: too many conflicts`);
}

const place = (customer) => (o) => (o.revision < 0n ? [event("OrderPlaced", { customer })] : []);
const addItem = (sku, price) => (o) => {
  if (o.paid) throw new Error("cannot add to a paid order");
  return [event("ItemAdded", { sku, price })];
};
const pay = (o) => (o.paid || total(o) === 0 ? [] : [event("OrderPaid", { amount: total(o) })]);

// Revenue per customer from OrderPaid events, resumable from a checkpoint.
async function project(c, stateFile, until) {
  let state = { next: 0, customers: {}, revenue: {} };
  if (existsSync(stateFile)) state = JSON.parse(readFileSync(stateFile, "utf8"));
  if (BigInt(state.next) >= until) return state.revenue;
  const sub = await c.subscribe({ from: BigInt(state.next), streamPrefix: "order-", checkpointInterval: 100 });
  for await (const item of sub) {
    if ("checkpoint" in item) {
      state.next = Math.max(state.next, Number(item.checkpoint));
    } else {
      const d = JSON.parse(item.data.toString());
      if (item.type === "OrderPlaced") state.customers[item.stream] = d.customer;
      else if (item.type === "OrderPaid") {
        const who = state.customers[item.stream];
        state.revenue[who] = (state.revenue[who] ?? 0) + d.amount;
      }
      state.next = Number(item.position) + 1;
    }
    writeFileSync(stateFile + ".tmp", JSON.stringify(state)); // state and checkpoint together
    renameSync(stateFile + ".tmp", stateFile);
    if (BigInt(state.next) >= until) break;
  }
  await sub.unsubscribe();
  return state.revenue;
}

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "7411" },
    orders: { type: "string", default: "20" },
    state: { type: "string", default: "orders-projection.json" },
  },
});
const c = await Client.connect({ host: values.host, port: Number(values.port) });
try {
  const run = randomBytes(3).toString("hex");
  const streams = Array.from({ length: Number(values.orders) }, (_, n) => `order-${run}-${n}`);
  for (const [n, s] of streams.entries()) await handle(c, s, place(`customer-${n % 3}`));
  // Two writers add items to the same orders at once: conflicts are detected
  // by the expected revision and retried; nothing is lost.
  await Promise.all(streams.flatMap((s) => [0, 1].map((k) => handle(c, s, addItem(`sku-${k}`, 10 * (k + 1))))));
  for (const s of streams) await handle(c, s, pay);
  const end = (await c.info()).durableEnd;
  const revenue = await project(c, values.state, end);
  const sorted = Object.fromEntries(Object.entries(revenue).sort());
  console.log(JSON.stringify({ orders: streams.length, revenue: sorted }));
} finally {
  c.close();
}
