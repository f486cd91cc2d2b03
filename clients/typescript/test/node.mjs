// A real annald on 127.0.0.1 with a port it picks and a temporary data
// directory, stopped by its PID. The binary is $ANNALD, else the checkout's
// build/debug or build/release tools/annald.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

function annald() {
  if (process.env.ANNALD) return process.env.ANNALD;
  for (const b of ["debug", "release"]) {
    const p = join(ROOT, "build", b, "tools", "annald");
    if (existsSync(p)) return p;
  }
  throw new Error("no annald: build it (scripts/test.sh) or set ANNALD");
}

export async function startNode() {
  const dir = mkdtempSync(join(tmpdir(), "annal-ts-"));
  const portFile = join(dir, "port");
  let proc = null;
  const node = {
    port: 0,
    // Starts annald on the data directory; after a restart, on the same port.
    async start() {
      rmSync(portFile, { force: true });
      const log = openSync(join(dir, "annald.log"), "a");
      proc = spawn(annald(), ["--data", join(dir, "data"), "--listen", `127.0.0.1:${this.port}`, "--port-file", portFile,
        "--http", "127.0.0.1:0", "--log-level", "warn"], { stdio: ["ignore", log, log] });
      const deadline = Date.now() + 30000;
      while (!existsSync(portFile)) {
        if (proc.exitCode !== null || Date.now() > deadline) throw new Error("annald did not start: " + readFileSync(join(dir, "annald.log"), "utf8"));
        await new Promise((r) => setTimeout(r, 20));
      }
      this.port = Number(readFileSync(portFile, "utf8"));
    },
    async stop(signal = "SIGTERM") {
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill(signal);
        await exited;
      }
    },
    async close() {
      await this.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await node.start();
  return node;
}

export function vectors() {
  return JSON.parse(readFileSync(join(ROOT, "tests", "vectors", "protocol.json"), "utf8")).vectors;
}
