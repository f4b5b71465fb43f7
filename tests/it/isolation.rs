//! A user who is not a member gets `forbidden` (or `not_found` for unknown threads) on every
//! thread frame and route, and nothing is changed.

use serde_json::{Value, json};

use crate::both;
use crate::harness::Server;

both! {
    async fn non_members_are_refused_everywhere(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").group("private", &["bob"]).await;
        let m = alice.say(&tid, "secret").await;
        let mid = m["id"].as_str().unwrap().to_string();
        let mut eve = s.ws("eve").await;

        for thread in [tid.as_str(), "no-such-thread"] {
            let code = if thread == tid { "forbidden" } else { "not_found" };
            let frames: Vec<Value> = vec![
                json!({"type":"send","thread_id":thread,"body":"hi"}),
                json!({"type":"typing","thread_id":thread,"is_typing":true}),
                json!({"type":"read","thread_id":thread,"seq":1}),
                json!({"type":"delivered","thread_id":thread,"seq":1}),
                json!({"type":"history","thread_id":thread}),
                json!({"type":"history","thread_id":thread,"after_seq":0}),
            ];
            for f in frames {
                eve.err(f, code).await;
            }
            let status = if thread == tid { 403 } else { 404 };
            let http = s.http("eve");
            let routes: Vec<(&str, String, Option<Value>)> = vec![
                ("GET", format!("/threads/{thread}"), None),
                ("PATCH", format!("/threads/{thread}"), Some(json!({"title":"mine"}))),
                ("POST", format!("/threads/{thread}/members"), Some(json!({"user_ids":["eve"]}))),
                ("DELETE", format!("/threads/{thread}/members/bob"), None),
                ("GET", format!("/threads/{thread}/messages"), None),
                ("POST", format!("/threads/{thread}/messages"), Some(json!({"body":"hi"}))),
                ("POST", format!("/threads/{thread}/read"), Some(json!({"seq":1}))),
                ("POST", format!("/threads/{thread}/typing"), Some(json!({"is_typing":true}))),
            ];
            for (method, path, body) in routes {
                let (st, e) = match method {
                    "GET" => http.get(&path).await,
                    "PATCH" => http.patch(&path, body.unwrap()).await,
                    "POST" => http.post(&path, body.unwrap()).await,
                    _ => http.delete(&path).await,
                };
                assert_eq!(st, status, "{method} {path}: {e}");
                assert_eq!(e["error"]["code"], code, "{method} {path}");
            }
        }
        // A message in someone else's thread is as good as absent.
        for (st, _) in [
            s.http("eve").patch(&format!("/messages/{mid}"), json!({"body":"x"})).await,
            s.http("eve").delete(&format!("/messages/{mid}")).await,
        ] {
            assert_eq!(st, 404);
        }
        // Nothing changed.
        let (_, t) = s.http("alice").get(&format!("/threads/{tid}")).await;
        assert_eq!(t["members"], json!(["alice","bob"]));
        assert_eq!(t["title"], "private");
        assert_eq!(t["last_seq"], 1);
        assert_eq!(t["last_message"]["body"], "secret");
        let (_, l) = s.http("eve").get("/threads").await;
        assert_eq!(l["threads"], json!([]));
    }

    async fn ids_holding_nul_are_bad_requests_not_server_errors(b) {
        // Postgres refuses NUL in text: an id holding one is the client's mistake there
        // (`bad_request`), and on SQLite it simply names nothing (`not_found`).
        let pg = b == crate::harness::Backend::Postgres;
        let (code, status) = if pg { ("bad_request", 400) } else { ("not_found", 404) };
        let s = Server::start(b).await;
        let tid = s.http("alice").group("g", &["bob"]).await;
        let mut alice = s.ws("alice").await;
        let m = alice.say(&tid, "hi").await;
        let bad = "a\u{0}b";
        for f in [
            json!({"type":"read","thread_id":bad,"seq":1}),
            json!({"type":"typing","thread_id":bad,"is_typing":true}),
            json!({"type":"history","thread_id":bad}),
        ] {
            alice.err(f, code).await;
        }
        let http = s.http("alice");
        for (st, e) in [
            http.get("/threads/a%00b").await,
            http.get("/threads/a%00b/messages").await,
            http.delete("/messages/a%00b").await,
            http.patch("/messages/a%00b", json!({"body":"x"})).await,
            http.post("/threads/a%00b/read", json!({"seq":1})).await,
        ] {
            assert_eq!((st, e["error"]["code"].as_str()), (status, Some(code)), "{e}");
        }
        // A body holding NUL is refused on both backends, edited as sent, and nothing changes.
        let edit = format!("/messages/{}", m["id"].as_str().unwrap());
        let (st, e) = http.patch(&edit, json!({"body":"a\u{0}b"})).await;
        assert_eq!((st, e["error"]["code"].as_str()), (400, Some("bad_request")), "{e}");
        alice.err(json!({"type":"send","thread_id":tid,"body":"a\u{0}b"}), "bad_request").await;
        let (_, h) = http.get(&format!("/threads/{tid}/messages")).await;
        assert_eq!(h["messages"].as_array().unwrap().len(), 1, "{h}");
        assert_eq!(h["messages"][0]["body"], "hi", "{h}");
        assert_eq!(h["messages"][0]["edited_at"], Value::Null, "{h}");
    }
}
