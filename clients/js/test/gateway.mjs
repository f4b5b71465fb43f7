// Starts real gateway processes for the tests: a temp dir with its SQLite file, a free port,
// spawn, wait for /healthz, and kill at the end (also when a test fails or the runner exits).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BIN = process.env.SWITCHBOARD_BIN ?? new URL("../../../target/release/switchboard", import.meta.url).pathname;
export const API_KEY = "test-server-api-key-0123456789abcdef0123";

const children = new Set();
function killAll() {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => (killAll(), process.exit(1)));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function startGateway(extraEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), "sb-js-"));
  const port = await freePort();
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${dir}/sb.db`,
    BIND_ADDR: `127.0.0.1:${port}`,
    JWT_LEEWAY_S: "0",
    SERVER_API_KEY: API_KEY,
    RUST_LOG: "warn",
    ...extraEnv,
  };
  const gw = {
    dir,
    port,
    env,
    url: `http://127.0.0.1:${port}`,
    proc: null,
    log: "",
    token(user, ttl) {
      const args = ["token", user];
      if (ttl !== undefined) args.push("--ttl", String(ttl));
      return execFileSync(BIN, args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    },
    async start() {
      const p = spawn(BIN, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
      children.add(p);
      p.stdout.on("data", (d) => (gw.log += d));
      p.stderr.on("data", (d) => (gw.log = (gw.log + d).slice(-20000)));
      p.on("exit", () => children.delete(p));
      gw.proc = p;
      const deadline = Date.now() + 20000;
      for (;;) {
        if (p.exitCode !== null) throw new Error(`gateway exited ${p.exitCode}:\n${gw.log}`);
        try {
          const r = await fetch(gw.url + "/healthz");
          if (r.ok) return gw;
        } catch {}
        if (Date.now() > deadline) throw new Error("gateway did not become healthy:\n" + gw.log);
        await sleep(50);
      }
    },
    /** SIGKILL (a crash) or SIGTERM (a drain, sockets closed with 1001); waits for the exit. */
    async stop(signal = "SIGKILL") {
      const p = gw.proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const done = new Promise((r) => p.once("exit", r));
      p.kill(signal);
      await done;
    },
    async cleanup() {
      await gw.stop("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
    /** REST as a user (the "other side" of the tests). */
    async rest(user, method, path, body) {
      const r = await fetch(gw.url + "/api/v1" + path, {
        method,
        headers: { Authorization: `Bearer ${gw.token(user)}`, ...(body ? { "Content-Type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await r.text();
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    },
    async server(method, path, body) {
      const r = await fetch(gw.url + "/api/v1/server" + path, {
        method,
        headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await r.text();
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    },
    async wsConnections() {
      const text = await (await fetch(gw.url + "/metrics")).text();
      const m = text.match(/^switchboard_connections\{transport="ws"\}\s+(\d+)/m);
      return m ? Number(m[1]) : 0;
    },
  };
  return gw.start();
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(pred, { timeout = 10000, interval = 25, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(interval);
  }
}
