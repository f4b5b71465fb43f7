//! Group commit at the seam, on both backends (a fresh SQLite file; a fresh database on the
//! Postgres at `TEST_DATABASE_URL`, as the integration tests use, failing rather than
//! skipping when it is down): one batch mixing every outcome.

use std::time::Duration;

use diesel_async::AsyncConnection;

use super::models::{MessageRow, NewMessage, ThreadRow, naive};
use super::{Inserted, Pending, Receipt, Store, migrate};
use crate::config::DatabaseUrl;
use crate::protocol::Ts;

fn thread(id: &str) -> ThreadRow {
    let now = naive(Ts::now());
    ThreadRow {
        id: id.into(),
        kind: "group".into(),
        title: None,
        external_ref: None,
        direct_key: None,
        last_seq: 0,
        created_by: Some("ann".into()),
        created_at: now,
        updated_at: now,
    }
}

fn message(thread_id: &str, sender: &str, client_id: Option<&str>) -> Pending {
    let row: MessageRow = NewMessage {
        thread_id: thread_id.into(),
        sender_id: sender.into(),
        kind: "text".into(),
        body: format!("from {sender}"),
        metadata: None,
        reply_to: None,
        client_id: client_id.map(Into::into),
    }
    .into();
    Pending {
        row,
        hook: None,
        member_only: true,
    }
}

/// The seq of a new row, or what else the store answered.
fn outcome(i: &Inserted) -> String {
    match i {
        Inserted::New(m, members) => format!("new {} {}", m.seq, members.join(",")),
        Inserted::Duplicate(m) => format!("duplicate of {}", m.seq),
        Inserted::NotMember => "not a member".into(),
        Inserted::NoThread => "no thread".into(),
        Inserted::Failed { reason, .. } => format!("failed: {reason}"),
    }
}

async fn one_batch_of_every_outcome(url: DatabaseUrl) {
    migrate::run(&url, std::time::Duration::from_secs(60))
        .await
        .expect("migrations");
    let store = Store::connect(&url, Duration::from_secs(10))
        .await
        .expect("the database");
    let members = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    store
        .create_thread(thread("t1"), members(&["ann", "bob"]), false)
        .await
        .unwrap();
    store
        .create_thread(thread("t2"), members(&["bob", "cat"]), false)
        .await
        .unwrap();
    // Stored before the batch: its resend must answer the original.
    let before = store
        .insert_messages(vec![message("t1", "ann", Some("c0"))].into(), in_time())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome(&before[0]), "new 1 ann,bob");

    let answers = store
        .insert_messages(
            vec![
                message("t1", "ann", Some("c1")),
                message("t2", "cat", None),
                // Not a member of t1: refused, and takes no seq.
                message("t1", "cat", Some("c9")),
                message("t1", "bob", None),
                message("t1", "ann", Some("c0")),
                message("nope", "ann", None),
                // The same key twice in one batch: stored once.
                message("t1", "ann", Some("c1")),
                message("t2", "bob", None),
            ]
            .into(),
            in_time(),
        )
        .await
        .unwrap()
        .unwrap();
    let got: Vec<String> = answers.iter().map(outcome).collect();
    assert_eq!(
        got,
        [
            "new 2 ann,bob",
            "new 1 bob,cat",
            "not a member",
            "new 3 ann,bob",
            "duplicate of 1",
            "no thread",
            "duplicate of 2",
            "new 2 bob,cat",
        ]
    );
    // Gap-free and stored once each: exactly the seqs answered.
    for (t, last) in [("t1", 3), ("t2", 2)] {
        let page = store.history(t, None, None, 50).await.unwrap();
        let seqs: Vec<i64> = page.rows.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "{t}");
        assert_eq!(store.thread(t).await.unwrap().unwrap().last_seq, last);
    }
}

#[tokio::test]
async fn a_batch_on_sqlite_answers_each_message_in_order() {
    let dir = std::env::temp_dir().join(format!("sb-batch-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    one_batch_of_every_outcome(DatabaseUrl::Sqlite(dir.join("db.sqlite"))).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_batch_on_postgres_answers_each_message_in_order() {
    let db = FreshPg::create("sb_batch").await;
    one_batch_of_every_outcome(DatabaseUrl::Postgres(db.url.clone())).await;
    db.drop().await;
}

/// A new database on the Postgres at `TEST_DATABASE_URL` (failing, not skipping, when it is
/// down), dropped by [`FreshPg::drop`].
struct FreshPg {
    admin: diesel_async::AsyncPgConnection,
    name: String,
    url: String,
}

impl FreshPg {
    async fn create(prefix: &str) -> FreshPg {
        let base = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let base = base.trim_end_matches('/');
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let mut admin = diesel_async::AsyncPgConnection::establish(&format!("{base}/postgres"))
            .await
            .expect("Postgres at TEST_DATABASE_URL");
        let create = format!("CREATE DATABASE {name}");
        diesel_async::SimpleAsyncConnection::batch_execute(&mut admin, &create)
            .await
            .unwrap();
        let url = format!("{base}/{name}");
        FreshPg { admin, name, url }
    }

    async fn drop(mut self) {
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        diesel_async::SimpleAsyncConnection::batch_execute(&mut self.admin, &drop)
            .await
            .unwrap();
    }
}

/// The hot statements are prepared once per connection and kept (queries/fixed.rs): after two
/// rounds of a two-thread batch, a receipt and a user upsert on one connection, each is one
/// entry of that connection's `pg_prepared_statements`. diesel closes a statement it will not
/// cache after its one use, so before they were rewritten there were none: each call parsed
/// its statement again, one more round trip.
#[tokio::test]
async fn the_hot_statements_are_prepared_once_per_connection_on_postgres() {
    use diesel::QueryableByName;
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;

    use super::queries::pg;

    #[derive(QueryableByName, Debug)]
    struct Prepared {
        #[diesel(sql_type = Text)]
        statement: String,
    }

    let db = FreshPg::create("sb_prep").await;
    let url = DatabaseUrl::Postgres(db.url.clone());
    migrate::run(&url, std::time::Duration::from_secs(60))
        .await
        .expect("migrations");
    let store = Store::connect(&url, Duration::from_secs(10))
        .await
        .expect("the database");
    for t in ["t1", "t2"] {
        let members = vec!["ann".to_string(), "bob".to_string()];
        store
            .create_thread(thread(t), members, false)
            .await
            .unwrap();
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(&db.url)
        .await
        .unwrap();
    let now = naive(Ts::now());
    for round in 1..=2 {
        // A one-thread batch takes no separate lock: its UPDATE holds the row.
        let alone = [message("t2", "ann", None)];
        let alone = pg::messages::insert_batch(&mut conn, &alone).await.unwrap();
        let seq = 2 * round - 1;
        assert_eq!(outcome(&alone[0]), format!("new {seq} ann,bob"));
        let batch = [message("t1", "ann", None), message("t2", "bob", None)];
        let stored = pg::messages::insert_batch(&mut conn, &batch).await.unwrap();
        assert_eq!(
            stored.iter().map(outcome).collect::<Vec<_>>(),
            [
                format!("new {round} ann,bob"),
                format!("new {} ann,bob", 2 * round)
            ]
        );
        let moved = pg::receipts::advance(&mut conn, Receipt::Read, "t1", "bob", round, now);
        assert_eq!(
            moved.await.unwrap(),
            Some(round),
            "the read receipt moves on"
        );
        pg::users::upsert(&mut conn, "ann", None, Some(now), now, None)
            .await
            .unwrap();
    }
    let kept: Vec<Prepared> = diesel::sql_query("SELECT statement FROM pg_prepared_statements")
        .load(&mut conn)
        .await
        .unwrap();
    for start in [
        "SELECT id FROM threads",
        "UPDATE threads",
        "INSERT INTO messages",
        "UPDATE members",
        "INSERT INTO users",
    ] {
        let n = kept
            .iter()
            .filter(|p| p.statement.starts_with(start))
            .count();
        assert_eq!(n, 1, "`{start}…` prepared once and kept: {kept:?}");
    }
    drop(conn);
    drop(store);
    db.drop().await;
}

/// A write deadline no test here reaches.
fn in_time() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(30)
}
