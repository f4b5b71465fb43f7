//! The two connection pools: each bounds waiting for a connection, making one, and every
//! statement by `DB_TIMEOUT_MS`, and sets its backend up for durable, concurrent use.

use std::path::Path;
use std::time::Duration;

use deadpool::managed::{self, Manager};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;

use super::{SqliteConn, StoreError};

/// Connections held by one Postgres pool.
const PG_POOL_SIZE: usize = 16;
/// SQLite readers; writes go through one connection at a time anyway.
const SQLITE_POOL_SIZE: usize = 4;

/// The Postgres pool: every connection gets a server-side `statement_timeout`.
pub(super) fn postgres(
    url: &str,
    timeout: Duration,
) -> Result<Pool<AsyncPgConnection>, StoreError> {
    let ms = timeout.as_millis();
    let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
    // No `SELECT 1` on every checkout: a broken connection shows as one (`is_broken`) and
    // fails its statement, which `unavailable` covers.
    cfg.recycling_method = RecyclingMethod::Fast;
    cfg.custom_setup = Box::new(move |url| {
        let url = url.to_string();
        async move {
            let connect = AsyncPgConnection::establish(&url);
            let mut c = tokio::time::timeout(timeout, connect).await.map_err(|_| {
                diesel::ConnectionError::BadConnection(format!("no connection within {ms} ms"))
            })??;
            // The server aborts (and rolls back) any statement past the timeout.
            c.batch_execute(&format!("SET statement_timeout = {ms}"))
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            crate::metrics::db_connection_opened();
            Ok(c)
        }
        .boxed()
    });
    build(
        AsyncDieselConnectionManager::new_with_config(url, cfg),
        PG_POOL_SIZE,
        timeout,
    )
}

/// The SQLite pool on `path` (created if missing): WAL, full sync, a busy timeout.
pub(super) fn sqlite(path: &Path, timeout: Duration) -> Result<Pool<SqliteConn>, StoreError> {
    let ms = timeout.as_millis();
    let mut cfg = ManagerConfig::<SqliteConn>::default();
    // A file cannot drop the connection, so no `SELECT 1` on checkout: each statement is a
    // hop to a blocking thread and back, and this one was the first of every store call
    // (docs/performance.md, "SQLite at 100/s").
    cfg.recycling_method = RecyclingMethod::Fast;
    cfg.custom_setup = Box::new(move |url| {
        let url = url.to_string();
        async move {
            let mut c = SqliteConn::establish(&url).await?;
            // busy_timeout first, so even switching to WAL waits for a lock instead of
            // failing. WAL lets readers run beside the one writer; FULL sync makes a commit
            // durable before its ack.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout={ms}; \
                 PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                 PRAGMA foreign_keys=ON;"
            ))
            .await
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            crate::metrics::db_connection_opened();
            Ok(c)
        }
        .boxed()
    });
    build(
        AsyncDieselConnectionManager::new_with_config(path.to_string_lossy(), cfg),
        SQLITE_POOL_SIZE,
        timeout,
    )
}

/// A pool of `size` whose waits for, creation of and recycling of a connection are bounded.
fn build<M: Manager>(
    mgr: M,
    size: usize,
    timeout: Duration,
) -> Result<managed::Pool<M>, StoreError> {
    managed::Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(StoreError::unavailable)
}
