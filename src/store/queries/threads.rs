// Threads and members. Included by queries/mod.rs once per backend: no inner attributes here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::protocol::Thread;
use crate::protocol::webhooks::{ThreadChanged, WebhookEvent};
use crate::store::models::{MemberRow, MessageRow, OutboxRow, ThreadRow, ts};
use crate::store::queries::{Access, Refused, ThreadView};
use crate::store::schema::{members, messages, threads};

/// A thread and the user's membership in it, in one query.
pub async fn access(conn: &mut Conn, thread_id: &str, user_id: &str) -> QueryResult<Access> {
    let row: Option<(ThreadRow, Option<MemberRow>)> = threads::table
        .left_join(
            members::table.on(members::thread_id
                .eq(threads::id)
                .and(members::user_id.eq(user_id))),
        )
        .filter(threads::id.eq(thread_id))
        .select((ThreadRow::as_select(), Option::<MemberRow>::as_select()))
        .first(conn)
        .await
        .optional()?;
    Ok(match row {
        None => Access::NoThread,
        Some((t, None)) => Access::NotMember(t),
        Some((t, Some(m))) => Access::Member(t, m),
    })
}

/// One thread by id.
pub async fn get(conn: &mut Conn, thread_id: &str) -> QueryResult<Option<ThreadRow>> {
    threads::table
        .find(thread_id)
        .select(ThreadRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user ids of a thread's members, in join order.
pub async fn member_ids(conn: &mut Conn, thread_id: &str) -> QueryResult<Vec<String>> {
    members::table
        .filter(members::thread_id.eq(thread_id))
        .order((members::joined_at.asc(), members::user_id.asc()))
        .select(members::user_id)
        .load(conn)
        .await
}

fn member(thread_id: &str, user_id: &str, last_seq: i64, now: NaiveDateTime) -> MemberRow {
    // A member starts with everything before their arrival read, so joining a busy group
    // does not show a wall of unread messages.
    MemberRow {
        thread_id: thread_id.to_string(),
        user_id: user_id.to_string(),
        read_seq: last_seq,
        delivered_seq: last_seq,
        joined_at: now,
        read_at: None,
        delivered_at: None,
    }
}

/// Inserts a thread and its members in one transaction, unless a thread with the same
/// `direct_key` or `external_ref` exists: then returns that one and `false`.
pub async fn create(
    conn: &mut Conn,
    thread: ThreadRow,
    member_ids: Vec<String>,
    hook: bool,
) -> QueryResult<(ThreadRow, bool)> {
    conn.transaction(async move |conn| {
        let inserted = diesel::insert_into(threads::table)
            .values(&thread)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            // The unique key belongs to a thread created earlier (or by a racing request
            // that has committed by now: the insert waited for it).
            let existing = threads::table
                .filter(
                    threads::direct_key
                        .eq(thread.direct_key.clone())
                        .and(threads::direct_key.is_not_null())
                        .or(threads::external_ref
                            .eq(thread.external_ref.clone())
                            .and(threads::external_ref.is_not_null())),
                )
                .select(ThreadRow::as_select())
                .first(conn)
                .await?;
            return Ok((existing, false));
        }
        // Row by row: SQLite cannot batch rows with NULL defaults in diesel.
        for u in &member_ids {
            diesel::insert_into(members::table)
                .values(member(&thread.id, u, 0, thread.created_at))
                .execute(conn)
                .await?;
        }
        if hook {
            let at = thread.created_at;
            hook_thread(conn, "thread.created", &thread.id, member_ids, at).await?;
        }
        crate::store::before_commit()?;
        Ok((thread, true))
    })
    .await
}

/// The direct thread whose key is `direct_key`, if any.
pub async fn find_direct(conn: &mut Conn, direct_key: &str) -> QueryResult<Option<ThreadRow>> {
    threads::table
        .filter(threads::direct_key.eq(direct_key))
        .select(ThreadRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Queues a `thread.*` webhook with the thread as it now is (no one's unread count).
async fn hook_thread(
    conn: &mut Conn,
    kind: &'static str,
    thread_id: &str,
    user_ids: Vec<String>,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let Some(row) = get(conn, thread_id).await? else {
        return Ok(());
    };
    let Some(view) = views(conn, "", vec![row]).await?.pop() else {
        return Ok(());
    };
    let mut thread = Thread::from(view);
    thread.unread = None;
    let id = uuid::Uuid::now_v7().to_string();
    let body = WebhookEvent {
        id: id.clone(),
        kind,
        created_at: ts(at),
        data: ThreadChanged { thread, user_ids },
    }
    .to_json();
    super::webhooks::enqueue(conn, &[OutboxRow::new(id, kind, body, at)]).await
}

/// The thread with this `external_ref`, if any.
pub async fn by_ref(conn: &mut Conn, external_ref: &str) -> QueryResult<Option<ThreadRow>> {
    threads::table
        .filter(threads::external_ref.eq(external_ref))
        .select(ThreadRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Sets a thread's title and bumps `updated_at`.
pub async fn set_title(
    conn: &mut Conn,
    thread_id: &str,
    title: Option<String>,
    now: NaiveDateTime,
) -> QueryResult<ThreadRow> {
    diesel::update(threads::table.find(thread_id))
        .set((threads::title.eq(title), threads::updated_at.eq(now)))
        .returning(ThreadRow::as_returning())
        .get_result(conn)
        .await
}

/// Takes the thread row's lock until the commit (a no-op update), so member changes to one
/// thread, and the sends that check membership, take turns; returns its last seq, and
/// whether `by` (when given) is a member under that lock.
async fn lock_thread(conn: &mut Conn, thread_id: &str, by: Option<&str>) -> QueryResult<(i64, bool)> {
    let last_seq: i64 = diesel::update(threads::table.find(thread_id))
        .set(threads::last_seq.eq(threads::last_seq))
        .returning(threads::last_seq)
        .get_result(conn)
        .await?;
    let Some(by) = by else {
        return Ok((last_seq, true));
    };
    let n: i64 = members::table
        .filter(members::thread_id.eq(thread_id).and(members::user_id.eq(by)))
        .select(diesel::dsl::count_star())
        .first(conn)
        .await?;
    Ok((last_seq, n > 0))
}

/// Adds members who are not in the thread yet; returns the ones added.
///
/// Refused (and nothing changed) when the thread would pass `max` members, or when `by`
/// (the user adding, when not the host) is not a member: both are checked under the thread
/// row's lock, so concurrent adds cannot pass the cap together, and a member removed
/// meanwhile cannot add.
pub async fn add_members(
    conn: &mut Conn,
    thread_id: &str,
    user_ids: Vec<String>,
    now: NaiveDateTime,
    max: usize,
    hook: bool,
    by: Option<String>,
) -> QueryResult<Result<Vec<String>, Refused>> {
    let thread_id = thread_id.to_string();
    let r = conn.transaction(async move |conn| {
        let (last_seq, by_member) = lock_thread(conn, &thread_id, by.as_deref()).await?;
        if !by_member {
            return Ok(Err(Refused::NotMember));
        }
        let have: i64 = members::table
            .filter(members::thread_id.eq(&thread_id))
            .select(diesel::dsl::count_star())
            .first(conn)
            .await?;
        let mut added = Vec::new();
        // In one order for every transaction, so two concurrent adds cannot deadlock.
        let mut user_ids = user_ids;
        user_ids.sort_unstable();
        for u in user_ids {
            let n = diesel::insert_into(members::table)
                .values(member(&thread_id, &u, last_seq, now))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if n > 0 {
                added.push(u);
            }
        }
        if usize::try_from(have).unwrap_or(usize::MAX) + added.len() > max {
            return Err(diesel::result::Error::RollbackTransaction);
        }
        if !added.is_empty() {
            diesel::update(threads::table.find(&thread_id))
                .set(threads::updated_at.eq(now))
                .execute(conn)
                .await?;
        }
        if hook && !added.is_empty() {
            hook_thread(conn, "thread.member_added", &thread_id, added.clone(), now).await?;
        }
        crate::store::before_commit()?;
        Ok(Ok(added))
    })
    .await;
    match r {
        Err(diesel::result::Error::RollbackTransaction) => Ok(Err(Refused::Full)),
        r => r,
    }
}

/// Removes one member; returns whether they were one. Refused (nothing changed) when `by`
/// (the user removing, when not the host) is not a member under the thread row's lock.
pub async fn remove_member(
    conn: &mut Conn,
    thread_id: &str,
    user_id: &str,
    now: NaiveDateTime,
    hook: bool,
    by: Option<String>,
) -> QueryResult<Result<bool, Refused>> {
    let (thread_id, user_id) = (thread_id.to_string(), user_id.to_string());
    conn.transaction(async move |conn| {
        // The thread first, as every writer to it does, so a remove and an add cannot
        // deadlock on each other's rows.
        if !lock_thread(conn, &thread_id, by.as_deref()).await?.1 {
            return Ok(Err(Refused::NotMember));
        }
        let n = diesel::delete(members::table.find((&thread_id, &user_id)))
            .execute(conn)
            .await?;
        if n > 0 {
            diesel::update(threads::table.find(&thread_id))
                .set(threads::updated_at.eq(now))
                .execute(conn)
                .await?;
        }
        if hook && n > 0 {
            let who = vec![user_id.clone()];
            hook_thread(conn, "thread.member_removed", &thread_id, who, now).await?;
        }
        crate::store::before_commit()?;
        Ok(Ok(n > 0))
    })
    .await
}

/// One page of the user's threads, most recent activity first, strictly after the cursor
/// `(updated_at, id)`.
pub async fn list_for_user(
    conn: &mut Conn,
    user_id: &str,
    before: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<ThreadRow>> {
    let mut q = threads::table
        .inner_join(members::table)
        .filter(members::user_id.eq(user_id))
        .select(ThreadRow::as_select())
        .order((threads::updated_at.desc(), threads::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = before {
        q = q.filter(
            threads::updated_at
                .lt(at)
                .or(threads::updated_at.eq(at).and(threads::id.lt(id))),
        );
    }
    q.load(conn).await
}

/// Members, last message and the user's unread count for each thread, in three queries.
pub async fn views(
    conn: &mut Conn,
    user_id: &str,
    rows: Vec<ThreadRow>,
) -> QueryResult<Vec<ThreadView>> {
    let ids: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
    let member_rows: Vec<(String, String)> = members::table
        .filter(members::thread_id.eq_any(&ids))
        .order((members::joined_at.asc(), members::user_id.asc()))
        .select((members::thread_id, members::user_id))
        .load(conn)
        .await?;
    let last: Vec<MessageRow> = messages::table
        .inner_join(
            threads::table.on(threads::id
                .eq(messages::thread_id)
                .and(threads::last_seq.eq(messages::seq))),
        )
        .filter(threads::id.eq_any(&ids))
        .select(MessageRow::as_select())
        .load(conn)
        .await?;
    let unread = super::receipts::unread_in(conn, user_id, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|thread| ThreadView {
            members: member_rows
                .iter()
                .filter(|(t, _)| *t == thread.id)
                .map(|(_, u)| u.clone())
                .collect(),
            last_message: last.iter().find(|m| m.thread_id == thread.id).cloned(),
            unread: unread
                .iter()
                .find(|(t, _)| *t == thread.id)
                .map_or(0, |(_, n)| *n),
            thread,
        })
        .collect())
}
