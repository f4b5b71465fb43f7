#!/usr/bin/env python3
"""Turns a bench/run.sh JSONL file into the markdown tables of docs/performance.md.

    python3 bench/table.py bench/results/run-<time>.jsonl
"""
import json, sys


def ms(v, key):
    return "" if not v else f"{v[key]:.1f}"


raw, rows, nodes = [], [], []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    if d.get("scenario") == "node-metrics":
        nodes.append(d)
        continue
    (raw if d.get("label") == "raw" else rows).append(d)

print("| raw limit | figure |\n|---|---|")
for d in raw:
    if d["scenario"] == "pgbench":
        fig = d.get("tps") and f'{float(d["tps"]):,.0f} commits/s' or f'{d["rows_per_s"]:,} rows/s'
        print(f'| pgbench, {d["clients"]} client(s), {d["rows_per_tx"]} insert(s) per transaction | {fig} |')
    elif d["scenario"] == "pgbench-lone-message":
        print(f'| pgbench at {d["rate"]}/s, a lone send\'s statements {d["form"]} | p50 {d["p50_ms"]} / p99 {d["p99_ms"]} ms |')
    elif d["scenario"] == "sqlite-commit":
        print(f'| SQLite commit (WAL, FULL) at {d["rate"]}/s | p50 {d["p50_ms"]} / p99 {d["p99_ms"]} ms |')
    else:
        print(f'| redis-benchmark PUBLISH, pipeline {d["pipeline"]} | {float(d["per_s"]):,.0f}/s |')

print()
print("| nodes | scenario | acked/s | delivered/s | ack p50 / p99 (ms) | delivery p50 / p99 (ms) | last delivery p99 (ms) | missing | dup | errors | gateway CPU % / RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for d in rows:
    r, p, sc = d["result"], d["params"], d["scenario"]
    name = sc
    if sc in ("group", "mixed"):
        name += f' {p["groups"]}×{p["members"]}'
    if sc in ("rate", "mixed"):
        name += f' @{p["rate"]}/s'
    if sc == "idle":
        g = r["gateways"][0] or {}
        print(f'| {d["label"]} | idle {r["sockets"]} sockets | | | | | | | | {r.get("failed") or ""} | '
              f'{g.get("kib_per_socket")} KiB/socket, kernel {r.get("kernel_tcp_kib_per_socket_pair")} KiB/pair |')
        continue
    if sc == "reconnect":
        print(f'| {d["label"]} | reconnect ({p["sockets"]} clients) | {r["reconnects_per_s"]:,.0f} reconnects/s | | '
              f'catch-up {ms(r["catch_up_ms"], "p50")} / {ms(r["catch_up_ms"], "p99")} | | | {r["missing"]} | | {r["errors"] or ""} | |')
        continue
    gw = " · ".join(f'{g.get("cpu_percent")} / {g.get("rss_mib", 0):.0f}' for g in r["gateways"])
    print(f'| {d["label"]} | {name} | {r["acked_per_s"]:,.0f} | {r["delivered_per_s"]:,.0f} | '
          f'{ms(r["ack_latency_ms"], "p50")} / {ms(r["ack_latency_ms"], "p99")} | '
          f'{ms(r["delivery_latency_ms"], "p50")} / {ms(r["delivery_latency_ms"], "p99")} | '
          f'{ms(r["last_delivery_latency_ms"], "p99")} | {r["missing"]} | {r["duplicate"]} | '
          f'{ {k: v for k, v in r["errors"].items()} or ""} | {gw} |')

waits = [d for d in rows if (d["result"].get("machine") or {}).get("runqueue_wait_percent") is not None]
if waits:
    print()
    print("Waiting for a core during a row (loadgen, from /proc/*/task/*/schedstat; percent of one core's time):\n")
    print("| nodes | scenario | machine busy % | every thread's wait % | each gateway's CPU % / wait % |")
    print("|---|---|---|---|---|")
    for d in waits:
        r, p = d["result"], d["params"]
        name = d["scenario"] + (f' @{p["rate"]}/s' if d["scenario"] in ("rate", "mixed") else "")
        gw = " · ".join(f'{g.get("cpu_percent")} / {g.get("runqueue_wait_percent")}' for g in r["gateways"])
        m = r["machine"]
        print(f'| {d["label"]} | {name} | {m.get("busy_percent")} | {m["runqueue_wait_percent"]} | {gw} |')

if nodes:
    print()
    print("What the nodes counted during a row (bench/node_metrics.py):\n")
    print("| row | node | stored | batches | mean batch | store call mean / p50 / p99 (ms) | ack mean / p50 / p99 (ms) |")
    print("|---|---|---|---|---|---|---|")
    for d in nodes:
        for n in d["nodes"]:
            db, ack = n["db_query_ms"], n["send_ack_ms"]
            print(f'| {d["label"]} | {n["url"].rsplit(":", 1)[-1]} | {n["messages_stored_total"]:,.0f} | '
                  f'{n["commit_batches_total"]:,.0f} | {n["mean_batch"]} | '
                  f'{db["mean"]} / {db["p50"]} / {db["p99"]} | {ack["mean"]} / {ack["p50"]} / {ack["p99"]} |')
