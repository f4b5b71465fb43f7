// Notifications, their preferences and templates. Included by queries/mod.rs once per
// backend: no inner attributes here.

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::protocol::webhooks::{NotificationCreated, WebhookEvent};
use crate::store::models::{NotificationRow, OutboxRow, PrefsRow, TemplateRow, ts};
use crate::store::schema::{notification_prefs, notification_templates, notifications};

/// Stores notifications (one per recipient) in one transaction, with, given `online` (each
/// recipient's), a `notification.created` webhook each.
pub async fn insert(
    conn: &mut Conn,
    rows: Vec<NotificationRow>,
    online: Option<Vec<bool>>,
) -> QueryResult<()> {
    conn.transaction(async move |conn| {
        // Row by row: SQLite cannot batch rows with NULL defaults in diesel.
        for (i, r) in rows.iter().enumerate() {
            diesel::insert_into(notifications::table)
                .values(r)
                .execute(conn)
                .await?;
            if let Some(online) = &online {
                let id = uuid::Uuid::now_v7().to_string();
                let kind = "notification.created";
                let body = WebhookEvent {
                    id: id.clone(),
                    kind,
                    created_at: ts(r.created_at),
                    data: NotificationCreated {
                        notification: r.clone().into(),
                        user_id: r.user_id.clone(),
                        online: online.get(i).copied().unwrap_or(false),
                    },
                }
                .to_json();
                let out = OutboxRow::new(id, kind, body, r.created_at);
                super::webhooks::enqueue(conn, &[out]).await?;
            }
        }
        crate::store::before_commit()?;
        Ok(())
    })
    .await
}

/// A page of the user's notifications (not dismissed), newest first, older than `before`.
pub async fn list(
    conn: &mut Conn,
    user_id: &str,
    before: Option<String>,
    unread_only: bool,
    limit: i64,
) -> QueryResult<Vec<NotificationRow>> {
    let mut q = notifications::table
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::dismissed.eq(false))
        .select(NotificationRow::as_select())
        .order(notifications::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(notifications::id.lt(b));
    }
    if unread_only {
        q = q.filter(notifications::read_at.is_null());
    }
    q.load(conn).await
}

/// How many of the user's notifications are unread (and not dismissed).
pub async fn unread_count(conn: &mut Conn, user_id: &str) -> QueryResult<i64> {
    notifications::table
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::dismissed.eq(false))
        .filter(notifications::read_at.is_null())
        .select(count_star())
        .first(conn)
        .await
}

/// Marks one of the user's notifications read. `None`: not theirs (or dismissed); otherwise
/// whether it was unread before.
pub async fn mark_read(
    conn: &mut Conn,
    user_id: &str,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<bool>> {
    let mine = notifications::table
        .filter(notifications::id.eq(id))
        .filter(notifications::user_id.eq(user_id))
        .filter(notifications::dismissed.eq(false));
    let changed = diesel::update(mine.filter(notifications::read_at.is_null()))
        .set(notifications::read_at.eq(Some(now)))
        .execute(conn)
        .await?;
    if changed > 0 {
        return Ok(Some(true));
    }
    let exists: i64 = mine.select(count_star()).first(conn).await?;
    Ok((exists > 0).then_some(false))
}

/// Marks all the user's unread notifications read; returns how many changed.
pub async fn read_all(conn: &mut Conn, user_id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        notifications::table
            .filter(notifications::user_id.eq(user_id))
            .filter(notifications::dismissed.eq(false))
            .filter(notifications::read_at.is_null()),
    )
    .set(notifications::read_at.eq(Some(now)))
    .execute(conn)
    .await
}

/// Dismisses one of the user's notifications; returns whether it was theirs.
pub async fn dismiss(conn: &mut Conn, user_id: &str, id: &str) -> QueryResult<bool> {
    let n = diesel::update(
        notifications::table
            .filter(notifications::id.eq(id))
            .filter(notifications::user_id.eq(user_id))
            .filter(notifications::dismissed.eq(false)),
    )
    .set(notifications::dismissed.eq(true))
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// Dismisses all the user's notifications; returns how many.
pub async fn dismiss_all(conn: &mut Conn, user_id: &str) -> QueryResult<usize> {
    diesel::update(
        notifications::table
            .filter(notifications::user_id.eq(user_id))
            .filter(notifications::dismissed.eq(false)),
    )
    .set(notifications::dismissed.eq(true))
    .execute(conn)
    .await
}

/// The preferences of the given users that have set any.
pub async fn prefs(conn: &mut Conn, user_ids: &[String]) -> QueryResult<Vec<PrefsRow>> {
    notification_prefs::table
        .filter(notification_prefs::user_id.eq_any(user_ids))
        .select(PrefsRow::as_select())
        .load(conn)
        .await
}

/// Sets a user's preferences.
pub async fn put_prefs(conn: &mut Conn, row: PrefsRow) -> QueryResult<()> {
    diesel::insert_into(notification_prefs::table)
        .values(&row)
        .on_conflict(notification_prefs::user_id)
        .do_update()
        .set((
            notification_prefs::muted_categories
                .eq(excluded(notification_prefs::muted_categories)),
            notification_prefs::min_priority.eq(excluded(notification_prefs::min_priority)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Creates or replaces a template.
pub async fn put_template(conn: &mut Conn, row: TemplateRow) -> QueryResult<()> {
    diesel::insert_into(notification_templates::table)
        .values(&row)
        .on_conflict(notification_templates::key)
        .do_update()
        .set((
            notification_templates::category.eq(excluded(notification_templates::category)),
            notification_templates::priority.eq(excluded(notification_templates::priority)),
            notification_templates::title.eq(excluded(notification_templates::title)),
            notification_templates::body.eq(excluded(notification_templates::body)),
            notification_templates::updated_at.eq(excluded(notification_templates::updated_at)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// One template by key.
pub async fn template(conn: &mut Conn, key: &str) -> QueryResult<Option<TemplateRow>> {
    notification_templates::table
        .find(key)
        .select(TemplateRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Every template, by key.
pub async fn templates(conn: &mut Conn) -> QueryResult<Vec<TemplateRow>> {
    notification_templates::table
        .order(notification_templates::key.asc())
        .select(TemplateRow::as_select())
        .load(conn)
        .await
}

/// Deletes a template; returns whether it existed.
pub async fn delete_template(conn: &mut Conn, key: &str) -> QueryResult<bool> {
    let n = diesel::delete(notification_templates::table.find(key))
        .execute(conn)
        .await?;
    Ok(n > 0)
}
