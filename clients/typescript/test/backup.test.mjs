// Online backup (protocol v6) against a real annald: a backup taken while
// appends go on holds every acknowledged event below its position (checked
// by a second node started on it), and bad destinations are refused.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { AnnalError, Client, Code } from "../dist/esm/index.js";
import { ROOT, startNode } from "./node.mjs";

const ev = (n) => ({ type: "Tick", data: JSON.stringify({ n }) });

let node;
before(async () => (node = await startNode()));
after(async () => node && (await node.close()));

function annald() {
  if (process.env.ANNALD) return process.env.ANNALD;
  for (const b of ["debug", "release"]) {
    const p = join(ROOT, "build", b, "tools", "annald");
    if (existsSync(p)) return p;
  }
  throw new Error("no annald");
}

// annald on an existing data directory (the backup), on a port it picks.
async function startOn(data, work) {
  const portFile = join(work, "copy.port");
  const log = openSync(join(work, "copy.log"), "a");
  const proc = spawn(annald(), ["--data", data, "--listen", "127.0.0.1:0", "--port-file", portFile, "--log-level", "warn"],
    { stdio: ["ignore", log, log] });
  const deadline = Date.now() + 30000;
  while (!existsSync(portFile)) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error("annald did not start: " + readFileSync(join(work, "copy.log"), "utf8"));
    await new Promise((r) => setTimeout(r, 20));
  }
  return { proc, port: Number(readFileSync(portFile, "utf8")) };
}

test("a backup taken during appends holds every acknowledged event below its position", async () => {
  const work = mkdtempSync(join(tmpdir(), "annal-ts-backup-"));
  const c = await Client.connect({ port: node.port });
  let copy = null;
  try {
    const acked = [];
    let stop = false;
    const writer = async (w) => {
      for (let k = 0; !stop; k++) {
        const r = await c.append(`w${w}`, [ev(k)]);
        acked.push({ position: r.firstPosition, stream: `w${w}`, k });
      }
    };
    const writers = [0, 1, 2].map(writer);
    while (acked.length < 200) await new Promise((r) => setTimeout(r, 10));
    const dest = join(work, "bk");
    const b = await c.backup(dest);
    stop = true;
    await Promise.all(writers);
    assert.equal(b.dest, realpathSync(work) + "/bk");
    assert.ok(b.position > 0n && b.files >= 1 && b.bytes > 0n);
    assert.equal(b.linked, 0);
    assert.equal(b.note, "");
    const manifest = JSON.parse(readFileSync(join(dest, "MANIFEST"), "utf8"));
    assert.equal(BigInt(manifest.position), b.position);
    assert.equal(manifest.files.length, b.files);

    copy = await startOn(dest, work);
    const cc = await Client.connect({ port: copy.port });
    try {
      assert.equal((await cc.info()).durableEnd, b.position);
      for (const a of acked) {
        const page = await cc.readAll(a.position, 1);
        if (a.position < b.position) {
          assert.equal(page.events.length, 1);
          assert.equal(page.events[0].stream, a.stream);
          assert.deepEqual(JSON.parse(Buffer.from(page.events[0].data).toString()), { n: a.k });
        } else {
          assert.equal(page.events.length, 0);
        }
      }
    } finally {
      await cc.close();
    }
  } finally {
    await c.close();
    if (copy) {
      const exited = new Promise((r) => copy.proc.once("exit", r));
      copy.proc.kill("SIGTERM");
      await exited;
    }
    rmSync(work, { recursive: true, force: true });
  }
});

test("backup refuses a relative or non-empty destination with a code and a message", async () => {
  const work = mkdtempSync(join(tmpdir(), "annal-ts-backup-"));
  const c = await Client.connect({ port: node.port });
  try {
    await c.append("s", [ev(1)]);
    await assert.rejects(c.backup("relative/bk"),
      (e) => e instanceof AnnalError && e.code === Code.InvalidArgument && e.message.includes("absolute"));
    writeFileSync(join(work, "x"), "x");
    await assert.rejects(c.backup(work),
      (e) => e instanceof AnnalError && e.code === Code.AlreadyExists && e.message.includes("not empty"));
  } finally {
    await c.close();
    rmSync(work, { recursive: true, force: true });
  }
});
