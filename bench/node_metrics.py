#!/usr/bin/env python3
"""What the gateway's own counters say about one benchmark row: scrape each node's /metrics
before and after the row, and print one JSON line with the difference.

    python3 bench/node_metrics.py snapshot URL[,URL...] > before.json
    ... run the row ...
    python3 bench/node_metrics.py diff before.json URL[,URL...] --label L

Per node: messages stored, commit batches and the mean batch, and for the three latency
histograms (`db_query_seconds`: one store call, a batch's transaction included;
`send_ack_seconds`: from a send read off the socket to its ack queued;
`relay_publish_seconds`: one Redis publish pipeline, on two nodes) the mean (exact, from
the sum) and p50/p99 interpolated inside the buckets, as Prometheus' histogram_quantile does
(so only as fine as the buckets: 0.5, 1, 2.5, 5, 10, 25 ms ...). This splits a row's send ->
receive latency into the commit and the rest.
"""
import json, re, sys, urllib.request

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
HISTOGRAMS = ("db_query_seconds", "send_ack_seconds", "relay_publish_seconds")
COUNTERS = ("messages_stored_total", "commit_batches_total", "events_delivered_total",
            "relay_published_total", "relay_received_total")


def scrape(url):
    with NO_PROXY.open(url.rstrip("/") + "/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for name in COUNTERS:
        m = re.search(rf"^switchboard_{name} (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else 0.0
    for name in HISTOGRAMS:
        buckets = [(float("inf") if le == "+Inf" else float(le), float(v)) for le, v in
                   re.findall(rf'^switchboard_{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M)]
        total = re.search(rf"^switchboard_{name}_sum (\S+)$", text, re.M)
        out[name] = {"buckets": buckets, "sum": float(total.group(1)) if total else 0.0}
    return out


def quantile(q, buckets):
    """histogram_quantile over cumulative (bound, count) pairs, in ms; None without samples."""
    n = buckets[-1][1] if buckets else 0
    if n <= 0:
        return None
    rank, lo, below = q * n, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return round(lo * 1000, 3)  # past the last bound: its value is all we know
            share = (rank - below) / (count - below) if count > below else 1.0
            return round((lo + (bound - lo) * share) * 1000, 3)
        lo, below = bound, count
    return None


def diff(before, after):
    row = {k: after[k] - before[k] for k in COUNTERS}
    row["mean_batch"] = (round(row["messages_stored_total"] / row["commit_batches_total"], 1)
                         if row["commit_batches_total"] else None)
    for name in HISTOGRAMS:
        b = dict(before[name]["buckets"])
        buckets = [(bound, count - b.get(bound, 0.0)) for bound, count in after[name]["buckets"]]
        n = buckets[-1][1] if buckets else 0
        total = after[name]["sum"] - before[name]["sum"]
        row[name.removesuffix("_seconds") + "_ms"] = {
            "count": int(n),
            "mean": round(total / n * 1000, 3) if n else None,
            "p50": quantile(0.5, buckets),
            "p99": quantile(0.99, buckets),
        }
    return row


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "snapshot":
        print(json.dumps({u: scrape(u) for u in sys.argv[2].split(",")}))
    elif len(sys.argv) >= 4 and sys.argv[1] == "diff":
        label = sys.argv[sys.argv.index("--label") + 1] if "--label" in sys.argv else "node-metrics"
        with open(sys.argv[2]) as f:
            before = json.load(f)
        nodes = [dict(url=u, **diff(before[u], scrape(u))) for u in sys.argv[3].split(",")]
        print(json.dumps({"label": label, "scenario": "node-metrics", "nodes": nodes}))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
