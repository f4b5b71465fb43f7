// The demo chat in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// against a real gateway: two users in two browser contexts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startGateway } from "../../react/test/gateway.mjs";
import { startProxy } from "./proxy.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const DIST = join(here, "../dist");
const ARTIFACTS = join(here, "../test-artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const API_KEY = "e2e-server-api-key-0123456789abcdef";
const T = 20_000; // longest wait for anything the page should show

let gw, proxy, browser, pageUrl, servedBy;
const ctx = {}; // user -> { context, page }
let devLogin = false;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH). This test is never skipped.`);
  }
  if (!existsSync(join(DIST, "app.js"))) throw new Error("clients/demo/dist is not built: npm run build");
  await mkdir(ARTIFACTS, { recursive: true });
  gw = await startGateway({ SERVER_API_KEY: API_KEY });
  // The page from the gateway itself when it serves it; from dist/ otherwise.
  const root = await fetch(`${gw.url}/`).catch(() => null);
  const html = root && root.ok ? await root.text() : "";
  // DEMO_FROM_DIST=1: the page from dist/ through the proxy even where the gateway serves one
  // (the binary embeds the dist it was built with, which may be older than dist/).
  const fromGateway = !process.env.DEMO_FROM_DIST && /<div id="root">/.test(html) && /app\.js/.test(html);
  servedBy = fromGateway ? "gateway" : "dist";
  proxy = await startProxy({ gatewayPort: gw.port, distDir: DIST, pageFromGateway: fromGateway });
  // `?gateway=` is exercised too: it names the proxy, which is also the page's origin.
  pageUrl = `${proxy.url}/?gateway=${encodeURIComponent(proxy.url)}`;
  const probe = await fetch(`${gw.url}/api/v1/dev/token`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"user_id":""}' });
  devLogin = probe.status !== 404;
  console.log(`# page served by: ${servedBy}; dev login offered: ${devLogin}; gateway ${gw.bin}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"], headless: true });
});

after(async () => {
  await browser?.close().catch(() => {});
  await proxy?.close().catch(() => {});
  await gw?.stop().catch(() => {});
});

async function shot(name) {
  for (const [user, { page }] of Object.entries(ctx)) {
    if (page && !page.isClosed()) await page.screenshot({ path: join(ARTIFACTS, `${name}-${user}.png`) }).catch(() => {});
  }
}

async function serverApi(method, path, body) {
  const r = await fetch(`${gw.url}/api/v1/server${path}`, {
    method,
    headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json().catch(() => null);
}

/** Opens a page for `user` in a new context and signs in (dev login when `viaDev`). */
async function open(user, { viaDev = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  ctx[user] = { context, page, errors };
  await page.goto(pageUrl);
  await page.getByTestId("login").waitFor({ timeout: T });
  if (viaDev) {
    await page.getByTestId("dev-user").fill(user);
    await page.getByTestId("dev-login").click();
  } else {
    await page.getByTestId("token-input").fill(await gw.token(user));
    await page.getByTestId("token-connect").click();
  }
  await page.locator('[data-testid="conn-state"][data-state="open"]').waitFor({ timeout: T });
  assert.equal(await page.getByTestId("me").textContent(), user);
  return page;
}

async function closeCtx(user) {
  await ctx[user].context.close();
  ctx[user] = { page: null };
}

const msgs = (page) => page.locator('[data-testid="conversation"] [data-testid="message"]');
async function bodiesAndSeqs(page) {
  return msgs(page).evaluateAll((els) =>
    els.map((e) => ({ seq: Number(e.getAttribute("data-seq")), body: e.querySelector('[data-testid="message-body"]').textContent })),
  );
}
const ownMsg = (page, body) =>
  page.locator('[data-testid="message"]').filter({ has: page.getByTestId("message-body").getByText(body, { exact: true }) });

test("sign in: token paste, and the dev login only where the gateway offers it", async () => {
  const alice = await open("alice", { viaDev: devLogin });
  if (!devLogin) assert.equal(await alice.getByTestId("dev-login-form").count(), 0, "dev login hidden on 404");
  await open("bob");
  await shot("01-signed-in");
});

test("a message appears on the other side; ✓ on delivery, ✓✓ after bob reads", async () => {
  const alice = ctx.alice.page;
  const bob = ctx.bob.page;
  await alice.getByTestId("new-chat-user").fill("bob");
  await alice.getByTestId("new-chat-start").click();
  await alice.getByTestId("composer-input").fill("hello bob 👋");
  await alice.getByTestId("composer-send").click();
  await alice.locator('[data-testid="conversation"][data-thread-id]').waitFor({ timeout: T });
  await ownMsg(alice, "hello bob 👋").waitFor({ timeout: T });

  // Bob's list gets the thread with an unread badge; his page reports delivery by itself.
  const item = bob.locator('[data-testid="thread-item"][data-peer="alice"]');
  await item.waitFor({ timeout: T });
  await item.getByTestId("unread-badge").getByText("1", { exact: true }).waitFor({ timeout: T });
  await ownMsg(alice, "hello bob 👋").locator('[data-testid="receipt"][data-state="delivered"]').waitFor({ timeout: T });
  assert.equal(await ownMsg(alice, "hello bob 👋").getByTestId("receipt").textContent(), "✓");
  await shot("02-delivered");

  // Bob opens the thread (the page is visible): read.
  await item.click();
  await bob.getByTestId("message-body").getByText("hello bob 👋", { exact: true }).waitFor({ timeout: T });
  await ownMsg(alice, "hello bob 👋").locator('[data-testid="receipt"][data-state="read"]').waitFor({ timeout: T });
  assert.equal(await ownMsg(alice, "hello bob 👋").getByTestId("receipt").textContent(), "✓✓");
  await item.getByTestId("unread-badge").waitFor({ state: "detached", timeout: T });
  await shot("03-read");

  // And back.
  await bob.getByTestId("composer-input").fill("hi alice!");
  await bob.getByTestId("composer-send").click();
  await alice.getByTestId("message-body").getByText("hi alice!", { exact: true }).waitFor({ timeout: T });
});

test("typing indicator shows and clears", async () => {
  const alice = ctx.alice.page;
  const bob = ctx.bob.page;
  const typing = alice.getByTestId("typing");
  await bob.getByTestId("composer-input").pressSequentially("typing some", { delay: 20 });
  await typing.getByText("bob is typing…").waitFor({ timeout: T });
  await shot("04-typing");
  await bob.getByTestId("composer-input").fill("");
  await alice.waitForFunction(() => document.querySelector('[data-testid="typing"]').textContent === "", null, { timeout: T });
  // Typing, then idle: it clears by itself (the client's idle timeout, or the gateway's 5 s).
  await bob.getByTestId("composer-input").pressSequentially("abc", { delay: 20 });
  await typing.getByText("bob is typing…").waitFor({ timeout: T });
  await alice.waitForFunction(() => document.querySelector('[data-testid="typing"]').textContent === "", null, { timeout: T });
  // Sending clears it at once.
  await bob.getByTestId("composer-input").pressSequentially(" def", { delay: 20 });
  await typing.getByText("bob is typing…").waitFor({ timeout: T });
  await bob.getByTestId("composer-send").click();
  await alice.getByTestId("message-body").getByText("abc def", { exact: true }).waitFor({ timeout: T });
  await alice.waitForFunction(() => document.querySelector('[data-testid="typing"]').textContent === "", null, { timeout: T });
});

test("bob's page cut off while alice sends 3: it reconnects and shows each once, in order, then reads", async () => {
  const alice = ctx.alice.page;
  const bob = ctx.bob.page;
  proxy.block("bob");
  await bob.locator('[data-testid="conn-state"]:not([data-state="open"])').waitFor({ timeout: T });
  for (const b of ["cut 1", "cut 2", "cut 3"]) {
    await alice.getByTestId("composer-input").fill(b);
    await alice.getByTestId("composer-send").click();
    await ownMsg(alice, b).waitFor({ timeout: T });
  }
  await shot("05-bob-cut-off");
  proxy.unblock("bob");
  await bob.locator('[data-testid="conn-state"][data-state="open"]').waitFor({ timeout: 45_000 });
  await bob.getByTestId("message-body").getByText("cut 3", { exact: true }).waitFor({ timeout: T });
  const list = await bodiesAndSeqs(bob);
  const seqs = list.map((m) => m.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), "consecutive seqs, each once");
  for (const b of ["cut 1", "cut 2", "cut 3"]) assert.equal(list.filter((m) => m.body === b).length, 1, b);
  const idx = ["cut 1", "cut 2", "cut 3"].map((b) => list.findIndex((m) => m.body === b));
  assert.deepEqual([...idx].sort((x, y) => x - y), idx, "in order");
  // The open thread is read again: ✓✓ on alice's side.
  await ownMsg(alice, "cut 3").locator('[data-testid="receipt"][data-state="read"]').waitFor({ timeout: T });
  await shot("06-bob-caught-up");
});

test("presence: bob's dot goes grey when his page closes; 3 messages while he is away arrive once, in order", async () => {
  const alice = ctx.alice.page;
  const dot = alice.locator('[data-testid="conversation"] [data-testid="presence-dot"][data-user="bob"]');
  await alice.locator('[data-testid="conversation"] [data-testid="presence-dot"][data-user="bob"][data-online="true"]').waitFor({ timeout: T });
  await closeCtx("bob");
  await alice.locator('[data-testid="conversation"] [data-testid="presence-dot"][data-user="bob"][data-online="false"]').waitFor({ timeout: T });
  assert.equal(await dot.getAttribute("data-online"), "false");
  await shot("07-bob-offline");

  for (const b of ["away 1", "away 2", "away 3"]) {
    await alice.getByTestId("composer-input").fill(b);
    await alice.getByTestId("composer-send").click();
    await ownMsg(alice, b).waitFor({ timeout: T });
  }
  const bob = await open("bob");
  await alice.locator('[data-testid="conversation"] [data-testid="presence-dot"][data-user="bob"][data-online="true"]').waitFor({ timeout: T });
  const item = bob.locator('[data-testid="thread-item"][data-peer="alice"]');
  await item.getByTestId("unread-badge").getByText("3", { exact: true }).waitFor({ timeout: T });
  await item.click();
  await bob.getByTestId("message-body").getByText("away 3", { exact: true }).waitFor({ timeout: T });
  const list = await bodiesAndSeqs(bob);
  const seqs = list.map((m) => m.seq);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), "every message once, in seq order");
  assert.deepEqual(
    list.map((m) => m.body).slice(-3),
    ["away 1", "away 2", "away 3"],
  );
  await ownMsg(alice, "away 3").locator('[data-testid="receipt"][data-state="read"]').waitFor({ timeout: T });
  await shot("08-bob-back");
});

test("notifications: live count, mark read, mark all read", async () => {
  const alice = ctx.alice.page;
  const count = alice.getByTestId("notif-count");
  assert.equal(await count.textContent(), "0");
  await serverApi("POST", "/notifications", { user_ids: ["alice"], category: "job", priority: "high", title: "Ana is on the way", body: "Arrives in about 12 minutes", data: { job_id: 123 } });
  await count.getByText("1", { exact: true }).waitFor({ timeout: T });
  await alice.getByTestId("notif-toggle").click();
  const panel = alice.getByTestId("notif-panel");
  await panel.getByText("Ana is on the way").waitFor({ timeout: T });
  await shot("09-notification");
  await panel.getByTestId("notif-read").first().click();
  await count.getByText("0", { exact: true }).waitFor({ timeout: T });
  for (const title of ["Second", "Third"]) {
    await serverApi("POST", "/notifications", { user_ids: ["alice"], category: "job", priority: "normal", title, body: title.toLowerCase(), data: null });
  }
  await count.getByText("2", { exact: true }).waitFor({ timeout: T });
  assert.equal(await panel.locator('[data-testid="notification"][data-read="false"]').count(), 2);
  await panel.getByTestId("notif-read-all").click();
  await count.getByText("0", { exact: true }).waitFor({ timeout: T });
  assert.equal(await panel.locator('[data-testid="notification"][data-read="false"]').count(), 0);
  await shot("10-notifications-read");
});

test("the dev login is hidden where the gateway answers 404 (JWT_SECRET set)", async () => {
  const gw2 = await startGateway({ JWT_SECRET: "e2e-secret-of-at-least-32-bytes-0123456789" });
  const proxy2 = await startProxy({ gatewayPort: gw2.port, distDir: DIST, pageFromGateway: servedBy === "gateway" });
  const context = await browser.newContext();
  try {
    const probe = await fetch(`${gw2.url}/api/v1/dev/token`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"user_id":""}' });
    assert.equal(probe.status, 404, "a gateway with its own secret does not offer the dev login");
    const page = await context.newPage();
    const probed = page.waitForResponse((r) => r.url().endsWith("/api/v1/dev/token"), { timeout: T });
    await page.goto(`${proxy2.url}/`);
    assert.equal((await probed).status(), 404);
    await page.getByTestId("token-input").waitFor({ timeout: T });
    await page.waitForTimeout(200);
    assert.equal(await page.getByTestId("dev-login-form").count(), 0);
    // A token signed with that secret still signs in.
    await page.getByTestId("token-input").fill(await gw2.token("carol"));
    await page.getByTestId("token-connect").click();
    await page.locator('[data-testid="conn-state"][data-state="open"]').waitFor({ timeout: T });
    await page.screenshot({ path: join(ARTIFACTS, "11-no-dev-login.png") });
  } finally {
    await context.close().catch(() => {});
    await proxy2.close().catch(() => {});
    await gw2.stop();
  }
});

// The binary serves the committed dist/ (tests/it/first_run.rs checks it byte for byte, and
// clients/demo/check-built.sh that dist/ matches src/), so this runs either way.
test("a token the gateway keeps refusing brings the sign-in form back; ?gateway= is only taken for this origin or loopback", async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // A link naming another origin: ignored, the page talks to its own.
    await page.goto(`${proxy.url}/?gateway=${encodeURIComponent("https://evil.example")}`);
    await page.getByTestId("login").waitFor({ timeout: T });
    assert.equal(await page.getByTestId("gateway-url").textContent(), proxy.url);
    const expired = await gw.token("zed", "--ttl", "1");
    await page.waitForTimeout(2100);
    await page.getByTestId("token-input").fill(expired);
    await page.getByTestId("token-connect").click();
    await page.getByTestId("login-notice").waitFor({ timeout: 30_000 });
    assert.match(await page.getByTestId("login-notice").textContent(), /refused/);
    await page.getByTestId("token-input").waitFor({ timeout: T });
    await page.screenshot({ path: join(ARTIFACTS, "12-token-refused.png") });
  } finally {
    await context.close().catch(() => {});
  }
});

test("no page errors", () => {
  for (const [user, c] of Object.entries(ctx)) {
    assert.deepEqual((c.errors ?? []).map(String), [], `${user}: uncaught errors in the page`);
  }
});
