// The hooks against a real gateway process (see gateway.mjs): react-dom in jsdom, the client
// over Node's `ws`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { React, renderHook, waitFor, sleep } from "./harness.mjs";
import { connect } from "@switchboard/client";
import {
  SwitchboardProvider,
  useClient,
  useConnection,
  useNotifications,
  usePresence,
  useThread,
  useThreads,
} from "../dist/index.js";
import { startGateway } from "./gateway.mjs";

const API_KEY = "test-server-api-key-0123456789abcdef";
const OPTS = { WebSocket, outbox: "memory", shareAcrossTabs: false, backoff: { baseMs: 50, maxMs: 400 }, requestTimeoutMs: 5000 };
const h = React.createElement;

let gw;
const mounted = [];
const rawClients = [];
let n = 0;
/** A user name unique to this run, so that tests do not see each other's threads. */
const user = (name) => `${name}${++n}`;

before(async () => {
  gw = await startGateway({ SERVER_API_KEY: API_KEY, RATE_BURST: "1000", RATE_PER_S: "500", JWT_LEEWAY_S: "0" });
});

after(async () => {
  for (const m of mounted.splice(0)) {
    try {
      m.unmount();
    } catch {}
  }
  rawClients.forEach((c) => c.close());
  await gw?.stop();
});

/** Mounts `hook` under a provider of its own (its own client) for `userId`. */
async function mount(userId, hook, { props, token, options } = {}) {
  const tok = token ?? (await gw.token(userId));
  const r = renderHook(hook, { props, wrap: (c) => h(SwitchboardProvider, { url: gw.url, getToken: () => tok, options: { ...OPTS, ...options } }, c) });
  mounted.push(r);
  return r;
}

async function rawClient(userId) {
  const tok = await gw.token(userId);
  const c = connect({ url: gw.url, getToken: () => tok, ...OPTS });
  rawClients.push(c);
  await waitFor(() => c.state === "open", { what: `${userId} raw client open` });
  return c;
}

async function serverApi(method, path, body) {
  const r = await fetch(`${gw.url}/api/v1/server${path}`, {
    method,
    headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const all = (p) => ({ conn: useConnection(), client: useClient(), threads: useThreads(), thread: useThread(p?.tid) });

test("useConnection: opens, knows the user, closes the client it made on unmount, reports the close", async () => {
  const u = user("alice");
  const r = await mount(u, () => ({ conn: useConnection(), client: useClient() }));
  await waitFor(() => r.result.all.length > 0, { what: "first render" });
  assert.equal(r.result.all[0].conn.state, "connecting"); // first render: no client yet
  assert.equal(r.result.all[0].client, null);
  await waitFor(() => r.result.current.conn.state === "open" && r.result.current.conn.userId === u, { what: "open" });
  const client = r.result.current.client;

  // The server API revokes the user's sessions: 4003, and the client stops.
  await serverApi("POST", "/disconnect", { user_id: u });
  await waitFor(() => r.result.current.conn.state === "stopped", { what: "stopped after 4003" });
  assert.equal(r.result.current.conn.lastClose?.code, 4003);

  const r2 = await mount(u, () => ({ conn: useConnection(), client: useClient() }));
  await waitFor(() => r2.result.current.conn.state === "open", { what: "second open" });
  const c2 = r2.result.current.client;
  assert.notEqual(c2, client);
  r2.unmount();
  assert.equal(c2.state, "stopped", "the provider closes the client it created");
});

test("useThreads + useThread: messages, unread, receipts, typing, order, reordering", async () => {
  const a = user("alice");
  const b = user("bob");
  const c = user("carol");
  const A = await mount(a, all, { props: { tid: null } });
  const B = await mount(b, all, { props: { tid: null } });
  await waitFor(() => A.result.current.conn.state === "open" && !A.result.current.threads.loading, { what: "alice ready" });
  await waitFor(() => B.result.current.conn.state === "open" && !B.result.current.threads.loading, { what: "bob ready" });
  assert.deepEqual(A.result.current.threads.threads, []);

  // Alice starts a direct chat with `to`.
  const m1 = await A.result.current.client.send({ to: b, body: "hi bob 👋" });
  const tid = m1.thread_id;
  const bobThread = await waitFor(() => B.result.current.threads.threads.find((t) => t.id === tid && t.last_seq === 1), { what: "bob lists the thread" });
  assert.equal(bobThread.unread, 1);
  assert.equal(bobThread.last_message.body, "hi bob 👋");
  const aliceThread = await waitFor(() => A.result.current.threads.threads.find((t) => t.id === tid && t.last_seq === 1), { what: "alice lists it" });
  assert.equal(aliceThread.unread ?? 0, 0, "own messages are not unread");

  // Both open it: history on mount.
  A.rerender({ tid });
  B.rerender({ tid });
  await waitFor(() => B.result.current.thread.messages.length === 1 && !B.result.current.thread.loading, { what: "bob history" });
  await waitFor(() => A.result.current.thread.messages.length === 1, { what: "alice history" });
  assert.equal(B.result.current.thread.messages[0].body, "hi bob 👋");

  // Bob reads: alice sees it, bob's badge clears (his own session gets no event: local).
  await B.result.current.thread.markRead();
  await waitFor(() => A.result.current.thread.readUpTo[b] === 1, { what: "alice sees bob's read" });
  assert.equal(A.result.current.thread.deliveredUpTo[b], 1, "read implies delivered");
  await waitFor(() => B.result.current.threads.threads.find((t) => t.id === tid)?.unread === 0, { what: "bob unread 0" });

  // Delivered alone.
  const m2 = await A.result.current.thread.send("second");
  assert.equal(m2.seq, 2);
  await waitFor(() => B.result.current.thread.messages.length === 2, { what: "bob gets m2" });
  await B.result.current.thread.markDelivered();
  await waitFor(() => A.result.current.thread.deliveredUpTo[b] === 2, { what: "alice sees delivered 2" });
  assert.equal(A.result.current.thread.readUpTo[b], 1);
  assert.equal(A.result.current.thread.pending.length, 0);

  // Typing shows on the other side only, and clears.
  B.result.current.thread.setTyping(true);
  await waitFor(() => A.result.current.thread.typingUsers.includes(b), { what: "alice sees bob typing" });
  assert.deepEqual(B.result.current.thread.typingUsers, []);
  B.result.current.thread.setTyping(false);
  await waitFor(() => A.result.current.thread.typingUsers.length === 0, { what: "typing clears" });

  // A burst: every message once, in seq order, on both sides.
  const sends = [];
  for (let i = 0; i < 10; i++) sends.push(A.result.current.thread.send(`burst ${i}`));
  await Promise.all(sends);
  const seqs = (r) => r.result.current.thread.messages.map((m) => m.seq);
  const want = Array.from({ length: 12 }, (_, i) => i + 1);
  await waitFor(() => seqs(B).length === 12, { what: "bob has 12" });
  await waitFor(() => seqs(A).length === 12, { what: "alice has 12" });
  assert.deepEqual(seqs(B), want);
  assert.deepEqual(seqs(A), want);
  await waitFor(() => B.result.current.threads.threads.find((t) => t.id === tid)?.unread === 11, { what: "bob unread 11" });
  assert.equal(B.result.current.threads.threads.find((t) => t.id === tid).last_seq, 12);

  // A partial read asks the gateway; a full read clears.
  await B.result.current.thread.markRead(7);
  await waitFor(() => B.result.current.threads.threads.find((t) => t.id === tid)?.unread === 5, { what: "bob unread 5" });
  await B.result.current.thread.markRead();
  await waitFor(() => B.result.current.threads.threads.find((t) => t.id === tid)?.unread === 0, { what: "bob unread 0 again" });
  await waitFor(() => A.result.current.thread.readUpTo[b] === 12, { what: "alice sees read 12" });

  // Reordering: a newer thread goes first, then activity brings the old one back up.
  const mc = await A.result.current.client.send({ to: c, body: "hi carol" });
  await waitFor(() => A.result.current.threads.threads[0]?.id === mc.thread_id, { what: "carol thread first" });
  assert.equal(A.result.current.threads.threads.length, 2);
  await B.result.current.client.send({ threadId: tid, body: "bob again" });
  await waitFor(() => A.result.current.threads.threads[0]?.id === tid, { what: "bob thread back on top" });
  assert.equal(A.result.current.threads.threads[0].unread, 1);
  // Alice's other session reads: her badge clears from the `read` event.
  const a2 = await rawClient(a);
  await a2.read(tid, 13);
  await waitFor(() => A.result.current.threads.threads[0].unread === 0, { what: "read on another device clears" });
});

test("useThread: loadOlder pages back, and the thread can change", async () => {
  const a = user("alice");
  const d = user("dave");
  const A = await mount(a, all, { props: { tid: null } });
  await waitFor(() => A.result.current.conn.state === "open", { what: "open" });
  const first = await A.result.current.client.send({ to: d, body: "m1" });
  const tid = first.thread_id;
  const sends = [];
  for (let i = 2; i <= 60; i++) sends.push(A.result.current.client.send({ threadId: tid, body: `m${i}` }));
  await Promise.all(sends);

  const D = await mount(d, all, { props: { tid } });
  await waitFor(() => !D.result.current.thread.loading && D.result.current.thread.messages.length === 50, { what: "newest page" });
  assert.equal(D.result.current.thread.messages[0].seq, 11);
  assert.equal(D.result.current.thread.hasOlder, true);
  await D.result.current.thread.loadOlder();
  await waitFor(() => D.result.current.thread.messages.length === 60, { what: "older page" });
  assert.deepEqual(
    D.result.current.thread.messages.map((m) => m.body),
    Array.from({ length: 60 }, (_, i) => `m${i + 1}`),
  );
  assert.equal(D.result.current.thread.hasOlder, false);
  await D.result.current.thread.loadOlder(); // nothing more: no change
  assert.equal(D.result.current.thread.messages.length, 60);

  // Another thread: the list is replaced, not mixed.
  const other = await D.result.current.client.send({ to: user("erin"), body: "elsewhere" });
  D.rerender({ tid: other.thread_id });
  await waitFor(() => D.result.current.thread.messages.length === 1 && D.result.current.thread.messages[0].body === "elsewhere", { what: "switched" });
  assert.equal(D.result.current.thread.hasOlder, false);
  D.rerender({ tid: null });
  await waitFor(() => D.result.current.thread.messages.length === 0, { what: "no thread" });
});

test("usePresence: watch, live updates, shared watches, offline on close", async () => {
  const a = user("alice");
  const e = user("erin");
  const A = await mount(a, (p) => ({ client: useClient(), p1: usePresence([e]), p2: usePresence(p.two ? [e, e] : []) }), { props: { two: false } });
  await waitFor(() => A.result.current.client?.state === "open", { what: "open" });
  // Presence is scoped to users who share a thread: erin is left out until they do.
  await sleep(100);
  assert.deepEqual(A.result.current.p1, {});
  await A.result.current.client.send({ to: e, body: "are you there?" });
  // A second watch, now in scope (p1's first watch left erin out).
  A.rerender({ two: true });
  await waitFor(() => A.result.current.p2[e]?.online === false, { what: "erin offline (never connected)" });
  assert.equal(A.result.current.p1[e]?.online, false, "both hooks share what is known");

  const E = await mount(e, () => useConnection());
  await waitFor(() => A.result.current.p1[e]?.online === true, { what: "erin online" });
  // One of the two watches goes away: the other keeps getting events.
  A.rerender({ two: false });
  await waitFor(() => Object.keys(A.result.current.p2).length === 0, { what: "p2 empty" });
  await sleep(200);
  E.unmount();
  const p = await waitFor(() => A.result.current.p1[e]?.online === false && A.result.current.p1[e], { what: "erin offline" });
  assert.ok(p.last_seen, "last_seen set when going offline");
});

test("useNotifications: list, count, live, mark read, mark all read across sessions", async () => {
  const f = user("frank");
  const n1 = await serverApi("POST", "/notifications", { user_ids: [f], category: "job", priority: "normal", title: "First", body: "one", data: { k: 1 } });
  assert.ok(n1);
  const F = await mount(f, () => ({ conn: useConnection(), n: useNotifications() }));
  await waitFor(() => !F.result.current.n.loading && F.result.current.n.items.length === 1, { what: "listed" });
  assert.equal(F.result.current.n.unreadCount, 1);
  assert.equal(F.result.current.n.items[0].title, "First");
  await waitFor(() => F.result.current.conn.state === "open", { what: "open" });

  await serverApi("POST", "/notifications", { user_ids: [f], category: "job", priority: "high", title: "Second", body: "two", data: null });
  await waitFor(() => F.result.current.n.items.length === 2, { what: "live notification" });
  assert.equal(F.result.current.n.items[0].title, "Second", "newest first");
  assert.equal(F.result.current.n.unreadCount, 2);

  const firstId = F.result.current.n.items[1].id;
  await F.result.current.n.markRead(firstId);
  assert.equal(F.result.current.n.unreadCount, 1);
  assert.ok(F.result.current.n.items[1].read_at);

  // A second session of frank marks all read: the first follows by `notification_read`.
  const F2 = await mount(f, () => ({ conn: useConnection(), n: useNotifications() }));
  await waitFor(() => !F2.result.current.n.loading && F2.result.current.n.unreadCount === 1, { what: "second session" });
  await F2.result.current.n.markAllRead();
  await waitFor(() => F.result.current.n.unreadCount === 0, { what: "read-all reaches the other session" });
  assert.ok(F.result.current.n.items.every((x) => x.read_at));
  // And the gateway agrees.
  const tok = await gw.token(f);
  const count = await (await fetch(`${gw.url}/api/v1/notifications/unread-count`, { headers: { Authorization: `Bearer ${tok}` } })).json();
  assert.deepEqual(count, { count: 0 });
});

test("no stale closures: stable callbacks act on the latest state and thread", async () => {
  const a = user("alice");
  const b = user("bob");
  const A = await mount(a, all, { props: { tid: null } });
  const B = await mount(b, all, { props: { tid: null } });
  await waitFor(() => A.result.current.conn.state === "open" && B.result.current.conn.state === "open", { what: "open" });
  const t1 = (await A.result.current.client.send({ to: b, body: "t1 #1" })).thread_id;
  const t2 = (await B.result.current.client.send({ to: user("gina"), body: "t2 #1" })).thread_id;
  A.rerender({ tid: t1 });
  B.rerender({ tid: t1 });
  await waitFor(() => B.result.current.thread.messages.length === 1, { what: "bob t1" });
  const firstMarkRead = B.result.current.thread.markRead;
  const firstSend = B.result.current.thread.send;

  // New messages arrive (re-renders); the markRead captured earlier reads the latest list.
  await A.result.current.thread.send("t1 #2");
  await A.result.current.thread.send("t1 #3");
  await waitFor(() => B.result.current.thread.messages.length === 3, { what: "bob has 3" });
  assert.equal(B.result.current.thread.markRead, firstMarkRead, "markRead is stable");
  assert.equal(B.result.current.thread.send, firstSend, "send is stable");
  await firstMarkRead();
  await waitFor(() => A.result.current.thread.readUpTo[b] === 3, { what: "old markRead marked 3" });

  // Switch bob to t2: t1's events no longer reach this hook; the new send goes to t2.
  B.rerender({ tid: t2 });
  await waitFor(() => B.result.current.thread.messages.length === 1 && B.result.current.thread.messages[0].thread_id === t2, { what: "bob on t2" });
  A.result.current.thread.setTyping(true);
  await A.result.current.thread.send("t1 #4");
  await sleep(300);
  assert.deepEqual(B.result.current.thread.typingUsers, []);
  assert.ok(B.result.current.thread.messages.every((m) => m.thread_id === t2));
  const m = await B.result.current.thread.send("t2 #2");
  assert.equal(m.thread_id, t2);
  await waitFor(() => B.result.current.thread.messages.length === 2, { what: "t2 has 2" });
  // Bob's list still counts t1's new message as unread.
  await waitFor(() => B.result.current.threads.threads.find((t) => t.id === t1)?.unread === 1, { what: "t1 unread 1" });
});

test("useThread.send: an ack that arrives after a thread switch stays out of the new thread", async () => {
  const a = user("alice");
  // Acks of sends whose body starts with "slow" reach the client 600 ms late.
  class SlowAcks extends WebSocket {
    set onmessage(fn) {
      super.onmessage = fn && ((ev) => {
        const f = JSON.parse(ev.data);
        if (f.type === "ack" && f.message?.body?.startsWith("slow")) setTimeout(() => fn(ev), 600);
        else fn(ev);
      });
    }
    get onmessage() {
      return super.onmessage;
    }
  }
  const A = await mount(a, all, { props: { tid: null }, options: { WebSocket: SlowAcks } });
  await waitFor(() => A.result.current.conn.state === "open", { what: "open" });
  const t1 = (await A.result.current.client.send({ to: user("hal"), body: "t1 #1" })).thread_id;
  const t2 = (await A.result.current.client.send({ to: user("ida"), body: "t2 #1" })).thread_id;
  A.rerender({ tid: t1 });
  await waitFor(() => !A.result.current.thread.loading && A.result.current.thread.messages.length === 1, { what: "t1 loaded" });
  const p = A.result.current.thread.send("slow t1 #2");
  await waitFor(() => A.result.current.thread.pending.length === 1, { what: "pending shown" });
  A.rerender({ tid: t2 }); // before the ack
  await waitFor(() => !A.result.current.thread.loading && A.result.current.thread.messages.length === 1, { what: "t2 loaded" });
  const m = await p;
  assert.equal(m.thread_id, t1);
  await sleep(200);
  assert.deepEqual(A.result.current.thread.messages.map((x) => x.body), ["t2 #1"]);
  assert.ok(A.result.current.thread.messages.every((x) => x.thread_id === t2));
  assert.deepEqual(A.result.current.thread.pending, []);
  // Back on t1: the message is there (from history), once.
  A.rerender({ tid: t1 });
  await waitFor(() => A.result.current.thread.messages.length === 2, { what: "t1 has both" });
  assert.deepEqual(A.result.current.thread.messages.map((x) => x.body), ["t1 #1", "slow t1 #2"]);
});

test("the provider calls the latest getToken (token expiry → 4001 → refresh)", async () => {
  const u = user("hank");
  const short = await gw.token(u, "--ttl", "2");
  const long = await gw.token(u);
  const calls = [];
  // Render the provider itself with a changing getToken prop.
  const Root = ({ getToken }) => h(SwitchboardProvider, { url: gw.url, getToken, options: OPTS }, h(Probe));
  let latest;
  function Probe() {
    latest = useConnection();
    return null;
  }
  const { createRoot } = await import("react-dom/client");
  const el = document.createElement("div");
  document.body.appendChild(el);
  const root = createRoot(el);
  mounted.push({ unmount: () => root.unmount() });
  root.render(h(Root, { getToken: (why) => (calls.push(["first", why]), short) }));
  await waitFor(() => latest?.state === "open", { what: "open with the short token" });
  root.render(h(Root, { getToken: (why) => (calls.push(["second", why]), long) }));
  await waitFor(() => latest?.lastClose?.code === 4001, { timeout: 15_000, what: "4001 on expiry" });
  await waitFor(() => latest?.state === "open", { what: "reopened" });
  assert.deepEqual(calls[0], ["first", "initial"]);
  assert.ok(calls.slice(1).length > 0 && calls.slice(1).every(([who]) => who === "second"), JSON.stringify(calls));
});

test("hooks unsubscribe on unmount; a given client is not closed", async () => {
  const a = user("alice");
  const tok = await gw.token(a);
  const real = connect({ url: gw.url, getToken: () => tok, ...OPTS });
  rawClients.push(real);
  await waitFor(() => real.state === "open", { what: "open" });
  const tid = (await real.send({ to: user("ivan"), body: "x" })).thread_id;
  let active = 0;
  const counted = new Proxy(real, {
    get(t, k) {
      if (k === "on")
        return (type, fn) => {
          const off = t.on(type, fn);
          active++;
          let done = false;
          return () => {
            if (!done) active--;
            done = true;
            off();
          };
        };
      const v = Reflect.get(t, k, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
  const r = renderHook(
    () => ({ conn: useConnection(), threads: useThreads(), thread: useThread(tid), p: usePresence(["x"]), n: useNotifications() }),
    { wrap: (c) => h(SwitchboardProvider, { client: counted }, c) },
  );
  await waitFor(() => !r.result.current.threads.loading && !r.result.current.thread.loading && !r.result.current.n.loading, { what: "loaded" });
  assert.ok(active > 10, `listeners while mounted: ${active}`);
  r.unmount();
  assert.equal(active, 0, "every listener removed");
  assert.equal(real.state, "open", "a client passed in is left open");
});
