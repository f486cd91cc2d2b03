#!/usr/bin/env python3
"""Plots a bench/sweep.sh result: throughput and p50/p99 latency against
connections for annal and Redis, and a latency CDF per (connections, in
flight). Writes <result>-throughput.png, -latency.png and -cdf.png beside the
JSON, and prints a markdown table of the points."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"annal": "tab:blue", "redis": "tab:red"}


def main(path):
    rows = [r for r in json.load(open(path)) if "system" in r]
    base = path[:-5] if path.endswith(".json") else path
    in_flights = sorted({r["in_flight"] for r in rows})
    conns = sorted({r["connections"] for r in rows})

    def series(system, p, key):
        pts = sorted((r["connections"], r[key]) for r in rows
                     if r["system"] == system and r["in_flight"] == p and r[key] is not None)
        return [x for x, _ in pts], [y for _, y in pts]

    fig, ax = plt.subplots(figsize=(8, 5))
    for system in STYLE:
        for p in in_flights:
            x, y = series(system, p, "events_per_s")
            if x:
                ax.plot(x, y, marker="o", color=STYLE[system], linestyle="-" if p == 1 else "--",
                        label=f"{system}, {p} in flight per connection")
    ax.set_xscale("log", base=2)
    ax.set_xticks(conns, [str(c) for c in conns])
    ax.set_xlabel("connections")
    ax.set_ylabel("durable appends per second (1 event each)")
    ax.set_title("Throughput against connections (same run, same machine)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(base + "-throughput.png", dpi=100)

    fig, ax = plt.subplots(figsize=(8, 5))
    for system in STYLE:
        for p in in_flights:
            for key, mark in (("p50_ms", "o"), ("p99_ms", "^")):
                x, y = series(system, p, key)
                if x:
                    ax.plot(x, y, marker=mark, color=STYLE[system],
                            linestyle="-" if p == 1 else "--",
                            label=f"{system} {key[:3]}, {p} in flight")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(conns, [str(c) for c in conns])
    ax.set_xlabel("connections")
    ax.set_ylabel("ack latency, ms (client-observed)")
    ax.set_title("Latency against connections")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(base + "-latency.png", dpi=100)

    fig, axes = plt.subplots(len(in_flights), len(conns), figsize=(3 * len(conns), 3 * len(in_flights)),
                             squeeze=False, sharey=True)
    for i, p in enumerate(in_flights):
        for j, c in enumerate(conns):
            ax = axes[i][j]
            for r in rows:
                if r["in_flight"] == p and r["connections"] == c and r.get("cdf"):
                    ax.plot([ms for _, ms in r["cdf"]], [q for q, _ in r["cdf"]],
                            color=STYLE[r["system"]], label=r["system"])
            ax.set_xscale("log")
            ax.set_title(f"{c} conn x {p}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            if j == 0:
                ax.set_ylabel("fraction of acks")
            if i == len(in_flights) - 1:
                ax.set_xlabel("ms")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Ack latency CDF per point")
    fig.tight_layout()
    fig.savefig(base + "-cdf.png", dpi=80)

    print("| system | connections | in flight | events/s | p50 ms | p99 ms | server CPU us/event | generator CPU us/event |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (r["in_flight"], r["connections"], r["system"])):
        print(f"| {r['system']} | {r['connections']} | {r['in_flight']} | {r['events_per_s']:,.0f} | "
              f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['node_cpu_us_per_event']:.1f} | "
              f"{r['generator_cpu_us_per_event']:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
