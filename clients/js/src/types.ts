import type { SwitchboardError } from "./errors.js";
import type { BroadcastFrame, HelloFrame, Message, Notification, Presence, ReceiptFrame, Thread, ThreadFrame, TypingFrame } from "./frames.js";
import type { OutboxEntry } from "./storage.js";

export type TokenReason = "initial" | "expired" | "refused";

export interface ConnectOptions {
  /** Gateway base URL, e.g. "http://127.0.0.1:8080". */
  url: string;
  getToken: (reason: TokenReason) => Promise<string> | string;
  WebSocket?: any;
  EventSource?: any;
  fetch?: typeof fetch;
  /** auto: WebSocket, and SSE+REST when a WebSocket cannot be opened (3 tries) while the
   * gateway takes the token over REST; back to WebSocket when a trial socket opens. */
  transport?: "auto" | "ws" | "sse";
  /** "auto" on SSE: the first WebSocket trial after this long (default 60000), then doubling
   * up to 8x while trials fail. */
  wsRetryMs?: number;
  requestTimeoutMs?: number;
  backoff?: { baseMs?: number; maxMs?: number };
  outbox?: "memory" | "indexeddb";
  shareAcrossTabs?: boolean;
  name?: string;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "offline" | "stopped";

export type Hello = Omit<HelloFrame, "type">;
export type TypingEvent = Omit<TypingFrame, "type">;
export type ReceiptEvent = Omit<ReceiptFrame, "type">;
export type ThreadEvent = Omit<ThreadFrame, "type">;
export type BroadcastEvent = Omit<BroadcastFrame, "type">;
export interface CloseInfo {
  code: number;
  reason: string;
}

export interface ClientEvents {
  state: ConnectionState;
  hello: Hello;
  message: Message;
  message_updated: Message;
  message_deleted: Message;
  typing: TypingEvent;
  read: ReceiptEvent;
  delivered: ReceiptEvent;
  presence: Presence;
  notification: Notification;
  notification_read: { ids?: string[]; all?: boolean };
  thread: ThreadEvent;
  broadcast: BroadcastEvent;
  error: SwitchboardError;
  close: CloseInfo;
}

export interface SendOptions {
  threadId?: string;
  to?: string;
  body: string;
  clientId?: string;
  replyTo?: string;
  metadata?: Record<string, unknown>;
}
export interface HistoryQuery {
  afterSeq?: number;
  beforeSeq?: number;
  limit?: number;
}

export interface Client {
  readonly state: ConnectionState;
  readonly userId: string | null;
  readonly lastClose: CloseInfo | null;
  /** The transport in use (or being tried): "ws", or "sse" (forced, or the "auto" fallback). */
  readonly transport: "ws" | "sse";
  on<K extends keyof ClientEvents>(type: K, fn: (ev: ClientEvents[K]) => void): () => void;
  send(m: SendOptions): Promise<Message>;
  history(threadId: string, q: HistoryQuery): Promise<{ messages: Message[]; hasMore: boolean }>;
  threads(q?: { limit?: number; before?: string }): Promise<{ threads: Thread[]; next: string | null }>;
  read(threadId: string, seq: number): Promise<void>;
  delivered(threadId: string, seq: number): Promise<void>;
  typing(threadId: string, isTyping: boolean): void;
  watchPresence(userIds: string[]): Promise<Presence[]>;
  unwatchPresence(userIds: string[]): Promise<void>;
  rest<T = unknown>(method: string, path: string, body?: unknown): Promise<T>;
  /** Sends not yet acknowledged (e.g. left by an earlier page load), oldest first. */
  pendingSends(): Promise<OutboxEntry[]>;
  close(): void;
}

/** Operations a tab may run on the connection's owner (itself, or the leader tab). */
export interface Ops {
  send(e: OutboxEntry): Promise<Message>;
  history(threadId: string, q: HistoryQuery): Promise<{ messages: Message[]; hasMore: boolean }>;
  threads(q: { limit?: number; before?: string }): Promise<{ threads: Thread[]; next: string | null }>;
  read(threadId: string, seq: number): Promise<void>;
  delivered(threadId: string, seq: number): Promise<void>;
  typing(threadId: string, isTyping: boolean): Promise<void>;
  /** `owner`: the tab that asks (tab sharing); this tab when left out. */
  watchPresence(userIds: string[], owner?: string): Promise<Presence[]>;
  unwatchPresence(userIds: string[], owner?: string): Promise<void>;
  rest(method: string, path: string, body?: unknown): Promise<unknown>;
  pendingSends(): Promise<OutboxEntry[]>;
}
