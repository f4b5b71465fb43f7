//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every REST and server API route,
//! generated from the handlers' `#[utoipa::path]` and the `protocol/` types, so host
//! backends can generate clients. `tests/it/openapi.rs` fails when a route is missing.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{demo, inbox, notifications, server, sse, threads};

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
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
