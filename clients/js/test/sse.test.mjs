import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor, sleep } from "./gateway.mjs";
import { client, tappedWebSocket, untilOpen, fixtures } from "./util.mjs";

const { gateway, mk, cleanups } = fixtures();

test("SSE: events in, actions over REST, own sends once, 4009 stops", async () => {
  const gw = await gateway({ MAX_SESSIONS_PER_USER: "1" });
  const alice = mk(gw, "alice", { transport: "sse" });
  const bob = mk(gw, "bob");
  await Promise.all([untilOpen(alice), untilOpen(bob)]);
  assert.equal(alice.userId, "alice");
  const m1 = await bob.send({ to: "alice", body: "hello over sse" });
  await waitFor(() => alice.rec.messages.length === 1, { what: "message event" });
  assert.equal(alice.rec.messages[0].id, m1.id);
  assert.equal(alice.rec.threads[0]?.event, "created");
  // Send by `to` (POST /threads first) and by thread id.
  const a1 = await alice.send({ to: "bob", body: "reply 1" });
  assert.equal(a1.thread_id, m1.thread_id);
  const a2 = await alice.send({ threadId: m1.thread_id, body: "reply 2", clientId: "sse-c2" });
  const again = await alice.send({ threadId: m1.thread_id, body: "reply 2", clientId: "sse-c2" });
  assert.equal(again.id, a2.id);
  await waitFor(() => bob.rec.messages.length === 3, { what: "bob gets replies" });
  await sleep(300);
  // The stream echoes REST sends; the app still sees each message once.
  assert.deepEqual(alice.rec.messages.map((m) => m.seq), [1, 2, 3]);
  const h = await alice.history(m1.thread_id, { afterSeq: 1 });
  assert.deepEqual(h.messages.map((m) => m.body), ["reply 1", "reply 2"]);
  const t = await alice.threads();
  assert.equal(t.threads[0].id, m1.thread_id);
  await alice.read(m1.thread_id, 3);
  await alice.delivered(m1.thread_id, 3);
  alice.typing(m1.thread_id, true);
  await waitFor(() => bob.rec.typing.length === 1, { what: "typing over REST" });
  const pres = await alice.watchPresence(["bob"]);
  assert.deepEqual(pres.map((p) => p.online), [true]);
  // A gap over SSE is filled by REST history.
  // (bob sends while alice's stream is replaced below.)
  const alice2 = mk(gw, "alice"); // a WebSocket session of alice: alice's stream is the oldest
  await waitFor(() => alice.state === "stopped", { what: "sse stopped" });
  assert.equal(alice.lastClose.code, 4009);
  assert.deepEqual(alice.rec.closes.map((c) => c.code), [4009]);
  await sleep(500);
  assert.equal(alice.state, "stopped");
  assert.deepEqual(alice.rec.tokens, ["initial"]);
  alice2.close();
});

test("SSE reconnect after a restart fills the gap over REST", async () => {
  const gw = await gateway();
  const alice = mk(gw, "alice", { transport: "sse" });
  await untilOpen(alice);
  const tid = (await alice.send({ to: "bob", body: "0" })).thread_id;
  await gw.stop("SIGKILL");
  await waitFor(() => alice.state !== "open", { what: "down" });
  await gw.start();
  for (let i = 1; i <= 3; i++) await gw.rest("bob", "POST", `/threads/${tid}/messages`, { body: String(i) });
  await untilOpen(alice);
  await waitFor(() => alice.rec.messages.length === 4, { what: "caught up" });
  await sleep(300);
  assert.deepEqual(alice.rec.messages.map((m) => m.body), ["0", "1", "2", "3"]);
});

test("auto: WebSockets that never open fall back to SSE when /healthz answers", async () => {
  const gw = await gateway();
  const tap = { refuse: true };
  const alice = mk(gw, "alice", { transport: "auto", WebSocket: tappedWebSocket(tap) });
  await untilOpen(alice);
  assert.equal(tap.opened, 3);
  const bob = mk(gw, "bob");
  await untilOpen(bob);
  await bob.send({ to: "alice", body: "via sse" });
  await waitFor(() => alice.rec.messages.length === 1, { what: "message over sse" });
});
