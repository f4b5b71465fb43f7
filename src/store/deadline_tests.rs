//! A write's deadline against real databases: Postgres at `TEST_DATABASE_URL` (as the
//! integration tests use; fails rather than skips when it is down) and a SQLite file.

use std::time::Duration;

use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use tokio::time::Instant;

use super::{Store, StoreError};
use crate::config::DatabaseUrl;

const FULL: Duration = Duration::from_secs(5);

fn pg_url() -> String {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{}/postgres", base.trim_end_matches('/'))
}

/// A store on Postgres and a scratch table `(id, n)` holding `(1, 0)`, with an admin
/// connection beside the pool.
async fn pg() -> (Store, String, diesel_async::AsyncPgConnection) {
    let store = Store::connect(&DatabaseUrl::Postgres(pg_url()), FULL)
        .await
        .expect("Postgres at TEST_DATABASE_URL");
    let table = format!("deadline_{}", uuid::Uuid::now_v7().simple());
    let mut admin = diesel_async::AsyncPgConnection::establish(&pg_url())
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id INT PRIMARY KEY, n INT NOT NULL); \
             INSERT INTO {table} VALUES (1, 0)"
        ))
        .await
        .unwrap();
    (store, table, admin)
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    n: i32,
}

async fn n_of(admin: &mut diesel_async::AsyncPgConnection, table: &str) -> i32 {
    let rows: Vec<N> = diesel::sql_query(format!("SELECT n FROM {table} WHERE id = 1"))
        .load(admin)
        .await
        .unwrap();
    rows[0].n
}

impl Store {
    /// `UPDATE table SET n = n + 1` as a write with deadline `by`, awaited to its end.
    async fn bump_by(&self, table: &str, by: Instant) -> Result<usize, StoreError> {
        let sql = format!("UPDATE {table} SET n = n + 1 WHERE id = 1");
        write_task!(self, by, clone(sql), |c, q| diesel::sql_query(sql)
            .execute(c))
        .await
        .unwrap()
    }

    /// The same in a transaction that sleeps `sleep_s` before its commit.
    async fn bump_slowly_by(
        &self,
        table: &str,
        sleep_s: f64,
        by: Instant,
    ) -> Result<(), StoreError> {
        let sql = format!("UPDATE {table} SET n = n + 1 WHERE id = 1");
        write_task!(self, by, clone(sql), |c, q| c.transaction(async move |c| {
            diesel::sql_query(sql).execute(c).await?;
            diesel::sql_query(format!("SELECT pg_sleep({sleep_s})"))
                .execute(c)
                .await?;
            super::before_commit()?;
            Ok::<_, diesel::result::Error>(())
        }))
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_write_past_its_deadline_sends_nothing() {
    let (store, table, mut admin) = pg().await;
    let e = store.bump_by(&table, Instant::now()).await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert_eq!(n_of(&mut admin, &table).await, 0);
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_write_left_little_time_ends_by_its_deadline_and_the_connection_gets_its_timeout_back() {
    let (store, table, mut admin) = pg().await;
    // The row is locked elsewhere, so the UPDATE waits: with the full statement timeout
    // it would wait 5 s, long past a caller that gave up 0.8 s in.
    admin.batch_execute("BEGIN").await.unwrap();
    admin
        .batch_execute(&format!("SELECT * FROM {table} WHERE id = 1 FOR UPDATE"))
        .await
        .unwrap();
    let started = Instant::now();
    let e = store
        .bump_by(&table, started + Duration::from_millis(300))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(e.is_unavailable(), "{e}");
    assert!(
        took < Duration::from_millis(1500),
        "ended after {took:?}: the full timeout (5 s) ran, not what was left (0.7 s)"
    );
    admin.batch_execute("COMMIT").await.unwrap();
    assert_eq!(n_of(&mut admin, &table).await, 0, "nothing committed late");
    // The one pooled connection is back to the full timeout for whoever takes it next.
    assert_eq!(store.pool_size(), 1);
    assert_eq!(
        store.bump_by(&table, Instant::now() + FULL).await.unwrap(),
        1
    );
    let shown: String = read!(store, |c, q| async {
        #[derive(diesel::QueryableByName)]
        struct S {
            #[diesel(sql_type = diesel::sql_types::Text)]
            statement_timeout: String,
        }
        let rows: Vec<S> = diesel::sql_query("SHOW statement_timeout").load(c).await?;
        Ok::<_, diesel::result::Error>(rows.into_iter().next().unwrap().statement_timeout)
    })
    .unwrap();
    assert_eq!(shown, "5s");
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_transaction_that_runs_past_its_deadline_rolls_back_instead_of_committing() {
    let (store, table, mut admin) = pg().await;
    let by = Instant::now() + Duration::from_millis(200);
    let e = store.bump_slowly_by(&table, 0.4, by).await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert_eq!(n_of(&mut admin, &table).await, 0);
    // In time, the same transaction commits.
    store
        .bump_slowly_by(&table, 0.0, Instant::now() + FULL)
        .await
        .unwrap();
    assert_eq!(n_of(&mut admin, &table).await, 1);
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn on_sqlite_a_write_left_little_time_waits_less_for_a_lock() {
    let dir = std::env::temp_dir().join(format!("sb-deadline-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("db.sqlite");
    let store = Store::connect(&DatabaseUrl::Sqlite(path.clone()), FULL)
        .await
        .unwrap();
    let create = "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO t VALUES (1, 0)";
    write_task!(store, Instant::now() + FULL, clone(), |c, q| c
        .batch_execute(create))
    .await
    .unwrap()
    .unwrap();
    // Another process's lock on the whole file.
    let mut other = other_connection(&path).await;
    other.batch_execute("BEGIN EXCLUSIVE").await.unwrap();
    let started = Instant::now();
    let e = store
        .bump_by("t", started + Duration::from_millis(300))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(e.is_unavailable(), "{e}");
    assert!(took < Duration::from_millis(1500), "ended after {took:?}");
    other.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.bump_by("t", Instant::now() + FULL).await.unwrap(), 1);
    // The pooled connection waits the full 5 s for a lock again.
    assert_eq!(store.pool_size(), 1);
    let busy: i64 = read!(store, |c, q| async {
        #[derive(diesel::QueryableByName)]
        struct B {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            timeout: i64,
        }
        let rows: Vec<B> = diesel::sql_query("PRAGMA busy_timeout").load(c).await?;
        Ok::<_, diesel::result::Error>(rows.into_iter().next().unwrap().timeout)
    })
    .unwrap();
    assert_eq!(busy, 5000);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second, unpooled connection to the same SQLite file.
async fn other_connection(path: &std::path::Path) -> super::SqliteConn {
    super::SqliteConn::establish(&path.to_string_lossy())
        .await
        .unwrap()
}
