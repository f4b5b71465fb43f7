// Client-side test plumbing: a WebSocket class that can count, drop or refuse frames (fault
// injection on the client's own link; the gateway is always real), and a client factory.
import WebSocket from "ws";
import { EventSource } from "eventsource";
import { connect } from "../dist/index.js";
import { after } from "node:test";
import { startGateway } from "./gateway.mjs";

export { WebSocket, EventSource };

/** A WebSocket subclass with hooks: `tap.out` sees outgoing frames (return false to drop),
 * `tap.in` incoming ones (return false to drop), `tap.refuse` makes connections fail. */
export function tappedWebSocket(tap = {}) {
  tap.sent = [];
  tap.opened = 0;
  class Tapped extends WebSocket {
    constructor(url, ...rest) {
      super(tap.refuse ? url.replace(/\/\/127\.0\.0\.1:\d+/, "//127.0.0.1:9") : url, ...rest);
      tap.opened++;
    }
    send(data) {
      const f = JSON.parse(data);
      if (tap.out && tap.out(f) === false) return;
      tap.sent.push(f);
      super.send(data);
    }
    set onmessage(fn) {
      super.onmessage = fn && ((ev) => {
        const f = JSON.parse(ev.data);
        if (tap.in && tap.in(f) === false) return;
        fn(ev);
      });
    }
    get onmessage() {
      return super.onmessage;
    }
  }
  return Tapped;
}

/** A client for `user` against `gw`, recording events. */
export function client(gw, user, o = {}) {
  const rec = { tokens: [], messages: [], states: [], closes: [], typing: [], threads: [], errors: [] };
  const { ttl, tokenFor, ...rest } = o;
  const c = connect({
    url: gw.url,
    getToken: (reason) => {
      rec.tokens.push(reason);
      return tokenFor ? tokenFor(reason, rec.tokens.length) : gw.token(user, ttl);
    },
    WebSocket: rest.WebSocket ?? WebSocket,
    EventSource,
    shareAcrossTabs: false,
    outbox: "memory",
    backoff: { baseMs: 50, maxMs: 400 },
    requestTimeoutMs: 5000,
    ...rest,
  });
  c.on("message", (m) => rec.messages.push(m));
  c.on("state", (s) => rec.states.push(s));
  c.on("close", (x) => rec.closes.push(x));
  c.on("typing", (t) => rec.typing.push({ ...t, at: Date.now() }));
  c.on("thread", (t) => rec.threads.push(t));
  c.on("error", (e) => rec.errors.push(e));
  c.rec = rec;
  return c;
}

export function untilOpen(c, timeout = 10000) {
  if (c.state === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => (off(), reject(new Error(`not open within ${timeout} ms (state ${c.state})`))), timeout);
    const off = c.on("state", (s) => {
      if (s === "open") {
        clearTimeout(t);
        off();
        resolve();
      }
    });
  });
}

/** The gateways and clients a test file starts, all stopped after its tests (in reverse). */
export function fixtures() {
  const cleanups = [];
  after(async () => {
    for (const f of cleanups.reverse()) await f();
  });
  return {
    cleanups,
    async gateway(env) {
      const gw = await startGateway(env);
      cleanups.push(() => gw.cleanup());
      return gw;
    },
    mk(...a) {
      const c = client(...a);
      cleanups.push(() => c.close());
      return c;
    },
  };
}
