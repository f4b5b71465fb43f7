import { Backoff } from "./backoff.js";
import { SwitchboardError, isPermanent } from "./errors.js";
import { Close, type AckFrame, type EventFrame, type HelloFrame, type Message, type Request } from "./frames.js";
import { Outbox } from "./outbox.js";
import { SeqTracker } from "./seq.js";
import { SseTransport } from "./sse.js";
import type { OutboxEntry, OutboxStorage } from "./storage.js";
import { apiUrl, type Transport, type TransportHandlers } from "./transport.js";
import type { ClientEvents, CloseInfo, ConnectionState, ConnectOptions, HistoryQuery, Ops, TokenReason } from "./types.js";
import { WsTransport } from "./ws.js";

/** WebSocket failures before hello, in a row, before "auto" tries SSE. */
const WS_FAILURES_BEFORE_SSE = 3;
/** Failures in a row after which the state reads "offline" rather than "reconnecting". */
const FAILURES_OFFLINE = 3;

export type Emit = <K extends keyof ClientEvents>(type: K, ev: ClientEvents[K]) => void;

export interface CoreDeps {
  opts: ConnectOptions;
  emit: Emit;
  /** Outbox storage for a user (known from the token's `sub`, or from hello). */
  storageFor: (userId: string) => OutboxStorage;
  /** Positions carried over from a follower tab that just became leader. */
  have?: Map<string, number>;
  /** A token already fetched (by the tab election), used for the first connection. */
  token?: string;
}

interface ReadWaiter {
  seq: number;
  resolve(): void;
  reject(e: SwitchboardError): void;
}

/** A thread's read position that the gateway has not acknowledged yet. */
interface PendingRead {
  /** The highest seq asked for (the gateway never moves a read position back). */
  seq: number;
  waiters: ReadWaiter[];
  busy: boolean;
}

/**
 * The connection owner: one transport at a time, reconnects with backoff, token refresh,
 * the outbox, per-thread seq tracking and catch-up. In a shared tab group only the leader
 * runs one.
 */
export class Core implements Ops {
  state: ConnectionState = "connecting";
  userId: string | null = null;
  lastClose: CloseInfo | null = null;
  readonly tracker: SeqTracker;

  private token: string | null = null;
  private refreshing: Promise<string> | null = null;
  private transport: Transport | null = null;
  private gen = 0;
  private mode: "ws" | "sse";
  private readonly backoff: Backoff;
  private preHelloFailures = 0;
  private everOpen = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private openWaiters: Array<{ resolve(): void; reject(e: SwitchboardError): void }> = [];
  private readonly watched = new Set<string>();
  private readonly reads = new Map<string, PendingRead>();
  private outbox: Outbox | null = null;
  private outboxReady!: Promise<Outbox>;
  private resolveOutbox!: (o: Outbox) => void;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly d: CoreDeps) {
    const o = d.opts;
    this.mode = o.transport === "sse" ? "sse" : "ws";
    this.backoff = new Backoff(o.backoff?.baseMs ?? 500, o.backoff?.maxMs ?? 30000);
    this.timeoutMs = o.requestTimeoutMs ?? 10000;
    this.fetchFn = o.fetch ?? globalThis.fetch?.bind(globalThis);
    this.tracker = new SeqTracker((m) => d.emit("message", m), (tid, after) => this.fetchAfter(tid, after));
    if (d.have) for (const [k, v] of d.have) this.tracker.have.set(k, v);
    this.outboxReady = new Promise((r) => (this.resolveOutbox = r));
    if (d.token) {
      this.token = d.token;
      this.noteUser(subOf(d.token));
    }
  }

  start(): void {
    void this.connect(this.token === null ? "initial" : null);
  }

  // ---- connection lifecycle -------------------------------------------------------------

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.d.emit("state", s);
  }

  private async connect(reason: TokenReason | null): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    try {
      if (reason !== null || this.token === null) {
        this.token = await this.d.opts.getToken(reason ?? "initial");
        this.noteUser(subOf(this.token));
      }
    } catch (e) {
      this.d.emit("error", new SwitchboardError("unauthorized", "getToken failed: " + (e instanceof Error ? e.message : String(e))));
      this.retryLater(reason ?? "refused");
      return;
    }
    if (this.stopped) return;
    const gen = ++this.gen;
    const live = () => gen === this.gen && !this.stopped;
    const h: TransportHandlers = {
      onHello: (f) => live() && this.onHello(f),
      onEvent: (f) => live() && this.onEvent(f),
      onError: (e) => live() && this.d.emit("error", e),
      onClose: (code, why, sawHello) => live() && this.onClose(code, why, sawHello),
    };
    try {
      this.transport =
        this.mode === "ws"
          ? new WsTransport(this.d.opts.url, this.token!, this.d.opts.WebSocket ?? globalThis.WebSocket, h)
          : new SseTransport(this.d.opts.url, this.token!, this.d.opts.EventSource ?? (globalThis as any).EventSource, (m, p, b) => this.rest(m, p, b) as any, h);
    } catch (e) {
      // No WebSocket/EventSource available, or a bad URL: a failure before hello.
      this.d.emit("error", SwitchboardError.from(e));
      if (live()) this.onClose(Close.ABNORMAL, "cannot open", false);
    }
  }

  private retryLater(reason: TokenReason | null): void {
    if (this.stopped) return;
    const delay = this.backoff.next();
    this.setState(!this.everOpen ? "connecting" : this.backoff.failures > FAILURES_OFFLINE ? "offline" : "reconnecting");
    this.timer = setTimeout(() => void this.connect(reason), delay);
  }

  private onHello(f: HelloFrame): void {
    this.backoff.reset();
    this.preHelloFailures = 0;
    this.everOpen = true;
    this.noteUser(f.user_id);
    const { type: _t, ...hello } = f;
    this.setState("open");
    this.d.emit("hello", hello);
    const waiters = this.openWaiters;
    this.openWaiters = [];
    waiters.forEach((w) => w.resolve());
    // Watches belong to the session: renew them, and tell the app where everyone is now.
    if (this.watched.size > 0) {
      this.request({ type: "watch_presence", user_ids: [...this.watched] })
        .then((a) => a.presence?.forEach((p) => this.d.emit("presence", p)))
        .catch(() => {});
    }
    // Catch up every thread we track: whatever was sent while we were away comes as events.
    for (const tid of [...this.tracker.have.keys()]) void this.tracker.catchUp(tid);
    // Read positions set while disconnected (or lost in flight) go out now.
    for (const tid of [...this.reads.keys()]) this.flushRead(tid);
    this.outbox?.kick();
  }

  private onClose(code: number, reason: string, sawHello: boolean): void {
    this.transport = null;
    this.lastClose = { code, reason };
    this.d.emit("close", { code, reason });
    if (code === Close.REVOKED || code === Close.REPLACED) {
      // Reconnecting would undo the revoke, or close another of the user's sessions.
      this.stop(new SwitchboardError("closed", code === Close.REVOKED ? "access revoked (4003)" : "replaced by another session (4009)"));
      return;
    }
    if (code === Close.TOKEN_EXPIRED) {
      this.setState("reconnecting");
      void this.connect("expired");
      return;
    }
    if (!sawHello) {
      this.preHelloFailures++;
      if (this.d.opts.transport === "auto" || this.d.opts.transport === undefined) {
        if (this.mode === "ws" && this.preHelloFailures >= WS_FAILURES_BEFORE_SSE && this.canSse()) {
          void this.tryFallback();
          return;
        }
      }
      // The browser hides the HTTP status: the token may have been refused.
      this.retryLater("refused");
      return;
    }
    this.retryLater(null);
  }

  private canSse(): boolean {
    return !!(this.d.opts.EventSource ?? (globalThis as any).EventSource) && !!this.fetchFn;
  }

  /** WebSockets keep failing: if the gateway answers plain HTTP, a proxy is eating the
   * upgrade, so SSE+REST will work where the socket does not. */
  private async tryFallback(): Promise<void> {
    let ok = false;
    try {
      const r = await withTimeout(this.fetchFn(this.d.opts.url.replace(/\/+$/, "") + "/healthz"), 3000);
      ok = r.ok;
    } catch {
      ok = false;
    }
    if (this.stopped) return;
    if (ok) {
      this.mode = "sse";
      this.preHelloFailures = 0;
    }
    this.retryLater("refused");
  }

  private stop(err: SwitchboardError): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.setState("stopped");
    const waiters = this.openWaiters;
    this.openWaiters = [];
    waiters.forEach((w) => w.reject(err));
    this.outbox?.rejectAll(err);
    const reads = [...this.reads.values()];
    this.reads.clear();
    for (const r of reads) r.waiters.splice(0).forEach((w) => w.reject(err));
  }

  close(): void {
    if (this.stopped) return;
    const t = this.transport;
    this.transport = null;
    this.gen++;
    this.stop(new SwitchboardError("closed", "client closed"));
    t?.close(Close.NORMAL, "client closed");
  }

  private noteUser(id: string | null): void {
    if (!id || this.userId) return;
    this.userId = id;
    this.outbox = new Outbox(
      this.d.storageFor(id),
      (e) => this.sendNow(e),
      () => this.state === "open",
      (m) => this.tracker.observe(m),
      () => this.dropStuck(),
    );
    this.resolveOutbox(this.outbox);
    if (this.state === "open") this.outbox.kick();
  }

  /** A send got no ack in time on an open connection: assume it is dead, reconnect, resend. */
  private dropStuck(): void {
    const t = this.transport;
    if (!t) return;
    this.gen++;
    t.close(Close.NORMAL, "request timeout");
    this.onClose(Close.ABNORMAL, "request timeout", true);
  }

  // ---- requests ---------------------------------------------------------------------------

  private whenOpen(): Promise<void> {
    if (this.state === "open" && this.transport) return Promise.resolve();
    if (this.stopped) return Promise.reject(new SwitchboardError("closed", "client is stopped"));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: SwitchboardError) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.openWaiters = this.openWaiters.filter((x) => x !== w);
        reject(new SwitchboardError("timeout", `not connected within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.openWaiters.push(w);
    });
  }

  /** One request over the current transport, waiting (up to the timeout) for a connection. */
  async request(req: Request): Promise<AckFrame> {
    await this.whenOpen();
    return (await this.transport!.request(req, this.timeoutMs)) as AckFrame;
  }

  private async fetchAfter(threadId: string, after: number) {
    const a = await this.request({ type: "history", thread_id: threadId, after_seq: after, limit: 200 });
    return { messages: a.messages ?? [], has_more: !!a.has_more };
  }

  private async sendNow(e: OutboxEntry): Promise<Message> {
    if (!this.transport || this.state !== "open") throw new SwitchboardError("unavailable", "not connected");
    const req: Request = { type: "send", body: e.body, client_id: e.client_id };
    if (e.thread_id !== undefined) req.thread_id = e.thread_id;
    if (e.to !== undefined) req.to = e.to;
    if (e.reply_to !== undefined) req.reply_to = e.reply_to;
    if (e.metadata !== undefined) req.metadata = e.metadata;
    const a = (await this.transport.request(req, this.timeoutMs)) as AckFrame;
    return a.message!;
  }

  private onEvent(f: EventFrame): void {
    const emit = this.d.emit;
    switch (f.type) {
      case "message":
        void this.tracker.observe(f.message);
        return;
      case "message_updated":
      case "message_deleted":
        emit(f.type, f.message);
        return;
      case "thread": {
        const { event, thread } = f;
        if (event === "member_removed" && this.userId && !thread.members.includes(this.userId)) this.tracker.forget(thread.id);
        // A new thread's messages all follow this event: start before the first.
        else this.tracker.seed(thread.id, event === "created" ? 0 : thread.last_seq);
        emit("thread", { event, thread });
        return;
      }
      case "presence": {
        const { type: _t, ...p } = f;
        emit("presence", p);
        return;
      }
      case "notification":
        emit("notification", f.notification);
        return;
      default: {
        const { type, ...rest } = f;
        emit(type, rest as never);
      }
    }
  }

  // ---- Ops --------------------------------------------------------------------------------

  async send(e: OutboxEntry): Promise<Message> {
    if (this.stopped) throw new SwitchboardError("closed", "client is stopped");
    const ob = await this.outboxReady;
    return ob.add(e);
  }

  async history(threadId: string, q: HistoryQuery) {
    const req: Request = { type: "history", thread_id: threadId };
    if (q.afterSeq !== undefined) req.after_seq = q.afterSeq;
    if (q.beforeSeq !== undefined) req.before_seq = q.beforeSeq;
    if (q.limit !== undefined) req.limit = q.limit;
    const a = await this.request(req);
    const page = { messages: a.messages ?? [], has_more: !!a.has_more };
    await this.tracker.noteHistory(threadId, page, q);
    return { messages: page.messages, hasMore: page.has_more };
  }

  async threads(q: { limit?: number; before?: string } = {}) {
    const req: Request = { type: "threads" };
    if (q.limit !== undefined) req.limit = q.limit;
    if (q.before !== undefined) req.before = q.before;
    const a = await this.request(req);
    const threads = a.threads ?? [];
    for (const t of threads) this.tracker.seed(t.id, t.last_seq);
    return { threads, next: a.next ?? null };
  }

  /** Resolves when the gateway has acknowledged a read position at or past `seq`. While
   * disconnected it waits (no timeout): the position is queued, the highest seq per thread,
   * and sent after the next hello. */
  read(threadId: string, seq: number): Promise<void> {
    if (this.stopped) return Promise.reject(new SwitchboardError("closed", "client is stopped"));
    return new Promise((resolve, reject) => {
      let r = this.reads.get(threadId);
      if (!r) this.reads.set(threadId, (r = { seq, waiters: [], busy: false }));
      else if (seq > r.seq) r.seq = seq;
      r.waiters.push({ seq, resolve, reject });
      this.flushRead(threadId);
    });
  }

  /** Sends a thread's queued read position, if connected and none is in flight. */
  private flushRead(threadId: string): void {
    const r = this.reads.get(threadId);
    if (!r || r.busy || this.stopped || this.state !== "open" || !this.transport) return;
    r.busy = true;
    const seq = r.seq;
    // Settles the calls this position covers; a higher one asked meanwhile goes out next.
    const settle = (fn: (w: ReadWaiter) => void) => {
      r.busy = false;
      const done = r.waiters.filter((w) => w.seq <= seq);
      r.waiters = r.waiters.filter((w) => w.seq > seq);
      if (r.waiters.length === 0 && this.reads.get(threadId) === r) this.reads.delete(threadId);
      done.forEach(fn);
      if (r.waiters.length > 0) this.flushRead(threadId);
    };
    this.transport.request({ type: "read", thread_id: threadId, seq }, this.timeoutMs).then(
      () => settle((w) => w.resolve()),
      (x) => {
        const err = SwitchboardError.from(x);
        if (isPermanent(err.code)) {
          settle((w) => w.reject(err));
          return;
        }
        r.busy = false;
        // Not stored: it stays queued. A lost connection sends it after the next hello;
        // otherwise (a timeout, a rate limit, the database down) try again shortly.
        if (this.state === "open") setTimeout(() => this.flushRead(threadId), err.retryAfterMs ?? 1000);
      },
    );
  }

  async delivered(threadId: string, seq: number): Promise<void> {
    await this.request({ type: "delivered", thread_id: threadId, seq });
  }

  async typing(threadId: string, isTyping: boolean): Promise<void> {
    // Lossy by design: not connected means nobody needs to see it.
    if (this.state === "open") this.transport?.notify({ type: "typing", thread_id: threadId, is_typing: isTyping });
  }

  async watchPresence(userIds: string[]) {
    userIds.forEach((u) => this.watched.add(u));
    const a = await this.request({ type: "watch_presence", user_ids: userIds });
    return a.presence ?? [];
  }

  async unwatchPresence(userIds: string[]): Promise<void> {
    userIds.forEach((u) => this.watched.delete(u));
    if (this.state !== "open") return; // the next session starts without them anyway
    await this.request({ type: "unwatch_presence", user_ids: userIds });
  }

  async pendingSends(): Promise<OutboxEntry[]> {
    if (!this.outbox) return [];
    return this.outbox.entries();
  }

  private async currentToken(): Promise<string> {
    if (this.token) return this.token;
    return this.refreshToken("initial");
  }

  private refreshToken(reason: TokenReason): Promise<string> {
    // One refresh at a time, however many calls saw the 401.
    if (!this.refreshing) {
      this.refreshing = Promise.resolve(this.d.opts.getToken(reason)).then(
        (t) => {
          this.refreshing = null;
          this.token = t;
          this.noteUser(subOf(t));
          return t;
        },
        (e) => {
          this.refreshing = null;
          throw e;
        },
      );
    }
    return this.refreshing;
  }

  /** REST under /api/v1 with the current token; one refresh and retry on 401. */
  async rest(method: string, path: string, body?: unknown): Promise<unknown> {
    if (!this.fetchFn) throw new SwitchboardError("internal", "no fetch available");
    let token = await this.currentToken();
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let res: Response;
      try {
        res = await withTimeout(
          this.fetchFn(apiUrl(this.d.opts.url, path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }),
          this.timeoutMs,
        );
      } catch (e) {
        throw e instanceof SwitchboardError ? e : new SwitchboardError("unavailable", "request failed: " + (e instanceof Error ? e.message : String(e)));
      }
      if (res.status === 401 && attempt === 0) {
        token = await this.refreshToken("expired");
        continue;
      }
      const text = await res.text();
      const json = text ? safeJson(text) : undefined;
      if (!res.ok) {
        const err = (json as { error?: { code?: string; message?: string; retry_after_ms?: number } })?.error;
        throw new SwitchboardError((err?.code as never) ?? statusCode(res.status), err?.message ?? `HTTP ${res.status}`, {
          status: res.status,
          retryAfterMs: err?.retry_after_ms,
        });
      }
      return json;
    }
  }
}

/** A JWT's payload, without verifying it (the gateway does). */
export function claimsOf(token: string): Record<string, unknown> | null {
  try {
    const part = token.split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** The `sub` of a JWT, unverified: it is only a namespace (the tab group, the outbox's
 * database), known before the first hello. */
export function subOf(token: string): string | null {
  const sub = claimsOf(token)?.sub;
  return typeof sub === "string" && sub !== "" ? sub : null;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function statusCode(status: number) {
  const m: Record<number, string> = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict", 413: "too_large", 429: "rate_limited", 503: "unavailable" };
  return (m[status] ?? "internal") as never;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SwitchboardError("timeout", `no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
