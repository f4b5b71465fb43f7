//! Sending: acks, fan-out to the right sessions, direct threads by `to`, idempotency,
//! replies, metadata, limits, edits and deletes, history.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::Server;

both! {
    async fn send_to_creates_one_direct_thread_and_reaches_every_other_session(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let mut alice2 = s.ws("alice").await;
        let mut bob = s.ws("bob").await;

        let ack = alice.ok(json!({"type":"send","to":"bob","body":"hi bob 👋 ünïcødé"})).await;
        let m = &ack["message"];
        assert_eq!(m["seq"], 1);
        assert_eq!(m["sender_id"], "alice");
        assert_eq!(m["kind"], "text");
        assert_eq!(m["body"], "hi bob 👋 ünïcødé");
        assert_eq!(m["deleted"], false);
        assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
        let tid = m["thread_id"].as_str().unwrap().to_string();

        // bob sees the new thread and the message; alice's other session too.
        let t = bob.event("thread").await;
        assert_eq!(t["event"], "created");
        assert_eq!(t["thread"]["kind"], "direct");
        assert_eq!(bob.event("message").await["message"], *m);
        assert_eq!(alice2.event("message").await["message"], *m);
        // The sending session gets its ack, not an echo.
        alice.no_event("message", Duration::from_millis(300)).await;

        // bob answers with `to` and lands in the same thread.
        let back = bob.ok(json!({"type":"send","to":"alice","body":"hey"})).await;
        assert_eq!(back["message"]["thread_id"], tid.as_str());
        assert_eq!(back["message"]["seq"], 2);
        assert_eq!(alice.event("message").await["message"]["seq"], 2);
    }

    async fn resend_with_same_client_id_returns_original(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let tid = s.http("alice").direct("bob").await;
        let f = json!({"type":"send","thread_id":tid,"body":"once","client_id":"c-1"});
        let first = alice.ok(f.clone()).await["message"].clone();
        let again = alice.ok(f.clone()).await["message"].clone();
        assert_eq!(first, again);
        // Over REST too: same path, same idempotency.
        let (st, rest) = s.http("alice")
            .post(&format!("/threads/{tid}/messages"), json!({"body":"once","client_id":"c-1"}))
            .await;
        assert_eq!(st, 200);
        assert_eq!(rest["message"], first);
        assert_eq!(bob.event("message").await["message"], first);
        bob.no_event("message", Duration::from_millis(300)).await;
        let (_, h) = s.http("bob").get(&format!("/threads/{tid}/messages")).await;
        assert_eq!(h["messages"].as_array().unwrap().len(), 1);
    }

    async fn reply_to_and_metadata_round_trip(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let http = s.http("alice");
        let t1 = http.direct("bob").await;
        let t2 = http.direct("carol").await;
        let first = alice.say(&t1, "question").await;
        let meta = json!({"order": 42, "tags": ["a", "b"], "nested": {"x": null}});
        let r = alice.ok(json!({"type":"send","thread_id":t1,"body":"answer",
            "reply_to":first["id"],"metadata":meta})).await;
        assert_eq!(r["message"]["reply_to"], first["id"]);
        assert_eq!(r["message"]["metadata"], meta);
        // A reply_to from another thread, or unknown, is refused and stores nothing.
        alice.err(json!({"type":"send","thread_id":t2,"body":"x","reply_to":first["id"]}), "bad_request").await;
        alice.err(json!({"type":"send","thread_id":t2,"body":"x","reply_to":"nope"}), "bad_request").await;
        let (_, h) = http.get(&format!("/threads/{t2}/messages")).await;
        assert_eq!(h["messages"], json!([]));
        // metadata must be an object.
        alice.err(json!({"type":"send","thread_id":t1,"body":"x","metadata":[1]}), "bad_request").await;
    }

    async fn send_validation(b) {
        let s = Server::start_with(b, &[("MAX_BODY_CHARS", "10")]).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        // 10 chars of emoji is fine: the limit counts chars, not bytes.
        alice.ok(json!({"type":"send","thread_id":tid,"body":"🎉".repeat(10)})).await;
        alice.err(json!({"type":"send","thread_id":tid,"body":"x".repeat(11)}), "too_large").await;
        alice.err(json!({"type":"send","thread_id":tid,"body":"x","kind":"system"}), "bad_request").await;
        // metadata: at most 16 KiB of JSON, from a user as from the host.
        let big = json!({"k": "x".repeat(16 * 1024)});
        alice.err(json!({"type":"send","thread_id":tid,"body":"x","metadata":big.clone()}), "too_large").await;
        let fits = json!({"k": "x".repeat(16 * 1024 - 64)});
        alice.ok(json!({"type":"send","thread_id":tid,"body":"x","metadata":fits.clone()})).await;
        alice.err(json!({"type":"send","body":"x"}), "bad_request").await;
        alice.err(json!({"type":"send","thread_id":tid,"to":"bob","body":"x"}), "bad_request").await;
        alice.err(json!({"type":"send","to":"alice","body":"x"}), "bad_request").await;
        alice.err(json!({"type":"send","thread_id":"no-such-thread","body":"x"}), "not_found").await;
        // Postgres stores no NUL: refused before it queues, for every string a send stores.
        alice.err(json!({"type":"send","thread_id":tid,"body":"a\0b"}), "bad_request").await;
        alice.err(json!({"type":"send","thread_id":tid,"body":"x","client_id":"c\0"}), "bad_request").await;
        alice.err(json!({"type":"send","thread_id":format!("{tid}\0"),"body":"x"}), "bad_request").await;
        // With a reply_to, who may send here is still answered first.
        let (_, page) = s.http("alice").get(&format!("/threads/{tid}/messages")).await;
        let first = page["messages"][0]["id"].clone();
        // The same limit on an edit's metadata; a refused edit changes nothing.
        let edit = format!("/messages/{}", first.as_str().unwrap());
        let (st, e) = s.http("alice").patch(&edit, json!({"body":"edited","metadata":big})).await;
        assert_eq!((st, &e["error"]["code"]), (413, &json!("too_large")), "{e}");
        let (_, page) = s.http("alice").get(&format!("/threads/{tid}/messages")).await;
        assert_eq!(page["messages"][0]["edited_at"], serde_json::Value::Null, "{page}");
        let (st, e) = s.http("alice").patch(&edit, json!({"body":"edited","metadata":fits})).await;
        assert_eq!(st, 200, "{}", e["error"]);
        assert_eq!(e["message"]["metadata"]["k"].as_str().map(str::len), Some(16 * 1024 - 64));
        alice.err(json!({"type":"send","thread_id":"no-such-thread","body":"x","reply_to":first}), "not_found").await;
        let mut eve = s.ws("eve").await;
        eve.err(json!({"type":"send","thread_id":tid,"body":"x","reply_to":"nope"}), "forbidden").await;
        let (_, h) = s.http("alice").get(&format!("/threads/{tid}/messages")).await;
        // The emoji message and the one whose metadata fitted.
        assert_eq!(h["messages"].as_array().unwrap().len(), 2);
    }

    async fn an_edit_right_after_the_ack_reaches_members_after_the_message(b) {
        let s = Server::start_with(b, &[("RATE_PER_S", "100000"), ("RATE_BURST", "100000")]).await;
        let tid = s.http("alice").group("edits", &["bob"]).await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let http = s.http("alice");
        for i in 0..20 {
            let m = alice.say(&tid, &format!("draft {i}")).await;
            let id = m["id"].as_str().unwrap();
            let (st, _) = http.patch(&format!("/messages/{id}"), json!({"body":format!("final {i}")})).await;
            assert_eq!(st, 200);
            // The message was published before its ack, so bob never sees its edit first.
            let first = bob.read_frame(Duration::from_secs(10)).await.expect("an event");
            assert_eq!(first["type"], "message", "{first}");
            assert_eq!(first["message"]["id"], m["id"]);
            let second = bob.read_frame(Duration::from_secs(10)).await.expect("an event");
            assert_eq!(second["type"], "message_updated", "{second}");
        }
    }

    async fn edit_and_delete_own_messages_push_to_every_session(b) {
        let s = Server::start(b).await;
        let mut alice = s.ws("alice").await;
        let mut bob = s.ws("bob").await;
        let http = s.http("alice");
        let tid = http.direct("bob").await;
        let m = alice.ok(json!({"type":"send","thread_id":tid,"body":"tpyo","metadata":{"k":1}})).await["message"].clone();
        let id = m["id"].as_str().unwrap();

        let (st, e) = http.patch(&format!("/messages/{id}"), json!({"body":"typo"})).await;
        assert_eq!(st, 200, "{e}");
        assert_eq!(e["message"]["body"], "typo");
        assert_eq!(e["message"]["metadata"], json!({"k":1}));
        assert!(e["message"]["edited_at"].is_string());
        assert_eq!(alice.event("message_updated").await["message"], e["message"]);
        assert_eq!(bob.event("message_updated").await["message"], e["message"]);

        // Not bob's to change.
        let (st, _) = s.http("bob").patch(&format!("/messages/{id}"), json!({"body":"mine"})).await;
        assert_eq!(st, 403);
        let (st, _) = s.http("bob").delete(&format!("/messages/{id}")).await;
        assert_eq!(st, 403);
        // A stranger learns nothing.
        let (st, _) = s.http("eve").patch(&format!("/messages/{id}"), json!({"body":"x"})).await;
        assert_eq!(st, 404);

        let (st, d) = http.delete(&format!("/messages/{id}")).await;
        assert_eq!(st, 200);
        assert_eq!(d["message"]["deleted"], true);
        assert_eq!(d["message"]["body"], "");
        assert_eq!(d["message"]["metadata"], json!(null));
        assert_eq!(d["message"]["seq"], m["seq"]);
        assert_eq!(bob.event("message_deleted").await["message"]["id"], m["id"]);
        assert_eq!(alice.event("message_deleted").await["message"]["id"], m["id"]);
        let (st, _) = http.patch(&format!("/messages/{id}"), json!({"body":"back"})).await;
        assert_eq!(st, 409);
        let (_, h) = s.http("bob").get(&format!("/threads/{tid}/messages")).await;
        assert_eq!(h["messages"][0]["deleted"], true);
        assert_eq!(h["messages"][0]["body"], "");
    }

    async fn history_pages_both_ways(b) {
        let s = Server::start_with(b, &[("RATE_BURST", "100")]).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        for i in 1..=25 {
            alice.say(&tid, &format!("m{i}")).await;
        }
        let seqs = |v: &serde_json::Value| -> Vec<i64> {
            v["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
        };
        let newest = alice.ok(json!({"type":"history","thread_id":tid,"limit":10})).await;
        assert_eq!(seqs(&newest), (16..=25).collect::<Vec<_>>());
        assert_eq!(newest["has_more"], true);
        let before = alice.ok(json!({"type":"history","thread_id":tid,"before_seq":16,"limit":10})).await;
        assert_eq!(seqs(&before), (6..=15).collect::<Vec<_>>());
        let oldest = alice.ok(json!({"type":"history","thread_id":tid,"before_seq":6,"limit":10})).await;
        assert_eq!(seqs(&oldest), (1..=5).collect::<Vec<_>>());
        assert_eq!(oldest["has_more"], false);
        let after = alice.ok(json!({"type":"history","thread_id":tid,"after_seq":20})).await;
        assert_eq!(seqs(&after), (21..=25).collect::<Vec<_>>());
        assert_eq!(after["has_more"], false);
        let gap = alice.ok(json!({"type":"history","thread_id":tid,"after_seq":3,"limit":2})).await;
        assert_eq!(seqs(&gap), vec![4, 5]);
        assert_eq!(gap["has_more"], true);
        alice.err(json!({"type":"history","thread_id":tid,"limit":201}), "bad_request").await;
        alice.err(json!({"type":"history","thread_id":tid,"limit":0}), "bad_request").await;
        alice.err(json!({"type":"history","thread_id":tid,"before_seq":5,"after_seq":1}), "bad_request").await;
        alice.ok(json!({"type":"history","thread_id":tid,"limit":200})).await;
        // REST gives the same page.
        let (st, rest) = s.http("alice").get(&format!("/threads/{tid}/messages?after_seq=20")).await;
        assert_eq!(st, 200);
        assert_eq!(rest["messages"], after["messages"]);
        let (st, _) = s.http("alice").get(&format!("/threads/{tid}/messages?limit=500")).await;
        assert_eq!(st, 400);
    }

    async fn pages_too_big_for_the_outbox_are_cut_and_paging_stays_gap_free(b) {
        // Half of a 64 KiB budget holds three or four 8,000-char messages.
        let s = Server::start_with(b, &[("RATE_BURST", "100"), ("OUTBOX_BYTES", "65536")]).await;
        let mut alice = s.ws("alice").await;
        let tid = s.http("alice").direct("bob").await;
        let body = "y".repeat(8000);
        for _ in 0..20 {
            alice.say(&tid, &body).await;
        }
        let seqs = |v: &serde_json::Value| -> Vec<i64> {
            v["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
        };
        // Back from the newest: each page is cut, says there is more, and the next one
        // continues from its first seq.
        let mut got = Vec::new();
        let mut page = alice.ok(json!({"type":"history","thread_id":tid,"limit":200})).await;
        loop {
            let s = seqs(&page);
            assert!(!s.is_empty() && s.len() < 20, "{s:?}");
            assert!(page.to_string().len() <= 32 * 1024 + 1024, "{} bytes", page.to_string().len());
            got.splice(0..0, s.iter().copied());
            if page["has_more"] == false {
                break;
            }
            page = alice.ok(json!({"type":"history","thread_id":tid,"before_seq":s[0],"limit":200})).await;
        }
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
        // Forward from the start, the same.
        let mut got = Vec::new();
        let mut after = 0;
        loop {
            let page = alice.ok(json!({"type":"history","thread_id":tid,"after_seq":after,"limit":200})).await;
            let s = seqs(&page);
            assert!(!s.is_empty() && s.len() < 20, "{s:?}");
            after = *s.last().unwrap();
            got.extend(s);
            if page["has_more"] == false {
                break;
            }
        }
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
        // The socket was never closed for it.
        assert_eq!(alice.call(json!({"type":"ping"})).await["type"], "pong");
    }
}
