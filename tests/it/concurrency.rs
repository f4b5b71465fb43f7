//! The store's rules under concurrency: gap-free seqs, one message per client_id, one direct
//! thread per pair. Each prints its rate, for the record (not asserted: no timed tests).

use std::collections::HashSet;

use serde_json::json;

use crate::both;
use crate::harness::{Backend, Server};

const SENDERS: usize = 20;
const EACH: usize = 50;

both! {
    async fn concurrent_senders_get_gap_free_unique_seqs(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "100000"), ("RATE_BURST", "100000")]).await;
        let users: Vec<String> = (0..SENDERS).map(|i| format!("u{i}")).collect();
        let others: Vec<&str> = users.iter().skip(1).map(String::as_str).collect();
        let mut members = others.clone();
        members.push("reader");
        let tid = s.http(&users[0]).group("load", &members).await;
        let mut clients = Vec::new();
        for u in &users {
            clients.push(s.ws(u).await);
        }
        // A member who only listens: on one node, every message reaches it in seq order.
        let mut reader = s.ws("reader").await;
        let listening = tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..SENDERS * EACH {
                seqs.push(reader.event("message").await["message"]["seq"].as_i64().unwrap());
            }
            seqs
        });
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for (i, mut c) in clients.into_iter().enumerate() {
            let tid = tid.clone();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..EACH {
                    let m = c.say(&tid, &format!("{i}-{n}")).await;
                    seqs.push(m["seq"].as_i64().unwrap());
                }
                seqs
            }));
        }
        let mut acked = Vec::new();
        for t in tasks {
            let seqs = t.await.unwrap();
            // Each sender's own messages get increasing seqs, in the order it sent them.
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
            acked.extend(seqs);
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!("{b:?}: {} acked sends in {secs:.2}s = {:.0} msg/s", acked.len(), acked.len() as f64 / secs);
        acked.sort_unstable();
        assert_eq!(acked, (1..=(SENDERS * EACH) as i64).collect::<Vec<_>>());
        assert_eq!(listening.await.unwrap(), acked, "received in seq order, each once");

        // The stored history agrees: 1..1000, every body once.
        let http = s.http(&users[0]);
        let mut after = 0;
        let mut bodies = HashSet::new();
        loop {
            let (_, page) = http.get(&format!("/threads/{tid}/messages?after_seq={after}&limit=200")).await;
            for m in page["messages"].as_array().unwrap() {
                after += 1;
                assert_eq!(m["seq"].as_i64().unwrap(), after);
                assert!(bodies.insert(m["body"].as_str().unwrap().to_string()));
            }
            if page["has_more"] == false {
                break;
            }
        }
        assert_eq!(after, (SENDERS * EACH) as i64);
    }

    async fn a_session_s_pipelined_sends_keep_their_order_and_a_later_read_sees_them_all(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "100000"), ("RATE_BURST", "100000")]).await;
        let tid = s.http("alice").group("pipe", &["bob"]).await;
        let mut alice = s.ws("alice").await;
        // Sends to two threads and a repeated client_id, all written before any reply is
        // read, so they commit while later ones are queued; then a history request.
        let other = s.http("alice").direct("carol").await;
        const N: usize = 300;
        for i in 0..N {
            let (thread, cid) = if i % 3 == 0 { (&other, format!("o{i}")) } else { (&tid, format!("g{i}")) };
            alice.send(json!({"type":"send","ref":format!("s{i}"),"thread_id":thread,"body":format!("{i}"),"client_id":cid})).await;
        }
        alice.send(json!({"type":"send","ref":"again","thread_id":tid,"body":"dup","client_id":"g1"})).await;
        alice.send(json!({"type":"history","ref":"h","thread_id":tid,"limit":200})).await;
        let mut last: std::collections::HashMap<String, i64> = Default::default();
        let mut refs = Vec::new();
        let history = loop {
            let f = alice.read_frame(std::time::Duration::from_secs(20)).await.expect("a reply");
            if f["type"] != "ack" {
                continue;
            }
            let r = f["ref"].as_str().unwrap().to_string();
            if r == "h" {
                break f;
            }
            if r != "again" {
                // One thread's seqs rise in the order the client sent.
                let m = &f["message"];
                let seq = m["seq"].as_i64().unwrap();
                let prev = last.insert(m["thread_id"].as_str().unwrap().to_string(), seq);
                assert_eq!(seq, prev.unwrap_or(0) + 1, "{f}");
                assert_eq!(m["body"].as_str().unwrap(), r.trim_start_matches('s'));
            } else {
                assert_eq!(f["message"]["body"], "1", "a resend answers the original");
            }
            refs.push(r);
        };
        // Every send answered once, in the order sent, before the history reply.
        let mut want: Vec<String> = (0..N).map(|i| format!("s{i}")).collect();
        want.push("again".into());
        assert_eq!(refs, want);
        assert_eq!(history["messages"].as_array().unwrap().len(), 200);
        assert_eq!(history["messages"][199]["seq"].as_i64(), Some(200), "the read sees every send before it");
        assert_eq!(last[&tid], 200);
        assert_eq!(last[&other], 100);
    }

    async fn a_burst_past_the_batch_byte_budget_is_stored_whole_in_several_batches(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "100000"), ("RATE_BURST", "100000")]).await;
        let tid = s.http("alice").group("big", &["bob"]).await;
        let mut alice = s.ws("alice").await;
        // 100 messages of 24,000 bytes (8,000 three-byte chars), written before any reply is
        // read: 2.4 MB queue at once, and a batch takes at most 1 MiB of text past its first
        // message, so it takes at least 3 batches.
        const N: i64 = 100;
        let body = "€".repeat(8000);
        let m0 = s.metrics().await;
        for i in 0..N {
            alice.send(json!({"type":"send","ref":format!("{i}"),"thread_id":tid,"body":body,"client_id":format!("big{i}")})).await;
        }
        for i in 0..N {
            let f = alice.read_frame(std::time::Duration::from_secs(30)).await.expect("an ack");
            assert_eq!(f["type"], "ack", "{}", f["type"]);
            assert_eq!(f["ref"], format!("{i}"));
            assert_eq!(f["message"]["seq"].as_i64(), Some(i + 1), "gap-free, in the order sent");
            assert_eq!(f["message"]["body"].as_str().map(str::len), Some(24_000));
        }
        let m1 = s.metrics().await;
        let batches = crate::harness::metric(&m1, "switchboard_commit_batches_total")
            - crate::harness::metric(&m0, "switchboard_commit_batches_total");
        assert!(batches >= 3.0, "{batches} batches for 2.4 MB");
        // Stored, gap-free: paged, as a reply is cut by bytes too.
        let (mut after, http) = (0, s.http("bob"));
        loop {
            let (_, page) = http.get(&format!("/threads/{tid}/messages?after_seq={after}&limit=200")).await;
            for m in page["messages"].as_array().unwrap() {
                after += 1;
                assert_eq!(m["seq"].as_i64(), Some(after));
            }
            if page["has_more"] == false {
                break;
            }
        }
        assert_eq!(after, N, "every one stored");
    }

    async fn racing_duplicate_client_ids_store_one_message(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "100000"), ("RATE_BURST", "100000")]).await;
        let tid = s.http("alice").direct("bob").await;
        for round in 0..5 {
            let mut tasks = Vec::new();
            // All ten let go at once, so they truly race.
            let go = std::sync::Arc::new(tokio::sync::Barrier::new(10));
            for _ in 0..10 {
                let http = s.http("alice");
                let tid = tid.clone();
                let go = go.clone();
                tasks.push(tokio::spawn(async move {
                    go.wait().await;
                    let (st, m) = http
                        .post(&format!("/threads/{tid}/messages"),
                              json!({"body":"once","client_id":format!("dup-{round}")}))
                        .await;
                    assert_eq!(st, 200, "{m}");
                    m["message"]["id"].as_str().unwrap().to_string()
                }));
            }
            let mut ids = HashSet::new();
            for t in tasks {
                ids.insert(t.await.unwrap());
            }
            assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
        }
        let (_, h) = s.http("bob").get(&format!("/threads/{tid}/messages")).await;
        let seqs: Vec<i64> = h["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }

    async fn racing_sends_to_each_other_make_one_direct_thread(b) {
        let s = Server::start(b).await;
        // Everyone connected first, then all sends let go at once, so they truly race.
        let mut clients = Vec::new();
        for pair in 0..10 {
            for (from, to) in [(format!("a{pair}"), format!("b{pair}")), (format!("b{pair}"), format!("a{pair}"))] {
                clients.push((s.ws(&from).await, to));
            }
        }
        let go = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
        let mut tasks = Vec::new();
        for (mut c, to) in clients {
            let go = go.clone();
            tasks.push(tokio::spawn(async move {
                go.wait().await;
                let ack = c.ok(json!({"type":"send","to":to,"body":"hi"})).await;
                ack["message"]["thread_id"].as_str().unwrap().to_string()
            }));
        }
        let mut threads = Vec::new();
        for t in tasks {
            threads.push(t.await.unwrap());
        }
        for pair in threads.chunks(2) {
            assert_eq!(pair[0], pair[1]);
        }
        assert_eq!(threads.iter().collect::<HashSet<_>>().len(), 10);
        let (_, l) = s.http("a0").get("/threads").await;
        assert_eq!(l["threads"].as_array().unwrap().len(), 1);
        assert_eq!(l["threads"][0]["last_seq"], 2);
        let _ = Backend::Sqlite;
    }
}
