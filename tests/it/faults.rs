//! Database faults: a Postgres that stops answering (a TCP proxy the test pauses) fails
//! requests with `unavailable` within `DB_TIMEOUT_MS` plus a second, turns `/readyz` 503
//! within 2 s, and both recover when it answers again.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Backend, Client, Ended, Proxy, Server, TempDir, fresh_database};

/// A SQLite file another process holds locked (a backup, an operator's `sqlite3` shell in a
/// transaction) makes sends fail with `unavailable` within `DB_TIMEOUT_MS` and a second, not
/// `internal`; once the lock is let go, the same send is stored.
#[tokio::test]
async fn a_sqlite_file_locked_by_another_process_answers_unavailable_and_recovers() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let dir = TempDir::new();
    let url = fresh_database(Backend::Sqlite, &dir.0).await;
    let path = url.trim_start_matches("sqlite://").to_string();
    let s = Server::spawn(dir, &url, &[("DB_TIMEOUT_MS", "1000")]).await;
    let mut alice = s.ws("alice").await;
    let tid = s.http("alice").direct("bob").await;
    alice.say(&tid, "before").await;

    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut c = SqliteConnection::establish(&path).unwrap();
        diesel::sql_query("BEGIN EXCLUSIVE")
            .execute(&mut c)
            .unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(Duration::from_secs(30));
        diesel::sql_query("COMMIT").execute(&mut c).unwrap();
    });
    locked_rx.recv().unwrap();
    let frame = json!({"type":"send","thread_id":tid,"body":"during","client_id":"c-locked"});
    let started = Instant::now();
    let r = alice.call(frame.clone()).await;
    let took = started.elapsed();
    assert_eq!(r["code"], "unavailable", "{r}");
    assert!(
        took < Duration::from_millis(2000),
        "failed after {took:?}, not within 1 s + 1 s"
    );
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let r = alice.call(frame).await;
    assert_eq!(r["type"], "ack", "{r}");
    assert_eq!(r["message"]["body"], "during", "{r}");
}

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

/// A Postgres node where alice and bob share a direct thread holding one message of alice's,
/// and a trigger that renames `members` away in the transaction of any update of `messages`:
/// the member read right after an edit or delete has committed fails.
struct HiddenMembers {
    s: Server,
    http: crate::harness::Http,
    tid: String,
    /// The message's id.
    id: String,
    alice: crate::harness::Client,
    bob: crate::harness::Client,
    /// A connection of the test's own, to restore the table.
    db: diesel_async::AsyncPgConnection,
}

async fn members_hidden_on_update(body: &str) -> HiddenMembers {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let dir = TempDir::new();
    let url = fresh_database(Backend::Postgres, &dir.0).await;
    let s = Server::spawn(dir, &url, &[]).await;
    let http = s.http("alice");
    let tid = http.direct("bob").await;
    let mut alice = s.ws("alice").await;
    let mut bob = s.ws("bob").await;
    let m = alice
        .ok(json!({"type":"send","thread_id":tid,"body":body}))
        .await["message"]
        .clone();
    bob.event("message").await;
    let id = m["id"].as_str().unwrap().to_string();
    let mut db = AsyncPgConnection::establish(&url).await.unwrap();
    db.batch_execute(
        "CREATE FUNCTION hide_members() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN ALTER TABLE members RENAME TO members_away; RETURN NULL; END $$;
         CREATE TRIGGER hide_members AFTER UPDATE ON messages
         FOR EACH STATEMENT EXECUTE FUNCTION hide_members();",
    )
    .await
    .unwrap();
    HiddenMembers {
        s,
        http,
        tid,
        id,
        alice,
        bob,
        db,
    }
}

/// An edit or delete that has committed reaches the members even when reading who they are
/// fails at first: a trigger renames `members` away in the edit's own transaction, so the
/// read right after the commit fails; the gateway retries it in the background, and once the
/// table is back the event goes out. The caller is told it worked both times.
#[tokio::test]
async fn a_committed_edit_is_broadcast_once_its_members_can_be_read_again() {
    use diesel_async::SimpleAsyncConnection;
    let HiddenMembers {
        s,
        http,
        tid,
        id,
        mut alice,
        mut bob,
        mut db,
    } = members_hidden_on_update("tpyo").await;
    let restore = "DROP TRIGGER hide_members ON messages;
                   ALTER TABLE members_away RENAME TO members;
                   CREATE TRIGGER hide_members AFTER UPDATE ON messages
                   FOR EACH STATEMENT EXECUTE FUNCTION hide_members();";

    let (st, e) = http
        .patch(&format!("/messages/{id}"), json!({"body":"typo"}))
        .await;
    assert_eq!(
        st, 200,
        "the edit committed, so it is the caller's success: {e}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let log = s
        .log_once(|l| l.contains("reading its members failed, retrying"))
        .await;
    assert!(
        log.contains("reading its members failed, retrying"),
        "the first read did not fail, so the test proves nothing:\n{log}"
    );
    db.batch_execute(restore).await.unwrap();
    let updated = bob.event("message_updated").await;
    assert_eq!(updated["message"]["body"], "typo", "{updated}");
    assert_eq!(
        alice.event("message_updated").await["message"],
        e["message"]
    );

    let (st, d) = http.delete(&format!("/messages/{id}")).await;
    assert_eq!(st, 200, "{d}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    db.batch_execute(restore).await.unwrap();
    let deleted = bob.event("message_deleted").await;
    assert_eq!(deleted["message"]["id"], id.as_str(), "{deleted}");
    db.batch_execute("DROP TRIGGER hide_members ON messages")
        .await
        .unwrap();
    let log = s
        .log_once(|l| l.matches("change broadcast on retry").count() >= 2)
        .await;
    assert_eq!(log.matches("change broadcast on retry").count(), 2, "{log}");
    // Stored once each: the edit and the delete are in history.
    let (st, h) = http.get(&format!("/threads/{tid}/messages")).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["messages"][0]["deleted"], true, "{h}");
}

/// A retried announcement that a later change has superseded is not sent: the first edit's
/// member read fails (the trigger hides `members` in its transaction) and is retried in the
/// background; a second edit lands before that retry and is announced at once. The retry then
/// finds the message changed since and sends nothing, so the members end on the second body
/// and never see the first one after it.
#[tokio::test]
async fn a_retried_edit_that_a_later_edit_superseded_is_not_sent() {
    use diesel_async::SimpleAsyncConnection;
    let HiddenMembers {
        s,
        http,
        id,
        alice: _alice,
        mut bob,
        mut db,
        ..
    } = members_hidden_on_update("zero").await;
    let first = std::time::Instant::now();
    let (st, e) = http
        .patch(&format!("/messages/{id}"), json!({"body":"one"}))
        .await;
    assert_eq!(st, 200, "{e}");
    db.batch_execute(
        "DROP TRIGGER hide_members ON messages; ALTER TABLE members_away RENAME TO members;",
    )
    .await
    .unwrap();
    let (st, e) = http
        .patch(&format!("/messages/{id}"), json!({"body":"two"}))
        .await;
    assert_eq!(st, 200, "{e}");
    // The first retry runs 250 ms after the first edit: the second must have been announced
    // by then for this test to show anything.
    assert!(
        first.elapsed() < Duration::from_millis(200),
        "the two edits took {:?}: too slow to get ahead of the retry",
        first.elapsed()
    );
    let updated = bob.event("message_updated").await;
    assert_eq!(updated["message"]["body"], "two", "{updated}");
    bob.no_event("message_updated", Duration::from_millis(1500))
        .await;
    assert!(
        s.log().contains("reading its members failed, retrying"),
        "the first read did not fail, so the test proves nothing:\n{}",
        s.log()
    );
    assert!(
        s.log().contains("change superseded before retry 1"),
        "{}",
        s.log()
    );
    assert!(
        !s.log().contains("change broadcast on retry"),
        "{}",
        s.log()
    );
}

/// A send begun before SIGTERM while the database has stopped answering still gets its reply
/// before the close frame: the drain waits for the send's store call (`DB_TIMEOUT_MS` and its
/// margin), past the 3-second floor of the close flush, and the reply says `unavailable`
/// rather than leaving the client to guess whether the message was stored.
#[tokio::test]
async fn a_send_stalled_on_the_database_is_answered_before_the_drain_closes_it() {
    let env = [("DB_TIMEOUT_MS", "4000"), ("SHUTDOWN_GRACE_S", "20")];
    let mut st = Stalled::send_then_term(&env).await;
    let reply = st.reply().await;
    let took = st.sent.elapsed();
    assert_eq!(reply["ref"], "stalled", "{reply}");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "unavailable", "{reply}");
    assert!(
        took > Duration::from_secs(3),
        "answered after {took:?}: the database was not stalled long enough to test the flush"
    );
    assert_eq!(
        st.alice.closed(Duration::from_secs(10)).await,
        Ended::Code(1001)
    );
    st.proxy.resume();
    assert!(
        st.s.wait_exit(Duration::from_secs(20))
            .is_some_and(|e| e.success()),
        "{}",
        st.s.log()
    );
}

/// A node with a direct thread between alice and bob holding one message, on Postgres behind
/// a proxy; then the proxy stalls, alice sends (`ref` "stalled"), and the node gets SIGTERM.
struct Stalled {
    s: Server,
    alice: Client,
    proxy: Proxy,
    tid: String,
    /// The database without the proxy.
    direct: String,
    /// When the stalled send went out.
    sent: Instant,
    /// When the node was signalled.
    signalled: Instant,
    _dir: TempDir,
}

impl Stalled {
    async fn send_then_term(env: &[(&str, &str)]) -> Stalled {
        let dir = TempDir::new();
        let direct = fresh_database(Backend::Postgres, &dir.0).await;
        let proxy = Proxy::start("127.0.0.1:5432").await;
        let url = direct.replacen(":5432/", &format!(":{}/", proxy.port), 1);
        let s = Server::spawn(TempDir::new(), &url, env).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        alice.say(&tid, "before").await;
        proxy.pause();
        let sent = Instant::now();
        alice
            .send(json!({"type":"send","ref":"stalled","thread_id":tid,"body":"during"}))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let signalled = Instant::now();
        s.signal("TERM");
        Stalled {
            s,
            alice,
            proxy,
            tid,
            direct,
            sent,
            signalled,
            _dir: dir,
        }
    }

    /// The first frame with a `ref`: events (the thread's `created`, the first message) may
    /// come first; the close may not.
    async fn reply(&mut self) -> serde_json::Value {
        loop {
            let frame = self
                .alice
                .read_frame(Duration::from_secs(20))
                .await
                .expect("the reply before the close frame");
            if frame.get("ref").is_some() {
                return frame;
            }
        }
    }
}

/// The default DB_TIMEOUT_MS (5 s) is longer than this grace leaves the sessions (1.5 s):
/// the drain ends the stalled send's store call itself, so the reply still comes before the
/// close frame and the process exits within the grace.
#[tokio::test]
async fn a_send_stalled_past_the_grace_is_answered_before_the_close_and_the_exit_keeps_the_grace() {
    let mut st = Stalled::send_then_term(&[("SHUTDOWN_GRACE_S", "4")]).await;
    let reply = st.reply().await;
    assert_eq!(reply["ref"], "stalled", "{reply}");
    assert_eq!(reply["code"], "unavailable", "{reply}");
    // The database answers again while the node finishes its shutdown: the stalled send's
    // transaction must roll back, not commit behind its `unavailable`.
    st.proxy.resume();
    assert_eq!(
        st.alice.closed(Duration::from_secs(10)).await,
        Ended::Code(1001)
    );
    let exit = st.s.wait_exit(Duration::from_secs(10));
    let took = st.signalled.elapsed();
    assert!(exit.is_some_and(|e| e.success()), "{}", st.s.log());
    assert!(
        took < Duration::from_millis(4500),
        "exited {took:?} after SIGTERM"
    );
    // Nothing of the stalled send was stored behind its `unavailable`.
    let s = Server::spawn(TempDir::new(), &st.direct, &[]).await;
    let (code, h) = s
        .http("alice")
        .get(&format!("/threads/{}/messages", st.tid))
        .await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["messages"].as_array().unwrap().len(), 1, "{h}");
    assert_eq!(h["messages"][0]["body"], "before", "{h}");
}

/// The adder's membership is checked in the add's own transaction, under the thread's lock:
/// carol passes the first check, then is removed (here, by another connection that holds
/// the thread's lock while her add waits for it). Her add must then be refused, not let a
/// non-member bring dave in.
#[tokio::test]
async fn a_member_removed_while_her_add_waits_cannot_add() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let dir = TempDir::new();
    let url = fresh_database(Backend::Postgres, &dir.0).await;
    let s = Server::spawn(dir, &url, &[]).await;
    let alice = s.http("alice");
    let tid = alice.group("race", &["bob", "carol"]).await;
    let mut db = AsyncPgConnection::establish(&url).await.unwrap();
    db.batch_execute("BEGIN").await.unwrap();
    db.batch_execute(&format!(
        "SELECT id FROM threads WHERE id = '{tid}' FOR UPDATE"
    ))
    .await
    .unwrap();
    let carol = s.http("carol");
    let path = format!("/threads/{tid}/members");
    let add = carol.post(&path, json!({"user_ids":["dave"]}));
    let mut probe = AsyncPgConnection::establish(&url).await.unwrap();
    let remove = async {
        // Carol's add is past its first membership check once it waits for the lock.
        let waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                       AND query LIKE 'UPDATE \"threads\"%'";
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            use diesel_async::RunQueryDsl;
            let n = diesel::sql_query(waiting)
                .execute(&mut probe)
                .await
                .unwrap();
            if n > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "carol's add never waited for the lock"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        db.batch_execute(&format!(
            "DELETE FROM members WHERE thread_id = '{tid}' AND user_id = 'carol'; COMMIT"
        ))
        .await
        .unwrap();
    };
    let ((st, body), ()) = tokio::join!(add, remove);
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    let (st, t) = alice.get(&format!("/threads/{tid}")).await;
    assert_eq!(st, 200, "{t}");
    let mut members: Vec<&str> = t["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["alice", "bob"], "{t}");
}
