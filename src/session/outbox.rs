//! The bounded queue between the registry and one session's socket writer.
//!
//! Two lanes: durable frames (messages, receipts, acks) queue up to `OUTBOX_FRAMES` and past
//! that the session is closed with 4008; lossy frames (typing, presence) keep only the latest
//! per key, are the first dropped, and are not queued at all while the durable lane is half
//! full. Pushing never waits: the registry must never await a client.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::web::Bytes;
use bytestring::ByteString;
use tokio::sync::Notify;

use crate::envelope::Lane;
use crate::protocol::close;
use crate::registry::{Pushed, SessionSink};

/// Distinct lossy keys (typing per thread and user, presence per user) kept per session.
const LOSSY_KEYS: usize = 64;
/// How long a graceful close (drain, replaced, revoked) waits for queued frames to be
/// written before it goes first anyway.
const CLOSE_FLUSH_LIMIT: Duration = Duration::from_secs(3);

/// What the writer should do next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Write a text frame.
    Text(ByteString),
    /// Send a heartbeat ping.
    Ping,
    /// Answer a client ping.
    Pong(Bytes),
    /// Close the socket with this code and reason, then stop.
    Close(u16, String),
}

#[derive(Default)]
struct State {
    durable: VecDeque<ByteString>,
    lossy: VecDeque<(String, ByteString)>,
    ping: bool,
    pong: Option<Bytes>,
    /// A close that waits for the queued frames to be written first, and since when.
    close_after: Option<(u16, String)>,
    close_after_at: Option<tokio::time::Instant>,
    /// A close that goes before anything still queued.
    close_now: Option<(u16, String)>,
    closed: bool,
}

/// One session's outgoing queue.
pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    urgent: Notify,
    capacity: usize,
}

impl Outbox {
    /// An outbox holding at most `capacity` durable frames.
    pub fn new(capacity: usize) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            urgent: Notify::new(),
            capacity,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock means a panic while pushing, which leaves the queue consistent
        // (every mutation is a single push or pop), so carry on with it.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Queues a frame on its lane.
    pub fn push(&self, lane: &Lane, frame: ByteString) -> Pushed {
        let pushed = self.with(|s| {
            if s.closed || s.close_now.is_some() || s.close_after.is_some() {
                return Pushed::Closed;
            }
            match lane {
                Lane::Durable => {
                    if s.durable.len() >= self.capacity {
                        s.close_now = Some((close::TOO_SLOW, "too slow".into()));
                        s.durable.clear();
                        s.lossy.clear();
                        return Pushed::Overflow;
                    }
                    s.durable.push_back(frame);
                    Pushed::Queued
                }
                Lane::Lossy { key } => {
                    if s.durable.len() * 2 >= self.capacity {
                        return Pushed::Shed;
                    }
                    if let Some(slot) = s.lossy.iter_mut().find(|(k, _)| k == key) {
                        slot.1 = frame;
                        return Pushed::Queued;
                    }
                    let shed = s.lossy.len() >= LOSSY_KEYS;
                    if shed {
                        s.lossy.pop_front();
                    }
                    s.lossy.push_back((key.clone(), frame));
                    if shed { Pushed::Shed } else { Pushed::Queued }
                }
            }
        });
        match pushed {
            Pushed::Overflow => {
                self.wake.notify_one();
                self.urgent.notify_one();
            }
            Pushed::Queued => self.wake.notify_one(),
            Pushed::Shed | Pushed::Closed => {}
        }
        pushed
    }

    /// Queues a durable frame (replies to the client's own frames).
    pub fn reply(&self, frame: ByteString) -> Pushed {
        self.push(&Lane::Durable, frame)
    }

    /// Asks the writer to ping the client.
    pub fn ping(&self) {
        self.with(|s| s.ping = true);
        self.wake.notify_one();
    }

    /// Asks the writer to answer a client ping.
    pub fn pong(&self, payload: Bytes) {
        self.with(|s| s.pong = Some(payload));
        self.wake.notify_one();
    }

    /// Closes after the frames already queued (drain, replaced, revoked).
    pub fn close(&self, code: u16, reason: &str) {
        self.with(|s| {
            if s.close_after.is_none() {
                s.close_after = Some((code, reason.to_string()));
                s.close_after_at = Some(tokio::time::Instant::now());
            }
        });
        self.wake.notify_one();
        self.urgent.notify_one();
    }

    /// Closes before anything still queued (too slow, token expired, frame too big, silence).
    pub fn close_now(&self, code: u16, reason: &str) {
        self.with(|s| {
            if s.close_now.is_none() {
                s.close_now = Some((code, reason.to_string()));
            }
        });
        self.wake.notify_one();
        self.urgent.notify_one();
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        self.with(|s| s.closed || s.close_now.is_some() || s.close_after.is_some())
    }

    fn try_next(&self) -> Option<Next> {
        self.with(|s| {
            if s.closed {
                return Some(Next::Close(close::NORMAL, String::new()));
            }
            if let Some((code, reason)) = s.close_now.take() {
                s.closed = true;
                return Some(Next::Close(code, reason));
            }
            if let Some(p) = s.pong.take() {
                return Some(Next::Pong(p));
            }
            if std::mem::take(&mut s.ping) {
                return Some(Next::Ping);
            }
            if let Some(f) = s.durable.pop_front() {
                return Some(Next::Text(f));
            }
            if let Some((_, f)) = s.lossy.pop_front() {
                return Some(Next::Text(f));
            }
            if let Some((code, reason)) = s.close_after.take() {
                s.closed = true;
                return Some(Next::Close(code, reason));
            }
            None
        })
    }

    /// Waits for the next thing to write.
    pub async fn next(&self) -> Next {
        loop {
            if let Some(n) = self.try_next() {
                return n;
            }
            self.wake.notified().await;
        }
    }

    /// Resolves when a close must pre-empt pending writes: one asked for as urgent, or a
    /// graceful one that has waited `CLOSE_FLUSH_LIMIT` behind a client that does not read.
    pub async fn urgent(&self) {
        loop {
            let (now, since) = self.with(|s| (s.close_now.is_some(), s.close_after_at));
            if now {
                return;
            }
            match since {
                Some(at) if self.with(|s| s.close_after.is_some()) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at + CLOSE_FLUSH_LIMIT) => {
                            self.with(|s| {
                                if let Some(c) = s.close_after.take() {
                                    s.close_now = Some(c);
                                }
                            });
                        }
                        () = self.urgent.notified() => {}
                    }
                }
                _ => self.urgent.notified().await,
            }
        }
    }
}

impl SessionSink for Outbox {
    fn push(&self, lane: &Lane, frame: ByteString) -> Pushed {
        Outbox::push(self, lane, frame)
    }

    fn close(&self, code: u16, reason: &str) {
        Outbox::close(self, code, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(k: &str) -> Lane {
        Lane::Lossy { key: k.into() }
    }

    #[tokio::test]
    async fn durable_frames_come_out_in_order() {
        let o = Outbox::new(4);
        o.push(&Lane::Durable, "a".into());
        o.push(&Lane::Durable, "b".into());
        assert_eq!(o.next().await, Next::Text("a".into()));
        assert_eq!(o.next().await, Next::Text("b".into()));
    }

    #[tokio::test]
    async fn lossy_frames_keep_the_latest_per_key() {
        let o = Outbox::new(4);
        o.push(&lossy("typing:t:bob"), "1".into());
        o.push(&lossy("typing:t:bob"), "2".into());
        assert_eq!(o.next().await, Next::Text("2".into()));
        assert!(o.try_next().is_none());
    }

    #[test]
    fn overflow_closes_with_4008_before_anything_queued() {
        let o = Outbox::new(2);
        assert_eq!(o.push(&Lane::Durable, "a".into()), Pushed::Queued);
        assert_eq!(o.push(&lossy("p"), "x".into()), Pushed::Shed);
        assert_eq!(o.push(&Lane::Durable, "b".into()), Pushed::Queued);
        assert_eq!(o.push(&Lane::Durable, "c".into()), Pushed::Overflow);
        assert_eq!(o.try_next(), Some(Next::Close(4008, "too slow".into())));
        assert_eq!(o.push(&Lane::Durable, "d".into()), Pushed::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn graceful_close_goes_first_once_it_has_waited_long_enough() {
        let o = Outbox::new(4);
        o.push(&Lane::Durable, "stuck".into());
        o.close(1001, "shutting down");
        tokio::time::timeout(CLOSE_FLUSH_LIMIT * 2, o.urgent())
            .await
            .unwrap();
        assert_eq!(
            o.try_next(),
            Some(Next::Close(1001, "shutting down".into()))
        );
    }

    #[test]
    fn graceful_close_flushes_first() {
        let o = Outbox::new(4);
        o.push(&Lane::Durable, "a".into());
        o.close(1001, "shutting down");
        assert_eq!(o.try_next(), Some(Next::Text("a".into())));
        assert_eq!(
            o.try_next(),
            Some(Next::Close(1001, "shutting down".into()))
        );
    }
}
