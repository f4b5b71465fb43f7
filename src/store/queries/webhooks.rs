// The webhook outbox: rows written inside other writes' transactions, leased by one node at
// a time, deleted when delivered. Included by queries/mod.rs once per backend: no inner
// attributes here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::store::models::OutboxRow;
use crate::store::schema::webhook_outbox;

/// Adds deliveries (inside the caller's transaction).
pub async fn enqueue(conn: &mut Conn, rows: &[OutboxRow]) -> QueryResult<()> {
    for r in rows {
        diesel::insert_into(webhook_outbox::table)
            .values(r)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Leases up to `limit` due deliveries to `token` until `until` and returns them, oldest
/// first. A `message.created` is due only when no earlier one of its thread is still
/// waiting, so each thread's messages go out in seq order; rows older than `expired_before`
/// are left to `expire`.
///
/// The `UPDATE` that takes the lease requires, in its own `WHERE`, the row to be free:
/// when two nodes pick the same candidates, Postgres re-checks that condition on the row the
/// first one updated, so the second skips it (SQLite runs one writer at a time). Each row is
/// leased to one node.
pub async fn lease(
    conn: &mut Conn,
    token: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
    expired_before: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let earlier = diesel::alias!(webhook_outbox as earlier);
    let free = webhook_outbox::next_at.le(now).and(
        webhook_outbox::leased_until
            .is_null()
            .or(webhook_outbox::leased_until.lt(now)),
    );
    let candidates: Vec<String> = webhook_outbox::table
        .filter(free)
        .filter(webhook_outbox::created_at.ge(expired_before))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            earlier
                .filter(
                    earlier
                        .field(webhook_outbox::thread_id)
                        .eq(webhook_outbox::thread_id),
                )
                .filter(earlier.field(webhook_outbox::seq).lt(webhook_outbox::seq)),
        )))
        .order(webhook_outbox::created_at.asc())
        .limit(limit)
        .select(webhook_outbox::id)
        .load(conn)
        .await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows: Vec<OutboxRow> = diesel::update(
        webhook_outbox::table
            .filter(webhook_outbox::id.eq_any(&candidates))
            .filter(free),
    )
    .set((
        webhook_outbox::leased_until.eq(Some(until)),
        webhook_outbox::leased_by.eq(Some(token)),
    ))
    .returning(OutboxRow::as_returning())
    .get_results(conn)
    .await?;
    rows.sort_by_key(|r| r.created_at);
    Ok(rows)
}

/// A delivery went through: forget it (only if this lease still holds it: a node whose
/// lease ran out must not settle what another node now sends).
pub async fn delivered(conn: &mut Conn, id: &str, token: &str) -> QueryResult<()> {
    diesel::delete(
        webhook_outbox::table
            .filter(webhook_outbox::id.eq(id))
            .filter(webhook_outbox::leased_by.eq(token)),
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A delivery failed: try again at `next_at` (same lease rule as `delivered`).
pub async fn retry_at(
    conn: &mut Conn,
    id: &str,
    token: &str,
    next_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        webhook_outbox::table
            .filter(webhook_outbox::id.eq(id))
            .filter(webhook_outbox::leased_by.eq(token)),
    )
    .set((
        webhook_outbox::attempts.eq(webhook_outbox::attempts + 1),
        webhook_outbox::next_at.eq(next_at),
        webhook_outbox::leased_until.eq(None::<NaiveDateTime>),
        webhook_outbox::leased_by.eq(None::<String>),
    ))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Deletes deliveries created before `before`, tried or not; returns how many.
pub async fn expire(conn: &mut Conn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(webhook_outbox::table.filter(webhook_outbox::created_at.lt(before)))
        .execute(conn)
        .await
}
