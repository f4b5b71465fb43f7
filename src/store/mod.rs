//! The store seam: one `Store` over Postgres or SQLite. Everything above it calls these
//! methods and never learns which backend runs.
//!
//! Writes run in their own spawned task (a diesel-async transaction dropped half-way is not
//! cancel-safe, STACK.md), and on SQLite they also take the one writer gate, so concurrent
//! senders queue instead of failing with `database is locked`.

mod deadline;
pub mod diagnose;
mod hop;
pub mod migrate;
pub mod models;
mod pool;
pub mod queries;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

use crate::config::DatabaseUrl;
use crate::metrics;
pub use deadline::before_commit;
pub use queries::{Access, Claim, Inserted, Page, Pending, Receipt, Refused, ThreadView};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("store task failed: {0}")]
    Task(String),
}

/// A SQLite connection, its statements run off the main runtime's threads (`hop`).
type SqliteConn = SyncConnectionWrapper<SqliteConnection, hop::Hop>;

#[derive(Clone)]
enum Backend {
    Postgres(Pool<AsyncPgConnection>),
    Sqlite {
        pool: Pool<SqliteConn>,
        writer: Arc<tokio::sync::Mutex<()>>,
    },
}

/// The database, behind one interface for both backends. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// `DB_TIMEOUT_MS`: the longest a caller waits for a connection or a statement.
    timeout: Duration,
    /// Set when the node shuts down: every store call ends by then, whatever its timeout
    /// (calls already waiting included, hence a watch).
    finish_by: Arc<tokio::sync::watch::Sender<Option<tokio::time::Instant>>>,
}

/// How much longer than `DB_TIMEOUT_MS` a caller waits, so the database's own statement
/// timeout (which rolls the statement back cleanly) fires first.
const TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// Runs `$body` with `$conn` bound to a pooled connection and `$q` to that backend's queries.
macro_rules! with_conn {
    ($backend:expr, |$conn:ident, $q:ident| $body:expr) => {
        match $backend {
            $crate::store::Backend::Postgres(pool) => {
                let mut $conn = pool
                    .get()
                    .await
                    .map_err($crate::store::StoreError::unavailable)?;
                #[allow(unused_imports)]
                use $crate::store::queries::pg as $q;
                let $conn = &mut *$conn;
                $body
            }
            $crate::store::Backend::Sqlite { pool, .. } => {
                let mut lent = $crate::store::hop::Lent::new(
                    pool.get()
                        .await
                        .map_err($crate::store::StoreError::unavailable)?,
                );
                #[allow(unused_imports)]
                use $crate::store::queries::sqlite as $q;
                // Its own block, so that the connection goes back to the pool after an error
                // too, and only when no statement of it is left running.
                let r: Result<_, $crate::store::StoreError> = async {
                    let $conn = lent.conn()?;
                    $body
                }
                .await;
                lent.give_back();
                r
            }
        }
    };
}

/// A read: runs in the caller's task on a pooled connection, bounded by `DB_TIMEOUT_MS`.
macro_rules! read {
    ($self:ident, |$conn:ident, $q:ident| $body:expr) => {{
        let started = std::time::Instant::now();
        let r: Result<_, $crate::store::StoreError> = $self
            .bounded(async { with_conn!(&$self.backend, |$conn, $q| Ok($body.await?)) })
            .await;
        $crate::metrics::db_query(started.elapsed());
        r
    }};
}

/// A write: runs in its own task (cancel safety) and, on SQLite, under the writer gate.
/// Everything `$body` uses must be owned (moved into the task). The caller waits at most
/// `DB_TIMEOUT_MS` (plus a margin for the database's own statement timeout to fire first);
/// the task itself finishes or fails cleanly either way.
///
/// A deadlock or serialization failure rolled the transaction back, so it is run again, up
/// to `WRITE_ATTEMPTS` times: the values `$body` consumes are listed in `clone(..)` and each
/// attempt gets its own copies (the compiler refuses a consumed value left off the list).
macro_rules! write {
    ($self:ident, |$conn:ident, $q:ident| $body:expr) => {
        write!($self, clone(), |$conn, $q| $body)
    };
    ($self:ident, clone($($v:ident),*), |$conn:ident, $q:ident| $body:expr) => {{
        let started = std::time::Instant::now();
        let by = $crate::store::Store::commit_by($self.wait_until(tokio::time::Instant::now()));
        let task = write_task!($self, by, clone($($v),*), |$conn, $q| $body);
        let r = $self
            .bounded(async {
                task.await
                    .map_err(|e| $crate::store::StoreError::Task(e.to_string()))?
            })
            .await;
        $crate::metrics::db_query(started.elapsed());
        r
    }};
}

/// The task behind `write!`, spawned: on SQLite under the writer gate and on one blocking
/// thread for all its statements (`hop`; inline when spawned on the message writer's own
/// thread), with the retry, and committing nothing past `$by` (`deadline`). The caller
/// decides how long to wait for it, at most `TIMEOUT_MARGIN` past `$by`; on the writer's
/// thread a statement cannot be cut short, so its callers bound their own waits.
macro_rules! write_task {
    ($self:ident, $by:expr, clone($($v:ident),*), |$conn:ident, $q:ident| $body:expr) => {{
        let full = $self.timeout;
        let deadline = $self.deadline($by);
        // A retry starts only in the first half of the caller's wait, so it has time to
        // finish before the caller gives up (a commit after that would be unacknowledged).
        let retry_until = std::time::Instant::now() + $self.timeout / 2;
        match $self.backend.clone() {
            $crate::store::Backend::Postgres(pool) => {
                tokio::spawn($crate::store::deadline::scope(deadline, async move {
                    let mut pooled = pool
                        .get()
                        .await
                        .map_err($crate::store::StoreError::unavailable)?;
                    #[allow(unused_imports)]
                    use $crate::store::queries::pg as $q;
                    attempts!(full, retry_until, clone($($v),*), |$conn = (&mut *pooled)| $body)
                }))
            }
            $crate::store::Backend::Sqlite { pool, writer } => tokio::spawn(async move {
                let _gate = writer.lock_owned().await;
                // Waited for the gate past the deadline: nothing to start, and the gate goes
                // to the next writer at once.
                deadline.check()?;
                // Lent, so that a panic on the blocking thread (leaving the connection's
                // lock poisoned) takes the connection out of the pool.
                let mut lent = $crate::store::hop::Lent::new(
                    pool.get()
                        .await
                        .map_err($crate::store::StoreError::unavailable)?,
                );
                $crate::store::hop::whole(move || {
                    $crate::store::deadline::scope(deadline, async move {
                        #[allow(unused_imports)]
                        use $crate::store::queries::sqlite as $q;
                        let r = attempts!(full, retry_until, clone($($v),*), |$conn = (lent.conn()?)| $body);
                        lent.give_back();
                        r
                    })
                })
                .await?
            }),
        }
    }};
}

/// A write's attempts on one connection (`$get`): the deadline checked (and the database's
/// timeout lowered to what is left of it) before each, and one that a deadlock or a
/// serialization failure rolled back run again, up to `WRITE_ATTEMPTS` in all, in the first
/// half of the caller's wait. Only Postgres reports those two; a SQLite write is tried once
/// (its backoff's timer would then run on the blocking thread, `hop::whole`).
macro_rules! attempts {
    ($full:expr, $retry_until:expr, clone($($v:ident),*), |$conn:ident = ($get:expr)| $body:expr) => {{
        let mut attempt = 1;
        loop {
            $(#[allow(clippy::redundant_clone)] let $v = $v.clone();)*
            // Its own block, so that `?` inside ends this attempt, not the loop.
            let r: Result<_, $crate::store::StoreError> = async {
                let $conn = $get;
                let lowered = $crate::store::deadline::start_write($conn, $full).await?;
                let r = $body.await;
                if lowered {
                    $crate::store::deadline::end_write($conn, $full).await;
                }
                Ok(r?)
            }
            .await;
            match r {
                Err(e)
                    if attempt < $crate::store::WRITE_ATTEMPTS
                        && e.is_transient()
                        && std::time::Instant::now() < $retry_until =>
                {
                    log::info!("write rolled back ({e}); attempt {} of {}", attempt + 1,
                        $crate::store::WRITE_ATTEMPTS);
                    $crate::store::backoff(attempt).await;
                    attempt += 1;
                }
                r => break r,
            }
        }
    }};
}

/// How many times a write is tried when the database rolls it back for a deadlock or a
/// serialization failure.
pub const WRITE_ATTEMPTS: u32 = 3;

/// A short, jittered wait before attempt `attempt + 1`, so two writers that deadlocked do
/// not meet again in step.
async fn backoff(attempt: u32) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = u64::from(nanos % 20);
    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter)).await;
}

impl StoreError {
    /// The database could not be reached: no connection, or none made in time.
    pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable(e.to_string())
    }

    /// Whether the database, not the request, is at fault: no connection, a connection lost,
    /// a statement stopped by `statement_timeout`, or a SQLite file another process held
    /// locked past `busy_timeout` (`unavailable` to the client).
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Query(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _)) => true,
            StoreError::Query(e) if deadline::Expired::is(e) => true,
            StoreError::Query(Error::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("statement timeout") || m.contains("database is locked")
            }
            _ => false,
        }
    }

    /// Whether Postgres refused a NUL character in a text value (its English message, as for
    /// deadlocks: with other `lc_messages` this stays `internal`, which is safe); SQLite
    /// stores one.
    pub fn is_nul_in_text(&self) -> bool {
        use diesel::result::Error;
        matches!(self, StoreError::Query(Error::DatabaseError(_, info))
            if info.message().contains("invalid byte sequence for encoding"))
    }

    /// Whether the database rolled the transaction back for a reason a retry can clear:
    /// a deadlock (Postgres 40P01) or a serialization failure (40001).
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            StoreError::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
                true
            }
            StoreError::Query(Error::DatabaseError(_, info)) => {
                info.message().contains("deadlock detected")
            }
            _ => false,
        }
    }
}

impl Store {
    /// Runs `f`, failing with `Unavailable` past the timeout: a database that stops
    /// answering fails requests, it never hangs them.
    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let until = self.wait_until(tokio::time::Instant::now());
        match self.until(until, f).await {
            Some(r) => r,
            None => Err(self.no_answer()),
        }
    }

    /// What a caller that stopped waiting answers.
    pub fn no_answer(&self) -> StoreError {
        let ms = self.timeout.as_millis();
        StoreError::Unavailable(format!("no answer within {ms} ms (or by the shutdown)"))
    }

    /// Connects (creating a SQLite file if needed) and checks a connection can be had.
    /// `timeout` bounds getting a connection, making one, and every statement.
    pub async fn connect(url: &DatabaseUrl, timeout: Duration) -> Result<Store, StoreError> {
        let backend = match url {
            DatabaseUrl::Postgres(u) => Backend::Postgres(pool::postgres(u, timeout)?),
            DatabaseUrl::Sqlite(path) => Backend::Sqlite {
                pool: pool::sqlite(path, timeout)?,
                writer: Arc::new(tokio::sync::Mutex::new(())),
            },
        };
        let store = Store {
            backend,
            timeout,
            finish_by: Arc::new(tokio::sync::watch::Sender::new(None)),
        };
        store.ping().await?;
        Ok(store)
    }

    /// `DB_TIMEOUT_MS`: the longest a caller should wait for the database.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The connections the pool holds now (idle and in use).
    pub fn pool_size(&self) -> usize {
        match &self.backend {
            Backend::Postgres(pool) => pool.status().size,
            Backend::Sqlite { pool, .. } => pool.status().size,
        }
    }

    /// Whether this store runs on Postgres.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Starts a task that makes writes for its whole life (the message writer) where they
    /// cost least: on the runtime for Postgres, whose statements are network round trips;
    /// for SQLite, whose statements are blocking file calls, on a thread of its own where
    /// they run inline, with no hand-off to a blocking thread and back per write.
    pub fn spawn_writer<F>(&self, name: &str, task: F) -> std::io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self.backend {
            Backend::Postgres(_) => {
                tokio::spawn(task);
                Ok(())
            }
            Backend::Sqlite { .. } => hop::resident(name, task),
        }
    }

    /// A cheap round trip, for `/readyz` and `check`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            with_conn!(&self.backend, |conn, _q| {
                conn.batch_execute("SELECT 1").await?;
                Ok(())
            })
        })
        .await
    }

    /// How long a caller waits for a write before answering `unavailable`, at most.
    pub fn write_wait(&self) -> Duration {
        self.timeout + TIMEOUT_MARGIN
    }

    /// When a caller that starts waiting at `from` stops: `write_wait` later, or sooner
    /// while the node drains.
    pub fn wait_until(&self, from: tokio::time::Instant) -> tokio::time::Instant {
        let until = from + self.write_wait();
        let cap = *self.finish_by.borrow();
        cap.map_or(until, |cap| until.min(cap))
    }

    /// Waits for `f` until `until`, or until the shutdown's deadline if that comes first,
    /// even when it is set during the wait; `None` when the wait ran out.
    pub async fn until<F: std::future::Future>(
        &self,
        until: tokio::time::Instant,
        f: F,
    ) -> Option<F::Output> {
        let mut cap = self.finish_by.subscribe();
        let mut f = std::pin::pin!(f);
        loop {
            let by = cap.borrow_and_update().map_or(until, |c| until.min(c));
            tokio::select! {
                // An answer that is in is taken, even at the deadline.
                biased;
                r = &mut f => return Some(r),
                () = tokio::time::sleep_until(by) => return None,
                Ok(()) = cap.changed() => {}
            }
        }
    }

    /// A write task's deadline: `by`, or sooner once the node shuts down.
    fn deadline(&self, by: tokio::time::Instant) -> deadline::Deadline {
        deadline::Deadline::new(by, self.finish_by.subscribe())
    }

    /// The deadline of a write whose caller waits until `until`: `TIMEOUT_MARGIN` before,
    /// for the answer to arrive.
    pub fn commit_by(until: tokio::time::Instant) -> tokio::time::Instant {
        until.checked_sub(TIMEOUT_MARGIN).unwrap_or(until)
    }

    /// From now on every store call ends by `at` (shutdown): a call that cannot finish by
    /// then answers `unavailable` in time for its reply to go out before its session
    /// closes, and nothing commits after it.
    pub fn finish_by(&self, at: tokio::time::Instant) {
        self.finish_by.send_replace(Some(at));
    }
}

mod chat;
mod host;

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod deadline_tests;
#[cfg(test)]
mod hop_tests;
#[cfg(test)]
mod retry_tests;
