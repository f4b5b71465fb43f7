//! A write's deadline: the instant after which no statement of it may commit.
//!
//! The caller of a write stops waiting `TIMEOUT_MARGIN` after it and answers `unavailable`
//! (a message's sender bounds its own wait: on SQLite's writer thread the write runs inline
//! and its writer cannot stop waiting for it).
//! A commit after that would be a change the caller was told failed, and whose event nobody
//! sends. So the write task checks the deadline before its first statement and before its
//! `COMMIT` (which is what keeps a late transaction from committing), and when a wait for a
//! connection (or for SQLite's writer gate) has eaten into the budget, it lowers the
//! database's own timeout for this checkout. That timeout bounds each statement, not the
//! transaction: a long transaction can outlive its caller (holding its locks meanwhile),
//! but it rolls back at `before_commit`. A database that is unreachable on the network
//! can still apply a statement it receives late; that outcome stays unknown (a resend with
//! the same `client_id` settles a send; edits, receipts and member changes are idempotent).

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use diesel::result::Error as DieselError;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use tokio::sync::watch;
use tokio::time::Instant;

use super::SqliteConn;

tokio::task_local! {
    /// The running write task's deadline.
    static COMMIT_BY: Deadline;
}

/// A write's deadline: its own, or sooner once the node shuts down.
pub(super) struct Deadline {
    /// Only ever moves earlier: a caller that gave up at a shutdown's cap has answered
    /// `unavailable`, so the write must not commit when the cap is later moved out.
    by: Cell<Instant>,
    /// The store's shutdown deadline, which may be set while the write runs.
    cap: watch::Receiver<Option<Instant>>,
}

impl Deadline {
    pub(super) fn new(by: Instant, cap: watch::Receiver<Option<Instant>>) -> Deadline {
        Deadline {
            by: Cell::new(by),
            cap,
        }
    }

    /// Fails once the deadline has passed.
    pub(super) fn check(&self) -> Result<(), super::StoreError> {
        if Instant::now() >= self.get() {
            return Err(expired(Expired));
        }
        Ok(())
    }

    fn get(&self) -> Instant {
        if let Some(cap) = *self.cap.borrow() {
            self.by.set(self.by.get().min(super::Store::commit_by(cap)));
        }
        self.by.get()
    }
}

/// How long before the caller gives up a statement must end, for its answer to arrive in
/// time (part of `TIMEOUT_MARGIN`).
const REPLY_TRAVEL: Duration = Duration::from_millis(100);

/// Runs `f` (a write task) under `deadline`.
pub(super) fn scope<F: Future>(deadline: Deadline, f: F) -> impl Future<Output = F::Output> {
    COMMIT_BY.scope(deadline, f)
}

/// A write reached its deadline before committing: nothing of it was applied.
#[derive(Debug, thiserror::Error)]
#[error("the caller stopped waiting before the write could commit")]
pub struct Expired;

impl Expired {
    /// As a diesel error, so it can end a transaction's closure with `?` (rolling it back).
    fn into_diesel() -> DieselError {
        DieselError::QueryBuilderError(Box::new(Expired))
    }

    /// Whether `e` is this (see `StoreError::is_unavailable`).
    pub(super) fn is(e: &DieselError) -> bool {
        matches!(e, DieselError::QueryBuilderError(b) if b.is::<Expired>())
    }
}

/// Call last in a write's transaction: past the deadline it fails, so the transaction rolls
/// back instead of committing behind a caller that was told `unavailable`. Outside a write
/// task (a test, a read) it always passes.
pub fn before_commit() -> Result<(), DieselError> {
    match COMMIT_BY.try_with(|d| Instant::now() >= d.get()) {
        Ok(true) => Err(Expired::into_diesel()),
        _ => Ok(()),
    }
}

/// The timeout a statement started now may have: `None` when the database's default
/// (`full`) still ends it in time, `Err` when the deadline has passed.
fn budget(full: Duration) -> Result<Option<Duration>, Expired> {
    let Ok(by) = COMMIT_BY.try_with(Deadline::get) else {
        return Ok(None);
    };
    let now = Instant::now();
    if now >= by {
        return Err(Expired);
    }
    // The caller waits until `by + TIMEOUT_MARGIN`; the statement must end before that,
    // less the time its answer takes to come back. (On SQLite this bounds the wait for a
    // lock; a flush the disk stalls is bounded only by the caller's own wait.)
    let left = (by + super::TIMEOUT_MARGIN - REPLY_TRAVEL).saturating_duration_since(now);
    Ok((left < full).then_some(left.max(Duration::from_millis(1))))
}

/// A connection a write task runs on: it can lower its own timeout for one checkout.
pub(super) trait WriteConn: SimpleAsyncConnection + Send {
    /// The statement that sets how long a statement may run (Postgres) or wait for a lock
    /// (SQLite: a file's statements do not hang, but wait up to busy_timeout for a lock
    /// another process holds).
    fn set_timeout(ms: u128) -> String;
}

impl WriteConn for AsyncPgConnection {
    fn set_timeout(ms: u128) -> String {
        format!("SET statement_timeout = {ms}")
    }
}

impl WriteConn for SqliteConn {
    fn set_timeout(ms: u128) -> String {
        format!("PRAGMA busy_timeout = {ms}")
    }
}

/// Checks the deadline before a write's first statement, lowering `conn`'s timeout when
/// less than `full` is left; answers whether it did (then call [`end_write`]).
pub(super) async fn start_write<C: WriteConn>(
    conn: &mut C,
    full: Duration,
) -> Result<bool, super::StoreError> {
    let Some(left) = budget(full).map_err(expired)? else {
        return Ok(false);
    };
    conn.batch_execute(&C::set_timeout(left.as_millis()))
        .await?;
    Ok(true)
}

/// Puts `conn`'s timeout back to `full` after a write that lowered it.
pub(super) async fn end_write<C: WriteConn>(conn: &mut C, full: Duration) {
    if let Err(e) = conn.batch_execute(&C::set_timeout(full.as_millis())).await {
        // Only a lost connection refuses a plain SET (diesel has rolled back any transaction
        // by now). A lost one is dropped by the pool on its next statement's failure; one
        // that refused it and stayed open would keep the lowered timeout, and so fail early
        // (`unavailable`) until a later lowered write resets it.
        log::warn!("could not restore the write timeout: {e}");
    }
}

fn expired(_: Expired) -> super::StoreError {
    super::StoreError::Query(Expired::into_diesel())
}

#[cfg(test)]
mod tests {
    /// A transaction that commits without the check could apply a change its caller was
    /// told failed.
    #[test]
    fn every_transaction_in_the_queries_checks_the_deadline_before_committing() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/queries");
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let src = std::fs::read_to_string(&path).unwrap();
            // Each `transaction(` closure's last statement before its result is the check.
            let opened = src.matches(".transaction(").count();
            let checked = src.matches("before_commit()?;\n        Ok(").count()
                + src
                    .matches("before_commit()?;\n            return Ok(")
                    .count();
            assert_eq!(opened, checked, "{}", path.display());
            files += 1;
        }
        assert!(files >= 10, "{files} query files");
    }
}
