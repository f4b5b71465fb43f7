import { SwitchboardError } from "./errors.js";
import type { ClientEvents, CloseInfo, ConnectionState, Ops } from "./types.js";

type OpName = keyof Ops;

/** What travels over the BroadcastChannel. */
type Wire =
  | { k: "ev"; type: keyof ClientEvents; ev: unknown } // leader -> all: an event for the app
  | { k: "st"; state: ConnectionState; userId: string | null; lastClose: CloseInfo | null; transport?: "ws" | "sse" } // leader -> all
  | { k: "who" } // a new tab asks the leader for "st"
  | { k: "leader" } // a tab just became leader: followers re-send what is pending
  | { k: "bye"; from: string } // a tab leaves the group (its presence watches go)
  | { k: "req"; id: string; from: string; op: OpName; args: unknown[] }
  | { k: "res"; id: string; to: string; ok: boolean; value?: unknown; err?: unknown };

interface Pending {
  op: OpName;
  args: unknown[];
  resolve(v: unknown): void;
  reject(e: SwitchboardError): void;
  timer?: ReturnType<typeof setTimeout>;
}

/** Request ids a leader remembers, so that a request posted again (followers re-post what
 * is pending when a leader is elected) does not run twice. */
const HANDLED_MAX = 1000;
/** Replies larger than this are not kept (a history page, say): a re-posted read simply runs
 * again, which is harmless, and the memory stays bounded in bytes, not only in count. */
const HANDLED_REPLY_MAX_CHARS = 16 * 1024;

type Leader = Ops & { state: ConnectionState; userId: string | null; lastClose: CloseInfo | null; transportKind?: "ws" | "sse"; dropOwner?(owner: string): void };

export interface TabHooks {
  /** This tab won the lock: create the connection. */
  promote(): Leader;
  /** Follower side: an event relayed by the leader. */
  relayed<K extends keyof ClientEvents>(type: K, ev: ClientEvents[K]): void;
  /** Follower side: the leader's connection state. */
  leaderState(st: { state: ConnectionState; userId: string | null; lastClose: CloseInfo | null; transport?: "ws" | "sse" }): void;
  /** Follower side: another tab became leader (after our pending calls were posted again). */
  newLeader?(): void;
}

/**
 * Leader election over `navigator.locks` and relaying over `BroadcastChannel`: one socket per
 * browser, whatever the number of tabs. The lock is held for the tab's life; when the leader
 * tab goes away the browser hands it to the next waiting tab, which connects and catches up.
 */
export class TabLink {
  private readonly bc: BroadcastChannel;
  private readonly tabId = Math.random().toString(36).slice(2) + Date.now().toString(36);
  private readonly pending = new Map<string, Pending>();
  private counter = 0;
  private leader: Leader | null = null;
  /** Leader side: request id -> its reply (null while it runs), the last HANDLED_MAX. */
  private readonly handled = new Map<string, Wire | null>();
  private readonly onPageHide = () => this.post({ k: "bye", from: this.tabId });
  private release: (() => void) | null = null;
  private readonly abort = new AbortController();
  private closed = false;

  /** `name` is the group: the client's `name` option and the user id (tabs of different
   * users never share a connection). */
  constructor(private readonly name: string, private readonly timeoutMs: number, private readonly hooks: TabHooks) {
    this.bc = new BroadcastChannel(`switchboard-tabs:${name}`);
    this.bc.onmessage = (ev: MessageEvent<Wire>) => this.onWire(ev.data);
  }

  get isLeader(): boolean {
    return this.leader !== null;
  }

  start(): void {
    const locks = (navigator as Navigator & { locks: LockManager }).locks;
    locks
      .request(`switchboard-leader:${this.name}`, { signal: this.abort.signal }, () => {
        if (this.closed) return;
        this.leader = this.hooks.promote();
        this.post({ k: "leader" });
        // Our own calls made while we were a follower now run here.
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          if (p.timer) clearTimeout(p.timer);
          this.run(p.op, p.args).then(p.resolve, (e) => p.reject(SwitchboardError.from(e)));
        }
        return new Promise<void>((r) => (this.release = r));
      })
      .catch(() => {
        /* aborted by close() */
      });
    this.post({ k: "who" });
    (globalThis as any).addEventListener?.("pagehide", this.onPageHide);
  }

  /** Leader side: hand an app event to every other tab. */
  broadcast<K extends keyof ClientEvents>(type: K, ev: ClientEvents[K]): void {
    if (!this.leader || this.closed) return;
    const data = ev instanceof SwitchboardError ? ev.toJSON() : ev;
    this.post({ k: "ev", type, ev: data });
    if (type === "state" || type === "hello" || type === "close") this.postState();
  }

  /** Run an operation on the leader (here, or in another tab). */
  call(op: OpName, args: unknown[]): Promise<unknown> {
    if (this.leader) return this.run(op, args);
    if (this.closed) return Promise.reject(new SwitchboardError("closed", "client closed"));
    const id = `${this.tabId}:${++this.counter}`;
    return new Promise((resolve, reject) => {
      const p: Pending = { op, args, resolve, reject };
      // Sends and reads wait for a leader as long as it takes (the leader queues them while
      // disconnected, and a new leader gets them again); the rest time out.
      if (op !== "send" && op !== "read") {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new SwitchboardError("timeout", `no reply from the leader tab within ${this.timeoutMs} ms`));
        }, this.timeoutMs);
      }
      this.pending.set(id, p);
      this.post({ k: "req", id, from: this.tabId, op, args });
    });
  }

  /** Leave the group. A leader gives up the lock (the next tab takes over) without telling
   * the others it stopped: for them the connection goes on. */
  close(): void {
    if (!this.closed) this.post({ k: "bye", from: this.tabId });
    (globalThis as any).removeEventListener?.("pagehide", this.onPageHide);
    this.closed = true;
    this.abort.abort();
    this.release?.();
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(new SwitchboardError("closed", "client closed"));
    }
    this.pending.clear();
    this.bc.close();
  }

  /** `from`: the tab that asked (watches are counted per tab); this tab when left out. */
  private run(op: OpName, args: unknown[], from?: string): Promise<unknown> {
    const l = this.leader!;
    const a = from !== undefined && (op === "watchPresence" || op === "unwatchPresence") ? [args[0], from] : args;
    return (l[op] as (...a: unknown[]) => Promise<unknown>).apply(l, a);
  }

  private postState(): void {
    const l = this.leader!;
    this.post({ k: "st", state: l.state, userId: l.userId, lastClose: l.lastClose, transport: l.transportKind });
  }

  private post(w: Wire): void {
    if (!this.closed) this.bc.postMessage(w);
  }

  private onWire(w: Wire): void {
    if (this.closed) return;
    switch (w.k) {
      case "ev":
        if (!this.leader) this.hooks.relayed(w.type, (w.type === "error" ? SwitchboardError.from(w.ev) : w.ev) as never);
        return;
      case "st":
        if (!this.leader) this.hooks.leaderState(w);
        return;
      case "who":
        if (this.leader) this.postState();
        return;
      case "leader":
        // The old leader may have taken our requests with it: ask the new one (sends carry
        // their client_id, so one that did go through is not stored twice).
        if (!this.leader) {
          for (const [id, p] of this.pending) this.post({ k: "req", id, from: this.tabId, op: p.op, args: p.args });
          this.hooks.newLeader?.();
        }
        return;
      case "bye":
        this.leader?.dropOwner?.(w.from);
        return;
      case "req": {
        if (!this.leader) return;
        // Posted again after an election: answer from memory, or let the run in progress
        // answer; never run it twice.
        if (this.handled.has(w.id)) {
          const done = this.handled.get(w.id);
          if (done) this.post(done);
          return;
        }
        this.handled.set(w.id, null);
        if (this.handled.size > HANDLED_MAX) this.handled.delete(this.handled.keys().next().value!);
        const reply = (r: Wire) => {
          if (this.handled.has(w.id)) {
            if (JSON.stringify(r).length <= HANDLED_REPLY_MAX_CHARS) this.handled.set(w.id, r);
            else this.handled.delete(w.id);
          }
          this.post(r);
        };
        this.run(w.op, w.args, w.from).then(
          (value) => reply({ k: "res", id: w.id, to: w.from, ok: true, value }),
          (e) => reply({ k: "res", id: w.id, to: w.from, ok: false, err: SwitchboardError.from(e).toJSON() }),
        );
        return;
      }
      case "res": {
        if (w.to !== this.tabId) return;
        const p = this.pending.get(w.id);
        if (!p) return;
        this.pending.delete(w.id);
        if (p.timer) clearTimeout(p.timer);
        if (w.ok) p.resolve(w.value);
        else p.reject(SwitchboardError.from(w.err));
        return;
      }
    }
  }
}
