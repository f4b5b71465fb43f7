//! `GET /ws`: the token and the Origin are checked before the upgrade (401 / 403 with a JSON
//! body), then the socket actor starts with its outbox writer beside it.

pub mod dispatch;
pub mod frames;
pub mod outbox;
pub mod session;

use std::sync::Arc;

use actix::{Actor, AsyncContext};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::user_from_request;
use crate::error::{ApiError, ErrorCode};
use outbox::Outbox;
use session::WsSession;

/// Whether the request's `Origin` may open a socket (`ALLOWED_ORIGINS`). Clients that send no
/// Origin (websocat, mobile apps, servers) are not browsers and are let through.
fn origin_allowed(req: &HttpRequest, allowed: Option<&[String]>) -> bool {
    let Some(allowed) = allowed else { return true };
    match req.headers().get(actix_web::http::header::ORIGIN) {
        None => true,
        Some(o) => o.to_str().is_ok_and(|o| {
            allowed
                .iter()
                .any(|a| a == "*" || a == o.trim_end_matches('/'))
        }),
    }
}

/// Upgrades an authenticated request to a WebSocket session.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let claims = user_from_request(&req, true)?;
    if !origin_allowed(&req, state.config.allowed_origins.as_deref()) {
        return Err(ApiError::new(ErrorCode::Forbidden, "origin not allowed"));
    }
    let (resp, ws, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let max = state.config.max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let outbox = Arc::new(Outbox::new(state.config.outbox_frames));
    let state = state.get_ref().clone();
    let writer_outbox = outbox.clone();
    let close_wait = state.config.heartbeat * 3;
    WsSession::create(move |ctx| {
        ctx.add_stream(stream);
        actix::spawn(session::write(
            writer_outbox,
            ws,
            ctx.address().recipient(),
            close_wait,
        ));
        WsSession::new(state, claims, outbox)
    });
    Ok(resp)
}
