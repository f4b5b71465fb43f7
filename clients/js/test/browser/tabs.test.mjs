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
