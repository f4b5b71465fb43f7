import { test, after } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor, sleep } from "./gateway.mjs";
import { client, tappedWebSocket, untilOpen } from "./util.mjs";

const cleanups = [];
after(async () => {
  for (const f of cleanups.reverse()) await f();
});

test("typing: true at most every 3 s, false after 5 s idle, explicit false at once", async () => {
  // A long server-side timeout, so the false bob sees is the client's own auto-stop.
  const gw = await startGateway({ TYPING_TIMEOUT_MS: "30000" });
  cleanups.push(() => gw.cleanup());
  const tap = {};
  const alice = client(gw, "alice", { WebSocket: tappedWebSocket(tap) });
  const bob = client(gw, "bob");
  cleanups.push(() => alice.close(), () => bob.close());
  await Promise.all([untilOpen(alice), untilOpen(bob)]);
  const tid = (await alice.send({ to: "bob", body: "hi" })).thread_id;
  const typingFrames = () => tap.sent.filter((f) => f.type === "typing");

  const t0 = Date.now();
  while (Date.now() - t0 < 6500) {
    alice.typing(tid, true);
    await sleep(100);
  }
  const lastCall = Date.now();
  assert.deepEqual(typingFrames().map((f) => f.is_typing), [true, true, true]); // at 0, 3, 6 s
  await waitFor(() => bob.rec.typing.some((t) => !t.is_typing), { timeout: 8000, what: "auto-stop" });
  const stopAt = bob.rec.typing.find((t) => !t.is_typing).at;
  assert.ok(stopAt - lastCall >= 4500 && stopAt - lastCall < 6500, `auto-stop after ${stopAt - lastCall} ms`);
  assert.deepEqual(typingFrames().map((f) => f.is_typing), [true, true, true, false]);
  // The gateway relays changes only: bob saw one start and one stop.
  assert.deepEqual(bob.rec.typing.map((t) => [t.user_id, t.is_typing]), [["alice", true], ["alice", false]]);

  // Explicit false goes out immediately, once.
  alice.typing(tid, true);
  await sleep(100);
  const before = Date.now();
  alice.typing(tid, false);
  alice.typing(tid, false);
  await waitFor(() => bob.rec.typing.length === 4, { what: "explicit stop" });
  assert.ok(bob.rec.typing[3].at - before < 1000);
  assert.deepEqual(typingFrames().map((f) => f.is_typing), [true, true, true, false, true, false]);
  await sleep(300);
  assert.equal(bob.rec.typing.length, 4);
});
