//! Rows as diesel reads and writes them, and their conversion into wire objects (here and
//! nowhere else).
//!
//! Every insertable row writes NULL for a `None` (`treat_none_as_default_value = false`)
//! rather than DEFAULT: no nullable column has a default, so it means the same, and a
//! statement whose text does not depend on which fields are set is prepared once per
//! connection (diesel never caches an insert that may say DEFAULT).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::queries::ThreadView;
use super::schema::{
    members, messages, notification_prefs, notification_templates, notifications, threads,
    webhook_outbox,
};
use crate::protocol::{Message, Notification, Thread, Ts};

/// A `threads` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = threads)]
#[diesel(treat_none_as_default_value = false)]
pub struct ThreadRow {
    pub id: String,
    pub kind: String,
    pub title: Option<String>,
    pub external_ref: Option<String>,
    pub direct_key: Option<String>,
    pub last_seq: i64,
    pub created_by: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// What a new message is made of, before the store gives it a seq.
#[derive(Debug)]
pub struct NewMessage {
    pub thread_id: String,
    pub sender_id: String,
    pub kind: String,
    pub body: String,
    pub metadata: Option<String>,
    pub reply_to: Option<String>,
    pub client_id: Option<String>,
}

impl From<NewMessage> for MessageRow {
    fn from(m: NewMessage) -> MessageRow {
        MessageRow {
            id: uuid::Uuid::now_v7().to_string(),
            thread_id: m.thread_id,
            // Assigned inside the insert's transaction.
            seq: 0,
            sender_id: m.sender_id,
            kind: m.kind,
            body: m.body,
            metadata: m.metadata,
            reply_to: m.reply_to,
            client_id: m.client_id,
            created_at: naive(Ts::now()),
            edited_at: None,
            deleted: false,
        }
    }
}

/// A `members` row: one user in one thread, with their receipts.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = members)]
#[diesel(treat_none_as_default_value = false)]
pub struct MemberRow {
    pub thread_id: String,
    pub user_id: String,
    pub read_seq: i64,
    pub delivered_seq: i64,
    pub joined_at: NaiveDateTime,
    pub read_at: Option<NaiveDateTime>,
    pub delivered_at: Option<NaiveDateTime>,
}

/// A `messages` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
#[diesel(treat_none_as_default_value = false)]
pub struct MessageRow {
    pub id: String,
    pub thread_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub kind: String,
    pub body: String,
    pub metadata: Option<String>,
    pub reply_to: Option<String>,
    pub client_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub edited_at: Option<NaiveDateTime>,
    pub deleted: bool,
}

/// A `notifications` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notifications)]
#[diesel(treat_none_as_default_value = false)]
pub struct NotificationRow {
    pub id: String,
    pub user_id: String,
    pub category: String,
    pub priority: String,
    pub title: String,
    pub body: String,
    pub data: Option<String>,
    pub created_at: NaiveDateTime,
    pub read_at: Option<NaiveDateTime>,
    pub dismissed: bool,
}

/// A `notification_prefs` row; `muted_categories` is a JSON array.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notification_prefs)]
#[diesel(treat_none_as_default_value = false)]
pub struct PrefsRow {
    pub user_id: String,
    pub muted_categories: String,
    pub min_priority: String,
}

/// A `notification_templates` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notification_templates)]
#[diesel(treat_none_as_default_value = false)]
pub struct TemplateRow {
    pub key: String,
    pub category: String,
    pub priority: String,
    pub title: String,
    pub body: String,
    pub updated_at: NaiveDateTime,
}

/// A `webhook_outbox` row: one delivery waiting to be sent.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_outbox)]
#[diesel(treat_none_as_default_value = false)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub body: String,
    pub thread_id: Option<String>,
    pub seq: Option<i64>,
    pub attempts: i32,
    pub next_at: NaiveDateTime,
    pub leased_until: Option<NaiveDateTime>,
    pub leased_by: Option<String>,
    pub created_at: NaiveDateTime,
}

impl OutboxRow {
    /// A delivery due now.
    pub fn new(id: String, kind: &str, body: String, at: NaiveDateTime) -> OutboxRow {
        OutboxRow {
            id,
            kind: kind.to_string(),
            body,
            thread_id: None,
            seq: None,
            attempts: 0,
            next_at: at,
            leased_until: None,
            leased_by: None,
            created_at: at,
        }
    }
}

/// A stored UTC timestamp as a wire timestamp.
pub fn ts(t: NaiveDateTime) -> Ts {
    Ts(DateTime::<Utc>::from_naive_utc_and_offset(t, Utc))
}

/// A wire timestamp as a stored UTC timestamp.
pub fn naive(t: Ts) -> NaiveDateTime {
    t.0.naive_utc()
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Message {
        Message {
            id: r.id,
            thread_id: r.thread_id,
            seq: r.seq,
            sender_id: r.sender_id,
            kind: r.kind,
            body: r.body,
            // Stored by us from a JSON object, so it parses; a row edited by hand that does not
            // is shown as null rather than failing the whole page.
            metadata: r.metadata.and_then(|m| serde_json::from_str(&m).ok()),
            reply_to: r.reply_to,
            client_id: r.client_id,
            created_at: ts(r.created_at),
            edited_at: r.edited_at.map(ts),
            deleted: r.deleted,
        }
    }
}

impl From<ThreadView> for Thread {
    fn from(v: ThreadView) -> Thread {
        Thread {
            id: v.thread.id,
            kind: v.thread.kind,
            title: v.thread.title,
            external_ref: v.thread.external_ref,
            members: v.members,
            last_seq: v.thread.last_seq,
            last_message: v.last_message.map(Into::into),
            unread: Some(v.unread),
            updated_at: ts(v.thread.updated_at),
        }
    }
}

impl From<NotificationRow> for Notification {
    fn from(r: NotificationRow) -> Notification {
        Notification {
            id: r.id,
            category: r.category,
            priority: r.priority,
            title: r.title,
            body: r.body,
            data: r.data.and_then(|d| serde_json::from_str(&d).ok()),
            created_at: ts(r.created_at),
            read_at: r.read_at.map(ts),
        }
    }
}
