// Browser plumbing: Debian's chromium driven by playwright-core, and a static server (one
// origin for every tab) for the test page, the built client and tokens.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const root = new URL("../../", import.meta.url).pathname;

export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
}

/** Serves /page.html, /dist/*, and /token?user= (a token from the gateway's CLI). */
export function staticServer(gw) {
  const server = createServer(async (req, res) => {
    const u = new URL(req.url, "http://x");
    try {
      if (u.pathname === "/token") {
        res.writeHead(200, { "Content-Type": "text/plain" }).end(gw.token(u.searchParams.get("user")));
        return;
      }
      const file = u.pathname === "/page.html" ? "test/browser/page.html" : u.pathname.startsWith("/dist/") ? u.pathname.slice(1) : null;
      if (!file || file.includes("..")) {
        res.writeHead(404).end();
        return;
      }
      const type = file.endsWith(".html") ? "text/html" : file.endsWith(".js") ? "text/javascript" : "application/octet-stream";
      res.writeHead(200, { "Content-Type": type }).end(await readFile(root + file));
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      server.base = `http://127.0.0.1:${server.address().port}`;
      resolve(server);
    }),
  );
}

export async function openTab(ctx, site, gw, user, extra = "") {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${site.base}/page.html?gw=${encodeURIComponent(gw.url)}&user=${user}${extra}`);
  await page.waitForFunction(() => window.loaded === true);
  return page;
}
