//! What the gateway POSTs to the host's `WEBHOOK_URL`: `{"id","type","created_at","data"}`,
//! with `data` by type (PROTOCOL.md, "Webhooks").

use serde::Serialize;

use super::objects::{Message, Notification, Thread, Ts};

/// One webhook delivery's body.
#[derive(Debug, Serialize)]
pub struct WebhookEvent<T> {
    /// The delivery id (also in `Switchboard-Delivery`): receivers dedupe on it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub created_at: Ts,
    pub data: T,
}

impl<T: Serialize> WebhookEvent<T> {
    /// Serialises the body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `message.created`: who to push to is `offline_user_ids`.
#[derive(Debug, Serialize)]
pub struct MessageCreated {
    pub message: Message,
    pub members: Vec<String>,
    /// Members other than the sender with no open session on any node at commit time.
    pub offline_user_ids: Vec<String>,
}

/// `notification.created`.
#[derive(Debug, Serialize)]
pub struct NotificationCreated {
    pub notification: Notification,
    pub user_id: String,
    /// Whether the user had an open session anywhere.
    pub online: bool,
}

/// `thread.created`, `thread.member_added`, `thread.member_removed`.
#[derive(Debug, Serialize)]
pub struct ThreadChanged {
    pub thread: Thread,
    pub user_ids: Vec<String>,
}
