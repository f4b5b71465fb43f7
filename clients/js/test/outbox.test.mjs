import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor, sleep } from "./gateway.mjs";
import { client, tappedWebSocket, untilOpen, fixtures } from "./util.mjs";

const { gateway, mk, cleanups } = fixtures();
const withClientId = (msgs, id) => msgs.filter((m) => m.client_id === id);

test("a send made while the gateway is down goes out after the restart, stored once", async () => {
  const gw = await gateway();
  const alice = mk(gw, "alice");
  await untilOpen(alice);
  const tid = (await alice.send({ to: "bob", body: "first" })).thread_id;
  await gw.stop("SIGKILL");
  await waitFor(() => alice.state !== "open", { what: "disconnect" });
  const p = alice.send({ threadId: tid, body: "while down", clientId: "cid-down-1" });
  const p2 = alice.send({ threadId: tid, body: "while down 2" });
  await sleep(300);
  const pending = await alice.pendingSends();
  assert.deepEqual(pending.map((e) => e.body), ["while down", "while down 2"]);
  await gw.start();
  const [m, m2] = await Promise.all([p, p2]);
  assert.equal(m.client_id, "cid-down-1");
  assert.deepEqual([m.seq, m2.seq], [2, 3]);
  const h = await gw.rest("bob", "GET", `/threads/${tid}/messages?after_seq=0`);
  assert.equal(withClientId(h.messages, "cid-down-1").length, 1);
  assert.equal(h.messages.length, 3);
  assert.deepEqual(await alice.pendingSends(), []);
});

test("an ack lost on the way is resent with the same client_id: no duplicate", async () => {
  const gw = await gateway();
  let dropped = 0;
  const tap = {
    in: (f) => {
      if (f.type === "ack" && f.message?.body === "lost ack" && dropped === 0) {
        dropped++;
        return false;
      }
    },
  };
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap), requestTimeoutMs: 500 });
  await untilOpen(alice);
  const tid = (await alice.send({ to: "bob", body: "first" })).thread_id;
  const m = await alice.send({ threadId: tid, body: "lost ack" });
  assert.equal(dropped, 1);
  assert.equal(tap.sent.filter((f) => f.type === "send" && f.client_id === m.client_id).length, 2);
  const h = await gw.rest("bob", "GET", `/threads/${tid}/messages?after_seq=0`);
  assert.equal(withClientId(h.messages, m.client_id).length, 1);
  assert.equal(alice.rec.messages.filter((x) => x.client_id === m.client_id).length, 1);
});

test("rate_limited sends wait and retry, in order; permanent errors reject and leave the outbox", async () => {
  const gw = await gateway({ RATE_PER_S: "5", RATE_BURST: "2" });
  const alice = mk(gw, "alice");
  await untilOpen(alice);
  const tid = (await alice.send({ to: "bob", body: "0" })).thread_id;
  const sends = Array.from({ length: 8 }, (_, i) => alice.send({ threadId: tid, body: String(i + 1) }));
  const bad = alice.send({ threadId: tid, body: "bad", replyTo: "not-a-message-id" });
  const done = await Promise.all(sends);
  assert.deepEqual(done.map((m) => m.seq), [2, 3, 4, 5, 6, 7, 8, 9]);
  await assert.rejects(bad, (e) => e.code === "bad_request");
  assert.deepEqual(await alice.pendingSends(), []);
  assert.deepEqual(alice.rec.messages.map((m) => m.body), ["0", "1", "2", "3", "4", "5", "6", "7", "8"]);
});
