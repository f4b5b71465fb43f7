import { useCallback, useEffect, useRef, useState } from "react";
import type { Message, Thread } from "@switchboard/client";
import { useSwitchboard } from "./provider.js";

export interface ThreadsState {
  /** Most recent activity first, each with the user's own `unread` count. */
  threads: Thread[];
  /** True until the first page has loaded. */
  loading: boolean;
  error: Error | null;
  /** More (older) threads can be loaded with `loadMore`. */
  hasMore: boolean;
  loadMore: () => Promise<void>;
  /** Reloads the first page (also done after every reconnect). */
  refresh: () => Promise<void>;
}

const PAGE = 50;

/** Newest activity first; ties keep their order. */
function activity(t: Thread): string {
  const m = t.last_message?.created_at ?? "";
  return m > t.updated_at ? m : t.updated_at;
}
function sorted(list: Thread[]): Thread[] {
  return list
    .map((t, i) => [t, i] as const)
    .sort((a, b) => {
      const x = activity(a[0]);
      const y = activity(b[0]);
      return x < y ? 1 : x > y ? -1 : a[1] - b[1];
    })
    .map(([t]) => t);
}
function upsert(list: Thread[], t: Thread): Thread[] {
  const i = list.findIndex((x) => x.id === t.id);
  if (i < 0) return sorted([t, ...list]);
  const next = list.slice();
  next[i] = t;
  return sorted(next);
}

/**
 * The user's threads, kept live: `thread` events add, change or remove them; `message` events
 * move `last_message`/`last_seq` forward, count others' messages as unread and reorder; the
 * user's own reads (from other devices, or `markRead` of `useThread`) clear `unread`.
 */
export function useThreads(): ThreadsState {
  const sb = useSwitchboard();
  const [threads, setThreads] = useState<Thread[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const nextRef = useRef<string | null>(null);
  nextRef.current = next;
  const threadsRef = useRef<Thread[]>(threads);
  threadsRef.current = threads;
  // Refreshes are numbered so that a slow, older one cannot overwrite a newer one.
  const gen = useRef(0);

  const refresh = useCallback(async () => {
    if (!sb) return;
    const my = ++gen.current;
    try {
      const page = await sb.client.threads({ limit: PAGE });
      if (my !== gen.current) return;
      setThreads((cur) => {
        // Keep threads beyond the first page that are already loaded, and a thread's newer
        // state where a live event overtook the listing.
        const byId = new Map(cur.map((t) => [t.id, t]));
        const fresh = page.threads.map((t) => {
          const c = byId.get(t.id);
          return c && c.last_seq > t.last_seq ? c : t;
        });
        const ids = new Set(fresh.map((t) => t.id));
        return sorted([...fresh, ...cur.filter((t) => !ids.has(t.id))]);
      });
      setNext(page.next);
      setError(null);
    } catch (e) {
      if (my === gen.current) setError(e as Error);
    } finally {
      if (my === gen.current) setLoading(false);
    }
  }, [sb]);

  const loadMore = useCallback(async () => {
    const before = nextRef.current;
    if (!sb || !before) return;
    const page = await sb.client.threads({ limit: PAGE, before });
    setThreads((cur) => {
      const have = new Set(cur.map((t) => t.id));
      return sorted([...cur, ...page.threads.filter((t) => !have.has(t.id))]);
    });
    setNext(page.next);
  }, [sb]);

  useEffect(() => {
    setThreads([]);
    setNext(null);
    setLoading(true);
    setError(null);
    if (!sb) return;
    const { client, store } = sb;
    let alive = true;
    const fetching = new Set<string>();

    const fetchThread = (id: string) => {
      if (fetching.has(id)) return;
      fetching.add(id);
      client
        .rest<Thread>("GET", `/threads/${encodeURIComponent(id)}`)
        .then((t) => alive && setThreads((cur) => upsert(cur, t)))
        .catch(() => {})
        .finally(() => fetching.delete(id));
    };

    const onMessage = (m: Message) => {
      // A thread we did not list (e.g. someone started a direct chat with us): fetch it.
      if (!threadsRef.current.some((x) => x.id === m.thread_id)) fetchThread(m.thread_id);
      setThreads((cur) => {
        const t = cur.find((x) => x.id === m.thread_id);
        if (!t) return cur;
        if (m.seq <= t.last_seq) return cur;
        const mine = m.sender_id === client.userId;
        return upsert(cur, {
          ...t,
          last_seq: m.seq,
          last_message: m,
          updated_at: m.created_at > t.updated_at ? m.created_at : t.updated_at,
          unread: mine || m.deleted ? (t.unread ?? 0) : (t.unread ?? 0) + 1,
        });
      });
    };

    const onChanged = (m: Message) =>
      setThreads((cur) => {
        const i = cur.findIndex((x) => x.id === m.thread_id && x.last_message?.id === m.id);
        if (i < 0) return cur;
        const next = cur.slice();
        next[i] = { ...cur[i], last_message: m };
        return next;
      });

    const ownRead = (threadId: string, seq: number) => {
      const t = threadsRef.current.find((x) => x.id === threadId);
      if (t && seq < t.last_seq) {
        // Only the gateway knows how many of the rest are others' (unread) messages.
        client
          .rest<{ total: number; threads: Record<string, number> }>("GET", "/unread")
          .then((u) => {
            if (!alive) return;
            const n = u.threads[threadId] ?? 0;
            setThreads((cur) => cur.map((x) => (x.id === threadId && x.unread !== n ? { ...x, unread: n } : x)));
          })
          .catch(() => {});
        return;
      }
      setThreads((cur) => {
        const i = cur.findIndex((x) => x.id === threadId);
        if (i < 0 || !cur[i].unread || seq < cur[i].last_seq) return cur;
        const next = cur.slice();
        next[i] = { ...cur[i], unread: 0 };
        return next;
      });
    };

    const offs = [
      client.on("message", onMessage),
      client.on("message_updated", onChanged),
      client.on("message_deleted", onChanged),
      client.on("thread", ({ event, thread }) => {
        const me = client.userId;
        if (event === "member_removed" && me && !thread.members.includes(me)) {
          setThreads((cur) => cur.filter((t) => t.id !== thread.id));
        } else {
          setThreads((cur) => upsert(cur, thread));
        }
      }),
      client.on("read", (ev) => {
        if (ev.user_id === client.userId) ownRead(ev.thread_id, ev.seq);
      }),
      store.onLocalRead(ownRead),
      // After each (re)connect the listing is the truth again (unread counts moved while away).
      client.on("hello", () => void refresh()),
    ];
    void refresh();
    return () => {
      alive = false;
      gen.current++;
      offs.forEach((off) => off());
    };
  }, [sb, refresh]);

  return { threads, loading, error, hasMore: next !== null, loadMore, refresh };
}
