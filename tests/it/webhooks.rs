//! Webhooks to a real HTTP receiver: signed, with who to push to, at least once through a
//! failing receiver and a restart, in seq order per thread, once across two nodes sharing the
//! outbox, and dropped (counted) past `WEBHOOK_MAX_AGE_S`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::{
    API_KEY, Backend, Cluster, Delivery, Receiver, Server, TempDir, command, free_port,
    fresh_database, metric,
};

const SECRET: &str = "webhook-secret-for-the-tests-0123456789";

fn env<'a>(r: &'a Receiver, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("WEBHOOK_URL", r.url.as_str()),
        ("WEBHOOK_SECRET", SECRET),
        ("SERVER_API_KEY", API_KEY),
    ];
    v.extend_from_slice(extra);
    v
}

/// Checks `Switchboard-Signature` as a receiver would: HMAC-SHA256 of "<t>.<body>".
fn verify(d: &Delivery) {
    let (t, v1) = d
        .signature
        .split_once(",v1=")
        .unwrap_or_else(|| panic!("signature shape: {}", d.signature));
    let t = t.strip_prefix("t=").expect("t=");
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {t} is not now");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag: Vec<u8> = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
        .collect();
    assert!(
        aws_lc_rs::hmac::verify(&key, format!("{t}.{}", d.body).as_bytes(), &tag).is_ok(),
        "bad signature on {}",
        d.body
    );
    assert_eq!(
        d.delivery_id, d.json["id"],
        "the header names the body's id"
    );
}

both! {
    async fn events_are_signed_and_message_created_says_who_to_push(b) {
        let r = Receiver::start(0).await;
        let s = Server::start_with(b, &env(&r, &[])).await;
        let mut alice = s.ws("alice").await;
        alice.ok(json!({"type":"send","to":"bob","body":"are you there?"})).await;
        let created = r.wait_for("message.created", 1, Duration::from_secs(10)).await;
        let d = &created[0];
        verify(d);
        let data = &d.json["data"];
        assert_eq!(data["message"]["body"], "are you there?");
        assert_eq!(data["message"]["seq"], 1);
        let mut members: Vec<&str> = data["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        members.sort_unstable();
        assert_eq!(members, ["alice", "bob"]);
        assert_eq!(data["offline_user_ids"], json!(["bob"]), "bob has no session: push to him");
        assert!(d.json["created_at"].as_str().unwrap().ends_with('Z'));
        // The thread's creation came with it.
        let t = r.wait_for("thread.created", 1, Duration::from_secs(5)).await;
        assert_eq!(t[0].json["data"]["thread"]["id"], data["message"]["thread_id"]);
        // bob connects: nobody to push to.
        let _bob = s.ws("bob").await;
        alice.ok(json!({"type":"send","to":"bob","body":"hi bob"})).await;
        let created = r.wait_for("message.created", 2, Duration::from_secs(10)).await;
        assert_eq!(created[1].json["data"]["offline_user_ids"], json!([]));
        // Notifications say whether the user was online; presence changes are sent too.
        let (st, _) = s.host(API_KEY).post("/notifications", json!({"user_ids":["bob","carol"],"title":"hello"})).await;
        assert_eq!(st, 201);
        let n = r.wait_for("notification.created", 2, Duration::from_secs(5)).await;
        let online: HashMap<String, bool> = n
            .iter()
            .map(|d| (d.json["data"]["user_id"].as_str().unwrap().to_string(), d.json["data"]["online"].as_bool().unwrap()))
            .collect();
        assert_eq!(online, HashMap::from([("bob".to_string(), true), ("carol".to_string(), false)]));
        let p = r.wait_for("presence.changed", 2, Duration::from_secs(5)).await;
        assert!(p.iter().any(|d| d.json["data"]["user_id"] == "bob" && d.json["data"]["online"] == true));
        for d in r.all() {
            verify(&d);
        }
        // Every delivery exactly once here (nothing failed).
        let all = r.all();
        let mut ids: Vec<&str> = all.iter().map(|d| d.delivery_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }

    async fn a_failing_receiver_gets_everything_later_in_seq_order(b) {
        // The first three tries fail (the first message, three times: 1 s, 2 s backoff).
        let r = Receiver::start(3).await;
        let s = Server::start_with(b, &env(&r, &[("WEBHOOK_EVENTS", "message.created")])).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        for i in 0..5 {
            alice.say(&tid, &format!("m{i}")).await;
        }
        let got = r.wait_for("message.created", 5, Duration::from_secs(30)).await;
        let seqs: Vec<i64> = got.iter().map(|d| d.json["data"]["message"]["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "in seq order, each once");
        let failed: Vec<i64> = r
            .all()
            .iter()
            .filter(|d| !d.accepted)
            .map(|d| d.json["data"]["message"]["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(failed, [1, 1, 1], "later messages waited for the first");
        // The retries backed off: 1 s, then 2 s.
        let all = r.all();
        let gap = |i: usize| all[i + 1].at.duration_since(all[i].at);
        assert!(gap(0) >= Duration::from_millis(900), "{:?}", gap(0));
        assert!(gap(1) >= Duration::from_millis(1900), "{:?}", gap(1));
        let m = s.metrics().await;
        assert_eq!(metric(&m, r#"switchboard_webhooks_total{outcome="retried"}"#), 3.0, "{m}");
        assert_eq!(metric(&m, r#"switchboard_webhooks_total{outcome="sent"}"#), 5.0);
        assert!(s.log().matches("is failing; retrying").count() == 1, "one line per outage");
    }

    async fn a_slow_receiver_never_slows_sends(b) {
        let r = Receiver::start(0).await;
        r.set_delay(Duration::from_secs(3));
        let s = Server::start_with(b, &env(&r, &[("WEBHOOK_EVENTS", "message.created")])).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        // In one thread the deliveries go one at a time, 3 s each: a minute of receiver time.
        let started = std::time::Instant::now();
        for i in 0..20 {
            alice.say(&tid, &format!("m{i}")).await;
        }
        let took = started.elapsed();
        eprintln!("20 acked sends in {took:?} beside a receiver answering in 3 s");
        assert!(took < Duration::from_secs(10), "sends waited for the receiver: {took:?}");
        // And the deliveries go on, in order.
        let got = r.wait_for("message.created", 2, Duration::from_secs(15)).await;
        assert_eq!(got[0].json["data"]["message"]["seq"], 1);
        assert_eq!(got[1].json["data"]["message"]["seq"], 2);
    }

    async fn deliveries_past_the_max_age_are_dropped_and_counted(b) {
        let r = Receiver::start(usize::MAX).await;
        let s = Server::start_with(b, &env(&r, &[("WEBHOOK_EVENTS", "thread.created"), ("WEBHOOK_MAX_AGE_S", "2")])).await;
        s.http("alice").direct("bob").await;
        let mut dropped = 0.0;
        // Dropped at the first try past the age, or by the sweep (every 10 s).
        for _ in 0..250 {
            dropped = metric(&s.metrics().await, r#"switchboard_webhooks_total{outcome="dropped"}"#);
            if dropped > 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(dropped, 1.0);
        let tries = r.all().len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(r.all().len(), tries, "no more tries after the drop");
        assert!(s.log().contains("dropped"), "{}", s.log());
    }
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let dir = TempDir::new();
    let db = fresh_database(Backend::Postgres, &dir.0).await;
    let env = [
        ("WEBHOOK_URL", url.as_str()),
        ("WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_EVENTS", "message.created"),
    ];
    let mut first = Server::spawn(TempDir::new(), &db, &env).await;
    let mut alice = first.ws("alice").await;
    let tid = first.http("alice").direct("bob").await;
    for i in 0..3 {
        alice.say(&tid, &format!("m{i}")).await;
    }
    // Nobody listens yet: the deliveries wait in the outbox across the restart.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.signal("TERM");
    first.wait_exit(Duration::from_secs(10)).expect("exited");
    let r = Receiver::on_port(port, 0).await;
    let _second = Server::spawn(TempDir::new(), &db, &env).await;
    let got = r
        .wait_for("message.created", 3, Duration::from_secs(20))
        .await;
    let seqs: Vec<i64> = got
        .iter()
        .map(|d| d.json["data"]["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[tokio::test]
async fn two_nodes_share_the_outbox_and_send_each_delivery_once() {
    let r = Receiver::start(0).await;
    let env = [
        ("WEBHOOK_URL", r.url.as_str()),
        ("WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_EVENTS", "message.created"),
        ("RATE_PER_S", "1000"),
        ("RATE_BURST", "1000"),
    ];
    let c = Cluster::start(2, &env).await;
    let mut a = c.node(0).ws("alice").await;
    let mut b = c.node(1).ws("bob").await;
    let mut threads = Vec::new();
    for i in 0..4 {
        threads.push(
            c.node(0)
                .http("alice")
                .group(&format!("g{i}"), &["bob"])
                .await,
        );
    }
    for round in 0..10 {
        for t in &threads {
            a.say(t, &format!("a{round}")).await;
            b.say(t, &format!("b{round}")).await;
        }
    }
    let got = r
        .wait_for("message.created", 80, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = r.accepted("message.created");
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for d in &all {
        *per_id.entry(d.delivery_id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 80, "every message once");
    assert!(
        per_id.values().all(|n| *n == 1),
        "a delivery sent by both nodes"
    );
    // Per thread, in seq order.
    for t in &threads {
        let seqs: Vec<i64> = got
            .iter()
            .chain(all.iter())
            .filter(|d| d.json["data"]["message"]["thread_id"] == t.as_str())
            .map(|d| d.json["data"]["message"]["seq"].as_i64().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
        let order: Vec<i64> = all
            .iter()
            .filter(|d| d.json["data"]["message"]["thread_id"] == t.as_str())
            .map(|d| d.json["data"]["message"]["seq"].as_i64().unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "thread {t}: {order:?}"
        );
    }
    let mut sent = 0.0;
    for n in 0..2 {
        let m = c.node(n).metrics().await;
        sent += metric(&m, r#"switchboard_webhooks_total{outcome="sent"}"#);
    }
    assert_eq!(sent, 80.0);
}

#[test]
fn webhook_settings_are_checked_at_start() {
    let dir = TempDir::new();
    for (vars, bad) in [
        (
            vec![("WEBHOOK_URL", "http://127.0.0.1:9/hooks")],
            "WEBHOOK_SECRET",
        ),
        (
            vec![
                ("WEBHOOK_URL", "http://127.0.0.1:9/hooks"),
                ("WEBHOOK_SECRET", "short"),
            ],
            "WEBHOOK_SECRET",
        ),
        (
            vec![("WEBHOOK_URL", "ftp://x"), ("WEBHOOK_SECRET", SECRET)],
            "WEBHOOK_URL",
        ),
        (
            vec![
                ("WEBHOOK_URL", "http://127.0.0.1:9/h"),
                ("WEBHOOK_SECRET", SECRET),
                ("WEBHOOK_EVENTS", "message.sent"),
            ],
            "WEBHOOK_EVENTS",
        ),
        (vec![("WEBHOOK_SECRET", SECRET)], "WEBHOOK_URL"),
    ] {
        let mut cmd = command(&dir.0);
        for (k, v) in &vars {
            cmd.env(k, v);
        }
        let out = cmd.arg("check").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{vars:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad), "{vars:?}: {err}");
    }
}
