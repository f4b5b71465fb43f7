//! REST specifics: auth on every route, JSON errors for malformed input, health checks.

use serde_json::json;

use crate::both;
use crate::harness::{Http, Server};

both! {
    async fn rest_requires_a_user_token_and_answers_json_errors(b) {
        let s = Server::start_with(b, &[("SERVER_API_KEY", "host-key")]).await;
        let anon = Http { token: None, ..s.http("x") };
        let (st, e) = anon.get("/threads").await;
        assert_eq!(st, 401);
        assert_eq!(e["error"]["code"], "unauthorized");
        let bad = Http { token: Some("nope".into()), ..s.http("x") };
        assert_eq!(bad.get("/unread").await.0, 401);
        // The server API key is not a user token.
        let key = Http { token: Some("host-key".into()), ..s.http("x") };
        assert_eq!(key.get("/threads").await.0, 401);

        let http = s.http("alice");
        let (st, e) = http.post("/threads", json!({"kind": 5})).await;
        assert_eq!(st, 400);
        assert_eq!(e["error"]["code"], "bad_request");
        let (st, e) = http.get("/threads?limit=abc").await;
        assert_eq!((st, e["error"]["code"].as_str()), (400, Some("bad_request")));
        let (st, e) = http.get("/nope").await;
        assert_eq!((st, e["error"]["code"].as_str()), (404, Some("not_found")));
        let (st, _) = http.get("/presence?user_ids=").await;
        assert_eq!(st, 400);
        let tid = http.direct("bob").await;
        let big = "x".repeat(70_000);
        let (st, e) = http.post(&format!("/threads/{tid}/messages"), json!({"body": big})).await;
        assert_eq!((st, e["error"]["code"].as_str()), (413, Some("too_large")));
    }

    async fn health_and_readiness(b) {
        let s = Server::start(b).await;
        let c = reqwest::Client::new();
        let r = c.get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = c.get(s.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["database"], "ok");
    }
}
