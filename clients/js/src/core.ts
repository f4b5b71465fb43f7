import { Auth } from "./auth.js";
import { backoffFrom, type Backoff } from "./backoff.js";
import { SwitchboardError } from "./errors.js";
import { Close, type AckFrame, type EventFrame, type HelloFrame, type Message, type Request } from "./frames.js";
import { subOf } from "./jwt.js";
import { Outbox } from "./outbox.js";
import { ReadQueue } from "./reads.js";
import { SeqTracker } from "./seq.js";
import { SseTransport } from "./sse.js";
import type { OutboxEntry, OutboxStorage } from "./storage.js";
import type { Transport, TransportHandlers } from "./transport.js";
import type { ClientEvents, CloseInfo, ConnectionState, ConnectOptions, HistoryQuery, Ops, TokenReason } from "./types.js";
import { Limiter, Waiters } from "./util.js";
import { Watches } from "./watches.js";
import { WsTransport } from "./ws.js";

/** WebSocket failures before hello, in a row, with a token the gateway accepts over REST,
 * before "auto" switches to SSE. */
const WS_FAILURES_BEFORE_SSE = 3;
/** Failures in a row after which the state reads "offline" rather than "reconnecting". */
const FAILURES_OFFLINE = 3;
/** Tokens refused in a row (a 401 on the REST check) before the client stops. */
export const MAX_REFUSALS = 5;
/** History requests in flight at once (gap fills and catch-ups). */
const HISTORY_CONCURRENCY = 4;
/** `threads` pages read after a reconnect to learn which threads moved (100 threads each). */
const CATCHUP_PAGES = 5;
const CATCHUP_PAGE_SIZE = 100;
/** Who made a call in this tab (as opposed to another tab's id). */
export const SELF = "self";

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

/**
 * The connection owner: one transport at a time, reconnects with backoff, heartbeats, token
 * refresh, the outbox, per-thread seq tracking and catch-up. In a shared tab group only the
 * leader runs one.
 */
export class Core implements Ops {
  state: ConnectionState = "connecting";
  userId: string | null = null;
  lastClose: CloseInfo | null = null;
  readonly tracker: SeqTracker;

  private readonly auth: Auth;
  private transport: Transport | null = null;
  private gen = 0;
  private mode: "ws" | "sse";
  private readonly backoff: Backoff;
  private preHelloFailures = 0;
  private refusals = 0;
  private everOpen = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private readonly openWaiters = new Waiters();
  /** Presence watches, per user and requester (a tab id, or SELF). */
  private readonly watched = new Watches();
  private readonly reads: ReadQueue;
  private outbox: Outbox | null = null;
  private outboxReady!: Promise<Outbox>;
  private resolveOutbox!: (o: Outbox) => void;
  private readonly timeoutMs: number;
  private readonly historyLimit = new Limiter(HISTORY_CONCURRENCY);
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private helloTimer: ReturnType<typeof setTimeout> | null = null;
  private pinging = false;
  /** SSE in "auto" mode: the next WebSocket trial, and how many failed so far. */
  private upgradeTimer: ReturnType<typeof setTimeout> | null = null;
  private upgradeFailures = 0;
  private upgradeTrial: Transport | null = null;

  constructor(private readonly d: CoreDeps) {
    const o = d.opts;
    this.mode = o.transport === "sse" ? "sse" : "ws";
    this.backoff = backoffFrom(o.backoff);
    this.timeoutMs = o.requestTimeoutMs ?? 10000;
    this.auth = new Auth(o.url, o.getToken, o.fetch ?? globalThis.fetch?.bind(globalThis), this.timeoutMs, (sub) => this.noteUser(sub));
    this.tracker = new SeqTracker((m) => d.emit("message", m), (tid, after) => this.fetchAfter(tid, after), o.backoff);
    if (d.have) for (const [k, v] of d.have) this.tracker.have.set(k, v);
    this.reads = new ReadQueue(
      (req) => (this.transport ? this.transport.request(req, this.timeoutMs) : Promise.reject(new SwitchboardError("unavailable", "not connected"))),
      () => this.state === "open" && !!this.transport,
    );
    this.outboxReady = new Promise((r) => (this.resolveOutbox = r));
    if (d.token) {
      this.auth.token = d.token;
      this.noteUser(subOf(d.token));
    }
  }

  /** The transport in use (or being tried): "ws" or "sse". */
  get transportKind(): "ws" | "sse" {
    return this.mode;
  }

  start(): void {
    void this.connect(this.auth.token === null ? "initial" : null);
  }

  private get auto(): boolean {
    return this.d.opts.transport === "auto" || this.d.opts.transport === undefined;
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
      if (reason !== null || this.auth.token === null) await this.auth.refresh(reason ?? "initial");
    } catch (e) {
      if (this.stopped) return;
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
      this.transport = this.mode === "ws" ? this.openWs(h) : this.openSse(h);
      // A socket that opens but never says hello (a half-open link, a stuck proxy) counts
      // as a failure before hello.
      this.helloTimer = setTimeout(() => {
        const t = this.transport;
        if (!live() || this.state === "open" || !t) return;
        this.gen++;
        t.close(Close.NORMAL, "no hello");
        this.onClose(Close.ABNORMAL, "no hello", false);
      }, this.timeoutMs);
    } catch (e) {
      // No WebSocket/EventSource available, or a bad URL: a failure before hello. (The
      // error's message is scrubbed of the token the URL carries.)
      this.d.emit("error", SwitchboardError.from(e));
      if (live()) this.onClose(Close.ABNORMAL, "cannot open", false);
    }
  }

  private openWs(h: TransportHandlers): Transport {
    return new WsTransport(this.d.opts.url, this.auth.token!, this.d.opts.WebSocket ?? globalThis.WebSocket, h);
  }

  private openSse(h: TransportHandlers): Transport {
    const ES = this.d.opts.EventSource ?? (globalThis as any).EventSource;
    return new SseTransport(this.d.opts.url, this.auth.token!, ES, (m, p, b) => this.auth.rest(m, p, b) as any, h);
  }

  private retryLater(reason: TokenReason | null): void {
    if (this.stopped) return;
    const delay = this.backoff.next();
    this.setState(!this.everOpen ? "connecting" : this.backoff.failures > FAILURES_OFFLINE ? "offline" : "reconnecting");
    this.timer = setTimeout(() => void this.connect(reason), delay);
  }

  private onHello(f: HelloFrame): void {
    const gen = this.gen;
    this.backoff.reset();
    this.preHelloFailures = 0;
    this.refusals = 0;
    this.everOpen = true;
    this.noteUser(f.user_id);
    const { type: _t, ...hello } = f;
    this.setState("open");
    this.d.emit("hello", hello);
    this.openWaiters.release();
    this.startHeartbeat(f.heartbeat_s);
    if (this.mode === "sse" && this.auto) this.scheduleUpgrade();
    // Watches belong to the session: renew them, and tell the app where everyone is now.
    if (this.watched.size > 0) {
      this.request({ type: "watch_presence", user_ids: this.watched.users() })
        .then((a) => a.presence?.forEach((p) => this.d.emit("presence", p)))
        .catch(() => {});
    }
    // Whatever was sent while we were away comes as events.
    this.tracker.resetRetries();
    void this.catchUpAll(gen);
    // Read positions set while disconnected (or lost in flight) go out now.
    this.reads.flushAll();
    this.outbox?.kick();
  }

  /** After a hello: list the threads (a few pages at most) and catch up those whose
   * `last_seq` is past what we have. If the listing fails or is cut short, the tracked
   * threads it does not show are caught up too. */
  private async catchUpAll(gen: number): Promise<void> {
    if (this.tracker.have.size === 0) return;
    let latest: Map<string, number> | null = new Map();
    let complete = false;
    try {
      let before: string | undefined;
      for (let page = 0; page < CATCHUP_PAGES; page++) {
        const req: Request = { type: "threads", limit: CATCHUP_PAGE_SIZE };
        if (before !== undefined) req.before = before;
        const a = await this.request(req);
        for (const t of a.threads ?? []) latest.set(t.id, t.last_seq);
        if (!a.next) {
          complete = true;
          break;
        }
        before = a.next;
      }
    } catch {
      latest = null;
    }
    if (gen !== this.gen || this.stopped) return; // a newer connection does its own
    for (const [tid, have] of [...this.tracker.have]) {
      if (latest) {
        const last = latest.get(tid);
        // Not listed in a complete listing: no longer a member (the thread event says so).
        if (last === undefined ? complete : last <= have) continue;
      }
      void this.tracker.catchUp(tid);
    }
  }

  private onClose(code: number, reason: string, sawHello: boolean): void {
    this.stopHeartbeat();
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
      void this.afterPreHelloFailure();
      return;
    }
    this.retryLater(null);
  }

  /**
   * A connection failed before hello, and a browser hides why. The REST check tells: a 401
   * is the token (ask for another; stop after MAX_REFUSALS in a row), no answer is the
   * gateway (retry), and a gateway that takes the token over REST while sockets keep failing
   * has something eating the upgrade (in "auto" mode: SSE after a few).
   */
  private async afterPreHelloFailure(): Promise<void> {
    const gen = this.gen;
    this.setState(!this.everOpen ? "connecting" : this.backoff.failures >= FAILURES_OFFLINE ? "offline" : "reconnecting");
    const verdict = await this.auth.probe();
    if (this.stopped || gen !== this.gen) return;
    if (verdict === "refused") {
      this.refusals++;
      if (this.refusals >= MAX_REFUSALS) {
        const err = new SwitchboardError("unauthorized", `the token was refused ${this.refusals} times in a row`, { status: 401 });
        this.lastClose = { code: Close.TOKEN_EXPIRED, reason: "unauthorized" };
        this.d.emit("error", err);
        this.stop(err);
        return;
      }
      this.retryLater("refused");
      return;
    }
    if (verdict === "unknown") {
      // Nothing to ask with (no fetch): the token may have been refused.
      this.retryLater("refused");
      return;
    }
    if (verdict === "down") {
      this.retryLater(null);
      return;
    }
    this.refusals = 0;
    this.preHelloFailures++;
    if (this.auto && this.mode === "ws" && this.preHelloFailures >= WS_FAILURES_BEFORE_SSE && this.canSse()) {
      this.mode = "sse";
      this.preHelloFailures = 0;
      this.upgradeFailures = 0;
    }
    this.retryLater(null);
  }

  private canSse(): boolean {
    return !!(this.d.opts.EventSource ?? (globalThis as any).EventSource) && this.auth.canFetch;
  }

  // ---- SSE -> WebSocket ("auto") ------------------------------------------------------------

  /** On SSE in "auto" mode, try a WebSocket now and then (sseRetryMs, doubling up to 8x). */
  private scheduleUpgrade(): void {
    if (this.upgradeTimer || this.upgradeTrial || this.stopped || this.mode !== "sse" || !this.auto) return;
    const base = this.d.opts.wsRetryMs ?? 60_000;
    const delay = Math.min(base * 2 ** this.upgradeFailures, base * 8);
    this.upgradeTimer = setTimeout(() => this.tryUpgrade(), delay);
  }

  /** A trial WebSocket: when it gets a hello, switch to WebSocket (a reconnect, with the
   * usual catch-up); otherwise stay on SSE and try again later. */
  private tryUpgrade(): void {
    this.upgradeTimer = null;
    if (this.stopped || this.mode !== "sse" || !this.auth.token) return;
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      const trial = this.upgradeTrial;
      this.upgradeTrial = null;
      trial?.close(Close.NORMAL, "transport check");
      if (this.stopped || this.mode !== "sse") return;
      if (!ok) {
        this.upgradeFailures++;
        this.scheduleUpgrade();
        return;
      }
      this.upgradeFailures = 0;
      this.mode = "ws";
      this.preHelloFailures = 0;
      const t = this.transport;
      this.gen++;
      this.transport = null;
      this.stopHeartbeat();
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      t?.close(Close.NORMAL, "switching to WebSocket");
      if (this.state === "open") this.setState("reconnecting");
      void this.connect(null);
    };
    try {
      this.upgradeTrial = this.openWs({
        onHello: () => finish(true),
        onEvent: () => {},
        onError: () => {},
        onClose: () => finish(false),
      });
    } catch {
      finish(false);
    }
  }

  // ---- heartbeat --------------------------------------------------------------------------

  /** A `ping` every heartbeat_s (one outstanding at most): no `pong` within the request
   * timeout means a dead (half-open) socket, which is dropped for a reconnect. Over SSE the
   * actions are REST calls, which time out on their own. */
  private startHeartbeat(seconds: number): void {
    this.stopHeartbeat(); // and the hello timer
    if (this.mode !== "ws" || !(seconds > 0)) return;
    const gen = this.gen;
    this.heartbeat = setInterval(() => {
      const t = this.transport;
      if (this.pinging || gen !== this.gen || !t) return;
      this.pinging = true;
      t.request({ type: "ping" }, this.timeoutMs).then(
        () => {
          this.pinging = false;
        },
        (e) => {
          this.pinging = false;
          if (gen === this.gen && SwitchboardError.from(e).code === "timeout") this.dropDead("heartbeat timeout");
        },
      );
    }, seconds * 1000);
  }

  private stopHeartbeat(): void {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.pinging = false;
  }

  /** The connection looks dead (no pong, or a send with no ack): drop it, reconnect (with
   * backoff), resend. */
  private dropDead(reason: string): void {
    const t = this.transport;
    if (!t) return;
    this.gen++;
    t.close(Close.NORMAL, reason);
    this.onClose(Close.ABNORMAL, reason, true);
  }

  private stop(err: SwitchboardError): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.upgradeTimer) clearTimeout(this.upgradeTimer);
    this.upgradeTimer = null;
    this.upgradeTrial?.close(Close.NORMAL, "client stopped");
    this.upgradeTrial = null;
    this.stopHeartbeat();
    this.tracker.resetRetries();
    this.setState("stopped");
    this.openWaiters.rejectAll(err);
    this.outbox?.rejectAll(err);
    this.reads.stop(err);
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
      () => this.dropDead("request timeout"),
      backoffFrom(this.d.opts.backoff),
    );
    this.resolveOutbox(this.outbox);
    if (this.state === "open") this.outbox.kick();
  }

  // ---- requests ---------------------------------------------------------------------------

  private whenOpen(): Promise<void> {
    if (this.state === "open" && this.transport) return Promise.resolve();
    if (this.stopped) return Promise.reject(new SwitchboardError("closed", "client is stopped"));
    return this.openWaiters.wait(this.timeoutMs, "not connected");
  }

  /** One request over the current transport, waiting (up to the timeout) for a connection. */
  async request(req: Request): Promise<AckFrame> {
    await this.whenOpen();
    return (await this.transport!.request(req, this.timeoutMs)) as AckFrame;
  }

  private fetchAfter(threadId: string, after: number) {
    return this.historyLimit.run(async () => {
      const a = await this.request({ type: "history", thread_id: threadId, after_seq: after, limit: 200 });
      return { messages: a.messages ?? [], has_more: !!a.has_more };
    });
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

  /** Resolves when the gateway has acknowledged a read position at or past `seq` (see
   * ReadQueue: queued while disconnected, no timeout then). */
  read(threadId: string, seq: number): Promise<void> {
    return this.reads.read(threadId, seq);
  }

  async delivered(threadId: string, seq: number): Promise<void> {
    await this.request({ type: "delivered", thread_id: threadId, seq });
  }

  async typing(threadId: string, isTyping: boolean): Promise<void> {
    // Lossy by design: not connected means nobody needs to see it.
    if (this.state === "open") this.transport?.notify({ type: "typing", thread_id: threadId, is_typing: isTyping });
  }

  /** `owner`: who asks (a tab id with tab sharing; this tab by default). A user stays
   * watched while any owner watches them. */
  async watchPresence(userIds: string[], owner: string = SELF) {
    this.watched.add(userIds, owner);
    const a = await this.request({ type: "watch_presence", user_ids: userIds });
    return a.presence ?? [];
  }

  async unwatchPresence(userIds: string[], owner: string = SELF): Promise<void> {
    await this.sendUnwatch(this.watched.remove(userIds, owner));
  }

  /** A tab left the group: its watches go (the users nobody else watches are unwatched). */
  dropOwner(owner: string): void {
    void this.sendUnwatch(this.watched.dropOwner(owner)).catch(() => {});
  }

  private async sendUnwatch(userIds: string[]): Promise<void> {
    if (userIds.length === 0 || this.state !== "open") return; // the next session starts without them anyway
    await this.request({ type: "unwatch_presence", user_ids: userIds });
  }

  async pendingSends(): Promise<OutboxEntry[]> {
    if (!this.outbox) return [];
    return this.outbox.entries();
  }

  /** REST under /api/v1 with the current token; one refresh and retry on 401. */
  rest(method: string, path: string, body?: unknown): Promise<unknown> {
    return this.auth.rest(method, path, body);
  }
}
