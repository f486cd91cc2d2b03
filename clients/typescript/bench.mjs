// Throughput of the TypeScript client against a running node (bench/clients.sh).
//   node clients/typescript/bench.mjs --port 7411 append --connections 16 --in-flight 1
//   node clients/typescript/bench.mjs --port 7411 read-all
// Prints one JSON object: events, seconds, events_per_s, cpu_s (this process).
import { parseArgs } from "node:util";

import { Client } from "./dist/esm/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "7411" },
    connections: { type: "string", default: "1" },
    "in-flight": { type: "string", default: "1" },
    seconds: { type: "string", default: "4" },
  },
});
const opts = { host: values.host, port: Number(values.port) };
const pad = "x".repeat(256 - '{"seq":0,"pad":""}'.length - 6);
let result;
if (positionals[0] === "append") {
  const clients = await Promise.all(Array.from({ length: Number(values.connections) }, () => Client.connect(opts)));
  const deadline = performance.now() + Number(values.seconds) * 1000;
  let count = 0;
  const worker = async (c) => {
    while (performance.now() < deadline) {
      await c.append(`tsbench-${Math.floor(Math.random() * 1000)}`, [{ type: "BenchEvent", data: JSON.stringify({ seq: count, pad }) }]);
      count++;
    }
  };
  const t0 = performance.now();
  await Promise.all(clients.flatMap((c) => Array.from({ length: Number(values["in-flight"]) }, () => worker(c))));
  result = { events: count, seconds: (performance.now() - t0) / 1000 };
  clients.forEach((c) => c.close());
} else if (positionals[0] === "read-all") {
  const c = await Client.connect(opts);
  const t0 = performance.now();
  let n = 0n;
  for await (const e of c.iterAll()) {
    if (e.position !== n) throw new Error(`position ${e.position} where ${n} was due`);
    n++;
  }
  result = { events: Number(n), seconds: (performance.now() - t0) / 1000 };
  c.close();
} else {
  console.error("usage: bench.mjs [--port P] append|read-all [--connections C] [--in-flight P] [--seconds S]");
  process.exit(2);
}
const cpu = process.cpuUsage();
result.events_per_s = result.events / result.seconds;
result.cpu_s = (cpu.user + cpu.system) / 1e6;
console.log(JSON.stringify(result));
