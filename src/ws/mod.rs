//! `GET /ws`: the token and the Origin are checked before the upgrade (401 / 403 with a JSON
//! body), then the socket actor starts with its outbox writer beside it.

mod body;
pub mod dispatch;
pub mod session;

use actix::{Actor, AsyncContext};
use actix_web::body::{BodyStream, MessageBody};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::{origin_allowed, user_from_request};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::metrics::Transport;
use crate::peer::client_addr;
use crate::protocol::ErrorCode;
use crate::service::orgs;
use crate::session::pieces::in_pieces;
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
    let bad = |e: &dyn std::fmt::Display| ApiError::new(ErrorCode::BadRequest, e.to_string());
    let mut handshake = actix_http::ws::handshake(req.head()).map_err(|e| bad(&e))?;
    // actix-ws reads and reassembles the client's frames. Its response body and `Session`
    // are not used for writing (`body.rs` says why), but are kept for the connection's life:
    // dropping that body tells the read half the connection has closed.
    let (ws_resp, ws_session, stream) = actix_ws::handle(&req, body).map_err(|e| bad(&e))?;
    let keep_alive = (ws_resp.into_body(), ws_session);
    let max = app.config().max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let session = app.hub().open(
        &claims.sub,
        claims.name.clone(),
        Transport::Ws,
        client_addr(&req, &app.config().trusted_proxies),
    );
    orgs::remember_later(&app, &claims.sub, &claims.orgs);
    let resp = handshake
        .message_body(BodyStream::new(in_pieces(body::frames(session.outbox().clone()))).boxed())
        .map_err(|e| bad(&e))?;
    let app = app.get_ref().clone();
    WsSession::create(move |ctx| {
        ctx.add_stream(stream);
        WsSession::new(app, claims, session, Box::new(keep_alive))
    });
    Ok(resp.into())
}
