#!/usr/bin/env python3
"""Markdown report of one bench/run.sh result file (bench/results/<date>.json).

Each figure is shown next to the disk's measured limit for that shape of load
and as a fraction of it, and next to the targets of issue #12 (those that
need Redis beside annal are checked by bench/sweep.sh and the peers harness).

Disk limits (all from the same run, annal_disk_probe: buffered pwrite +
fdatasync, the way annal writes):
  items 1, 2: 4 KiB write + fdatasync into written blocks (annal zero-fills
              its segments ahead of use): one append per sync at 1 in flight, so
              item 1's limit is syncs/s and item 2's is 16 x syncs/s (16 appends
              per group at most), capped by the group bandwidth.
  items 3, 6: bandwidth of 256 KiB write + fdatasync loops (a group commit of
              ~800 records) divided by the bytes one event takes on disk.
  item 4:     64 KiB write + fdatasync loops converted to records (8 appends of
              100 events in flight: ~280 KB per group at most).
  item 5:     reads are served from the page cache: no disk limit applies.
"""
import json
import sys


def main(path):
    rows = json.load(open(path))
    by = {r.get("label"): r for r in rows if "label" in r}
    sec = {r["section"]: r for r in rows if "section" in r}
    m = sec.get("machine", {})
    probe = sec.get("disk", {}).get("probe", {})
    t = probe.get("tests", {})
    fa = t.get("sync_fallocated", {})
    wr = t.get("sync_written", {})
    g64 = t.get("group_64K", {})
    g256 = t.get("group_256K", {})
    fio = sec.get("fio", {}).get("fio")

    out = []
    out.append(f"# annal benchmark, {m.get('date', '?')}\n")
    out.append(
        f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('mem_gib')} GiB RAM, "
        f"{m.get('fs')} on {m.get('device')}, Linux {m.get('kernel')}; commit {m.get('commit')} "
        f"({m.get('uncommitted_files', '?')} files with uncommitted changes in the tree); "
        f"load average at start {m.get('loadavg_start')}, at end {sec.get('end', {}).get('loadavg_end')}.\n")
    after = sec.get("disk_after", {}).get("probe", {})
    ta = after.get("tests", {})
    out.append("## The disk's own limits (same run: before the suite | after it)\n")
    out.append("| probe | syncs/s | MB/s | p50 ms | p99 ms |")
    out.append("|---|---:|---:|---:|---:|")

    def two(a, b, key, fmt):
        return fmt.format(a[key]) + (" \\| " + fmt.format(b[key]) if b else "")
    for name in ["sync_written", "sync_352B", "sync_fallocated", "group_64K", "group_256K", "group_1024K"]:
        x = t.get(name)
        y = ta.get(name)
        if x:
            size = f"{x['block_bytes'] // 1024} KiB" if x['block_bytes'] >= 1024 else f"{x['block_bytes']} B"
            out.append(f"| {name} ({size} + fdatasync) | {two(x, y, 'syncs_per_s', '{:,.0f}')} | "
                       f"{two(x, y, 'mb_per_s', '{:.1f}')} | {two(x, y, 'p50_ms', '{:.3f}')} | "
                       f"{two(x, y, 'p99_ms', '{:.3f}')} |")
    seq_after = f" \\| {after['seq_write_mb_per_s']:.1f}" if after else ""
    out.append(f"| sequential write, 256 MiB + one fdatasync | | {probe.get('seq_write_mb_per_s', 0):.1f}{seq_after} | | |")
    for lab in ["disk_item1", "disk_item2"]:
      for name in ["sync_written", "sync_352B"]:
        x = sec.get(lab, {}).get("probe", {}).get("tests", {}).get(name)
        if x:
            out.append(f"| {name}, right before item {lab[-1]} | {x['syncs_per_s']:,.0f} | {x['mb_per_s']:.1f} | "
                       f"{x['p50_ms']:.3f} | {x['p99_ms']:.3f} |")
    if fio and all(isinstance(fio.get(k), (int, float)) for k in ("write_iops", "sync_p50_ns", "sync_p99_ns")):
        out.append(f"| fio 4 KiB write + fdatasync | {fio['write_iops']:,.0f} | | "
                   f"{fio['sync_p50_ns'] / 1e6:.3f} | {fio['sync_p99_ns'] / 1e6:.3f} |")
    out.append("")

    def rec_bytes(r):
        return r.get("record_bytes", 330)

    limits = {}
    # Items 1 and 2 are compared with the sync latency measured right before them.
    # (sync_352B: one record per fdatasync, exactly what item 1 asks of the disk.)
    wr1 = sec.get("disk_item1", {}).get("probe", {}).get("tests", {}).get("sync_352B") or t.get("sync_352B") or wr
    wr2 = sec.get("disk_item2", {}).get("probe", {}).get("tests", {}).get("sync_352B") or t.get("sync_352B") or wr
    if wr:
        # Since commit 00c1c36 annal writes into zero-filled (written) segment blocks.
        limits["1-append-1x1"] = (wr1["syncs_per_s"], "1 append per fdatasync (352-byte write into written blocks), measured right before")
        limits["2-append-16x1"] = (16 * wr2["syncs_per_s"], "16 appends per fdatasync (352-byte write), measured right before")
    if "2-append-16x1" in limits:
        limits["6b-subscribe-100-at-16x1"] = limits["2-append-16x1"]
    for lab in ["3-append-64x8", "6-subscribe-100"]:
        if g256 and lab in by:
            limits[lab] = (g256["mb_per_s"] * 1e6 / rec_bytes(by[lab]), "256 KiB group-fsync bandwidth / record size")
    if g64:
        limits["4-append-1x8-b100"] = (g64["mb_per_s"] * 1e6 / rec_bytes(by.get("4-append-1x8-b100", {})),
                                       "64 KiB group-fsync bandwidth / record size")

    targets = {
        "1-append-1x1": (">= 80% of the disk's 4 KiB + fdatasync rate (written blocks); p50 <= node's fdatasync p50 + 0.03 ms", None),
        "2-append-16x1": (">= 12 events per fdatasync (and >= 2 x Redis: bench/sweep.sh)", None),
        "3-append-64x8": (">= 250,000 ev/s with <= 4 us node CPU per event", 250000),
        "4-append-1x8-b100": (">= 1,000,000 ev/s or >= 80% of the group-sync limit", None),
        "5a-read-stream": (">= 2 x Redis (bench/sweep.sh has no read; peers harness)", None),
        "5b-read-all": (">= 5,000,000 ev/s (and >= 2.5 x Redis $all: peers harness)", 5000000),
        "5b-read-all-2": (">= 5,000,000 ev/s", 5000000),
        "6-subscribe-100": ("(supplementary, item 3's load) all receive all; p99 delay <= 5 ms", None),
        "6b-subscribe-100-at-16x1": ("all receive all; p99 delay <= 5 ms", None),
    }
    out.append("## The suite (256-byte JSON events, 1,000 streams, durable acks)\n")
    out.append("| item | events/s | MB/s (data) | latency p50 / p99 / p99.9 / max (ms) | disk limit (events/s) | "
               "fraction of limit | node's own fdatasync during the item: p50 / p99 ms, events per sync | target | met | "
               "node CPU s / generator CPU s / wall s |")
    out.append("|---|---:|---:|---|---:|---:|---|---|---|---|")
    item1 = by.get("1-append-1x1", {}).get("events_per_s", 0)
    for lab, (target, tnum) in targets.items():
        r = by.get(lab)
        if not r:
            continue
        if r.get("failed"):
            out.append(f"| {lab} | FAILED (exit {r.get('exit')}) | | | | | | {target} | no | |")
            continue
        eps = r.get("events_per_s", 0)
        lat = r.get("latency") or r.get("request_latency") or {}
        lat_s = (f"{lat.get('p50_ms', 0):.3f} / {lat.get('p99_ms', 0):.3f} / {lat.get('p999_ms', 0):.3f} / "
                 f"{lat.get('max_ms', 0):.3f}")
        if lab.startswith("5"):
            lat_s = "per 1000-event request: " + lat_s
        lim = limits.get(lab)
        lim_s = f"{lim[0]:,.0f}" if lim else "n/a (page cache)" if lab.startswith("5") else "n/a"
        frac_s = f"{eps / lim[0]:.2f}" if lim and lim[0] > 0 else "-"
        met = "-"
        ns = r.get("node_fdatasync") or {}
        sync_s = "-"
        if ns:
            per = (r.get("total_events") or r.get("events", 0)) / ns["count"] if ns.get("count") else 0
            sync_s = f"{ns['p50_ms']:.3f} / {ns['p99_ms']:.3f}, {per:.1f}"
        per_sync = ((r.get("total_events") or r.get("events", 0)) / ns["count"]
                    if ns.get("count") else 0)
        node_us = (r.get("node_cpu_s", 0) * 1e6 / r["total_events"]) if r.get("total_events") else 0
        w4k = sec.get("disk_item1", {}).get("probe", {}).get("tests", {}).get("sync_written") or wr
        if lab == "1-append-1x1" and ns and w4k:
            ok = eps >= 0.8 * w4k["syncs_per_s"] and lat.get("p50_ms", 99) <= ns["p50_ms"] + 0.03
            met = "yes" if ok else "no"
            target += (f" ({eps / w4k['syncs_per_s']:.0%} of the 4 KiB probe's {w4k['syncs_per_s']:,.0f}/s; "
                       f"p50 {lat.get('p50_ms', 0):.3f} vs fdatasync p50 {ns['p50_ms']:.3f} ms)")
        elif lab == "2-append-16x1" and ns:
            met = "yes" if per_sync >= 12 else "no"
            target += f" ({per_sync:.1f} per sync)"
        elif lab == "3-append-64x8":
            met = "yes" if eps >= 250000 and 0 < node_us <= 4 else "no"
            target += f" ({node_us:.1f} us/event)"
        elif lab == "4-append-1x8-b100" and lim:
            met = "yes" if eps >= min(1000000, 0.8 * lim[0]) else "no"
        elif lab.startswith("6"):
            d = r.get("delay", {})
            ok = r.get("all_complete") and d.get("p99_ms", 99) <= 5
            met = "yes" if ok else "no"
            lat_s += (f"; delay ack->delivery p50 {d.get('p50_ms', 0):.3f} p99 {d.get('p99_ms', 0):.3f} "
                      f"max {d.get('max_ms', 0):.3f}; {r.get('subscribers_complete')}/{r.get('subscribers')} "
                      f"subscribers got all {r.get('expected_events')} events")
        elif tnum:
            met = "yes" if eps >= tnum else "no"
        mbs = r.get("data_mb_per_s", 0)
        cpu = f"{r.get('node_cpu_s', 0):.1f} / {r.get('generator_cpu_s', 0):.1f} / {r.get('wall_s', 0):.1f}"
        out.append(f"| {lab} | {eps:,.0f} | {mbs:.1f} | {lat_s} | {lim_s} | {frac_s} | {sync_s} | {target} | {met} | {cpu} |")
    out.append("")
    out.append("Disk limits: " + "; ".join(f"{k}: {v[1]}" for k, v in limits.items()) + ".")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
