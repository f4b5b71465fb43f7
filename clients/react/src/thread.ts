import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { uuid, type Message } from "@switchboard/client";
import { useSwitchboard } from "./provider.js";
import type { Positions } from "./store.js";

export interface SendOpts {
  clientId?: string;
  replyTo?: string;
  metadata?: Record<string, unknown>;
}

/** A send not acknowledged yet (it stays in the client's outbox across reconnects). */
export interface PendingSend {
  clientId: string;
  body: string;
  /** Set when the send failed for good (it is then dropped from the outbox). */
  error: Error | null;
}

export interface ThreadState {
  /** Ascending `seq`, each once; edits and deletes replace the message in place. */
  messages: Message[];
  /** Own sends not acknowledged yet, oldest first. */
  pending: PendingSend[];
  loading: boolean;
  error: Error | null;
  /** Older messages can be loaded with `loadOlder`. */
  hasOlder: boolean;
  /** Sends a text message; resolves with the stored message. Stable across renders. */
  send: (body: string, opts?: SendOpts) => Promise<Message>;
  /** Users typing right now, the own user left out. */
  typingUsers: string[];
  /** user id -> highest seq they have read, from `read` events seen since the provider's
   * client was created (the gateway has no call that lists other members' positions). */
  readUpTo: Positions;
  /** user id -> highest seq delivered to their device, likewise. */
  deliveredUpTo: Positions;
  /** Marks everything up to `seq` (default: the last message) read. Sends nothing when it
   * would not move the position forward. Stable across renders. */
  markRead: (seq?: number) => Promise<void>;
  /** Marks everything up to `seq` (default: the last message) delivered. */
  markDelivered: (seq?: number) => Promise<void>;
  setTyping: (isTyping: boolean) => void;
  /** Loads the page before the oldest message held. Stable across renders. */
  loadOlder: () => Promise<void>;
}

const PAGE = 50;
/** A `typing: true` whose automatic `false` got lost (typing is lossy) expires after this. */
const TYPING_TTL_MS = 7000;
const NONE: Positions = Object.freeze({});

function merge(cur: Message[], add: Message[]): Message[] {
  if (add.length === 0) return cur;
  const bySeq = new Map<number, Message>();
  for (const m of cur) bySeq.set(m.seq, m);
  let changed = false;
  for (const m of add) {
    const old = bySeq.get(m.seq);
    // Keep the newest version: an edit or delete carries edited_at, history may be older.
    if (old) {
      const a = old.edited_at ?? "";
      const b = m.edited_at ?? "";
      if (a > b || (a === b && old.deleted === m.deleted) || (old.deleted && !m.deleted)) continue;
    }
    bySeq.set(m.seq, m);
    changed = true;
  }
  if (!changed) return cur;
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/**
 * One thread: its messages (the newest page on mount, live events after, older pages on
 * demand), typing users, receipt positions, and the actions on it. `threadId` may be null
 * (no thread open): everything is empty then.
 */
export function useThread(threadId: string | null | undefined): ThreadState {
  const sb = useSwitchboard();
  const client = sb?.client ?? null;
  const store = sb?.store ?? null;
  const id = threadId ?? null;

  const [messages, setMessages] = useState<Message[]>([]);
  const [pending, setPending] = useState<PendingSend[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error | null>(null);
  const [hasOlder, setHasOlder] = useState(false);
  const [typing, setTypingUsers] = useState<string[]>([]);

  // The latest values, for the stable callbacks below.
  const messagesRef = useRef(messages);
  messagesRef.current = messages;
  const hasOlderRef = useRef(hasOlder);
  hasOlderRef.current = hasOlder;
  // The thread shown now: a send acknowledged after a switch must not land in the new one.
  const idRef = useRef(id);
  idRef.current = id;
  const sentRead = useRef(0);
  const sentDelivered = useRef(0);
  const loadingOlder = useRef<Promise<void> | null>(null);

  useEffect(() => {
    setMessages([]);
    setPending([]);
    setHasOlder(false);
    setTypingUsers([]);
    setError(null);
    setLoading(!!id);
    sentRead.current = 0;
    sentDelivered.current = 0;
    loadingOlder.current = null;
    if (!client || !id) return;
    let alive = true;
    const timers = new Map<string, ReturnType<typeof setTimeout>>();
    const stopTyping = (user: string) => {
      const t = timers.get(user);
      if (t) clearTimeout(t);
      timers.delete(user);
      setTypingUsers((cur) => (cur.includes(user) ? cur.filter((u) => u !== user) : cur));
    };
    const onMessage = (m: Message) => {
      if (m.thread_id !== id) return;
      setMessages((cur) => merge(cur, [m]));
      // Whoever sent a message has stopped typing it.
      if (timers.has(m.sender_id)) stopTyping(m.sender_id);
    };
    const onChanged = (m: Message) => m.thread_id === id && setMessages((cur) => merge(cur, [m]));
    const offs = [
      client.on("message", onMessage),
      client.on("message_updated", onChanged),
      client.on("message_deleted", onChanged),
      client.on("typing", (ev) => {
        if (ev.thread_id !== id || ev.user_id === client.userId) return;
        if (!ev.is_typing) return stopTyping(ev.user_id);
        const t = timers.get(ev.user_id);
        if (t) clearTimeout(t);
        timers.set(ev.user_id, setTimeout(() => alive && stopTyping(ev.user_id), TYPING_TTL_MS));
        setTypingUsers((cur) => (cur.includes(ev.user_id) ? cur : [...cur, ev.user_id]));
      }),
    ];
    // Subscribed first, then loaded: whatever arrives meanwhile merges in by seq.
    client.history(id, { limit: PAGE }).then(
      (page) => {
        if (!alive) return;
        setMessages((cur) => merge(cur, page.messages));
        setHasOlder(page.hasMore);
        setLoading(false);
      },
      (e) => {
        if (!alive) return;
        setError(e as Error);
        setLoading(false);
      },
    );
    return () => {
      alive = false;
      offs.forEach((off) => off());
      timers.forEach((t) => clearTimeout(t));
    };
  }, [client, id]);

  // Receipt positions: one snapshot per thread from the provider's store.
  const subscribe = useCallback((fn: () => void) => (store ? store.subscribe(fn) : () => {}), [store]);
  const readUpTo = useSyncExternalStore(
    subscribe,
    () => (store && id ? store.readPositions(id) : NONE),
    () => NONE,
  );
  const deliveredUpTo = useSyncExternalStore(
    subscribe,
    () => (store && id ? store.deliveredPositions(id) : NONE),
    () => NONE,
  );

  const send = useCallback(
    async (body: string, opts: SendOpts = {}): Promise<Message> => {
      if (!client || !id) throw new Error("useThread: no client or no thread");
      const clientId = opts.clientId ?? uuid();
      const entry: PendingSend = { clientId, body, error: null };
      setPending((cur) => [...cur, entry]);
      try {
        const m = await client.send({ threadId: id, body, clientId, replyTo: opts.replyTo, metadata: opts.metadata });
        // Still on the thread it was sent to? (The effect above resets the lists on a switch;
        // the message event already reached that thread's own hooks.)
        if (idRef.current === id && m.thread_id === id) {
          setMessages((cur) => merge(cur, [m]));
          setPending((cur) => cur.filter((p) => p.clientId !== clientId));
        }
        return m;
      } catch (e) {
        if (idRef.current === id) setPending((cur) => cur.map((p) => (p.clientId === clientId ? { ...p, error: e as Error } : p)));
        throw e;
      }
    },
    [client, id],
  );

  const markRead = useCallback(
    async (seq?: number) => {
      if (!client || !id || !store) return;
      const msgs = messagesRef.current;
      const s = seq ?? (msgs.length ? msgs[msgs.length - 1].seq : 0);
      const me = client.userId;
      const known = me ? (store.readPositions(id)[me] ?? 0) : 0;
      if (s <= 0 || s <= sentRead.current || s <= known) return;
      sentRead.current = s;
      try {
        await client.read(id, s);
      } catch (e) {
        if (sentRead.current === s) sentRead.current = 0; // let the next call try again
        throw e;
      }
      // After the ack (the receipt is stored): useThreads may ask the gateway for the count.
      store.localRead(id, s);
    },
    [client, id, store],
  );

  const markDelivered = useCallback(
    async (seq?: number) => {
      if (!client || !id) return;
      const msgs = messagesRef.current;
      const s = seq ?? (msgs.length ? msgs[msgs.length - 1].seq : 0);
      if (s <= 0 || s <= sentDelivered.current) return;
      sentDelivered.current = s;
      try {
        await client.delivered(id, s);
      } catch (e) {
        if (sentDelivered.current === s) sentDelivered.current = 0;
        throw e;
      }
    },
    [client, id],
  );

  const setTyping = useCallback(
    (isTyping: boolean) => {
      if (client && id) client.typing(id, isTyping);
    },
    [client, id],
  );

  const loadOlder = useCallback(async () => {
    if (!client || !id) return;
    if (loadingOlder.current) return loadingOlder.current;
    const msgs = messagesRef.current;
    if (!hasOlderRef.current || msgs.length === 0) return;
    const p = client
      .history(id, { beforeSeq: msgs[0].seq, limit: PAGE })
      .then((page) => {
        if (loadingOlder.current !== p) return; // the thread changed meanwhile
        setMessages((cur) => merge(cur, page.messages));
        setHasOlder(page.hasMore);
      })
      .finally(() => {
        if (loadingOlder.current === p) loadingOlder.current = null;
      });
    loadingOlder.current = p;
    return p;
  }, [client, id]);

  return {
    messages,
    pending,
    loading,
    error,
    hasOlder,
    send,
    typingUsers: typing,
    readUpTo,
    deliveredUpTo,
    markRead,
    markDelivered,
    setTyping,
    loadOlder,
  };
}
