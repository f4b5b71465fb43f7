//! `GET /metrics`: every family of the contract, behind `METRICS_TOKEN` when set, and counters
//! that move by exactly what happened.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::{Server, metric};

const FAMILIES: &[(&str, &str)] = &[
    ("switchboard_connections", "gauge"),
    ("switchboard_messages_stored_total", "counter"),
    ("switchboard_events_delivered_total", "counter"),
    ("switchboard_events_dropped_total", "counter"),
    ("switchboard_send_ack_seconds", "histogram"),
    ("switchboard_db_query_seconds", "histogram"),
    ("switchboard_relay_published_total", "counter"),
    ("switchboard_relay_received_total", "counter"),
    ("switchboard_redis_reconnects_total", "counter"),
    ("switchboard_rate_limited_total", "counter"),
    ("switchboard_notifications_total", "counter"),
    ("switchboard_webhooks_total", "counter"),
];

#[tokio::test]
async fn every_family_is_exported_behind_the_token() {
    let s = Server::start_with(
        crate::harness::Backend::Sqlite,
        &[("METRICS_TOKEN", "scrape-token")],
    )
    .await;
    let http = reqwest::Client::new();
    let url = s.url("/metrics");
    for auth in [None, Some("wrong")] {
        let mut req = http.get(&url);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    let r = http
        .get(&url)
        .bearer_auth("scrape-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for (family, kind) in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}")),
            "{family} {kind}:\n{text}"
        );
    }
    for sample in [
        r#"switchboard_connections{transport="ws"}"#,
        r#"switchboard_connections{transport="sse"}"#,
        r#"switchboard_events_dropped_total{reason="slow_session"}"#,
        r#"switchboard_events_dropped_total{reason="shed"}"#,
        r#"switchboard_notifications_total{outcome="pushed"}"#,
        r#"switchboard_notifications_total{outcome="muted"}"#,
        r#"switchboard_webhooks_total{outcome="sent"}"#,
        r#"switchboard_webhooks_total{outcome="retried"}"#,
        r#"switchboard_webhooks_total{outcome="dropped"}"#,
    ] {
        assert!(text.contains(sample), "{sample} missing:\n{text}");
    }
    assert!(
        text.contains("switchboard_db_query_seconds_bucket{le="),
        "{text}"
    );
    // The pool opened the connections it holds (at least the one the start-up check used),
    // and holds no more than its size (4 on SQLite).
    let opened = metric(&text, "switchboard_db_connections_opened_total");
    let held = metric(&text, "switchboard_db_pool_connections");
    assert!((1.0..=4.0).contains(&held), "{held}\n{text}");
    assert!(opened >= held, "{opened} < {held}");
    if cfg!(feature = "jemalloc") {
        // The allocator's account: live bytes cannot exceed the active pages, nor those the
        // resident ones, and a running gateway holds at least a MiB.
        let [allocated, active, resident] = ["allocated", "active", "resident"]
            .map(|k| metric(&text, &format!("switchboard_memory_{k}_bytes")));
        assert!(allocated > 1_048_576.0, "{allocated}\n{text}");
        assert!(
            allocated <= active && active <= resident,
            "{allocated} {active} {resident}"
        );
    }
}

both! {
    async fn counters_move_by_what_happened(b) {
        // A short heartbeat: a stream whose client went away is noticed at the next comment.
        let s = Server::start_with(
            b,
            &[("RATE_PER_S", "1"), ("RATE_BURST", "3"), ("HEARTBEAT_S", "1")],
        )
        .await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let mut alice_sse = s.sse("alice").await;
        // Let the online transitions finish, so only what follows is counted.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let m0 = s.metrics().await;
        assert_eq!(metric(&m0, r#"switchboard_connections{transport="ws"}"#), 2.0, "{m0}");
        assert_eq!(metric(&m0, r#"switchboard_connections{transport="sse"}"#), 1.0, "{m0}");
        for i in 0..3 {
            alice.ok(json!({"type":"send","to":"bob","body":format!("m{i}")})).await;
            assert_eq!(bob.event("message").await["message"]["seq"], i + 1);
            assert_eq!(alice_sse.event("message").await["message"]["seq"], i + 1);
        }
        let refused = alice.call(json!({"type":"send","to":"bob","body":"m3"})).await;
        assert_eq!(refused["code"], "rate_limited", "{refused}");
        let m1 = s.metrics().await;
        let moved = |name: &str| metric(&m1, name) - metric(&m0, name);
        assert_eq!(moved("switchboard_messages_stored_total"), 3.0);
        assert_eq!(moved("switchboard_send_ack_seconds_count"), 3.0);
        assert_eq!(moved("switchboard_rate_limited_total"), 1.0);
        // The `thread` event (one envelope for both members) and 3 messages.
        assert_eq!(moved("switchboard_relay_published_total"), 4.0);
        // `thread` to alice's socket, alice's stream and bob; each message to bob and to
        // alice's stream (not to the sending socket).
        assert_eq!(moved("switchboard_events_delivered_total"), 9.0);
        assert!(moved("switchboard_db_query_seconds_count") >= 4.0, "{m1}");
        drop(alice_sse);
        bob.close().await;
        let mut left = 0.0;
        for _ in 0..100 {
            let m = s.metrics().await;
            left = metric(&m, r#"switchboard_connections{transport="ws"}"#)
                + metric(&m, r#"switchboard_connections{transport="sse"}"#);
            if left == 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(left, 1.0, "closed sessions still counted");
    }
}
