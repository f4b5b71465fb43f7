//! The objects inside frames and REST bodies: Message, Thread, Presence, Notification,
//! receipts, and the one timestamp format.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

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

/// A `read` or `delivered` receipt.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub thread_id: String,
    pub user_id: String,
    pub seq: i64,
    pub at: Ts,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_millis_and_z() {
        let t = Ts(DateTime::from_timestamp_millis(1_795_000_000_123).unwrap());
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            serde_json::json!("2026-11-18T11:06:40.123Z")
        );
    }
}
