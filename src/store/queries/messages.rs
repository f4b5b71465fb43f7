// Messages. Included by queries/mod.rs once per backend: no inner attributes here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::protocol::webhooks::{MessageCreated, WebhookEvent};
use crate::store::models::{MessageRow, OutboxRow, ts};
use crate::store::queries::{Inserted, Page};
use crate::store::schema::{members, messages, threads};

/// The message a sender stored under `client_id`, if any.
pub async fn by_client_id(
    conn: &mut Conn,
    sender_id: &str,
    client_id: &str,
) -> QueryResult<Option<MessageRow>> {
    messages::table
        .filter(messages::sender_id.eq(sender_id))
        .filter(messages::client_id.eq(client_id))
        .select(MessageRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Stores a message with the thread's next seq, in one transaction.
///
/// The `UPDATE threads … RETURNING last_seq` takes the thread row's lock, so concurrent
/// senders queue on it and seqs come out gap-free; a rolled-back insert rolls the seq back
/// too. A repeated `(sender, client_id)` returns the original, also when two sends race: the
/// loser hits the unique index, rolls back and reads the winner's row.
///
/// With `hook` (the users online just before), a `message.created` webhook is queued in the
/// same transaction: nothing is sent for a message that was not stored, and nothing stored
/// goes unsent.
///
/// With `member_only`, the sender's membership is checked inside the same transaction, so
/// a member removed a moment before cannot still post.
pub async fn insert(
    conn: &mut Conn,
    mut row: MessageRow,
    hook: Option<Vec<String>>,
    member_only: bool,
) -> QueryResult<Inserted> {
    if let Some(cid) = row.client_id.clone() {
        if let Some(existing) = by_client_id(conn, &row.sender_id, &cid).await? {
            return Ok(Inserted::Duplicate(existing));
        }
    }
    let attempt = {
        let row = row.clone();
        conn.transaction(async move |conn| {
            // The thread's row is locked first, so membership is read after any member
            // change that holds it; a removal that commits later comes after this message.
            let seq: i64 = diesel::update(threads::table.find(&row.thread_id))
                .set((
                    threads::last_seq.eq(threads::last_seq + 1),
                    threads::updated_at.eq(row.created_at),
                ))
                .returning(threads::last_seq)
                .get_result(conn)
                .await?;
            if member_only {
                let n: i64 = members::table
                    .filter(members::thread_id.eq(&row.thread_id))
                    .filter(members::user_id.eq(&row.sender_id))
                    .select(diesel::dsl::count_star())
                    .first(conn)
                    .await?;
                if n == 0 {
                    // Undo the seq taken above.
                    return Err(DieselError::RollbackTransaction);
                }
            }
            let row = MessageRow { seq, ..row };
            diesel::insert_into(messages::table)
                .values(&row)
                .execute(conn)
                .await?;
            if let Some(online) = hook {
                let members = super::threads::member_ids(conn, &row.thread_id).await?;
                let offline_user_ids = members
                    .iter()
                    .filter(|m| **m != row.sender_id && !online.contains(m))
                    .cloned()
                    .collect();
                let id = uuid::Uuid::now_v7().to_string();
                let kind = "message.created";
                let body = WebhookEvent {
                    id: id.clone(),
                    kind,
                    created_at: ts(row.created_at),
                    data: MessageCreated {
                        message: row.clone().into(),
                        members,
                        offline_user_ids,
                    },
                }
                .to_json();
                let mut out = OutboxRow::new(id, kind, body, row.created_at);
                out.thread_id = Some(row.thread_id.clone());
                out.seq = Some(row.seq);
                super::webhooks::enqueue(conn, &[out]).await?;
            }
            Ok::<_, DieselError>(row)
        })
        .await
    };
    match attempt {
        Ok(stored) => Ok(Inserted::New(stored)),
        Err(DieselError::RollbackTransaction) => Ok(Inserted::NotMember),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
            if row.client_id.is_some() =>
        {
            let cid = row.client_id.take().unwrap_or_default();
            match by_client_id(conn, &row.sender_id, &cid).await? {
                Some(existing) => Ok(Inserted::Duplicate(existing)),
                None => Err(DieselError::NotFound),
            }
        }
        Err(e) => Err(e),
    }
}

/// One message by id.
pub async fn get(conn: &mut Conn, id: &str) -> QueryResult<Option<MessageRow>> {
    messages::table
        .find(id)
        .select(MessageRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Replaces a message's body (and metadata, when given) and stamps `edited_at`.
pub async fn edit(
    conn: &mut Conn,
    id: &str,
    body: String,
    metadata: Option<Option<String>>,
    now: NaiveDateTime,
) -> QueryResult<Option<MessageRow>> {
    // Not a deleted one: an edit racing a delete must not bring the body back.
    let target = messages::table
        .find(id)
        .filter(messages::deleted.eq(false));
    match metadata {
        Some(m) => {
            diesel::update(target)
                .set((
                    messages::body.eq(body),
                    messages::metadata.eq(m),
                    messages::edited_at.eq(Some(now)),
                ))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()
        }
        None => {
            diesel::update(target)
                .set((messages::body.eq(body), messages::edited_at.eq(Some(now))))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()
        }
    }
}

/// Marks a message deleted: it keeps id and seq, loses body and metadata.
pub async fn delete(
    conn: &mut Conn,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<MessageRow>> {
    diesel::update(
        messages::table
            .find(id)
            .filter(messages::deleted.eq(false)),
    )
        .set((
            messages::deleted.eq(true),
            messages::body.eq(""),
            messages::metadata.eq(None::<String>),
            messages::edited_at.eq(Some(now)),
        ))
        .returning(MessageRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// A page of a thread's messages in ascending seq: the newest `limit` before `before_seq`
/// (or the newest overall), or the oldest `limit` after `after_seq`.
pub async fn history(
    conn: &mut Conn,
    thread_id: &str,
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: i64,
) -> QueryResult<Page<MessageRow>> {
    let base = messages::table
        .filter(messages::thread_id.eq(thread_id))
        .select(MessageRow::as_select())
        .limit(limit + 1)
        .into_boxed();
    let mut rows: Vec<MessageRow> = match after_seq {
        Some(after) => {
            base.filter(messages::seq.gt(after))
                .order(messages::seq.asc())
                .load(conn)
                .await?
        }
        None => {
            let q = match before_seq {
                Some(before) => base.filter(messages::seq.lt(before)),
                None => base,
            };
            q.order(messages::seq.desc()).load(conn).await?
        }
    };
    let has_more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if after_seq.is_none() {
        rows.reverse();
    }
    Ok(Page { rows, has_more })
}
