// Known users and their last-seen time. Included by queries/mod.rs once per backend: no
// inner attributes here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::protocol::Presence;
use crate::protocol::webhooks::WebhookEvent;
use crate::store::models::{OutboxRow, ts};

use crate::store::schema::{members, threads, user_orgs, users};

/// Records a user's display name (from their token) and, when given, their last-seen time;
/// with `hook`, queues a `presence.changed` webhook in the same transaction.
pub async fn upsert(
    conn: &mut Conn,
    user_id: &str,
    name: Option<String>,
    last_seen: Option<NaiveDateTime>,
    now: NaiveDateTime,
    hook: Option<Presence>,
) -> QueryResult<()> {
    let user_id = user_id.to_string();
    conn.transaction(async move |conn| {
        upsert_row(conn, &user_id, name, last_seen, now).await?;
        if let Some(p) = hook {
            let id = uuid::Uuid::now_v7().to_string();
            let kind = "presence.changed";
            let body = WebhookEvent {
                id: id.clone(),
                kind,
                created_at: ts(now),
                data: p,
            }
            .to_json();
            super::webhooks::enqueue(conn, &[OutboxRow::new(id, kind, body, now)]).await?;
        }
        crate::store::before_commit()?;
        Ok(())
    })
    .await
}

async fn upsert_row(
    conn: &mut Conn,
    user_id: &str,
    name: Option<String>,
    last_seen: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    crate::store::queries::fixed::UpsertUser {
        id: user_id,
        name: name.as_deref(),
        last_seen,
        now,
    }
    .execute(conn)
    .await
    .map(|_| ())
}

/// Last-seen times of the given users that have one.
pub async fn last_seen(
    conn: &mut Conn,
    user_ids: &[String],
) -> QueryResult<Vec<(String, Option<NaiveDateTime>)>> {
    users::table
        .filter(users::id.eq_any(user_ids))
        .select((users::id, users::last_seen))
        .load(conn)
        .await
}

/// Of `candidates`, those who share a thread or an organisation with `viewer` (the viewer
/// included): whose presence the viewer may see under `PRESENCE_SCOPE=shared`.
pub async fn in_scope(
    conn: &mut Conn,
    viewer: &str,
    candidates: &[String],
) -> QueryResult<Vec<String>> {
    let other = diesel::alias!(members as other);
    let mut seen: Vec<String> = members::table
        .inner_join(
            other.on(other
                .field(members::thread_id)
                .eq(members::thread_id)),
        )
        .filter(members::user_id.eq(viewer))
        .filter(other.field(members::user_id).eq_any(candidates))
        .select(other.field(members::user_id))
        .distinct()
        .load(conn)
        .await?;
    let peer = diesel::alias!(user_orgs as peer);
    let by_org: Vec<String> = user_orgs::table
        .inner_join(peer.on(peer.field(user_orgs::org).eq(user_orgs::org)))
        .filter(user_orgs::user_id.eq(viewer))
        .filter(peer.field(user_orgs::user_id).eq_any(candidates))
        .select(peer.field(user_orgs::user_id))
        .distinct()
        .load(conn)
        .await?;
    seen.extend(by_org);
    if candidates.iter().any(|c| c == viewer) {
        seen.push(viewer.to_string());
    }
    Ok(seen)
}

/// The other members of the user's direct threads: who sees their presence without asking.
pub async fn direct_partners(conn: &mut Conn, user_id: &str) -> QueryResult<Vec<String>> {
    let mine: Vec<String> = members::table
        .inner_join(threads::table)
        .filter(members::user_id.eq(user_id))
        .filter(threads::kind.eq("direct"))
        .select(members::thread_id)
        .load(conn)
        .await?;
    members::table
        .filter(members::thread_id.eq_any(mine))
        .filter(members::user_id.ne(user_id))
        .select(members::user_id)
        .distinct()
        .load(conn)
        .await
}
