//! Embedded migrations for both backends, run off the async runtime: diesel's migration
//! harness is synchronous, and the async one panicked under actix's runtime (STACK.md).

use std::time::Duration;

use diesel::migration::MigrationSource;
use diesel::{Connection, SqliteConnection};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::StoreError;
use crate::config::DatabaseUrl;

/// The advisory lock key migrations run under (any fixed number; "sbmigrat" in ASCII).
const MIGRATION_LOCK: i64 = 0x7362_6d69_6772_6174;

/// Postgres migrations, kept in step with `SQLITE`.
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// SQLite migrations, kept in step with `POSTGRES`.
pub const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How many `DB_TIMEOUT_MS` a node waits to connect and take the migration lock (60 s by
/// default): long enough for another node's migrations, short of hanging a start forever.
pub const LOCK_WAITS: u32 = 12;

/// Applies pending migrations; returns the names of those applied. Connecting and taking
/// the lock are bounded by `wait`; applying the migrations is not (a long one is legitimate,
/// and stopping it half-way would gain nothing).
pub async fn run(url: &DatabaseUrl, wait: Duration) -> Result<Vec<String>, StoreError> {
    let url = url.clone();
    let (locked, has_lock) = tokio::sync::oneshot::channel::<()>();
    let mut task = tokio::task::spawn_blocking(move || match url {
        DatabaseUrl::Postgres(u) => {
            let mut c = pg_connection(&u)?;
            // Nodes started together on a new database take turns: the first applies the
            // migrations, the others wait here and then find none pending. Without the lock
            // two `CREATE TABLE`s race and one node exits (pg_type_typname_nsp_index).
            diesel::RunQueryDsl::execute(
                diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")),
                &mut c,
            )
            .map_err(|e| StoreError::Migration(e.to_string()))?;
            let _ = locked.send(());
            let r = applied(c.run_pending_migrations(POSTGRES));
            let _ = diesel::RunQueryDsl::execute(
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")),
                &mut c,
            );
            r
        }
        DatabaseUrl::Sqlite(path) => {
            let mut c = sqlite_connection(&path.to_string_lossy())?;
            let _ = locked.send(());
            applied(c.run_pending_migrations(SQLITE))
        }
    });
    let joined =
        |r: Result<_, tokio::task::JoinError>| r.map_err(|e| StoreError::Task(e.to_string()))?;
    tokio::select! {
        r = &mut task => return joined(r),
        r = tokio::time::timeout(wait, has_lock) => if r.is_err() {
            // The blocking thread stays behind, waiting; the node exits on this error.
            return Err(StoreError::Unavailable(format!(
                "no connection and migration lock within {} ms (is another node's migration \
                 stuck, or the database unreachable?)",
                wait.as_millis()
            )));
        },
    }
    joined(task.await)
}

/// Names of migrations not yet applied.
pub async fn pending(url: &DatabaseUrl) -> Result<Vec<String>, StoreError> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || match url {
        DatabaseUrl::Postgres(u) => {
            let mut c = pg_connection(&u)?;
            names(c.pending_migrations(POSTGRES))
        }
        DatabaseUrl::Sqlite(path) => {
            let mut c = sqlite_connection(&path.to_string_lossy())?;
            names(c.pending_migrations(SQLITE))
        }
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?
}

/// How many migrations each backend embeds (they must match).
pub fn embedded_counts() -> (usize, usize) {
    let pg = MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES).map_or(0, |m| m.len());
    let lite =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE).map_or(0, |m| m.len());
    (pg, lite)
}

fn pg_connection(url: &str) -> Result<AsyncConnectionWrapper<AsyncPgConnection>, StoreError> {
    <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(url)
        .map_err(StoreError::unavailable)
}

fn sqlite_connection(path: &str) -> Result<SqliteConnection, StoreError> {
    SqliteConnection::establish(path).map_err(StoreError::unavailable)
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn applied<V: std::fmt::Display>(r: Result<Vec<V>, BoxError>) -> Result<Vec<String>, StoreError> {
    r.map(|v| v.iter().map(|m| m.to_string()).collect())
        .map_err(|e| StoreError::Migration(e.to_string()))
}

fn names<DB: diesel::backend::Backend>(
    r: Result<Vec<Box<dyn diesel::migration::Migration<DB> + '_>>, BoxError>,
) -> Result<Vec<String>, StoreError> {
    r.map(|v| v.iter().map(|m| m.name().to_string()).collect())
        .map_err(|e| StoreError::Migration(e.to_string()))
}
