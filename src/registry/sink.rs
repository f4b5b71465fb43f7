//! What the registry needs of a session: a place to push frames that never waits. Sessions of
//! every transport implement it (their outbox), so the registry knows no socket or stream type.

use std::time::Duration;

use bytestring::ByteString;

use crate::envelope::Lane;

/// What became of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// A lossy frame shed because the session is behind.
    Shed,
    /// The durable lane overflowed: the session is being closed with 4008, and `dropped`
    /// frames (this one and everything it had queued) will not be written.
    Overflow {
        dropped: usize,
    },
    /// The session is closing; nothing more is queued.
    Closed,
}

/// A session's outgoing side, as the registry sees it.
pub trait SessionSink: Send + Sync {
    /// Queues a frame on its lane without waiting.
    fn push(&self, lane: &Lane, frame: ByteString) -> Pushed;
    /// Closes after the frames already queued (drain, replaced, revoked).
    fn close(&self, code: u16, reason: &str);
    /// As `close`, but the close goes first anyway after `within` if the session would
    /// otherwise wait longer (a drain bounded by the shutdown grace).
    fn close_within(&self, code: u16, reason: &str, within: Duration);
}
