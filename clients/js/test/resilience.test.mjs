// Dead sockets, refused tokens, the SSE fallback and its way back, failed gap fills and the
// catch-up after a reconnect. The gateway is real; faults are injected on the client's own link.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor, sleep } from "./gateway.mjs";
import { client, tappedWebSocket, untilOpen, WebSocket, EventSource, fixtures } from "./util.mjs";

const { gateway, mk, cleanups } = fixtures();

test("heartbeat: a black-holed socket is noticed within heartbeat + timeout, and the client reconnects", async () => {
  const gw = await gateway({ HEARTBEAT_S: "2" });
  const tap = {};
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap), requestTimeoutMs: 1000 });
  await untilOpen(alice);
  const tid = (await alice.send({ to: "bob", body: "before" })).thread_id;
  await sleep(2500); // pings are answered meanwhile: no reconnect
  assert.deepEqual(alice.rec.closes, []);
  assert.ok(tap.sent.some((f) => f.type === "ping"), "the client pings");
  // Every incoming frame is dropped from now on; the TCP connection stays up.
  const t0 = Date.now();
  tap.in = () => false;
  await waitFor(() => alice.rec.closes.some((c) => c.reason === "heartbeat timeout"), { timeout: 6000, what: "dead socket noticed" });
  const took = Date.now() - t0;
  assert.ok(took <= 2000 + 1000 + 700, `noticed after ${took} ms`);
  await gw.rest("bob", "POST", `/threads/${tid}/messages`, { body: "while dead" });
  tap.in = undefined;
  await untilOpen(alice);
  await waitFor(() => alice.rec.messages.length === 2, { what: "caught up" });
  assert.deepEqual(alice.rec.messages.map((m) => m.body), ["before", "while dead"]);
  // No more than one ping outstanding at a time.
  const pings = tap.sent.filter((f) => f.type === "ping").length;
  assert.ok(pings >= 2 && pings < 8, `pings sent: ${pings}`);
});

test("an expired token never makes a WebSocket client fall back to SSE; 5 refusals stop it with unauthorized", async () => {
  const gw = await gateway();
  const expired = gw.token("alice", 1);
  await sleep(2100);
  let esOpened = 0;
  class CountingES extends EventSource {
    constructor(...a) {
      super(...a);
      esOpened++;
    }
  }
  const alice = mk(gw, "alice", { transport: "auto", EventSource: CountingES, tokenFor: () => expired });
  await waitFor(() => alice.state === "stopped", { timeout: 15000, what: "stopped" });
  assert.equal(esOpened, 0, "no SSE stream");
  assert.equal(alice.transport, "ws");
  assert.deepEqual(alice.rec.tokens, ["initial", "refused", "refused", "refused", "refused"]);
  const e = alice.rec.errors.find((x) => x.code === "unauthorized");
  assert.ok(e, "an unauthorized error event");
  assert.equal(alice.lastClose.code, 4001);
  await sleep(500);
  assert.equal(alice.rec.tokens.length, 5, "no more retries");
  await assert.rejects(alice.send({ to: "bob", body: "x" }), (x) => x.code === "closed" || x.code === "unauthorized");
});

test("a refused token that the app then renews keeps the client on WebSocket", async () => {
  const gw = await gateway();
  const expired = gw.token("alice", 1);
  await sleep(2100);
  const alice = mk(gw, "alice", { transport: "auto", tokenFor: (reason, n) => (n <= 2 ? expired : gw.token("alice")) });
  await untilOpen(alice);
  assert.equal(alice.transport, "ws");
  assert.deepEqual(alice.rec.tokens, ["initial", "refused", "refused"]);
});

test("auto: a client that fell back to SSE returns to WebSocket when one opens, and catches up", async () => {
  const gw = await gateway();
  let attempts = 0;
  const FAILING = 4; // 3 before the fallback, then the first trial
  class Flaky extends WebSocket {
    constructor(url, ...rest) {
      if (attempts++ < FAILING) throw new Error(`cannot connect to ${url}`);
      super(url, ...rest);
    }
  }
  const alice = mk(gw, "alice", { transport: "auto", WebSocket: Flaky, wsRetryMs: 300 });
  await untilOpen(alice);
  assert.equal(alice.transport, "sse");
  assert.equal(attempts, 3);
  const bob = mk(gw, "bob");
  await untilOpen(bob);
  const m1 = await bob.send({ to: "alice", body: "over sse" });
  await waitFor(() => alice.rec.messages.length === 1, { what: "message over sse" });
  await waitFor(() => alice.transport === "ws" && alice.state === "open", { timeout: 8000, what: "back on WebSocket" });
  assert.ok(attempts >= FAILING + 2, `WebSocket attempts: ${attempts}`); // failed trial, good trial, the connection
  await bob.send({ threadId: m1.thread_id, body: "over ws" });
  await waitFor(() => alice.rec.messages.length === 2, { what: "message over ws" });
  await alice.send({ threadId: m1.thread_id, body: "reply" });
  await sleep(300);
  assert.deepEqual(alice.rec.messages.map((m) => m.body), ["over sse", "over ws", "reply"]);
  // The constructor's error named the URL with the token: the client reports it scrubbed.
  assert.ok(alice.rec.errors.length >= 3);
  for (const e of alice.rec.errors) {
    assert.ok(!/token=ey/.test(e.message) && !/eyJ[\w-]+\.[\w-]+/.test(e.message), `unredacted: ${e.message}`);
  }
  assert.ok(alice.rec.errors.some((e) => e.message.includes("token=[redacted]")));
});

test("a failed gap fill is retried with backoff: the live message that followed the gap is not lost", async () => {
  const gw = await gateway();
  let historyRef = null;
  let droppedReplies = 0;
  const tap = {
    out: (f) => {
      if (f.type === "history" && historyRef === null) historyRef = f.ref;
    },
    in: (f) => {
      if (f.type === "message" && (f.message.seq === 2 || f.message.seq === 3)) return false;
      if (f.type === "ack" && f.ref === historyRef && droppedReplies === 0) {
        droppedReplies++;
        return false;
      }
    },
  };
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap), requestTimeoutMs: 500 });
  const bob = mk(gw, "bob");
  await Promise.all([untilOpen(alice), untilOpen(bob)]);
  const m1 = await bob.send({ to: "alice", body: "1" });
  await waitFor(() => alice.rec.messages.length === 1, { what: "first" });
  for (let i = 2; i <= 4; i++) await bob.send({ threadId: m1.thread_id, body: String(i) });
  await waitFor(() => alice.rec.messages.length === 4, { timeout: 6000, what: "gap filled by the retry" });
  assert.equal(droppedReplies, 1);
  assert.deepEqual(alice.rec.messages.map((m) => m.body), ["1", "2", "3", "4"]);
  assert.deepEqual(alice.rec.closes, [], "no reconnect needed");
  assert.ok(tap.sent.filter((f) => f.type === "history").length >= 2);
});

test("after a reconnect only threads that moved are caught up (threads listing first)", async () => {
  const gw = await gateway();
  const tap = {};
  // "ws": an "auto" client would fall back to SSE past the tap's refusals (see reconnect.test.mjs).
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap), transport: "ws" });
  await untilOpen(alice);
  const tids = [];
  for (const u of ["bob", "carol", "dave"]) tids.push((await alice.send({ to: u, body: `hi ${u}` })).thread_id);
  await gw.stop("SIGKILL");
  await waitFor(() => alice.state !== "open", { what: "down" });
  tap.refuse = true;
  await gw.start();
  await gw.rest("carol", "POST", `/threads/${tids[1]}/messages`, { body: "while away" });
  const mark = tap.sent.length;
  tap.refuse = false;
  await untilOpen(alice);
  await waitFor(() => alice.rec.messages.length === 4, { what: "caught up" });
  await sleep(300);
  const after = tap.sent.slice(mark);
  const hist = after.filter((f) => f.type === "history");
  assert.deepEqual(hist.map((f) => f.thread_id), [tids[1]], "one history request, for the thread that moved");
  assert.ok(after.findIndex((f) => f.type === "threads") < after.indexOf(hist[0]), "threads listed first");
  assert.equal(alice.rec.messages[3].body, "while away");
});
