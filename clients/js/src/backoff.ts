/** Exponential backoff with full jitter: delay = random(0, min(max, base * 2^attempt)).
 * Full jitter spreads a crowd of clients reconnecting after a node restart over the whole
 * window instead of having them all arrive together. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly baseMs = 500, private readonly maxMs = 30000, private readonly random = Math.random) {}

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
