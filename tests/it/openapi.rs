//! `GET /api/v1/openapi.json` describes every REST and server API route the gateway serves:
//! the route table in src/api/mod.rs is read, and each `/api/v1` route must be in the
//! document with its method (and nothing documented may be missing from the table).

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::{Backend, Server};

/// (method, path) of every route in src/api/mod.rs. Routes before `web::scope("/api/v1")`
/// are at the root; the `/server` scope is the last thing inside `/api/v1`.
fn served_routes() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/mod.rs"))
            .unwrap();
    assert_eq!(
        text.matches("web::scope(").count(),
        2,
        "the parser knows two scopes"
    );
    let mut out = BTreeSet::new();
    let mut prefix = String::new();
    let mut rest = text.as_str();
    loop {
        let next_scope = rest.find("web::scope(\"");
        let next_route = rest.find(".route(");
        match (next_scope, next_route) {
            (Some(s), r) if r.is_none_or(|r| s < r) => {
                let after = &rest[s + "web::scope(\"".len()..];
                let end = after.find('"').unwrap();
                prefix.push_str(&after[..end]);
                rest = &after[end..];
            }
            (_, Some(r)) => {
                let after = &rest[r + ".route(".len()..];
                let q = after.find('"').unwrap();
                let path_end = after[q + 1..].find('"').unwrap();
                let path = &after[q + 1..q + 1 + path_end];
                let m = after.find("web::").unwrap();
                let method: String = after[m + 5..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                out.insert((method, format!("{prefix}{path}")));
                rest = &after[q + 1 + path_end..];
            }
            _ => break,
        }
    }
    out
}

#[tokio::test]
async fn the_document_describes_every_api_route() {
    let s = Server::start(Backend::Sqlite).await;
    let r = reqwest::get(s.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Switchboard");
    let served: BTreeSet<(String, String)> = served_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/api/v1/") && p != "/api/v1/openapi.json")
        .collect();
    assert!(
        served.len() >= 35,
        "found only {} routes: {served:?}",
        served.len()
    );
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            // The demo's dev login takes no credentials by design (docs/operations.md).
            if path.starts_with("/api/v1/dev/") {
                assert!(op["security"].is_null(), "{method} {path}");
                continue;
            }
            assert!(
                op["security"].as_array().is_some_and(|s| !s.is_empty()),
                "{method} {path} names no security scheme"
            );
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
        }
    }
    // Every route the per-user rate covers (PROTOCOL.md: sends, edits, deletes, thread
    // creation, title and member changes; typing starts) documents its 429.
    for (method, path) in [
        ("post", "/api/v1/threads"),
        ("patch", "/api/v1/threads/{id}"),
        ("post", "/api/v1/threads/{id}/members"),
        ("delete", "/api/v1/threads/{id}/members/{user_id}"),
        ("post", "/api/v1/threads/{id}/messages"),
        ("patch", "/api/v1/messages/{id}"),
        ("delete", "/api/v1/messages/{id}"),
        ("post", "/api/v1/threads/{id}/typing"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["429"].is_object(),
            "{method} {path}: no 429"
        );
    }
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Thread",
        "Message",
        "Notification",
        "Presence",
        "ErrorBody",
        "NotifyRequest",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("user_token") && schemes.contains_key("server_key"));
    // What the document says of a body is what the route answers.
    let thread = &schemas["Thread"]["properties"];
    for field in [
        "id",
        "kind",
        "members",
        "last_seq",
        "last_message",
        "updated_at",
    ] {
        assert!(thread.get(field).is_some(), "Thread.{field} missing");
    }
}

/// The schemas of every request body the document names, by component name.
fn request_bodies(doc: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            let r = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
            if let Some(r) = r.as_str() {
                out.insert(r.trim_start_matches("#/components/schemas/").to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn request_bodies_carry_the_limits_this_node_enforces() {
    let s = Server::start_with(
        Backend::Sqlite,
        &[("MAX_BODY_CHARS", "123"), ("MAX_GROUP_MEMBERS", "7")],
    )
    .await;
    let doc: serde_json::Value = reqwest::get(s.url("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    // The configured limits, not the defaults.
    for body in ["SendBody", "EditBody", "HostMessage"] {
        assert_eq!(
            schemas[body]["properties"]["body"]["maxLength"], 123,
            "{body}"
        );
    }
    // A user's list names the others (the caller counts toward the cap); the host's names all.
    for (schema, prop, max, min) in [
        ("CreateThread", "members", 6, None),
        ("AddMembers", "user_ids", 6, Some(1)),
        ("HostThread", "members", 7, Some(1)),
    ] {
        let p = &schemas[schema]["properties"][prop];
        assert_eq!(p["maxItems"], max, "{schema}.{prop}");
        assert_eq!(p["minItems"].as_u64(), min, "{schema}.{prop}");
        assert_eq!(p["items"]["maxLength"], 256, "{schema}.{prop}");
        assert_eq!(p["items"]["minLength"], 1, "{schema}.{prop}");
        assert_eq!(
            p["items"]["pattern"], "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
            "{schema}.{prop}: no control character"
        );
    }
    let host_kind = &schemas["HostMessage"]["properties"]["kind"];
    assert_eq!(host_kind["pattern"], "^[a-z0-9_.-]+$");
    assert_eq!(host_kind["maxLength"], 64);
    assert_eq!(
        schemas["CreateThread"]["properties"]["kind"]["enum"],
        serde_json::json!(["direct", "group"])
    );
    assert_eq!(
        schemas["SendBody"]["properties"]["client_id"]["maxLength"],
        128
    );
    assert_eq!(
        schemas["NotifyRequest"]["properties"]["priority"]["enum"],
        serde_json::json!(["low", "normal", "high", "urgent", null])
    );
    // Every string and array a client may send is bounded, but for an id that must name an
    // existing message and the display name of the demo's dev login.
    let exempt = ["SendBody.reply_to", "HostMessage.reply_to", "DevLogin.name"];
    let bodies = request_bodies(&doc);
    assert!(bodies.len() >= 12, "{bodies:?}");
    for name in &bodies {
        for (prop, p) in schemas[name]["properties"].as_object().unwrap() {
            let key = format!("{name}.{prop}");
            let types = match &p["type"] {
                serde_json::Value::String(t) => vec![t.as_str()],
                serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
                _ => vec![],
            };
            if exempt.contains(&key.as_str()) {
                continue;
            }
            if types.contains(&"string") {
                assert!(
                    p.get("maxLength").is_some() || p.get("enum").is_some(),
                    "{key} is an unbounded string"
                );
            }
            if types.contains(&"array") {
                assert!(p.get("maxItems").is_some(), "{key} is an unbounded array");
            }
        }
    }
    // What the document says is what the node does: a body at the limit is stored, one past
    // it is refused with `too_large`.
    let http = reqwest::Client::new();
    let alice = s.token("alice");
    let thread: serde_json::Value = http
        .post(s.url("/api/v1/threads"))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"kind": "group", "members": ["bob"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = s.url(&format!(
        "/api/v1/threads/{}/messages",
        thread["id"].as_str().unwrap()
    ));
    for (chars, status) in [(123, 200), (124, 413)] {
        let r = http
            .post(&url)
            .bearer_auth(&alice)
            .json(&serde_json::json!({"body": "é".repeat(chars)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{chars} chars");
    }
    // The caller and `maxItems` others make the cap; one more is refused.
    for (others, status) in [(6, 201), (7, 413)] {
        let ids: Vec<String> = (1..=others).map(|i| format!("u{i}")).collect();
        let r = http
            .post(s.url("/api/v1/threads"))
            .bearer_auth(&alice)
            .json(&serde_json::json!({"kind": "group", "members": ids}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "alice and {others} others");
    }
}
