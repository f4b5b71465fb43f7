//! Every wire shape of the WebSocket contract (PROTOCOL.md): client frames, server frames and
//! the objects inside them. Nothing else in the crate builds wire JSON; SSE and REST reuse
//! these types so that all three speak the same objects.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// A client-chosen correlation id, echoed in the one direct reply.
pub type Ref = String;
/// Longest `ref` the server accepts, in chars.
pub const MAX_REF_CHARS: usize = 64;

/// A UTC instant, on the wire as RFC 3339 with milliseconds and `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct Ts(pub DateTime<Utc>);

impl Ts {
    /// Now, truncated to milliseconds so that what is stored is what is sent.
    pub fn now() -> Self {
        let now = Utc::now();
        Ts(DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now))
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

// ---------------------------------------------------------------------------------------------
// Client → server

/// A frame sent by a client over `/ws`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Send(SendFrame),
    Typing(TypingFrame),
    Read(ReceiptFrame),
    Delivered(ReceiptFrame),
    History(HistoryFrame),
    Threads(ThreadsFrame),
    WatchPresence(WatchFrame),
    UnwatchPresence(WatchFrame),
    Ping(PingFrame),
}

/// `send`: a new message into a thread, or into the direct thread with `to`.
#[derive(Debug, Clone, Deserialize)]
pub struct SendFrame {
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
    #[serde(flatten)]
    pub msg: SendRequest,
}

/// The fields of a send, shared by the `send` frame and `POST /threads/{id}/messages`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SendRequest {
    pub thread_id: Option<String>,
    pub to: Option<String>,
    pub body: String,
    pub kind: Option<String>,
    pub client_id: Option<String>,
    pub reply_to: Option<String>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `typing`: start or stop the typing indicator in a thread.
#[derive(Debug, Deserialize)]
pub struct TypingFrame {
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
    pub thread_id: String,
    pub is_typing: bool,
}

/// `read` / `delivered`: everything up to `seq` is read (delivered).
#[derive(Debug, Deserialize)]
pub struct ReceiptFrame {
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
    pub thread_id: String,
    pub seq: i64,
}

/// `history`: a page of messages before or after a seq.
#[derive(Debug, Deserialize)]
pub struct HistoryFrame {
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
    pub thread_id: String,
    #[serde(flatten)]
    pub query: HistoryQuery,
}

/// Which page of a thread's history; shared with `GET /threads/{id}/messages`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryQuery {
    pub before_seq: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
}

/// `threads`: a page of the user's threads, most recent activity first.
#[derive(Debug, Deserialize)]
pub struct ThreadsFrame {
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
    #[serde(flatten)]
    pub query: ThreadsQuery,
}

/// Which page of the thread list; shared with `GET /threads`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ThreadsQuery {
    pub limit: Option<i64>,
    pub before: Option<String>,
}

/// `watch_presence` / `unwatch_presence`.
#[derive(Debug, Deserialize)]
pub struct WatchFrame {
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
    pub user_ids: Vec<String>,
}

/// `ping`.
#[derive(Debug, Deserialize)]
pub struct PingFrame {
    #[serde(rename = "ref")]
    pub reference: Option<Ref>,
}

impl ClientFrame {
    /// The `ref` the client attached, if any.
    pub fn reference(&self) -> Option<&Ref> {
        match self {
            ClientFrame::Send(f) => f.reference.as_ref(),
            ClientFrame::Typing(f) => f.reference.as_ref(),
            ClientFrame::Read(f) | ClientFrame::Delivered(f) => f.reference.as_ref(),
            ClientFrame::History(f) => f.reference.as_ref(),
            ClientFrame::Threads(f) => f.reference.as_ref(),
            ClientFrame::WatchPresence(f) | ClientFrame::UnwatchPresence(f) => f.reference.as_ref(),
            ClientFrame::Ping(f) => f.reference.as_ref(),
        }
    }
}

/// What can still be read from a frame that failed to parse, so the `error` echoes its `ref`.
#[derive(Debug, Deserialize)]
pub struct FrameHead {
    #[serde(rename = "type")]
    pub kind: Option<serde_json::Value>,
    #[serde(rename = "ref")]
    pub reference: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// Server → client

/// A frame sent by the server, over WebSocket or (as `event:`/`data:`) SSE.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        session_id: String,
        user_id: String,
        node_id: String,
        heartbeat_s: u64,
        protocol: u32,
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        #[serde(flatten)]
        reply: Reply,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Message {
        message: Message,
    },
    MessageUpdated {
        message: Message,
    },
    MessageDeleted {
        message: Message,
    },
    Typing {
        thread_id: String,
        user_id: String,
        is_typing: bool,
    },
    Read(Receipt),
    Delivered(Receipt),
    Presence(Presence),
    Notification {
        notification: Notification,
    },
    NotificationRead {
        #[serde(skip_serializing_if = "Option::is_none")]
        ids: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        all: Option<bool>,
    },
    Thread {
        event: ThreadEvent,
        thread: Thread,
    },
    Broadcast {
        channel: String,
        event: serde_json::Value,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
}

/// The body of an `ack`, flattened beside `type` and `ref`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Message {
        message: Message,
    },
    History {
        messages: Vec<Message>,
        has_more: bool,
    },
    Threads {
        threads: Vec<Thread>,
        next: Option<String>,
    },
    Presence {
        presence: Vec<Presence>,
    },
    Empty {},
}

/// What a `thread` event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadEvent {
    Created,
    Updated,
    MemberAdded,
    MemberRemoved,
}

/// A `read` or `delivered` receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub thread_id: String,
    pub user_id: String,
    pub seq: i64,
    pub at: Ts,
}

// ---------------------------------------------------------------------------------------------
// Objects

/// A message as clients see it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: String,
    pub thread_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub kind: String,
    pub body: String,
    pub metadata: Option<serde_json::Value>,
    pub reply_to: Option<String>,
    pub client_id: Option<String>,
    pub created_at: Ts,
    pub edited_at: Option<Ts>,
    pub deleted: bool,
}

/// A thread as one user sees it (`unread` is theirs).
#[derive(Debug, Clone, Serialize)]
pub struct Thread {
    pub id: String,
    pub kind: String,
    pub title: Option<String>,
    pub external_ref: Option<String>,
    pub members: Vec<String>,
    pub last_seq: i64,
    pub last_message: Option<Message>,
    pub unread: i64,
    pub updated_at: Ts,
}

/// Whether a user has an open session anywhere, and when they were last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Presence {
    pub user_id: String,
    pub online: bool,
    pub last_seen: Option<Ts>,
}

/// An in-app notification.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: String,
    pub category: String,
    pub priority: String,
    pub title: String,
    pub body: String,
    pub data: Option<serde_json::Value>,
    pub created_at: Ts,
    pub read_at: Option<Ts>,
}

/// WebSocket close codes of the contract.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down; reconnect with backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame exceeded `MAX_FRAME_BYTES`.
    pub const TOO_BIG: u16 = 1009;
    /// The token expired while the socket was open.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The server API revoked access.
    pub const REVOKED: u16 = 4003;
    /// The outgoing queue overflowed: the client reads too slowly.
    pub const TOO_SLOW: u16 = 4008;
    /// Replaced: the user opened more sessions than allowed.
    pub const REPLACED: u16 = 4009;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_flattens_reply_beside_type_and_ref() {
        let f = ServerFrame::Ack {
            reference: Some("r1".into()),
            reply: Reply::History {
                messages: vec![],
                has_more: false,
            },
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"ack","ref":"r1","messages":[],"has_more":false})
        );
        let empty = ServerFrame::Ack {
            reference: None,
            reply: Reply::Empty {},
        };
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            serde_json::json!({"type":"ack"})
        );
    }

    #[test]
    fn presence_frame_is_flat() {
        let f = ServerFrame::Presence(Presence {
            user_id: "bob".into(),
            online: true,
            last_seen: None,
        });
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"type":"presence","user_id":"bob","online":true,"last_seen":null})
        );
    }

    #[test]
    fn timestamps_have_millis_and_z() {
        let t = Ts(DateTime::from_timestamp_millis(1_795_000_000_123).unwrap());
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            serde_json::json!("2026-11-18T11:06:40.123Z")
        );
    }

    #[test]
    fn send_frame_parses_with_ref_and_metadata() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"send","ref":"a","to":"bob","body":"hi","metadata":{"k":1}}"#,
        )
        .unwrap();
        match f {
            ClientFrame::Send(s) => {
                assert_eq!(s.reference.as_deref(), Some("a"));
                assert_eq!(s.msg.to.as_deref(), Some("bob"));
                assert!(s.msg.metadata.is_some());
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn wrong_field_type_is_an_error() {
        assert!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"read","thread_id":"t","seq":"x"}"#)
                .is_err()
        );
    }
}
