#!/usr/bin/env python3
"""Plots a `bash bench/run.sh --sweep` run: send -> receive latency (p50, p99) and delivered
throughput against offered load, and RSS per idle socket against the number of sockets.

    python3 bench/plot.py bench/results/sweep-<time>.jsonl [--out docs]

Writes <out>/perf-latency-vs-load.png and <out>/perf-rss-vs-sockets.png (needs matplotlib).
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--out", default="docs")
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.jsonl) if l.strip()]
    rate = [r for r in rows if r["scenario"] == "rate"]
    idle = [r for r in rows if r["scenario"] == "idle"]
    out = Path(args.out)
    name = Path(args.jsonl).name

    offered = [r["result"]["offered_per_s"] for r in rate]
    got = [r["result"]["delivered_per_s"] for r in rate]
    lat = [r["result"]["delivery_latency_ms"] for r in rate]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(offered, [l["p50"] for l in lat], "o-", label="p50")
    ax.plot(offered, [l["p99"] for l in lat], "s-", label="p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered messages/s (50 pairs, open loop)")
    ax.set_ylabel("send -> receive latency, ms")
    ax.grid(True, which="both", alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(offered, got, "^--", color="grey", label="delivered/s")
    ax2.set_ylabel("delivered messages/s")
    ax2.set_yscale("log")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left")
    ax.set_title(f"One node on Postgres: latency against load ({name})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "perf-latency-vs-load.png", dpi=110)

    socks = [r["result"]["sockets"] for r in idle]
    per = [r["result"]["gateways"][0]["kib_per_socket"] for r in idle]
    rss = [r["result"]["gateways"][0]["rss_mib"] for r in idle]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(socks, rss, "o-", label="gateway RSS, MiB")
    ax.set_xlabel("idle authenticated sockets")
    ax.set_ylabel("RSS, MiB")
    ax.grid(True, alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(socks, per, "s--", color="grey", label="KiB per socket")
    ax2.set_ylabel("KiB per socket")
    ax2.set_ylim(0, max(per) * 1.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left")
    ax.set_title(f"One node: RSS against idle sockets ({name})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "perf-rss-vs-sockets.png", dpi=110)
    for o, g, l in zip(offered, got, lat):
        print(f"offered {o}/s: delivered {g}/s, p50 {l['p50']} ms, p99 {l['p99']} ms")
    for s, p_, m in zip(socks, per, rss):
        print(f"{s} sockets: {m:.1f} MiB, {p_} KiB each")


if __name__ == "__main__":
    main()
