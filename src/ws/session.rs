//! The socket actor: one per WebSocket. It registers with the session registry when it starts
//! and leaves when it stops, reads and parses client frames, keeps the heartbeat, closes the
//! socket when the token expires, and hands frames to a per-session worker that calls the
//! services one at a time (so a client's sends get seqs in the order it sent them).
//!
//! Everything written to the socket goes through the session's bounded [`Outbox`] and one
//! writer task, which alone owns the actix-ws `Session`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};
use bytestring::ByteString;
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::auth::Claims;
use crate::error::{ApiError, ErrorCode};
use crate::registry::{Register, Unregister};
use crate::service::Caller;
use crate::ws::dispatch;
use crate::ws::frames::{ClientFrame, FrameHead, MAX_REF_CHARS, ServerFrame, close};
use crate::ws::outbox::{Next, Outbox, Pushed};

/// Client frames waiting for the session's worker; past this the client is told to slow down.
const PENDING_FRAMES: usize = 64;
/// Heartbeat intervals of silence after which a socket is dropped: one lost ping on a mobile
/// link is forgiven, three are not.
const SILENT_INTERVALS: u32 = 3;

/// Serialises a frame for the outbox.
pub fn encode(frame: &ServerFrame) -> ByteString {
    ByteString::from(serde_json::to_string(frame).unwrap_or_default())
}

/// One WebSocket connection.
pub struct WsSession {
    id: String,
    claims: Claims,
    state: AppState,
    outbox: Arc<Outbox>,
    last_heard: Instant,
    work: Option<mpsc::Sender<ClientFrame>>,
    /// Whether the registry and the relay know this session (so it must leave them).
    registered: bool,
}

impl WsSession {
    /// A session for an authenticated user; `outbox` is already being written by its writer.
    pub fn new(state: AppState, claims: Claims, outbox: Arc<Outbox>) -> Self {
        WsSession {
            id: uuid::Uuid::now_v7().simple().to_string(),
            claims,
            state,
            outbox,
            last_heard: Instant::now(),
            work: None,
            registered: false,
        }
    }

    fn reply(&self, frame: &ServerFrame) {
        if self.outbox.reply(encode(frame)) == Pushed::Overflow {
            log::warn!(
                "session {} of {} closed: too slow (4008)",
                self.id,
                self.claims.sub
            );
        }
    }

    fn error(&self, reference: Option<String>, code: ErrorCode, message: &str) {
        self.reply(&ApiError::new(code, message).to_frame(reference));
    }

    fn on_text(&mut self, text: &str) {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => return self.bad_frame(text, &e),
        };
        let reference = frame.reference().cloned();
        if reference
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REF_CHARS)
        {
            return self.error(
                None,
                ErrorCode::BadRequest,
                &format!("ref is longer than {MAX_REF_CHARS} chars"),
            );
        }
        if let ClientFrame::Ping(_) = frame {
            return self.reply(&ServerFrame::Pong { reference });
        }
        let Some(work) = &self.work else { return };
        if let Err(mpsc::error::TrySendError::Full(_)) = work.try_send(frame) {
            self.reply(
                &ApiError {
                    code: ErrorCode::RateLimited,
                    message: "too many frames in flight".into(),
                    retry_after_ms: Some(100),
                }
                .to_frame(reference),
            );
        }
    }

    /// Explains a frame that did not parse, echoing its `ref` when that much was readable.
    fn bad_frame(&self, text: &str, err: &serde_json::Error) {
        let head = serde_json::from_str::<FrameHead>(text).ok();
        let reference = head
            .as_ref()
            .and_then(|h| h.reference.as_ref())
            .and_then(|r| r.as_str())
            .filter(|r| r.chars().count() <= MAX_REF_CHARS)
            .map(str::to_string);
        let message = match head.as_ref().map(|h| &h.kind) {
            None => "frame is not a JSON object".to_string(),
            Some(None) => "frame has no \"type\"".to_string(),
            Some(Some(serde_json::Value::String(t))) if !KNOWN_TYPES.contains(&t.as_str()) => {
                format!("unknown frame type {t:?}")
            }
            Some(Some(serde_json::Value::String(_))) => format!("invalid frame: {err}"),
            Some(Some(_)) => "\"type\" must be a string".to_string(),
        };
        self.error(reference, ErrorCode::BadRequest, &message);
    }

    fn heartbeat(&self, ctx: &mut Context<Self>) {
        let every = self.state.config.heartbeat;
        ctx.run_interval(every, move |act, ctx| {
            if act.last_heard.elapsed() > every * SILENT_INTERVALS {
                log::info!("session {} of {} silent; dropped", act.id, act.claims.sub);
                act.outbox.close_now(close::NORMAL, "no heartbeat");
                ctx.stop();
            } else {
                act.outbox.ping();
            }
        });
    }

    fn expire_with_token(&self, ctx: &mut Context<Self>) {
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        // The same leeway the upgrade allowed, so a token accepted late is not closed at once.
        let until = self
            .claims
            .exp
            .saturating_add(self.state.config.jwt_leeway_s);
        let left = Duration::from_secs(until.saturating_sub(now));
        ctx.run_later(left, |act, ctx| {
            log::info!(
                "session {} of {}: token expired (4001)",
                act.id,
                act.claims.sub
            );
            act.outbox.close_now(close::TOKEN_EXPIRED, "token expired");
            // Read nothing more on an expired token.
            ctx.stop();
        });
    }
}

/// Every `type` a client may send, for telling "unknown type" from "bad fields".
const KNOWN_TYPES: &[&str] = &[
    "send",
    "typing",
    "read",
    "delivered",
    "history",
    "threads",
    "watch_presence",
    "unwatch_presence",
    "ping",
];

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let register = Register {
            session_id: self.id.clone(),
            user_id: self.claims.sub.clone(),
            outbox: self.outbox.clone(),
            hello: encode(&ServerFrame::Hello {
                session_id: self.id.clone(),
                user_id: self.claims.sub.clone(),
                node_id: self.state.config.node_id.clone(),
                heartbeat_s: self.state.config.heartbeat.as_secs(),
                protocol: 1,
            }),
        };
        // The relay first (this node now receives the user's events from every node and the
        // user counts as online), then the registry, which queues `hello` ahead of any event:
        // so `hello` goes first and nothing published after it is missed. No client frame is
        // read until both are done.
        let (registry, relay) = (self.state.registry.clone(), self.state.relay.clone());
        let (user, sid, name) = (
            self.claims.sub.clone(),
            self.id.clone(),
            self.claims.name.clone(),
        );
        async move {
            relay.session_opened(&user, &sid, name).await;
            if registry.send(register).await != Ok(true) {
                relay.session_closed(&user, &sid).await;
                return false;
            }
            true
        }
        .into_actor(self)
        .map(|ok, act, ctx| {
            act.registered = ok;
            if !ok {
                act.outbox
                    .close_now(close::GOING_AWAY, "server shutting down");
                ctx.stop();
                return;
            }
            log::info!("session {} opened for {}", act.id, act.claims.sub);
            let (tx, rx) = mpsc::channel(PENDING_FRAMES);
            act.work = Some(tx);
            tokio::spawn(work(
                act.state.clone(),
                Caller {
                    user_id: act.claims.sub.clone(),
                    session_id: Some(act.id.clone()),
                },
                act.outbox.clone(),
                rx,
            ));
            act.heartbeat(ctx);
            act.expire_with_token(ctx);
        })
        .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Closing the work queue (and the outbox) ends the worker after the frame it is on.
        self.work = None;
        self.outbox.close(close::NORMAL, "");
        if !self.registered {
            return;
        }
        let (registry, relay) = (self.state.registry.clone(), self.state.relay.clone());
        let (user, sid) = (self.claims.sub.clone(), self.id.clone());
        tokio::spawn(async move {
            let unwatched = registry
                .send(Unregister {
                    session_id: sid.clone(),
                })
                .await
                .unwrap_or_default();
            for watched in unwatched {
                relay.watch(&watched, false).await;
            }
            relay.session_closed(&user, &sid).await;
        });
        log::info!("session {} closed for {}", self.id, self.claims.sub);
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(AggregatedMessage::Text(t)) => self.on_text(&t),
            Ok(AggregatedMessage::Binary(_)) => self.error(
                None,
                ErrorCode::BadRequest,
                "binary frames are not supported; send JSON text",
            ),
            Ok(AggregatedMessage::Ping(p)) => self.outbox.pong(p),
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => {
                self.outbox.close_now(close::NORMAL, "");
                ctx.stop();
            }
            Err(ProtocolError::Overflow) => {
                log::info!(
                    "session {} of {}: frame too big (1009)",
                    self.id,
                    self.claims.sub
                );
                self.outbox.close_now(close::TOO_BIG, "frame too big");
                ctx.stop();
            }
            // A message reassembled from fragments past MAX_FRAME_BYTES is as much "too big"
            // as one large frame; actix-ws reports it as an I/O error with this text.
            Err(ProtocolError::Io(e)) if e.to_string().contains("maximum continuation size") => {
                log::info!(
                    "session {} of {}: message too big (1009)",
                    self.id,
                    self.claims.sub
                );
                self.outbox.close_now(close::TOO_BIG, "message too big");
                ctx.stop();
            }
            Err(e) => {
                log::info!(
                    "session {} of {}: protocol error: {e}",
                    self.id,
                    self.claims.sub
                );
                self.outbox.close_now(close::NORMAL, "protocol error");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Stops the actor (its writer ended: the socket is closed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

impl Handler<Stop> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The session's worker: one frame at a time, replies into the outbox.
async fn work(
    state: AppState,
    caller: Caller,
    outbox: Arc<Outbox>,
    mut rx: mpsc::Receiver<ClientFrame>,
) {
    while let Some(frame) = rx.recv().await {
        // Frames still queued when the socket closes (4001, 4008, 1001...) are not acted on.
        if outbox.is_closing() {
            break;
        }
        if let Some(reply) = dispatch::handle(&state, &caller, frame).await {
            outbox.reply(encode(&reply));
        }
    }
}

/// The socket's only writer: drains the outbox into the socket, and gives up on a client that
/// stops reading once a pre-emptive close (4008, 4001, 1009) is asked for.
///
/// A close frame waits for room behind what the socket already holds for up to
/// `close_wait`, so a client that catches up still learns why it was closed; after that the
/// connection is dropped.
pub async fn write(
    outbox: Arc<Outbox>,
    mut session: actix_ws::Session,
    actor: Recipient<Stop>,
    close_wait: Duration,
) {
    loop {
        let next = outbox.next().await;
        let sent = match next {
            // Every write gives way to a close that must go first: a client that does not
            // read must not keep its writer (and so its session) forever.
            Next::Text(t) => tokio::select! {
                r = session.text(t) => r.is_ok(),
                () = outbox.urgent() => true,
            },
            Next::Ping => tokio::select! {
                r = session.ping(b"") => r.is_ok(),
                () = outbox.urgent() => true,
            },
            Next::Pong(p) => tokio::select! {
                r = session.pong(&p) => r.is_ok(),
                () = outbox.urgent() => true,
            },
            Next::Close(code, reason) => {
                let reason = CloseReason {
                    code: CloseCode::from(code),
                    description: (!reason.is_empty()).then_some(reason),
                };
                let _ = tokio::time::timeout(close_wait, session.close(Some(reason))).await;
                break;
            }
        };
        if !sent {
            break;
        }
    }
    // Dropping the last `Session` ends the response body, which closes the connection.
    let _ = actor.try_send(Stop);
}
