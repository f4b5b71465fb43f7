#!/usr/bin/env python3
"""Fan-out to one big group thread, across two gateway nodes.

What it measures (each repeated --rounds times; median and max are reported):

  message       u0000 sends one `send` frame to the group: time until every other member's
                socket has the `message` frame (time to last recipient), and the `ack` time.
  member_added  the server API adds one fresh user (no socket) to the group: time until all
                connected members have the `thread` `member_added` frame, and its size.
  title         u0000 renames the group (REST PATCH /threads/{id}): time until all members
                have the `thread` `updated` frame.

For every round it also records the bytes clients sent into Redis (delta of
`total_net_input_bytes`, i.e. mostly the PUBLISHes) and the CPU time (utime+stime) both
gateways spent, read after delivery finished.

Setup, done by the script and torn down at the end even on error: a private redis-server on
a free port, a fresh Postgres database sb_fanout_<pid> on postgres://postgres@127.0.0.1:5432,
two gateway processes (n1, n2) sharing them, --members users u0000.. with one socket each
(even-numbered on n1, odd on n2), and one group thread holding all of them.

Run (needs redis-server, redis-cli, psql, a running Postgres, and `pip install websockets`):

    python3 bench/fanout.py --binary /tmp/sb-before/switchboard --members 1000 --rounds 5

A round that has not finished after 60 s is reported as timed out (with how many members got
the frame, and when delivery did finish if it did within another 120 s); the remaining rounds
of that measurement are skipped. Times are taken in one Python process reading all sockets,
so they include its own scheduling: compare runs on the same machine, not absolute figures.
"""
import argparse, asyncio, base64, hashlib, hmac, json, os, resource, secrets, shutil, signal
import socket, statistics, subprocess, sys, tempfile, time, urllib.error, urllib.request
from pathlib import Path

try:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
except ImportError:
    sys.exit("fanout.py needs websockets: pip install websockets")

REPO = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432"
ROUND_TIMEOUT_S = 60.0  # --timeout
DRAIN_AFTER_TIMEOUT_S = 120.0
CONNECT_BATCH = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")
# urllib would otherwise honour http_proxy even for 127.0.0.1.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mint(secret: str, sub: str, ttl: int = 6 * 3600) -> str:
    """An HS256 JWT with the claims src/auth.rs requires (`sub`, `exp`)."""
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps({"sub": sub, "exp": int(time.time()) + ttl}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{enc(sig)}"


def http(method: str, url: str, bearer: str, body=None, timeout=65):
    """(status, parsed JSON or None). Blocking: call it through asyncio.to_thread."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
    try:
        with HTTP.open(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (TimeoutError, urllib.error.URLError) as e:  # reported as the round's figure
        return "timeout", str(e)


def cpu_ms(pid: int) -> float:
    # Fields after "(comm)": state is field 3, utime 14, stime 15 (proc(5)).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


def sh(*cmd, check=True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


class Expect:
    """Waits until each of `users` got a text frame starting with `prefix` that contains
    `token`. serde writes the `type` tag (and then `event`) first, so a prefix check plus a
    per-round unique token identifies the frame without parsing 1000 large JSON bodies."""

    def __init__(self, users, prefix: str, token: str):
        self.pending, self.n = set(users), len(users)
        self.prefix, self.token = prefix, token
        self.t_last, self.sizes, self.done = None, [], asyncio.Event()

    def offer(self, user, raw: str, t: float):
        if user in self.pending and raw.startswith(self.prefix) and self.token in raw:
            self.pending.discard(user)
            self.t_last = t
            self.sizes.append(len(raw.encode()))
            if not self.pending:
                self.done.set()


class Bench:
    def __init__(self, args):
        self.args, self.pid = args, os.getpid()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"sb-fanout-{self.pid}-"))
        self.db = f"sb_fanout_{self.pid}"
        self.secret = secrets.token_hex(20)  # 40 bytes
        self.api_key = secrets.token_urlsafe(30)[:40]
        self.redis = self.redis_port = None
        self.db_created = False
        self.nodes = []  # (name, Popen, base URL)
        self.socks, self.readers = {}, []
        self.expects: list[Expect] = []
        self.closed = {}  # user -> close code of sockets that closed during the run
        self.stopping = False

    # ---------------------------------------------------------------- setup and teardown
    def start_redis(self):
        self.redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=open(self.tmp / "redis.log", "w"), stderr=subprocess.STDOUT)
        for _ in range(100):
            if sh("redis-cli", "-p", str(self.redis_port), "ping", check=False).strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def redis_in(self) -> int:
        out = sh("redis-cli", "-p", str(self.redis_port), "INFO", "stats")
        return int(next(l.split(":")[1] for l in out.splitlines()
                        if l.startswith("total_net_input_bytes:")))

    def psql(self, sql: str):
        sh("psql", f"{PG}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql)

    def start_node(self, name: str):
        port = free_port()
        env = dict(os.environ,
                   DATABASE_URL=f"{PG}/{self.db}", REDIS_URL=f"redis://127.0.0.1:{self.redis_port}",
                   NODE_ID=name, BIND_ADDR=f"127.0.0.1:{port}", JWT_SECRET=self.secret,
                   SERVER_API_KEY=self.api_key, MAX_GROUP_MEMBERS="5000", RUST_LOG="warn",
                   # The title changes and sends all come from u0000: keep the rate limit out.
                   RATE_PER_S="100000", RATE_BURST="100000", SHUTDOWN_GRACE_S="5")
        proc = subprocess.Popen([str(self.args.binary), "serve"], env=env, cwd=self.tmp,
                                stdout=subprocess.DEVNULL, stderr=open(self.tmp / f"{name}.log", "w"))
        base = f"http://127.0.0.1:{port}"
        self.nodes.append((name, proc, base))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            try:
                with HTTP.open(f"{base}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready after 90 s: {self.log_tail(name)}")

    def log_tail(self, name: str, n=5) -> list[str]:
        return (self.tmp / f"{name}.log").read_text(errors="replace").splitlines()[-n:]

    async def connect_all(self):
        async def one(i: int):
            user = f"u{i:04d}"
            base = self.nodes[i % 2][2].replace("http", "ws", 1)
            ws = await connect(f"{base}/ws?token={mint(self.secret, user)}", compression=None,
                               max_size=2**24, ping_interval=None, proxy=None, open_timeout=30)
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello" and hello["user_id"] == user, hello
            self.socks[user] = ws
            self.readers.append(asyncio.create_task(self.read(user, ws)))

        # Batches: a thousand simultaneous handshakes would measure the accept queue.
        for lo in range(0, self.args.members, CONNECT_BATCH):
            await asyncio.gather(*(one(i) for i in range(lo, min(lo + CONNECT_BATCH, self.args.members))))

    async def read(self, user, ws):
        # Always reading keeps the server's outbox for this socket empty (no 4008s of ours).
        try:
            async for raw in ws:
                t = time.perf_counter()
                for e in self.expects if isinstance(raw, str) else ():
                    e.offer(user, raw, t)
        except ConnectionClosed:
            pass
        if not self.stopping:
            self.closed[user] = ws.close_code

    async def close_all(self):
        self.stopping = True
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in self.socks.values()),
                                              return_exceptions=True), 30)

    def teardown(self):
        self.stopping = True
        for _, proc, _ in self.nodes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc, _ in self.nodes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} ignored SIGTERM for 15 s; killing it", file=sys.stderr)
                proc.kill()
        if self.redis:
            sh("redis-cli", "-p", str(self.redis_port), "shutdown", "nosave", check=False)
            if self.redis.poll() is None:
                time.sleep(1)
                self.redis.kill()
        if self.db_created:
            self.psql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')

    # ---------------------------------------------------------------- measuring
    async def round(self, users, prefix, token, action):
        """One round: start `action`, wait for every user's frame. Returns the record."""
        e = Expect(users, prefix, token)
        self.expects.append(e)
        pids = {name: proc.pid for name, proc, _ in self.nodes}
        redis0, cpu0 = self.redis_in(), {n: cpu_ms(p) for n, p in pids.items()}
        t0 = time.perf_counter()
        act = asyncio.create_task(action(t0))
        rec = {"timed_out": False}
        try:
            await asyncio.wait_for(e.done.wait(), ROUND_TIMEOUT_S)
            rec["ms"] = (e.t_last - t0) * 1000
        except TimeoutError:
            rec.update(timed_out=True, ms=None, received_by_timeout=e.n - len(e.pending))
            # Let delivery finish (bounded), so the next measurement starts quiet and the
            # Redis and CPU deltas cover the whole event.
            try:
                await asyncio.wait_for(e.done.wait(), DRAIN_AFTER_TIMEOUT_S)
                rec["finished_ms"] = (e.t_last - t0) * 1000
            except TimeoutError:
                rec["finished_ms"] = None
        rec.update(await asyncio.wait_for(act, 65))  # the request itself has a 65 s timeout
        await asyncio.sleep(0.5)  # the nodes' last publishes and bookkeeping after delivery
        self.expects.remove(e)
        rec.update(recipients=e.n, received=e.n - len(e.pending),
                   frame_bytes=statistics.median(e.sizes) if e.sizes else None,
                   redis_in_bytes=self.redis_in() - redis0,
                   cpu_ms={n: round(cpu_ms(p) - cpu0[n], 1) for n, p in pids.items()})
        return rec

    async def main(self):
        try:
            return await self.run()
        finally:  # close our sockets first: a SIGTERM'd node would otherwise close 500 at once
            await self.close_all()

    async def run(self):
        a, n1 = self.args, self.nodes[0][2]
        users = [f"u{i:04d}" for i in range(a.members)]
        nonce = secrets.token_hex(4)
        t = time.perf_counter()
        await self.connect_all()
        setup = {"connect_s": round(time.perf_counter() - t, 2)}

        # The group, created by the host; everyone gets `thread` `created`.
        title = f"fanout {nonce}"
        created = Expect(users, '{"type":"thread","event":"created"', title)
        self.expects.append(created)
        t = time.perf_counter()
        st, body = await asyncio.to_thread(http, "POST", f"{n1}/api/v1/server/threads", self.api_key,
                                           {"title": title, "members": users}, 120)
        if st not in (200, 201):
            raise RuntimeError(f"creating the group: {st} {body}")
        tid = body["id"]
        await asyncio.wait_for(created.done.wait(), 180)
        self.expects.remove(created)
        setup.update(create_ms=round((created.t_last - t) * 1000, 1),
                     created_frame_bytes=statistics.median(created.sizes))
        # Background: liveness refreshes and heartbeats also reach Redis and cost CPU.
        pids = [proc.pid for _, proc, _ in self.nodes]
        await asyncio.sleep(1)  # presence bookkeeping of the connects
        r0, c0 = self.redis_in(), sum(map(cpu_ms, pids))
        await asyncio.sleep(3)
        setup.update(idle_redis_in_bytes_per_s=round((self.redis_in() - r0) / 3),
                     idle_cpu_ms_per_s=round((sum(map(cpu_ms, pids)) - c0) / 3, 1))
        print(f"setup: {a.members} sockets in {setup['connect_s']} s; group {tid} announced "
              f"to all in {setup['create_ms']} ms", file=sys.stderr)

        owner, u0 = self.socks["u0000"], mint(self.secret, "u0000")

        def message(k):
            body, ref = f"fanout {nonce} r{k}", f"m{k}"
            async def act(t0):
                ack = Expect(["u0000"], f'{{"type":"ack","ref":"{ref}"', body)
                self.expects.append(ack)
                await owner.send(json.dumps({"type": "send", "ref": ref, "thread_id": tid, "body": body}))
                try:
                    await asyncio.wait_for(ack.done.wait(), ROUND_TIMEOUT_S)
                    return {"ack_ms": (ack.t_last - t0) * 1000}
                except TimeoutError:
                    return {"ack_ms": None}
                finally:
                    self.expects.remove(ack)
            return users[1:], '{"type":"message"', body, act

        def rest(method, url, bearer, body):
            async def act(t0):
                st, _ = await asyncio.to_thread(http, method, url, bearer, body)
                return {"api_ms": (time.perf_counter() - t0) * 1000, "api_status": st}
            return act

        def member_added(k):  # by the host: a fresh user, who has no socket
            new = f"new-{nonce}-{k}"
            return users, '{"type":"thread","event":"member_added"', f'"{new}"', rest(
                "POST", f"{n1}/api/v1/server/threads/{tid}/members", self.api_key, {"user_ids": [new]})

        def title_change(k):  # by u0000, a member, over REST (there is no frame for it)
            new = f"fanout {nonce} title {k}"
            return users, '{"type":"thread","event":"updated"', f'"{new}"', rest(
                "PATCH", f"{n1}/api/v1/threads/{tid}", u0, {"title": new})

        results = {}
        for name, make in [("message", message), ("member_added", member_added), ("title", title_change)]:
            rounds = results[name] = []
            for k in range(a.rounds):
                rec = await self.round(*make(k))
                rounds.append(rec)
                shown = "TIMEOUT" if rec["timed_out"] else f"{rec['ms']:.1f} ms"
                print(f"{name} round {k + 1}: {shown}, {rec['received']}/{rec['recipients']} received, "
                      f"redis +{rec['redis_in_bytes']} B, cpu {rec['cpu_ms']}", file=sys.stderr)
                if rec.get("api_status") not in (None, 200, "timeout"):
                    raise RuntimeError(f"{name}: the request answered {rec['api_status']}")
                if rec["timed_out"]:
                    break  # one round over 60 s is the figure; don't spend minutes on more
                await asyncio.sleep(0.5)
        return setup, results


def summarise(rounds):
    ok = [r["ms"] for r in rounds if not r["timed_out"]]
    med = lambda key: statistics.median(v for r in rounds if (v := r.get(key)) is not None) \
        if any(r.get(key) is not None for r in rounds) else None
    cpu = [sum(r["cpu_ms"].values()) for r in rounds]
    return {"rounds": len(rounds), "timed_out": sum(r["timed_out"] for r in rounds),
            "median_ms": statistics.median(ok) if ok else None, "max_ms": max(ok) if ok else None,
            "reply_median_ms": med("ack_ms") or med("api_ms"), "frame_bytes": med("frame_bytes"),
            "redis_in_bytes_median": med("redis_in_bytes"), "cpu_ms_median": statistics.median(cpu),
            "finished_ms_after_timeout": [r.get("finished_ms") for r in rounds if r["timed_out"]]}


def table(meta, setup, summary) -> str:
    f = lambda v, d=1: "–" if v is None else f"{v:,.{d}f}"
    out = [f"binary `{meta['binary']}` · git {meta['git_head']}{' (dirty tree)' if meta['git_dirty'] else ''}"
           f" · {meta['members']} members on 2 nodes · {meta['nproc']} CPUs, {meta['cpu_model']}"
           f" · load {' '.join(f'{x:.2f}' for x in meta['loadavg_at_start'])} at start",
           f"setup: sockets opened in {setup['connect_s']} s; group `created` reached all in "
           f"{f(setup['create_ms'])} ms ({f(setup['created_frame_bytes'], 0)} B per frame); idle: Redis in "
           f"{f(setup['idle_redis_in_bytes_per_s'], 0)} B/s, gateway CPU {setup['idle_cpu_ms_per_s']} ms/s "
           f"(each round below spans its delivery plus 0.5 s; CPU ticks are {1000 // CLK_TCK} ms)", "",
           "| measurement | rounds | time to last recipient, median (ms) | max (ms) | ack / API reply, median (ms) "
           "| frame (B) | Redis in per event (B) | gateway CPU per event, n1+n2 (ms) |",
           "|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        worst = f(s["max_ms"])
        if s["timed_out"]:
            fin = s["finished_ms_after_timeout"][0]
            worst = f"> {meta['round_timeout_s'] * 1000:,.0f} (timed out{', all had it at ' + f(fin, 0) if fin else ''})"
        out.append(f"| {name} | {s['rounds']} | {f(s['median_ms'])} | {worst} | {f(s['reply_median_ms'])} "
                   f"| {f(s['frame_bytes'], 0)} | {f(s['redis_in_bytes_median'], 0)} | {f(s['cpu_ms_median'], 0)} |")
    return "\n".join(out)


def main():
    global ROUND_TIMEOUT_S
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_bin = REPO / "target/release/switchboard"
    if not default_bin.exists():
        default_bin = REPO / "target/debug/switchboard"
    p.add_argument("--binary", type=Path, default=default_bin)
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=ROUND_TIMEOUT_S, help="seconds per round")
    p.add_argument("--commit", help="the commit the binary was built from (default: git HEAD)")
    p.add_argument("--out", type=Path,
                   default=REPO / f"bench/results/fanout-{time.strftime('%Y%m%d-%H%M%S')}.json")
    a = p.parse_args()
    ROUND_TIMEOUT_S = a.timeout
    if not a.binary.exists():
        sys.exit(f"no binary at {a.binary}")
    # Each socket is a descriptor here and in a gateway (the gateways inherit this limit).
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), "unknown")
    git = lambda *c: sh("git", "-C", str(REPO), *c).strip()
    meta = {"binary": str(a.binary), "git_head": a.commit or git("rev-parse", "--short", "HEAD"),
            "git_dirty": not a.commit and bool(git("status", "--porcelain", "--untracked-files=no")),
            "members": a.members, "rounds": a.rounds, "nproc": os.cpu_count(), "cpu_model": cpu_model,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "round_timeout_s": ROUND_TIMEOUT_S,
            "loadavg_at_start": os.getloadavg()}  # others' load here skews the wall-clock times
    b = Bench(a)
    try:
        b.start_redis()
        b.psql(f'CREATE DATABASE "{b.db}"')
        b.db_created = True
        b.start_node("n1")  # migrates first; n2 then starts on a migrated database
        b.start_node("n2")
        setup, results = asyncio.run(b.main())
    finally:
        b.teardown()
    odd = {f"closed_{u}": c for u, c in b.closed.items()}
    for name, _, _ in b.nodes:
        if log := b.log_tail(name, 10):
            odd[f"{name}_log_tail"] = log  # RUST_LOG=warn: anything here is a warning or error
    shutil.rmtree(b.tmp, ignore_errors=True)
    summary = {name: summarise(r) for name, r in results.items()}
    print(table(meta, setup, summary))
    if odd:
        print("\nodd:", json.dumps(odd, indent=1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({**meta, "setup": setup, "summary": summary, "rounds": results,
                                 "odd": odd}, indent=1))
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
