//! SQLite's hand-offs to blocking threads, on a real file: a write's statements share one
//! thread (the message writer's own, when it makes the write), and a read abandoned mid-statement never comes back to the pool half-done.

use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::{Store, StoreError};
use crate::config::DatabaseUrl;

const FULL: Duration = Duration::from_secs(5);

async fn sqlite_store(name: &str) -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("sb-hop-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&DatabaseUrl::Sqlite(dir.join("db.sqlite")), FULL)
        .await
        .unwrap();
    (store, dir)
}

impl Store {
    /// A read that keeps SQLite busy for a while (counting a few million generated rows).
    async fn slow_read(&self) -> Result<i64, StoreError> {
        read!(self, |c, _q| diesel::select(diesel::dsl::sql::<BigInt>(
            "(WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) \
             SELECT count(*) FROM n)"
        ))
        .get_result::<i64>(c))
    }
}

/// The thread a connection's statements run on (`write_task!` compiles its body for both
/// backends; only SQLite's is run here).
trait StatementThread {
    fn statement_thread(&mut self) -> BoxFuture<'_, diesel::QueryResult<String>>;
}

impl StatementThread for super::SqliteConn {
    fn statement_thread(&mut self) -> BoxFuture<'_, diesel::QueryResult<String>> {
        self.spawn_blocking(|_| Ok(format!("{:?}", std::thread::current().id())))
    }
}

impl StatementThread for diesel_async::AsyncPgConnection {
    fn statement_thread(&mut self) -> BoxFuture<'_, diesel::QueryResult<String>> {
        unreachable!("a Postgres statement runs on the runtime")
    }
}

/// Each statement of a write runs on the thread that runs the write's own code, and that
/// thread is not the runtime's.
#[tokio::test]
async fn a_sqlite_write_runs_all_its_statements_on_one_thread_off_the_runtime() {
    let (store, dir) = sqlite_store("one-thread").await;
    let runtime_thread = format!("{:?}", std::thread::current().id());
    let threads: Vec<String> = write_task!(store, Instant::now() + FULL, clone(), |c, _q| c
        .transaction(async |c| {
            c.batch_execute("CREATE TABLE t (thread TEXT NOT NULL)")
                .await?;
            let mut seen = Vec::new();
            for _ in 0..4 {
                // Where the transaction's own code runs, and where its statement runs.
                let polled = format!("{:?}", std::thread::current().id());
                let here = c.statement_thread().await?;
                assert_eq!(polled, here, "a statement was handed to another thread");
                diesel::sql_query("INSERT INTO t VALUES (?)")
                    .bind::<diesel::sql_types::Text, _>(&here)
                    .execute(c)
                    .await?;
                seen.push(here);
            }
            crate::store::before_commit()?;
            Ok::<_, diesel::result::Error>(seen)
        }))
    .await
    .unwrap()
    .unwrap();
    assert_eq!(threads.len(), 4);
    assert!(threads.iter().all(|t| *t == threads[0]), "{threads:?}");
    assert_ne!(threads[0], runtime_thread);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The message writer's thread (`Store::spawn_writer`) runs its writes' statements itself:
/// no hand-off to a blocking thread and back.
#[tokio::test]
async fn a_sqlite_write_made_by_the_resident_writer_runs_on_the_writer_thread() {
    let (store, dir) = sqlite_store("resident").await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let writer_store = store.clone();
    store
        .spawn_writer("writer-test", async move {
            let statement = write_task!(writer_store, Instant::now() + FULL, clone(), |c, _q| c
                .statement_thread())
            .await;
            let me = std::thread::current();
            let _ = tx.send((
                statement,
                format!("{:?}", me.id()),
                me.name().map(String::from),
            ));
        })
        .unwrap();
    let (statement, writer, name) = rx.await.unwrap();
    assert_eq!(statement.unwrap().unwrap(), writer);
    assert_eq!(name.as_deref(), Some("writer-test"));
    assert_ne!(writer, format!("{:?}", std::thread::current().id()));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client that goes away mid-read drops the read's future while its statement still runs
/// on a blocking thread. That connection must not be handed out again before the statement
/// ends (diesel-async's wrapper would panic on it: "Cannot access shared transaction state").
#[tokio::test]
async fn a_read_dropped_mid_statement_leaves_every_pooled_connection_usable() {
    let (store, dir) = sqlite_store("dropped").await;
    let cut = tokio::time::timeout(Duration::from_millis(30), store.slow_read()).await;
    assert!(cut.is_err(), "the read should still be running: {cut:?}");
    // Every connection the pool hands out now works, in a transaction too (which needs the
    // connection to itself).
    for _ in 0..8 {
        store.ping().await.unwrap();
        let one: i64 = write_task!(store, Instant::now() + FULL, clone(), |c, _q| c
            .transaction(async |c| {
                let n = diesel::select(diesel::dsl::sql::<BigInt>("1"))
                    .get_result::<i64>(c)
                    .await?;
                crate::store::before_commit()?;
                Ok::<_, diesel::result::Error>(n)
            }))
        .await
        .unwrap()
        .unwrap();
        assert_eq!(one, 1);
    }
    // A read that is left alone finishes.
    assert_eq!(store.slow_read().await.unwrap(), 3_000_000);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A call that ends normally gives its connection back: a temporary table (which lives only
/// on the connection that made it) made by a write is still there for the reads after it.
#[tokio::test]
async fn reads_and_writes_that_end_give_their_connection_back_to_the_pool() {
    let (store, dir) = sqlite_store("back").await;
    write_task!(store, Instant::now() + FULL, clone(), |c, _q| c
        .batch_execute(
            "CREATE TEMP TABLE mark (x INT); INSERT INTO mark VALUES (7)"
        ))
    .await
    .unwrap()
    .unwrap();
    for _ in 0..3 {
        let x: i64 = read!(store, |c, _q| diesel::select(diesel::dsl::sql::<BigInt>(
            "(SELECT x FROM temp.mark)"
        ))
        .get_result::<i64>(c))
        .unwrap();
        assert_eq!(x, 7);
    }
    assert_eq!(store.pool_size(), 1);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
