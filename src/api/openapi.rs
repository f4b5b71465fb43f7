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
    /// An id: 1 to this many chars, none of them a control character.
    Id(usize),
    /// 1 to this many chars, all matching the character class.
    Class(usize, &'static str),
    /// An array of at most `.0` ids of at most `.1` chars each.
    Ids(usize, usize),
    /// An array of at most `.0` strings of 1 to `.1` chars of the class `.2`.
    Classes(usize, usize, &'static str),
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];
const THREAD_KINDS: &[&str] = &["direct", "group"];
/// Any character but a control one (Rust's `char::is_control`: C0, DEL and C1).
const NO_CONTROL: &str = "[^\\u0000-\\u001F\\u007F-\\u009F]";
/// A category's characters (the service also takes non-ASCII letters and digits).
const CATEGORY: &str = "[A-Za-z0-9_.:-]";
/// A host message kind's characters.
const HOST_KIND: &str = "[a-z0-9_.-]";

/// (schema, property, limit) for every bounded request-body property. The configurable
/// limits come from `config`; the others are the service's own constants.
fn bounds(config: &Config) -> Vec<(&'static str, &'static str, Limit)> {
    use Limit::*;
    let user = service::MAX_USER_ID_BYTES;
    let body = config.max_body_chars;
    let members = Ids(config.max_group_members, user);
    let title = Chars(service::threads::MAX_TITLE_CHARS);
    let client_id = Id(messages::MAX_CLIENT_ID_CHARS);
    let category = Class(templates::MAX_CATEGORY_CHARS, CATEGORY);
    vec![
        ("CreateThread", "kind", OneOf(THREAD_KINDS)),
        ("CreateThread", "title", title),
        ("CreateThread", "members", members),
        ("UpdateThread", "title", title),
        ("AddMembers", "user_ids", members),
        ("SendBody", "body", Chars(body)),
        ("SendBody", "kind", OneOf(&["text"])),
        ("SendBody", "client_id", client_id),
        ("EditBody", "body", Chars(body)),
        ("Disconnect", "user_id", Id(user)),
        (
            "Preferences",
            "muted_categories",
            Classes(
                service::notifications::MAX_MUTED,
                templates::MAX_CATEGORY_CHARS,
                CATEGORY,
            ),
        ),
        ("Preferences", "min_priority", OneOf(PRIORITIES)),
        (
            "NotifyRequest",
            "user_ids",
            Ids(service::notifications::MAX_RECIPIENTS, user),
        ),
        ("NotifyRequest", "category", category),
        ("NotifyRequest", "priority", OneOf(PRIORITIES)),
        ("NotifyRequest", "title", Chars(templates::MAX_TITLE_CHARS)),
        ("NotifyRequest", "body", Chars(templates::MAX_BODY_CHARS)),
        ("NotifyRequest", "template", Id(templates::MAX_KEY_BYTES)),
        ("TemplateBody", "category", category),
        ("TemplateBody", "priority", OneOf(PRIORITIES)),
        ("TemplateBody", "title", Chars(templates::MAX_TITLE_CHARS)),
        ("TemplateBody", "body", Chars(templates::MAX_BODY_CHARS)),
        ("HostThread", "kind", OneOf(THREAD_KINDS)),
        ("HostThread", "title", title),
        ("HostThread", "members", members),
        ("HostThread", "external_ref", Id(host::MAX_REF_CHARS)),
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
            Ids(broadcast::MAX_USERS, user),
        ),
        (
            "BroadcastRequest",
            "channel",
            Id(broadcast::MAX_CHANNEL_CHARS),
        ),
    ]
}

/// Bounds a string schema: 1 to `chars` chars, each matching `pattern`.
fn nonempty(p: &mut serde_json::Map<String, Value>, chars: usize, pattern: String) {
    p.insert("minLength".into(), 1.into());
    p.insert("maxLength".into(), chars.into());
    p.insert("pattern".into(), pattern.into());
}

/// `^<class>+$`: a pattern of one character class.
fn of(class: &str) -> String {
    format!("^{class}+$")
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
            Limit::Id(n) => nonempty(p, n, of(NO_CONTROL)),
            Limit::Class(n, class) => nonempty(p, n, of(class)),
            Limit::Ids(n, chars) | Limit::Classes(n, chars, _) => {
                let pattern = match limit {
                    Limit::Classes(_, _, class) => of(class),
                    _ => of(NO_CONTROL),
                };
                p.insert("maxItems".into(), n.into());
                if let Some(items) = p.get_mut("items").and_then(Value::as_object_mut) {
                    nonempty(items, chars, pattern);
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
