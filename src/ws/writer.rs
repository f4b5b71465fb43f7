//! The socket's only writer: drains the session's outbox into the actix-ws `Session`.

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use actix_ws::{CloseCode, CloseReason};

use super::session::Stop;
use crate::session::{Next, Outbox};

/// Drains the outbox into the socket, and gives up on a client that stops reading once a
/// pre-emptive close (4008, 4001, 1009) is asked for.
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
