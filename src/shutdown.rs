//! SIGTERM / SIGINT: stop accepting, close every session with 1001, leave the cluster,
//! announce the offlines, and stop the server, all within `SHUTDOWN_GRACE_S`.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::context::AppContext;
use crate::registry::{Drain, SessionCount};
use crate::relay::Transition;

/// Of the shutdown grace, what is kept for leaving the cluster, announcing presence and
/// stopping the server after the sessions are closed.
const SHUTDOWN_TAIL: Duration = Duration::from_millis(2500);

/// Of the sessions' share of the grace, what is kept for a reply that a store call ended
/// by the drain's deadline to reach its session before the close frame.
const REPLY_TAIL: Duration = Duration::from_millis(500);

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => log::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => log::info!("SIGINT received"),
                }
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for a signal, then drains the node and stops `server`. `transitions` is the
/// presence queue, flushed so offlines go out before the process exits.
pub async fn on_signal(
    app: AppContext,
    server: ServerHandle,
    transitions: mpsc::Sender<Transition>,
) {
    signalled().await;
    // Everything below fits in SHUTDOWN_GRACE_S: sessions get what is left after the steps
    // that follow them are budgeted.
    let grace = app.config().shutdown_grace;
    let deadline = Instant::now() + grace;
    app.start_draining();
    // Stop accepting first, so no session opens behind the drain.
    server.pause().await;
    let within = grace.saturating_sub(SHUTDOWN_TAIL);
    // A frame being handled gets its reply before its session's close frame: its store
    // calls end (with `unavailable` if they must) while the session still waits for it.
    let sessions_by = Instant::now() + within;
    app.store()
        .finish_by(sessions_by.checked_sub(REPLY_TAIL).unwrap_or(sessions_by));
    drain(&app, within).await;
    let until = deadline
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(deadline);
    // What follows (the offlines' last-seen times, webhooks) may still write, within the
    // grace. Writes begun under the drain's cap keep it (`store::deadline`).
    app.store().finish_by(until);
    // Withdraw this node (and anyone whose close did not finish) from the cluster now, not
    // when the liveness key expires; then let presence announce the offlines.
    let _ = tokio::time::timeout(Duration::from_secs(1), app.relay().leave()).await;
    let (done, flushed) = tokio::sync::oneshot::channel();
    // Bounded both ways: a full presence queue must not hold the exit past the grace.
    if let Ok(Ok(())) =
        tokio::time::timeout_at(until, transitions.send(Transition::Flush(done))).await
    {
        let _ = tokio::time::timeout_at(until, flushed).await;
    }
    server.stop(true).await;
}

/// Closes every session with 1001 and waits (up to `within`) for them to go.
async fn drain(app: &AppContext, within: Duration) {
    let registry = app.registry();
    let open = registry.send(Drain { within }).await.unwrap_or(0);
    log::info!("draining: closing {open} session(s) with 1001");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        // Gone from the registry, and from the relay (whose answer says who went offline).
        if registry.send(SessionCount).await.unwrap_or(0) == 0 && app.relay().local_sessions() == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
