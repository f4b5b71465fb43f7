import type { AckFrame, ErrorFrame, EventFrame, HelloFrame, PongFrame, Request, ServerFrame } from "./frames.js";
import { SwitchboardError } from "./errors.js";
import { wsUrl, type Transport, type TransportHandlers } from "./transport.js";

interface Pending {
  resolve(f: AckFrame | PongFrame): void;
  reject(e: SwitchboardError): void;
  timer: ReturnType<typeof setTimeout>;
}

// A per-instance prefix keeps refs unique across tabs and reloads sharing a node's logs.
let refCounter = 0;
const refPrefix = Math.random().toString(36).slice(2, 8);

/** The WebSocket transport: frames out, replies matched back by `ref`. */
export class WsTransport implements Transport {
  private readonly sock: WebSocket;
  private readonly pending = new Map<string, Pending>();
  private sawHello = false;
  private closed = false;

  constructor(base: string, token: string, WS: typeof WebSocket, private readonly h: TransportHandlers) {
    this.sock = new WS(wsUrl(base, token));
    this.sock.onmessage = (ev: MessageEvent) => this.onFrame(ev.data);
    this.sock.onclose = (ev: CloseEvent) => this.finish(ev.code || 1006, ev.reason || "");
    // An error is always followed by close; nothing to do here but keep it from being unhandled.
    this.sock.onerror = () => {};
  }

  request(req: Request, timeoutMs: number): Promise<AckFrame | PongFrame> {
    return new Promise((resolve, reject) => {
      if (this.closed || this.sock.readyState !== 1) {
        reject(new SwitchboardError("unavailable", "not connected"));
        return;
      }
      const ref = `${refPrefix}-${++refCounter}`;
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new SwitchboardError("timeout", `no reply to ${req.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      this.sock.send(JSON.stringify({ ...req, ref }));
    });
  }

  notify(req: Request): void {
    if (!this.closed && this.sock.readyState === 1) this.sock.send(JSON.stringify(req));
  }

  close(code: number, reason: string): void {
    try {
      // Browsers only let a page send 1000 or 3000-4999.
      this.sock.close(1000, reason.slice(0, 100));
    } catch {
      /* already closing */
    }
    this.finish(code, reason);
  }

  private onFrame(data: unknown): void {
    if (typeof data !== "string") return; // the gateway sends text frames only
    let f: ServerFrame;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    switch (f.type) {
      case "hello":
        this.sawHello = true;
        this.h.onHello(f as HelloFrame);
        return;
      case "ack":
      case "pong": {
        const p = f.ref !== undefined ? this.pending.get(f.ref) : undefined;
        if (!p) return;
        this.pending.delete(f.ref!);
        clearTimeout(p.timer);
        p.resolve(f);
        return;
      }
      case "error": {
        const e = f as ErrorFrame;
        const err = new SwitchboardError(e.code, e.message, { retryAfterMs: e.retry_after_ms });
        const p = e.ref !== undefined ? this.pending.get(e.ref) : undefined;
        if (!p) {
          this.h.onError(err);
          return;
        }
        this.pending.delete(e.ref!);
        clearTimeout(p.timer);
        p.reject(err);
        return;
      }
      default:
        this.h.onEvent(f as EventFrame);
    }
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.onmessage = this.sock.onclose = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SwitchboardError("unavailable", `connection closed (${code})`));
    }
    this.pending.clear();
    this.h.onClose(code, reason, this.sawHello);
  }
}
