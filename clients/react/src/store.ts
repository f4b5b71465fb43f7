import type { Client, Presence } from "@switchboard/client";

/** A thread's receipt positions: user id -> highest seq. */
export type Positions = Readonly<Record<string, number>>;

interface ThreadReceipts {
  read: Record<string, number>;
  delivered: Record<string, number>;
}

/**
 * What the hooks of one provider share: receipts and presence seen since the client was
 * created, presence watch counts (so two components watching the same user do not unwatch
 * each other), and local read receipts (the gateway does not echo a receipt to the session
 * that sent it, so `useThreads` learns of `markRead` from here).
 */
export class Store {
  private readonly receipts = new Map<string, ThreadReceipts>();
  private readonly presence = new Map<string, Presence>();
  private readonly watchCounts = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  private readonly localReadListeners = new Set<(threadId: string, seq: number) => void>();
  private readonly offs: Array<() => void> = [];
  private disposed = false;

  constructor(readonly client: Client) {
    const receipt = (which: "read" | "delivered") => (ev: { thread_id: string; user_id: string; seq: number }) =>
      this.noteReceipt(which, ev.thread_id, ev.user_id, ev.seq);
    this.offs.push(
      client.on("read", receipt("read")),
      client.on("delivered", receipt("delivered")),
      client.on("presence", (p) => this.notePresence([p])),
    );
  }

  dispose(): void {
    this.disposed = true;
    this.offs.splice(0).forEach((off) => off());
    this.listeners.clear();
    this.localReadListeners.clear();
  }

  /** Any change of receipts or presence. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  private changed(): void {
    for (const fn of [...this.listeners]) fn();
  }

  // ---- receipts ---------------------------------------------------------------------------

  noteReceipt(which: "read" | "delivered", threadId: string, userId: string, seq: number): void {
    let r = this.receipts.get(threadId);
    if (!r) this.receipts.set(threadId, (r = { read: {}, delivered: {} }));
    const cur = r[which][userId] ?? 0;
    // Reading implies delivery: ✓✓ never shows without ✓.
    const also = which === "read" && (r.delivered[userId] ?? 0) < seq;
    if (seq <= cur && !also) return;
    // New objects, so that a hook's snapshot changes identity exactly when it changes.
    if (seq > cur) r[which] = { ...r[which], [userId]: seq };
    if (also) r.delivered = { ...r.delivered, [userId]: seq };
    this.changed();
  }

  readPositions(threadId: string): Positions {
    return this.receipts.get(threadId)?.read ?? EMPTY;
  }

  deliveredPositions(threadId: string): Positions {
    return this.receipts.get(threadId)?.delivered ?? EMPTY;
  }

  // ---- local reads --------------------------------------------------------------------------

  onLocalRead(fn: (threadId: string, seq: number) => void): () => void {
    this.localReadListeners.add(fn);
    return () => void this.localReadListeners.delete(fn);
  }

  localRead(threadId: string, seq: number): void {
    const me = this.client.userId;
    if (me) this.noteReceipt("read", threadId, me, seq);
    for (const fn of [...this.localReadListeners]) fn(threadId, seq);
  }

  // ---- presence -----------------------------------------------------------------------------

  notePresence(list: Presence[]): void {
    let any = false;
    for (const p of list) {
      const cur = this.presence.get(p.user_id);
      if (cur && cur.online === p.online && cur.last_seen === p.last_seen) continue;
      this.presence.set(p.user_id, p);
      any = true;
    }
    if (any) this.changed();
  }

  getPresence(userId: string): Presence | undefined {
    return this.presence.get(userId);
  }

  /** Counts a watch of each user, and asks the gateway (watching again is harmless, and it
   * matters: a user outside the presence scope at the first watch is not watched, and may
   * have come into scope since). The client renews its watches after each reconnect. */
  async watch(userIds: string[]): Promise<void> {
    for (const u of userIds) this.watchCounts.set(u, (this.watchCounts.get(u) ?? 0) + 1);
    if (userIds.length === 0) return;
    const list = await this.client.watchPresence(userIds);
    if (!this.disposed) this.notePresence(list);
  }

  async unwatch(userIds: string[]): Promise<void> {
    const gone: string[] = [];
    for (const u of userIds) {
      const n = this.watchCounts.get(u) ?? 0;
      if (n <= 1) {
        this.watchCounts.delete(u);
        if (n === 1) gone.push(u);
      } else this.watchCounts.set(u, n - 1);
    }
    if (gone.length === 0 || this.disposed) return;
    await this.client.unwatchPresence(gone);
  }
}

const EMPTY: Positions = Object.freeze({});
