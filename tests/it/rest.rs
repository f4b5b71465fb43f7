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

#[tokio::test]
async fn a_web_app_on_an_allowed_origin_may_use_rest_and_sse_across_origins() {
    let s = Server::start_host(
        crate::harness::Backend::Sqlite,
        &[("ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await;
    let http = reqwest::Client::new();
    let token = s.token("alice");
    let app = "https://app.example.com";
    // The preflight a browser sends before a POST with a bearer token and a JSON body.
    let pre = http
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/threads"))
        .header("Origin", app)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    let h = pre.headers();
    assert_eq!(h["access-control-allow-origin"], app);
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(
        h.get("access-control-allow-credentials").is_none(),
        "tokens, not cookies"
    );
    // The request itself, and the SSE stream, carry the header.
    let r = http
        .get(s.url("/api/v1/unread"))
        .header("Origin", app)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], app);
    let sse = http
        .get(s.url(&format!("/api/v1/events?token={token}")))
        .header("Origin", app)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    assert_eq!(sse.headers()["access-control-allow-origin"], app);
    drop(sse);
    // Errors too, so the app can read them.
    let r = http
        .get(s.url("/api/v1/threads/nope"))
        .header("Origin", app)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["access-control-allow-origin"], app);
    // Another origin gets no CORS headers (the browser then refuses to hand over the answer).
    for (method, path) in [
        (reqwest::Method::OPTIONS, "/api/v1/threads"),
        (reqwest::Method::GET, "/api/v1/unread"),
    ] {
        let r = http
            .request(method, s.url(path))
            .header("Origin", "https://evil.example.com")
            .header("Access-Control-Request-Method", "POST")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    // The server API is for backends, never browsers.
    let r = http
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/server/broadcast"))
        .header("Origin", app)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
