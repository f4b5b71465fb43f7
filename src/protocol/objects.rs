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

impl utoipa::PartialSchema for Ts {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339 UTC with milliseconds, e.g. 2026-11-22T10:15:30.123Z",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Ts {}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// A message as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: String,
    pub thread_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub kind: String,
    pub body: String,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub reply_to: Option<String>,
    pub client_id: Option<String>,
    pub created_at: Ts,
    pub edited_at: Option<Ts>,
    pub deleted: bool,
}

/// A thread as one user sees it (`unread` is theirs).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Thread {
    pub id: String,
    pub kind: String,
    pub title: Option<String>,
    pub external_ref: Option<String>,
    pub members: Vec<String>,
    pub last_seq: i64,
    pub last_message: Option<Message>,
    /// The asking user's unread count; absent where no user asks (the server API).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    pub unread: Option<i64>,
    pub updated_at: Ts,
}

/// Whether a user has an open session anywhere, and when they were last seen.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Presence {
    pub user_id: String,
    pub online: bool,
    pub last_seen: Option<Ts>,
}

/// How urgent a notification is, lowest first (the order `min_priority` compares in).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// An in-app notification.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: String,
    pub category: String,
    pub priority: String,
    pub title: String,
    pub body: String,
    #[schema(value_type = Option<Object>)]
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
