//! The two migration sets stay in step: same tables, same columns.

use std::collections::BTreeSet;

use diesel::sql_types::Text;
use diesel::{Connection, QueryableByName};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::harness::{Backend, TempDir, command, fresh_database};

#[derive(QueryableByName)]
struct Col {
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Text)]
    c: String,
}

fn migrate(dir: &std::path::Path, url: &str) {
    let out = command(dir)
        .env("DATABASE_URL", url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn both_backends_have_the_same_tables_and_columns() {
    let dir = TempDir::new();
    let lite_url = fresh_database(Backend::Sqlite, &dir.0).await;
    let pg_url = fresh_database(Backend::Postgres, &dir.0).await;
    migrate(&dir.0, &lite_url);
    migrate(&dir.0, &pg_url);

    let mut lite =
        diesel::SqliteConnection::establish(lite_url.trim_start_matches("sqlite://")).unwrap();
    let lite_cols: BTreeSet<(String, String)> = diesel::RunQueryDsl::load::<Col>(
        diesel::sql_query(
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '__diesel%'",
        ),
        &mut lite,
    )
    .unwrap()
    .into_iter()
    .map(|r| (r.t, r.c))
    .collect();

    let mut pg = AsyncPgConnection::establish(&pg_url).await.unwrap();
    let pg_cols: BTreeSet<(String, String)> = diesel::sql_query(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '__diesel%'",
    )
    .load::<Col>(&mut pg)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.t, r.c))
    .collect();

    assert!(lite_cols.len() > 30, "{lite_cols:?}");
    assert_eq!(lite_cols, pg_cols);
    let (a, b) = switchboard::store::migrate::embedded_counts();
    assert_eq!(a, b);
}
