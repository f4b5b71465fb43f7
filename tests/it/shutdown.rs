//! SIGTERM: every socket is closed with 1001 and the process exits within the grace period.

use std::time::Duration;

use crate::both;
use crate::harness::{Ended, Server, TempDir, fresh_database};

both! {
    async fn sigterm_closes_sockets_with_1001_and_exits(b) {
        let mut s = Server::start(b).await;
        let mut a = s.ws("alice").await;
        let mut a2 = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &s.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for c in [&mut a, &mut a2, &mut bob] {
            assert_eq!(c.closed(Duration::from_secs(5)).await, Ended::Code(1001));
        }
        let exit = s.wait_exit(Duration::from_secs(6)).expect("exited within the grace period");
        assert!(exit.success(), "{exit:?}\n{}", s.log());
        assert!(s.log().contains("draining"));
    }

    async fn readyz_answers_503_while_the_node_drains(b) {
        let mut s = Server::start_with(b, &[("RATE_PER_S", "100000"), ("RATE_BURST", "100000")]).await;
        let tid = s.http("alice").direct("bob").await;
        let mut writer = s.ws("alice").await;
        let body = "x".repeat(8000);
        for _ in 0..50 {
            writer.say(&tid, &body).await;
        }
        // A client with replies queued that it does not read holds the drain open (its
        // close waits for them, at most 3 s): the window in which /readyz is asked.
        let mut greedy = s.ws("bob").await;
        for i in 0..20 {
            greedy
                .send(serde_json::json!({"type":"history","ref":format!("h{i}"),"thread_id":tid,"limit":50}))
                .await;
        }
        let http = reqwest::Client::new();
        let r = http.get(s.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        s.signal("TERM");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let body = loop {
            let r = http.get(s.url("/readyz")).send().await.expect("still listening while draining");
            if r.status().as_u16() == 503 {
                break r.json::<serde_json::Value>().await.unwrap();
            }
            assert!(tokio::time::Instant::now() < deadline, "never 503 while draining");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(body["status"], "draining", "{body}");
        assert_eq!(greedy.closed(Duration::from_secs(10)).await, Ended::Code(1001));
        assert!(s.wait_exit(Duration::from_secs(8)).is_some_and(|e| e.success()));
    }

    async fn a_send_burst_cut_by_sigterm_stores_exactly_what_was_acked(b) {
        // The database outlives the first node, so a second one can count what was stored.
        let dir = TempDir::new();
        let url = fresh_database(b, &dir.0).await;
        let env = [("RATE_PER_S", "100000"), ("RATE_BURST", "100000")];
        let s = Server::spawn(TempDir::new(), &url, &env).await;
        let tid = s.http("alice").direct("bob").await;
        let mut alice = s.ws("alice").await;
        const N: usize = 200;
        for i in 0..N {
            alice
                .send(serde_json::json!({"type":"send","ref":format!("s{i}"),"thread_id":tid,"body":format!("m{i}")}))
                .await;
        }
        // Cut the burst in the middle: some acked, one in progress, the rest still queued.
        let mut acked = 0;
        while acked < 20 {
            if alice.read_frame(Duration::from_secs(10)).await.expect("acks")["type"] == "ack" {
                acked += 1;
            }
        }
        s.signal("TERM");
        let ended = loop {
            match alice.read_frame(Duration::from_secs(10)).await {
                Ok(v) if v["type"] == "ack" => acked += 1,
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(ended, Ended::Code(1001));
        let mut s = s;
        assert!(s.wait_exit(Duration::from_secs(10)).is_some_and(|e| e.success()), "{}", s.log());
        let again = Server::spawn(TempDir::new(), &url, &env).await;
        let (st, h) = again
            .http("bob")
            .get(&format!("/threads/{tid}/messages?limit=200"))
            .await;
        assert_eq!(st, 200);
        let stored = h["messages"].as_array().unwrap().len();
        eprintln!("{acked} acked, {stored} stored of {N} sent before SIGTERM");
        assert!(acked < N, "the burst was not cut by the drain");
        assert_eq!(stored, acked, "every stored message was acknowledged, and only those");
    }
}
