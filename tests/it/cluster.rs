//! Several gateway processes sharing Postgres and a private Redis behave as one: cross-node
//! delivery, presence across nodes and devices, large groups, cluster-wide limits. Faults are
//! in `cluster_faults.rs`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Cluster, Ended};

#[tokio::test]
async fn chat_typing_receipts_presence_and_threads_cross_nodes() {
    let c = Cluster::start(2, &[("TYPING_TIMEOUT_MS", "500")]).await;
    let (a, b) = (c.node(0), c.node(1));
    let mut alice = a.ws("alice").await;
    let mut bob = b.ws("bob").await;
    assert_eq!(alice.hello["node_id"], "node0");
    assert_eq!(bob.hello["node_id"], "node1");

    // Presence: bob's direct partner-to-be is watched explicitly first.
    let w = alice
        .ok(json!({"type":"watch_presence","user_ids":["bob","dave"]}))
        .await;
    assert_eq!(
        w["presence"][0]["online"], true,
        "bob is online on the other node"
    );
    assert_eq!(w["presence"][1]["online"], false);

    let m = alice
        .ok(json!({"type":"send","to":"bob","body":"hi from node0"}))
        .await["message"]
        .clone();
    let tid = m["thread_id"].as_str().unwrap().to_string();
    assert_eq!(bob.event("thread").await["event"], "created");
    assert_eq!(bob.event("message").await["message"], m);

    let r = bob
        .ok(json!({"type":"send","thread_id":tid,"body":"hi from node1"}))
        .await;
    assert_eq!(alice.event("message").await["message"], r["message"]);

    bob.send(json!({"type":"typing","thread_id":tid,"is_typing":true}))
        .await;
    assert_eq!(alice.event("typing").await["is_typing"], true);
    // The auto-stop comes from bob's node and still crosses over.
    assert_eq!(alice.event("typing").await["is_typing"], false);

    bob.ok(json!({"type":"read","thread_id":tid,"seq":1})).await;
    let read = alice.event("read").await;
    assert_eq!(
        (read["user_id"].as_str(), read["seq"].as_i64()),
        (Some("bob"), Some(1))
    );

    // dave connects on node1: alice (node0) is told; then leaves: offline.
    let dave = b.ws("dave").await;
    assert_eq!(alice.presence_of("dave").await["online"], true);
    let (_, l) = a.http("alice").get("/presence?user_ids=dave").await;
    assert_eq!(
        l[0]["online"], true,
        "lookups agree with events across nodes"
    );
    dave.close().await;
    assert_eq!(alice.presence_of("dave").await["online"], false);

    // Edits and thread changes cross too.
    let (st, _) = a
        .http("alice")
        .patch(
            &format!("/messages/{}", m["id"].as_str().unwrap()),
            json!({"body":"edited"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        bob.event("message_updated").await["message"]["body"],
        "edited"
    );
    // Each of node0's publishes went to Redis as one timed pipeline.
    let m0 = a.metrics().await;
    let pipelines = crate::harness::metric(&m0, "switchboard_relay_publish_seconds_count");
    assert!(pipelines >= 2.0, "{pipelines} publish pipelines timed");
    assert!(
        crate::harness::metric(&m0, "switchboard_relay_publish_seconds_sum") > 0.0,
        "no time recorded"
    );
}

#[tokio::test]
async fn presence_spans_devices_on_different_nodes() {
    let c = Cluster::start(2, &[]).await;
    let mut carol = c.node(0).ws("carol").await;
    carol
        .ok(json!({"type":"watch_presence","user_ids":["dave"]}))
        .await;
    let phone = c.node(0).ws("dave").await;
    assert_eq!(carol.event("presence").await["online"], true);
    let laptop = c.node(1).ws("dave").await;
    phone.close().await;
    // Still online through node1: no event, and lookups on both nodes agree.
    carol.no_event("presence", Duration::from_millis(500)).await;
    for n in 0..2 {
        let (_, l) = c.node(n).http("carol").get("/presence?user_ids=dave").await;
        assert_eq!(l[0]["online"], true);
    }
    laptop.close().await;
    let p = carol.event("presence").await;
    assert_eq!(p["online"], false);
    assert!(p["last_seen"].is_string());
    carol.no_event("presence", Duration::from_millis(500)).await;
}

#[tokio::test]
async fn leaving_a_shared_thread_ends_watches_on_every_node() {
    // The removal is made on node0; dave's watch of frank lives on node1, which must drop it
    // and unsubscribe from frank's channel (erin on node0 still watches him).
    let c = Cluster::start(2, &[("PRESENCE_SCOPE", "shared")]).await;
    let g = c
        .node(0)
        .http("u-carol")
        .group("g", &["u-dave", "u-erin", "u-frank"])
        .await;
    let mut carol = c.node(0).ws("u-carol").await;
    let mut erin = c.node(0).ws("u-erin").await;
    let mut dave = c.node(1).ws("u-dave").await;
    // Their own online events go out before anyone watches.
    tokio::time::sleep(Duration::from_millis(300)).await;
    carol
        .ok(json!({"type":"watch_presence","user_ids":["u-dave"]}))
        .await;
    erin.ok(json!({"type":"watch_presence","user_ids":["u-frank"]}))
        .await;
    dave.ok(json!({"type":"watch_presence","user_ids":["u-frank"]}))
        .await;
    assert_eq!(c.redis.subscribers("sb:w:u-frank"), 2);

    let (st, _) = c
        .node(0)
        .http("u-carol")
        .delete(&format!("/threads/{g}/members/u-dave"))
        .await;
    assert_eq!(st, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.redis.subscribers("sb:w:u-frank") != 1 {
        assert!(
            Instant::now() < deadline,
            "node1 still subscribes to frank's channel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _frank = c.node(1).ws("u-frank").await;
    assert_eq!(erin.presence_of("u-frank").await["online"], true);
    dave.no_event("presence", Duration::from_millis(800)).await;
    dave.close().await;
    carol.no_event("presence", Duration::from_millis(800)).await;
}

#[tokio::test]
async fn a_300_member_group_gets_every_message_on_every_node_in_seq_order() {
    // 300 members travel on the channel every node hears (one part, not 300); the member
    // change after the messages carries each member's own unread count, filled in at delivery.
    let c = Cluster::start(3, &[("RATE_BURST", "1000")]).await;
    let users: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let others: Vec<&str> = users.iter().skip(1).map(String::as_str).collect();
    let tid = c.node(0).http(&users[0]).group("big", &others).await;
    let mut clients = Vec::new();
    for (i, u) in users.iter().enumerate() {
        clients.push(c.node(i % 3).ws(u).await);
    }
    const N: i64 = 5;
    let mut sender = clients.remove(0);
    for i in 0..N {
        sender.say(&tid, &format!("to all {i}")).await;
    }
    let (status, _) = c
        .node(1)
        .http("m1")
        .post(&format!("/threads/{tid}/read"), json!({"seq": 2}))
        .await;
    assert_eq!(status, 204);
    let (status, _) = c
        .node(2)
        .http("m0")
        .post(
            &format!("/threads/{tid}/members"),
            json!({"user_ids": ["newbie"]}),
        )
        .await;
    assert_eq!(status, 200);
    let ev = sender.event("thread").await;
    assert_eq!(
        (ev["event"].as_str(), ev["thread"]["unread"].as_i64()),
        (Some("member_added"), Some(0)),
        "the sender has read its own messages"
    );
    let mut tasks = Vec::new();
    for (i, mut cl) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..N {
                seqs.push(
                    cl.event("message").await["message"]["seq"]
                        .as_i64()
                        .unwrap(),
                );
            }
            let ev = cl.event("thread").await;
            assert_eq!(ev["event"], "member_added");
            let members = ev["thread"]["members"].as_array().unwrap().len();
            assert_eq!(members, 301, "m{}", i + 1);
            (seqs, ev["thread"]["unread"].as_i64())
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (seqs, unread) = t.await.unwrap();
        assert_eq!(seqs, (1..=N).collect::<Vec<_>>());
        let expected = if i == 0 { N - 2 } else { N };
        assert_eq!(unread, Some(expected), "m{}'s own unread", i + 1);
    }
}

#[tokio::test]
async fn senders_on_two_nodes_into_one_thread_reach_everyone_in_seq_order() {
    let c = Cluster::start(2, &[("RATE_BURST", "1000"), ("RATE_PER_S", "1000")]).await;
    let senders: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let mut members: Vec<&str> = senders.iter().map(String::as_str).collect();
    members.extend(["r0", "r1"]);
    let tid = c.node(0).http("r0").group("busy", &members).await;
    let mut readers = [c.node(0).ws("r0").await, c.node(1).ws("r1").await];
    const EACH: usize = 30;
    let mut tasks = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let mut client = c.node(i % 2).ws(s).await;
        let tid = tid.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                client.say(&tid, &format!("{n}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = (senders.len() * EACH) as i64;
    for r in readers.iter_mut() {
        let mut seqs = Vec::new();
        for _ in 0..total {
            seqs.push(r.event("message").await["message"]["seq"].as_i64().unwrap());
        }
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn socket_cap_and_send_rate_hold_across_nodes() {
    let c = Cluster::start(
        2,
        &[
            ("MAX_SESSIONS_PER_USER", "3"),
            ("RATE_PER_S", "1"),
            // Creating the thread below takes one; four sends take the rest.
            ("RATE_BURST", "5"),
        ],
    )
    .await;
    let mut oldest = c.node(0).ws("alice").await;
    let _s2 = c.node(1).ws("alice").await;
    let _s3 = c.node(0).ws("alice").await;
    let mut s4 = c.node(1).ws("alice").await;
    assert_eq!(
        oldest.closed(Duration::from_secs(5)).await,
        Ended::Code(4009)
    );

    let tid = c.node(0).http("alice").direct("bob").await;
    let mut on_b = c.node(1).ws("alice").await;
    // Alternating nodes, sends go through until the one budget is spent. One more may get in
    // per second the test takes (the refill), so a slow machine cannot make this flaky.
    let started = Instant::now();
    let mut accepted = 0u64;
    let limited = loop {
        let (who, node) = if accepted % 2 == 0 {
            (&mut s4, "node0")
        } else {
            (&mut on_b, "node1")
        };
        let r = who
            .call(json!({"type":"send","thread_id":tid,"body":accepted.to_string()}))
            .await;
        if r["type"] == "ack" {
            accepted += 1;
            assert!(accepted < 40, "never rate limited");
            continue;
        }
        assert_eq!(r["code"], "rate_limited", "on {node}: {r}");
        break r;
    };
    let refills = started.elapsed().as_secs();
    assert!(
        (4..=4 + refills).contains(&accepted),
        "{accepted} sends accepted in {refills}s on a budget of 4 + 1/s"
    );
    let wait = limited["retry_after_ms"].as_u64().unwrap();
    assert!(wait > 0);
    // The other node refuses too while the shared budget is empty.
    let asked = Instant::now();
    let other = if accepted % 2 == 0 {
        &mut on_b
    } else {
        &mut s4
    };
    let r = other
        .call(json!({"type":"send","thread_id":tid,"body":"again"}))
        .await;
    if asked.elapsed() < Duration::from_millis(wait) {
        assert_eq!(r["code"], "rate_limited", "{r}");
    }
}

/// Checks of the shared send rate travel to Redis in batches: a burst of concurrent sends by
/// one user from four sockets on two nodes (many checks of one key in one batch) is admitted
/// up to the budget and no further, and every refused send is told when to retry.
#[tokio::test]
async fn concurrent_sends_on_two_nodes_share_one_budget() {
    let c = Cluster::start(2, &[("RATE_PER_S", "1"), ("RATE_BURST", "11")]).await;
    // From the first token taken: every second since may add one.
    let started = Instant::now();
    // Creating the thread takes one of the eleven: ten are left for the sends.
    let tid = c.node(0).http("alice").direct("bob").await;
    let mut sockets = [
        c.node(0).ws("alice").await,
        c.node(1).ws("alice").await,
        c.node(0).ws("alice").await,
        c.node(1).ws("alice").await,
    ];
    // Ten sends queued on each socket before any reply is read.
    for (s, socket) in sockets.iter_mut().enumerate() {
        for i in 0..10 {
            socket
                .send(json!({"type":"send","thread_id":tid,"body":"b","ref":format!("s{s}-{i}")}))
                .await;
        }
    }
    let (mut acked, mut limited) = (0u64, 0u64);
    for (s, socket) in sockets.iter_mut().enumerate() {
        for i in 0..10 {
            let r = socket.reply_to(&format!("s{s}-{i}")).await;
            match r["type"].as_str() {
                Some("ack") => acked += 1,
                _ => {
                    assert_eq!(r["code"], "rate_limited", "{r}");
                    assert!(r["retry_after_ms"].as_u64().unwrap() > 0, "{r}");
                    limited += 1;
                }
            }
        }
    }
    let refills = started.elapsed().as_secs();
    assert_eq!(acked + limited, 40);
    assert!(
        (10..=10 + refills).contains(&acked),
        "{acked} of 40 concurrent sends accepted in {refills}s on a budget of 10 + 1/s"
    );
}

/// With Redis a send is queued before its rate check comes back, and the commit waits for
/// it: a send it refuses stores nothing and leaves no gap in `seq`, and a resend of a stored
/// message, refused by the rate, is still answered with the original.
#[tokio::test]
async fn a_send_refused_after_it_was_queued_stores_nothing_and_a_resend_gets_its_original() {
    let c = Cluster::start(2, &[("RATE_PER_S", "1"), ("RATE_BURST", "4")]).await;
    let started = Instant::now();
    // Creating the thread takes one token, the first send another: two are left.
    let tid = c.node(0).http("alice").direct("bob").await;
    let mut alice = c.node(0).ws("alice").await;
    let first = alice
        .ok(json!({"type":"send","thread_id":tid,"body":"once","client_id":"keep"}))
        .await;
    // A burst past the budget, and the resend behind it, before any reply is read.
    for i in 0..8 {
        alice
            .send(json!({"type":"send","thread_id":tid,"body":"more","ref":format!("m{i}")}))
            .await;
    }
    alice
        .send(json!({"type":"send","thread_id":tid,"body":"once","client_id":"keep","ref":"again"}))
        .await;
    let mut acked = 1;
    let mut outcomes = String::new();
    for i in 0..8 {
        let r = alice.reply_to(&format!("m{i}")).await;
        if r["type"] == "ack" {
            acked += 1;
            outcomes.push('a');
        } else {
            assert_eq!(r["code"], "rate_limited", "{r}");
            assert!(r["retry_after_ms"].as_u64().unwrap() > 0, "{r}");
            outcomes.push('r');
        }
    }
    let refills = started.elapsed().as_secs();
    if refills == 0 {
        // Checks take tokens in the order they were asked: the first sends of the burst
        // get the last tokens, never a later one ahead of an earlier one.
        assert_eq!(
            outcomes, "aarrrrrr",
            "acked (a) and refused (r), in send order"
        );
    }
    assert!(
        (3..=3 + refills).contains(&acked),
        "{acked} of 9 sends accepted in {refills}s on a budget of 3 + 1/s"
    );
    let again = alice.reply_to("again").await;
    assert_eq!(again["type"], "ack", "{again}");
    assert_eq!(again["message"]["id"], first["message"]["id"]);
    // Stored: exactly the acknowledged messages, seqs without a gap, read on the other node.
    let (_, h) = c
        .node(1)
        .http("alice")
        .get(&format!("/threads/{tid}/messages?after_seq=0"))
        .await;
    let seqs: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=acked).collect::<Vec<_>>(), "{h}");
}
