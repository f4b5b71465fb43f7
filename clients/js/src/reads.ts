import { SwitchboardError, isPermanent } from "./errors.js";
import type { Request } from "./frames.js";

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
 * Read positions that never get lost to a disconnection: per thread, the highest seq the app
 * marked read and the gateway has not acknowledged. Sent at once when connected, after the
 * next hello otherwise (flushAll); several calls for one thread become one frame.
 */
export class ReadQueue {
  private readonly reads = new Map<string, PendingRead>();
  private stopped = false;

  constructor(private readonly request: (req: Request) => Promise<unknown>, private readonly isOpen: () => boolean) {}

  /** Resolves when the gateway has acknowledged a read position at or past `seq`. */
  read(threadId: string, seq: number): Promise<void> {
    if (this.stopped) return Promise.reject(new SwitchboardError("closed", "client is stopped"));
    return new Promise((resolve, reject) => {
      let r = this.reads.get(threadId);
      if (!r) this.reads.set(threadId, (r = { seq, waiters: [], busy: false }));
      else if (seq > r.seq) r.seq = seq;
      r.waiters.push({ seq, resolve, reject });
      this.flush(threadId);
    });
  }

  /** After a hello: every queued position goes out. */
  flushAll(): void {
    for (const tid of [...this.reads.keys()]) this.flush(tid);
  }

  /** The client stopped: every pending read() rejects with `err`. */
  stop(err: SwitchboardError): void {
    this.stopped = true;
    const reads = [...this.reads.values()];
    this.reads.clear();
    for (const r of reads) r.waiters.splice(0).forEach((w) => w.reject(err));
  }

  /** Sends a thread's queued read position, if connected and none is in flight. */
  private flush(threadId: string): void {
    const r = this.reads.get(threadId);
    if (!r || r.busy || this.stopped || !this.isOpen()) return;
    r.busy = true;
    const seq = r.seq;
    // Settles the calls this position covers; a higher one asked meanwhile goes out next.
    const settle = (fn: (w: ReadWaiter) => void) => {
      r.busy = false;
      const done = r.waiters.filter((w) => w.seq <= seq);
      r.waiters = r.waiters.filter((w) => w.seq > seq);
      if (r.waiters.length === 0 && this.reads.get(threadId) === r) this.reads.delete(threadId);
      done.forEach(fn);
      if (r.waiters.length > 0) this.flush(threadId);
    };
    this.request({ type: "read", thread_id: threadId, seq }).then(
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
        if (this.isOpen()) setTimeout(() => this.flush(threadId), err.retryAfterMs ?? 1000);
      },
    );
  }
}
