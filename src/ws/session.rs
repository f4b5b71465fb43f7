//! The socket actor: one per WebSocket. It attaches its [`Session`] when it starts and
//! detaches when it stops, reads and parses client frames, keeps the heartbeat, closes the
//! socket when the token expires, and hands frames to a per-session worker that calls the
//! services in order (consecutive sends pipelined into the group commit, so a client's sends
//! get seqs in the order it sent them).
//!
//! Everything written to the socket goes through the session's bounded outbox, drained by the
//! response body (`body.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_ws::{AggregatedMessage, ProtocolError};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use tokio::sync::mpsc;

use super::dispatch;
use crate::auth::{Claims, token_left};
use crate::context::AppContext;
use crate::error::ApiError;
use crate::metrics::{self, DropReason};
use crate::protocol::{BadFrame, ClientFrame, FrameError, ServerFrame, close};
use crate::registry::Pushed;
use crate::service::Caller;
use crate::session::{Outbox, Session};

/// Client frames waiting for the session's worker; past this the socket is not read until the
/// worker catches up, so a client that sends faster than it is answered is slowed by TCP.
const PENDING_FRAMES: usize = 64;
/// How long the worker waits for a client that is not reading its replies before closing the
/// session with 4008 (the wait restarts whenever the client takes a frame).
const REPLY_STALL: Duration = Duration::from_secs(10);
/// Sends of one session committing at once; past this the worker waits for the oldest.
const SENDS_IN_FLIGHT: usize = 32;
/// Heartbeat intervals of silence after which a socket is dropped: one lost ping on a mobile
/// link is forgiven, three are not.
const SILENT_INTERVALS: u32 = 3;

/// A client frame and when it was read, for the send → ack histogram. Boxed: tokio allocates
/// a channel's first block of 32 slots up front, which with the frame inline was 6.9 KB of
/// every idle connection (docs/performance.md, "Idle sockets, by allocation site").
type Work = (Box<ClientFrame>, Instant);

/// One WebSocket connection.
pub struct WsSession {
    app: AppContext,
    claims: Claims,
    session: Arc<Session>,
    last_heard: Instant,
    /// Whether the session is in the registry; no frame is acted on before.
    attached: bool,
    /// The worker's queue, made with the worker on the first frame that needs one: a socket
    /// that only listens (and pings) never has one (docs/performance.md, "Idle sockets").
    work: Option<mpsc::Sender<Work>>,
    /// actix-ws's unused writing half, held until the actor stops (see `ws/mod.rs`).
    _keep_alive: Box<dyn std::any::Any>,
}

impl WsSession {
    /// The actor for an authenticated user's `session`, whose outbox the writer already drains.
    pub fn new(
        app: AppContext,
        claims: Claims,
        session: Arc<Session>,
        keep_alive: Box<dyn std::any::Any>,
    ) -> Self {
        WsSession {
            app,
            claims,
            session,
            last_heard: Instant::now(),
            attached: false,
            work: None,
            _keep_alive: keep_alive,
        }
    }

    fn outbox(&self) -> &Outbox {
        self.session.outbox()
    }

    fn reply(&self, frame: &ServerFrame) {
        reply(self.outbox(), &self.session, frame);
    }

    /// Starts the worker for the first frame that needs it: not before the session is
    /// attached, nor once it is closing (a frame then is not acted on, as the worker would not).
    fn start_worker(&mut self) {
        if self.work.is_some() || !self.attached || self.outbox().is_closing() {
            return;
        }
        let (tx, rx) = mpsc::channel(PENDING_FRAMES);
        let caller = Caller {
            user_id: self.claims.sub.clone(),
            session_id: Some(self.session.id().to_string()),
        };
        tokio::spawn(work(self.app.clone(), caller, self.session.clone(), rx));
        self.work = Some(tx);
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(bad) => return self.bad_frame(bad),
        };
        if let ClientFrame::Ping(p) = frame {
            return self.reply(&ServerFrame::Pong {
                reference: p.reference,
            });
        }
        self.start_worker();
        let Some(work) = &self.work else { return };
        if let Err(mpsc::error::TrySendError::Full(item)) =
            work.try_send((Box::new(frame), Instant::now()))
        {
            // Stop reading until the worker takes one: `wait` holds the actor's streams, and
            // its timers too, so the wait itself ends at a close (4008, 4009, 1001...) or at
            // the token's expiry, which the held timer could not fire.
            let work = work.clone();
            let session = self.session.clone();
            let left = token_left(&self.claims, self.app.config().jwt_leeway_s);
            ctx.wait(
                async move {
                    tokio::select! {
                        _ = work.send(item) => {}
                        () = session.outbox().urgent() => {}
                        () = tokio::time::sleep(left) => {
                            log::info!(
                                "session {} of {}: token expired (4001)",
                                session.id(),
                                session.user_id()
                            );
                            session.outbox().close_now(close::TOKEN_EXPIRED, "token expired");
                        }
                    }
                }
                .into_actor(self),
            );
        }
    }

    /// Explains a frame that could not be used, echoing its `ref` when that much was readable.
    fn bad_frame(&self, bad: BadFrame) {
        let reference = bad.reference.clone();
        self.reply(&ApiError::from(bad).to_frame(reference));
    }

    fn close_now(&self, ctx: &mut Context<Self>, code: u16, reason: &str) {
        self.outbox().close_now(code, reason);
        ctx.stop();
    }

    fn heartbeat(&self, ctx: &mut Context<Self>) {
        let every = self.app.config().heartbeat;
        ctx.run_interval(every, move |act, ctx| {
            if act.last_heard.elapsed() > every * SILENT_INTERVALS {
                log::info!(
                    "session {} of {} silent; dropped",
                    act.session.id(),
                    act.claims.sub
                );
                act.close_now(ctx, close::NORMAL, "no heartbeat");
            } else {
                act.outbox().ping();
            }
        });
    }

    fn expire_with_token(&self, ctx: &mut Context<Self>) {
        let left = token_left(&self.claims, self.app.config().jwt_leeway_s);
        ctx.run_later(left, |act, ctx| {
            log::info!(
                "session {} of {}: token expired (4001)",
                act.session.id(),
                act.claims.sub
            );
            // Read nothing more on an expired token.
            act.close_now(ctx, close::TOKEN_EXPIRED, "token expired");
        });
    }
}

fn reply(outbox: &Outbox, session: &Session, frame: &ServerFrame) {
    match outbox.reply(frame.to_json().into()) {
        Pushed::Queued | Pushed::Shed => {}
        Pushed::Closed => metrics::event_dropped(DropReason::Closing, 1),
        Pushed::Overflow { dropped } => {
            metrics::event_dropped(DropReason::SlowSession, dropped as u64);
            log::warn!(
                "session {} of {} closed: too slow (4008)",
                session.id(),
                session.user_id()
            );
        }
    }
}

impl Actor for WsSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // No client frame is read until the session is attached (`wait`).
        let session = self.session.clone();
        async move { session.attach().await }
            .into_actor(self)
            .map(|attached, act, ctx| {
                if attached.is_err() {
                    ctx.stop();
                    return;
                }
                act.attached = true;
                act.heartbeat(ctx);
                act.expire_with_token(ctx);
                // Stop once a close is due: one asked for by the registry (4008, 4009, 4003,
                // 1001), or handed to the body. A client that no longer reads cannot hold
                // the session.
                let outbox = act.session.clone();
                async move { outbox.outbox().urgent().await }
                    .into_actor(act)
                    .map(|(), _, ctx| ctx.stop())
                    .spawn(ctx);
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Closing the work queue ends the worker after the frame it is on.
        self.work = None;
        let session = self.session.clone();
        tokio::spawn(async move { session.detach().await });
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let (id, user) = (self.session.id(), &self.claims.sub);
        match msg {
            Ok(AggregatedMessage::Text(t)) => self.on_text(&t, ctx),
            Ok(AggregatedMessage::Binary(_)) => self.bad_frame(BadFrame {
                reference: None,
                error: FrameError::Binary,
            }),
            Ok(AggregatedMessage::Ping(p)) => self.outbox().pong(p),
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close_now(ctx, close::NORMAL, ""),
            Err(ProtocolError::Overflow) => {
                log::info!("session {id} of {user}: frame too big (1009)");
                self.close_now(ctx, close::TOO_BIG, "frame too big");
            }
            // A message reassembled from fragments past MAX_FRAME_BYTES is as much "too big"
            // as one large frame; actix-ws reports it as an I/O error with this text.
            Err(ProtocolError::Io(e)) if e.to_string().contains("maximum continuation size") => {
                log::info!("session {id} of {user}: message too big (1009)");
                self.close_now(ctx, close::TOO_BIG, "message too big");
            }
            Err(e) => {
                log::info!("session {id} of {user}: protocol error: {e}");
                self.close_now(ctx, close::NORMAL, "protocol error");
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The session's worker: frames in the order they came, replies into the outbox.
///
/// Consecutive sends are pipelined: each is checked and queued for the group commit in turn
/// (so they take seqs in the order sent), and the next is read while it commits; their
/// replies go out in the same order. Any other frame waits until the sends before it are
/// answered, so it sees their effect, and is handled alone.
async fn work(
    app: AppContext,
    caller: Caller,
    session: Arc<Session>,
    mut rx: mpsc::Receiver<Work>,
) {
    let outbox = session.outbox();
    let mut sends: FuturesOrdered<BoxFuture<'static, ServerFrame>> = FuturesOrdered::new();
    loop {
        let (frame, read_at) = tokio::select! {
            // Replies first: they free room and end the in-flight count the drain waits on.
            biased;
            Some(done) = sends.next(), if !sends.is_empty() => {
                reply(outbox, &session, &done);
                outbox.end();
                continue;
            }
            next = rx.recv(), if sends.len() < SENDS_IN_FLIGHT => match next {
                Some(w) => w,
                None => break,
            },
        };
        // Frames still queued when the socket closes (4001, 4008, 1001...) are not acted on;
        // one begun before a graceful close gets its reply ahead of the close frame.
        if !outbox.room(REPLY_STALL).await {
            log::warn!(
                "session {} of {} closed: replies not read for {}s (4008)",
                session.id(),
                session.user_id(),
                REPLY_STALL.as_secs()
            );
            metrics::event_dropped(DropReason::SlowSession, 1);
            outbox.close_now(close::TOO_SLOW, "replies not read");
            break;
        }
        if !outbox.begin() {
            break;
        }
        // The handlers' futures are boxed while they run: inline, the largest of them made
        // this task 7.9 KB for as long as the socket is open, idle or not.
        if let ClientFrame::Send(f) = *frame {
            sends.push_back(Box::pin(dispatch::send(&app, &caller, f, read_at)).await);
            continue;
        }
        // Everything else after the sends before it.
        while let Some(done) = sends.next().await {
            reply(outbox, &session, &done);
            outbox.end();
        }
        if let Some(frame) = dispatch::handle(&app, &caller, *frame).await {
            reply(outbox, &session, &frame);
        }
        outbox.end();
    }
    // Sends already queued are answered before the socket closes.
    while let Some(done) = sends.next().await {
        reply(outbox, &session, &done);
        outbox.end();
    }
}

#[cfg(test)]
mod tests {
    /// tokio allocates a channel's first 32 slots when it is made: with the frame inline that
    /// was 6.9 KB of every open socket.
    #[test]
    fn a_queued_frame_costs_a_pointer_and_a_time() {
        assert!(std::mem::size_of::<super::Work>() <= 32);
    }
}
