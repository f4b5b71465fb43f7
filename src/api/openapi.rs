//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every REST and server API route,
//! generated from the handlers' `#[utoipa::path]` and the `protocol/` types, so host
//! backends can generate clients. `tests/it/openapi.rs` fails when a route is missing.
//!
//! Request bodies carry this node's limits (`maxLength`, `maxItems`, `enum`), so a generated
//! client or a fuzzer knows what the gateway accepts without reading its configuration.

use actix_web::{HttpResponse, web};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{demo, inbox, notifications, server, sse, threads};
use crate::config::Config;
use crate::context::AppContext;
use crate::service::{self, broadcast, host, messages, orgs, templates};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "A WebSocket-first real-time chat gateway: the REST API for users (JWT) and \
                       the server API for host backends (SERVER_API_KEY). The WebSocket protocol \
                       (GET /ws) is described in docs/protocol.md."
    ),
    paths(
        threads::list_threads,
        threads::create_thread,
        threads::get_thread,
        threads::update_thread,
        threads::add_members,
        threads::remove_member,
        threads::history,
        threads::send_message,
        threads::edit_message,
        threads::delete_message,
        threads::mark_read,
        threads::typing,
        inbox::unread,
        inbox::presence,
        notifications::list,
        notifications::unread_count,
        notifications::read,
        notifications::read_all,
        notifications::dismiss,
        notifications::dismiss_all,
        notifications::preferences,
        notifications::set_preferences,
        notifications::org_online,
        sse::events,
        server::notify,
        server::put_template,
        server::list_templates,
        server::delete_template,
        server::create_thread,
        server::get_thread,
        server::get_thread_by_ref,
        server::add_members,
        server::remove_member,
        server::post_message,
        server::broadcast,
        server::disconnect,
        server::presence,
        server::org_online,
        demo::token,
    ),
    modifiers(&BearerSchemes),
    tags(
        (name = "threads", description = "A user's threads and members"),
        (name = "messages", description = "Messages, receipts and typing"),
        (name = "inbox", description = "Unread counts and presence"),
        (name = "notifications", description = "A user's notifications and preferences"),
        (name = "events", description = "Server-Sent Events: the WebSocket's events for clients that cannot hold one"),
        (name = "server", description = "The host backend's API, behind SERVER_API_KEY"),
    )
)]
pub struct ApiDoc;

/// The two bearer schemes: a user's JWT, and the host's `SERVER_API_KEY`.
struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A JWT issued by the host application"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "server_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The gateway's SERVER_API_KEY"))
                    .build(),
            ),
        );
    }
}

/// `GET /api/v1/openapi.json`
pub async fn document(app: web::Data<AppContext>) -> HttpResponse {
    match serde_json::to_value(ApiDoc::openapi()) {
        Ok(mut doc) => {
            let missed = bound(&mut doc, &bounds(app.config()));
            if !missed.is_empty() {
                log::warn!("openapi: limits for missing properties {missed:?}");
            }
            HttpResponse::Ok().json(doc)
        }
        Err(e) => {
            log::error!("openapi: cannot serialise the document: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// What a request-body property may hold, as the service checks it.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// A string of at most this many chars (a byte limit is also a char limit).
    Chars(usize),
    /// 1 to this many chars.
    Nonempty(usize),
    /// An id: 1 to this many chars, none of them a control character.
    Id(usize),
    /// 1 to this many chars, all matching the character class.
    Class(usize, &'static str),
    /// An array of `.0` to `.1` ids of at most `.2` chars each.
    Ids(usize, usize, usize),
    /// An array of at most `.0` strings of 1 to `.1` chars.
    Strings(usize, usize),
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
const THREAD_KINDS: &[&str] = &["direct", "group"];
/// Any character but a control one (Rust's `char::is_control`: C0, DEL and C1).
const NO_CONTROL: &str = "[^\\u0000-\\u001F\\u007F-\\u009F]";
/// A host message kind's characters.
const HOST_KIND: &str = "[a-z0-9_.-]";

/// (schema, property, limit) for every bounded request-body property. The configurable
/// limits come from `config`; the others are the service's own constants.
fn bounds(config: &Config) -> Vec<(&'static str, &'static str, Limit)> {
    use Limit::*;
    let user = service::MAX_USER_ID_BYTES;
    let body = config.max_body_chars;
    let group = config.max_group_members;
    // A user's list names the others: the caller (a member already) counts toward the cap.
    let others = group.saturating_sub(1);
    let title = Chars(service::threads::MAX_TITLE_CHARS);
    let client_id = Nonempty(messages::MAX_CLIENT_ID_CHARS);
    // Letters and digits of any script, `_`, `-`, `.`, `:`; a JSON Schema pattern cannot
    // name Unicode classes portably, so only the length is stated.
    let category = Nonempty(templates::MAX_CATEGORY_CHARS);
    vec![
        ("CreateThread", "kind", OneOf(THREAD_KINDS)),
        ("CreateThread", "title", title),
        ("CreateThread", "members", Ids(0, others, user)),
        ("UpdateThread", "title", title),
        ("AddMembers", "user_ids", Ids(1, others, user)),
        ("SendBody", "body", Chars(body)),
        ("SendBody", "kind", OneOf(&["text"])),
        ("SendBody", "client_id", client_id),
        ("EditBody", "body", Chars(body)),
        ("Disconnect", "user_id", Id(user)),
        (
            "Preferences",
            "muted_categories",
            Strings(
                service::notifications::MAX_MUTED,
                templates::MAX_CATEGORY_CHARS,
            ),
        ),
        ("Preferences", "min_priority", OneOf(PRIORITIES)),
        (
            "NotifyRequest",
            "user_ids",
            Ids(1, service::notifications::MAX_RECIPIENTS, user),
        ),
        ("NotifyRequest", "category", category),
        ("NotifyRequest", "priority", OneOf(PRIORITIES)),
        ("NotifyRequest", "title", Chars(templates::MAX_TITLE_CHARS)),
        ("NotifyRequest", "body", Chars(templates::MAX_BODY_CHARS)),
        (
            "NotifyRequest",
            "template",
            Nonempty(templates::MAX_KEY_BYTES),
        ),
        ("TemplateBody", "category", category),
        ("TemplateBody", "priority", OneOf(PRIORITIES)),
        ("TemplateBody", "title", Chars(templates::MAX_TITLE_CHARS)),
        ("TemplateBody", "body", Chars(templates::MAX_BODY_CHARS)),
        ("HostThread", "kind", OneOf(THREAD_KINDS)),
        ("HostThread", "title", title),
        ("HostThread", "members", Ids(1, group, user)),
        ("HostThread", "external_ref", Nonempty(host::MAX_REF_CHARS)),
        ("HostMessage", "body", Chars(body)),
        (
            "HostMessage",
            "kind",
            Class(host::MAX_KIND_BYTES, HOST_KIND),
        ),
        ("HostMessage", "sender_id", Id(user)),
        ("HostMessage", "client_id", client_id),
        ("BroadcastRequest", "org", Id(orgs::MAX_ORG_BYTES)),
        (
            "BroadcastRequest",
            "user_ids",
            Ids(1, broadcast::MAX_USERS, user),
        ),
        (
            "BroadcastRequest",
            "channel",
            Nonempty(broadcast::MAX_CHANNEL_CHARS),
        ),
        ("DevLogin", "user_id", Id(user)),
    ]
}

/// Bounds a string schema: 1 to `chars` chars, each matching `pattern` when there is one.
fn nonempty(p: &mut serde_json::Map<String, Value>, chars: usize, pattern: Option<String>) {
    p.insert("minLength".into(), 1.into());
    p.insert("maxLength".into(), chars.into());
    if let Some(pattern) = pattern {
        p.insert("pattern".into(), pattern.into());
    }
}

/// Bounds an array schema of strings: `min` to `max` items, each 1 to `chars` chars matching
/// `pattern`; false when the schema has no `items` to bound.
fn list(
    p: &mut serde_json::Map<String, Value>,
    min: usize,
    max: usize,
    chars: usize,
    pattern: Option<String>,
) -> bool {
    let Some(items) = p.get_mut("items").and_then(Value::as_object_mut) else {
        return false;
    };
    nonempty(items, chars, pattern);
    p.insert("maxItems".into(), max.into());
    if min > 0 {
        p.insert("minItems".into(), min.into());
    }
    true
}

/// `^<class>+$`: a pattern of one character class.
fn of(class: &str) -> Option<String> {
    Some(format!("^{class}+$"))
}

/// Writes each limit into `doc`'s component schemas; returns the (schema, property) pairs
/// the document does not have, so a renamed field cannot lose its limit unnoticed.
fn bound(doc: &mut Value, limits: &[(&'static str, &'static str, Limit)]) -> Vec<String> {
    let mut missed = Vec::new();
    for &(schema, prop, limit) in limits {
        let Some(p) = doc
            .pointer_mut(&format!("/components/schemas/{schema}/properties/{prop}"))
            .and_then(Value::as_object_mut)
        else {
            missed.push(format!("{schema}.{prop}"));
            continue;
        };
        match limit {
            Limit::Chars(n) => {
                p.insert("maxLength".into(), n.into());
            }
            Limit::Nonempty(n) => nonempty(p, n, None),
            Limit::Id(n) => nonempty(p, n, of(NO_CONTROL)),
            Limit::Class(n, class) => nonempty(p, n, of(class)),
            Limit::Ids(min, max, chars) => {
                if !list(p, min, max, chars, of(NO_CONTROL)) {
                    missed.push(format!("{schema}.{prop}[]"));
                }
            }
            Limit::Strings(max, chars) => {
                if !list(p, 0, max, chars, None) {
                    missed.push(format!("{schema}.{prop}[]"));
                }
            }
            Limit::OneOf(values) => {
                let mut list: Vec<Value> = values.iter().map(|v| Value::from(*v)).collect();
                // An optional property (`["string", "null"]`) may still be null.
                if p["type"]
                    .as_array()
                    .is_some_and(|t| t.contains(&"null".into()))
                {
                    list.push(Value::Null);
                }
                p.insert("enum".into(), list.into());
            }
        }
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_names_a_property_of_the_document() {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let config = Config::from_lookup(&|_| None).unwrap();
        assert_eq!(bound(&mut doc, &bounds(&config)), Vec::<String>::new());
        let body = &doc["components"]["schemas"]["SendBody"]["properties"];
        assert_eq!(body["body"]["maxLength"], config.max_body_chars);
        assert_eq!(body["kind"]["enum"], serde_json::json!(["text", null]));
    }
}
