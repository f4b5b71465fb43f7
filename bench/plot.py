#!/usr/bin/env python3
"""Plots a `bash bench/run.sh --sweep` run: send -> receive latency (p99, and p50 dotted) and
delivered throughput against offered load, and RSS per idle socket against the number of
sockets, one line per series (one Postgres node, one SQLite node, two of each over Redis).

    python3 bench/plot.py bench/results/sweep-<time>.jsonl [--out docs]

Writes <out>/perf-latency-vs-load.png and <out>/perf-rss-vs-sockets.png (needs matplotlib).

A row's series comes from its label, sweep-rate-<backend>-<nodes> or
sweep-idle-<backend>-<nodes> (after any BENCH_LABEL prefix); the sweeps before the four
series labelled their rows "sweep-rate" and "sweep-idle", one Postgres node: postgres-1.
On two nodes the RSS is both nodes' together and the figure per socket is over all the
sockets: one load generator over both divides each node's growth by all of them (the
`gateways` add up); rows of bench/run.sh's idle_split (one generator per node, a `split` id)
are added up into one point.
"""
import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["postgres-1", "sqlite-1", "postgres-2", "sqlite-2"]


def series_of(label):
    m = re.match(r"^(.*?)sweep-(?:rate|idle)(?:-(.+))?$", label or "")
    if not m:
        return label or "?"
    return m.group(1) + (m.group(2) or "postgres-1")


def idle_points(idle):
    """(series, sockets, RSS MiB over the nodes, KiB per socket over the nodes) per idle row."""
    out, splits = [], {}
    for r in idle:
        if "split" in r:
            splits.setdefault(r["split"], []).append(r)
            continue
        gws = [g for g in r["result"]["gateways"] if g]
        if not gws:
            continue
        out.append((series_of(r["label"]), r["result"]["sockets"],
                    sum(g["rss_mib"] for g in gws), sum(g["kib_per_socket"] for g in gws)))
    for parts in splits.values():
        socks = [p["result"]["sockets"] for p in parts]
        gws = [(p["result"]["gateways"] or [None])[0] or {} for p in parts]
        n = sum(socks) or 1
        label = re.sub(r"-node\d+$", "", parts[0]["label"])
        out.append((series_of(label), sum(socks), sum(g.get("rss_mib", 0) for g in gws),
                    sum(g.get("kib_per_socket", 0) * s for g, s in zip(gws, socks)) / n))
    return out


def by_series(points):
    groups = {}
    for p in points:
        groups.setdefault(p[0], []).append(p[1:])
    names = sorted(groups, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))
    return [(s, sorted(groups[s])) for s in names]


def style(name, i):
    """A colour per series, a round marker for one node and a square for two."""
    two = name.endswith("-2")
    return {"color": f"C{ORDER.index(name) if name in ORDER else len(ORDER) + i}",
            "marker": "s" if two else "o"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--out", default="docs")
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.jsonl) if l.strip()]
    rows = [r for r in rows if r.get("label") != "raw" and "result" in r]
    rate = [r for r in rows if r["scenario"] == "rate"]
    idle = [r for r in rows if r["scenario"] == "idle"]
    out = Path(args.out)
    name = Path(args.jsonl).name

    rate_series = by_series([
        (series_of(r["label"]), r["result"]["offered_per_s"], r["result"]["delivered_per_s"],
         r["result"]["delivery_latency_ms"]) for r in rate])
    if rate_series:
        fig, (lat_ax, got_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
        top = 0
        for i, (s, pts) in enumerate(rate_series):
            st = style(s, i)
            offered = [p[0] for p in pts]
            lat_ax.plot(offered, [p[2]["p99"] for p in pts], "-", label=f"{s} p99", **st)
            lat_ax.plot(offered, [p[2]["p50"] for p in pts], ":", color=st["color"], alpha=0.7)
            got_ax.plot(offered, [p[1] for p in pts], "-", label=s, **st)
            top = max(top, *offered)
        lat_ax.plot([], [], ":", color="grey", label="p50 (dotted)")
        lat_ax.set_xscale("log")
        lat_ax.set_yscale("log")
        lat_ax.set_xlabel("offered messages/s (50 pairs, open loop)")
        lat_ax.set_ylabel("send -> receive latency, ms")
        lat_ax.grid(True, which="both", alpha=0.3)
        lat_ax.legend(fontsize=8, loc="upper left")
        got_ax.plot([0, top], [0, top], "--", color="grey", lw=0.8, label="delivered = offered")
        got_ax.set_xlabel("offered messages/s")
        got_ax.set_ylabel("delivered messages/s")
        got_ax.grid(True, alpha=0.3)
        got_ax.legend(fontsize=8, loc="upper left")
        fig.suptitle(f"Latency and throughput against offered load ({name})", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "perf-latency-vs-load.png", dpi=110)

    idle_series = by_series(idle_points(idle))
    if idle_series:
        fig, (rss_ax, per_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
        top = 0
        for i, (s, pts) in enumerate(idle_series):
            st = style(s, i)
            socks = [p[0] for p in pts]
            rss_ax.plot(socks, [p[1] for p in pts], "-", label=s, **st)
            per_ax.plot(socks, [p[2] for p in pts], "-", label=s, **st)
            top = max(top, *(p[2] for p in pts))
        rss_ax.set_xlabel("idle authenticated sockets (all nodes)")
        rss_ax.set_ylabel("gateway RSS, MiB (all nodes)")
        rss_ax.set_ylim(bottom=0)
        rss_ax.grid(True, alpha=0.3)
        rss_ax.legend(fontsize=8, loc="upper left")
        per_ax.set_xlabel("idle authenticated sockets (all nodes)")
        per_ax.set_ylabel("KiB of RSS per socket (all nodes)")
        per_ax.set_ylim(0, top * 1.3 or 1)
        per_ax.grid(True, alpha=0.3)
        per_ax.legend(fontsize=8, loc="lower right")
        fig.suptitle(f"RSS against idle sockets ({name})", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "perf-rss-vs-sockets.png", dpi=110)

    for s, pts in rate_series:
        for o, g, l in pts:
            print(f"{s}: offered {o}/s: delivered {g}/s, p50 {l['p50']} ms, p99 {l['p99']} ms")
    for s, pts in idle_series:
        for n, m, p_ in pts:
            print(f"{s}: {n} sockets: {m:.1f} MiB, {p_:.1f} KiB each")


if __name__ == "__main__":
    main()
