//! Presence across a user's devices: watchers and direct partners, online until the last
//! session closes, last_seen, and lookups that agree with the events.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::Server;

both! {
    async fn presence_is_seen_only_within_shared_threads_and_orgs(b) {
        // The default scope, `shared`.
        let s = Server::start(b).await;
        let mut carol = s.ws("carol").await;
        let dave = s.ws("dave").await;
        let _erin = s.ws_in("erin", &["acme"]).await;
        let _frank = s.ws_in("frank", &["acme"]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // No shared thread or org: left out of the reply, and not watched.
        let w = carol.ok(json!({"type":"watch_presence","user_ids":["dave"]})).await;
        assert_eq!(w["presence"], json!([]));
        // ...and dave going and coming back sends carol nothing.
        dave.close().await;
        let _dave = s.ws("dave").await;
        carol.no_event("presence", Duration::from_millis(800)).await;
        let (st, l) = s.http("carol").get("/presence?user_ids=dave,carol").await;
        assert_eq!(st, 200);
        let ids: Vec<&str> = l.as_array().unwrap().iter().map(|p| p["user_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["carol"], "only yourself");
        // A shared group brings dave into scope.
        s.http("carol").group("g", &["dave"]).await;
        let (_, l) = s.http("carol").get("/presence?user_ids=dave").await;
        assert_eq!(l[0]["online"], true);
        // A shared organisation does too.
        let (_, l) = s.http_in("frank", &["acme"]).get("/presence?user_ids=erin,dave").await;
        let ids: Vec<&str> = l.as_array().unwrap().iter().map(|p| p["user_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["erin"]);
        // The host sees everyone.
        let host = Server::start_host(b, &[]).await;
        let (_, l) = host.host(crate::harness::API_KEY).get("/presence?user_ids=dave,zed").await;
        assert_eq!(l.as_array().unwrap().len(), 2);
    }

    async fn online_until_the_last_session_closes(b) {
        let s = Server::start_with(b, &[("PRESENCE_SCOPE", "all")]).await;
        let mut carol = s.ws("carol").await;
        let w = carol.ok(json!({"type":"watch_presence","user_ids":["dave"]})).await;
        assert_eq!(w["presence"], json!([{"user_id":"dave","online":false,"last_seen":null}]));

        let phone = s.ws("dave").await;
        let p = carol.event("presence").await;
        assert_eq!(p, json!({"type":"presence","user_id":"dave","online":true,"last_seen":null}));
        let laptop = s.ws("dave").await;
        phone.close().await;
        // One device left: still online, no event.
        carol.no_event("presence", Duration::from_millis(400)).await;
        let (_, l) = s.http("carol").get("/presence?user_ids=dave,nobody").await;
        assert_eq!(l[0]["online"], true);
        assert_eq!(l[1], json!({"user_id":"nobody","online":false,"last_seen":null}));

        laptop.close().await;
        let p = carol.event("presence").await;
        assert_eq!(p["online"], false);
        let seen = p["last_seen"].as_str().unwrap().to_string();
        let (_, l) = s.http("carol").get("/presence?user_ids=dave").await;
        assert_eq!(l, json!([{"user_id":"dave","online":false,"last_seen":seen}]));

        // Unwatched: no more events.
        carol.ok(json!({"type":"unwatch_presence","user_ids":["dave"]})).await;
        let again = s.ws("dave").await;
        carol.no_event("presence", Duration::from_millis(400)).await;
        drop(again);
    }

    async fn a_session_watches_at_most_a_thousand_users(b) {
        let s = Server::start_with(b, &[("PRESENCE_SCOPE", "all")]).await;
        let mut c = s.ws("carol").await;
        let first: Vec<String> = (0..500).map(|i| format!("a{i}")).collect();
        let second: Vec<String> = (0..500).map(|i| format!("b{i}")).collect();
        c.ok(json!({"type":"watch_presence","user_ids":first})).await;
        c.ok(json!({"type":"watch_presence","user_ids":second})).await;
        c.err(json!({"type":"watch_presence","user_ids":["one-too-many"]}), "too_large").await;
        // Watching someone already watched, or unwatching, still works.
        c.ok(json!({"type":"watch_presence","user_ids":["a1"]})).await;
        c.ok(json!({"type":"unwatch_presence","user_ids":["a1"]})).await;
        c.ok(json!({"type":"watch_presence","user_ids":["one-more"]})).await;
    }

    async fn direct_partners_see_presence_without_watching(b) {
        let s = Server::start(b).await;
        s.http("alice").direct("bob").await;
        s.http("alice").group("g", &["carol"]).await;
        let mut alice = s.ws("alice").await;
        let mut carol = s.ws("carol").await;
        let bob = s.ws("bob").await;
        let p = alice.event("presence").await;
        assert_eq!((p["user_id"].as_str(), p["online"].as_bool()), (Some("bob"), Some(true)));
        bob.close().await;
        assert_eq!(alice.event("presence").await["online"], false);
        // A group is not a direct thread: carol was not told.
        carol.no_event("presence", Duration::from_millis(300)).await;
    }

    async fn leaving_the_last_shared_thread_ends_watches_both_ways(b) {
        // dave leaves the only thread he shares with carol and frank; erin still shares g2
        // with him, so her watch of him stays.
        let s = Server::start(b).await;
        let g = s.http("carol").group("g", &["dave", "erin", "frank"]).await;
        s.http("erin").group("g2", &["dave"]).await;
        let mut carol = s.ws("carol").await;
        let mut dave = s.ws("dave").await;
        let mut erin = s.ws("erin").await;
        // Their own online events go out before anyone watches.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let w = carol.ok(json!({"type":"watch_presence","user_ids":["dave"]})).await;
        assert_eq!(w["presence"].as_array().unwrap().len(), 1);
        erin.ok(json!({"type":"watch_presence","user_ids":["dave","frank"]})).await;
        let w = dave.ok(json!({"type":"watch_presence","user_ids":["frank"]})).await;
        assert_eq!(w["presence"].as_array().unwrap().len(), 1);

        let (st, _) = s.http("carol").delete(&format!("/threads/{g}/members/dave")).await;
        assert_eq!(st, 204);
        // frank comes online: erin is told, dave (out of scope now) is not.
        let _frank = s.ws("frank").await;
        assert_eq!(erin.presence_of("frank").await["online"], true);
        dave.no_event("presence", Duration::from_millis(800)).await;
        // dave goes offline: erin is told, carol is not.
        dave.close().await;
        assert_eq!(erin.presence_of("dave").await["online"], false);
        carol.no_event("presence", Duration::from_millis(800)).await;
    }
}
