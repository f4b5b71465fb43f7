//! What an idle WebSocket keeps allocated, read from the allocator's own counter
//! (`switchboard_memory_allocated_bytes`), which counts objects, not pages, and so does not
//! depend on what the allocator happens to keep resident. The gauge exists with jemalloc, the
//! default allocator.
#![cfg(feature = "jemalloc")]

use std::time::Duration;

use serde_json::json;

use crate::harness::{Backend, Server, metric};

/// Sockets held open at once; enough that one socket's noise (a thread cache refilling, a
/// map doubling) is a small share of the mean.
const SOCKETS: usize = 400;

/// The bound per parked socket. The session, its registry entry, its worker task and
/// actix-ws's channels come to about 8 KB in a release build (docs/performance.md, "Idle
/// sockets"); actix-http's dispatcher used to add an 8 KiB read and an 8 KiB write buffer
/// for the connection's life, which `vendor/actix-http.patch` gives back when it parks.
const MAX_BYTES_PER_SOCKET: f64 = 12.0 * 1024.0;

#[tokio::test]
async fn a_parked_websocket_holds_no_transport_buffers() {
    let s = Server::start(Backend::Sqlite).await;
    // The first sessions make the pools, maps and thread caches every later one reuses.
    let mut warm = Vec::new();
    for i in 0..20 {
        warm.push(s.ws(&format!("warm-{i}")).await);
    }
    let allocated = |text: &str| {
        assert!(
            text.contains("# TYPE switchboard_memory_allocated_bytes gauge"),
            "no allocator gauge:\n{text}"
        );
        metric(text, "switchboard_memory_allocated_bytes")
    };
    let before = allocated(&s.metrics().await);
    let mut held = Vec::with_capacity(SOCKETS);
    for i in 0..SOCKETS {
        held.push(s.ws(&format!("idle-{i}")).await);
    }
    // Every one of them registered and answering: an idle socket is a live one.
    let text = s.metrics().await;
    assert_eq!(
        metric(&text, r#"switchboard_connections{transport="ws"}"#) as usize,
        SOCKETS + warm.len()
    );
    for c in held.iter_mut().step_by(40) {
        assert_eq!(c.call(json!({"type": "ping"})).await["type"], "pong");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let per_socket = (allocated(&s.metrics().await) - before) / SOCKETS as f64;
    eprintln!("{per_socket:.0} bytes allocated per idle socket");
    assert!(
        per_socket < MAX_BYTES_PER_SOCKET,
        "{per_socket:.0} bytes allocated per idle socket (bound {MAX_BYTES_PER_SOCKET})"
    );
    // Not vacuous: the sockets cost something, so the counter moved.
    assert!(per_socket > 1024.0, "{per_socket:.0} bytes per socket");
}
