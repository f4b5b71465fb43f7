//! `GET /api/v1/events`: a stream is a session like a socket. Real HTTP clients over real
//! sockets: the same events in the same order as a WebSocket, auth before the stream, the
//! heartbeat comment, the session cap across transports, the last `close` event (4009, 4003,
//! 4001, 1001), a slow reader cut off with memory bounded, and streams across two nodes.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::both;
use crate::harness::{Block, Cluster, Ended, Server, Sse, metric, token_with};

const API_KEY: &str = "host-api-key-for-tests-0123456789";

/// (type, seq) of a frame, for comparing what two sessions saw.
fn shape(kind: &str, v: &Value) -> (String, Value) {
    let seq = v["message"]["seq"].clone();
    (kind.to_string(), seq)
}

async fn disconnect(s: &Server, user: &str) -> u16 {
    reqwest::Client::new()
        .post(s.url("/api/v1/server/disconnect"))
        .bearer_auth(API_KEY)
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

both! {
    async fn a_stream_gets_hello_then_what_a_socket_gets_in_the_same_order(b) {
        let s = Server::start(b).await;
        let mut sse = s.sse("alice").await;
        assert_eq!(sse.hello["user_id"], "alice");
        assert_eq!(sse.hello["protocol"], 1);
        assert!(sse.hello["session_id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(sse.header("content-type").as_deref(), Some("text/event-stream"));
        assert_eq!(sse.header("x-accel-buffering").as_deref(), Some("no"));
        let mut ws = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let bob_http = s.http("bob");
        let tid = bob_http.group("g", &["alice"]).await;
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(bob.say(&tid, &format!("m{i}")).await["id"].as_str().unwrap().to_string());
        }
        let (st, _) = bob_http.patch(&format!("/messages/{}", ids[1]), json!({"body":"edited"})).await;
        assert_eq!(st, 200);
        bob.ok(json!({"type":"read","thread_id":tid,"seq":3})).await;
        bob.send(json!({"type":"typing","thread_id":tid,"is_typing":true})).await;
        let want = ["thread", "message", "message", "message", "message_updated", "read", "typing"];
        let mut from_ws = Vec::new();
        let mut from_sse = Vec::new();
        for _ in want {
            let f = ws.next().await;
            from_ws.push(shape(f["type"].as_str().unwrap(), &f));
            let (kind, data) = sse.next().await;
            assert_eq!(data["type"], kind.as_str(), "the event name is the frame type");
            from_sse.push(shape(&kind, &data));
        }
        let kinds: Vec<&str> = from_sse.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, want);
        assert_eq!(from_sse, from_ws, "a stream sees what a socket sees, in the same order");
    }

    async fn a_stream_is_refused_before_it_starts_like_a_socket(b) {
        let s = Server::start_with(b, &[("ALLOWED_ORIGINS", "https://app.example.com")]).await;
        for path in [
            "/api/v1/events".to_string(),
            "/api/v1/events?token=garbage".to_string(),
            format!("/api/v1/events?token={}", token_with("alice", -60, &[])),
        ] {
            let (status, body) = s.sse_raw(&path).await.err().expect("refused");
            assert_eq!(status, 401, "{path}");
            assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
        }
        let http = reqwest::Client::new();
        let token = s.token("alice");
        let evil = http
            .get(s.url(&format!("/api/v1/events?token={token}")))
            .header("Origin", "https://evil.example.com");
        let (status, body) = Sse::open(evil).await.err().expect("refused");
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
        // The Authorization header works as well as ?token=, from an allowed origin.
        let ok = http
            .get(s.url("/api/v1/events"))
            .bearer_auth(&token)
            .header("Origin", "https://app.example.com");
        let mut sse = Sse::open(ok).await.expect("accepted");
        assert_eq!(sse.next().await.0, "hello");
    }

    async fn a_stream_gets_a_comment_every_heartbeat(b) {
        let s = Server::start_with(b, &[("HEARTBEAT_S", "1")]).await;
        let mut sse = s.sse("alice").await;
        for _ in 0..3 {
            match sse.block(Duration::from_millis(1800)).await {
                Some(Block::Comment) => {}
                other => panic!("expected a heartbeat comment within 1.8 s, got {other:?}"),
            }
        }
        // The comments keep the stream a session: it is still open and gets events.
        let bob = s.http("bob");
        let tid = bob.direct("alice").await;
        assert_eq!(sse.event("thread").await["thread"]["id"], tid.as_str());
    }

    async fn the_eleventh_session_closes_the_oldest_whichever_transport(b) {
        let s = Server::start(b).await;
        let mut streams = Vec::new();
        let mut sockets = Vec::new();
        for i in 0..10 {
            if i % 2 == 0 {
                streams.push(s.sse("alice").await);
            } else {
                sockets.push(s.ws("alice").await);
            }
        }
        // The 11th (a socket) replaces the oldest, a stream.
        let _eleventh = s.ws("alice").await;
        assert_eq!(streams[0].closed(Duration::from_secs(5)).await, Some(4009));
        // The 12th (a stream) replaces the next oldest, a socket.
        let _twelfth = s.sse("alice").await;
        assert_eq!(sockets[0].closed(Duration::from_secs(5)).await, Ended::Code(4009));
        // The others are untouched and still get events.
        let tid = s.http("bob").direct("alice").await;
        assert_eq!(streams[1].event("thread").await["thread"]["id"], tid.as_str());
        assert_eq!(sockets[1].event("thread").await["thread"]["id"], tid.as_str());
        let m = s.metrics().await;
        assert_eq!(metric(&m, r#"switchboard_connections{transport="sse"}"#), 5.0, "{m}");
        assert_eq!(metric(&m, r#"switchboard_connections{transport="ws"}"#), 5.0, "{m}");
    }

    async fn revoking_access_ends_streams_and_sockets_with_4003(b) {
        let s = Server::start_with(b, &[("SERVER_API_KEY", API_KEY)]).await;
        let mut sse = s.sse("alice").await;
        let mut ws = s.ws("alice").await;
        let mut bob = s.sse("bob").await;
        // Only the key opens the server API: not a user token, not nothing.
        let user = reqwest::Client::new()
            .post(s.url("/api/v1/server/disconnect"))
            .bearer_auth(s.token("alice"))
            .json(&json!({"user_id":"alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(user.status().as_u16(), 401);
        assert_eq!(disconnect(&s, "alice").await, 204);
        assert_eq!(sse.closed(Duration::from_secs(5)).await, Some(4003));
        assert_eq!(ws.closed(Duration::from_secs(5)).await, Ended::Code(4003));
        // bob's stream is not touched.
        let tid = s.http("carol").direct("bob").await;
        assert_eq!(bob.event("thread").await["thread"]["id"], tid.as_str());
    }

    async fn a_stream_ends_with_4001_when_its_token_expires(b) {
        let s = Server::start(b).await;
        let path = format!("/api/v1/events?token={}", token_with("alice", 5, &[]));
        let mut sse = s.sse_raw(&path).await.expect("accepted");
        assert_eq!(sse.next().await.0, "hello");
        // Open until the expiry...
        assert!(sse.block(Duration::from_millis(1500)).await.is_none());
        assert!(!sse.ended(), "closed before its token expired");
        // ...then a last close event.
        assert_eq!(sse.closed(Duration::from_secs(8)).await, Some(4001));
    }

    async fn sigterm_ends_streams_with_1001(b) {
        let mut s = Server::start(b).await;
        let mut sse = s.sse("alice").await;
        let mut ws = s.ws("bob").await;
        s.signal("TERM");
        assert_eq!(sse.closed(Duration::from_secs(5)).await, Some(1001));
        assert_eq!(ws.closed(Duration::from_secs(5)).await, Ended::Code(1001));
        let exit = s.wait_exit(Duration::from_secs(6)).expect("exited within the grace period");
        assert!(exit.success(), "{exit:?}");
    }

    async fn a_stream_that_is_not_read_is_cut_off_and_memory_stays_bounded(b) {
        let s = Server::start_with(b, &[
            ("OUTBOX_FRAMES", "32"),
            ("MAX_BODY_CHARS", "60000"),
            ("RATE_PER_S", "100000"),
            ("RATE_BURST", "100000"),
        ]).await;
        let tid = s.http("bob").group("g", &["alice"]).await;
        // A client that asks for the stream and never reads a byte.
        let mut raw = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
        let req = format!(
            "GET /api/v1/events?token={} HTTP/1.1\r\nHost: {}\r\n\r\n",
            s.token("alice"),
            s.addr
        );
        raw.write_all(req.as_bytes()).await.unwrap();
        let mut waited = 0;
        while metric(&s.metrics().await, r#"switchboard_connections{transport="sse"}"#) < 1.0 {
            waited += 1;
            assert!(waited < 100, "the stream never attached");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = s.rss();
        let body = "x".repeat(60_000);
        let mut bob = s.ws("bob").await;
        // 30 MB of events for a reader that takes none of them.
        for _ in 0..500 {
            bob.say(&tid, &body).await;
        }
        let mut gone = false;
        for _ in 0..100 {
            let m = s.metrics().await;
            if metric(&m, r#"switchboard_connections{transport="sse"}"#) == 0.0 {
                assert!(
                    metric(&m, r#"switchboard_events_dropped_total{reason="slow_session"}"#) >= 1.0,
                    "{m}"
                );
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(gone, "the slow stream was never cut off");
        let grew = s.rss().saturating_sub(before);
        eprintln!("RSS grew by {} KiB while 30 MB went to a reader that read nothing", grew / 1024);
        assert!(grew < 64 << 20, "RSS grew by {grew} bytes");
        drop(raw);
    }
}

#[tokio::test]
async fn streams_work_across_nodes_and_revocation_reaches_every_node() {
    let c = Cluster::start(2, &[("SERVER_API_KEY", API_KEY)]).await;
    let mut alice = c.node(0).sse("alice").await;
    let mut bob = c.node(1).ws("bob").await;
    let tid = c.node(1).http("bob").direct("alice").await;
    assert_eq!(alice.event("thread").await["thread"]["id"], tid.as_str());
    bob.say(&tid, "over the relay").await;
    assert_eq!(
        alice.event("message").await["message"]["body"],
        "over the relay"
    );
    // The stream counts toward the cluster-wide cap like a socket: alice is online for bob.
    let p = bob
        .ok(json!({"type":"watch_presence","user_ids":["alice"]}))
        .await;
    assert_eq!(p["presence"][0]["online"], true);
    // Revoked through node1, closed on node0.
    assert_eq!(disconnect(c.node(1), "alice").await, 204);
    assert_eq!(alice.closed(Duration::from_secs(5)).await, Some(4003));
    let off = bob.presence_of("alice").await;
    assert_eq!(off["online"], false);
    let m0 = c.node(0).metrics().await;
    assert!(
        metric(&m0, "switchboard_relay_received_total") >= 2.0,
        "{m0}"
    );
}

#[tokio::test]
async fn through_nginx_an_event_arrives_at_once_and_no_token_is_logged() {
    let s = Server::start(crate::harness::Backend::Sqlite).await;
    let nginx = crate::harness::Nginx::start(&[&s.addr]).await;
    let token = s.token("alice");
    let req = reqwest::Client::new().get(nginx.url(&format!("/api/v1/events?token={token}")));
    let mut sse = Sse::open(req).await.expect("stream through nginx");
    assert_eq!(sse.next().await.0, "hello");
    let bob = s.http("bob");
    let tid = bob.direct("alice").await;
    assert_eq!(sse.event("thread").await["thread"]["id"], tid.as_str());
    // One event, timed from the moment the send is acknowledged: nginx must not hold it.
    let (st, _) = bob
        .post(
            &format!("/threads/{tid}/messages"),
            json!({"body":"through nginx"}),
        )
        .await;
    assert_eq!(st, 200);
    let sent = std::time::Instant::now();
    let m = tokio::time::timeout(Duration::from_secs(1), sse.event("message"))
        .await
        .expect("the event was held back by the proxy");
    assert_eq!(m["message"]["body"], "through nginx");
    eprintln!(
        "SSE event through nginx {:?} after the send's reply",
        sent.elapsed()
    );
    // A WebSocket through the same proxy.
    let carol_token = s.token("carol");
    let url = format!("ws://{}/ws?token={carol_token}", nginx.addr);
    let mut ws = crate::harness::Client::connect(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap(),
    )
    .await
    .expect("ws through nginx");
    assert_eq!(ws.next().await["type"], "hello");
    drop(sse);
    ws.close().await;
    // nginx logs a request when it ends.
    let mut log = String::new();
    for _ in 0..100 {
        log = nginx.access_log();
        if log.contains("/api/v1/events") && log.contains("/ws") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        log.contains("/api/v1/events") && log.contains("/ws"),
        "{log}"
    );
    assert!(
        !log.contains(&token) && !log.contains(&carol_token) && !log.contains("token="),
        "a token reached the access log:\n{log}"
    );
    // With the gateway gone, nginx fails upstream: its error log must not hold the token.
    drop(s);
    let r = reqwest::Client::new()
        .get(nginx.url(&format!("/api/v1/events?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 502);
    let errors = nginx.error_logs();
    assert!(
        !errors.contains(&token),
        "a token reached the error log:\n{errors}"
    );
}
