//! The socket's outgoing side: the upgrade response's body, drawn from the session's outbox
//! one WebSocket frame at a time.
//!
//! actix polls a response body only while the connection has room for more, so nothing is
//! taken from the outbox faster than the client reads it: what waits is in the outbox, which
//! is bounded in frames and bytes (4008 past either). actix-ws's own `Session` would instead
//! move every queued message into an unbounded buffer on each poll, so it is not used for
//! writing (see `ws/mod.rs`).

use std::convert::Infallible;
use std::sync::Arc;

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use actix_web::web::{Bytes, BytesMut};
use futures_util::Stream;

use crate::session::{Next, Outbox};

/// Longest payload of a control frame (RFC 6455): longer pongs and close reasons are cut.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// The frames of the outbox, encoded, ending after the close frame.
pub fn frames(outbox: Arc<Outbox>) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold((outbox, false), |(outbox, done)| async move {
        if done {
            return None;
        }
        let mut buf = BytesMut::new();
        let mut closed = false;
        match outbox.next().await {
            Next::Text(t) => {
                Parser::write_message(&mut buf, t.as_bytes(), OpCode::Text, true, false)
            }
            Next::Ping => Parser::write_message(&mut buf, b"", OpCode::Ping, true, false),
            Next::Pong(p) => {
                let p = p.slice(..p.len().min(MAX_CONTROL_PAYLOAD));
                Parser::write_message(&mut buf, &p, OpCode::Pong, true, false);
            }
            Next::Close(code, reason) => {
                let mut description = (!reason.is_empty()).then_some(reason);
                if let Some(d) = description.as_mut() {
                    // The code takes 2 bytes of the payload; cut on a char boundary.
                    let mut end = d.len().min(MAX_CONTROL_PAYLOAD - 2);
                    while !d.is_char_boundary(end) {
                        end -= 1;
                    }
                    d.truncate(end);
                }
                let reason = CloseReason {
                    code: CloseCode::from(code),
                    description,
                };
                Parser::write_close(&mut buf, Some(reason), false);
                closed = true;
            }
        }
        Some((Ok(buf.freeze()), (outbox, closed)))
    })
}
