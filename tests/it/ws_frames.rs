//! The socket's framing: hello, ping/pong, refs, and bad frames that get an `error` while the
//! connection stays open.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::{Ended, Server};

both! {
    async fn hello_comes_first_with_the_contract_fields(b) {
        let s = Server::start(b).await;
        let c = s.ws("alice").await;
        let h = &c.hello;
        assert_eq!(h["user_id"], "alice");
        assert_eq!(h["node_id"], "test-node");
        assert_eq!(h["heartbeat_s"], 25);
        assert_eq!(h["protocol"], 1);
        assert!(h["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    }

    async fn ping_gets_pong_echoing_ref(b) {
        let s = Server::start(b).await;
        let mut c = s.ws("alice").await;
        let r = c.call(json!({"type":"ping"})).await;
        assert_eq!(r["type"], "pong");
        c.send(json!({"type":"ping"})).await;
        let r = c.next().await;
        assert_eq!(r, json!({"type":"pong"}));
    }

    async fn bad_frames_get_errors_and_the_socket_stays_open(b) {
        let s = Server::start(b).await;
        let mut c = s.ws("alice").await;
        c.send_text("not json").await;
        let e = c.next().await;
        assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("error"), Some("bad_request")));

        c.send_text(r#"{"no_type":1,"ref":"x1"}"#).await;
        let e = c.next().await;
        assert_eq!(e["code"], "bad_request");
        assert_eq!(e["ref"], "x1");

        c.send_text(r#"{"type":"teleport","ref":"x2"}"#).await;
        let e = c.next().await;
        assert_eq!(e["code"], "bad_request");
        assert_eq!(e["ref"], "x2");
        assert!(e["message"].as_str().unwrap().contains("teleport"));

        c.send_text(r#"{"type":"read","thread_id":"t","seq":"seven","ref":"x3"}"#).await;
        let e = c.next().await;
        assert_eq!(e["code"], "bad_request");
        assert_eq!(e["ref"], "x3");

        c.send_text(r#"{"type":42,"ref":"x4"}"#).await;
        assert_eq!(c.next().await["ref"], "x4");

        c.send_binary(vec![1, 2, 3]).await;
        assert_eq!(c.next().await["code"], "bad_request");

        let long_ref = "r".repeat(65);
        c.send(json!({"type":"ping","ref":long_ref})).await;
        assert_eq!(c.next().await["code"], "bad_request");

        // Still open and answering.
        assert_eq!(c.call(json!({"type":"ping"})).await["type"], "pong");
    }

    async fn frame_over_the_limit_closes_with_1009(b) {
        let s = Server::start_with(b, &[("MAX_FRAME_BYTES", "4096")]).await;
        let mut c = s.ws("alice").await;
        c.send_text(&format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(5000))).await;
        assert_eq!(c.closed(Duration::from_secs(5)).await, Ended::Code(1009));
    }

    async fn silent_socket_is_dropped_after_three_heartbeats(b) {
        let s = Server::start_with(b, &[("HEARTBEAT_S", "1")]).await;
        // A client that reads (and so answers pings) stays.
        let mut live = s.ws("alice").await;
        // A client that never reads never answers pings.
        let mut silent = s.ws("bob").await;
        let open = |m: &str| {
            crate::harness::metric(m, r#"switchboard_connections{transport="ws"}"#)
        };
        // Two silent intervals: both still open (the server counts its sessions).
        live.no_event("error", Duration::from_millis(2000)).await;
        assert_eq!(open(&s.metrics().await), 2.0, "dropped before three silent intervals");
        // Past three intervals and one check: only the silent one goes (polled, so a slow
        // machine is not mistaken for a missing drop).
        let deadline = std::time::Instant::now() + Duration::from_secs(6);
        while open(&s.metrics().await) != 1.0 {
            assert!(std::time::Instant::now() < deadline, "the silent socket is still registered");
            live.no_event("error", Duration::from_millis(100)).await;
        }
        assert!(live.call(json!({"type":"ping"})).await["type"] == "pong");
        // When it reads at last it finds the close (1000), or, as its client answers the
        // queued pings into a socket the server has closed, a reset.
        let ended = silent.closed(Duration::from_secs(3)).await;
        assert!(matches!(ended, Ended::Code(1000) | Ended::Dropped), "{ended:?}");
    }

    async fn a_message_over_the_limit_in_small_fragments_closes_with_1009(b) {
        let s = Server::start_with(b, &[("MAX_FRAME_BYTES", "4096")]).await;
        let mut c = s.ws("alice").await;
        // Each fragment is small; the message they make is not.
        let pad = "x".repeat(2000);
        let head = format!(r#"{{"type":"ping","pad":"{pad}"#);
        c.send_fragments(&[&head, &pad, &format!(r#"{pad}"}}"#)]).await;
        assert_eq!(c.closed(Duration::from_secs(5)).await, Ended::Code(1009));
        // Fragments that stay under the limit make one ordinary frame.
        let mut ok = s.ws("bob").await;
        ok.send_fragments(&[r#"{"type":"ping","#, r#""ref":"frag"}"#]).await;
        assert_eq!(ok.next().await["ref"], "frag");
    }

    async fn a_client_close_is_answered_with_1000_and_the_session_ends(b) {
        let s = Server::start(b).await;
        let mut c = s.ws("alice").await;
        let open = |m: &str| {
            crate::harness::metric(m, r#"switchboard_connections{transport="ws"}"#)
        };
        let until = |n: f64| {
            let s = &s;
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while open(&s.metrics().await) != n {
                    assert!(tokio::time::Instant::now() < deadline, "never {n} open");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        until(1.0).await;
        c.send_close(1000).await;
        assert_eq!(c.closed(Duration::from_secs(5)).await, Ended::Code(1000));
        until(0.0).await;
    }
}
