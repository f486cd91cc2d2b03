// A real annald on 127.0.0.1 for the console test: both ports picked by the
// node (port 0, --port-file and --http-port-file), a temporary data
// directory, stopped by its PID. The binaries are $ANNALD and $ANNAL, else the
// checkout's build/release or build/debug tools/.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function binary(env, name) {
  if (process.env[env]) return process.env[env];
  for (const b of ['release', 'debug']) {
    const p = join(ROOT, 'build', b, 'tools', name);
    if (existsSync(p)) return p;
  }
  throw new Error(`no ${name}: build it (cmake --build --preset release) or set $${env}`);
}

// Resolves when file exists and holds a port; polls, as the node writes it once listening.
async function readPort(file, proc, log, deadline) {
  for (;;) {
    if (existsSync(file)) {
      const text = readFileSync(file, 'utf8').trim();
      if (/^\d+$/.test(text)) return Number(text);
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`annald exited (${proc.exitCode ?? proc.signalCode}) before writing ${file}:\n${readFileSync(log, 'utf8')}`);
    }
    if (Date.now() > deadline) throw new Error(`annald did not write ${file} within 30 s:\n${readFileSync(log, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startNode() {
  const dir = mkdtempSync(join(tmpdir(), 'annal-console-'));
  const log = join(dir, 'annald.log');
  const out = openSync(log, 'a');
  const portFile = join(dir, 'port'), httpPortFile = join(dir, 'http-port');
  const proc = spawn(binary('ANNALD', 'annald'), ['--data', join(dir, 'data'), '--listen', '127.0.0.1:0',
    '--port-file', portFile, '--http', '127.0.0.1:0', '--http-port-file', httpPortFile, '--log-level', 'warn'],
  { stdio: ['ignore', out, out] });
  const node = {
    dir, log,
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        process.kill(proc.pid, 'SIGTERM');
        const timer = setTimeout(() => process.kill(proc.pid, 'SIGKILL'), 10000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const deadline = Date.now() + 30000;
    node.port = await readPort(portFile, proc, log, deadline);
    node.httpPort = await readPort(httpPortFile, proc, log, deadline);
  } catch (e) {
    await node.close();
    throw e;
  }
  node.server = `127.0.0.1:${node.port}`;
  node.url = `http://127.0.0.1:${node.httpPort}`;
  return node;
}

const run = promisify(execFile);

// Runs the annal CLI against the node; returns its stdout parsed as JSON when it is.
export async function annal(node, ...args) {
  const { stdout } = await run(binary('ANNAL', 'annal'), [...args, '--server', node.server], { timeout: 15000 });
  try {
    return JSON.parse(stdout);
  } catch {
    return stdout;
  }
}
