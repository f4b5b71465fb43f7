/** Repeat `true` this often while the user keeps typing: the gateway's automatic `false`
 * comes 5 s after the last `true`, so 3 s keeps the indicator up with one frame per 3 s. */
export const TYPING_REPEAT_MS = 3000;
/** Send `false` ourselves after this long without a typing(true) call. */
export const TYPING_IDLE_MS = 5000;

interface ThreadTyping {
  lastTrue: number; // when a `true` was last sent
  active: boolean; // a `true` went out and no `false` since
  idle?: ReturnType<typeof setTimeout>;
}

/** Per-thread typing throttle. `send` is fire and forget (typing is lossy by design). */
export class TypingThrottle {
  private readonly threads = new Map<string, ThreadTyping>();

  constructor(private readonly send: (threadId: string, isTyping: boolean) => void, private readonly now = () => Date.now()) {}

  set(threadId: string, isTyping: boolean): void {
    let t = this.threads.get(threadId);
    if (isTyping) {
      if (!t) this.threads.set(threadId, (t = { lastTrue: -Infinity, active: false }));
      const now = this.now();
      if (!t.active || now - t.lastTrue >= TYPING_REPEAT_MS) {
        t.lastTrue = now;
        t.active = true;
        this.send(threadId, true);
      }
      if (t.idle) clearTimeout(t.idle);
      t.idle = setTimeout(() => this.set(threadId, false), TYPING_IDLE_MS);
      return;
    }
    if (!t) return;
    if (t.idle) clearTimeout(t.idle);
    this.threads.delete(threadId);
    if (t.active) this.send(threadId, false);
  }

  /** Stop every timer (client closed). */
  clear(): void {
    for (const t of this.threads.values()) if (t.idle) clearTimeout(t.idle);
    this.threads.clear();
  }
}
