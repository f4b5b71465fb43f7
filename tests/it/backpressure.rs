//! A session's outgoing side under pressure: replies in progress go out before a graceful
//! close (a stored message is an acknowledged message), and a client that asks without
//! reading is closed with 4008 while the node's memory stays bounded (`OUTBOX_BYTES`).

use std::time::Duration;

use serde_json::json;

use crate::both;

use crate::harness::{Client, Ended, Server};

/// Sends in the burst a close cuts.
const SENT: usize = 2000;

/// Alice's session with `SENT` sends pipelined into `tid` (group commits: enough of them that
/// a close finds some queued), after its first ten acks.
async fn burst(s: &Server, tid: &str) -> Client {
    let mut c = s.ws("alice").await;
    for i in 0..SENT {
        c.send(json!({"type":"send","ref":format!("s{i}"),"thread_id":tid,"body":"x","client_id":format!("c{i}")}))
            .await;
    }
    let mut acked = 0;
    while acked < 10 {
        if c.read_frame(Duration::from_secs(10)).await.expect("acks")["type"] == "ack" {
            acked += 1;
        }
    }
    c
}

/// Reads until the socket ends: the acks counted (the ten `burst` read included) and how it
/// ended.
async fn acks_until_closed(c: &mut Client) -> (usize, Ended) {
    let mut acked = 10;
    loop {
        match c.read_frame(Duration::from_secs(10)).await {
            Ok(v) if v["type"] == "ack" => acked += 1,
            Ok(_) => {}
            Err(e) => return (acked, e),
        }
    }
}

/// How many messages `tid` holds, paged through `history`.
async fn stored_in(c: &mut Client, tid: &str) -> usize {
    let (mut stored, mut after) = (0, 0);
    loop {
        let h = c
            .ok(json!({"type":"history","thread_id":tid,"limit":200,"after_seq":after}))
            .await;
        let page = h["messages"].as_array().unwrap();
        stored += page.len();
        after = page.last().map_or(after, |m| m["seq"].as_i64().unwrap());
        if !h["has_more"].as_bool().unwrap() {
            return stored;
        }
    }
}

both! {
    async fn sends_in_progress_are_acked_before_a_4009_close(b) {
        let s = Server::start_with(b, &[
            ("MAX_SESSIONS_PER_USER", "1"),
            ("RATE_PER_S", "100000"),
            ("RATE_BURST", "100000"),
        ]).await;
        let tid = s.http("bob").direct("alice").await;
        let mut first = burst(&s, &tid).await;
        // A second session replaces the first while its sends are being handled: some
        // acked, one in progress, the rest still queued.
        let mut second = s.ws("alice").await;
        let (acked, ended) = acks_until_closed(&mut first).await;
        assert_eq!(ended, Ended::Code(4009));
        let stored = stored_in(&mut second, &tid).await;
        eprintln!("{acked} acked, {stored} stored of {SENT} sent before the 4009");
        assert!(acked < SENT, "the replacement did not cut the burst");
        assert_eq!(stored, acked, "every stored message was acknowledged");
    }

    async fn sends_in_progress_are_acked_before_a_4003_close(b) {
        let s = Server::start_host(b, &[("RATE_PER_S", "100000"), ("RATE_BURST", "100000")]).await;
        let tid = s.http("bob").direct("alice").await;
        let mut first = burst(&s, &tid).await;
        // The host revokes alice while her sends are being handled.
        let host = s.host(crate::harness::API_KEY);
        let (st, v) = host.post("/disconnect", json!({"user_id":"alice"})).await;
        assert_eq!(st, 204, "{v}");
        let (acked, ended) = acks_until_closed(&mut first).await;
        assert_eq!(ended, Ended::Code(4003));
        let stored = stored_in(&mut s.ws("bob").await, &tid).await;
        eprintln!("{acked} acked, {stored} stored of {SENT} sent before the 4003");
        assert!(acked < SENT, "the revocation did not cut the burst");
        assert_eq!(stored, acked, "every stored message was acknowledged");
    }

    async fn asking_without_reading_is_closed_with_4008_and_memory_stays_bounded(b) {
        let s = Server::start_with(b, &[
            ("RATE_PER_S", "100000"),
            ("RATE_BURST", "100000"),
        ]).await;
        let tid = s.http("alice").group("big", &["bob"]).await;
        let mut writer = s.ws("alice").await;
        let body = "x".repeat(8000);
        for _ in 0..200 {
            writer.say(&tid, &body).await;
        }
        let before = s.rss();
        let mut greedy = s.ws("bob").await;
        // 300 pages of 1.6 MB each: 480 MB of replies, none of them read.
        for i in 0..300 {
            greedy
                .send(json!({"type":"history","ref":format!("h{i}"),"thread_id":tid,"limit":200}))
                .await;
        }
        // The session takes no new frame while half its byte budget is unread, and gives up
        // on a client that reads nothing for 10 s: not reading at all past that is what
        // makes this client a non-reader.
        let mut peak = before;
        for _ in 0..240 {
            peak = peak.max(s.rss());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(greedy.closed(Duration::from_secs(20)).await, Ended::Code(4008));
        assert!(
            s.log().contains("replies not read for 10s (4008)"),
            "closed by the reply stall, not by an overflow"
        );
        peak = peak.max(s.rss());
        let grew = peak.saturating_sub(before);
        eprintln!("RSS grew by {} KiB at most", grew / 1024);
        assert!(grew < 64 << 20, "RSS grew by {grew} bytes");
    }

    async fn frames_past_the_queue_wait_their_turn_and_each_gets_exactly_one_reply(b) {
        let s = Server::start(b).await;
        let tid = s.http("alice").direct("bob").await;
        let mut alice = s.ws("alice").await;
        // Far more than the 64 the worker queues: the socket is read as the worker frees
        // room, and nothing is refused.
        const N: usize = 500;
        for i in 0..N {
            alice
                .send(json!({"type":"history","ref":format!("h{i}"),"thread_id":tid,"limit":1}))
                .await;
        }
        let mut refs = Vec::new();
        while refs.len() < N {
            let v = alice.read_frame(Duration::from_secs(20)).await.expect("a reply");
            match v["type"].as_str() {
                Some("ack") => refs.push(v["ref"].as_str().unwrap().to_string()),
                Some("error") => panic!("refused: {v}"),
                _ => {}
            }
        }
        let expected: Vec<String> = (0..N).map(|i| format!("h{i}")).collect();
        assert_eq!(refs, expected, "one reply per ref, in the order sent");
        // And not one more.
        alice.no_event("ack", Duration::from_millis(300)).await;
        alice.no_event("error", Duration::ZERO).await;
    }
}

/// Events for a session that does not read are bounded by bytes, not only by frames: with
/// room for 100,000 frames but 256 KiB, a few hundred 8,000-char messages close the
/// non-reader with 4008 (once the kernel's socket buffers are full too).
#[tokio::test]
async fn events_past_outbox_bytes_close_a_non_reader_long_before_outbox_frames() {
    let s = Server::start_with(
        crate::harness::Backend::Postgres,
        &[
            ("RATE_PER_S", "100000"),
            ("RATE_BURST", "100000"),
            ("OUTBOX_FRAMES", "100000"),
            ("OUTBOX_BYTES", "262144"),
        ],
    )
    .await;
    let tid = s.http("alice").group("big", &["bob"]).await;
    let mut bob = s.ws("bob").await;
    let mut alice = s.ws("alice").await;
    let body = "x".repeat(8000);
    let mut sent = 0;
    while !s.log().contains("outgoing queue full (4008)") {
        assert!(sent < 3000, "no 4008 after {sent} messages of 8,000 chars");
        for _ in 0..20 {
            alice.say(&tid, &body).await;
        }
        sent += 20;
    }
    eprintln!("closed after {sent} messages ({} KiB)", sent * 8000 / 1024);
    assert_eq!(bob.closed(Duration::from_secs(20)).await, Ended::Code(4008));
    // The sender is not held back by the slow reader.
    alice.say(&tid, "still here").await;
}
