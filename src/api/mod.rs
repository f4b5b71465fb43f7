//! The HTTP surface: the whole route table in one function, and the extractor settings that
//! turn malformed bodies, queries and paths into the contract's JSON errors.

pub mod cors;
pub mod demo;
pub mod inbox;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod server;
pub mod sse;
pub mod threads;

use actix_web::{HttpRequest, HttpResponse, error, web};

use crate::error::ApiError;
use crate::protocol::ErrorCode;

/// Every route, top to bottom.
pub fn configure(cfg: &mut web::ServiceConfig, max_json_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_json_bytes)
            .error_handler(json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .app_data(web::PathConfig::default().error_handler(path_error))
    .route("/", web::get().to(demo::index))
    .route("/app.js", web::get().to(demo::app_js))
    .route("/app.css", web::get().to(demo::app_css))
    .route("/healthz", web::get().to(ops::healthz))
    .route("/readyz", web::get().to(ops::readyz))
    .route("/metrics", web::get().to(ops::metrics))
    .route("/ws", web::get().to(crate::ws::upgrade))
    .service(
        web::scope("/api/v1")
            .route("/openapi.json", web::get().to(openapi::document))
            .route("/events", web::get().to(sse::events))
            .route("/notifications", web::get().to(notifications::list))
            .route(
                "/notifications",
                web::delete().to(notifications::dismiss_all),
            )
            .route(
                "/notifications/unread-count",
                web::get().to(notifications::unread_count),
            )
            .route(
                "/notifications/read-all",
                web::post().to(notifications::read_all),
            )
            .route(
                "/notifications/{id}/read",
                web::post().to(notifications::read),
            )
            .route(
                "/notifications/{id}",
                web::delete().to(notifications::dismiss),
            )
            .route(
                "/notification-preferences",
                web::get().to(notifications::preferences),
            )
            .route(
                "/notification-preferences",
                web::put().to(notifications::set_preferences),
            )
            .route(
                "/orgs/{org}/online",
                web::get().to(notifications::org_online),
            )
            .route("/threads", web::get().to(threads::list_threads))
            .route("/threads", web::post().to(threads::create_thread))
            .route("/threads/{id}", web::get().to(threads::get_thread))
            .route("/threads/{id}", web::patch().to(threads::update_thread))
            .route(
                "/threads/{id}/members",
                web::post().to(threads::add_members),
            )
            .route(
                "/threads/{id}/members/{user_id}",
                web::delete().to(threads::remove_member),
            )
            .route("/threads/{id}/messages", web::get().to(threads::history))
            .route(
                "/threads/{id}/messages",
                web::post().to(threads::send_message),
            )
            .route("/threads/{id}/read", web::post().to(threads::mark_read))
            .route("/threads/{id}/typing", web::post().to(threads::typing))
            .route("/messages/{id}", web::patch().to(threads::edit_message))
            .route("/messages/{id}", web::delete().to(threads::delete_message))
            .route("/unread", web::get().to(inbox::unread))
            .route("/presence", web::get().to(inbox::presence))
            .route("/dev/token", web::post().to(demo::token))
            // Last in the scope: tests/it/openapi.rs reads this table in order.
            .service(
                web::scope("/server")
                    .route("/notifications", web::post().to(server::notify))
                    .route("/templates", web::get().to(server::list_templates))
                    .route("/templates/{key}", web::put().to(server::put_template))
                    .route(
                        "/templates/{key}",
                        web::delete().to(server::delete_template),
                    )
                    .route("/threads", web::post().to(server::create_thread))
                    .route(
                        "/threads/by-ref/{external_ref}",
                        web::get().to(server::get_thread_by_ref),
                    )
                    .route("/threads/{id}", web::get().to(server::get_thread))
                    .route("/threads/{id}/members", web::post().to(server::add_members))
                    .route(
                        "/threads/{id}/members/{user_id}",
                        web::delete().to(server::remove_member),
                    )
                    .route(
                        "/threads/{id}/messages",
                        web::post().to(server::post_message),
                    )
                    .route("/broadcast", web::post().to(server::broadcast))
                    .route("/disconnect", web::post().to(server::disconnect))
                    .route("/presence", web::get().to(server::presence))
                    .route("/orgs/{org}/online", web::get().to(server::org_online))
                    .default_service(web::to(server::unknown)),
            ),
    )
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "no such route"))
}

fn json_error(err: error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        error::JsonPayloadError::OverflowKnownLength { .. }
        | error::JsonPayloadError::Overflow { .. } => {
            ApiError::new(ErrorCode::TooLarge, "request body too large")
        }
        _ => ApiError::new(ErrorCode::BadRequest, format!("invalid JSON body: {err}")),
    };
    e.into()
}

fn query_error(err: error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::BadRequest, format!("invalid query: {err}")).into()
}

fn path_error(err: error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::BadRequest, format!("invalid path: {err}")).into()
}

/// `204 No Content`, for actions that have nothing to return.
pub fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}
