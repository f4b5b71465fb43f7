//! Authentication before the upgrade, token expiry, origins, and the per-user limits:
//! send rate, sockets per user, and slow readers.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::both;
use crate::harness::{Client, Ended, Server, token_with};

/// The status of a refused upgrade, after checking its JSON body carries the code that goes
/// with that status (401 `unauthorized`, 403 `forbidden`).
fn status_of(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            let body = resp.body().clone().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON error body");
            let status = resp.status().as_u16();
            let want = match status {
                401 => "unauthorized",
                403 => "forbidden",
                400 => "bad_request",
                other => panic!("unexpected refusal status {other}: {v}"),
            };
            assert_eq!(v["error"]["code"], want, "{v}");
            status
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

both! {
    async fn upgrade_refuses_missing_bad_and_expired_tokens(b) {
        let s = Server::start(b).await;
        let url = format!("ws://{}/ws", s.addr);
        let e = Client::connect(url.clone().into_client_request().unwrap()).await.err().unwrap();
        assert_eq!(status_of(e), 401);
        assert_eq!(status_of(s.ws_raw("garbage").await.err().unwrap()), 401);
        assert_eq!(status_of(s.ws_raw(&token_with("alice", -60, &[])).await.err().unwrap()), 401);
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"sub":"alice","exp": chrono::Utc::now().timestamp() + 60}),
            &jsonwebtoken::EncodingKey::from_secret(b"wrong"),
        ).unwrap();
        assert_eq!(status_of(s.ws_raw(&forged).await.err().unwrap()), 401);
        // `sub` past 256 bytes, or with a control character, is refused; 256 bytes is not.
        let long = "u".repeat(257);
        assert_eq!(status_of(s.ws_raw(&token_with(&long, 60, &[])).await.err().unwrap()), 401);
        assert_eq!(status_of(s.ws_raw(&token_with("al\nice", 60, &[])).await.err().unwrap()), 401);
        let (st, _) = s.http(&"u".repeat(257)).get("/threads").await;
        assert_eq!(st, 401);
        let mut longest = s.ws(&"u".repeat(256)).await;
        assert_eq!(longest.call(json!({"type":"ping"})).await["type"], "pong");
        // The Authorization header works as well as ?token=.
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Authorization", format!("Bearer {}", s.token("alice")).parse().unwrap());
        let mut c = Client::connect(req).await.unwrap();
        assert_eq!(c.next().await["type"], "hello");
    }

    async fn disallowed_origin_gets_403(b) {
        let s = Server::start_with(b, &[("ALLOWED_ORIGINS", "https://app.example.com")]).await;
        let url = format!("ws://{}/ws?token={}", s.addr, s.token("alice"));
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("Origin", "https://evil.example.com".parse().unwrap());
        assert_eq!(status_of(Client::connect(req).await.err().unwrap()), 403);
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Origin", "https://app.example.com".parse().unwrap());
        let mut c = Client::connect(req).await.unwrap();
        assert_eq!(c.next().await["type"], "hello");
    }

    async fn socket_closes_with_4001_when_its_token_expires(b) {
        let s = Server::start(b).await;
        let exp_ms = (chrono::Utc::now().timestamp() + 5) * 1000;
        let token = token_with("alice", 5, &[("exp", json!(exp_ms / 1000))]);
        let mut c = s.ws_raw(&token).await.unwrap();
        assert_eq!(c.next().await["type"], "hello");
        // Open and answering until shortly before the token expires...
        let left = |now: i64| Duration::from_millis(u64::try_from(exp_ms - now).unwrap_or(0));
        let now = chrono::Utc::now().timestamp_millis();
        tokio::time::sleep(left(now).saturating_sub(Duration::from_millis(1200))).await;
        assert_eq!(c.call(json!({"type":"ping"})).await["type"], "pong");
        // ...then closed with 4001, and not before it expired (the harness sets no leeway).
        assert_eq!(c.closed(Duration::from_secs(8)).await, Ended::Code(4001));
        let closed_at = chrono::Utc::now().timestamp_millis();
        assert!(closed_at >= exp_ms - 100, "closed {} ms before expiry", exp_ms - closed_at);
    }

    async fn thread_title_member_changes_and_deletes_share_the_rate(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "1"), ("RATE_BURST", "4")]).await;
        let alice = s.http("alice");
        let t0 = Instant::now();
        let tid = alice.group("g", &["bob"]).await;
        let (st, _) = alice.patch(&format!("/threads/{tid}"), json!({"title":"g2"})).await;
        assert_eq!(st, 200);
        let (st, _) = alice.post(&format!("/threads/{tid}/members"), json!({"user_ids":["carol"]})).await;
        assert_eq!(st, 200);
        let (st, _) = alice.delete(&format!("/threads/{tid}/members/carol")).await;
        assert_eq!(st, 204);
        // Four actions took the burst of four: past it, a write of any kind passes only on a
        // token that came back since (one a second, on a slow machine). Had any of the four
        // not counted, one would pass at once.
        let mut passed = 0;
        let refused = loop {
            let (st, v) = if passed % 2 == 0 {
                alice.post("/threads", json!({"kind":"group","title":"h","members":["bob"]})).await
            } else {
                alice.patch(&format!("/threads/{tid}"), json!({"title":"g3"})).await
            };
            if st == 429 {
                break v;
            }
            assert!(st == 200 || st == 201, "{st} {v}");
            passed += 1;
            assert!(passed <= 10, "never rate limited");
        };
        assert_eq!(refused["error"]["code"], "rate_limited", "{refused}");
        assert!(passed <= t0.elapsed().as_secs(), "{passed} write(s) passed after the burst, in {:?}", t0.elapsed());
        // A token that is not valid yet is refused like any bad token.
        let later = token_with("alice", 600, &[("nbf", json!(chrono::Utc::now().timestamp() + 120))]);
        assert_eq!(status_of(s.ws_raw(&later).await.err().unwrap()), 401);
    }

    async fn edits_and_deletes_count_toward_the_rate(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "1"), ("RATE_BURST", "5")]).await;
        let alice = s.http("alice");
        // Creating the thread counts too.
        let t0 = Instant::now();
        let tid = alice.direct("bob").await;
        let mut ids = Vec::new();
        for body in ["one", "two"] {
            let (st, m) = alice.post(&format!("/threads/{tid}/messages"), json!({"body":body})).await;
            assert_eq!(st, 200, "{m}");
            ids.push(m["message"]["id"].as_str().unwrap().to_string());
        }
        let (st, _) = alice.patch(&format!("/messages/{}", ids[0]), json!({"body":"one!"})).await;
        assert_eq!(st, 200);
        let (st, _) = alice.delete(&format!("/messages/{}", ids[1])).await;
        assert_eq!(st, 200);
        // The thread, two sends, an edit and a delete took the burst of five: had either the
        // edit or the delete not counted, the next edit would pass at once. One passes only on
        // a token that came back since (one a second, on a slow machine).
        let mut passed = 0;
        let refused = loop {
            let (st, v) = alice.patch(&format!("/messages/{}", ids[0]), json!({"body":format!("one{passed}")})).await;
            if st == 429 {
                break v;
            }
            assert_eq!(st, 200, "{v}");
            passed += 1;
            assert!(passed <= 10, "never rate limited");
        };
        assert_eq!(refused["error"]["code"], "rate_limited", "{refused}");
        assert!(passed <= t0.elapsed().as_secs(), "{passed} edit(s) passed after the burst, in {:?}", t0.elapsed());
        // Nothing was changed by the refused edit.
        let (_, h) = alice.get(&format!("/threads/{tid}/messages?after_seq=0")).await;
        let last = if passed == 0 { "one!".to_string() } else { format!("one{}", passed - 1) };
        assert_eq!(h["messages"][0]["body"], last.as_str(), "{h}");
        assert_eq!(h["messages"][0]["deleted"], false, "{h}");
    }

    async fn a_resend_of_a_stored_message_is_answered_even_past_the_rate(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "1"), ("RATE_BURST", "3")]).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        let first = alice.ok(json!({"type":"send","thread_id":tid,"body":"once","client_id":"keep"})).await;
        // Spend what is left of the burst, until the limit refuses a new send.
        let mut n = 0;
        loop {
            let r = alice.call(json!({"type":"send","thread_id":tid,"body":"more"})).await;
            if r["type"] == "error" {
                assert_eq!(r["code"], "rate_limited", "{r}");
                break;
            }
            n += 1;
            assert!(n < 10, "never rate limited");
        }
        // The resend after a lost ack still gets its original, not rate_limited.
        let again = alice.ok(json!({"type":"send","thread_id":tid,"body":"once","client_id":"keep"})).await;
        assert_eq!(again["message"]["id"], first["message"]["id"]);
        assert_eq!(again["message"]["seq"], first["message"]["seq"]);
        // A new client_id is a new send: refused, or (if a token came back meanwhile on a
        // slow machine) stored as a message of its own, never answered with the original.
        let r = alice.call(json!({"type":"send","thread_id":tid,"body":"new","client_id":"other"})).await;
        if r["type"] == "ack" {
            assert_ne!(r["message"]["id"], first["message"]["id"]);
        } else {
            assert_eq!(r["code"], "rate_limited", "{r}");
        }
    }

    async fn sending_too_fast_is_rate_limited(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "1"), ("RATE_BURST", "5")]).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        // The burst goes through at once; then sends are refused until a token is back
        // (one a second). No exact timing is assumed: a slow machine may refill one.
        let mut accepted = 0;
        let refused = loop {
            let r = alice.call(json!({"type":"send","thread_id":tid,"body":"x"})).await;
            if r["type"] == "error" {
                break r;
            }
            accepted += 1;
            assert!(accepted <= 10, "never rate limited");
        };
        // Creating the thread took one token of the burst (thread creation counts too).
        assert!(accepted >= 4, "the burst of 5 was not honoured: {accepted}");
        assert_eq!(refused["code"], "rate_limited");
        let wait = refused["retry_after_ms"].as_u64().unwrap();
        assert!(wait > 0 && wait <= 1000, "{refused}");
        // REST shares the bucket and answers 429.
        let http = s.http("alice");
        let mut saw_429 = false;
        for _ in 0..10 {
            let (st, body) = http.post(&format!("/threads/{tid}/messages"), json!({"body":"x"})).await;
            if st == 429 {
                assert!(body["error"]["retry_after_ms"].as_u64().is_some());
                saw_429 = true;
                break;
            }
        }
        assert!(saw_429);
        // Nothing refused was stored: seqs stay gap-free.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let last = alice.say(&tid, "later").await["seq"].as_i64().unwrap();
        let (_, h) = s.http("alice").get(&format!("/threads/{tid}/messages?limit=200")).await;
        let seqs: Vec<i64> = h["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    }

    async fn eleventh_socket_replaces_the_oldest_with_4009(b) {
        let s = Server::start(b).await;
        let mut first = s.ws("alice").await;
        let mut others = Vec::new();
        for _ in 0..10 {
            others.push(s.ws("alice").await);
        }
        assert_eq!(first.closed(Duration::from_secs(5)).await, Ended::Code(4009));
        // The rest still work.
        for c in others.iter_mut() {
            assert_eq!(c.call(json!({"type":"ping"})).await["type"], "pong");
        }
    }

    async fn slow_reader_is_closed_with_4008(b) {
        let s = Server::start_with(b, &[
            ("OUTBOX_FRAMES", "8"),
            ("MAX_BODY_CHARS", "60000"),
            ("RATE_BURST", "10000"),
            ("RATE_PER_S", "10000"),
        ]).await;
        let mut slow = s.ws("bob").await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        // bob stops reading; alice sends until his queue and the socket buffers fill.
        // 600 × 50 KB is far more than the loopback socket buffers hold.
        let body = "x".repeat(50_000);
        for _ in 0..600 {
            alice.ok(json!({"type":"send","thread_id":tid,"body":body})).await;
        }
        assert_eq!(slow.closed(Duration::from_secs(10)).await, Ended::Code(4008));
        // The messages were all committed all the same.
        let (_, h) = s.http("bob").get(&format!("/threads/{tid}/messages?limit=1")).await;
        assert_eq!(h["messages"][0]["seq"], 600);
    }
}
