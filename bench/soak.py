#!/usr/bin/env python3
"""Soak test for the Switchboard gateway: does its RSS stay flat under steady mixed traffic?

Starts the gateway itself (fresh temp SQLite file, or a fresh Postgres database with
--database-url), connects --users WebSocket clients in group threads of 10 and, for --minutes,
sends about --rate messages per second in all (each awaiting its ack, 10% of them direct),
with typing, read, history, threads and watch_presence frames mixed in (each client also
watches its group's members when it connects, as an app showing its contacts would). A
--slow-fraction of the clients only read, one frame per 200 ms, and reconnect 1 s after the
gateway closes them (4008 when their outbox overflows; on loopback the kernel's send buffer
holds megabytes first, so the server's heartbeat usually drops them before that: 1006 here);
every ~30 s three normal clients reconnect (churn; --churn-every sets the period, 0 turns it off).
--warmup-churn-minutes M runs the churn every --warmup-churn-every s (0.2) for the first M
minutes: the allocator then sees in minutes the reconnects the default rate brings in hours.

Every --interval s a CSV line goes to --out (default bench/results/soak-<time>.csv):
elapsed_s,rss_mib,acked,errors,closes_4008,reconnects,open_sockets,heap_mib,anon_mib,allocated_mib,resident_mib,db_opened,db_pool
(errors: not rate_limited; heap_mib: RSS of the [heap] mapping; anon_mib: of anonymous ones;
allocated_mib, resident_mib: jemalloc's live bytes and resident bytes from /metrics, empty on a
build without jemalloc: allocated rising means objects accumulate, resident alone the allocator;
db_opened, db_pool: database connections opened so far and held now, so a rise in memory can be
matched to the pool growing, or to connections replaced when opened outgrows the pool).
--warmup-minutes sets where the summary's slope starts (default: 5 minutes, or a sixth of a
short run, or a minute after the churn warm-up); the summary also gives the slope by thirds.
At the end: a /metrics excerpt, an ASCII chart of RSS, a summary (RSS after warm-up vs final,
max, least-squares slope after warm-up in MiB/10 min, flat below 0.1), then SIGTERM. Exit 1 when
a send got an error other than rate_limited or no ack, or the gateway died. Ctrl-C ends the run
early the same way (summary, SIGTERM, database dropped); a second Ctrl-C stops it at once.

Needs Python 3.11 and `pip install websockets` (13+); matplotlib only for --plot. Run:
    python3 bench/soak.py --minutes 3 --binary target/debug/switchboard
    python3 bench/soak.py --database-url postgres://postgres@127.0.0.1:5432
"""
import argparse, asyncio, base64, collections, hashlib, hmac, json, os, random, re, secrets
import shutil, signal, socket, statistics, subprocess, sys, tempfile, time, types
import http.client as http_client
import urllib.error, urllib.parse, urllib.request
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

REPO = Path(__file__).resolve().parent.parent
ACK_TIMEOUT_S = 30
# The least-squares slope of RSS after warm-up below which a run counts as flat.
FLAT_MIB_PER_10MIN = 0.1
# The default per-user limit is 20/s, burst 40: stay clearly below it.
MAX_USER_RATE = 15.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# Counters shared by every client. errors: "frame:code" from error frames and missing replies;
# closes: "slow|normal:close code" for closes we did not ask for; odd: anything else to report.
S = types.SimpleNamespace(acked=0, reconnects=0, open=0, errors=collections.Counter(),
                          closes=collections.Counter(), odd=collections.Counter())


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(secret: str, sub: str, ttl: int) -> str:
    """An HS256 JWT as src/auth.rs reads it: sub and exp are required, iat is harmless."""
    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": sub, "iat": now, "exp": now + ttl}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def rss_split_mib(pid: int) -> tuple[float, float]:
    """RSS of the main heap ([heap], brk) and of anonymous mappings (other malloc arenas,
    large mmapped chunks, thread stacks): tells glibc's arenas apart from the rest."""
    heap = anon = 0
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = head[5] if len(head) > 5 else ""
            elif head[0] == "Rss:" and name in ("[heap]", ""):
                kib = int(head[1])
                if name:
                    heap += kib
                else:
                    anon += kib
    return heap / 1024, anon / 1024


def http(method, url, token=None, body=None):
    """Blocking HTTP (run it with asyncio.to_thread); returns (status, text)."""
    req = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with NO_PROXY.open(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Client:
    def __init__(self, ctx, uid, slow, group_tid, peers, partners):
        self.ctx, self.uid, self.slow = ctx, uid, slow
        self.group_tid, self.peers, self.partners = group_tid, peers, partners
        self.last_seq = {}    # thread id -> highest seq seen, for read and history
        self.pending = {}     # ref -> future of the direct reply
        self.nref = self.nsend = 0
        self.typing = False
        self.unacked = None   # a send whose socket closed before its ack: resent on reconnect
        self.churn = False    # set by the churn task: reconnect at the next step

    async def run(self):
        await asyncio.sleep(random.uniform(0, 3))  # don't open every socket in the same instant
        while not self.ctx.stop.is_set():
            try:
                await (self.slow_session() if self.slow else self.session())
            except Exception as e:  # refused, timed out, HTTP 401...: count it and keep soaking
                S.odd[f"session failed: {type(e).__name__}: {str(e)[:60]}"] += 1
            if self.ctx.stop.is_set():
                break
            await asyncio.sleep(1)
            S.reconnects += 1

    def connect(self, **kw):
        url = f"ws://{self.ctx.addr}/ws?token={self.ctx.tokens[self.uid]}"
        # No client keepalive: the server pings us, and a paused slow reader could not see pongs.
        return connect(url, ping_interval=None, proxy=None, open_timeout=15, **kw)

    async def slow_session(self):
        # A small receive buffer and frame queue, so the backlog stays on the gateway's side.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, self.ctx.sockaddr)
        async with self.connect(sock=sock, max_queue=4) as ws:
            S.open += 1
            try:
                while not self.ctx.stop.is_set():
                    await ws.recv()
                    await asyncio.sleep(0.2)
            except ConnectionClosed:
                S.closes[f"slow:{ws.close_code}"] += 1
            finally:
                S.open -= 1

    async def session(self):
        async with self.connect() as ws:
            S.open += 1
            reader = asyncio.create_task(self.read(ws))
            try:
                await self.act(ws)
            except ConnectionClosed:
                if not self.ctx.stop.is_set():
                    S.closes[f"normal:{ws.close_code}"] += 1
            finally:
                S.open -= 1
                reader.cancel()
                self.pending.clear()

    async def read(self, ws):
        """Reads everything promptly: replies go to their waiter by ref, seqs are noted."""
        try:
            async for raw in ws:
                f = json.loads(raw)
                t = f.get("type")
                if t in ("ack", "error", "pong") and f.get("ref") in self.pending:
                    fut = self.pending.pop(f["ref"])
                    if not fut.done():
                        fut.set_result(f)
                elif t == "error":
                    S.errors[f"unsolicited:{f.get('code')}"] += 1
                elif t == "message":
                    m = f["message"]
                    self.last_seq[m["thread_id"]] = max(self.last_seq.get(m["thread_id"], 0), m["seq"])
        except ConnectionClosed:
            pass
        finally:  # wake the waiter with the close, so act() ends the session
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionClosed(ws.protocol.close_rcvd, ws.protocol.close_sent))

    async def request(self, ws, frame):
        """Sends a frame with a fresh ref; returns its direct reply, or None after a timeout."""
        self.nref += 1
        frame["ref"] = ref = str(self.nref)
        fut = self.pending[ref] = asyncio.get_running_loop().create_future()
        await ws.send(json.dumps(frame))
        try:
            return await asyncio.wait_for(fut, ACK_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.pending.pop(ref, None)
            S.errors[f"{frame['type']}:no reply in {ACK_TIMEOUT_S}s"] += 1
            return None

    async def send(self, ws, frame):
        self.unacked = frame
        r = await self.request(ws, frame)  # a ConnectionClosed here leaves self.unacked set
        self.unacked = None
        if r and r["type"] == "ack":
            S.acked += 1
            m = r["message"]
            self.last_seq[m["thread_id"]] = max(self.last_seq.get(m["thread_id"], 0), m["seq"])
        elif r:
            S.errors[f"send:{r.get('code')}"] += 1
            if r.get("code") == "rate_limited":
                await asyncio.sleep(r.get("retry_after_ms", 1000) / 1000)

    async def act(self, ws):
        if self.unacked:  # the same client_id: the gateway answers with the stored message
            S.odd["sends resent after their socket closed"] += 1
            await self.send(ws, self.unacked)
        # As an app shows its contact list: watch the group's members at connect. The random
        # watches below then repeat known ones, so the gateway's watch sets reach their steady
        # size with the session, not over the half hour that 3 random peers every ~95 s take.
        r = await self.request(ws, {"type": "watch_presence", "user_ids": self.peers})
        if r is not None and r["type"] == "error":
            S.errors[f"watch_presence:{r.get('code')}"] += 1
        period = self.ctx.period
        next_t = time.monotonic() + random.uniform(0, period)
        while not self.ctx.stop.is_set():
            if self.churn:
                self.churn = False
                return await ws.close()
            # An absolute schedule, so ack latency does not lower the offered rate.
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))
            next_t += random.uniform(0.5, 1.5) * period
            if self.ctx.stop.is_set():
                return
            self.nsend += 1
            body = f"{self.uid} #{self.nsend} " + "lorem ipsum 🚲 " * random.randint(1, 12)
            frame = {"type": "send", "body": body, "client_id": f"{self.uid}-{self.nsend}"}
            if random.random() < 0.1:
                frame["to"] = random.choice(self.partners)
            else:
                frame["thread_id"] = self.group_tid
            await self.send(ws, frame)
            await self.extra(ws)

    async def extra(self, ws):
        """Half the time, one other frame; its errors are reported but do not fail the run."""
        x = random.random()
        tid, seq = random.choice(list(self.last_seq.items())) if self.last_seq else (None, 0)
        if x < 0.3 and tid:
            frame = {"type": "read", "thread_id": tid, "seq": seq}
        elif x < 0.4:
            self.typing = not self.typing
            frame = {"type": "typing", "thread_id": self.group_tid, "is_typing": self.typing}
        elif x < 0.45 and tid:
            frame = {"type": "history", "thread_id": tid, "after_seq": max(0, seq - 20), "limit": 20}
        elif x < 0.48:
            frame = {"type": "threads", "limit": 20}
        elif x < 0.5:
            frame = {"type": "watch_presence", "user_ids": random.sample(self.peers, min(3, len(self.peers)))}
        else:
            return
        r = await self.request(ws, frame)
        if r is not None and r["type"] == "error":
            S.errors[f"{frame['type']}:{r.get('code')}"] += 1


async def churn(ctx, normals, every, warm_every, warm_s):
    """Every ~`every` s three normal clients reconnect; in the first `warm_s` s, every ~`warm_every`."""
    while True:
        period = warm_every if time.monotonic() - ctx.t0 < warm_s else every
        await asyncio.sleep(random.uniform(period * 2 / 3, period * 4 / 3))
        for c in random.sample(normals, min(3, len(normals))):
            c.churn = True


def allocator_mib(ctx):
    """(allocated MiB, resident MiB, connections opened, pool size) from the gateway's
    /metrics; "" for each one it does not show."""
    try:
        st, txt = http("GET", f"http://{ctx.addr}/metrics", ctx.metrics_token)
    except (OSError, http_client.HTTPException):
        return "", "", "", ""
    ok = st == 200
    found = dict(re.findall(r"^switchboard_memory_(allocated|resident)_bytes (\d+)$", txt, re.M)) if ok else {}
    db = dict(re.findall(r"^switchboard_(db_connections_opened_total|db_pool_connections) (\d+)$", txt, re.M)) if ok else {}
    return (*(round(int(found[k]) / 2**20, 2) if k in found else "" for k in ("allocated", "resident")),
            *(int(db[k]) if k in db else "" for k in ("db_connections_opened_total", "db_pool_connections")))


def sample(ctx, proc, out, samples, alloc):
    errs = sum(v for k, v in S.errors.items() if not k.endswith(":rate_limited"))
    heap, anon = rss_split_mib(proc.pid)
    row = (round(time.monotonic() - ctx.t0), round(rss_mib(proc.pid), 1), S.acked, errs,
           S.closes["slow:4008"] + S.closes["normal:4008"], S.reconnects, S.open,
           round(heap, 2), round(anon, 2), *alloc)
    samples.append(row)
    print(*row, sep=",", file=out, flush=True)
    print(f"  t={row[0]:>5}s rss={row[1]:7.1f} MiB acked={row[2]} errors={errs} "
          f"4008={row[4]} reconnects={row[5]} open={row[6]} heap={row[7]} anon={row[8]} "
          f"allocated={row[9]} resident={row[10]} db_opened={row[11]} db_pool={row[12]}", flush=True)


async def sampler(ctx, proc, out, samples):
    while proc.poll() is None:
        await asyncio.sleep(ctx.interval - (time.monotonic() - ctx.t0) % ctx.interval)
        if proc.poll() is None:
            alloc = await asyncio.to_thread(allocator_mib, ctx)
            # The scrape can take seconds: the gateway may have died meanwhile.
            if proc.poll() is None:
                sample(ctx, proc, out, samples, alloc)
    ctx.died = True
    ctx.stop.set()


async def traffic(ctx, args, proc, out):
    # One group thread per 10 users, created over REST by its first member.
    users = [f"soak-{i}" for i in range(args.users)]
    n_slow = round(args.users * args.slow_fraction)
    slow = {users[i * args.users // n_slow] for i in range(n_slow)} if n_slow else set()
    clients = []
    for g in range(0, args.users, 10):
        members = users[g:g + 10]
        st, txt = await asyncio.to_thread(http, "POST", f"http://{ctx.addr}/api/v1/threads", ctx.tokens[members[0]],
                                          {"kind": "group", "title": f"soak {g // 10}", "members": members[1:]})
        if st != 201:
            sys.exit(f"creating a group thread: HTTP {st} {txt}")
        tid = json.loads(txt)["id"]
        for i, u in enumerate(members):
            # Direct partners: three fixed neighbours, so direct threads do not grow without bound.
            partners = [users[(g + i + k) % args.users] for k in (1, 11, 37)]
            clients.append(Client(ctx, u, u in slow, tid, [m for m in members if m != u], partners))
    normals = [c for c in clients if not c.slow]
    ctx.period = max(len(normals) / args.rate, 1 / MAX_USER_RATE)
    print(f"{len(clients)} clients ({len(slow)} slow) in {(len(clients) + 9) // 10} groups; each normal "
          f"client sends every {ctx.period:.2f}s on average (~{len(normals) / ctx.period:.0f}/s in all)")
    samples, ctx.t0 = [], time.monotonic()
    tasks = [asyncio.create_task(c.run()) for c in clients]
    bg = [asyncio.create_task(sampler(ctx, proc, out, samples))]
    if args.churn_every > 0:
        warm_s = args.warmup_churn_minutes * 60
        bg.append(asyncio.create_task(churn(ctx, normals, args.churn_every, args.warmup_churn_every, warm_s)))
    loop = asyncio.get_running_loop()

    def interrupted():
        print("\ninterrupted: ending the run early (Ctrl-C again to stop at once)", flush=True)
        loop.remove_signal_handler(signal.SIGINT)
        ctx.stop.set()
    loop.add_signal_handler(signal.SIGINT, interrupted)
    try:  # ctx.stop is set before the time is up when the gateway died or on Ctrl-C
        await asyncio.wait_for(ctx.stop.wait(), args.minutes * 60)
    except asyncio.TimeoutError:
        pass
    for t in bg:
        t.cancel()
    if not ctx.died:  # the last sample and the scrape while every socket is still open
        if not samples or time.monotonic() - ctx.t0 - samples[-1][0] >= 1:
            alloc = await asyncio.to_thread(allocator_mib, ctx)
            if proc.poll() is None:
                sample(ctx, proc, out, samples, alloc)
        st, txt = await asyncio.to_thread(http, "GET", f"http://{ctx.addr}/metrics", ctx.metrics_token)
        print(f"\n/metrics (HTTP {st}):")
        fams = ("connections", "messages_stored_total", "events_delivered_total", "events_dropped_total",
                "rate_limited_total", "send_ack_seconds_sum", "send_ack_seconds_count")
        for line in sorted(txt.splitlines()):
            if line.startswith(tuple(f"switchboard_{f}" for f in fams)):
                print("  " + line)
    ctx.stop.set()
    # A slow reader may be blocked in recv(): give everyone a few seconds, then cancel.
    _, stuck = await asyncio.wait(tasks, timeout=10)
    for t in stuck:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples


def ascii_chart(samples, width=60, height=12):
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    lo, span = min(ys), (max(ys) - min(ys)) or 1.0
    cols = [None] * width
    for x, y in zip(xs, ys):  # the last sample that falls into each column
        cols[min(width - 1, int(x / (xs[-1] or 1) * (width - 1)))] = y
    print(f"RSS (MiB) over {xs[-1] / 60:.1f} min")
    for r in range(height - 1, -1, -1):
        label = f"{lo + span * r / (height - 1):8.1f} |" if r in (0, height - 1) else "         |"
        print(label + "".join("*" if c is not None and round((c - lo) / span * (height - 1)) == r
                              else " " for c in cols))
    print("         +" + "-" * width)
    print(f"          0{xs[-1]:>{width - 1}}s")


def slope_per_10min(xs, ys):
    """Least-squares slope of ys over xs (seconds), in units per 10 minutes."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs) * 600


def summarize(samples, duration, warm_churn_s, warm_s=None):
    # After a churn warm-up, a minute more for the reconnects it started to settle.
    if warm_s is None:
        warm_s = warm_churn_s + 60 if warm_churn_s else min(300, duration / 6)
    warm = warm_s
    post = [s for s in samples if s[0] >= warm] or samples[-1:]
    xs, ys = [s[0] for s in post], [s[1] for s in post]
    slope = slope_per_10min(xs, ys)
    med, final = statistics.median(ys), samples[-1][1]
    # Flat: under 0.1 MiB per 10 minutes (0.6 MiB an hour, 2.5% of this gateway's RSS), and the
    # end within 2% of the median. A looser bar called runs that were still rising flat.
    flat = slope < FLAT_MIB_PER_10MIN and abs(final - med) <= 0.02 * med
    print(f"RSS at the end of warm-up ({warm:.0f}s): {post[0][1]:.1f} MiB, final {final:.1f} MiB, "
          f"max {max(s[1] for s in samples):.1f} MiB, median after warm-up {med:.1f} MiB")
    print(f"slope after warm-up: {slope:+.2f} MiB/10 min -> RSS {'flat' if flat else 'NOT flat'}")
    print(f"  of which [heap] {slope_per_10min(xs, [s[7] for s in post]):+.2f}, "
          f"anonymous mappings {slope_per_10min(xs, [s[8] for s in post]):+.2f} MiB/10 min")
    known = [s for s in post if s[9] != "" and s[10] != ""]  # a scrape may have failed
    if len(known) >= 2:
        kx = [s[0] for s in known]
        print(f"  jemalloc: allocated {known[0][9]} -> {known[-1][9]} MiB "
              f"({slope_per_10min(kx, [s[9] for s in known]):+.2f}/10 min), resident {known[0][10]} -> "
              f"{known[-1][10]} MiB ({slope_per_10min(kx, [s[10] for s in known]):+.2f}/10 min)")
    db = [s for s in post if s[11] != "" and s[12] != ""]
    if db:
        print(f"  database connections: opened {db[0][11]} -> {db[-1][11]}, pool {db[0][12]} -> {db[-1][12]}")
    # By thirds after warm-up: a bounded cache filling slows down, a leak does not.
    if len(post) >= 9:
        k = len(post) // 3
        parts = [post[:k], post[k:2 * k], post[2 * k:]]
        def thirds(col):
            return ", ".join(f"{slope_per_10min([s[0] for s in p], [s[col] for s in p]):+.2f}" for p in parts)
        print(f"  by thirds after warm-up, per 10 min: RSS {thirds(1)}"
              + (f"; allocated {thirds(9)}" if len(known) == len(post) else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", help="default target/release/switchboard, else target/debug/switchboard")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--rate", type=float, default=100, help="sends per second, all clients together")
    ap.add_argument("--slow-fraction", type=float, default=0.05)
    ap.add_argument("--churn-every", type=float, default=30,
                    help="mean seconds between reconnects of three normal clients; 0: none")
    ap.add_argument("--warmup-churn-minutes", type=float, default=0,
                    help="reconnect every --warmup-churn-every s for this long first; the summary "
                         "measures from a minute after it")
    ap.add_argument("--warmup-minutes", type=float,
                    help="where the summary's slope starts (default 5, or a sixth of a short run)")
    ap.add_argument("--warmup-churn-every", type=float, default=0.2)
    ap.add_argument("--interval", type=float, default=10, help="seconds between samples")
    ap.add_argument("--out", help="CSV path (default bench/results/soak-<timestamp>.csv)")
    ap.add_argument("--database-url", help="postgres://USER@HOST:PORT: a fresh sb_soak_<pid> is made there")
    ap.add_argument("--plot", help="also write a PNG chart here (needs matplotlib)")
    ap.add_argument("--log", default="warn", help="the gateway's RUST_LOG")
    args = ap.parse_args()

    binary = Path(args.binary) if args.binary else REPO / "target/release/switchboard"
    if not args.binary and not binary.exists():
        binary = REPO / "target/debug/switchboard"
    if not binary.exists():
        sys.exit(f"no gateway binary at {binary}")
    out_path = Path(args.out or REPO / f"bench/results/soak-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="sb-soak-"))

    # A fresh database per run, so earlier runs' rows do not skew memory or timings.
    db_url, psql = f"sqlite://{tmp}/soak.db", None
    if args.database_url:
        u = urllib.parse.urlsplit(args.database_url)
        dbname = f"sb_soak_{os.getpid()}"
        psql = ["psql", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432),
                "-U", u.username or "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc"]
        if u.password:
            os.environ["PGPASSWORD"] = urllib.parse.unquote(u.password)
        subprocess.run(psql + [f"CREATE DATABASE {dbname}"], check=True)
        db_url = urllib.parse.urlunsplit(u._replace(path=f"/{dbname}"))

    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = types.SimpleNamespace(addr=f"127.0.0.1:{port}", sockaddr=("127.0.0.1", port), died=False,
                                interval=args.interval, metrics_token=secrets.token_hex(16))
    secret = secrets.token_urlsafe(30)  # 40 characters
    ttl = int(args.minutes * 60) + 3600  # outlive the run: an expiry closes sockets with 4001
    ctx.tokens = {f"soak-{i}": mint(secret, f"soak-{i}", ttl) for i in range(args.users)}
    env = dict(os.environ, DATABASE_URL=db_url, JWT_SECRET=secret, BIND_ADDR=ctx.addr,
               RUST_LOG=args.log, METRICS_TOKEN=ctx.metrics_token)
    log_path = tmp / "gateway.log"
    # cwd is the temp dir, so a .env in the caller's directory is not read.
    # Its own session: a Ctrl-C at the terminal reaches this script, which ends the run and
    # stops the gateway itself, and not the gateway before the last scrape.
    proc = subprocess.Popen([str(binary.resolve()), "serve"], env=env, cwd=tmp,
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    print(f"gateway {binary} pid {proc.pid} on {ctx.addr}, {db_url}\nCSV: {out_path}")
    samples = []
    try:
        deadline = time.monotonic() + 60  # migrations run before it listens
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"gateway not up (status {proc.poll()}):\n{log_path.read_text()[-2000:]}")
            try:
                if http("GET", f"http://{ctx.addr}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        with open(out_path, "w") as out:
            out.write("elapsed_s,rss_mib,acked,errors,closes_4008,reconnects,open_sockets,heap_mib,anon_mib,allocated_mib,resident_mib,db_opened,db_pool\n")

            async def run():
                ctx.stop = asyncio.Event()
                return await traffic(ctx, args, proc, out)
            samples = asyncio.run(run())
    finally:
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                S.odd["gateway still running 20 s after SIGTERM: killed"] += 1
        if psql:
            subprocess.run(psql + [f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"])

    print()
    if samples:
        ascii_chart(samples)
        summarize(samples, args.minutes * 60, args.warmup_churn_minutes * 60,
                  args.warmup_minutes * 60 if args.warmup_minutes is not None else None)
    send_errs = {k: v for k, v in S.errors.items() if k.startswith("send:") and not k.endswith(":rate_limited")}
    print(f"acked sends: {S.acked}; errors: {dict(S.errors) or 'none'}")
    print(f"closes we did not ask for (client kind:code): {dict(S.closes) or 'none'}; reconnects: {S.reconnects}")
    if n_slow := sum(v for k, v in S.closes.items() if k.startswith("slow:")):
        if not S.closes["slow:4008"]:
            print(f"  note: {n_slow} slow-reader close(s), none with 4008; a 1006 is usually the heartbeat "
                  "drop (the ping sits behind the backlog in the kernel buffers, so no pong)")
    for k, v in S.odd.items():
        print(f"odd: {k}: {v}")
    print(f"gateway: {'DIED during the run' if not alive else f'exit status {proc.returncode} after SIGTERM'}")
    lines = log_path.read_text(errors="replace").splitlines()
    warned = [l for l in lines if " WARN " in l or " ERROR " in l]
    print(f"gateway log: {len(lines)} line(s), {len(warned)} at WARN or ERROR" + (", the last:" if warned else ""))
    for l in warned[-8:]:
        print("  " + l[:200])
    if args.plot and samples:
        try:
            import matplotlib.pyplot as plt  # optional
            plt.plot([s[0] / 60 for s in samples], [s[1] for s in samples])
            if args.warmup_churn_minutes:
                plt.axvspan(0, args.warmup_churn_minutes, alpha=0.15, label="fast reconnects")
                plt.legend()
            plt.xlabel("minutes"), plt.ylabel("RSS (MiB)"), plt.savefig(args.plot)
            print(f"plot: {args.plot}")
        except ImportError:
            print("--plot: matplotlib is not installed; skipped")
    failed = bool(send_errs) or not alive
    if failed:
        print(f"FAIL: {'send errors ' + str(send_errs) if send_errs else ''}{'' if alive else ' gateway died'}")
        print(f"kept {tmp} (database, gateway.log)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
