//! Threads: creation, listing with cursors, titles, members and `thread` events.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::Server;

both! {
    async fn group_lifecycle_emits_thread_events(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let mut carol = s.ws("carol").await;
        let http = s.http("alice");
        let (st, t) = http.post("/threads", json!({"kind":"group","title":"Team","members":["bob"]})).await;
        assert_eq!(st, 201);
        assert_eq!(t["members"], json!(["alice","bob"]));
        assert_eq!(t["title"], "Team");
        assert_eq!(t["last_message"], json!(null));
        let tid = t["id"].as_str().unwrap().to_string();
        assert_eq!(bob.event("thread").await["event"], "created");
        assert_eq!(alice.event("thread").await["event"], "created");

        alice.say(&tid, "before carol").await;
        // Any member may add.
        let (st, t) = s.http("bob").post(&format!("/threads/{tid}/members"), json!({"user_ids":["carol"]})).await;
        assert_eq!(st, 200, "{t}");
        let ev = carol.event("thread").await;
        assert_eq!(ev["event"], "member_added");
        assert_eq!(ev["thread"]["members"], json!(["alice","bob","carol"]));
        // A newcomer starts with nothing unread.
        assert_eq!(ev["thread"]["unread"], 0);
        let ev = bob.event("thread").await;
        assert_eq!(ev["thread"]["unread"], 1, "bob has alice's message unread");

        let (st, t) = http.patch(&format!("/threads/{tid}"), json!({"title":"Team 2"})).await;
        assert_eq!((st, t["title"].as_str()), (200, Some("Team 2")));
        assert_eq!(carol.event("thread").await["event"], "updated");

        // Only the creator removes others (bob is a member, not the creator).
        let (st, v) = s.http("bob").delete(&format!("/threads/{tid}/members/carol")).await;
        assert_eq!((st, v["error"]["code"].as_str()), (403, Some("forbidden")));
        let (st, _) = http.delete(&format!("/threads/{tid}/members/carol")).await;
        assert_eq!(st, 204);
        let ev = carol.event("thread").await;
        assert_eq!(ev["event"], "member_removed");
        assert_eq!(ev["thread"]["members"], json!(["alice","bob"]));
        assert_eq!(bob.event("thread").await["event"], "updated");
        assert_eq!(bob.event("thread").await["event"], "member_removed");
        // Carol is out: no more messages, and the thread is closed to her.
        alice.say(&tid, "after carol").await;
        carol.no_event("message", Duration::from_millis(300)).await;
        carol.err(json!({"type":"history","thread_id":tid}), "forbidden").await;
        // Bob leaves by himself.
        let (st, _) = s.http("bob").delete(&format!("/threads/{tid}/members/bob")).await;
        assert_eq!(st, 204);
        let (st, _) = s.http("bob").get(&format!("/threads/{tid}")).await;
        assert_eq!(st, 403);
    }

    async fn direct_threads_are_unique_per_pair(b) {
        let s = Server::start(b).await;
        let (st, t1) = s.http("alice").post("/threads", json!({"kind":"direct","members":["bob"]})).await;
        assert_eq!(st, 201);
        let (st, t2) = s.http("bob").post("/threads", json!({"kind":"direct","members":["alice"]})).await;
        assert_eq!(st, 200);
        assert_eq!(t1["id"], t2["id"]);
        let (st, _) = s.http("alice").post("/threads", json!({"kind":"direct","members":["bob","carol"]})).await;
        assert_eq!(st, 400);
        let (st, _) = s.http("alice").post("/threads", json!({"kind":"circle","members":["bob"]})).await;
        assert_eq!(st, 400);
        let tid = t1["id"].as_str().unwrap();
        let (st, _) = s.http("alice").post(&format!("/threads/{tid}/members"), json!({"user_ids":["carol"]})).await;
        assert_eq!(st, 400);
    }

    async fn threads_list_most_recent_first_with_cursor(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let http = s.http("alice");
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(http.direct(&format!("u{i}")).await);
        }
        // Activity in u1's thread moves it to the top.
        let m = alice.say(&ids[1], "bump").await;
        let page = alice.ok(json!({"type":"threads","limit":2})).await;
        let got: Vec<&str> = page["threads"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(got, vec![ids[1].as_str(), ids[4].as_str()]);
        assert_eq!(page["threads"][0]["last_message"], m);
        assert_eq!(page["threads"][0]["last_seq"], 1);
        let next = page["next"].as_str().unwrap().to_string();
        let page2 = alice.ok(json!({"type":"threads","limit":2,"before":next})).await;
        let got2: Vec<&str> = page2["threads"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(got2, vec![ids[3].as_str(), ids[2].as_str()]);
        let page3 = alice.ok(json!({"type":"threads","limit":2,"before":page2["next"]})).await;
        assert_eq!(page3["threads"].as_array().unwrap().len(), 1);
        assert_eq!(page3["next"], json!(null));
        // REST is the same list.
        let (_, rest) = http.get("/threads?limit=2").await;
        assert_eq!(rest["threads"][0]["id"], ids[1].as_str());
        assert_eq!(rest["next"], page["next"]);
        alice.err(json!({"type":"threads","before":"garbage"}), "bad_request").await;
        alice.err(json!({"type":"threads","limit":201}), "bad_request").await;
    }
}

both! {
    async fn the_group_cap_holds_on_create_and_under_concurrent_adds(b) {
        let s = Server::start_with(b, &[("MAX_GROUP_MEMBERS", "4")]).await;
        let alice = s.http("alice");
        let (st, v) = alice
            .post("/threads", json!({"kind":"group","title":"big","members":["b","c","d","e"]}))
            .await;
        assert_eq!((st, v["error"]["code"].as_str()), (413, Some("too_large")));
        let tid = alice.group("g", &["b"]).await;
        // Ten adds at once, for two free places: exactly two get in.
        let adds = (0..10).map(|i| {
            let http = s.http("alice");
            let path = format!("/threads/{tid}/members");
            async move { http.post(&path, json!({"user_ids":[format!("u{i}")]})).await.0 }
        });
        let statuses = futures_util::future::join_all(adds).await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 413).count(), 8, "{statuses:?}");
        let (_, t) = alice.get(&format!("/threads/{tid}")).await;
        assert_eq!(t["members"].as_array().unwrap().len(), 4);
    }
}
