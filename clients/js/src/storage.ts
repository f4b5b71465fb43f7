/** One unacknowledged send, as stored (wire field names, so it can be sent as is). */
export interface OutboxEntry {
  client_id: string;
  thread_id?: string;
  to?: string;
  body: string;
  reply_to?: string;
  metadata?: Record<string, unknown>;
  /** Sort key: sends go out in the order they were made. */
  order: number;
  /** Date.now() when send() was called. */
  queued_at: number;
}

export interface OutboxStorage {
  load(): Promise<OutboxEntry[]>;
  put(e: OutboxEntry): Promise<void>;
  remove(clientId: string): Promise<void>;
}

export class MemoryStorage implements OutboxStorage {
  private readonly map = new Map<string, OutboxEntry>();
  async load(): Promise<OutboxEntry[]> {
    return [...this.map.values()].sort((a, b) => a.order - b.order);
  }
  async put(e: OutboxEntry): Promise<void> {
    this.map.set(e.client_id, e);
  }
  async remove(clientId: string): Promise<void> {
    this.map.delete(clientId);
  }
}

const STORE = "outbox";

/** Unacked sends in IndexedDB, so they survive a reload or a crash of the tab. One database
 * per namespace and user: another user signing in on the same browser never sends them.
 * Where IndexedDB cannot be opened (private browsing, quota, a blocked upgrade) or a write
 * fails, entries live in memory instead: sends keep working, they only lose the reload
 * guarantee. */
export class IndexedDbStorage implements OutboxStorage {
  private readonly db: Promise<IDBDatabase | null>;
  private readonly mem = new MemoryStorage();

  constructor(idb: IDBFactory, dbName: string, openTimeoutMs = 5000) {
    this.db = new Promise<IDBDatabase | null>((resolve) => {
      // A blocked or hanging open must not hold every send forever.
      const timer = setTimeout(() => resolve(null), openTimeoutMs);
      const done = (db: IDBDatabase | null) => {
        clearTimeout(timer);
        resolve(db);
      };
      try {
        const req = idb.open(dbName, 1);
        req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "client_id" });
        req.onsuccess = () => done(req.result);
        req.onerror = () => done(null);
        req.onblocked = () => done(null);
      } catch {
        done(null); // e.g. SecurityError in some private modes
      }
    });
  }

  /** Whether entries are in IndexedDB (false: the memory fallback). */
  async persistent(): Promise<boolean> {
    return (await this.db) !== null;
  }

  async load(): Promise<OutboxEntry[]> {
    const mem = await this.mem.load();
    if (!(await this.db)) return mem;
    const all = await this.tx<OutboxEntry[]>("readonly", (s) => s.getAll()).catch(() => [] as OutboxEntry[]);
    return [...all, ...mem].sort((a, b) => a.order - b.order);
  }
  async put(e: OutboxEntry): Promise<void> {
    if (await this.db) {
      try {
        await this.tx("readwrite", (s) => s.put(e));
        return;
      } catch {
        // quota exceeded, or the database went away: keep it in memory
      }
    }
    await this.mem.put(e);
  }
  async remove(clientId: string): Promise<void> {
    await this.mem.remove(clientId);
    if (await this.db) await this.tx("readwrite", (s) => s.delete(clientId));
  }

  private async tx<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest): Promise<T> {
    const db = (await this.db)!;
    return new Promise<T>((resolve, reject) => {
      let t: IDBTransaction;
      let req: IDBRequest;
      try {
        t = db.transaction(STORE, mode);
        req = op(t.objectStore(STORE));
      } catch (e) {
        reject(e);
        return;
      }
      // Resolve on commit, not on the request: a put is durable only then.
      t.oncomplete = () => resolve(req.result as T);
      t.onerror = t.onabort = () => reject(t.error ?? req.error);
    });
  }
}
