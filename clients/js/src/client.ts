import { backoffFrom, type Backoff } from "./backoff.js";
import { Core } from "./core.js";
import { Emitter } from "./emitter.js";
import { SwitchboardError } from "./errors.js";
import type { Message, Presence, Thread } from "./frames.js";
import { nextOrder } from "./outbox.js";
import { SeqTracker } from "./seq.js";
import { IndexedDbStorage, MemoryStorage, type OutboxEntry, type OutboxStorage } from "./storage.js";
import { TabLink } from "./tabs.js";
import { TypingThrottle } from "./typing.js";
import { claimsOf, subOf } from "./jwt.js";
import { uuid, Waiters } from "./util.js";
import type { Client, ClientEvents, CloseInfo, ConnectionState, ConnectOptions, HistoryQuery, Ops, SendOptions } from "./types.js";

/** Opens a client: it connects at once and keeps reconnecting until close() or a stop
 * (4003 revoked, 4009 replaced). */
export function connect(opts: ConnectOptions): Client {
  const c = new SwitchboardClient(opts);
  c.start();
  return c;
}

class SwitchboardClient implements Client {
  private readonly em = new Emitter<ClientEvents>();
  private core: Core | null = null;
  private link: TabLink | null = null;
  // Follower mode: the leader's state, and a passive tracker that drops relayed duplicates and
  // becomes the new connection's starting point if this tab is promoted.
  private followerState: { state: ConnectionState; userId: string | null; lastClose: CloseInfo | null; transport?: "ws" | "sse" } = {
    state: "connecting",
    userId: null,
    lastClose: null,
  };
  /** This tab's presence watches, counted: the connection owner hears of a user's first
   * watch and last unwatch in this tab (and of all of them again after a leader change). */
  private readonly watchCounts = new Map<string, number>();
  private readonly relayTracker = new SeqTracker((m) => this.em.emit("message", m), null);
  private readonly typer = new TypingThrottle((tid, on) => {
    this.ops("typing", [tid, on]).catch((e) => this.em.emit("error", SwitchboardError.from(e)));
  });
  private closed = false;
  private readonly name: string;
  // Tab sharing: the token fetched to learn the user before the election (handed to the
  // connection if this tab leads while it is fresh), and the calls made before the election.
  private firstToken: string | null = null;
  private readonly beforeElection = new Waiters();
  private electTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly opts: ConnectOptions) {
    this.name = opts.name ?? "switchboard";
  }

  start(): void {
    const g = globalThis as any;
    const canShare = typeof g.BroadcastChannel === "function" && !!g.navigator?.locks;
    if ((this.opts.shareAcrossTabs ?? canShare) && canShare) {
      void this.elect(backoffFrom(this.opts.backoff));
    } else {
      this.promote();
    }
  }

  /** Tabs share a connection only with tabs of the same user: the lock and the channel are
   * named after `name` and the token's `sub`, so the election waits for the first token. */
  private async elect(backoff: Backoff): Promise<void> {
    this.electTimer = null;
    if (this.closed) return;
    let token: string;
    try {
      token = await this.opts.getToken("initial");
    } catch (e) {
      if (this.closed) return;
      this.em.emit("error", new SwitchboardError("unauthorized", "getToken failed: " + (e instanceof Error ? e.message : String(e))));
      this.electTimer = setTimeout(() => void this.elect(backoff), backoff.next());
      return;
    }
    if (this.closed) return;
    this.firstToken = token;
    const user = subOf(token);
    if (user === null) {
      // No user to name the group after: this tab keeps its own connection (the gateway
      // will judge the token).
      this.promote();
    } else {
      this.followerState = { ...this.followerState, userId: user };
      this.link = new TabLink(`${this.name}:${user}`, this.opts.requestTimeoutMs ?? 10000, {
        promote: () => this.promote(),
        relayed: (type, ev) => this.onRelayed(type, ev),
        leaderState: (st) => {
          const changed = st.state !== this.followerState.state;
          this.followerState = { ...st, userId: st.userId ?? user };
          if (changed) this.em.emit("state", st.state);
        },
        newLeader: () => this.rewatch(),
      });
      this.link.start();
    }
    this.beforeElection.release();
  }

  /** A new connection owner knows nothing of this tab's watches: tell it again. */
  private rewatch(): void {
    const users = [...this.watchCounts.keys()];
    if (users.length > 0) this.ops("watchPresence", [users]).catch(() => {});
  }

  /** This tab owns the connection from now on. */
  private promote(): Core {
    const core = new Core({
      opts: this.opts,
      emit: (type, ev) => {
        this.em.emit(type, ev);
        this.link?.broadcast(type, ev);
      },
      storageFor: (userId) => this.storageFor(userId),
      have: this.relayTracker.have,
      token: this.takeFirstToken(),
    });
    this.core = core;
    core.start();
    this.rewatch();
    return core;
  }

  /** The election's token, once, unless it expires within a minute (a tab that waited long
   * as a follower asks getToken again). */
  private takeFirstToken(): string | undefined {
    const t = this.firstToken;
    this.firstToken = null;
    if (t === null) return undefined;
    const exp = claimsOf(t)?.exp;
    return typeof exp === "number" && exp * 1000 < Date.now() + 60_000 ? undefined : t;
  }

  private storageFor(userId: string): OutboxStorage {
    const idb: IDBFactory | undefined = (globalThis as any).indexedDB;
    if (this.opts.outbox === "memory" || !idb) return new MemoryStorage();
    return new IndexedDbStorage(idb, `${this.name}:outbox:${userId}`);
  }

  private onRelayed<K extends keyof ClientEvents>(type: K, ev: ClientEvents[K]): void {
    if (type === "message") {
      void this.relayTracker.observe(ev as Message);
      return;
    }
    if (type === "thread") {
      const t = ev as ClientEvents["thread"];
      this.relayTracker.seed(t.thread.id, t.event === "created" ? 0 : t.thread.last_seq);
    }
    if (type === "state") return; // followerState follows "st", which carries userId too
    this.em.emit(type, ev);
  }

  private ops(op: keyof Ops, args: unknown[]): Promise<any> {
    if (this.closed) return Promise.reject(new SwitchboardError("closed", "client closed"));
    if (this.link) return this.link.call(op, args);
    if (this.core) return (this.core[op] as (...a: unknown[]) => Promise<unknown>).apply(this.core, args);
    // Before the election (waiting for the first token).
    if (op === "typing") return Promise.resolve(); // nobody to show it to yet
    // Sends and reads wait as long as it takes (as they do while disconnected); the rest
    // time out as a request made while disconnected does.
    const ms = op === "send" || op === "read" ? undefined : (this.opts.requestTimeoutMs ?? 10000);
    return this.beforeElection.wait(ms, "not connected").then(() => this.ops(op, args));
  }

  get state(): ConnectionState {
    if (this.closed) return "stopped";
    return this.core ? this.core.state : this.followerState.state;
  }
  get userId(): string | null {
    return this.core ? this.core.userId : this.followerState.userId;
  }
  get lastClose(): CloseInfo | null {
    return this.core ? this.core.lastClose : this.followerState.lastClose;
  }
  get transport(): "ws" | "sse" {
    return this.core ? this.core.transportKind : (this.followerState.transport ?? "ws");
  }

  on<K extends keyof ClientEvents>(type: K, fn: (ev: ClientEvents[K]) => void): () => void {
    return this.em.on(type, fn);
  }

  send(m: SendOptions): Promise<Message> {
    if ((m.threadId === undefined) === (m.to === undefined)) {
      return Promise.reject(new SwitchboardError("bad_request", "send needs exactly one of threadId or to"));
    }
    const e: OutboxEntry = {
      client_id: m.clientId ?? uuid(),
      body: m.body,
      order: nextOrder(),
      queued_at: Date.now(),
    };
    if (m.threadId !== undefined) e.thread_id = m.threadId;
    if (m.to !== undefined) e.to = m.to;
    if (m.replyTo !== undefined) e.reply_to = m.replyTo;
    if (m.metadata !== undefined) e.metadata = m.metadata;
    return this.ops("send", [e]);
  }

  async history(threadId: string, q: HistoryQuery = {}): Promise<{ messages: Message[]; hasMore: boolean }> {
    const r = await this.ops("history", [threadId, q]);
    if (!this.core) {
      await this.relayTracker.noteHistory(threadId, { messages: r.messages, has_more: r.hasMore }, q);
    }
    return r;
  }

  async threads(q: { limit?: number; before?: string } = {}): Promise<{ threads: Thread[]; next: string | null }> {
    const r = await this.ops("threads", [q]);
    if (!this.core) for (const t of r.threads as Thread[]) this.relayTracker.seed(t.id, t.last_seq);
    return r;
  }

  read(threadId: string, seq: number): Promise<void> {
    return this.ops("read", [threadId, seq]);
  }

  delivered(threadId: string, seq: number): Promise<void> {
    return this.ops("delivered", [threadId, seq]);
  }

  typing(threadId: string, isTyping: boolean): void {
    if (!this.closed) this.typer.set(threadId, isTyping);
  }

  watchPresence(userIds: string[]): Promise<Presence[]> {
    for (const u of userIds) this.watchCounts.set(u, (this.watchCounts.get(u) ?? 0) + 1);
    return this.ops("watchPresence", [userIds]);
  }

  unwatchPresence(userIds: string[]): Promise<void> {
    const gone: string[] = [];
    for (const u of userIds) {
      const n = this.watchCounts.get(u) ?? 0;
      if (n === 0) continue;
      if (n > 1) this.watchCounts.set(u, n - 1);
      else {
        this.watchCounts.delete(u);
        gone.push(u);
      }
    }
    if (gone.length === 0) return Promise.resolve();
    return this.ops("unwatchPresence", [gone]);
  }

  rest<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return this.ops("rest", [method, path, body]);
  }

  pendingSends(): Promise<OutboxEntry[]> {
    return this.ops("pendingSends", []);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.typer.clear();
    if (this.electTimer) clearTimeout(this.electTimer);
    this.beforeElection.rejectAll(new SwitchboardError("closed", "client closed"));
    // The link first: a leader that closes hands over quietly, without telling the other
    // tabs it stopped.
    this.link?.close();
    this.core?.close();
    this.em.emit("state", "stopped");
  }
}
