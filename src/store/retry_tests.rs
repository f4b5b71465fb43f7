//! The write retry against a real Postgres deadlock (`TEST_DATABASE_URL`, as the
//! integration tests use; fails rather than skips when Postgres is down).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{Store, StoreError, WRITE_ATTEMPTS};
use crate::config::DatabaseUrl;

fn pg_url() -> String {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{}/postgres", base.trim_end_matches('/'))
}

impl Store {
    /// Locks row `first` then row `second` of `table` in one transaction, counting attempts.
    async fn lock_both(
        &self,
        table: String,
        first: i32,
        second: i32,
        attempts: Arc<AtomicU32>,
    ) -> Result<(), StoreError> {
        write!(self, clone(table, attempts), |c, q| c.transaction(
            async move |c| {
                attempts.fetch_add(1, Ordering::SeqCst);
                let bump = |id: i32| format!("UPDATE {table} SET n = n + 1 WHERE id = {id}");
                diesel::sql_query(bump(first)).execute(c).await?;
                // Long enough for the other writer to take its first row.
                diesel::sql_query("SELECT pg_sleep(0.3)").execute(c).await?;
                diesel::sql_query(bump(second)).execute(c).await?;
                Ok::<_, diesel::result::Error>(())
            }
        ))
    }
}

#[tokio::test]
async fn a_deadlock_is_retried_and_both_writes_land() {
    let url = DatabaseUrl::Postgres(pg_url());
    let store = Store::connect(&url, Duration::from_secs(10))
        .await
        .expect("Postgres at TEST_DATABASE_URL");
    let table = format!("retry_{}", uuid::Uuid::now_v7().simple());
    let setup = format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, n INT NOT NULL); \
         INSERT INTO {table} VALUES (1, 0), (2, 0)"
    );
    let mut admin = diesel_async::AsyncPgConnection::establish(&pg_url())
        .await
        .unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(&mut admin, &setup)
        .await
        .unwrap();

    let attempts = Arc::new(AtomicU32::new(0));
    let (a, b) = tokio::join!(
        store.lock_both(table.clone(), 1, 2, attempts.clone()),
        store.lock_both(table.clone(), 2, 1, attempts.clone()),
    );
    let total: Vec<i32> = diesel::sql_query(format!("SELECT n FROM {table} ORDER BY id"))
        .load::<N>(&mut admin)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.n)
        .collect();
    diesel_async::SimpleAsyncConnection::batch_execute(&mut admin, &format!("DROP TABLE {table}"))
        .await
        .unwrap();
    a.expect("first writer");
    b.expect("second writer");
    // Postgres broke the deadlock by rolling one back; that one ran again.
    let n = AtomicU32::load(&attempts, Ordering::SeqCst);
    assert!((3..=WRITE_ATTEMPTS + 1).contains(&n), "{n} attempts");
    assert_eq!(total, vec![2, 2], "each write applied exactly once");
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    n: i32,
}
