//! The membership cache (`roster`): receipts and typing are addressed from a node's cached
//! members, and a membership change reaches that cache before its `thread` event does, on
//! the node that made it and on every other node, also after Redis restarts and after the
//! node that made it was cut off from Redis. Edits read their members afresh.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both;
use crate::harness::{Client, Cluster, Proxy, Server, metric};

/// How long an event that must not come is waited for.
const QUIET: Duration = Duration::from_millis(400);
/// The most a node's cache may hold an entry (`roster::TTL`): a test that takes longer could
/// pass on expiry alone, so the tests below check they did not.
const TTL: Duration = Duration::from_secs(10);

/// Member lookups the cache of `node` answered.
async fn cache_hits(node: &Server) -> f64 {
    metric(
        &node.metrics().await,
        "switchboard_members_cache_total{result=\"hit\"}",
    )
}

/// Each of `to` gets bob's next `kind` event, its `field` equal to `value`.
async fn each_sees(to: &mut [&mut Client], kind: &str, field: &str, value: Value) {
    for c in to.iter_mut() {
        let e = c.event(kind).await;
        assert_eq!(
            (e["user_id"].as_str(), &e[field]),
            (Some("bob"), &value),
            "{e}"
        );
    }
}

/// Starts a typing indicator and stops it; the others in `to` see both.
async fn type_once(bob: &mut Client, tid: &str, to: &mut [&mut Client]) {
    for on in [true, false] {
        bob.send(json!({"type":"typing","thread_id":tid,"is_typing":on}))
            .await;
        each_sees(to, "typing", "is_typing", json!(on)).await;
    }
}

/// Reads up to `seq`; each of `to` sees bob's receipt.
async fn read_up_to(bob: &mut Client, tid: &str, seq: i64, to: &mut [&mut Client]) {
    bob.ok(json!({"type":"read","thread_id":tid,"seq":seq}))
        .await;
    each_sees(to, "read", "seq", json!(seq)).await;
}

/// Waits until `n` nodes subscribe to the membership channel.
async fn wait_for_subscribers(c: &Cluster, n: i64) {
    for _ in 0..100 {
        if c.redis.subscribers("sb:members") == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the nodes never subscribed to sb:members");
}

/// alice (on node0) and bob (on node1) in a group, once node1's cache holds them both (a
/// receipt of bob's addressed them); and when that was.
async fn cached_on_node1(c: &Cluster) -> (Client, Client, String, Instant) {
    wait_for_subscribers(c, 2).await;
    let mut alice = c.node(0).ws("alice").await;
    let mut bob = c.node(1).ws("bob").await;
    let tid = c.node(0).http("alice").group("g", &["bob"]).await;
    bob.event("thread").await;
    alice.say(&tid, "one").await;
    bob.event("message").await;
    read_up_to(&mut bob, &tid, 1, &mut [&mut alice]).await;
    (alice, bob, tid, Instant::now())
}

/// Fails unless the test got here before an entry cached at `filled` could expire: a pass
/// must not be explained by expiry alone.
fn within_ttl(filled: Instant) {
    assert!(
        filled.elapsed() < TTL,
        "took {:?}: expiry alone could explain it",
        filled.elapsed()
    );
}

/// alice adds dave to the group through `node`.
async fn add_dave(node: &Server, tid: &str) {
    let (st, t) = node
        .http("alice")
        .post(
            &format!("/threads/{tid}/members"),
            json!({"user_ids":["dave"]}),
        )
        .await;
    assert_eq!(st, 200, "{t}");
}

/// alice changes the group through `admin`; bob, carol and dave are on `here`, where bob's
/// receipts and typing are addressed from `here`'s cache.
async fn members_follow_changes(admin: &Server, here: &Server) {
    let mut alice = admin.ws("alice").await;
    let mut bob = here.ws("bob").await;
    let mut carol = here.ws("carol").await;
    let mut dave = here.ws("dave").await;
    let tid = admin.http("alice").group("g", &["bob", "carol"]).await;
    for c in [&mut bob, &mut carol] {
        assert_eq!(c.event("thread").await["event"], "created");
    }
    alice.say(&tid, "one").await;
    for c in [&mut bob, &mut carol] {
        c.event("message").await;
    }
    // Fills `here`'s cache with alice, bob and carol.
    read_up_to(&mut bob, &tid, 1, &mut [&mut alice, &mut carol]).await;
    type_once(&mut bob, &tid, &mut [&mut alice, &mut carol]).await;

    let (st, _) = admin
        .http("alice")
        .delete(&format!("/threads/{tid}/members/carol"))
        .await;
    assert_eq!(st, 204);
    assert_eq!(bob.event("thread").await["event"], "member_removed");
    assert_eq!(carol.event("thread").await["event"], "member_removed");
    alice.say(&tid, "two").await;
    bob.event("message").await;
    read_up_to(&mut bob, &tid, 2, &mut [&mut alice]).await;
    type_once(&mut bob, &tid, &mut [&mut alice]).await;
    carol.no_event("read", QUIET).await;
    carol.no_event("typing", Duration::ZERO).await;

    add_dave(admin, &tid).await;
    assert_eq!(bob.event("thread").await["event"], "member_added");
    assert_eq!(dave.event("thread").await["event"], "member_added");
    type_once(&mut bob, &tid, &mut [&mut alice, &mut dave]).await;
    let three = alice.say(&tid, "three").await;
    for c in [&mut bob, &mut dave] {
        c.event("message").await;
    }
    // This receipt is addressed from the cache, refilled after the change.
    let hits = cache_hits(here).await;
    read_up_to(&mut bob, &tid, 3, &mut [&mut alice, &mut dave]).await;
    assert!(
        cache_hits(here).await > hits,
        "the receipt was not addressed from the cache"
    );

    // An edit reads its members afresh, on whichever node it is made.
    let (st, _) = here
        .http("alice")
        .patch(
            &format!("/messages/{}", three["id"].as_str().unwrap()),
            json!({"body":"three, edited"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        dave.event("message_updated").await["message"]["body"],
        "three, edited"
    );
    carol.no_event("message_updated", QUIET).await;
    carol.no_event("message", Duration::ZERO).await;
}

both! {
    async fn receipts_typing_and_edits_follow_member_changes_at_once(b) {
        let s = Server::start(b).await;
        members_follow_changes(&s, &s).await;
    }
}

#[tokio::test]
async fn a_change_on_one_node_reaches_the_other_nodes_cache_before_its_event() {
    let c = Cluster::start(2, &[]).await;
    // Each node trusts its cache once it has subscribed to the changes.
    wait_for_subscribers(&c, 2).await;
    members_follow_changes(c.node(0), c.node(1)).await;
}

#[tokio::test]
async fn after_redis_restarts_no_node_addresses_from_a_cache_that_missed_a_change() {
    let mut c = Cluster::start(2, &[]).await;
    let (mut alice, mut bob, tid, filled) = cached_on_node1(&c).await;

    c.redis.stop();
    // node0 cannot tell node1 of dave: the change commits all the same.
    add_dave(c.node(0), &tid).await;
    c.redis.restart().await;
    c.all_ready(Duration::from_secs(20)).await;
    let mut dave = c.node(1).ws("dave").await;
    alice.say(&tid, "two").await;
    bob.event("message").await;
    dave.event("message").await;
    read_up_to(&mut bob, &tid, 2, &mut [&mut dave]).await;
    type_once(&mut bob, &tid, &mut [&mut dave]).await;
    within_ttl(filled);
}

#[tokio::test]
async fn a_node_cut_off_from_redis_tells_the_others_of_its_changes_once_it_is_back() {
    let mut c = Cluster::start(0, &[]).await;
    // node0 reaches Redis through a proxy the test can stop; node1 directly.
    let proxy = Proxy::start(&format!("127.0.0.1:{}", c.redis.port)).await;
    let through = format!("redis://127.0.0.1:{}", proxy.port);
    c.add_node("node0", &[("REDIS_URL", through.as_str())])
        .await;
    c.add_node("node1", &[]).await;
    let (mut alice, mut bob, tid, filled) = cached_on_node1(&c).await;

    // node1 still hears Redis, and nothing tells it of dave while node0 cannot publish.
    proxy.cut();
    add_dave(c.node(0), &tid).await;
    let r = reqwest::get(c.node(0).url("/readyz")).await.unwrap();
    let st = r.status().as_u16();
    let ready: Value = r.json().await.unwrap();
    assert_eq!(
        (st, ready["relay"].as_str()),
        (503, Some("unavailable")),
        "node0 was not cut off: {ready}"
    );
    proxy.mend();
    // Ready again only once it has told the others what they missed.
    c.all_ready(Duration::from_secs(20)).await;
    assert!(
        c.node(0)
            .log()
            .contains("told the other nodes of membership changes"),
        "{}",
        c.node(0).log()
    );
    let mut dave = c.node(1).ws("dave").await;
    alice.say(&tid, "two").await;
    bob.event("message").await;
    dave.event("message").await;
    read_up_to(&mut bob, &tid, 2, &mut [&mut dave]).await;
    within_ttl(filled);
}
