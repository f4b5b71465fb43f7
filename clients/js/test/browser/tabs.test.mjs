import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startGateway, waitFor, sleep } from "../gateway.mjs";
import { launch, staticServer, openTab } from "./harness.mjs";

let browser;
const cleanups = [];
before(async () => {
  browser = await launch();
});
after(async () => {
  for (const f of cleanups.reverse()) await f().catch(() => {});
  await browser?.close();
});

const bodies = (page) => page.evaluate(() => events.map((m) => m.body));
const state = (page) => page.evaluate(() => sb.state);

test("two tabs share one WebSocket; closing the leader hands over without losing a message", async () => {
  const gw = await startGateway();
  cleanups.push(() => gw.cleanup());
  const site = await staticServer(gw);
  cleanups.push(async () => site.close());
  const ctx = await browser.newContext();
  cleanups.push(() => ctx.close());

  const tab1 = await openTab(ctx, site, gw, "alice");
  await waitFor(() => state(tab1).then((s) => s === "open"), { what: "tab1 open" });
  const tab2 = await openTab(ctx, site, gw, "alice");
  await waitFor(() => state(tab2).then((s) => s === "open"), { what: "tab2 sees open" });
  await sleep(300);
  assert.equal(await gw.wsConnections(), 1, "one socket for two tabs");
  assert.equal(await tab1.evaluate(() => wsOpened), 1);
  assert.equal(await tab2.evaluate(() => wsOpened), 0);
  assert.equal(await tab2.evaluate(() => sb.userId), "alice");

  const t = await gw.rest("bob", "POST", "/threads", { kind: "direct", members: ["alice"] });
  await gw.rest("bob", "POST", `/threads/${t.id}/messages`, { body: "one" });
  await waitFor(async () => (await bodies(tab1)).length === 1 && (await bodies(tab2)).length === 1, { what: "both tabs get it" });

  // A follower's send goes through the leader's socket; both tabs see it once.
  const sent = await tab2.evaluate((tid) => sb.send({ threadId: tid, body: "from tab2" }).then((m) => m.seq), t.id);
  assert.equal(sent, 2);
  await waitFor(async () => (await bodies(tab1)).length === 2 && (await bodies(tab2)).length === 2, { what: "tab2's send seen" });
  assert.equal(await tab2.evaluate(() => wsOpened), 0);

  // Close the leader; a message sent during the handover and one after must both arrive.
  await tab1.close();
  await gw.rest("bob", "POST", `/threads/${t.id}/messages`, { body: "in between" });
  await waitFor(() => tab2.evaluate(() => wsOpened === 1 && sb.state === "open"), { what: "tab2 takes over" });
  await gw.rest("bob", "POST", `/threads/${t.id}/messages`, { body: "after" });
  await waitFor(async () => (await bodies(tab2)).length === 4, { what: "messages after the handover" });
  await sleep(300);
  assert.deepEqual(await bodies(tab2), ["one", "from tab2", "in between", "after"]);
  await waitFor(async () => (await gw.wsConnections()) === 1, { what: "still one socket" });
});

test("an IndexedDB outbox survives a reload: the send made offline is stored exactly once", async () => {
  const gw = await startGateway();
  cleanups.push(() => gw.cleanup());
  const site = await staticServer(gw);
  cleanups.push(async () => site.close());
  const ctx = await browser.newContext();
  cleanups.push(() => ctx.close());

  const t = await gw.rest("bob", "POST", "/threads", { kind: "direct", members: ["carol"] });
  const tab = await openTab(ctx, site, gw, "carol", "&outbox=indexeddb&name=reload");
  await waitFor(() => state(tab).then((s) => s === "open"), { what: "open" });
  await gw.stop("SIGKILL");
  await waitFor(() => state(tab).then((s) => s !== "open"), { what: "offline" });
  // Not awaited: the page goes away before any ack.
  await tab.evaluate((tid) => void sb.send({ threadId: tid, body: "written offline", clientId: "reload-1" }).catch(() => {}), t.id);
  await waitFor(() => tab.evaluate(() => sb.pendingSends().then((p) => p.length === 1)), { what: "stored in IndexedDB" });
  await tab.reload();
  await tab.waitForFunction(() => window.loaded === true);
  await waitFor(() => tab.evaluate(() => sb.pendingSends().then((p) => p.map((e) => e.client_id).join() === "reload-1")), { what: "loaded from IndexedDB after the reload" });
  await gw.start();
  await waitFor(() => tab.evaluate(() => sb.pendingSends().then((p) => p.length === 0)), { what: "outbox drained" });
  // Its result comes as a message event, since the promise died with the page.
  await waitFor(() => bodies(tab).then((b) => b.includes("written offline")), { what: "message event" });
  // Another reload resends nothing.
  await tab.reload();
  await tab.waitForFunction(() => window.loaded === true);
  await waitFor(() => state(tab).then((s) => s === "open"), { what: "open again" });
  await sleep(300);
  const h = await gw.rest("bob", "GET", `/threads/${t.id}/messages?after_seq=0`);
  assert.deepEqual(h.messages.map((m) => [m.body, m.client_id]), [["written offline", "reload-1"]]);
});

test("tabs of two users in one browser profile: a connection each, each gets only its own events", async () => {
  const gw = await startGateway();
  cleanups.push(() => gw.cleanup());
  const site = await staticServer(gw);
  cleanups.push(async () => site.close());
  const ctx = await browser.newContext();
  cleanups.push(() => ctx.close());

  const alice = await openTab(ctx, site, gw, "alice");
  const bob = await openTab(ctx, site, gw, "bob");
  await waitFor(async () => (await state(alice)) === "open" && (await state(bob)) === "open", { what: "both open" });
  await sleep(300);
  assert.equal(await gw.wsConnections(), 2, "one socket per user");
  assert.equal(await alice.evaluate(() => wsOpened), 1);
  assert.equal(await bob.evaluate(() => wsOpened), 1);
  assert.equal(await alice.evaluate(() => sb.userId), "alice");
  assert.equal(await bob.evaluate(() => sb.userId), "bob");

  // A second tab of alice's joins alice's connection, not bob's.
  const alice2 = await openTab(ctx, site, gw, "alice");
  await waitFor(() => state(alice2).then((s) => s === "open"), { what: "alice2 sees open" });
  await sleep(300);
  assert.equal(await alice2.evaluate(() => wsOpened), 0);
  assert.equal(await alice2.evaluate(() => sb.userId), "alice");
  assert.equal(await gw.wsConnections(), 2);

  const ta = await gw.rest("carol", "POST", "/threads", { kind: "direct", members: ["alice"] });
  const tb = await gw.rest("carol", "POST", "/threads", { kind: "direct", members: ["bob"] });
  await gw.rest("carol", "POST", `/threads/${ta.id}/messages`, { body: "for alice" });
  await gw.rest("carol", "POST", `/threads/${tb.id}/messages`, { body: "for bob" });
  // Each tab's sends go out as its own user (the follower's through alice's leader).
  assert.equal(await alice2.evaluate((tid) => sb.send({ threadId: tid, body: "alice here" }).then((m) => m.sender_id), ta.id), "alice");
  assert.equal(await bob.evaluate((tid) => sb.send({ threadId: tid, body: "bob here" }).then((m) => m.sender_id), tb.id), "bob");
  await waitFor(async () => (await bodies(alice)).length === 2 && (await bodies(alice2)).length === 2 && (await bodies(bob)).length === 2, {
    what: "each tab's messages",
  });
  await sleep(300);
  assert.deepEqual(await bodies(alice), ["for alice", "alice here"]);
  assert.deepEqual(await bodies(alice2), ["for alice", "alice here"]);
  assert.deepEqual(await bodies(bob), ["for bob", "bob here"]);
  // And an outbox database each.
  const dbs = await bob.evaluate(() => indexedDB.databases().then((d) => d.map((x) => x.name).sort()));
  assert.deepEqual(dbs.filter((n) => n.includes(":outbox:")), ["switchboard:outbox:alice", "switchboard:outbox:bob"]);
});

test("a follower's send in flight when the leader tab closes is resent to the new leader with its client_id, stored once", async () => {
  const gw = await startGateway();
  cleanups.push(() => gw.cleanup());
  const site = await staticServer(gw);
  cleanups.push(async () => site.close());
  const ctx = await browser.newContext();
  cleanups.push(() => ctx.close());

  const tabs = [];
  for (let i = 0; i < 3; i++) {
    const tab = await openTab(ctx, site, gw, "alice");
    await waitFor(() => state(tab).then((s) => s === "open"), { what: `tab${i + 1} open` });
    tabs.push(tab);
  }
  const [tab1, tab2, tab3] = tabs;
  assert.equal(await tab1.evaluate(() => wsOpened), 1);
  const t = await gw.rest("bob", "POST", "/threads", { kind: "direct", members: ["alice"] });
  await gw.rest("bob", "POST", `/threads/${t.id}/messages`, { body: "one" });
  await waitFor(async () => (await Promise.all(tabs.map(bodies))).every((b) => b.length === 1), { what: "all tabs get it" });

  // The leader's socket loses the ack of tab3's send: the gateway stores it, the ack never
  // arrives, so the send is still in flight when the leader goes away.
  await tab1.evaluate(() => {
    window.dropIn = (f) => f.type === "ack" && f.message?.client_id === "inflight-1";
  });
  const sendFrom = (tab, body, clientId) =>
    tab.evaluate(
      ([tid, body, clientId]) => {
        window.sendResult = null;
        sb.send({ threadId: tid, body, clientId }).then(
          (m) => (window.sendResult = m),
          (e) => (window.sendResult = { error: e.code }),
        );
      },
      [t.id, body, clientId],
    );
  await sendFrom(tab3, "in flight", "inflight-1");
  // tab2's send waits behind it in the leader's outbox (one send in flight at a time).
  await sendFrom(tab2, "queued", "queued-1");
  const stored = async () => (await gw.rest("bob", "GET", `/threads/${t.id}/messages?after_seq=0`)).messages.map((m) => [m.body, m.client_id]);
  await waitFor(async () => (await stored()).length === 2, { what: "stored by the old leader" });
  await sleep(200);
  assert.deepEqual(await stored(), [["one", null], ["in flight", "inflight-1"]]);
  assert.equal(await tab1.evaluate(() => wsSent.filter((f) => f.type === "send").length), 1);
  assert.equal(await tab3.evaluate(() => window.sendResult), null);

  await tab1.close();
  const r3 = await waitFor(() => tab3.evaluate(() => window.sendResult), { what: "tab3's send resolves" });
  const r2 = await waitFor(() => tab2.evaluate(() => window.sendResult), { what: "tab2's send resolves" });
  assert.deepEqual([r3.body, r3.client_id, r3.seq, r3.sender_id], ["in flight", "inflight-1", 2, "alice"]);
  assert.deepEqual([r2.body, r2.client_id, r2.seq], ["queued", "queued-1", 3]);

  // One of the two took over, and its socket carried the resend with the same client_id.
  const opened = await Promise.all([tab2, tab3].map((tab) => tab.evaluate(() => wsOpened)));
  assert.deepEqual(opened.slice().sort(), [0, 1]);
  const leader = opened[0] === 1 ? tab2 : tab3;
  const resent = await leader.evaluate(() => wsSent.filter((f) => f.type === "send").map((f) => f.client_id).sort());
  assert.deepEqual(resent, ["inflight-1", "queued-1"]);

  assert.deepEqual(await stored(), [["one", null], ["in flight", "inflight-1"], ["queued", "queued-1"]]);
  for (const tab of [tab2, tab3]) {
    await waitFor(() => bodies(tab).then((b) => b.length === 3), { what: "three messages in each tab" });
  }
  await sleep(300);
  assert.deepEqual(await bodies(tab2), ["one", "in flight", "queued"]);
  assert.deepEqual(await bodies(tab3), ["one", "in flight", "queued"]);
  await waitFor(async () => (await gw.wsConnections()) === 1, { what: "one socket again" });
});
