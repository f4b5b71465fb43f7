//! WebSocket frames: what a client sends (`ClientFrame`, parsed with a typed `FrameError`),
//! what the server sends (`ServerFrame`, also the SSE events), and the bodies of `ack`s, which
//! the REST routes return as they are.

use serde::{Deserialize, Serialize};

use super::error::ErrorCode;
use super::objects::{Message, Notification, Presence, Receipt, Thread, ThreadEvent};

/// A client-chosen correlation id, echoed in the one direct reply.
pub type Ref = String;
/// Longest `ref` the server accepts, in chars.
pub const MAX_REF_CHARS: usize = 64;

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

/// Every `type` a client may send, for telling "unknown type" from "bad fields".
const KNOWN_TYPES: &[&str] = &[
    "send",
    "typing",
    "read",
    "delivered",
    "history",
    "threads",
    "watch_presence",
    "unwatch_presence",
    "ping",
];

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
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

/// Why a client frame was refused before any handling; answered with `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not a JSON object")]
    NotAnObject,
    #[error("frame has no \"type\"")]
    NoType,
    #[error("\"type\" must be a string")]
    TypeNotString,
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("invalid frame: {0}")]
    Invalid(String),
    #[error("ref is longer than {MAX_REF_CHARS} chars")]
    RefTooLong,
    #[error("binary frames are not supported; send JSON text")]
    Binary,
}

/// A frame that could not be used, with the `ref` to echo when that much was readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    pub reference: Option<Ref>,
    pub error: FrameError,
}

/// What can still be read from a frame that failed to parse.
#[derive(Deserialize)]
struct FrameHead {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
    #[serde(rename = "ref")]
    reference: Option<serde_json::Value>,
}

impl ClientFrame {
    /// Parses a text frame; on failure says why, echoing the `ref` when it can be read.
    pub fn parse(text: &str) -> Result<ClientFrame, BadFrame> {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => return Err(Self::explain(text, &e)),
        };
        if frame
            .reference()
            .is_some_and(|r| r.chars().count() > MAX_REF_CHARS)
        {
            return Err(BadFrame {
                reference: None,
                error: FrameError::RefTooLong,
            });
        }
        Ok(frame)
    }

    fn explain(text: &str, err: &serde_json::Error) -> BadFrame {
        let head = serde_json::from_str::<FrameHead>(text).ok();
        let reference = head
            .as_ref()
            .and_then(|h| h.reference.as_ref())
            .and_then(|r| r.as_str())
            .filter(|r| r.chars().count() <= MAX_REF_CHARS)
            .map(str::to_string);
        let error = match head.as_ref().map(|h| &h.kind) {
            None => FrameError::NotAnObject,
            Some(None) => FrameError::NoType,
            Some(Some(serde_json::Value::String(t))) if !KNOWN_TYPES.contains(&t.as_str()) => {
                FrameError::UnknownType(t.clone())
            }
            Some(Some(serde_json::Value::String(_))) => FrameError::Invalid(err.to_string()),
            Some(Some(_)) => FrameError::TypeNotString,
        };
        BadFrame { reference, error }
    }

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
        code: ErrorCode,
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

/// Bytes reserved for a frame's JSON before it is written: a message event or its ack is a few
/// hundred bytes, and serde_json's own start (128) grew each of them two or three times, a
/// tenth of a send's instructions with the copies (docs/performance.md, "Instructions per
/// message").
const FRAME_CAPACITY: usize = 512;

impl ServerFrame {
    /// Serialises the frame; every frame serialises (string keys, no maps with other keys).
    pub fn to_json(&self) -> String {
        let mut buf = Vec::with_capacity(FRAME_CAPACITY);
        match serde_json::to_writer(&mut buf, self) {
            Ok(()) => String::from_utf8(buf).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

/// The `type` of a serialised server frame. serde writes an internally tagged enum's tag
/// first, so this reads the prefix instead of parsing the whole frame (SSE names each event
/// by it).
pub fn frame_type(json: &str) -> Option<&str> {
    let rest = json.strip_prefix(r#"{"type":""#)?;
    rest.split_once('"').map(|(t, _)| t)
}

/// The data of the last SSE event, `event: close`: the WebSocket close code the stream ends
/// with.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CloseEvent {
    pub code: u16,
}

impl CloseEvent {
    /// Serialises the event data.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The body of an `ack`, flattened beside `type` and `ref`. REST routes return the same
/// structs as their JSON bodies.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Message(MessageReply),
    History(HistoryPage),
    Threads(ThreadPage),
    Presence(PresenceList),
    Empty {},
}

/// One message: the `ack` of a send, the body of REST sends and edits.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageReply {
    pub message: Message,
}

/// A page of history, ascending seq.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

/// A page of threads and the cursor of the next page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ThreadPage {
    pub threads: Vec<Thread>,
    pub next: Option<String>,
}

/// The `ack` of `watch_presence`.
#[derive(Debug, Clone, Serialize)]
pub struct PresenceList {
    pub presence: Vec<Presence>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_flattens_reply_beside_type_and_ref() {
        let f = ServerFrame::Ack {
            reference: Some("r1".into()),
            reply: Reply::History(HistoryPage {
                messages: vec![],
                has_more: false,
            }),
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
    fn error_frame_carries_the_code() {
        let f = ServerFrame::Error {
            reference: Some("x".into()),
            code: ErrorCode::Forbidden,
            message: "not a member".into(),
            retry_after_ms: None,
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"type":"error","ref":"x","code":"forbidden","message":"not a member"})
        );
    }

    #[test]
    fn frame_type_reads_the_tag_serde_writes_first() {
        let frames = [
            ServerFrame::Pong { reference: None },
            ServerFrame::NotificationRead {
                ids: None,
                all: Some(true),
            },
            ServerFrame::Read(Receipt {
                thread_id: "t".into(),
                user_id: "u".into(),
                seq: 1,
                at: crate::protocol::objects::Ts::now(),
            }),
        ];
        let types: Vec<String> = frames
            .iter()
            .map(|f| frame_type(&f.to_json()).unwrap().to_string())
            .collect();
        assert_eq!(types, ["pong", "notification_read", "read"]);
        assert_eq!(frame_type("[1]"), None);
    }

    #[test]
    fn send_frame_parses_with_ref_and_metadata() {
        let f = ClientFrame::parse(
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
    fn bad_frames_say_why_and_keep_their_ref() {
        let cases = [
            ("nope", None, FrameError::NotAnObject),
            (r#"{"ref":"r"}"#, Some("r"), FrameError::NoType),
            (r#"{"type":5}"#, None, FrameError::TypeNotString),
            (
                r#"{"type":"fly","ref":"r"}"#,
                Some("r"),
                FrameError::UnknownType("fly".into()),
            ),
        ];
        for (text, reference, error) in cases {
            let bad = ClientFrame::parse(text).unwrap_err();
            assert_eq!(bad.reference.as_deref(), reference, "{text}");
            assert_eq!(bad.error, error, "{text}");
        }
        let wrong = ClientFrame::parse(r#"{"type":"read","thread_id":"t","seq":"x","ref":"q"}"#)
            .unwrap_err();
        assert_eq!(wrong.reference.as_deref(), Some("q"));
        assert!(matches!(wrong.error, FrameError::Invalid(_)));
        let long = format!(r#"{{"type":"ping","ref":"{}"}}"#, "x".repeat(65));
        assert_eq!(
            ClientFrame::parse(&long).unwrap_err().error,
            FrameError::RefTooLong
        );
    }

    /// Every known `type` reads as its own frame, wherever `type` stands among the fields.
    #[test]
    fn every_known_type_parses_to_its_frame() {
        let cases = [
            ("send", r#""to":"bob","body":"hi""#),
            ("typing", r#""thread_id":"t","is_typing":true"#),
            ("read", r#""thread_id":"t","seq":3"#),
            ("delivered", r#""thread_id":"t","seq":3"#),
            ("history", r#""thread_id":"t","before_seq":9,"limit":5"#),
            ("threads", r#""limit":5"#),
            ("watch_presence", r#""user_ids":["a"]"#),
            ("unwatch_presence", r#""user_ids":["a"]"#),
            ("ping", r#""x":1"#),
        ];
        assert_eq!(cases.len(), KNOWN_TYPES.len());
        for (kind, fields) in cases {
            for text in [
                format!(r#"{{"type":"{kind}","ref":"r",{fields}}}"#),
                format!(r#"{{{fields},"ref":"r","type":"{kind}"}}"#),
            ] {
                let frame = ClientFrame::parse(&text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
                assert_eq!(frame.reference().map(String::as_str), Some("r"), "{text}");
                let name = format!("{frame:?}");
                let variant = name.split('(').next().unwrap();
                assert_eq!(variant.to_lowercase(), kind.replace('_', ""), "{text}");
            }
        }
        match ClientFrame::parse(r#"{"type":"history","thread_id":"t","before_seq":9}"#) {
            Ok(ClientFrame::History(h)) => assert_eq!(h.query.before_seq, Some(9)),
            other => panic!("{other:?}"),
        }
    }
}
