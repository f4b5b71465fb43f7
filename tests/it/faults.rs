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
