//! Read and delivered receipts, unread counts and typing.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::Server;

both! {
    async fn read_receipts_reach_members_and_the_readers_other_sessions(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let mut bob2 = s.ws("bob").await;
        let tid = s.http("alice").direct("bob").await;
        for i in 0..3 {
            alice.say(&tid, &format!("m{i}")).await;
        }
        let (_, u) = s.http("bob").get("/unread").await;
        assert_eq!(u, json!({"total":3,"threads":{tid.clone():3}}));
        // Own messages never count.
        let (_, u) = s.http("alice").get("/unread").await;
        assert_eq!(u["total"], 0);

        bob.ok(json!({"type":"read","thread_id":tid,"seq":2})).await;
        let r = alice.event("read").await;
        assert_eq!((r["thread_id"].as_str(), r["user_id"].as_str(), r["seq"].as_i64()),
                   (Some(tid.as_str()), Some("bob"), Some(2)));
        assert!(r["at"].is_string());
        assert_eq!(bob2.event("read").await["seq"], 2);
        bob.no_event("read", Duration::from_millis(300)).await;
        let (_, u) = s.http("bob").get("/unread").await;
        assert_eq!(u["total"], 1);

        // Backwards does nothing; beyond the end is clamped.
        bob.ok(json!({"type":"read","thread_id":tid,"seq":1})).await;
        bob.ok(json!({"type":"read","thread_id":tid,"seq":99})).await;
        assert_eq!(alice.event("read").await["seq"], 3);
        let (_, u) = s.http("bob").get("/unread").await;
        assert_eq!(u, json!({"total":0,"threads":{}}));
        let (_, t) = s.http("bob").get(&format!("/threads/{tid}")).await;
        assert_eq!(t["unread"], 0);

        bob.ok(json!({"type":"delivered","thread_id":tid,"seq":3})).await;
        let d = alice.event("delivered").await;
        assert_eq!((d["user_id"].as_str(), d["seq"].as_i64()), (Some("bob"), Some(3)));
        // The reader's other session hears of it too, not the one that sent it.
        let d2 = bob2.event("delivered").await;
        assert_eq!((d2["user_id"].as_str(), d2["seq"].as_i64()), (Some("bob"), Some(3)));
        bob.no_event("delivered", Duration::from_millis(300)).await;

        // REST read is the same action.
        alice.say(&tid, "m3").await;
        let (st, _) = s.http("bob").post(&format!("/threads/{tid}/read"), json!({"seq":4})).await;
        assert_eq!(st, 204);
        assert_eq!(alice.event("read").await["seq"], 4);
        bob.err(json!({"type":"read","thread_id":tid,"seq":-1}), "bad_request").await;
    }

    async fn receipts_sent_together_are_each_stored_answered_and_announced(b) {
        // Thirty members read at once: each receipt is moved (clamped where it points past
        // the end), acknowledged and announced on its own.
        let s = Server::start(b).await;
        let members: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
        let names: Vec<&str> = members.iter().map(String::as_str).collect();
        let tid = s.http("alice").group("readers", &names).await;
        let mut alice = s.ws("alice").await;
        for i in 0..3 {
            alice.say(&tid, &format!("m{i}")).await;
        }
        let mut readers = Vec::new();
        for m in &members {
            readers.push(s.ws(m).await);
        }
        for (i, r) in readers.iter_mut().enumerate() {
            // Some read up to 2, some past the end (clamped to 3).
            let seq = if i % 2 == 0 { 2 } else { 99 };
            r.send(json!({"type":"read","thread_id":tid,"seq":seq,"ref":"r"})).await;
        }
        let acks = futures_util::future::join_all(readers.iter_mut().map(|r| async move {
            loop {
                let f = r.read_frame(Duration::from_secs(10)).await.expect("the ack");
                if f["ref"] == "r" {
                    return f["type"].clone();
                }
            }
        }))
        .await;
        assert!(acks.iter().all(|t| t == "ack"), "{acks:?}");
        let mut seen = std::collections::BTreeMap::new();
        while seen.len() < members.len() {
            let r = alice.event("read").await;
            seen.insert(r["user_id"].as_str().unwrap().to_string(), r["seq"].as_i64().unwrap());
        }
        for (i, m) in members.iter().enumerate() {
            assert_eq!(seen[m], if i % 2 == 0 { 2 } else { 3 }, "{m}");
            let (_, u) = s.http(m).get("/unread").await;
            assert_eq!(u["total"], if i % 2 == 0 { 1 } else { 0 }, "{m}: {u}");
        }
        alice.no_event("read", Duration::from_millis(300)).await;
    }

    async fn unread_ignores_deleted_messages_and_counts_per_thread(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let http = s.http("alice");
        let t1 = http.direct("bob").await;
        let g = http.group("team", &["bob", "carol"]).await;
        alice.say(&t1, "a").await;
        let m = alice.say(&g, "b").await;
        alice.say(&g, "c").await;
        http.delete(&format!("/messages/{}", m["id"].as_str().unwrap())).await;
        let (_, u) = s.http("bob").get("/unread").await;
        assert_eq!(u, json!({"total":2,"threads":{t1.clone():1, g.clone():1}}));
        let (_, u) = s.http("carol").get("/unread").await;
        assert_eq!(u, json!({"total":1,"threads":{g.clone():1}}));
    }

    async fn typing_reaches_others_and_stops_by_itself(b) {
        let s = Server::start_with(b, &[("TYPING_TIMEOUT_MS", "400")]).await;
        let mut alice = s.ws("alice").await;
        let mut alice2 = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let tid = s.http("alice").direct("bob").await;
        // Without a ref: no reply. The server cannot stop it before 400 ms after it heard
        // the `true`, which is after this instant: a lower bound a slow test cannot break.
        let started = std::time::Instant::now();
        alice.send(json!({"type":"typing","thread_id":tid,"is_typing":true})).await;
        let t = bob.event("typing").await;
        assert_eq!(t, json!({"type":"typing","thread_id":tid,"user_id":"alice","is_typing":true}));
        let stop = bob.event("typing").await;
        assert_eq!(stop["is_typing"], false);
        assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
        alice.no_event("ack", Duration::from_millis(100)).await;
        alice2.no_event("typing", Duration::from_millis(100)).await;
        // With a ref: an ack. An explicit stop is relayed at once.
        alice.ok(json!({"type":"typing","thread_id":tid,"is_typing":true})).await;
        assert_eq!(bob.event("typing").await["is_typing"], true);
        alice.ok(json!({"type":"typing","thread_id":tid,"is_typing":false})).await;
        assert_eq!(bob.event("typing").await["is_typing"], false);
        // No second stop from the timer.
        bob.no_event("typing", Duration::from_millis(600)).await;
        // Over REST too.
        let (st, _) = s.http("bob").post(&format!("/threads/{tid}/typing"), json!({"is_typing":true})).await;
        assert_eq!(st, 204);
        assert_eq!(alice.event("typing").await["user_id"], "bob");
    }

    async fn typing_is_announced_on_change_only_and_a_repeat_extends_the_stop(b) {
        let s = Server::start_with(b, &[("TYPING_TIMEOUT_MS", "600")]).await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let tid = s.http("alice").direct("bob").await;
        alice.ok(json!({"type":"typing","thread_id":tid,"is_typing":true})).await;
        assert_eq!(bob.event("typing").await["is_typing"], true);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            alice.ok(json!({"type":"typing","thread_id":tid,"is_typing":true})).await;
        }
        // Taken before the last repeat was acked: the stop cannot come sooner than this + 600 ms.
        let last = std::time::Instant::now();
        alice.ok(json!({"type":"typing","thread_id":tid,"is_typing":true})).await;
        // The repeats were not announced: the next typing bob sees is the stop.
        let next = bob.event("typing").await;
        assert_eq!(next["is_typing"], false, "a repeated true was announced: {next}");
        assert!(last.elapsed() >= Duration::from_millis(600), "{:?}", last.elapsed());
        // An explicit stop when not typing is no change either.
        alice.ok(json!({"type":"typing","thread_id":tid,"is_typing":false})).await;
        bob.no_event("typing", Duration::from_millis(300)).await;
    }

    async fn alternating_typing_is_limited_to_a_budget_of_starts(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let tid = s.http("alice").direct("bob").await;
        // 30 start/stop pairs at once: the first 10 starts (the burst) are relayed, most of
        // the rest refused; every stop after a relayed start is relayed.
        let mut limited = 0;
        for i in 0..30 {
            let r = alice.call(json!({"type":"typing","ref":format!("t{i}"),"thread_id":tid,"is_typing":true})).await;
            if r["type"] == "error" {
                assert_eq!(r["code"], "rate_limited", "{r}");
                assert!(r["retry_after_ms"].as_u64().unwrap() > 0, "{r}");
                limited += 1;
            }
            alice.ok(json!({"type":"typing","ref":format!("f{i}"),"thread_id":tid,"is_typing":false})).await;
        }
        // Refilled at 5 a second while the loop runs: a slow machine lets a few more through.
        assert!((10..=20).contains(&limited), "{limited} starts refused of 30");
        // bob saw at most the relayed starts and their stops (typing is lossy: a slow reader
        // may see fewer), not a frame per frame sent.
        let seen = bob.count_events("typing", Duration::from_millis(500)).await;
        assert!(seen > 0 && seen <= 2 * (30 - limited), "bob got {seen} typing frames");
    }
}
