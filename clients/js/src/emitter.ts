/** A minimal typed event emitter; a listener that throws cannot break the client. */
export class Emitter<E extends object> {
  private readonly map = new Map<keyof E, Set<(ev: never) => void>>();

  on<K extends keyof E>(type: K, fn: (ev: E[K]) => void): () => void {
    let set = this.map.get(type);
    if (!set) this.map.set(type, (set = new Set()));
    const f = fn as (ev: never) => void;
    set.add(f);
    return () => {
      const s = this.map.get(type);
      if (!s) return;
      s.delete(f);
      // No empty sets left behind by components that subscribe and unsubscribe all day.
      if (s.size === 0) this.map.delete(type);
    };
  }

  /** Listeners of `type` (for tests and diagnostics). */
  listenerCount(type: keyof E): number {
    return this.map.get(type)?.size ?? 0;
  }

  emit<K extends keyof E>(type: K, ev: E[K]): void {
    const set = this.map.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        (fn as (ev: E[K]) => void)(ev);
      } catch (e) {
        // A broken listener must not stop delivery to the others, nor the client's loop.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}
