// Wire types of the Switchboard contract v1 (PROTOCOL.md). Objects keep their snake_case
// field names: apps get exactly what the gateway sent, so the contract is the documentation.

/** RFC 3339 UTC with milliseconds, e.g. "2026-11-22T10:15:30.123Z". */
export type Timestamp = string;

export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "rate_limited"
  | "unavailable"
  | "internal"
  // Client-side codes (never sent by the gateway):
  | "timeout" // no reply within requestTimeoutMs
  | "closed"; // the client was closed or stopped (4003/4009) before the request completed

export interface Message {
  id: string;
  thread_id: string;
  seq: number;
  sender_id: string;
  kind: string; // "text", "system", "payment", "dispute", "job_update", ...
  body: string;
  metadata: Record<string, unknown> | null;
  reply_to: string | null;
  client_id: string | null;
  created_at: Timestamp;
  edited_at: Timestamp | null;
  deleted: boolean;
}

export interface Thread {
  id: string;
  kind: "direct" | "group";
  title: string | null;
  external_ref: string | null;
  members: string[];
  last_seq: number;
  last_message: Message | null;
  /** Absent only in server-API replies. */
  unread?: number;
  updated_at: Timestamp;
}

export interface Presence {
  user_id: string;
  online: boolean;
  last_seen: Timestamp | null;
}

export type Priority = "low" | "normal" | "high" | "urgent";

export interface Notification {
  id: string;
  category: string;
  priority: Priority;
  title: string;
  body: string;
  data: Record<string, unknown> | null;
  created_at: Timestamp;
  read_at: Timestamp | null;
}

export type ThreadEventKind = "created" | "updated" | "member_added" | "member_removed";

// ---- Server -> client frames -------------------------------------------------------------

export interface HelloFrame {
  type: "hello";
  session_id: string;
  user_id: string;
  node_id: string;
  heartbeat_s: number;
  protocol: number;
}
/** An ack carries the reply's fields beside `type` and `ref`. */
export interface AckFrame {
  type: "ack";
  ref?: string;
  message?: Message;
  messages?: Message[];
  has_more?: boolean;
  threads?: Thread[];
  next?: string | null;
  presence?: Presence[];
}
export interface ErrorFrame {
  type: "error";
  ref?: string;
  code: ErrorCode;
  message: string;
  retry_after_ms?: number;
}
export interface MessageFrame {
  type: "message";
  message: Message;
}
export interface MessageUpdatedFrame {
  type: "message_updated";
  message: Message;
}
export interface MessageDeletedFrame {
  type: "message_deleted";
  message: Message;
}
export interface TypingFrame {
  type: "typing";
  thread_id: string;
  user_id: string;
  is_typing: boolean;
}
export interface ReceiptFrame {
  type: "read" | "delivered";
  thread_id: string;
  user_id: string;
  seq: number;
  at: Timestamp;
}
export interface PresenceFrame extends Presence {
  type: "presence";
}
export interface NotificationFrame {
  type: "notification";
  notification: Notification;
}
export interface NotificationReadFrame {
  type: "notification_read";
  ids?: string[];
  all?: boolean;
}
export interface ThreadFrame {
  type: "thread";
  event: ThreadEventKind;
  thread: Thread;
}
export interface BroadcastFrame {
  type: "broadcast";
  channel: string;
  event: unknown;
}
export interface PongFrame {
  type: "pong";
  ref?: string;
}

export type ServerFrame =
  | HelloFrame
  | AckFrame
  | ErrorFrame
  | MessageFrame
  | MessageUpdatedFrame
  | MessageDeletedFrame
  | TypingFrame
  | ReceiptFrame
  | PresenceFrame
  | NotificationFrame
  | NotificationReadFrame
  | ThreadFrame
  | BroadcastFrame
  | PongFrame;

/** Frames that are events (not replies). */
export type EventFrame = Exclude<ServerFrame, HelloFrame | AckFrame | ErrorFrame | PongFrame>;

/** The SSE stream's last event: the WebSocket close code the stream ended with. */
export interface SseCloseData {
  code: number;
}

// ---- Client -> server frames -------------------------------------------------------------

export interface SendRequest {
  thread_id?: string;
  to?: string;
  body: string;
  kind?: "text";
  client_id?: string;
  reply_to?: string;
  metadata?: Record<string, unknown>;
}
export type ClientFrame =
  | ({ type: "send"; ref?: string } & SendRequest)
  | { type: "typing"; ref?: string; thread_id: string; is_typing: boolean }
  | { type: "read" | "delivered"; ref?: string; thread_id: string; seq: number }
  | { type: "history"; ref?: string; thread_id: string; before_seq?: number; after_seq?: number; limit?: number }
  | { type: "threads"; ref?: string; limit?: number; before?: string }
  | { type: "watch_presence" | "unwatch_presence"; ref?: string; user_ids: string[] }
  | { type: "ping"; ref?: string };

/** Distributes Omit over a union, so each frame keeps its own fields. */
type DistOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A client frame without its ref: what the core hands to a transport. */
export type Request = DistOmit<ClientFrame, "ref">;

export interface HistoryPage {
  messages: Message[];
  has_more: boolean;
}
export interface ThreadPage {
  threads: Thread[];
  next: string | null;
}

// ---- Close codes -----------------------------------------------------------------------------

export const Close = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  TOO_BIG: 1009,
  TOKEN_EXPIRED: 4001,
  REVOKED: 4003,
  TOO_SLOW: 4008,
  REPLACED: 4009,
} as const;
