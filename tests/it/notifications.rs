//! Notifications: stored for every recipient (connected or not), pushed live unless
//! preferences hold them back, listed, read (other sessions told) and dismissed; templates;
//! another user's notification is never reachable.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both;
use crate::harness::{API_KEY, Server, metric};

fn ids(page: &Value) -> Vec<String> {
    page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_string())
        .collect()
}

both! {
    async fn stored_for_everyone_pushed_to_who_is_connected_and_read_everywhere(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        let mut phone = s.ws("alice").await;
        let mut laptop = s.ws("alice").await;
        let (st, v) = host
            .post("/notifications", json!({"user_ids":["alice","dave"],"category":"job","priority":"high","title":"Cleaner on the way","body":"ETA 10 min","data":{"job":123}}))
            .await;
        assert_eq!(st, 201, "{v}");
        let stored = v["notifications"].as_array().unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|n| n["pushed"] == true));
        let live = phone.event("notification").await;
        let n = &live["notification"];
        assert_eq!((n["title"].as_str(), n["priority"].as_str(), n["category"].as_str()), (Some("Cleaner on the way"), Some("high"), Some("job")));
        assert_eq!(n["data"]["job"], 123);
        assert_eq!(n["read_at"], Value::Null);
        laptop.event("notification").await;
        // dave never connected: it waits in his list.
        let dave = s.http("dave");
        let (st, page) = dave.get("/notifications").await;
        assert_eq!(st, 200);
        assert_eq!(ids(&page), ["Cleaner on the way"]);
        // Reading on one device tells the others.
        let alice = s.http("alice");
        assert_eq!(alice.get("/notifications/unread-count").await.1["count"], 1);
        let id = n["id"].as_str().unwrap();
        assert_eq!(alice.post(&format!("/notifications/{id}/read"), json!({})).await.0, 204);
        for c in [&mut phone, &mut laptop] {
            assert_eq!(c.event("notification_read").await["ids"], json!([id]));
        }
        assert_eq!(alice.get("/notifications/unread-count").await.1["count"], 0);
        let (_, page) = alice.get("/notifications").await;
        assert!(page["notifications"][0]["read_at"].is_string());
        // Someone else's notification is not found, never leaked.
        let daves = page_first_id(&dave.get("/notifications").await.1);
        assert_eq!(alice.post(&format!("/notifications/{daves}/read"), json!({})).await.0, 404);
        assert_eq!(alice.delete(&format!("/notifications/{daves}")).await.0, 404);
        assert_eq!(dave.get("/notifications/unread-count").await.1["count"], 1);
        // Read-all and dismiss.
        host.post("/notifications", json!({"user_ids":["alice"],"title":"two"})).await;
        host.post("/notifications", json!({"user_ids":["alice"],"title":"three"})).await;
        assert_eq!(alice.post("/notifications/read-all", json!({})).await.0, 204);
        assert_eq!(phone.event("notification_read").await["all"], true);
        assert_eq!(alice.get("/notifications/unread-count").await.1["count"], 0);
        assert_eq!(alice.delete(&format!("/notifications/{id}")).await.0, 204);
        assert_eq!(ids(&alice.get("/notifications").await.1), ["three", "two"]);
        assert_eq!(alice.delete("/notifications").await.0, 204);
        assert_eq!(ids(&alice.get("/notifications").await.1), Vec::<String>::new());
    }

    async fn the_list_is_newest_first_with_a_cursor_and_an_unread_filter(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        for i in 0..5 {
            host.post("/notifications", json!({"user_ids":["alice"],"title":format!("n{i}")})).await;
        }
        let alice = s.http("alice");
        let (_, p1) = alice.get("/notifications?limit=2").await;
        assert_eq!(ids(&p1), ["n4", "n3"]);
        let next = p1["next"].as_str().unwrap();
        let (_, p2) = alice.get(&format!("/notifications?limit=2&before={next}")).await;
        assert_eq!(ids(&p2), ["n2", "n1"]);
        let (_, p3) = alice.get(&format!("/notifications?limit=2&before={}", p2["next"].as_str().unwrap())).await;
        assert_eq!(ids(&p3), ["n0"]);
        assert_eq!(p3["next"], Value::Null);
        let n3 = p1["notifications"][1]["id"].as_str().unwrap();
        alice.post(&format!("/notifications/{n3}/read"), json!({})).await;
        let (_, unread) = alice.get("/notifications?unread=true").await;
        assert_eq!(ids(&unread), ["n4", "n2", "n1", "n0"]);
        assert_eq!(alice.get("/notifications?limit=0").await.0, 400);
    }

    async fn preferences_decide_what_is_pushed_never_what_is_stored(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        let bob = s.http("bob");
        let (st, p) = bob.get("/notification-preferences").await;
        assert_eq!((st, p), (200, json!({"muted_categories":[],"min_priority":"low"})));
        let (st, p) = bob.put("/notification-preferences", json!({"muted_categories":["promo"],"min_priority":"high"})).await;
        assert_eq!(st, 200, "{p}");
        assert_eq!(bob.get("/notification-preferences").await.1, json!({"muted_categories":["promo"],"min_priority":"high"}));
        assert_eq!(bob.put("/notification-preferences", json!({"min_priority":"asap"})).await.0, 400);
        let mut ws = s.ws("bob").await;
        let m0 = s.metrics().await;
        let cases = [
            ("promo", "urgent", false, "a muted category holds back even urgent"),
            ("job", "normal", false, "below the minimum"),
            ("job", "high", true, "at the minimum"),
            ("chat", "urgent", true, "urgent goes through whatever the minimum"),
        ];
        for (category, priority, pushed, why) in cases {
            let (st, v) = host
                .post("/notifications", json!({"user_ids":["bob"],"category":category,"priority":priority,"title":format!("{category}/{priority}")}))
                .await;
            assert_eq!(st, 201);
            assert_eq!(v["notifications"][0]["pushed"], pushed, "{why}");
        }
        let mut got = Vec::new();
        for _ in 0..2 {
            got.push(ws.event("notification").await["notification"]["title"].as_str().unwrap().to_string());
        }
        assert_eq!(got, ["job/high", "chat/urgent"]);
        ws.no_event("notification", Duration::from_millis(300)).await;
        // All four are in the list.
        assert_eq!(ids(&bob.get("/notifications").await.1).len(), 4);
        let m1 = s.metrics().await;
        let moved = |o: &str| {
            let k = format!("switchboard_notifications_total{{outcome=\"{o}\"}}");
            metric(&m1, &k) - metric(&m0, &k)
        };
        assert_eq!((moved("pushed"), moved("muted")), (2.0, 2.0));
    }

    async fn templates_render_their_vars_and_name_a_missing_one(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        let (st, t) = host
            .put("/templates/cleaner_on_way", json!({"category":"job","priority":"high","title":"{{name}} is on the way","body":"Arrives in {{mins}} min"}))
            .await;
        assert_eq!(st, 200, "{t}");
        let (st, list) = host.get("/templates").await;
        assert_eq!(st, 200);
        assert_eq!(list["templates"][0]["key"], "cleaner_on_way");
        let mut ws = s.ws("alice").await;
        let (st, v) = host
            .post("/notifications", json!({"user_ids":["alice"],"template":"cleaner_on_way","vars":{"name":"Ana","mins":12}}))
            .await;
        assert_eq!(st, 201, "{v}");
        let n = ws.event("notification").await;
        assert_eq!(n["notification"]["title"], "Ana is on the way");
        assert_eq!(n["notification"]["body"], "Arrives in 12 min");
        assert_eq!(n["notification"]["priority"], "high");
        // What is stored is the rendered text.
        assert_eq!(ids(&s.http("alice").get("/notifications").await.1), ["Ana is on the way"]);
        let (st, v) = host
            .post("/notifications", json!({"user_ids":["alice"],"template":"cleaner_on_way","vars":{"name":"Ana"}}))
            .await;
        assert_eq!(st, 400);
        assert!(v["error"]["message"].as_str().unwrap().contains("mins"), "{v}");
        let (st, _) = host.post("/notifications", json!({"user_ids":["alice"],"template":"nope"})).await;
        assert_eq!(st, 404);
        assert_eq!(host.delete("/templates/cleaner_on_way").await.0, 204);
        assert_eq!(host.delete("/templates/cleaner_on_way").await.0, 404);
        let (st, _) = host.post("/notifications", json!({"user_ids":["alice"],"template":"cleaner_on_way","vars":{"name":"A","mins":1}})).await;
        assert_eq!(st, 404);
        assert_eq!(host.put("/templates/bad", json!({"title":"{{open"})).await.0, 400);
    }
}

fn page_first_id(page: &Value) -> String {
    page["notifications"][0]["id"].as_str().unwrap().to_string()
}
