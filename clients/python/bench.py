#!/usr/bin/env python3
"""Throughput of the Python client against a running node (bench/clients.sh).

    python3 clients/python/bench.py --port 7411 append --connections 16 --in-flight 1
    python3 clients/python/bench.py --port 7411 read-all

Prints one JSON object: events, seconds, events_per_s, cpu_s (this process).
Appends: one 256-byte JSON event each to 1,000 streams, expected revision any.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))
from annal import Client, NewEvent  # noqa: E402

PAD = "x" * (256 - len('{"seq":0,"pad":""}') - 6)


async def append(args) -> dict:
    clients = [await Client.connect(args.host, args.port) for _ in range(args.connections)]
    deadline = time.monotonic() + args.seconds
    count = 0

    async def worker(c: Client) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            data = json.dumps({"seq": count, "pad": PAD}).encode()
            await c.append(f"pybench-{random.randrange(1000)}", [NewEvent("BenchEvent", data)])
            count += 1

    t0 = time.monotonic()
    await asyncio.gather(*(worker(c) for c in clients for _ in range(args.in_flight)))
    secs = time.monotonic() - t0
    for c in clients:
        await c.close()
    return {"events": count, "seconds": secs}


async def read_all(args) -> dict:
    async with await Client.connect(args.host, args.port) as c:
        t0 = time.monotonic()
        n = 0
        expect = 0
        async for e in c.iter_all():
            if e.position != expect:
                raise SystemExit(f"position {e.position} where {expect} was due")
            expect += 1
            n += 1
        return {"events": n, "seconds": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7411)
    ap.add_argument("mode", choices=["append", "read-all"])
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--in-flight", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=4)
    args = ap.parse_args()
    r = asyncio.run(append(args) if args.mode == "append" else read_all(args))
    r["events_per_s"] = r["events"] / r["seconds"] if r["seconds"] > 0 else 0
    r["cpu_s"] = time.process_time()
    print(json.dumps(r))


if __name__ == "__main__":
    main()
