//! Database faults: a Postgres that stops answering (a TCP proxy the test pauses) fails
//! requests with `unavailable` within `DB_TIMEOUT_MS` plus a second, turns `/readyz` 503
//! within 2 s, and both recover when it answers again.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Backend, Proxy, Server, TempDir, fresh_database};

#[tokio::test]
async fn a_database_that_stops_answering_fails_fast_and_recovers() {
    let dir = TempDir::new();
    let direct = fresh_database(Backend::Postgres, &dir.0).await;
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let url = direct.replacen(":5432/", &format!(":{}/", proxy.port), 1);
    assert_ne!(url, direct, "the database URL goes through the proxy");
    let s = Server::spawn(TempDir::new(), &url, &[("DB_TIMEOUT_MS", "1000")]).await;
    let mut alice = s.ws("alice").await;
    let tid = s.http("alice").direct("bob").await;
    alice.say(&tid, "before").await;
    let http = reqwest::Client::new();

    proxy.pause();
    let started = Instant::now();
    let r = alice
        .call(json!({"type":"send","thread_id":tid,"body":"during","client_id":"c-during"}))
        .await;
    let took = started.elapsed();
    assert_eq!(r["code"], "unavailable", "{r}");
    assert!(
        took < Duration::from_millis(2000),
        "failed after {took:?}, not within 1 s + 1 s"
    );
    let started = Instant::now();
    let ready = http.get(s.url("/readyz")).send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "/readyz took {:?}",
        started.elapsed()
    );
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "unavailable", "{body}");
    eprintln!("send failed after {took:?}; /readyz said 503");

    proxy.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = alice
            .call(json!({"type":"send","thread_id":tid,"body":"during","client_id":"c-during"}))
            .await;
        if r["type"] == "ack" {
            break;
        }
        assert!(Instant::now() < deadline, "sends never recovered: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    // The retry with the same client_id stored the message once, whatever the first attempt
    // did once the database answered again.
    let (_, h) = s
        .http("alice")
        .get(&format!("/threads/{tid}/messages"))
        .await;
    let bodies: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["before", "during"]);
}

/// A write that has committed is acknowledged even when reading it back for the reply fails:
/// with the `messages` table renamed away, creating a group (which does not touch it) commits
/// and every read of a thread's view (which does) fails. The caller must not be told it
/// failed, or it would create the group a second time.
#[tokio::test]
async fn a_committed_group_is_acknowledged_when_reading_it_back_fails() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let dir = TempDir::new();
    let url = fresh_database(Backend::Postgres, &dir.0).await;
    let s = Server::spawn(dir, &url, &[]).await;
    let alice = s.http("alice");
    let mut bob = s.ws("bob").await;
    let mut db = AsyncPgConnection::establish(&url).await.unwrap();
    db.batch_execute("ALTER TABLE messages RENAME TO messages_away")
        .await
        .unwrap();
    let (st, t) = alice
        .post(
            "/threads",
            json!({"kind":"group","title":"after commit","members":["bob","carol"]}),
        )
        .await;
    // A title change whose read-back fails the same way: the reply still has every member.
    let (st2, t2) = alice
        .patch(
            &format!("/threads/{}", t["id"].as_str().unwrap_or("none")),
            json!({"title":"renamed after commit"}),
        )
        .await;
    db.batch_execute("ALTER TABLE messages_away RENAME TO messages")
        .await
        .unwrap();
    assert_eq!(st, 201, "{t}");
    assert_eq!(st2, 200, "{t2}");
    assert_eq!(t2["title"], "renamed after commit");
    assert_eq!(t2["members"].as_array().unwrap().len(), 3, "{t2}");
    // The members were still told, from the row and the members alone.
    let created = bob.event("thread").await;
    assert_eq!(created["event"], "created", "{created}");
    assert_eq!(created["thread"]["id"], t["id"]);
    assert_eq!(created["thread"]["members"].as_array().unwrap().len(), 3);
    let updated = bob.event("thread").await;
    assert_eq!(updated["event"], "updated", "{updated}");
    assert_eq!(updated["thread"]["title"], "renamed after commit");
    let mut members: Vec<&str> = t["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["alice", "bob", "carol"], "{t}");
    assert!(t["last_message"].is_null(), "{t}");
    assert!(
        s.log().contains("committed, but reading it back failed"),
        "the fallback did not run, so the test did not fail the read:\n{}",
        s.log()
    );
    // Stored once, and whole.
    let (st, l) = alice.get("/threads").await;
    assert_eq!(st, 200, "{l}");
    let threads = l["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{l}");
    assert_eq!(threads[0]["id"], t["id"]);
    assert_eq!(threads[0]["members"].as_array().unwrap().len(), 3, "{l}");
}
