import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor, sleep } from "./gateway.mjs";
import { client, tappedWebSocket, untilOpen, fixtures } from "./util.mjs";
import { Backoff } from "../dist/backoff.js";

const { gateway, mk, cleanups } = fixtures();

test("backoff: full jitter within min(max, base*2^attempt), reset", () => {
  const b = new Backoff(500, 30000, () => 0.999999);
  const seen = Array.from({ length: 10 }, () => b.next());
  assert.deepEqual(seen.map((d) => Math.round(d / 10) * 10), [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
  b.reset();
  assert.equal(b.failures, 0);
  const r = new Backoff(500, 30000, () => 0);
  assert.equal(r.next(), 0);
});

test("reconnect after SIGKILL and restart on the same port and file; missed messages arrive by gap fill", async () => {
  const gw = await gateway();
  const tap = {};
  // "ws", not "auto": the tap refuses only WebSockets, and an "auto" client falls back to SSE
  // after a few refusals, which would let alice in while bob talks.
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap), transport: "ws" });
  await untilOpen(alice);
  const first = await alice.send({ to: "bob", body: "before" });
  const tid = first.thread_id;
  await gw.stop("SIGKILL");
  await waitFor(() => alice.state !== "open", { what: "alice to notice" });
  tap.refuse = true; // keep alice away while bob talks
  await gw.start();
  for (let i = 1; i <= 5; i++) await gw.rest("bob", "POST", `/threads/${tid}/messages`, { body: `missed ${i}` });
  assert.equal(alice.rec.messages.length, 1);
  tap.refuse = false;
  await untilOpen(alice);
  await waitFor(() => alice.rec.messages.length === 6, { what: "the 5 missed messages" });
  assert.deepEqual(alice.rec.messages.map((m) => m.body), ["before", "missed 1", "missed 2", "missed 3", "missed 4", "missed 5"]);
  assert.ok(alice.rec.closes.some((c) => c.code === 1006));
  // Live again.
  await gw.rest("bob", "POST", `/threads/${tid}/messages`, { body: "live" });
  await waitFor(() => alice.rec.messages.length === 7, { what: "live message" });
  assert.deepEqual(alice.rec.tokens.filter((r) => r !== "refused"), ["initial"]);
});

test("SIGTERM closes with 1001 and the client comes back", async () => {
  const gw = await gateway({ SHUTDOWN_GRACE_S: "2" });
  const a = mk(gw, "alice");
  await untilOpen(a);
  await gw.stop("SIGTERM");
  await waitFor(() => a.rec.closes.length > 0, { what: "close" });
  assert.equal(a.rec.closes[0].code, 1001);
  await gw.start();
  await untilOpen(a);
});

test("a live message after a gap fetches the missing ones first, and duplicates are dropped", async () => {
  const gw = await gateway();
  const drop = new Set([2, 3, 4]);
  const tap = { in: (f) => !(f.type === "message" && drop.has(f.message.seq)) };
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap) });
  const bob = mk(gw, "bob");
  await Promise.all([untilOpen(alice), untilOpen(bob)]);
  const m1 = await bob.send({ to: "alice", body: "1" });
  await waitFor(() => alice.rec.messages.length === 1, { what: "first" });
  for (let i = 2; i <= 5; i++) await bob.send({ threadId: m1.thread_id, body: String(i) });
  await waitFor(() => alice.rec.messages.length === 5, { what: "gap filled" });
  await sleep(200);
  assert.deepEqual(alice.rec.messages.map((m) => m.body), ["1", "2", "3", "4", "5"]);
  // history the app asks for does not produce events
  const h = await alice.history(m1.thread_id, { afterSeq: 0 });
  assert.equal(h.messages.length, 5);
  assert.equal(alice.rec.messages.length, 5);
});

test("4001: getToken('expired') then open again at once", async () => {
  const gw = await gateway();
  const a = mk(gw, "alice", { tokenFor: (reason, n) => gw.token("alice", n === 1 ? 2 : 3600) });
  await untilOpen(a);
  await waitFor(() => a.rec.closes.some((c) => c.code === 4001), { timeout: 8000, what: "4001" });
  await untilOpen(a);
  assert.deepEqual(a.rec.tokens, ["initial", "expired"]);
  assert.equal(a.state, "open");
  await a.send({ to: "bob", body: "after refresh" });
});

test("a connection refused before hello asks getToken('refused') and backs off", async () => {
  const gw = await gateway();
  const a = mk(gw, "alice", { tokenFor: (reason) => (reason === "initial" ? "not-a-jwt" : gw.token("alice")) });
  await untilOpen(a);
  assert.deepEqual(a.rec.tokens, ["initial", "refused"]);
  assert.equal(a.rec.closes[0].code, 1006);
});

test("4003 revoke stops the client: no reconnect", async () => {
  const gw = await gateway();
  const a = mk(gw, "alice");
  await untilOpen(a);
  await gw.server("POST", "/disconnect", { user_id: "alice" });
  await waitFor(() => a.state === "stopped", { what: "stopped" });
  assert.deepEqual(a.lastClose?.code, 4003);
  assert.deepEqual(a.rec.closes.map((c) => c.code), [4003]);
  await sleep(800);
  assert.deepEqual(a.rec.tokens, ["initial"]);
  assert.equal(a.state, "stopped");
  await assert.rejects(a.history("x", {}), (e) => e.code === "closed");
});

test("4009 replaced stops the older client", async () => {
  const gw = await gateway({ MAX_SESSIONS_PER_USER: "1" });
  const a1 = mk(gw, "alice");
  await untilOpen(a1);
  const a2 = mk(gw, "alice");
  await untilOpen(a2);
  await waitFor(() => a1.state === "stopped", { what: "a1 stopped" });
  assert.equal(a1.lastClose.code, 4009);
  await sleep(800);
  assert.equal(a2.state, "open");
  assert.deepEqual(a1.rec.tokens, ["initial"]);
});
