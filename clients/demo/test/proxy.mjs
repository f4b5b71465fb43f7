// The page's origin in the browser test: serves clients/demo/dist (or, when the gateway serves
// the page itself, forwards `/` too) and forwards everything else, WebSocket upgrades included,
// to the gateway, so that the page and the API share an origin (the gateway sends no CORS
// headers). It can also cut a user's live connections and refuse new ones, to take one page
// offline while it stays open.
import { createServer, request } from "node:http";
import { connect } from "node:net";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };
const STATIC = new Set(["/", "/index.html", "/app.js", "/app.css"]);

function userOf(url) {
  const token = url.searchParams.get("token");
  if (!token) return null;
  try {
    return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8")).sub ?? null;
  } catch {
    return null;
  }
}

/**
 * @param {{ gatewayPort: number, distDir: string, pageFromGateway: boolean }} o
 */
export async function startProxy({ gatewayPort, distDir, pageFromGateway }) {
  const blocked = new Set();
  const live = new Map(); // user -> Set of sockets (WebSocket and SSE)
  const track = (user, sock) => {
    if (!user) return;
    if (!live.has(user)) live.set(user, new Set());
    live.get(user).add(sock);
    sock.on("close", () => live.get(user)?.delete(sock));
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://proxy");
    if (!pageFromGateway && req.method === "GET" && STATIC.has(url.pathname)) {
      const file = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
      try {
        const body = await readFile(join(distDir, file));
        res.writeHead(200, { "Content-Type": TYPES[file.slice(file.lastIndexOf("."))], "Cache-Control": "no-store" });
        res.end(body);
      } catch {
        res.writeHead(404).end();
      }
      return;
    }
    const user = url.pathname === "/api/v1/events" ? userOf(url) : null;
    if (user && blocked.has(user)) {
      res.writeHead(503, { "Content-Type": "application/json" }).end('{"error":{"code":"unavailable","message":"proxy: offline"}}');
      return;
    }
    const up = request(
      { host: "127.0.0.1", port: gatewayPort, method: req.method, path: req.url, headers: req.headers, agent: false },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        ures.pipe(res);
      },
    );
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    if (user) track(user, res.socket);
    req.pipe(up);
  });

  server.on("upgrade", (req, sock, head) => {
    const url = new URL(req.url, "http://proxy");
    const user = userOf(url);
    if (user && blocked.has(user)) {
      sock.end("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    const up = connect(gatewayPort, "127.0.0.1", () => {
      let head1 = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) head1 += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(head1 + "\r\n");
      if (head.length) up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    const done = () => {
      up.destroy();
      sock.destroy();
    };
    up.on("error", done);
    up.on("close", done);
    sock.on("error", done);
    sock.on("close", done);
    track(user, sock);
  });

  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    /** Cut the user's connections now and refuse new ones until `unblock`. */
    block(user) {
      blocked.add(user);
      for (const s of live.get(user) ?? []) s.destroy();
    },
    unblock(user) {
      blocked.delete(user);
    },
    close: () =>
      new Promise((ok) => {
        for (const set of live.values()) for (const s of set) s.destroy();
        server.closeAllConnections?.();
        server.close(() => ok());
      }),
  };
}
