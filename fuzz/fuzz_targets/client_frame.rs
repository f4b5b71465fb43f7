//! Client frames, end to end: any text a client can send is parsed, and every frame that
//! parses is dispatched to the real services over a real SQLite store, as a socket's worker
//! would. Neither may panic; every reply must be valid JSON of a known type that echoes the
//! frame's `ref`, and no input may reach an `internal` error.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run client_frame -s none fuzz/seeds/client_frame`
//! (see docs/operations.md, "Fuzzing").

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::config::Config;
use switchboard::context::AppContext;
use switchboard::error::ApiError;
use switchboard::protocol::ClientFrame;
use switchboard::service::Caller;
use switchboard::ws::dispatch;

struct Node {
    system: actix_rt::SystemRunner,
    app: AppContext,
    caller: Caller,
}

thread_local! {
    static NODE: OnceLock<Node> = const { OnceLock::new() };
}

/// One node for the whole run, on a fresh SQLite file, with limits high enough that the
/// rate limit does not hide the paths behind it.
fn node() -> Node {
    let dir = std::env::temp_dir().join(format!("sb-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("fuzz.db").display());
    let env = |k: &str| -> Option<String> {
        match k {
            "DATABASE_URL" => Some(db.clone()),
            "RATE_PER_S" | "RATE_BURST" => Some("1000000".into()),
            "JWT_SECRET" => Some("fuzz-secret-fuzz-secret-fuzz-secret-42".into()),
            "PRESENCE_SCOPE" => Some("all".into()),
            _ => None,
        }
    };
    let config = Config::from_lookup(&env).expect("config");
    let system = actix_rt::System::new();
    let (app, _transitions) = system
        .block_on(switchboard::app::start(config))
        .expect("node starts");
    let caller = Caller {
        user_id: "fuzzer".into(),
        session_id: Some("fuzz-session".into()),
    };
    Node {
        system,
        app,
        caller,
    }
}

/// A reply as the client would read it: JSON with a known `type`, echoing `ref`.
fn check_reply(json: &str, reference: Option<&Value>) {
    let v: Value = serde_json::from_str(json).expect("reply is JSON");
    let kind = v["type"].as_str().expect("reply has a type");
    assert!(matches!(kind, "ack" | "error"), "reply of type {kind}");
    if let Some(r) = reference {
        assert_eq!(&v["ref"], r, "reply echoes ref");
    }
    if kind == "error" {
        assert!(v["code"].is_string() && v["message"].is_string(), "{v}");
        // Bad input gets a clear error; `internal` would mean a bug the input reached.
        assert_ne!(v["code"], "internal", "{v}");
    }
}

fuzz_target!(|data: &[u8]| {
    // A text frame is UTF-8 by the time it reaches the parser (the socket refuses others).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    NODE.with(|cell| {
        let node = cell.get_or_init(node);
        match ClientFrame::parse(text) {
            Err(bad) => {
                let reference = bad.reference.clone();
                let frame = ApiError::from(bad).to_frame(reference.clone());
                let r = reference.map(|r| serde_json::to_value(r).expect("ref"));
                check_reply(&frame.to_json(), r.as_ref());
            }
            Ok(frame) => {
                let r = frame
                    .reference()
                    .map(|r| serde_json::to_value(r).expect("ref"));
                // The socket actor answers `ping` itself; every other frame with a `ref`
                // gets exactly one reply from dispatch.
                let owes_reply = r.is_some() && !matches!(frame, ClientFrame::Ping(_));
                let reply = node
                    .system
                    .block_on(dispatch::handle(&node.app, &node.caller, frame));
                match reply {
                    Some(reply) => check_reply(&reply.to_json(), r.as_ref()),
                    None => assert!(!owes_reply, "a frame with a ref got no reply: {text}"),
                }
            }
        }
    });
});
