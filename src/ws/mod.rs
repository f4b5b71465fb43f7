//! `GET /ws`: the token and the Origin are checked before the upgrade (401 / 403 with a JSON
//! body), then the socket actor starts with its outbox writer beside it.

pub mod dispatch;
pub mod session;
mod writer;

use actix::{Actor, AsyncContext};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::{origin_allowed, user_from_request};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::metrics::Transport;
use crate::protocol::ErrorCode;
use session::WsSession;

/// Upgrades an authenticated request to a WebSocket session.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    app: web::Data<AppContext>,
) -> Result<HttpResponse, ApiError> {
    let claims = user_from_request(&req, true)?;
    if !origin_allowed(&req, app.config().allowed_origins.as_deref()) {
        return Err(ApiError::new(ErrorCode::Forbidden, "origin not allowed"));
    }
    let (resp, ws, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
    let max = app.config().max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let session = app
        .hub()
        .open(&claims.sub, claims.name.clone(), Transport::Ws);
    let app = app.get_ref().clone();
    let close_wait = app.config().heartbeat * 3;
    WsSession::create(move |ctx| {
        ctx.add_stream(stream);
        actix::spawn(writer::write(
            session.outbox().clone(),
            ws,
            ctx.address().recipient(),
            close_wait,
        ));
        WsSession::new(app, claims, session)
    });
    Ok(resp)
}
