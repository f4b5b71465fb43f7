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
 * per namespace and user: another user signing in on the same browser never sends them. */
export class IndexedDbStorage implements OutboxStorage {
  private readonly db: Promise<IDBDatabase>;

  constructor(idb: IDBFactory, dbName: string) {
    this.db = new Promise((resolve, reject) => {
      const req = idb.open(dbName, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "client_id" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }

  async load(): Promise<OutboxEntry[]> {
    const all = await this.tx<OutboxEntry[]>("readonly", (s) => s.getAll());
    return all.sort((a, b) => a.order - b.order);
  }
  async put(e: OutboxEntry): Promise<void> {
    await this.tx("readwrite", (s) => s.put(e));
  }
  async remove(clientId: string): Promise<void> {
    await this.tx("readwrite", (s) => s.delete(clientId));
  }

  private async tx<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest): Promise<T> {
    const db = await this.db;
    return new Promise<T>((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = op(t.objectStore(STORE));
      // Resolve on commit, not on the request: a put is durable only then.
      t.oncomplete = () => resolve(req.result as T);
      t.onerror = t.onabort = () => reject(t.error ?? req.error);
    });
  }
}
