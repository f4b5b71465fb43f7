import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor, sleep } from "./gateway.mjs";
import { client, tappedWebSocket, untilOpen, fixtures } from "./util.mjs";

const { gateway, mk, cleanups } = fixtures();
const readFrames = (tap) => tap.sent.filter((f) => f.type === "read").map((f) => [f.thread_id, f.seq]);

test("read() while offline is queued (highest seq per thread wins) and sent after the reconnect, once", async () => {
  const gw = await gateway();
  const t1 = await gw.rest("bob", "POST", "/threads", { kind: "direct", members: ["alice"] });
  const t2 = await gw.rest("carol", "POST", "/threads", { kind: "direct", members: ["alice"] });
  for (let i = 1; i <= 3; i++) await gw.rest("bob", "POST", `/threads/${t1.id}/messages`, { body: `b${i}` });
  await gw.rest("carol", "POST", `/threads/${t2.id}/messages`, { body: "c1" });
  const tap = {};
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap), requestTimeoutMs: 1000 });
  await untilOpen(alice);
  assert.equal((await gw.rest("alice", "GET", "/unread")).total, 4);

  await gw.stop("SIGKILL");
  await waitFor(() => alice.state !== "open", { what: "offline" });
  let settled = 0;
  const reads = [alice.read(t1.id, 1), alice.read(t1.id, 3), alice.read(t1.id, 2), alice.read(t2.id, 1)];
  reads.forEach((p) => p.then(() => settled++, () => settled++));
  // Longer than requestTimeoutMs: a queued read does not time out.
  await sleep(1500);
  assert.equal(settled, 0);
  assert.deepEqual(readFrames(tap), []);

  await gw.start();
  await Promise.all(reads);
  assert.deepEqual(readFrames(tap).sort(), [[t1.id, 3], [t2.id, 1]].sort());
  const unread = await gw.rest("alice", "GET", "/unread");
  assert.equal(unread.total, 0);

  // Acknowledged positions are not sent again after the next reconnect.
  await gw.stop("SIGKILL");
  await waitFor(() => alice.state !== "open", { what: "offline again" });
  await gw.start();
  await untilOpen(alice);
  await sleep(300);
  assert.equal(readFrames(tap).length, 2);
  // Online, a read goes out at once.
  await alice.read(t1.id, 3);
  assert.equal(readFrames(tap).length, 3);
});

test("a read lost with the connection is sent again after the reconnect", async () => {
  const gw = await gateway();
  const t = await gw.rest("bob", "POST", "/threads", { kind: "direct", members: ["alice"] });
  for (let i = 1; i <= 2; i++) await gw.rest("bob", "POST", `/threads/${t.id}/messages`, { body: `b${i}` });
  let killed = false;
  const tap = {
    out: (f) => {
      if (f.type === "read" && !killed) {
        killed = true;
        void gw.stop("SIGKILL"); // the frame never reaches the gateway, and the socket dies
        return false;
      }
    },
  };
  const alice = mk(gw, "alice", { WebSocket: tappedWebSocket(tap) });
  await untilOpen(alice);
  const p = alice.read(t.id, 2);
  await waitFor(() => alice.state !== "open", { what: "connection lost" });
  await gw.start();
  await p;
  assert.deepEqual(readFrames(tap), [[t.id, 2]]);
  assert.equal((await gw.rest("alice", "GET", "/unread")).total, 0);
});

test("a permanent error rejects the read and drops it", async () => {
  const gw = await gateway();
  const t = await gw.rest("bob", "POST", "/threads", { kind: "direct", members: ["carol"] });
  const alice = mk(gw, "alice");
  await untilOpen(alice);
  await assert.rejects(alice.read(t.id, 1), (e) => e.code === "forbidden" || e.code === "not_found");
  await assert.rejects(alice.read("no-such-thread", 1), (e) => e.code === "not_found" || e.code === "bad_request");
});
