import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor } from "./gateway.mjs";
import { client, tappedWebSocket, untilOpen } from "./util.mjs";

let gw;
const clients = [];
before(async () => (gw = await startGateway()));
after(async () => {
  clients.forEach((c) => c.close());
  await gw?.cleanup();
});
const mk = (...a) => {
  const c = client(...a);
  clients.push(c);
  return c;
};

test("requests are matched to replies by ref, also when pipelined", async () => {
  const alice = mk(gw, "alice");
  const bob = mk(gw, "bob");
  await Promise.all([untilOpen(alice), untilOpen(bob)]);
  assert.equal(alice.userId, "alice");
  const first = await alice.send({ to: "bob", body: "hi bob 🚲" });
  assert.equal(first.seq, 1);
  assert.equal(first.sender_id, "alice");
  assert.equal(first.body, "hi bob 🚲");
  const tid = first.thread_id;
  // Many requests in flight at once; each promise gets its own reply.
  const [sends, hist, list, read, pres] = await Promise.all([
    Promise.all([1, 2, 3, 4, 5].map((i) => alice.send({ threadId: tid, body: `m${i}` }))),
    alice.history(tid, { afterSeq: 0, limit: 1 }), // seq 1 exists already, not necessarily more
    alice.threads({ limit: 10 }),
    alice.read(tid, 1),
    alice.watchPresence(["bob"]),
  ]);
  assert.deepEqual(sends.map((m) => m.body), ["m1", "m2", "m3", "m4", "m5"]);
  assert.deepEqual(sends.map((m) => m.seq), [2, 3, 4, 5, 6]);
  assert.equal(hist.messages.length, 1);
  assert.equal(hist.messages[0].seq, 1);
  const later = await alice.history(tid, { afterSeq: 2, limit: 2 });
  assert.deepEqual([later.messages.map((m) => m.seq), later.hasMore], [[3, 4], true]);
  assert.equal(list.threads[0].id, tid);
  assert.equal(read, undefined);
  assert.deepEqual(pres.map((p) => [p.user_id, p.online]), [["bob", true]]);
  // The refs on the wire were all different.
  // Own acked sends are events too, once each and in order; bob sees the same.
  await waitFor(() => bob.rec.messages.length === 6, { what: "bob's 6 messages" });
  assert.deepEqual(alice.rec.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(bob.rec.messages.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
  // REST through the client's token.
  const unread = await bob.rest("GET", "/unread");
  assert.equal(unread.total, 6);
  await assert.rejects(alice.rest("GET", "/threads/nope"), (e) => e.code === "not_found" && e.status === 404);
  // A contract error rejects with its code.
  await assert.rejects(alice.send({ threadId: "00000000-0000-7000-8000-000000000000", body: "x" }), (e) => e.code === "not_found");
  assert.deepEqual(await alice.pendingSends(), []);
  await assert.rejects(alice.send({ threadId: tid, body: "x".repeat(8001) }), (e) => e.code === "too_large");
});

test("a request with no reply rejects with timeout; refs are unique", async () => {
  const tap = { out: (f) => f.type !== "history" }; // the history frame never leaves
  const carol = mk(gw, "carol", { WebSocket: tappedWebSocket(tap), requestTimeoutMs: 300 });
  await untilOpen(carol);
  const m = await carol.send({ to: "dave", body: "x" });
  const t0 = Date.now();
  await assert.rejects(carol.history(m.thread_id, {}), (e) => e.code === "timeout");
  assert.ok(Date.now() - t0 >= 280);
  // Still usable afterwards.
  assert.equal((await carol.threads()).threads.length, 1);
  const refs = tap.sent.map((f) => f.ref);
  assert.equal(new Set(refs).size, refs.length);
});

test("pending requests are rejected when the socket closes", async () => {
  const tap = { out: (f) => f.type !== "threads" };
  const erin = mk(gw, "erin", { WebSocket: tappedWebSocket(tap), requestTimeoutMs: 5000 });
  await untilOpen(erin);
  // Watched before the close is asked for: the close can reach the client before the
  // server API's answer does, and a rejection nobody watches yet fails the run.
  const rejected = assert.rejects(erin.threads(), (e) => e.code === "unavailable");
  await gw.server("POST", "/disconnect", { user_id: "erin" });
  await rejected;
});
