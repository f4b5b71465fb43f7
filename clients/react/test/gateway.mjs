// Starts a real Switchboard gateway for a test: a fresh SQLite database in a temporary
// directory, a free loopback port, and tokens minted by the same binary.
// The binary: $SWITCHBOARD_BIN, else target/debug/switchboard, else target/release/switchboard.
import { spawn, execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function binaryPath() {
  const fromEnv = process.env.SWITCHBOARD_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`SWITCHBOARD_BIN=${fromEnv} does not exist`);
    return fromEnv;
  }
  for (const p of [join(repo, "target/debug/switchboard"), join(repo, "target/release/switchboard")]) {
    if (existsSync(p)) return p;
  }
  throw new Error(
    `no gateway binary: build it (cargo build) or set SWITCHBOARD_BIN; looked in ${repo}/target/{debug,release}/switchboard`,
  );
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {Record<string,string>} [extraEnv] more environment (e.g. SERVER_API_KEY)
 * @returns {Promise<{url: string, port: number, dir: string, env: object, bin: string,
 *   token(user: string, ...args: string[]): Promise<string>, stop(): Promise<void>, output(): string}>}
 */
export async function startGateway(extraEnv = {}) {
  const bin = binaryPath();
  const dir = await mkdtemp(join(tmpdir(), "sb-test-"));
  const port = await freePort();
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${dir}/sb.db`,
    BIND_ADDR: `127.0.0.1:${port}`,
    RUST_LOG: process.env.RUST_LOG ?? "warn",
    ...extraEnv,
  };
  let out = "";
  // cwd in the temporary directory: the binary reads a .env file from its working directory.
  const child = spawn(bin, ["serve"], { env, cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  let exited = null;
  const exitedP = new Promise((r) => child.on("exit", (code, sig) => r((exited = { code, sig }))));
  // Never leave a gateway behind, even when the test process dies.
  const killOnExit = () => exited === null && child.kill("SIGKILL");
  process.once("exit", killOnExit);
  exitedP.then(() => process.off("exit", killOnExit));
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (exited === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => exited === null && child.kill("SIGKILL"), 5000);
      await exitedP;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`gateway exited (${JSON.stringify(exited)}) before it was ready:\n${out}`);
    }
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`gateway not ready within 60 s:\n${out}`);
    }
    await sleep(100);
  }

  const token = (user, ...args) =>
    new Promise((ok, fail) =>
      execFile(bin, ["token", user, ...args], { env, cwd: dir }, (err, stdout, stderr) =>
        err ? fail(new Error(`switchboard token ${user}: ${err.message}\n${stderr}`)) : ok(stdout.trim()),
      ),
    );

  return { url, port, dir, env, bin, token, stop, output: () => out };
}
