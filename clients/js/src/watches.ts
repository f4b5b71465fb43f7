/**
 * Presence watches of a connection owner, per user and requester (a tab id, or "self"): a user
 * stays watched while any requester still watches them. Each tab counts its own calls (the
 * client does), so a requester here is either watching a user or not.
 */
export class Watches {
  private readonly byUser = new Map<string, Set<string>>();

  get size(): number {
    return this.byUser.size;
  }

  users(): string[] {
    return [...this.byUser.keys()];
  }

  add(userIds: string[], owner: string): void {
    for (const u of userIds) {
      let s = this.byUser.get(u);
      if (!s) this.byUser.set(u, (s = new Set()));
      s.add(owner);
    }
  }

  /** Returns the users nobody watches any more. */
  remove(userIds: string[], owner: string): string[] {
    const gone: string[] = [];
    for (const u of userIds) {
      const s = this.byUser.get(u);
      if (!s || !s.delete(owner)) continue;
      if (s.size === 0) {
        this.byUser.delete(u);
        gone.push(u);
      }
    }
    return gone;
  }

  /** A requester left: returns the users nobody watches any more. */
  dropOwner(owner: string): string[] {
    return this.remove(this.users(), owner);
  }
}
