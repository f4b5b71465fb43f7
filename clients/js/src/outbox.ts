import { Backoff } from "./backoff.js";
import type { Message } from "./frames.js";
import { SwitchboardError, isPermanent } from "./errors.js";
import type { OutboxEntry, OutboxStorage } from "./storage.js";

/** Sends one stored entry over the current connection; resolves with the acked message. */
export type SendFn = (e: OutboxEntry) => Promise<Message>;

interface Waiter {
  resolve(m: Message): void;
  reject(e: SwitchboardError): void;
}

/** Retries of a send that got `internal` (it may be a passing fault) before it is rejected. */
export const INTERNAL_RETRIES = 3;

let orderCounter = 0;
export function nextOrder(): number {
  // Date-based, so entries left by an earlier page load sort before new ones.
  return Date.now() * 1000 + (orderCounter++ % 1000);
}

/**
 * Unacknowledged sends, in order. An entry is stored before it goes out and removed only on
 * its ack or a permanent error, so a drop, a crash or a reload resends it with the same
 * client_id (the gateway answers a resend with the original message: no duplicate).
 * One send is in flight at a time: that keeps the order across rate limits and retries, at the
 * cost of one round trip per message.
 */
export class Outbox {
  private queue: OutboxEntry[] = [];
  private readonly waiters = new Map<string, Waiter[]>();
  private running = false;
  private readonly loaded: Promise<void>;
  private closedErr: SwitchboardError | null = null;
  /** `internal` errors per client_id so far. */
  private readonly internalErrors = new Map<string, number>();

  constructor(
    private readonly storage: OutboxStorage,
    private readonly sendFn: SendFn,
    private readonly isOpen: () => boolean,
    /** Each ack's message (also for entries left by an earlier page load). */
    private readonly onAck: (m: Message) => Promise<void>,
    /** The connection looks dead (a send timed out): drop it so it reconnects and resends. */
    private readonly onStuck: () => void,
    /** Delays between retries of `unavailable` / `internal`; reset by each ack. */
    private readonly backoff: Backoff = new Backoff(),
  ) {
    this.loaded = storage.load().then(
      (old) => {
        this.queue = [...old, ...this.queue].filter((e, i, a) => a.findIndex((x) => x.client_id === e.client_id) === i);
      },
      () => {},
    );
  }

  /** Adds (or joins, by client_id) a send; resolves on its ack. Rejects, with nothing left
   * behind, when it cannot be stored. */
  async add(e: OutboxEntry): Promise<Message> {
    await this.loaded;
    if (!this.queue.some((x) => x.client_id === e.client_id)) {
      await this.storage.put(e); // stored before it goes out
      if (!this.queue.some((x) => x.client_id === e.client_id)) this.queue.push(e);
    }
    if (this.closedErr) throw this.closedErr;
    // The waiter only now: a failed put above leaves nothing behind.
    const p = new Promise<Message>((resolve, reject) => {
      const list = this.waiters.get(e.client_id) ?? [];
      list.push({ resolve, reject });
      this.waiters.set(e.client_id, list);
    });
    this.kick();
    return p;
  }

  /** Promises waiting for an ack (for tests). */
  get waiting(): number {
    let n = 0;
    for (const l of this.waiters.values()) n += l.length;
    return n;
  }

  async entries(): Promise<OutboxEntry[]> {
    await this.loaded;
    return [...this.queue];
  }

  /** Runs the queue while connected; called on every hello and on every add. */
  kick(): void {
    if (this.running) return;
    this.running = true;
    void this.run().finally(() => {
      this.running = false;
    });
  }

  /** The client is closing: reject the promises (stored entries stay for the next connect). */
  rejectAll(e: SwitchboardError): void {
    this.closedErr = e;
    for (const list of this.waiters.values()) for (const w of list) w.reject(e);
    this.waiters.clear();
  }

  private async run(): Promise<void> {
    await this.loaded;
    while (this.queue.length > 0 && this.isOpen()) {
      const e = this.queue[0];
      let msg: Message;
      try {
        msg = await this.sendFn(e);
      } catch (x) {
        const err = SwitchboardError.from(x);
        if (err.code === "rate_limited") {
          await sleep(err.retryAfterMs ?? 1000);
          continue;
        }
        if (err.code === "timeout") {
          this.onStuck();
          return;
        }
        const internals = this.internalErrors.get(e.client_id) ?? 0;
        if (err.code === "internal" && internals < INTERNAL_RETRIES) {
          // A passing fault on the gateway's side, perhaps: a few more tries, then give up.
          this.internalErrors.set(e.client_id, internals + 1);
          if (!this.isOpen()) return;
          await sleep(this.backoff.next());
          continue;
        }
        if (isPermanent(err.code)) {
          this.internalErrors.delete(e.client_id);
          await this.settle(e, (w) => w.reject(err));
          continue;
        }
        // unavailable: the socket closed (the next hello kicks us) or the database is down
        // (retry with backoff while connected).
        if (this.isOpen()) {
          await sleep(this.backoff.next());
          continue;
        }
        return;
      }
      this.backoff.reset();
      this.internalErrors.delete(e.client_id);
      // Events first, so an app that awaits send() already has the message in its store.
      await this.onAck(msg);
      await this.settle(e, (w) => w.resolve(msg));
    }
  }

  private async settle(e: OutboxEntry, fn: (w: Waiter) => void): Promise<void> {
    this.queue = this.queue.filter((x) => x.client_id !== e.client_id);
    await this.storage.remove(e.client_id).catch(() => {});
    const list = this.waiters.get(e.client_id) ?? [];
    this.waiters.delete(e.client_id);
    list.forEach(fn);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
