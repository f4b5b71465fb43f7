//! REST request and reply bodies that are not also WebSocket frames, and the JSON error body.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::error::ErrorCode;

/// Body of `POST /threads`.
#[derive(Debug, Deserialize)]
pub struct CreateThread {
    pub kind: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
}

/// Body of `PATCH /threads/{id}`: `title` is required; `null` clears it.
#[derive(Debug, Deserialize)]
pub struct UpdateThread {
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Option<String>>,
}

/// Body of `POST /threads/{id}/members`.
#[derive(Debug, Deserialize)]
pub struct AddMembers {
    pub user_ids: Vec<String>,
}

/// Body of `POST /threads/{id}/messages`: a send without `thread_id`/`to`.
#[derive(Debug, Deserialize)]
pub struct SendBody {
    pub body: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /messages/{id}`.
#[derive(Debug, Deserialize)]
pub struct EditBody {
    pub body: String,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<Option<serde_json::Map<String, serde_json::Value>>>,
}

/// Body of `POST /threads/{id}/read`.
#[derive(Debug, Deserialize)]
pub struct ReadBody {
    pub seq: i64,
}

/// Body of `POST /threads/{id}/typing`.
#[derive(Debug, Deserialize)]
pub struct TypingBody {
    pub is_typing: bool,
}

/// Query of `GET /presence`: comma-separated user ids.
#[derive(Debug, Deserialize)]
pub struct PresenceQuery {
    pub user_ids: String,
}

/// Body of the server API's `POST /disconnect`.
#[derive(Debug, Deserialize)]
pub struct Disconnect {
    pub user_id: String,
}

/// Reply of `GET /unread`.
#[derive(Debug, Serialize)]
pub struct UnreadCounts {
    pub total: i64,
    pub threads: BTreeMap<String, i64>,
}

/// Reply of `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
}

/// Reply of `GET /readyz`: overall status and each dependency's, without error details.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    pub relay: &'static str,
}

/// The JSON body of every REST error: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: ErrorCode,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
