import { SwitchboardError } from "./errors.js";

export { redact } from "./errors.js";

/** A random RFC 4122 version 4 UUID (`crypto.randomUUID`, or built from `getRandomValues`
 * in insecure contexts, e.g. plain http on a LAN address, where randomUUID is missing). */
export function uuid(): string {
  const c = (globalThis as any).crypto;
  if (c?.randomUUID) return c.randomUUID();
  const b: Uint8Array = c?.getRandomValues ? c.getRandomValues(new Uint8Array(16)) : Uint8Array.from({ length: 16 }, () => (Math.random() * 256) | 0);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Rejects with a `timeout` SwitchboardError when `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what = "no answer"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SwitchboardError("timeout", `${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

interface Waiter {
  resolve(): void;
  reject(e: SwitchboardError): void;
}

/** Callers waiting for something (a connection, the tab election): released together, each
 * with an optional timeout of its own. */
export class Waiters {
  private list: Waiter[] = [];

  /** Waits until release(); rejects with `timeout` after `timeoutMs` (none when undefined). */
  wait(timeoutMs: number | undefined, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const w: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.list = this.list.filter((x) => x !== w);
          reject(new SwitchboardError("timeout", `${what} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.list.push(w);
    });
  }

  release(): void {
    this.list.splice(0).forEach((w) => w.resolve());
  }

  rejectAll(e: SwitchboardError): void {
    this.list.splice(0).forEach((w) => w.reject(e));
  }
}

/** At most `n` tasks at a time; the others wait their turn (first come, first served). */
export class Limiter {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  constructor(private readonly n: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}
