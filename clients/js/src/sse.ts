import type { AckFrame, EventFrame, HelloFrame, HistoryPage, Message, PongFrame, Presence, Request, Thread, ThreadPage } from "./frames.js";
import { SwitchboardError } from "./errors.js";
import { withTimeout } from "./util.js";
import { apiUrl, type Transport, type TransportHandlers } from "./transport.js";

/** A REST call with the current token (the core refreshes it on a 401). */
export type RestFn = <T>(method: string, path: string, body?: unknown) => Promise<T>;

// Every server -> client event type; EventSource only delivers named events we listen for.
const EVENT_TYPES = [
  "message", "message_updated", "message_deleted", "typing", "read", "delivered", "presence",
  "notification", "notification_read", "thread", "broadcast",
] as const;

/** Events over SSE (`GET /api/v1/events`), actions over REST. */
export class SseTransport implements Transport {
  private readonly es: EventSource;
  private sawHello = false;
  private closed = false;
  // `to` sends need the direct thread's id first; the gateway returns the existing one.
  private readonly direct = new Map<string, string>();

  constructor(base: string, token: string, ES: typeof EventSource, private readonly rest: RestFn, private readonly h: TransportHandlers) {
    this.es = new ES(apiUrl(base, "/events") + "?token=" + encodeURIComponent(token));
    this.es.addEventListener("hello", (ev) => {
      if (this.closed) return;
      this.sawHello = true;
      this.h.onHello(parse<HelloFrame>(ev));
    });
    for (const t of EVENT_TYPES) this.es.addEventListener(t, (ev) => {
      if (!this.closed) this.h.onEvent(parse<EventFrame>(ev));
    });
    // The stream's last event carries the WebSocket close code it ended with.
    this.es.addEventListener("close", (ev) => {
      const code = Number(parse<{ code?: number }>(ev).code ?? 1006);
      this.finish(code, "stream closed");
    });
    // EventSource would reconnect by itself with the same (maybe expired) token and no
    // backoff of ours; the core decides instead.
    this.es.onerror = () => this.finish(1006, "stream error");
  }

  async request(req: Request, timeoutMs: number): Promise<AckFrame | PongFrame> {
    if (this.closed) throw new SwitchboardError("unavailable", "not connected");
    return withTimeout(this.call(req), timeoutMs, `no reply to ${req.type}`);
  }

  notify(req: Request): void {
    this.call(req).catch((e) => this.h.onError(SwitchboardError.from(e)));
  }

  close(code: number, reason: string): void {
    this.finish(code, reason);
  }

  private async call(req: Request): Promise<AckFrame | PongFrame> {
    const t = (id: string) => `/threads/${encodeURIComponent(id)}`;
    switch (req.type) {
      case "send": {
        let tid = req.thread_id;
        if (!tid && req.to) {
          tid = this.direct.get(req.to);
          if (!tid) {
            const th = await this.rest<Thread>("POST", "/threads", { kind: "direct", members: [req.to] });
            this.direct.set(req.to, (tid = th.id));
          }
        }
        if (!tid) throw new SwitchboardError("bad_request", "send needs thread_id or to");
        const { body, client_id, reply_to, metadata, kind } = req;
        const r = await this.rest<{ message: Message }>("POST", t(tid) + "/messages", { body, client_id, reply_to, metadata, kind });
        return { type: "ack", message: r.message };
      }
      case "history": {
        const q = new URLSearchParams();
        if (req.after_seq !== undefined) q.set("after_seq", String(req.after_seq));
        if (req.before_seq !== undefined) q.set("before_seq", String(req.before_seq));
        if (req.limit !== undefined) q.set("limit", String(req.limit));
        const qs = q.toString();
        const r = await this.rest<HistoryPage>("GET", t(req.thread_id) + "/messages" + (qs ? "?" + qs : ""));
        return { type: "ack", ...r };
      }
      case "threads": {
        const q = new URLSearchParams();
        if (req.limit !== undefined) q.set("limit", String(req.limit));
        if (req.before !== undefined) q.set("before", req.before);
        const qs = q.toString();
        const r = await this.rest<ThreadPage>("GET", "/threads" + (qs ? "?" + qs : ""));
        return { type: "ack", ...r };
      }
      case "read":
        await this.rest("POST", t(req.thread_id) + "/read", { seq: req.seq });
        return { type: "ack" };
      case "delivered":
        // The REST API has no delivered receipt; it is a hint, so over SSE it is skipped.
        return { type: "ack" };
      case "typing":
        await this.rest("POST", t(req.thread_id) + "/typing", { is_typing: req.is_typing });
        return { type: "ack" };
      case "watch_presence": {
        // No watch over REST: a lookup now; events come only for direct-thread partners.
        const p = await this.rest<Presence[]>("GET", "/presence?user_ids=" + req.user_ids.map(encodeURIComponent).join(","));
        return { type: "ack", presence: p };
      }
      case "unwatch_presence":
        return { type: "ack" };
      case "ping":
        return { type: "pong" };
    }
  }

  private finish(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.es.close();
    this.h.onClose(code, reason, this.sawHello);
  }
}

function parse<T>(ev: Event): T {
  return JSON.parse((ev as MessageEvent).data) as T;
}
