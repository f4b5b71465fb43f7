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
/// waiting, so each thread's messages go out in seq order.
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
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let earlier = diesel::alias!(webhook_outbox as earlier);
    let free = webhook_outbox::next_at.le(now).and(
        webhook_outbox::leased_until
            .is_null()
            .or(webhook_outbox::leased_until.lt(now)),
    );
    let due = webhook_outbox::table
        .filter(free)
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
        .select(webhook_outbox::id);
    let candidates: Vec<String> = due.load(conn).await?;
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let n = diesel::update(
        webhook_outbox::table
            .filter(webhook_outbox::id.eq_any(&candidates))
            .filter(free),
    )
    .set((
        webhook_outbox::leased_until.eq(Some(until)),
        webhook_outbox::leased_by.eq(Some(token)),
    ))
    .execute(conn)
    .await?;
    if n == 0 {
        return Ok(Vec::new());
    }
    webhook_outbox::table
        .filter(webhook_outbox::leased_by.eq(token))
        .filter(webhook_outbox::leased_until.eq(Some(until)))
        .order(webhook_outbox::created_at.asc())
        .select(OutboxRow::as_select())
        .load(conn)
        .await
}

/// A delivery went through: forget it.
pub async fn delivered(conn: &mut Conn, id: &str) -> QueryResult<()> {
    diesel::delete(webhook_outbox::table.find(id))
        .execute(conn)
        .await
        .map(|_| ())
}

/// A delivery failed: try again at `next_at`.
pub async fn retry_at(conn: &mut Conn, id: &str, next_at: NaiveDateTime) -> QueryResult<()> {
    diesel::update(webhook_outbox::table.find(id))
        .set((
            webhook_outbox::attempts.eq(webhook_outbox::attempts + 1),
            webhook_outbox::next_at.eq(next_at),
            webhook_outbox::leased_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// How many deliveries wait.
pub async fn pending(conn: &mut Conn) -> QueryResult<i64> {
    webhook_outbox::table
        .select(diesel::dsl::count_star())
        .first(conn)
        .await
}
