/** Exponential backoff with full jitter: delay = random(0, min(max, base * 2^attempt)).
 * Full jitter spreads a crowd of clients reconnecting after a node restart over the whole
 * window instead of having them all arrive together. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly baseMs = BACKOFF_BASE_MS, private readonly maxMs = BACKOFF_MAX_MS, private readonly random = Math.random) {}

  /** The delay before the next attempt; each call doubles the window. */
  next(): number {
    const cap = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor(this.random() * cap);
  }

  /** Consecutive failures so far. */
  get failures(): number {
    return this.attempt;
  }

  /** After a successful hello. */
  reset(): void {
    this.attempt = 0;
  }
}

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 30000;

/** A Backoff from the client's `backoff` option (defaults 500 ms / 30 s). */
export function backoffFrom(o?: { baseMs?: number; maxMs?: number }): Backoff {
  return new Backoff(o?.baseMs ?? BACKOFF_BASE_MS, o?.maxMs ?? BACKOFF_MAX_MS);
}
