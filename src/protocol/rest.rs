//! REST request and reply bodies that are not also WebSocket frames, and the JSON error body.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::error::ErrorCode;
use super::objects::Notification;

/// Body of `POST /threads`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateThread {
    pub kind: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
}

/// Body of `PATCH /threads/{id}`: `title` is required; `null` clears it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateThread {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub title: Option<Option<String>>,
}

/// Body of `POST /threads/{id}/members`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AddMembers {
    pub user_ids: Vec<String>,
}

/// Body of `POST /threads/{id}/messages`: a send without `thread_id`/`to`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SendBody {
    pub body: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Body of `PATCH /messages/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EditBody {
    pub body: String,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<serde_json::Map<String, serde_json::Value>>>,
}

/// Body of `POST /threads/{id}/read`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ReadBody {
    pub seq: i64,
}

/// Body of `POST /threads/{id}/typing`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TypingBody {
    pub is_typing: bool,
}

/// Query of `GET /presence`: comma-separated user ids.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PresenceQuery {
    pub user_ids: String,
}

/// Body of the server API's `POST /disconnect`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Disconnect {
    pub user_id: String,
}

/// Query of `GET /notifications`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    #[serde(default)]
    pub unread: Option<bool>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub before: Option<String>,
}

/// Reply of `GET /notifications`: newest first, and the cursor of the next page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub notifications: Vec<Notification>,
    pub next: Option<String>,
}

/// Reply of `GET /notifications/unread-count`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnreadCount {
    pub count: i64,
}

/// Notification preferences: `GET` and `PUT /notification-preferences`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preferences {
    #[serde(default)]
    pub muted_categories: Vec<String>,
    #[serde(default = "default_min_priority")]
    pub min_priority: String,
}

fn default_min_priority() -> String {
    "low".into()
}

/// Body of the server API's `POST /notifications`: `title`/`body` directly, or `template`
/// and `vars`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NotifyRequest {
    pub user_ids: Vec<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// One stored notification in the reply of the server API's `POST /notifications` (its id,
/// not the whole object: a reply to 1000 users stays small).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Notified {
    pub user_id: String,
    pub id: String,
    /// Whether it was pushed live (false: held back by the user's preferences; it is in
    /// their list either way).
    pub pushed: bool,
}

/// Reply of the server API's `POST /notifications`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotifyReply {
    pub notifications: Vec<Notified>,
}

/// Body of the server API's `PUT /templates/{key}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TemplateBody {
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    pub title: String,
    #[serde(default)]
    pub body: String,
}

/// A notification template.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Template {
    pub key: String,
    pub category: String,
    pub priority: String,
    pub title: String,
    pub body: String,
    pub updated_at: super::objects::Ts,
}

/// Reply of the server API's `GET /templates`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    pub templates: Vec<Template>,
}

/// Body of the server API's `POST /threads`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct HostThread {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub members: Vec<String>,
    #[serde(default)]
    pub external_ref: Option<String>,
}

/// Body of the server API's `POST /threads/{id}/messages`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct HostMessage {
    pub body: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub sender_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// Body of the server API's `POST /broadcast`: to an organisation or to users.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BroadcastRequest {
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub user_ids: Option<Vec<String>>,
    #[serde(default)]
    pub channel: Option<String>,
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// Reply of the server API's `POST /broadcast`: how many users were online to get it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BroadcastReply {
    pub online_users: usize,
}

/// Reply of `GET /unread`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnreadCounts {
    pub total: i64,
    pub threads: BTreeMap<String, i64>,
}

/// Reply of `GET /healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Reply of `GET /readyz`: overall status and each dependency's, without error details.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    pub status: &'static str,
    pub database: &'static str,
    pub relay: &'static str,
}

/// The JSON body of every REST error: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

/// Body of `POST /api/v1/dev/token` (the demo page's dev login).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DevLogin {
    pub user_id: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// Reply of `POST /api/v1/dev/token`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DevToken {
    pub token: String,
}
