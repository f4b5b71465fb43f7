//! How SQLite's statements reach a blocking thread.
//!
//! A SQLite statement is a call into a file (a read, an fsync at commit) that must not stall
//! the runtime, so diesel-async's wrapper hands each one to tokio's blocking pool and waits
//! for it: two thread wake-ups per statement, five statements for a lone send. A write
//! instead moves to one blocking thread for its whole transaction ([`whole`]), and every
//! statement it makes there runs inline: one hand-off per write, not one per statement
//! (docs/performance.md, "Session 17"). The message writer goes further: it lives on a
//! thread of its own ([`resident`]) where every statement runs inline, with no hand-off at
//! all (docs/performance.md, "Session 18").

use std::cell::Cell;
use std::error::Error;
use std::future::Future;

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use diesel_async::pooled_connection::deadpool::Object;

use super::{SqliteConn, StoreError};

thread_local! {
    /// Set on a thread that runs SQLite statements itself: a blocking thread while it runs a
    /// whole write, or the message writer's own thread for its life.
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// The blocking runtime of SQLite connections: tokio's blocking pool, or inline on a thread
/// that [`whole`] moved to or that [`resident`] made.
pub struct Hop(tokio::runtime::Handle);

impl SpawnBlocking for Hop {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        if INLINE.get() {
            // Runs here and now, as the statement's future is made (diesel-async makes it
            // only to await it).
            return futures_util::future::ready(Ok(task())).boxed();
        }
        // The caller's runtime, when there is one: a connection made on one actix worker is
        // used from others, and its maker's runtime may be gone. Dropping the handle leaves
        // the statement running to its end ([`Lent`]).
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(here) => here.spawn_blocking(task),
            Err(_) => self.0.spawn_blocking(task),
        };
        async move { handle.await.map_err(Into::into) }.boxed()
    }

    fn get_runtime() -> Self {
        // Connections are made by the pool inside a runtime: the main one, or the message
        // writer's. A connection made on the writer's thread and used later from the main
        // runtime hands off through the caller's runtime (above), not this one.
        Hop(tokio::runtime::Handle::current())
    }
}

/// A pooled SQLite connection lent to a read or a write. It goes back to the pool when the
/// call ends; if a read is dropped mid-statement (its client went away, its caller timed
/// out), the statement runs on to its end on its blocking thread, so the connection is
/// closed then instead: handed out meanwhile, diesel-async would panic on it ("Cannot access
/// shared transaction state"). A write that panicked leaves the connection's lock poisoned:
/// out of the pool too.
pub(super) struct Lent(Option<Object<SqliteConn>>);

impl Lent {
    pub(super) fn new(conn: Object<SqliteConn>) -> Lent {
        Lent(Some(conn))
    }

    /// The connection, while lent (`give_back` consumes the loan, so always).
    pub(super) fn conn(&mut self) -> Result<&mut SqliteConn, StoreError> {
        self.0
            .as_deref_mut()
            .ok_or_else(|| StoreError::Task("connection already given back".into()))
    }

    /// The read ended: back to the pool.
    pub(super) fn give_back(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Out of the pool; its statement's task holds the connection until it ends.
            // (Bounded like every read: reads are pages and keyed lookups, and the pool
            // opens a replacement.)
            log::info!(
                "a SQLite call ended mid-statement; its connection closes when the statement does"
            );
            drop(Object::take(conn));
        }
    }
}

/// Clears [`INLINE`] when a whole write ends, even by a panic: the blocking pool reuses the
/// thread for other work.
struct Inline;

impl Inline {
    fn enter() -> Inline {
        INLINE.set(true);
        Inline
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        INLINE.set(false);
    }
}

/// Runs the future `make` returns on one blocking thread, to its end, with every SQLite
/// statement it makes run inline there. The future may still await timers (a retry's
/// backoff): the runtime's own thread drives them.
pub(super) async fn whole<F, Fut>(make: F) -> Result<Fut::Output, StoreError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    if INLINE.get() {
        // Already off the runtime's threads ([`resident`]): no hand-off at all.
        return Ok(make().await);
    }
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _inline = Inline::enter();
        handle.block_on(make())
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))
}

/// Runs `task` to its end on a thread of its own, with a runtime of its own (timers only),
/// where every SQLite statement runs inline. For the message writer: a batch's transaction
/// then takes no hand-off at all, where [`whole`] costs two thread wake-ups (to a blocking
/// thread and back), and the writer's runtime hosts nothing that its statements could stall.
pub(super) fn resident<F>(name: &str, task: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    // Timers only, no IO driver: the writer awaits its queue, its timers and its inline
    // statements, never a socket.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            INLINE.set(true);
            runtime.block_on(task);
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread the pool reuses after a whole write must hand statements off again.
    #[tokio::test]
    async fn inline_is_set_only_inside_a_whole_write() {
        let inside = whole(|| async { INLINE.get() }).await.unwrap();
        assert!(inside);
        // Blocking threads are reused: every one of them must have it cleared.
        for _ in 0..8 {
            let after = tokio::task::spawn_blocking(|| INLINE.get()).await.unwrap();
            assert!(!after);
        }
    }

    /// A statement outside a whole write runs on another thread than the runtime's.
    #[tokio::test]
    async fn outside_a_whole_write_a_task_runs_on_the_blocking_pool() {
        let here = std::thread::current().id();
        let mut hop = Hop::get_runtime();
        let there = hop
            .spawn_blocking(|| std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(here, there);
        let inline = whole(|| async {
            let mut hop = Hop::get_runtime();
            let outer = std::thread::current().id();
            let inner = hop
                .spawn_blocking(|| std::thread::current().id())
                .await
                .unwrap();
            (outer, inner)
        })
        .await
        .unwrap();
        assert_eq!(inline.0, inline.1);
    }
}
