// Answers kept for the server API's Idempotency-Key. Included by queries/mod.rs once per
// backend: no inner attributes here.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::store::queries::Claim;
use crate::store::schema::idempotency_keys;

/// Status of a claim whose request is still in flight.
const PENDING: i32 = 0;

/// Claims `key` for a request: new (the caller does the work), or the answer (or the
/// in-flight state) of the first request with it. An answer older than `expired_before`, or
/// a claim still unanswered since before `stale_before` (its node died mid-request), is
/// taken over as if it were new.
pub async fn claim(
    conn: &mut Conn,
    key: &str,
    fingerprint: &str,
    now: NaiveDateTime,
    expired_before: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> QueryResult<Claim> {
    let (key, fingerprint) = (key.to_string(), fingerprint.to_string());
    conn.transaction(async move |conn| {
        diesel::delete(
            idempotency_keys::table
                .filter(idempotency_keys::key.eq(&key))
                .filter(
                    idempotency_keys::created_at.lt(expired_before).or(idempotency_keys::status
                        .eq(PENDING)
                        .and(idempotency_keys::created_at.lt(stale_before))),
                ),
        )
        .execute(conn)
        .await?;
        let inserted = diesel::insert_into(idempotency_keys::table)
            .values((
                idempotency_keys::key.eq(&key),
                idempotency_keys::fingerprint.eq(&fingerprint),
                idempotency_keys::status.eq(PENDING),
                idempotency_keys::created_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted > 0 {
            crate::store::before_commit()?;
            return Ok(Claim::New);
        }
        let (status, body, first): (i32, Option<String>, String) = idempotency_keys::table
            .find(&key)
            .select((
                idempotency_keys::status,
                idempotency_keys::body,
                idempotency_keys::fingerprint,
            ))
            .first(conn)
            .await?;
        if status == PENDING {
            return Ok(Claim::InFlight);
        }
        Ok(Claim::Answered {
            status: u16::try_from(status).unwrap_or(500),
            body: body.unwrap_or_default(),
            same_request: first == fingerprint,
        })
    })
    .await
}

/// Records the first request's answer.
pub async fn answer(conn: &mut Conn, key: &str, status: u16, body: String) -> QueryResult<()> {
    diesel::update(idempotency_keys::table.find(key))
        .set((
            idempotency_keys::status.eq(i32::from(status)),
            idempotency_keys::body.eq(Some(body)),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Gives up a claim (the request failed in a way worth retrying).
pub async fn release(conn: &mut Conn, key: &str) -> QueryResult<()> {
    diesel::delete(idempotency_keys::table.find(key))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Deletes claims older than `before`; returns how many.
pub async fn sweep(conn: &mut Conn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before)))
        .execute(conn)
        .await
}
