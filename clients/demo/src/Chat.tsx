import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { useClient, useConnection, useNotifications, usePresence, useThread, useThreads } from "@switchboard/react";
import type { Message, Presence, Thread } from "@switchboard/client";

type Selection = { threadId: string } | { draftTo: string } | null;

export function Chat({ me, gateway, onLogout, onRefused }: { me: string; gateway: string; onLogout: () => void; onRefused: () => void }) {
  const conn = useConnection();
  // Stopped because the token kept being refused (the client reports it as a 4001 close).
  useEffect(() => {
    if (conn.state === "stopped" && conn.lastClose?.code === 4001) onRefused();
  }, [conn.state, conn.lastClose, onRefused]);
  const client = useClient();
  const { threads, loading } = useThreads();
  const [sel, setSel] = useState<Selection>(null);
  const [showNotifs, setShowNotifs] = useState(false);
  const notifs = useNotifications();

  // Everyone we share a thread with: their presence dots.
  const others = useMemo(() => {
    const s = new Set<string>();
    for (const t of threads) for (const u of t.members) if (u !== me) s.add(u);
    return [...s].sort();
  }, [threads, me]);
  const presence = usePresence(others);

  // `delivered` for every message that reaches this page from someone else: live ones, and
  // the newest of each listed thread (what arrived while the page was closed).
  const deliveredSent = useRef(new Map<string, number>());
  useEffect(() => {
    if (!client) return;
    const sent = deliveredSent.current;
    const deliver = (threadId: string, seq: number) => {
      if ((sent.get(threadId) ?? 0) >= seq) return;
      sent.set(threadId, seq);
      client.delivered(threadId, seq).catch(() => sent.get(threadId) === seq && sent.delete(threadId));
    };
    for (const t of threads) {
      if (t.last_message && t.last_message.sender_id !== me) deliver(t.id, t.last_seq);
    }
    const off = client.on("message", (m: Message) => {
      if (m.sender_id !== me) deliver(m.thread_id, m.seq);
    });
    return off;
  }, [client, threads, me]);

  const openThread = threads.find((t) => sel && "threadId" in sel && t.id === sel.threadId) ?? null;

  const startChat = (userId: string) => {
    const u = userId.trim();
    if (!u || u === me) return;
    const existing = threads.find((t) => t.kind === "direct" && t.members.includes(u) && t.members.includes(me));
    setSel(existing ? { threadId: existing.id } : { draftTo: u });
  };

  return (
    <div className="app">
      <header className="top">
        <strong className="brand">Switchboard</strong>
        <span className="me">
          signed in as <b data-testid="me">{me}</b>
        </span>
        <span className={`conn conn-${conn.state}`} data-testid="conn-state" data-state={conn.state}>
          {conn.state}
          {conn.state !== "open" && conn.lastClose ? ` (last close ${conn.lastClose.code})` : ""}
        </span>
        <span className="spacer" />
        <button
          className="bell"
          data-testid="notif-toggle"
          onClick={() => setShowNotifs((v) => !v)}
          aria-expanded={showNotifs}
          title="Notifications"
        >
          Notifications{" "}
          <span className={notifs.unreadCount ? "badge" : "badge zero"} data-testid="notif-count">
            {notifs.unreadCount}
          </span>
        </button>
        <button className="link" data-testid="logout" onClick={onLogout}>
          Log out
        </button>
      </header>
      {showNotifs && <NotificationsPanel n={notifs} />}
      <div className="main">
        <aside className="sidebar">
          <NewChat onStart={startChat} />
          <ul className="threads" data-testid="thread-list">
            {loading && threads.length === 0 && <li className="muted pad">Loading…</li>}
            {!loading && threads.length === 0 && <li className="muted pad">No chats yet: start one above.</li>}
            {threads.map((t) => (
              <ThreadItem
                key={t.id}
                t={t}
                me={me}
                presence={presence}
                active={openThread?.id === t.id}
                onClick={() => setSel({ threadId: t.id })}
              />
            ))}
          </ul>
          <p className="muted small pad">
            Gateway <code>{gateway}</code>
          </p>
        </aside>
        <section className="conversation">
          {sel && "threadId" in sel ? (
            <Conversation key={sel.threadId} threadId={sel.threadId} thread={openThread} me={me} presence={presence} />
          ) : sel && "draftTo" in sel ? (
            <Draft key={sel.draftTo} to={sel.draftTo} onSent={(m) => setSel({ threadId: m.thread_id })} />
          ) : (
            <div className="empty muted">Pick a chat, or start one with a user id.</div>
          )}
        </section>
      </div>
    </div>
  );
}

function peersOf(t: Thread | null, me: string): string[] {
  return t ? t.members.filter((u) => u !== me) : [];
}

function titleOf(t: Thread, me: string): string {
  if (t.title) return t.title;
  const p = peersOf(t, me);
  return p.length ? p.join(", ") : "(just you)";
}

function Dot({ p, user }: { p: Presence | undefined; user: string }) {
  const online = !!p?.online;
  return (
    <span
      className={`dot ${online ? "on" : "off"}`}
      data-testid="presence-dot"
      data-user={user}
      data-online={online ? "true" : "false"}
      title={online ? `${user} is online` : p?.last_seen ? `${user} was last seen ${p.last_seen}` : `${user} is offline`}
    />
  );
}

function ThreadItem(props: { t: Thread; me: string; presence: Readonly<Record<string, Presence>>; active: boolean; onClick: () => void }) {
  const { t, me, presence, active, onClick } = props;
  const peers = peersOf(t, me);
  const last = t.last_message;
  return (
    <li>
      <button
        className={`thread ${active ? "active" : ""}`}
        data-testid="thread-item"
        data-thread-id={t.id}
        data-peer={peers.join(",")}
        onClick={onClick}
      >
        <span className="dots">
          {peers.slice(0, 3).map((u) => (
            <Dot key={u} p={presence[u]} user={u} />
          ))}
        </span>
        <span className="thread-text">
          <span className="thread-title">{titleOf(t, me)}</span>
          <span className="preview muted">
            {last ? (last.deleted ? "(deleted)" : `${last.sender_id === me ? "you: " : ""}${last.body}`) : "no messages"}
          </span>
        </span>
        {t.unread ? (
          <span className="badge" data-testid="unread-badge">
            {t.unread}
          </span>
        ) : null}
      </button>
    </li>
  );
}

function NewChat({ onStart }: { onStart: (userId: string) => void }) {
  const [u, setU] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onStart(u);
    setU("");
  };
  return (
    <form className="newchat" onSubmit={submit}>
      <input
        data-testid="new-chat-user"
        value={u}
        onChange={(e) => setU(e.target.value)}
        placeholder="Chat with user id…"
        autoComplete="off"
      />
      <button type="submit" data-testid="new-chat-start">
        Start
      </button>
    </form>
  );
}

/** Whether the page is visible: reads are sent only then. */
function useVisible(): boolean {
  const [v, setV] = useState(() => document.visibilityState === "visible");
  useEffect(() => {
    const f = () => setV(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", f);
    return () => document.removeEventListener("visibilitychange", f);
  }, []);
  return v;
}

function typingText(users: string[]): string {
  if (users.length === 0) return "";
  if (users.length === 1) return `${users[0]} is typing…`;
  return `${users.slice(0, -1).join(", ")} and ${users[users.length - 1]} are typing…`;
}

function Conversation(props: { threadId: string; thread: Thread | null; me: string; presence: Readonly<Record<string, Presence>> }) {
  const { threadId, thread, me, presence } = props;
  const t = useThread(threadId);
  const visible = useVisible();
  const peers = peersOf(thread, me);
  const listRef = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  const lastSeq = t.messages.length ? t.messages[t.messages.length - 1].seq : 0;

  // Read: the thread is open and the page visible.
  const { markRead } = t;
  useEffect(() => {
    if (visible && lastSeq > 0) markRead(lastSeq).catch(() => {});
  }, [visible, lastSeq, markRead]);

  // Keep the newest message in view unless the user scrolled up.
  useEffect(() => {
    const el = listRef.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [t.messages.length, t.pending.length]);
  const onScroll = () => {
    const el = listRef.current;
    if (el) stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  };

  const receipt = (m: Message): "sent" | "delivered" | "read" => {
    if (peers.length === 0) return "sent";
    if (peers.every((u) => (t.readUpTo[u] ?? 0) >= m.seq)) return "read";
    if (peers.every((u) => (t.deliveredUpTo[u] ?? 0) >= m.seq)) return "delivered";
    return "sent";
  };

  return (
    <div className="conv" data-testid="conversation" data-thread-id={threadId}>
      <div className="conv-head">
        {peers.map((u) => (
          <span key={u} className="peer" data-testid="peer">
            <Dot p={presence[u]} user={u} /> {u}
          </span>
        ))}
        {thread?.title && <b>{thread.title}</b>}
      </div>
      <ol className="messages" data-testid="messages" ref={listRef} onScroll={onScroll}>
        {t.hasOlder && (
          <li className="center">
            <button className="link" data-testid="load-older" onClick={() => t.loadOlder().catch(() => {})}>
              Load older messages
            </button>
          </li>
        )}
        {t.loading && t.messages.length === 0 && <li className="muted center">Loading…</li>}
        {t.messages.map((m) => {
          const mine = m.sender_id === me;
          const r = mine ? receipt(m) : null;
          return (
            <li
              key={m.seq}
              className={`msg ${mine ? "mine" : "theirs"}`}
              data-testid="message"
              data-seq={m.seq}
              data-sender={m.sender_id}
            >
              {!mine && <span className="sender">{m.sender_id}</span>}
              <span className={`body ${m.deleted ? "muted" : ""}`} data-testid="message-body">
                {m.deleted ? "(deleted)" : m.body}
              </span>
              <span className="meta">
                {m.created_at.slice(11, 16)}
                {m.edited_at && !m.deleted ? " · edited" : ""}
                {r && (
                  <span className={`receipt ${r}`} data-testid="receipt" data-state={r} title={r}>
                    {r === "read" ? "✓✓" : r === "delivered" ? "✓" : ""}
                  </span>
                )}
              </span>
            </li>
          );
        })}
        {t.pending.map((p) => (
          <li key={p.clientId} className="msg mine pending" data-testid="pending">
            <span className="body">{p.body}</span>
            <span className="meta">{p.error ? `not sent: ${p.error.message}` : "sending…"}</span>
          </li>
        ))}
      </ol>
      <div className="typing" data-testid="typing" aria-live="polite">
        {typingText(t.typingUsers)}
      </div>
      <Composer
        onTyping={t.setTyping}
        onSend={(body) => {
          t.send(body).catch(() => {});
        }}
      />
    </div>
  );
}

/** A chat with someone we have no thread with yet: the first message goes with `to`. */
function Draft({ to, onSent }: { to: string; onSent: (m: Message) => void }) {
  const client = useClient();
  const [error, setError] = useState<string | null>(null);
  const [sending, setSending] = useState<string | null>(null);
  return (
    <div className="conv" data-testid="conversation" data-draft-to={to}>
      <div className="conv-head">
        <span className="peer">{to}</span> <span className="muted small">new chat</span>
      </div>
      <ol className="messages" data-testid="messages">
        {sending && (
          <li className="msg mine pending" data-testid="pending">
            <span className="body">{sending}</span>
            <span className="meta">sending…</span>
          </li>
        )}
        {!sending && <li className="muted center">Say hello to {to}.</li>}
      </ol>
      {error && <p className="error">{error}</p>}
      <Composer
        onTyping={() => {}}
        onSend={(body) => {
          if (!client) return;
          setSending(body);
          setError(null);
          client.send({ to, body }).then(onSent, (e: Error) => {
            setSending(null);
            setError(e.message);
          });
        }}
      />
    </div>
  );
}

function Composer({ onSend, onTyping }: { onSend: (body: string) => void; onTyping: (on: boolean) => void }) {
  const [text, setText] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = text.trim();
    if (!body) return;
    onTyping(false);
    onSend(body);
    setText("");
  };
  return (
    <form className="composer" onSubmit={submit}>
      <input
        data-testid="composer-input"
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          onTyping(e.target.value.length > 0);
        }}
        onBlur={() => onTyping(false)}
        placeholder="Write a message…"
        autoComplete="off"
        maxLength={8000}
      />
      <button type="submit" data-testid="composer-send" disabled={!text.trim()}>
        Send
      </button>
    </form>
  );
}

function NotificationsPanel({ n }: { n: ReturnType<typeof useNotifications> }) {
  return (
    <div className="notifs" data-testid="notif-panel">
      <div className="notifs-head">
        <b>Notifications</b>
        <span className="muted small">{n.unreadCount} unread</span>
        <span className="spacer" />
        <button className="link" data-testid="notif-read-all" disabled={n.unreadCount === 0} onClick={() => n.markAllRead().catch(() => {})}>
          Mark all read
        </button>
      </div>
      {n.items.length === 0 && <p className="muted pad">Nothing yet.</p>}
      <ul>
        {n.items.map((x) => (
          <li key={x.id} className={`notif ${x.read_at ? "read" : "unread"} prio-${x.priority}`} data-testid="notification" data-id={x.id} data-read={x.read_at ? "true" : "false"}>
            <div className="notif-title">
              {x.title} <span className="muted small">{x.category}</span>
            </div>
            <div className="notif-body">{x.body}</div>
            <div className="muted small">
              {x.created_at.replace("T", " ").slice(0, 16)}
              {!x.read_at && (
                <button className="link" data-testid="notif-read" onClick={() => n.markRead(x.id).catch(() => {})}>
                  Mark read
                </button>
              )}
            </div>
          </li>
        ))}
      </ul>
      {n.hasMore && (
        <button className="link" onClick={() => n.loadMore().catch(() => {})}>
          More
        </button>
      )}
    </div>
  );
}
