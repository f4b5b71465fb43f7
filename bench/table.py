#!/usr/bin/env python3
"""Turns a bench/run.sh JSONL file into the markdown tables of docs/performance.md.

    python3 bench/table.py bench/results/run-<time>.jsonl

After the rows, a table of each row against the raw limit it belongs to, from the same file's
`raw` rows (the last one before the row, else the first after it): Postgres rows against
pgbench's commits from 32 clients and its 100-row transactions, SQLite rows against a bare
SQLite commit, two-node rows also against redis-benchmark PUBLISH, and `rate` rows at the
floor's rate against the floor's latency.
"""
import json, sys


def ms(v, key):
    return "" if not v else f"{v[key]:.1f}"


def times(a, b):
    """a / b as '1.64×', or '' without both."""
    if a is None or not b:
        return ""
    r = a / b
    return f"{r:.2f}×" if r >= 0.01 else f"{r:.4f}×"


raw, rows, nodes = [], [], []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    if d.get("scenario") == "node-metrics":
        nodes.append(d)
        continue
    d["_at"] = len(raw) + len(rows) + len(nodes)
    (raw if d.get("label") == "raw" else rows).append(d)

# Idle rows of bench/run.sh's idle_split (one load generator per node, run at once): one row
# made of its lines, in the place of the first.
merged, splits = [], {}
for d in rows:
    sid = d.get("split")
    if sid is None:
        merged.append(d)
    elif sid in splits:
        splits[sid].append(d)
    else:
        splits[sid] = [d]
        merged.append({"split_rows": splits[sid], "scenario": "idle", "_at": d["_at"],
                       "label": d["label"].rsplit("-node", 1)[0], "split": sid})
rows = merged


print("| raw limit | figure |\n|---|---|")
for d in raw:
    if d["scenario"] == "pgbench":
        fig = d.get("tps") and f'{float(d["tps"]):,.0f} commits/s' or f'{d["rows_per_s"]:,} rows/s'
        print(f'| pgbench, {d["clients"]} client(s), {d["rows_per_tx"]} insert(s) per transaction | {fig} |')
    elif d["scenario"] == "pgbench-lone-message":
        print(f'| pgbench at {d["rate"]}/s, a lone send\'s statements {d["form"]} | p50 {d["p50_ms"]} / p99 {d["p99_ms"]} ms |')
    elif d["scenario"] == "sqlite-commit":
        print(f'| SQLite commit (WAL, FULL) at {d["rate"]}/s | p50 {d["p50_ms"]} / p99 {d["p99_ms"]} ms '
              f'(≈ {1000 / d["p50_ms"]:,.0f} commits/s one after another) |')
    elif d["scenario"] == "redis-publish":
        print(f'| redis-benchmark PUBLISH, pipeline {d["pipeline"]} | {float(d["per_s"]):,.0f}/s |')
    else:  # another script's raw row (bench/sqlite_fsync.sh, say): its fields as they are
        print(f'| {d["scenario"]} | ' + ", ".join(f"{k} {v}" for k, v in d.items()
                                              if k not in ("label", "scenario", "_at")) + " |")


def idle_cells(d):
    """The last column of an idle row: RSS per socket over all its nodes, and per node."""
    if "split_rows" in d:
        # One generator per node: each node's kib_per_socket is over its own sockets.
        parts = d["split_rows"]
        socks = [p["result"]["sockets"] for p in parts]
        per = [(p["result"]["gateways"] or [None])[0] or {} for p in parts]
        n = sum(socks) or 1
        total = sum((g.get("kib_per_socket") or 0) * s for g, s in zip(per, socks)) / n
        each = " · ".join(str(g.get("kib_per_socket")) for g in per)
        # Each generator read the machine's TCP memory: the larger reading, over all sockets.
        kernel = max((p["result"].get("kernel_tcp_kib_per_socket_pair") or 0) * s
                     for p, s in zip(parts, socks)) / n
        return (f'{total:.1f} KiB/socket over {len(parts)} nodes ({each} per node), '
                f'kernel {kernel:.1f} KiB/pair¹')
    r = d["result"]
    gws = [g or {} for g in r["gateways"]] or [{}]
    kernel = f'kernel {r.get("kernel_tcp_kib_per_socket_pair")} KiB/pair'
    if len(gws) == 1:
        return f'{gws[0].get("kib_per_socket")} KiB/socket, {kernel}'
    # One generator over several nodes: each node's growth is divided by all the sockets, so
    # the figures add up; a node's own, over its share (session i on node i % nodes), is k×.
    k = len(gws)
    total = sum(g.get("kib_per_socket") or 0 for g in gws)
    each = " · ".join(f'{(g.get("kib_per_socket") or 0) * k:.1f}' for g in gws)
    return f'{total:.1f} KiB/socket over {k} nodes ({each} per node), {kernel}'


print()
print("| nodes | scenario | acked/s | delivered/s | ack p50 / p99 (ms) | delivery p50 / p99 (ms) | last delivery p99 (ms) | missing | dup | errors | gateway CPU % / RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for d in rows:
    sc = d["scenario"]
    if "split_rows" in d:
        parts = d["split_rows"]
        socks = [p["result"]["sockets"] for p in parts]
        failed = "; ".join(str(p["result"]["failed"]) for p in parts if p["result"].get("failed"))
        print(f'| {d["label"]} | idle {sum(socks)} sockets ({" + ".join(map(str, socks))}, one load generator per node) '
              f'| | | | | | | | {failed} | {idle_cells(d)} |')
        continue
    r, p = d["result"], d["params"]
    name = sc
    if sc in ("group", "mixed"):
        name += f' {p["groups"]}×{p["members"]}'
    if sc in ("rate", "mixed"):
        name += f' @{p["rate"]}/s'
    if sc == "idle":
        print(f'| {d["label"]} | idle {r["sockets"]} sockets | | | | | | | | {r.get("failed") or ""} | {idle_cells(d)} |')
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
if any("split_rows" in d for d in rows):
    print()
    print("¹ Two load generators at once, each reading the whole machine's TCP memory: the larger "
          "of their readings, over all the sockets (a lower bound).")


# The raw limits each row is set against: the last of a kind before the row, else the first.
def raw_of(at, pick):
    found = [d for d in raw if pick(d)]
    before = [d for d in found if d["_at"] < at]
    return (before[-1] if before else (found[0] if found else None))


def limits(at):
    pg32 = raw_of(at, lambda d: d["scenario"] == "pgbench" and d.get("clients") == 32 and d.get("rows_per_tx") == 1)
    pg100 = raw_of(at, lambda d: d["scenario"] == "pgbench" and d.get("rows_per_tx") == 100)
    sq = raw_of(at, lambda d: d["scenario"] == "sqlite-commit")
    floor_pg = raw_of(at, lambda d: d["scenario"] == "pgbench-lone-message" and d.get("form") == "as-sent")
    r1 = raw_of(at, lambda d: d["scenario"] == "redis-publish" and d.get("pipeline") == 1)
    r16 = raw_of(at, lambda d: d["scenario"] == "redis-publish" and d.get("pipeline") == 16)
    return {
        "pg32": pg32 and float(pg32["tps"]),
        "pg100": pg100 and float(pg100["rows_per_s"]),
        "sqlite": sq and sq["p50_ms"] and 1000 / sq["p50_ms"],
        "floor_pg": floor_pg, "floor_sqlite": sq,
        "redis1": r1 and float(r1["per_s"]) or None,
        "redis16": r16 and float(r16["per_s"]) or None,
    }


ratio_rows = []
for d in rows:
    if d["scenario"] == "idle":
        continue  # no raw limit for memory in the file
    r, p, sc = d["result"], d["params"], d["scenario"]
    label = d["label"]
    backend = "postgres" if "postgres" in label else "sqlite" if "sqlite" in label else None
    multi = d.get("nodes", 1) > 1
    lim = limits(d["_at"])
    name = sc
    if sc in ("group", "mixed"):
        name += f' {p["groups"]}×{p["members"]}'
    if sc == "direct" or sc == "group":
        name += f' ×{p["window"]}'
    if sc in ("rate", "mixed"):
        name += f' @{p["rate"]}/s'
    if sc == "reconnect":
        fig = r["reconnects_per_s"]
        cells = [f'{fig:,.0f} reconnects/s²',
                 times(fig, lim["pg32"]) if backend == "postgres" else "", "", "", "", ""]
    else:
        fig = r["acked_per_s"]
        pg = backend == "postgres"
        cells = [f'{fig:,.0f} sends/s',
                 times(fig, lim["pg32"]) if pg else "",
                 times(fig, lim["pg100"]) if pg else "",
                 times(fig, lim["sqlite"]) if backend == "sqlite" else "",
                 times(fig, lim["redis1"]) if multi else "",
                 times(fig, lim["redis16"]) if multi else ""]
    floor = ""
    fl = lim["floor_pg"] if backend == "postgres" else lim["floor_sqlite"] if backend == "sqlite" else None
    dl = r.get("delivery_latency_ms")
    if sc == "rate" and fl and dl and p["rate"] == fl.get("rate"):
        floor = f'{times(dl["p50"], fl["p50_ms"])} / {times(dl["p99"], fl["p99_ms"])}'
    ratio_rows.append((label, name, cells, floor))

if ratio_rows:
    print()
    print("Each row against the raw limit it belongs to (same file):\n")
    print("| nodes | scenario | figure | ÷ pgbench commits/s, 32 clients | ÷ pgbench rows/s, 100 per transaction | "
          "÷ SQLite commits/s³ | ÷ Redis PUBLISH/s, pipeline 1⁴ | ÷ pipeline 16⁴ | delivery p50 / p99 ÷ the floor's⁵ |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, name, cells, floor in ratio_rows:
        print(f'| {label} | {name} | ' + " | ".join(cells) + f' | {floor} |')
    print()
    if any(d["scenario"] == "reconnect" for d in rows):
        print("² A reconnect reads history (no insert): its ratio to pgbench's commits only places "
              "it beside the write limit.  ")
    print("³ A bare SQLite commit (WAL, synchronous=FULL) paced at 100/s, taken as 1000 / its p50 ms: "
          "commits one after another, not a measured peak; the gateway commits sends in batches, so it "
          "can pass 1×.  \n"
          "⁴ Two-node rows only: every send crosses Redis as at least one PUBLISH (pipelined per commit "
          "batch); `mixed` also publishes its receipts and typing.  \n"
          "⁵ `rate` rows at the floor's rate: Postgres against pgbench running the gateway's statements "
          "for a lone send (as sent), SQLite against the bare commit. Idle rows have no raw limit in "
          "the file and are left out.")

waits = [d for d in rows if (d.get("result", {}).get("machine") or {}).get("runqueue_wait_percent") is not None]
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
