//! `GET /api/v1/events`: the server → client events of a WebSocket as Server-Sent Events, for
//! clients that cannot hold a socket. A stream is a [`Session`] like any socket: it attaches
//! through the same hub, counts toward the session cap on every node, and is bounded by the
//! same outbox. Actions go through REST.
//!
//! Two halves per stream: the response body drains the outbox into `event:`/`data:` lines,
//! and a driver task keeps the heartbeat comment, closes on token expiry, and detaches the
//! session when the stream ends or when a close cannot wait for a client that does not read.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::stream;
use tokio::sync::oneshot;

use crate::auth::{origin_allowed, token_left, user_from_request};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::metrics::Transport;
use crate::protocol::frames::{CloseEvent, frame_type};
use crate::protocol::{ErrorCode, close};
use crate::service::orgs;
use crate::session::pieces::in_pieces;
use crate::session::{Next, Session};

/// The contract's longest silence on a stream; shorter when `HEARTBEAT_S` is.
const MAX_COMMENT_INTERVAL: Duration = Duration::from_secs(15);
/// Comment intervals a body may leave its comment unwritten before the stream is closed, as
/// a socket silent for three heartbeats is.
const SILENT_INTERVALS: u32 = 3;

/// `GET /api/v1/events`: authenticates as `/ws` does, then streams events until a close.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(("token" = Option<String>, Query, description = "the user token, where no Authorization header can be sent (EventSource)")),
    responses((status = 200, description = "text/event-stream: hello, then every server event a socket would get, a comment line at least every 15 s, and a last event: close with data {\"code\":N}", content_type = "text/event-stream", body = String), (status = 403, body = crate::protocol::rest::ErrorBody), (status = 400, body = crate::protocol::rest::ErrorBody), (status = 401, body = crate::protocol::rest::ErrorBody), (status = 503, body = crate::protocol::rest::ErrorBody)),
    security(("user_token" = []))
)]
pub async fn events(
    req: HttpRequest,
    app: web::Data<AppContext>,
) -> Result<HttpResponse, ApiError> {
    let claims = user_from_request(&req, true)?;
    if !origin_allowed(&req, app.config().allowed_origins.as_deref()) {
        return Err(ApiError::new(ErrorCode::Forbidden, "origin not allowed"));
    }
    let session = app.hub().open(
        &claims.sub,
        claims.name.clone(),
        Transport::Sse,
        crate::peer::client_addr(&req, &app.config().trusted_proxies),
    );
    orgs::remember_later(&app, &claims.sub, &claims.orgs);
    if session.attach().await.is_err() {
        // As a socket would be: a stream that ends at once with 1001, so the client
        // reconnects with backoff (an `EventSource` gives up for good on an error status).
        return Ok(stream_response().body(event(
            "close",
            &CloseEvent {
                code: close::GOING_AWAY,
            }
            .to_json(),
        )));
    }
    let (ended_tx, ended_rx) = oneshot::channel();
    let every = app.config().heartbeat.min(MAX_COMMENT_INTERVAL);
    let expires_in = token_left(&claims, app.config().jwt_leeway_s);
    tokio::spawn(drive(session.clone(), every, expires_in, ended_rx));
    let body = stream::unfold(
        Body {
            session,
            done: false,
            _ended: ended_tx,
        },
        next_chunk,
    );
    Ok(stream_response().streaming(in_pieces(body)))
}

fn stream_response() -> actix_web::HttpResponseBuilder {
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // nginx must pass each event on as it comes (deploy/nginx.conf also says so).
        .insert_header(("X-Accel-Buffering", "no"));
    resp
}

/// The response body's state. Dropping it (the stream ended, or the client went away) drops
/// `_ended`, which tells the driver to detach.
struct Body {
    session: Arc<Session>,
    done: bool,
    _ended: oneshot::Sender<()>,
}

async fn next_chunk(mut body: Body) -> Option<(Result<Bytes, Infallible>, Body)> {
    if body.done {
        return None;
    }
    let chunk = match body.session.outbox().next().await {
        Next::Text(json) => event(frame_type(&json).unwrap_or("message"), &json),
        Next::Ping => Bytes::from_static(b": ping\n\n"),
        // Streams get no client pings; nothing to answer.
        Next::Pong(_) => Bytes::new(),
        Next::Close(code, _) => {
            body.done = true;
            event("close", &CloseEvent { code }.to_json())
        }
    };
    Some((Ok(chunk), body))
}

/// One SSE event. Frames are compact JSON, so `data` is a single line.
fn event(kind: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

/// Heartbeat comments, the 4001 close at token expiry, and the detach: when the body has
/// ended, when the close has been handed to it, or when a close is due that a client not
/// reading would otherwise hold up (a close clears the outbox, so what is left is bounded).
/// A body that has not taken a comment for `SILENT_INTERVALS` is not being read: the client
/// is gone or stuck, and the session closes as a silent socket would.
async fn drive(
    session: Arc<Session>,
    every: Duration,
    expires_in: Duration,
    mut ended: oneshot::Receiver<()>,
) {
    let outbox = session.outbox();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    let mut stuck = 0;
    loop {
        tokio::select! {
            _ = &mut ended => break,
            () = outbox.urgent() => break,
            _ = tick.tick() => {
                if outbox.ping() {
                    stuck += 1;
                    if stuck >= SILENT_INTERVALS {
                        log::info!(
                            "session {} of {}: stream not read; closed",
                            session.id(),
                            session.user_id()
                        );
                        outbox.close_now(close::NORMAL, "no heartbeat");
                    }
                } else {
                    stuck = 0;
                }
            }
            () = &mut expiry, if !outbox.is_closing() => {
                log::info!(
                    "session {} of {}: token expired (4001)",
                    session.id(),
                    session.user_id()
                );
                outbox.close_now(close::TOKEN_EXPIRED, "token expired");
            }
        }
    }
    session.detach().await;
}
