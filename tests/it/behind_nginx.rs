//! Two nodes behind a real nginx running the shipped `deploy/nginx.conf`: chat through it,
//! a node killed under its clients, and the client address the nodes log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Cluster, Http, Nginx, Sse, token_with};

/// A socket through nginx for `user`, past its `hello`.
async fn ws_via(nginx: &Nginx, user: &str) -> Result<(Client, Value), String> {
    let url = format!(
        "ws://{}/ws?token={}",
        nginx.addr,
        token_with(user, 3600, &[])
    );
    let req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
        .unwrap();
    let mut c = Client::connect(req).await.map_err(|e| e.to_string())?;
    let hello = c.next().await;
    if hello["type"] != "hello" {
        return Err(format!("first frame: {hello}"));
    }
    Ok((c, hello))
}

/// The REST API through nginx, as `user`.
fn http_via(nginx: &Nginx, user: &str) -> Http {
    Http {
        base: nginx.url("/api/v1"),
        token: Some(token_with(user, 3600, &[])),
        client: reqwest::Client::new(),
    }
}

#[tokio::test]
async fn through_nginx_a_killed_nodes_clients_reconnect_to_the_other_and_catch_up() {
    let c = Cluster::start(2, &[]).await;
    let nginx = Nginx::start(&[&c.node(0).addr, &c.node(1).addr]).await;

    // WS chat through the proxy.
    let (mut alice, hello) = ws_via(&nginx, "alice").await.unwrap();
    let (mut bob, _) = ws_via(&nginx, "bob").await.unwrap();
    let ack = alice
        .ok(json!({"type":"send","to":"bob","body":"through nginx"}))
        .await;
    let tid = ack["message"]["thread_id"].as_str().unwrap().to_string();
    assert_eq!(
        bob.event("message").await["message"]["body"],
        "through nginx"
    );
    bob.ok(json!({"type":"send","thread_id":tid,"body":"and back"}))
        .await;
    assert_eq!(alice.event("message").await["message"]["seq"], 2);

    // SSE through the same proxy and nodes: an event arrives within a second (not buffered).
    let url = nginx.url(&format!(
        "/api/v1/events?token={}",
        token_with("carol", 3600, &[])
    ));
    let mut sse = Sse::open(reqwest::Client::new().get(url))
        .await
        .expect("SSE through nginx");
    assert_eq!(sse.next().await.0, "hello");
    let carol = bob
        .ok(json!({"type":"send","to":"carol","body":"to the stream"}))
        .await;
    let sent = Instant::now();
    let m = tokio::time::timeout(Duration::from_secs(1), sse.event("message"))
        .await
        .expect("the event was held back");
    assert_eq!(m["message"]["id"], carol["message"]["id"]);
    eprintln!(
        "SSE event through nginx (two nodes) {:?} after the ack",
        sent.elapsed()
    );
    drop(sse);

    // Kill alice's node outright. Her socket drops; bob (over REST, through nginx) writes
    // three more while she is away.
    let gone = hello["node_id"].as_str().unwrap().to_string();
    let victim = c
        .nodes
        .iter()
        .position(|n| n.log().contains(&format!("(node {gone},")))
        .expect("alice's node");
    c.nodes[victim].signal("KILL");
    alice.closed(Duration::from_secs(10)).await;
    let rest = http_via(&nginx, "bob");
    for i in 3..=5 {
        // nginx does not retry a POST on another node: one that reaches the dead node first
        // gets 502, and the client sends it again with the same client_id (stored once).
        let started = Instant::now();
        let (st, m) = loop {
            let (st, m) = rest
                .post(
                    &format!("/threads/{tid}/messages"),
                    json!({"body": format!("while away {i}"), "client_id": format!("away-{i}")}),
                )
                .await;
            if st != 502 || started.elapsed() > Duration::from_secs(10) {
                break (st, m);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(st, 200, "{m}");
        assert_eq!(m["message"]["seq"], i);
    }

    // She reconnects through the same nginx, lands on the surviving node, and catches up.
    let started = Instant::now();
    let (mut alice, hello) = loop {
        match ws_via(&nginx, "alice").await {
            Ok(ok) => break ok,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "no reconnect: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    eprintln!("reconnected through nginx after {:?}", started.elapsed());
    assert_ne!(hello["node_id"], gone.as_str());
    let page = alice
        .ok(json!({"type":"history","thread_id":tid,"after_seq":2}))
        .await;
    let seqs: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    // And live delivery goes on.
    rest.post(
        &format!("/threads/{tid}/messages"),
        json!({"body":"live again"}),
    )
    .await;
    assert_eq!(alice.event("message").await["message"]["seq"], 6);
}

#[tokio::test]
async fn nodes_log_the_forwarded_client_address_only_from_a_trusted_proxy() {
    let c = Cluster::start(1, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let untrusting = Cluster::start(1, &[]).await;
    let node = c.node(0);
    let nginx = Nginx::start(&[&node.addr]).await;
    let other = Nginx::start(&[&untrusting.node(0).addr]).await;
    // From 127.0.0.2 through nginx (at 127.0.0.1): nginx appends 127.0.0.2.
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let open = |nginx: &Nginx, user: &str, client: reqwest::Client| {
        let url = nginx.url(&format!(
            "/api/v1/events?token={}",
            token_with(user, 3600, &[])
        ));
        async move { Sse::open(client.get(url)).await.expect("stream") }
    };
    let _a = open(&nginx, "dave", from("127.0.0.2")).await;
    let _b = open(&other, "erin", from("127.0.0.2")).await;
    // Straight to the node from an address it does not trust, with a made-up header.
    let _c = Sse::open(
        from("127.0.0.3")
            .get(node.url(&format!(
                "/api/v1/events?token={}",
                token_with("frank", 3600, &[])
            )))
            .header("X-Forwarded-For", "6.6.6.6"),
    )
    .await
    .expect("stream");
    let wait_for = |log: &dyn Fn() -> String, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log().contains(needle) {
            assert!(Instant::now() < deadline, "no {needle:?} in:\n{}", log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(&|| node.log(), "for dave (sse) from 127.0.0.2");
    wait_for(&|| node.log(), "for frank (sse) from 127.0.0.3");
    // Not told to trust its proxy, a node logs the proxy.
    wait_for(
        &|| untrusting.node(0).log(),
        "for erin (sse) from 127.0.0.1",
    );
    assert!(!node.log().contains("6.6.6.6"));
}
