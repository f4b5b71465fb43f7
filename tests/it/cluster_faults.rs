//! Faults in a cluster: a node killed or restarted under the same name, Redis restarted,
//! paused or flooding a node, a node drained by SIGTERM, and nodes started together on a new
//! database. The nodes keep chat going and agree again once the fault is over.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Cluster, Ended};

#[tokio::test]
async fn a_killed_node_s_users_go_offline_for_watchers() {
    let c = Cluster::start(2, &[]).await;
    let mut carol = c.node(0).ws("carol").await;
    carol
        .ok(json!({"type":"watch_presence","user_ids":["dave","erin"]}))
        .await;
    let _dave = c.node(1).ws("dave").await;
    let _erin_here = c.node(0).ws("erin").await;
    let _erin_there = c.node(1).ws("erin").await;
    assert_eq!(carol.presence_of("dave").await["online"], true);
    assert_eq!(carol.presence_of("erin").await["online"], true);

    c.nodes[1].signal("KILL");
    let killed = Instant::now();
    let p = carol.event("presence").await;
    let took = killed.elapsed();
    eprintln!("presence converged {took:?} after kill -9");
    assert_eq!(
        (p["user_id"].as_str(), p["online"].as_bool()),
        (Some("dave"), Some(false))
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The reap is logged: the drain test below relies on this line's absence.
    assert!(
        c.node(0).log().contains("stopped refreshing"),
        "{}",
        c.node(0).log()
    );
    // erin still has a session on node0: she stays online.
    carol.no_event("presence", Duration::from_secs(1)).await;
    let (_, l) = c
        .node(0)
        .http("carol")
        .get("/presence?user_ids=dave,erin")
        .await;
    assert_eq!(
        (l[0]["online"].as_bool(), l[1]["online"].as_bool()),
        (Some(false), Some(true))
    );
}

#[tokio::test]
async fn a_node_restarted_under_the_same_name_withdraws_what_its_predecessor_left() {
    let mut c = Cluster::start(2, &[]).await;
    let mut carol = c.node(0).ws("carol").await;
    carol
        .ok(json!({"type":"watch_presence","user_ids":["dave"]}))
        .await;
    let _dave = c.node(1).ws("dave").await;
    assert_eq!(carol.presence_of("dave").await["online"], true);
    c.nodes[1].signal("KILL");
    // Back at once, before its liveness key could expire: nobody reaps the old one.
    c.add_node("node1", &[]).await;
    let restarted = Instant::now();
    assert_eq!(carol.presence_of("dave").await["online"], false);
    eprintln!("offline {:?} after the restart", restarted.elapsed());
    let (_, l) = c.node(0).http("carol").get("/presence?user_ids=dave").await;
    assert_eq!(l[0]["online"], false);
}

#[tokio::test]
async fn redis_restart_loses_nothing_acked_and_delivery_resumes() {
    let mut c = Cluster::start(2, &[]).await;
    let mut alice = c.node(0).ws("alice").await;
    let mut bob = c.node(1).ws("bob").await;
    let tid = c.node(0).http("alice").direct("bob").await;
    alice.say(&tid, "before").await;
    assert_eq!(bob.event("message").await["message"]["body"], "before");

    c.redis.stop();
    // Commits and acks go on without Redis; the node stays up.
    let during = alice.say(&tid, "during").await;
    assert_eq!(during["seq"], 2);
    // carol's first session on node1 opens while Redis is away.
    let mut carol = c.node(1).ws("carol").await;
    let carol_tid = c.node(0).http("alice").direct("carol").await;
    let http = reqwest::Client::new();
    let mut saw_503 = false;
    for _ in 0..50 {
        let r = http.get(c.node(0).url("/readyz")).send().await.unwrap();
        if r.status().as_u16() == 503 {
            let v: serde_json::Value = r.json().await.unwrap();
            // Names the dependency that is down, without its error text.
            assert_eq!(v["relay"], "unavailable", "{v}");
            assert_eq!(v["database"], "ok", "{v}");
            assert!(!v.to_string().contains("refused"), "{v}");
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_503, "/readyz never reported Redis down");
    // The cross-node copy of "during" did not go out, and the node says so.
    let text = http
        .get(c.node(0).url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lost = crate::harness::metric(
        &text,
        "switchboard_events_dropped_total{reason=\"relay_down\"}",
    );
    assert!(lost >= 1.0, "no relay_down drop counted:\n{text}");

    c.redis.restart().await;
    let restarted = Instant::now();
    c.all_ready(Duration::from_secs(20)).await;
    // Cross-node delivery resumes without restarting a gateway.
    let mut resumed = None;
    for i in 0..40 {
        let m = alice.say(&tid, &format!("after {i}")).await;
        if let Ok(got) =
            tokio::time::timeout(Duration::from_millis(250), bob.event("message")).await
        {
            resumed = Some((m, got));
            break;
        }
    }
    let took = restarted.elapsed();
    eprintln!("cross-node delivery resumed {took:?} after Redis restarted");
    let (_, got) = resumed.expect("delivery never resumed");
    // carol's node subscribed to her channel when Redis came back.
    let mut got_carol = false;
    for i in 0..20 {
        alice.say(&carol_tid, &format!("to carol {i}")).await;
        if tokio::time::timeout(Duration::from_millis(250), carol.event("message"))
            .await
            .is_ok()
        {
            got_carol = true;
            break;
        }
    }
    assert!(
        got_carol,
        "a session opened during the outage never got cross-node events"
    );
    // A group of 32 travels as one part on the channel every node hears: node1 is
    // subscribed to it again after the restart.
    let mut members: Vec<String> = (0..30).map(|i| format!("big{i}")).collect();
    members.push("bob".into());
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let big = c.node(0).http("alice").group("big", &members).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    alice.say(&big, "to the big group").await;
    let mut got_big = false;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), bob.event("message")).await {
            Ok(m) if m["message"]["thread_id"] == big.as_str() => {
                got_big = true;
                break;
            }
            Ok(_) => {}
            Err(_) => {
                alice.say(&big, "again").await;
            }
        }
    }
    assert!(
        got_big,
        "a large group's message never crossed after the restart"
    );
    // bob sees a gap (he missed "during") and fills it from history: nothing acked is lost.
    let last = got["message"]["seq"].as_i64().unwrap();
    let h = bob
        .ok(json!({"type":"history","thread_id":tid,"after_seq":1}))
        .await;
    let seqs: Vec<i64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.starts_with(&[2]) && seqs.contains(&last), "{seqs:?}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(c.node(0).log().contains("redis unavailable"));
    assert_eq!(
        c.node(0).log().matches("redis unavailable").count(),
        1,
        "logged once per outage"
    );
    for n in 0..2 {
        let m = c.node(n).metrics().await;
        assert_eq!(
            crate::harness::metric(&m, "switchboard_redis_reconnects_total"),
            1.0,
            "node{n}: one outage, one reconnect"
        );
    }
}

#[tokio::test]
async fn sigterm_drains_a_node_and_withdraws_its_presence_at_once() {
    let mut c = Cluster::start(2, &[]).await;
    let mut carol = c.node(0).ws("carol").await;
    carol
        .ok(json!({"type":"watch_presence","user_ids":["dave"]}))
        .await;
    let mut dave = c.node(1).ws("dave").await;
    assert_eq!(carol.event("presence").await["online"], true);
    c.nodes[1].signal("TERM");
    let sent = Instant::now();
    assert_eq!(dave.closed(Duration::from_secs(5)).await, Ended::Code(1001));
    let p = carol.event("presence").await;
    assert_eq!(p["online"], false);
    let took = sent.elapsed();
    eprintln!("offline reached a watcher {took:?} after SIGTERM");
    // Withdrawn by the draining node itself, not after the liveness TTL (4 s) and a reap.
    assert!(
        took < Duration::from_secs(3),
        "offline came {took:?} after SIGTERM"
    );
    assert!(
        c.nodes[1]
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    // node1 withdrew its presence itself: node0 never had to reap it (which would wait for
    // the liveness TTL).
    assert!(c.nodes[1].log().contains("left the cluster"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !c.node(0).log().contains("stopped refreshing"),
        "{}",
        c.node(0).log()
    );
    // The client reconnects to the other node and catches up.
    let mut back = c.node(0).ws("dave").await;
    back.ok(json!({"type":"threads"})).await;
}

#[tokio::test]
async fn a_paused_redis_does_not_stop_local_chat() {
    let c = Cluster::start(2, &[]).await;
    let mut alice = c.node(0).ws("alice").await;
    let mut bob = c.node(0).ws("bob").await;
    let tid = c.node(0).http("alice").direct("bob").await;
    alice.say(&tid, "before").await;
    assert_eq!(bob.event("message").await["message"]["body"], "before");
    let dave = c.node(0).ws("dave").await;
    // Long enough for the checks below on a loaded machine (they take well under a second
    // on an idle one); the pause then ends by itself.
    c.redis.pause(Duration::from_secs(15));
    // dave leaves while Redis cannot hear of it.
    dave.close().await;
    // Same node: committed, acked and delivered while Redis answers nothing.
    for i in 0..3 {
        let m = alice.say(&tid, &format!("paused {i}")).await;
        assert_eq!(bob.event("message").await["message"], m);
    }
    let http = reqwest::Client::new();
    let r = http.get(c.node(0).url("/readyz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    // Back to ready once the pause ends, with no restart.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let r = http.get(c.node(0).url("/readyz")).send().await.unwrap();
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.node(0).log().matches("redis unavailable").count(), 1);
    // Redis is brought back in line: dave is not left online, alice is online.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, l) = c
            .node(1)
            .http("carol")
            .get("/presence?user_ids=dave,alice")
            .await;
        if l[0]["online"] == false && l[1]["online"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "presence never recovered: {l}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn three_nodes_started_together_on_a_new_database_all_come_up() {
    let dir = super::harness::TempDir::new();
    let db = super::harness::fresh_database(super::harness::Backend::Postgres, &dir.0).await;
    let start = |name: &'static str| {
        let db = db.clone();
        async move {
            super::harness::Server::spawn(super::harness::TempDir::new(), &db, &[("NODE_ID", name)])
                .await
        }
    };
    let (a, b, c) = tokio::join!(start("n0"), start("n1"), start("n2"));
    let http = reqwest::Client::new();
    for s in [&a, &b, &c] {
        let r = http.get(s.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}", s.log());
    }
    let applied: usize = [&a, &b, &c]
        .iter()
        .map(|s| s.log().matches("migration applied").count())
        .sum();
    let shipped = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"),
    )
    .unwrap()
    .count();
    assert_eq!(applied, shipped, "each migration applied once, by one node");
}

#[tokio::test]
async fn a_flood_from_redis_is_counted_and_logged_not_taken_for_an_outage() {
    // A small queue: the registry now takes what has queued in one message, and keeps up with
    // redis-cli's pace when the queue holds 16,384.
    let c = Cluster::start(2, &[("RELAY_QUEUE", "64")]).await;
    let mut bob = c.node(1).ws("bob").await;
    // Bob reads all along: a client that stopped reading would be cut off as a slow
    // consumer (4008), which is not what this test is about.
    let reader = tokio::spawn(async move {
        let mut floods = 0u64;
        while let Ok(f) = bob.read_frame(Duration::from_secs(60)).await {
            if f["ref"] == "flood" {
                floods += 1;
            }
            if f["ref"] == "last" {
                break;
            }
        }
        floods
    });
    // 200,000 envelopes for bob on bob's channel, as fast as redis-cli can pipe them: far
    // more than node1's subscriber queue holds while its registry delivers.
    // A part as docs/architecture.md describes it: a JSON header, a newline, the frame.
    let frame = serde_json::to_string(&json!({"type":"pong","ref":"flood"})).unwrap();
    let header = json!({
        "v": 2, "origin": "flood",
        "audience": {"users": ["bob"]},
        "payload": {"kind": "frame", "lane": {"lane": "durable"}},
    });
    let envelope = format!("{header}\n{frame}");
    let mut resp = Vec::new();
    for _ in 0..200_000 {
        resp.extend_from_slice(
            format!(
                "*3\r\n$7\r\nPUBLISH\r\n$8\r\nsb:u:bob\r\n${}\r\n{envelope}\r\n",
                envelope.len()
            )
            .as_bytes(),
        );
    }
    let dir = crate::harness::TempDir::new();
    let path = dir.0.join("flood.resp");
    std::fs::write(&path, resp).unwrap();
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "redis-cli -p {} --pipe < {}",
            c.redis.port,
            path.display()
        ))
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    // Dropped envelopes are counted...
    let dropped = |m: &str| {
        crate::harness::metric(
            m,
            r#"switchboard_events_dropped_total{reason="relay_queue_full"}"#,
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if dropped(&c.node(1).metrics().await) > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing counted as dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and logged once per burst, not once per envelope.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.node(1).log().contains("envelope(s) dropped") {
        assert!(Instant::now() < deadline, "the drop was never logged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = c.node(1).log().matches("envelope(s) dropped").count();
    assert!(lines < 100, "{lines} log lines for one flood");
    // The busy node never took it for a Redis outage, and still serves.
    assert!(
        !c.node(1).log().contains("redis unavailable"),
        "{}",
        c.node(1).log()
    );
    let r = reqwest::get(c.node(1).url("/readyz")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // What got through reached bob, and his node still answers him.
    let mut again = c.node(1).ws("bob").await;
    assert_eq!(again.call(json!({"type":"ping"})).await["type"], "pong");
    let last = format!("{header}\n{}", json!({"type":"pong","ref":"last"}));
    let mut redis = redis::Client::open(format!("redis://127.0.0.1:{}", c.redis.port))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("sb:u:bob")
        .arg(last)
        .query_async(&mut redis)
        .await
        .unwrap();
    let floods = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("bob's reader ended")
        .unwrap();
    assert!(floods > 0, "nothing of the flood reached bob");
}
