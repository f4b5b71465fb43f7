//! The host backend's API (`/api/v1/server`): the key, threads idempotent on `external_ref`,
//! members, messages of any kind, `Idempotency-Key`, broadcasts, presence and organisations.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::{API_KEY, Ended, Server};

both! {
    async fn only_the_key_opens_the_server_api_and_only_tokens_open_user_routes(b) {
        let off = Server::start(b).await;
        // No key configured: the server API is off, whatever is presented.
        for key in ["", "anything", API_KEY] {
            let (st, v) = off.host(key).get("/templates").await;
            assert_eq!(st, 401, "{key:?}: {v}");
            assert_eq!(v["error"]["code"], "unauthorized");
        }
        assert!(off.log().contains("the server API (/api/v1/server) is off"));
        let s = Server::start_host(b, &[]).await;
        assert_eq!(s.host("wrong-key").get("/templates").await.0, 401);
        assert_eq!(s.host(&s.token("alice")).get("/templates").await.0, 401, "a user token");
        assert_eq!(s.host(API_KEY).get("/templates").await.0, 200);
        // Unknown server paths: 401 without the key, 404 with it.
        assert_eq!(s.host("wrong-key").get("/nothing/here").await.0, 401);
        assert_eq!(s.host(API_KEY).get("/nothing/here").await.0, 404);
        // No user may be `system`, the sender of the host's messages.
        let (st, v) = s.http("system").get("/threads").await;
        assert_eq!((st, v["error"]["code"].as_str()), (401, Some("unauthorized")));
        // The key is not a user token.
        let mut as_user = s.http("alice");
        as_user.token = Some(API_KEY.into());
        assert_eq!(as_user.get("/threads").await.0, 401);
    }

    async fn threads_are_idempotent_on_external_ref(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        let mut cleaner = s.ws("cleaner").await;
        let body = json!({"title":"Job 123","members":["client","cleaner"],"external_ref":"job:123"});
        let (st, t) = host.post("/threads", body.clone()).await;
        assert_eq!(st, 201, "{t}");
        assert_eq!(t["kind"], "group");
        assert_eq!(t["external_ref"], "job:123");
        // Join order; members who joined together, by id.
        assert_eq!(t["members"], json!(["cleaner", "client"]));
        assert!(t.get("unread").is_none(), "the host has no unread count: {t}");
        let ev = cleaner.event("thread").await;
        assert_eq!((ev["event"].as_str(), ev["thread"]["id"].clone()), (Some("created"), t["id"].clone()));
        // Again, same members: the same thread, nothing new.
        let (st, again) = host.post("/threads", body).await;
        assert_eq!((st, again["id"].clone()), (200, t["id"].clone()));
        // The same ref with other members is a conflict.
        let (st, v) = host
            .post("/threads", json!({"members":["client","other"],"external_ref":"job:123"}))
            .await;
        assert_eq!((st, v["error"]["code"].as_str()), (409, Some("conflict")));
        let (st, by_ref) = host.get("/threads/by-ref/job:123").await;
        assert_eq!((st, by_ref["id"].clone()), (200, t["id"].clone()));
        assert_eq!(host.get("/threads/by-ref/job:999").await.0, 404);
        let tid = t["id"].as_str().unwrap();
        assert_eq!(host.get(&format!("/threads/{tid}")).await.0, 200);
        assert_eq!(host.get("/threads/nope").await.0, 404);
        // Members: added and removed by the host; a removed member is told.
        let (st, t2) = host.post(&format!("/threads/{tid}/members"), json!({"user_ids":["dispatcher"]})).await;
        assert_eq!(st, 200, "{t2}");
        assert_eq!(t2["members"], json!(["cleaner", "client", "dispatcher"]));
        assert_eq!(cleaner.event("thread").await["event"], "member_added");
        let (st, _) = host.delete(&format!("/threads/{tid}/members/cleaner")).await;
        assert_eq!(st, 204);
        let ev = cleaner.event("thread").await;
        assert_eq!(ev["event"], "member_removed");
        assert_eq!(ev["thread"]["members"], json!(["client", "dispatcher"]));
        // Nobody may remove others but the creator, and the host created this thread.
        let (st, _) = s.http("client").delete(&format!("/threads/{tid}/members/dispatcher")).await;
        assert_eq!(st, 403);
        // Anyone may leave.
        let (st, _) = s.http("client").delete(&format!("/threads/{tid}/members/client")).await;
        assert_eq!(st, 204);
    }

    async fn system_messages_of_any_kind_reach_members_once(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        let (_, t) = host.post("/threads", json!({"members":["client","cleaner"],"external_ref":"job:7"})).await;
        let tid = t["id"].as_str().unwrap().to_string();
        let mut client = s.ws("client").await;
        let payment = json!({"kind":"payment","body":"Payment received: 40 EUR","metadata":{"amount_cents":4000,"currency":"EUR"}});
        let (st, v, replayed) = host.post_once(&format!("/threads/{tid}/messages"), payment.clone(), "pay-7").await;
        assert_eq!(st, 200, "{v}");
        assert!(!replayed);
        let m = &v["message"];
        assert_eq!((m["kind"].as_str(), m["sender_id"].as_str(), m["seq"].as_i64()), (Some("payment"), Some("system"), Some(1)));
        assert_eq!(m["metadata"]["amount_cents"], 4000);
        let ev = client.event("message").await;
        assert_eq!(ev["message"]["id"], m["id"]);
        // The host retries after a timeout: the first answer, nothing stored or sent again.
        let (st, again, replayed) = host.post_once(&format!("/threads/{tid}/messages"), payment, "pay-7").await;
        assert_eq!((st, again["message"]["id"].clone()), (200, m["id"].clone()));
        assert!(replayed, "a replay says so");
        client.no_event("message", Duration::from_millis(300)).await;
        // A sender and a client_id: idempotent per sender, without the header too.
        let dispute = json!({"kind":"dispute","body":"Dispute opened","sender_id":"client","client_id":"d-1"});
        let (_, d1) = host.post(&format!("/threads/{tid}/messages"), dispute.clone()).await;
        let (_, d2) = host.post(&format!("/threads/{tid}/messages"), dispute).await;
        assert_eq!(d1["message"]["id"], d2["message"]["id"]);
        assert_eq!(d1["message"]["sender_id"], "client");
        // Posted in the client's name, but the client cannot rewrite or delete it.
        let did = d1["message"]["id"].as_str().unwrap();
        let (st, _) = s.http("client").patch(&format!("/messages/{did}"), json!({"body":"nothing happened"})).await;
        assert_eq!(st, 403);
        assert_eq!(s.http("client").delete(&format!("/messages/{did}")).await.0, 403);
        // The same Idempotency-Key for another request is a conflict, not the first answer.
        let (st, v, _) = host
            .post_once(&format!("/threads/{tid}/messages"), json!({"kind":"payment","body":"another"}), "pay-7")
            .await;
        assert_eq!((st, v["error"]["code"].as_str()), (409, Some("conflict")));
        // An error is not kept: the key is free again.
        let (st, _, replayed) = host.post_once("/threads/nope/messages", json!({"body":"x"}), "k-err").await;
        assert_eq!((st, replayed), (404, false));
        let (st, _, replayed) = host.post_once("/threads/nope/messages", json!({"body":"x"}), "k-err").await;
        assert_eq!((st, replayed), (404, false));
        // A client_id of this sender in another thread is a mistake, not a retry.
        let (_, t2) = host.post("/threads", json!({"members":["client"]})).await;
        let t2 = t2["id"].as_str().unwrap();
        let (st, _) = host
            .post(&format!("/threads/{t2}/messages"), json!({"kind":"dispute","body":"x","sender_id":"client","client_id":"d-1"}))
            .await;
        assert_eq!(st, 409);
        let (_, h) = s.http("client").get(&format!("/threads/{tid}/messages")).await;
        let kinds: Vec<&str> = h["messages"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["payment", "dispute"]);
        // Clients still may only send text.
        let r = client.call(json!({"type":"send","thread_id":tid,"body":"x","kind":"payment"})).await;
        assert_eq!(r["code"], "bad_request");
        assert_eq!(host.post("/threads/nope/messages", json!({"body":"x"})).await.0, 404);
    }

    async fn bad_input_gets_the_contract_errors(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        let (_, t) = host.post("/threads", json!({"members":["a","b"]})).await;
        let tid = t["id"].as_str().unwrap().to_string();
        let raw = reqwest::Client::new()
            .post(s.url("/api/v1/server/notifications"))
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status().as_u16(), 400);
        let v: serde_json::Value = raw.json().await.unwrap();
        assert_eq!(v["error"]["code"], "bad_request");
        let (st, v) = host.post("/notifications", json!({"user_ids":["a"],"title":"t","priority":"asap"})).await;
        assert_eq!(st, 400);
        assert!(v["error"]["message"].as_str().unwrap().contains("priority"), "{v}");
        let (st, v) = host.post("/notifications", json!({"user_ids":["a"],"body":"no title"})).await;
        assert_eq!(st, 400);
        assert!(v["error"]["message"].as_str().unwrap().contains("title"), "{v}");
        let big = json!({"blob": "x".repeat(17 * 1024)});
        let (st, v) = host.post("/notifications", json!({"user_ids":["a"],"title":"t","data":big})).await;
        assert_eq!((st, v["error"]["code"].as_str()), (413, Some("too_large")));
        let (st, _) = host.post(&format!("/threads/{tid}/messages"), json!({"body":"x","metadata":big})).await;
        assert_eq!(st, 413);
        let (st, _) = host.post(&format!("/threads/{tid}/messages"), json!({"body":"x","kind":"Not A Kind"})).await;
        assert_eq!(st, 400);
        let (st, _) = host.post("/broadcast", json!({"event":{}})).await;
        assert_eq!(st, 400, "neither org nor user_ids");
        let (st, _) = host.post("/threads", json!({"kind":"direct","members":["a","b"],"external_ref":"x:1"})).await;
        assert_eq!(st, 400, "direct threads take no external_ref");
        let huge = json!({"user_ids":["a"],"title":"t","body":"x".repeat(70_000)});
        let (st, v) = host.post("/notifications", huge).await;
        assert_eq!((st, v["error"]["code"].as_str()), (413, Some("too_large")), "a body past MAX_FRAME_BYTES: {v}");
        let ((st, _), _) = host
            .send(reqwest::Method::POST, "/disconnect", Some(json!({"user_id":"a"})), &[("Idempotency-Key", "")])
            .await;
        assert_eq!(st, 400, "an empty Idempotency-Key");
    }

    async fn broadcasts_reach_the_org_or_the_users_live(b) {
        let s = Server::start_host(b, &[]).await;
        let host = s.host(API_KEY);
        let mut alice = s.ws_in("alice", &["acme"]).await;
        let mut bob = s.ws_in("bob", &["acme", "globex"]).await;
        let mut carol = s.ws_in("carol", &["globex"]).await;
        // The orgs claim is recorded as the session opens, in the background.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (st, v) = host.post("/broadcast", json!({"org":"acme","event":{"exam":"moved"}})).await;
        assert_eq!((st, v["online_users"].as_u64()), (200, Some(2)), "{v}");
        for c in [&mut alice, &mut bob] {
            let ev = c.event("broadcast").await;
            assert_eq!(ev["channel"], "org:acme");
            assert_eq!(ev["event"]["exam"], "moved");
        }
        carol.no_event("broadcast", Duration::from_millis(300)).await;
        let (st, _) = host.post("/broadcast", json!({"user_ids":["carol"],"channel":"ops","event":{"n":1}})).await;
        assert_eq!(st, 200);
        assert_eq!(carol.event("broadcast").await["channel"], "ops");
        alice.no_event("broadcast", Duration::from_millis(200)).await;
        // Who is online in an org: for its members, and unscoped for the host.
        let (st, online) = s.http_in("alice", &["acme"]).get("/orgs/acme/online").await;
        assert_eq!(st, 200);
        let mut ids: Vec<&str> = online.as_array().unwrap().iter().map(|p| p["user_id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["alice", "bob"]);
        assert_eq!(s.http_in("carol", &["globex"]).get("/orgs/acme/online").await.0, 403);
        let (st, online) = host.get("/orgs/globex/online").await;
        assert_eq!((st, online.as_array().unwrap().len()), (200, 2));
        let (st, p) = host.get("/presence?user_ids=alice,zed").await;
        assert_eq!(st, 200);
        assert_eq!((p[0]["online"].as_bool(), p[1]["online"].as_bool()), (Some(true), Some(false)));
        // Disconnect: 4003, and the Idempotency-Key applies to it too.
        let (st, _, _) = host.post_once("/disconnect", json!({"user_id":"alice"}), "kick-1").await;
        assert_eq!(st, 204);
        assert_eq!(alice.closed(Duration::from_secs(5)).await, Ended::Code(4003));
        let (st, _, replayed) = host.post_once("/disconnect", json!({"user_id":"alice"}), "kick-1").await;
        assert_eq!(st, 204);
        assert!(replayed);
    }
}

#[tokio::test]
async fn notifications_broadcasts_and_revocation_reach_users_on_another_node() {
    let c = crate::harness::Cluster::start(2, &[("SERVER_API_KEY", API_KEY)]).await;
    let mut alice = c.node(0).ws_in("alice", &["acme"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let host = c.node(1).host(API_KEY);
    let (st, _) = host
        .post(
            "/notifications",
            json!({"user_ids":["alice"],"title":"from node1"}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(
        alice.event("notification").await["notification"]["title"],
        "from node1"
    );
    let (st, v) = host
        .post("/broadcast", json!({"org":"acme","event":{"k":"v"}}))
        .await;
    assert_eq!((st, v["online_users"].as_u64()), (200, Some(1)));
    assert_eq!(alice.event("broadcast").await["event"]["k"], "v");
    let (_, online) = host.get("/orgs/acme/online").await;
    assert_eq!(online[0]["user_id"], "alice");
    assert_eq!(
        host.post("/disconnect", json!({"user_id":"alice"})).await.0,
        204
    );
    assert_eq!(
        alice.closed(Duration::from_secs(5)).await,
        Ended::Code(4003)
    );
}
