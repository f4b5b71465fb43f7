import { Backoff, backoffFrom } from "./backoff.js";
import type { HistoryPage, Message } from "./frames.js";

/** Retries of a failed gap fill before waiting for the next reconnect. */
export const FILL_RETRIES = 5;

/** Fetches the page after `afterSeq` (ascending, at most 200). */
export type FetchAfter = (threadId: string, afterSeq: number) => Promise<HistoryPage>;

/**
 * Per-thread `have`: the highest seq up to which every message was handed to the app.
 * Everything for one thread runs on one promise chain, so a gap fill and the live events that
 * arrive during it come out in seq order, each once.
 */
export class SeqTracker {
  readonly have = new Map<string, number>();
  private readonly chains = new Map<string, Promise<void>>();
  /** Threads whose last fill failed: a catch-up is scheduled with backoff. */
  private readonly retries = new Map<string, { backoff: Backoff; timer: ReturnType<typeof setTimeout> | null }>();

  constructor(
    private readonly emit: (m: Message) => void,
    // null: a passive tracker (a follower tab), which only dedupes what its leader relays.
    private readonly fetchAfter: FetchAfter | null,
    private readonly backoff?: { baseMs?: number; maxMs?: number },
  ) {}

  /** After a hello (every thread is caught up then) or a stop: no scheduled retries. */
  resetRetries(): void {
    for (const r of this.retries.values()) if (r.timer) clearTimeout(r.timer);
    this.retries.clear();
  }

  /** Start tracking a thread at `lastSeq` (a `thread` event or a `threads` listing);
   * a thread already tracked keeps its own position. */
  seed(threadId: string, lastSeq: number): void {
    if (!this.have.has(threadId)) this.have.set(threadId, lastSeq);
  }

  forget(threadId: string): void {
    this.have.delete(threadId);
    const r = this.retries.get(threadId);
    if (r?.timer) clearTimeout(r.timer);
    this.retries.delete(threadId);
  }

  /** A message from an event, an ack or an outbox resend. */
  observe(m: Message): Promise<void> {
    return this.enqueue(m.thread_id, () => this.process(m));
  }

  /** After a reconnect: everything after `have`. */
  catchUp(threadId: string): Promise<void> {
    return this.enqueue(threadId, () => this.fill(threadId));
  }

  /** A history page the app asked for: it has those messages in hand, so `have` may move
   * over them (without events). An untracked thread starts at the newest page's end. */
  noteHistory(threadId: string, page: HistoryPage, q: { afterSeq?: number; beforeSeq?: number }): Promise<void> {
    return this.enqueue(threadId, async () => {
      let have = this.have.get(threadId);
      if (have === undefined) {
        const newest = q.beforeSeq === undefined && (q.afterSeq === undefined || !page.has_more);
        if (!newest) return;
        have = q.afterSeq ?? 0;
        if (page.messages.length === 0) {
          this.have.set(threadId, have);
          return;
        }
        have = Math.max(have, page.messages[0].seq - 1);
      }
      for (const m of page.messages) if (m.seq === have + 1) have = m.seq;
      this.have.set(threadId, have);
    });
  }

  private enqueue(threadId: string, step: () => Promise<void>): Promise<void> {
    const prev = this.chains.get(threadId) ?? Promise.resolve();
    const next = prev.then(step).catch(() => {
      // A failed fill leaves `have` where it was (a live message that followed the gap was
      // dropped with it): catch up again shortly.
      this.retryLater(threadId);
    });
    this.chains.set(threadId, next);
    void next.then(() => {
      if (this.chains.get(threadId) === next) this.chains.delete(threadId);
    });
    return next;
  }

  /** A catch-up after a failed fill, with backoff; after FILL_RETRIES the next reconnect (or
   * the thread's next event) does it. */
  private retryLater(threadId: string): void {
    if (this.fetchAfter === null || !this.have.has(threadId)) return;
    let r = this.retries.get(threadId);
    if (!r) this.retries.set(threadId, (r = { backoff: backoffFrom(this.backoff), timer: null }));
    if (r.timer || r.backoff.failures >= FILL_RETRIES) return;
    const entry = r;
    r.timer = setTimeout(() => {
      entry.timer = null;
      void this.catchUp(threadId);
    }, r.backoff.next());
  }

  private async process(m: Message): Promise<void> {
    const have = this.have.get(m.thread_id);
    if (have === undefined || this.fetchAfter === null) {
      // First sight of a thread (or a follower trusting its leader's order): start here.
      if (have !== undefined && m.seq <= have) return;
      this.have.set(m.thread_id, m.seq);
      this.emit(m);
      return;
    }
    if (m.seq <= have) return; // a duplicate: history and live events overlap
    if (m.seq > have + 1) await this.fill(m.thread_id);
    const now = this.have.get(m.thread_id) ?? have;
    if (m.seq === now + 1) {
      this.have.set(m.thread_id, m.seq);
      this.emit(m);
    }
    // else: the fill already delivered it (seq <= now), or failed (seq > now+1) and the next
    // event or reconnect catches up.
  }

  private async fill(threadId: string): Promise<void> {
    if (!this.fetchAfter) return;
    for (;;) {
      const have = this.have.get(threadId);
      if (have === undefined) return;
      const page = await this.fetchAfter(threadId, have);
      let h = have;
      for (const m of page.messages) {
        if (m.seq !== h + 1) continue;
        h = m.seq;
        this.have.set(threadId, h);
        this.emit(m);
      }
      if (!page.has_more || h === have) break;
    }
    // Caught up: a retry scheduled by an earlier failure is no longer needed.
    const r = this.retries.get(threadId);
    if (r) {
      if (r.timer) clearTimeout(r.timer);
      this.retries.delete(threadId);
    }
  }
}
