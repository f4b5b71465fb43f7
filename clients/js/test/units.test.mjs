// Pieces without a gateway: storage fallback, the outbox's retries, the emitter, redaction,
// the JWT helpers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { IndexedDbStorage, MemoryStorage } from "../dist/storage.js";
import { Outbox } from "../dist/outbox.js";
import { Backoff } from "../dist/backoff.js";
import { Emitter } from "../dist/emitter.js";
import { SwitchboardError } from "../dist/errors.js";
import { redact, Limiter } from "../dist/util.js";
import { subOf, claimsOf, uuid } from "../dist/index.js";

const entry = (id, order = 1) => ({ client_id: id, thread_id: "t", body: "b", order, queued_at: 0 });
const msg = (e) => ({ id: "m-" + e.client_id, thread_id: "t", seq: 1, client_id: e.client_id });

test("IndexedDB that cannot be opened: entries live in memory", async () => {
  for (const idb of [
    { open() { throw new Error("SecurityError"); } },
    { open() { const r = {}; setTimeout(() => r.onerror?.({})); return r; } },
  ]) {
    const s = new IndexedDbStorage(idb, "x");
    assert.equal(await s.persistent(), false);
    await s.put(entry("a", 2));
    await s.put(entry("b", 1));
    assert.deepEqual((await s.load()).map((e) => e.client_id), ["b", "a"]);
    await s.remove("b");
    assert.deepEqual((await s.load()).map((e) => e.client_id), ["a"]);
  }
});

test("outbox: a send whose put fails rejects and leaves no waiter behind", async () => {
  const storage = new MemoryStorage();
  storage.put = async () => {
    throw new Error("quota");
  };
  const ob = new Outbox(storage, async (e) => msg(e), () => true, async () => {}, () => {});
  await assert.rejects(ob.add(entry("a")), /quota/);
  assert.equal(ob.waiting, 0);
  assert.deepEqual(await ob.entries(), []);
});

test("outbox: unavailable retries with backoff; internal is retried 3 times, then rejected", async () => {
  const delays = [];
  const backoff = new Backoff(10, 1000, () => 1);
  const next = backoff.next.bind(backoff);
  backoff.next = () => {
    const d = next();
    delays.push(d);
    return d;
  };
  const calls = {};
  const ob = new Outbox(
    new MemoryStorage(),
    async (e) => {
      calls[e.client_id] = (calls[e.client_id] ?? 0) + 1;
      if (e.client_id === "u" && calls.u <= 3) throw new SwitchboardError("unavailable", "db down");
      if (e.client_id === "i") throw new SwitchboardError("internal", "boom");
      if (e.client_id === "j" && calls.j <= 2) throw new SwitchboardError("internal", "boom");
      return msg(e);
    },
    () => true,
    async () => {},
    () => {},
    backoff,
  );
  const u = await ob.add(entry("u", 1));
  assert.equal(u.client_id, "u");
  assert.equal(calls.u, 4);
  assert.deepEqual(delays.slice(0, 3), [10, 20, 40], "doubling delays");
  await assert.rejects(ob.add(entry("i", 2)), (e) => e.code === "internal");
  assert.equal(calls.i, 4, "first try + 3 retries");
  const j = await ob.add(entry("j", 3));
  assert.equal(j.client_id, "j");
  assert.equal(ob.waiting, 0);
});

test("emitter: unsubscribing the last listener drops the set", () => {
  const em = new Emitter();
  const off1 = em.on("x", () => {});
  const off2 = em.on("x", () => {});
  off1();
  assert.equal(em.listenerCount("x"), 1);
  off2();
  off2();
  assert.equal(em.listenerCount("x"), 0);
  assert.equal(em.map.size, 0);
});

test("redaction: tokens never appear in error messages", () => {
  const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
  assert.equal(redact(`failed: ws://h/ws?token=${jwt}&x=1`), "failed: ws://h/ws?token=[redacted]&x=1");
  assert.equal(redact(`Authorization: Bearer ${jwt}`), "Authorization: Bearer [redacted]");
  assert.ok(!new SwitchboardError("unavailable", `open ws://h/ws?token=${jwt}`).message.includes(jwt));
  assert.ok(!SwitchboardError.from(new Error(`x ${jwt}`)).message.includes(jwt));
});

test("jwt helpers, uuid, limiter", async () => {
  const tok = "x." + Buffer.from(JSON.stringify({ sub: "ålice", exp: 5 })).toString("base64url") + ".y";
  assert.equal(subOf(tok), "ålice");
  assert.equal(claimsOf(tok).exp, 5);
  assert.equal(subOf("nope"), null);
  assert.match(uuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const lim = new Limiter(2);
  let active = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 6 }, () =>
      lim.run(async () => {
        peak = Math.max(peak, ++active);
        await new Promise((r) => setTimeout(r, 10));
        active--;
      }),
    ),
  );
  assert.equal(peak, 2);
});
