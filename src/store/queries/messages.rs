// Messages. Included by queries/mod.rs once per backend: no inner attributes here.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use foldhash::{HashMap, HashMapExt};

use crate::protocol::webhooks::{MessageCreated, WebhookEvent};
use crate::store::models::{MessageRow, OutboxRow, ts};
use crate::store::queries::{Inserted, Page, Pending};
use crate::store::schema::{members, messages};

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

/// Stores a batch of messages in one transaction (group commit), each with its thread's next
/// seq in batch order, and answers each in the batch's order.
///
/// The thread rows are locked first (several: `SELECT … FOR UPDATE` in id order, so two
/// batches never wait on each other in a cycle; one: by its `UPDATE threads … RETURNING
/// last_seq`), so concurrent writers queue on them and seqs come out gap-free; membership is read after the locks, so a member removed a moment
/// before cannot still post (`member_only`). A sender found not to be a member rolls the
/// batch back and it runs again without them: no seq is taken for a refused message.
///
/// A repeated `(sender, client_id)` answers the original, also inside one batch and when two
/// batches race: the loser hits the unique index, and its batch runs again one message at a
/// time, each finding the winner's row.
///
/// An item's `hook` (the members online just before) queues a `message.created` webhook in
/// the same transaction: nothing is sent for a message that was not stored, and nothing
/// stored goes unsent.
pub async fn insert_batch(conn: &mut Conn, batch: &[Pending]) -> QueryResult<Vec<Inserted>> {
    let mut out: Vec<Option<Inserted>> = (0..batch.len()).map(|_| None).collect();
    // Resends of something stored before: one lookup for the whole batch.
    let keyed: Vec<(&str, &str)> = batch
        .iter()
        .filter_map(|p| Some((p.row.sender_id.as_str(), p.row.client_id.as_deref()?)))
        .collect();
    if !keyed.is_empty() {
        let found = resent(conn, &keyed).await?;
        for (slot, p) in out.iter_mut().zip(batch) {
            if let Some(m) = found
                .iter()
                .find(|m| m.sender_id == p.row.sender_id && m.client_id == p.row.client_id)
            {
                *slot = Some(Inserted::Duplicate(m.clone()));
            }
        }
    }
    // The same key twice in one batch: the later one answers with the earlier's row.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut copy_of: Vec<(usize, usize)> = Vec::new();
    for (i, p) in batch.iter().enumerate() {
        let Some(cid) = p.row.client_id.as_deref() else {
            continue;
        };
        if out[i].is_some() {
            continue;
        }
        match first_of.get(&(p.row.sender_id.as_str(), cid)) {
            Some(&first) => copy_of.push((i, first)),
            None => {
                first_of.insert((p.row.sender_id.as_str(), cid), i);
            }
        }
    }
    let mut todo: Vec<usize> = (0..batch.len())
        .filter(|&i| out[i].is_none() && !copy_of.iter().any(|c| c.0 == i))
        .collect();
    // Rounds: everything at once; again without refused senders; after a client_id race,
    // one message per transaction. Once a round has committed, a later failure is that
    // message's answer, never the batch's: the caller must not run committed rows again.
    let mut one_by_one = false;
    let mut committed = false;
    while let Some(&head) = <[usize]>::first(&todo) {
        let round: Vec<usize> = if one_by_one { vec![head] } else { todo.clone() };
        let items: Vec<Pending> = round.iter().map(|&i| batch[i].clone()).collect();
        match commit(conn, items).await {
            Ok(results) => {
                committed = true;
                for (&i, r) in round.iter().zip(results) {
                    out[i] = Some(r);
                }
            }
            Err(Refused::NotMembers(at)) => {
                for k in at {
                    out[round[k]] = Some(Inserted::NotMember);
                }
            }
            Err(Refused::Db(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)))
                if round.len() > 1 =>
            {
                one_by_one = true;
            }
            Err(Refused::Db(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)))
                if batch[head].row.client_id.is_some() =>
            {
                // Another writer stored this client_id first: answer with its row.
                let p = &batch[head];
                let cid = p.row.client_id.as_deref().unwrap_or_default();
                out[head] = Some(match by_client_id(conn, &p.row.sender_id, cid).await {
                    Ok(Some(existing)) => Inserted::Duplicate(existing),
                    Ok(None) => Inserted::Failed {
                        reason: "client_id taken, original not found".into(),
                        unavailable: false,
                    },
                    Err(e) => Inserted::failed(e),
                });
            }
            // Past a committed round, a failure is these messages' answer, not the batch's.
            Err(Refused::Db(e)) if committed => {
                let failed = Inserted::failed(e);
                for &i in &round {
                    out[i] = Some(failed.clone());
                }
            }
            // Nothing of the batch has committed: the caller may run it again.
            Err(Refused::Db(e)) => return Err(e),
        }
        todo.retain(|&i| out[i].is_none());
    }
    for (i, first) in copy_of {
        out[i] = Some(match &out[first] {
            Some(Inserted::New(m, _) | Inserted::Duplicate(m)) => Inserted::Duplicate(m.clone()),
            Some(Inserted::NotMember) => Inserted::NotMember,
            Some(f @ Inserted::Failed { .. }) => f.clone(),
            _ => Inserted::NoThread,
        });
    }
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or(Inserted::NoThread))
        .collect())
}

/// Why a batch's transaction rolled back.
enum Refused {
    /// These items' senders are not members (positions in the round).
    NotMembers(Vec<usize>),
    Db(DieselError),
}

impl From<DieselError> for Refused {
    fn from(e: DieselError) -> Self {
        Refused::Db(e)
    }
}

/// One transaction for `items`: lock and advance each thread once, check membership, insert
/// every row, queue the hooks.
async fn commit(conn: &mut Conn, items: Vec<Pending>) -> Result<Vec<Inserted>, Refused> {
    conn.transaction(async move |conn| {
        // Per thread, in id order: how many rows, and the newest time.
        let mut per_thread: BTreeMap<&str, (i64, NaiveDateTime)> = BTreeMap::new();
        for p in &items {
            let e = per_thread
                .entry(p.row.thread_id.as_str())
                .or_insert((0, p.row.created_at));
            e.0 += 1;
            e.1 = e.1.max(p.row.created_at);
        }
        // Each existing thread's first new seq.
        let list: Vec<(&str, i64, NaiveDateTime)> = per_thread
            .iter()
            .map(|(&id, &(n, at))| (id, n, at))
            .collect();
        let mut next: HashMap<&str, i64> = HashMap::new();
        for (id, last) in advance_threads(conn, &list).await? {
            if let Some((&key, &(n, _))) = per_thread.get_key_value(id.as_str()) {
                next.insert(key, last - n + 1);
            }
        }
        let ids: Vec<&str> = next.keys().copied().collect();
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        let found: Vec<(String, String)> = members::table
            .filter(members::thread_id.eq_any(&ids))
            .order((
                members::thread_id.asc(),
                members::joined_at.asc(),
                members::user_id.asc(),
            ))
            .select((members::thread_id, members::user_id))
            .load(conn)
            .await?;
        for (t, u) in found {
            members.entry(t).or_default().push(u);
        }
        let refused: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.member_only
                    && next.contains_key(p.row.thread_id.as_str())
                    && !members
                        .get(&p.row.thread_id)
                        .is_some_and(|m| m.contains(&p.row.sender_id))
            })
            .map(|(k, _)| k)
            .collect();
        if !refused.is_empty() {
            return Err(Refused::NotMembers(refused));
        }
        let mut stored: Vec<Option<MessageRow>> = Vec::with_capacity(items.len());
        let mut hooks = Vec::new();
        for p in &items {
            let Some(seq) = next.get_mut(p.row.thread_id.as_str()) else {
                stored.push(None);
                continue;
            };
            let row = MessageRow {
                seq: *seq,
                ..p.row.clone()
            };
            *seq += 1;
            if let Some(online) = &p.hook {
                let members = members.get(&row.thread_id).cloned().unwrap_or_default();
                hooks.push(created_hook(&row, members, online));
            }
            stored.push(Some(row));
        }
        let rows: Vec<MessageRow> = stored.iter().flatten().cloned().collect();
        insert_rows(conn, &rows).await?;
        super::webhooks::enqueue(conn, &hooks).await?;
        crate::store::before_commit()?;
        Ok(stored
            .into_iter()
            .map(|s| match s {
                Some(row) => {
                    let m = members.get(&row.thread_id).cloned().unwrap_or_default();
                    Inserted::New(row, m)
                }
                None => Inserted::NoThread,
            })
            .collect())
    })
    .await
}

/// The `message.created` outbox row for a stored message.
fn created_hook(row: &MessageRow, members: Vec<String>, online: &[String]) -> OutboxRow {
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
    out
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
