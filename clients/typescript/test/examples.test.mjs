// examples/typescript/orders.mjs, run as the README runs it, against a real node.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { ROOT, startNode } from "./node.mjs";

let node;
let dir;
before(async () => {
  node = await startNode();
  dir = mkdtempSync(join(tmpdir(), "annal-ts-example-"));
});
after(async () => {
  if (node) await node.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const run = (state) =>
  JSON.parse(execFileSync(process.execPath, [join(ROOT, "examples", "typescript", "orders.mjs"),
    "--port", String(node.port), "--state", state, "--orders", "6"], { encoding: "utf8", timeout: 120000 }));

test("the order example keeps its projection and checkpoint across runs", () => {
  const state = join(dir, "projection.json");
  assert.deepEqual(run(state), { orders: 6, revenue: { "customer-0": 60, "customer-1": 60, "customer-2": 60 } });
  assert.deepEqual(run(state).revenue, { "customer-0": 120, "customer-1": 120, "customer-2": 120 });
  assert.ok(JSON.parse(readFileSync(state, "utf8")).next > 0);
});
