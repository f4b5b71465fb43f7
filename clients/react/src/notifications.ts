import { useCallback, useEffect, useRef, useState } from "react";
import type { Notification } from "@switchboard/client";
import { useSwitchboard } from "./provider.js";

export interface NotificationsState {
  /** Newest first (the first page of `GET /notifications`, and live ones since). */
  items: Notification[];
  /** All unread notifications of the user, not only those in `items`. */
  unreadCount: number;
  loading: boolean;
  error: Error | null;
  hasMore: boolean;
  loadMore: () => Promise<void>;
  markRead: (id: string) => Promise<void>;
  markAllRead: () => Promise<void>;
  /** Dismisses one notification (gone from the list). */
  dismiss: (id: string) => Promise<void>;
  refresh: () => Promise<void>;
}

interface Page {
  notifications: Notification[];
  next: string | null;
}

const PAGE = 50;

function dedupe(list: Notification[]): Notification[] {
  const seen = new Set<string>();
  return list.filter((n) => (seen.has(n.id) ? false : (seen.add(n.id), true)));
}
function newestFirst(list: Notification[]): Notification[] {
  return dedupe(list).sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
}

/**
 * The user's notifications over REST, kept live by `notification` and `notification_read`
 * events, and reloaded after every reconnect (notifications are not replayed).
 */
export function useNotifications(): NotificationsState {
  const sb = useSwitchboard();
  const client = sb?.client ?? null;
  const [items, setItems] = useState<Notification[]>([]);
  const [unreadCount, setUnread] = useState(0);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const itemsRef = useRef(items);
  itemsRef.current = items;
  const nextRef = useRef(next);
  nextRef.current = next;
  const gen = useRef(0);

  const fetchCount = useCallback(async () => {
    if (!client) return;
    const my = gen.current;
    const c = await client.rest<{ count: number }>("GET", "/notifications/unread-count");
    if (my === gen.current) setUnread(c.count);
  }, [client]);

  const refresh = useCallback(async () => {
    if (!client) return;
    const my = ++gen.current;
    try {
      const [page, count] = await Promise.all([
        client.rest<Page>("GET", `/notifications?limit=${PAGE}`),
        client.rest<{ count: number }>("GET", "/notifications/unread-count"),
      ]);
      if (my !== gen.current) return;
      setItems((cur) => {
        // Keep older pages already loaded; the fresh page wins for the ids it has.
        const oldest = page.notifications[page.notifications.length - 1]?.created_at ?? "";
        return newestFirst([...page.notifications, ...cur.filter((n) => page.next !== null && n.created_at < oldest)]);
      });
      setNext(page.next);
      setUnread(count.count);
      setError(null);
    } catch (e) {
      if (my === gen.current) setError(e as Error);
    } finally {
      if (my === gen.current) setLoading(false);
    }
  }, [client]);

  const loadMore = useCallback(async () => {
    const before = nextRef.current;
    if (!client || !before) return;
    const page = await client.rest<Page>("GET", `/notifications?limit=${PAGE}&before=${encodeURIComponent(before)}`);
    setItems((cur) => newestFirst([...cur, ...page.notifications]));
    setNext(page.next);
  }, [client]);

  useEffect(() => {
    setItems([]);
    setUnread(0);
    setNext(null);
    setError(null);
    setLoading(true);
    if (!client) return;
    const offs = [
      client.on("notification", (n) => {
        const known = itemsRef.current.some((x) => x.id === n.id);
        setItems((cur) => (cur.some((x) => x.id === n.id) ? cur : newestFirst([n, ...cur])));
        if (!known && n.read_at === null) setUnread((c) => c + 1);
      }),
      client.on("notification_read", (ev) => {
        const now = new Date().toISOString();
        if (ev.all) {
          setItems((cur) => (cur.some((n) => !n.read_at) ? cur.map((n) => (n.read_at ? n : { ...n, read_at: now })) : cur));
          setUnread(0);
          return;
        }
        const ids = new Set(ev.ids ?? []);
        const held = itemsRef.current.filter((n) => ids.has(n.id));
        const unreadHeld = held.filter((n) => !n.read_at).length;
        setItems((cur) => cur.map((n) => (ids.has(n.id) && !n.read_at ? { ...n, read_at: now } : n)));
        if (held.length === ids.size) setUnread((c) => Math.max(0, c - unreadHeld));
        else fetchCount().catch(() => {}); // some ids are not held here: ask
      }),
      client.on("hello", () => void refresh()),
    ];
    void refresh();
    return () => {
      gen.current++;
      offs.forEach((off) => off());
    };
  }, [client, refresh, fetchCount]);

  const markRead = useCallback(
    async (id: string) => {
      if (!client) return;
      const n = itemsRef.current.find((x) => x.id === id);
      if (n && !n.read_at) {
        const now = new Date().toISOString();
        setItems((cur) => cur.map((x) => (x.id === id && !x.read_at ? { ...x, read_at: now } : x)));
        setUnread((c) => Math.max(0, c - 1));
      }
      try {
        await client.rest("POST", `/notifications/${encodeURIComponent(id)}/read`);
      } finally {
        if (!n) await fetchCount().catch(() => {});
      }
    },
    [client, fetchCount],
  );

  const markAllRead = useCallback(async () => {
    if (!client) return;
    const now = new Date().toISOString();
    setItems((cur) => cur.map((n) => (n.read_at ? n : { ...n, read_at: now })));
    setUnread(0);
    await client.rest("POST", "/notifications/read-all");
  }, [client]);

  const dismiss = useCallback(
    async (id: string) => {
      if (!client) return;
      const n = itemsRef.current.find((x) => x.id === id);
      setItems((cur) => cur.filter((x) => x.id !== id));
      if (n && !n.read_at) setUnread((c) => Math.max(0, c - 1));
      await client.rest("DELETE", `/notifications/${encodeURIComponent(id)}`);
    },
    [client],
  );

  return { items, unreadCount, loading, error, hasMore: next !== null, loadMore, markRead, markAllRead, dismiss, refresh };
}
