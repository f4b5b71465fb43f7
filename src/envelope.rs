//! What travels from a publisher to sessions, on this node or another: the [`Envelope`], its
//! [`Audience`], and the [`Lane`] its frame queues on at a slow session. The relays carry it,
//! the registry delivers it; both import it from here, and neither from the other's side.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::protocol::ServerFrame;

/// The envelope format; a node drops envelopes of a version it does not know.
pub const ENVELOPE_VERSION: u8 = 2;

/// One event on its way to sessions, on any node. Between nodes it travels in the form
/// `relay::redis::routing` gives it: a JSON header, then the frame as written to clients.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Envelope format version.
    pub v: u8,
    /// Set when the audience may reach one session along two paths (a user's channel and a
    /// watched user's channel): the registry delivers an id once per session.
    pub id: Option<String>,
    /// The node that published it.
    pub origin: String,
    /// Who gets it.
    pub audience: Audience,
    /// What they get.
    pub payload: Payload,
    /// For message events: the thread and seq, so every node hands them on in seq order.
    pub order: Option<Order>,
}

/// A message event's place in its thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub thread_id: String,
    pub seq: i64,
    /// Set for `message_updated`/`message_deleted`: it follows its message rather than
    /// taking a place of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follows: bool,
}

/// The sessions an envelope is for: the union of `users`' sessions and the sessions watching
/// `watchers_of`, less `except_session`. Read back from a part's header; written by the Redis
/// relay's own borrowed form of it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Audience {
    /// Every session of these users.
    #[serde(default)]
    pub users: Vec<String>,
    /// Sessions that watch this user's presence.
    #[serde(default)]
    pub watchers_of: Option<String>,
    /// A session left out (the sender's, for `message`).
    #[serde(default)]
    pub except_session: Option<String>,
    /// These sessions by id, whoever their user (closing replaced sessions).
    #[serde(default)]
    pub sessions: Vec<String>,
}

impl Audience {
    /// Every session of these users.
    pub fn users(users: Vec<String>) -> Self {
        Audience {
            users,
            ..Audience::default()
        }
    }

    /// Every session of these users but one.
    pub fn users_except(users: Vec<String>, except_session: Option<String>) -> Self {
        Audience {
            users,
            except_session,
            ..Audience::default()
        }
    }
}

/// What an envelope carries. Serialised, it is the header's part: a frame's `json` is left
/// out, because between nodes it travels after the header, unescaped.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// A server frame, serialised once at the origin and written as-is to every session.
    Frame {
        lane: Lane,
        #[serde(skip)]
        json: String,
    },
    /// A frame that differs between recipients in one number (each member's own `unread` in
    /// a `thread` event), still serialised once: `json` lacks the number at byte `at`, where
    /// each recipient's value from `values` goes (0 when absent).
    PerUser {
        lane: Lane,
        #[serde(skip)]
        json: String,
        at: usize,
        values: HashMap<String, i64>,
    },
    /// Close the addressed sessions (replaced, revoked).
    Close { code: u16, reason: String },
    /// The addressed sessions stop watching these users' presence: the presence scope no
    /// longer allows it (they stopped sharing a thread).
    Unwatch { users: Vec<String> },
}

/// Where a per-recipient number goes in a frame built for [`Envelope::per_user`].
pub const PER_USER_SLOT: i64 = i64::MIN;

/// One recipient's copy of a [`Payload::PerUser`] frame; `None` when `at` is not a place in
/// `json` (an envelope from a confused peer).
pub fn per_user_frame(json: &str, at: usize, value: i64) -> Option<String> {
    Some(format!("{}{value}{}", json.get(..at)?, json.get(at..)?))
}

/// How a frame queues at a slow session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "lane", rename_all = "snake_case")]
pub enum Lane {
    /// Never dropped: if it cannot be queued the session is closed (4008).
    Durable,
    /// Latest wins per key, dropped first under pressure (typing, presence).
    Lossy { key: String },
}

impl Envelope {
    /// An envelope carrying `frame`, serialised once here.
    pub fn frame(origin: &str, audience: Audience, lane: Lane, frame: &ServerFrame) -> Envelope {
        let id = (audience.watchers_of.is_some() && !audience.users.is_empty())
            .then(|| uuid::Uuid::now_v7().simple().to_string());
        Envelope {
            v: ENVELOPE_VERSION,
            id,
            origin: origin.to_string(),
            audience,
            payload: Payload::Frame {
                lane,
                json: frame.to_json(),
            },
            order: match frame {
                ServerFrame::Message { message } => Some(Order {
                    thread_id: message.thread_id.clone(),
                    seq: message.seq,
                    follows: false,
                }),
                ServerFrame::MessageUpdated { message }
                | ServerFrame::MessageDeleted { message } => Some(Order {
                    thread_id: message.thread_id.clone(),
                    seq: message.seq,
                    follows: true,
                }),
                _ => None,
            },
        }
    }

    /// An envelope carrying `frame` with a number that differs per recipient. The frame holds
    /// [`PER_USER_SLOT`] where that number goes; the last occurrence is taken, so the slot must
    /// be serialised after any client-supplied JSON (a thread's `unread` follows its
    /// `last_message`). Without a slot, every recipient gets the frame as it is.
    pub fn per_user(
        origin: &str,
        audience: Audience,
        lane: Lane,
        frame: &ServerFrame,
        values: HashMap<String, i64>,
    ) -> Envelope {
        let json = frame.to_json();
        let slot = PER_USER_SLOT.to_string();
        let payload = match json.rfind(&slot) {
            Some(at) => Payload::PerUser {
                lane,
                json: format!("{}{}", &json[..at], &json[at + slot.len()..]),
                at,
                values,
            },
            None => Payload::Frame { lane, json },
        };
        Envelope {
            v: ENVELOPE_VERSION,
            id: None,
            origin: origin.to_string(),
            audience,
            payload,
            order: None,
        }
    }

    /// An envelope ending the addressed sessions' watches of `users`.
    pub fn unwatch(origin: &str, audience: Audience, users: Vec<String>) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            id: None,
            origin: origin.to_string(),
            audience,
            payload: Payload::Unwatch { users },
            order: None,
        }
    }

    /// An envelope closing the addressed sessions with `code`.
    pub fn close(origin: &str, audience: Audience, code: u16, reason: &str) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            id: None,
            origin: origin.to_string(),
            audience,
            payload: Payload::Close {
                code,
                reason: reason.to_string(),
            },
            order: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Notification;

    #[test]
    fn a_per_user_frame_fills_the_last_slot_only() {
        // Client JSON may hold the slot's digits; only the last occurrence is the slot.
        let frame = ServerFrame::Notification {
            notification: Notification {
                id: "n".into(),
                category: "c".into(),
                priority: "normal".into(),
                title: format!("{PER_USER_SLOT}"),
                body: String::new(),
                data: Some(serde_json::json!({ "x": PER_USER_SLOT })),
                created_at: crate::protocol::Ts::now(),
                read_at: None,
            },
        };
        let values = HashMap::from([("a".to_string(), 7)]);
        let env = Envelope::per_user("n1", Audience::default(), Lane::Durable, &frame, values);
        let Payload::PerUser {
            json, at, values, ..
        } = &env.payload
        else {
            panic!("no slot found");
        };
        let a = per_user_frame(json, *at, values["a"]).unwrap();
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["notification"]["data"]["x"], 7);
        assert_eq!(v["notification"]["title"], PER_USER_SLOT.to_string());
        assert!(per_user_frame(json, json.len() + 1, 0).is_none());
        assert!(per_user_frame("é", 1, 0).is_none(), "not a char boundary");
    }
}
