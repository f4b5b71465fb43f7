//! The bounded queue between the registry and one session's writer (a socket's writer task
//! or an SSE response body).
//!
//! Two lanes: durable frames (messages, receipts, acks) queue up to `OUTBOX_FRAMES` frames and
//! `OUTBOX_BYTES` bytes, and past either the session is closed with 4008; lossy frames (typing,
//! presence) keep only the latest per key, are the first dropped, and are not queued at all
//! while the durable lane is half full. The session's own replies count toward the same
//! budget. Pushing never waits: the registry must never await a client.
//!
//! A frame whose handling has begun (`begin`) gets its reply before a graceful close: the
//! close waits for it (at most `Limits::close_flush`, never less than a database write may
//! take), and replies are still taken while it waits. A stored message is an acknowledged
//! message.

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
/// Queue slots an emptied lane keeps; past this it gives the rest back (a slow reader's
/// burst would otherwise stay allocated while its session lives).
const KEEP_SLOTS: usize = 16;
/// The least a graceful close (drain, replaced, revoked) waits for queued frames and replies
/// in progress before it goes first anyway; [`Limits::close_flush`] is never shorter.
pub const CLOSE_FLUSH_LIMIT: Duration = Duration::from_secs(3);

/// What the writer should do next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Write a text frame.
    Text(ByteString),
    /// Send a heartbeat ping.
    Ping,
    /// Answer a client ping.
    Pong(Bytes),
    /// Close with this code and reason, then stop.
    Close(u16, String),
}

/// How much one session may have queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Durable frames (`OUTBOX_FRAMES`).
    pub frames: usize,
    /// Bytes of queued frames, both lanes (`OUTBOX_BYTES`).
    pub bytes: usize,
    /// How long a graceful close waits behind queued frames and replies in progress: at
    /// least as long as a reply can take to come (a write's wait for the database), so that
    /// a frame being handled is answered before the close, and a stored message acknowledged.
    pub close_flush: Duration,
}

#[derive(Default)]
struct State {
    durable: VecDeque<ByteString>,
    lossy: VecDeque<(String, ByteString)>,
    /// Bytes in both lanes.
    bytes: usize,
    ping: bool,
    pong: Option<Bytes>,
    /// A close that waits for the queued frames to be written first, and until when.
    close_after: Option<(u16, String)>,
    close_by: Option<tokio::time::Instant>,
    /// A close that goes before anything still queued.
    close_now: Option<(u16, String)>,
    closed: bool,
    /// Client frames being handled, whose replies a graceful close waits for.
    in_flight: usize,
}

impl State {
    fn closing(&self) -> bool {
        self.closed || self.close_now.is_some() || self.close_after.is_some()
    }

    /// Empties both lanes (nothing queued is written after a close); returns how many frames
    /// went.
    fn clear(&mut self) -> usize {
        let n = self.durable.len() + self.lossy.len();
        self.durable.clear();
        self.lossy.clear();
        self.bytes = 0;
        n
    }
}

/// One session's outgoing queue.
pub struct Outbox {
    state: Mutex<State>,
    wake: Notify,
    urgent: Notify,
    /// Notified whenever the writer takes a frame, for `room`.
    taken: Notify,
    limits: Limits,
}

impl Outbox {
    /// An empty outbox with these limits.
    pub fn new(limits: Limits) -> Self {
        Outbox {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            urgent: Notify::new(),
            taken: Notify::new(),
            limits,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock means a panic while pushing, which leaves the queue consistent
        // (every mutation is a single push or pop), so carry on with it.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Queues an event frame on its lane (nothing once a close is asked for).
    pub fn push(&self, lane: &Lane, frame: ByteString) -> Pushed {
        self.queue(lane, frame, false)
    }

    /// Queues a reply to the client's own frame: durable, and still taken while a graceful
    /// close waits for replies in progress.
    pub fn reply(&self, frame: ByteString) -> Pushed {
        self.queue(&Lane::Durable, frame, true)
    }

    fn queue(&self, lane: &Lane, frame: ByteString, is_reply: bool) -> Pushed {
        let limits = self.limits;
        let pushed = self.with(|s| {
            if s.closed || s.close_now.is_some() || (s.close_after.is_some() && !is_reply) {
                return Pushed::Closed;
            }
            let size = frame.len();
            match lane {
                Lane::Durable => {
                    // One frame larger than the whole budget still goes out on its own.
                    let too_many_bytes = s.bytes > 0 && s.bytes + size > limits.bytes;
                    if s.durable.len() >= limits.frames || too_many_bytes {
                        s.close_now = Some((close::TOO_SLOW, "too slow".into()));
                        let dropped = s.clear() + 1;
                        return Pushed::Overflow { dropped };
                    }
                    s.bytes += size;
                    s.durable.push_back(frame);
                    Pushed::Queued
                }
                Lane::Lossy { key } => {
                    if s.durable.len() * 2 >= limits.frames || (s.bytes + size) * 2 > limits.bytes {
                        return Pushed::Shed;
                    }
                    if let Some(slot) = s.lossy.iter_mut().find(|(k, _)| k == key) {
                        s.bytes = s.bytes + size - slot.1.len();
                        slot.1 = frame;
                        return Pushed::Queued;
                    }
                    let shed = s.lossy.len() >= LOSSY_KEYS;
                    if shed {
                        if let Some((_, old)) = s.lossy.pop_front() {
                            s.bytes -= old.len();
                        }
                    }
                    s.bytes += size;
                    s.lossy.push_back((key.clone(), frame));
                    if shed { Pushed::Shed } else { Pushed::Queued }
                }
            }
        });
        match pushed {
            Pushed::Overflow { .. } => {
                self.wake.notify_one();
                self.urgent.notify_one();
            }
            Pushed::Queued => self.wake.notify_one(),
            Pushed::Shed | Pushed::Closed => {}
        }
        pushed
    }

    /// Marks a client frame as being handled, unless the session is closing (then the frame
    /// is not to be acted on at all). Pair with [`end`](Self::end).
    pub fn begin(&self) -> bool {
        self.with(|s| {
            if s.closing() {
                return false;
            }
            s.in_flight += 1;
            true
        })
    }

    /// A frame's handling is over (its reply, if any, is queued).
    pub fn end(&self) {
        self.with(|s| s.in_flight = s.in_flight.saturating_sub(1));
        self.wake.notify_one();
    }

    /// Asks the writer to ping the client. Returns whether the previous ping had not been
    /// written yet (the writer is not getting through to the client).
    pub fn ping(&self) -> bool {
        let stuck = self.with(|s| std::mem::replace(&mut s.ping, true));
        self.wake.notify_one();
        stuck
    }

    /// Asks the writer to answer a client ping.
    pub fn pong(&self, payload: Bytes) {
        self.with(|s| s.pong = Some(payload));
        self.wake.notify_one();
    }

    /// Closes after the frames already queued and the replies in progress (drain, replaced,
    /// revoked), waiting for them at most `Limits::close_flush`.
    pub fn close(&self, code: u16, reason: &str) {
        self.close_within(code, reason, self.limits.close_flush);
    }

    /// As [`Outbox::close`], waiting at most `within` if that is sooner: a drain must finish
    /// within the shutdown grace whatever the session's own limit.
    pub fn close_within(&self, code: u16, reason: &str, within: Duration) {
        let by = tokio::time::Instant::now() + within.min(self.limits.close_flush);
        self.with(|s| {
            if s.close_after.is_none() {
                s.close_after = Some((code, reason.to_string()));
                s.close_by = Some(by);
            }
        });
        self.wake.notify_one();
        self.urgent.notify_one();
        // A worker waiting for room stops waiting: nothing more will be begun.
        self.taken.notify_waiters();
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
        self.taken.notify_waiters();
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        self.with(|s| s.closing())
    }

    fn try_next(&self) -> Option<Next> {
        self.with(|s| {
            if s.closed {
                return Some(Next::Close(close::NORMAL, String::new()));
            }
            if let Some((code, reason)) = s.close_now.take() {
                s.closed = true;
                s.clear();
                return Some(Next::Close(code, reason));
            }
            if let Some(p) = s.pong.take() {
                return Some(Next::Pong(p));
            }
            if std::mem::take(&mut s.ping) {
                return Some(Next::Ping);
            }
            if let Some(f) = s.durable.pop_front() {
                s.bytes -= f.len();
                if s.durable.is_empty() && s.durable.capacity() > KEEP_SLOTS {
                    // A burst's high-water mark is not kept for the session's lifetime.
                    s.durable.shrink_to(KEEP_SLOTS);
                }
                return Some(Next::Text(f));
            }
            if let Some((_, f)) = s.lossy.pop_front() {
                s.bytes -= f.len();
                if s.lossy.is_empty() && s.lossy.capacity() > KEEP_SLOTS {
                    s.lossy.shrink_to(KEEP_SLOTS);
                }
                return Some(Next::Text(f));
            }
            if s.in_flight == 0 {
                if let Some((code, reason)) = s.close_after.take() {
                    s.closed = true;
                    return Some(Next::Close(code, reason));
                }
            }
            None
        })
    }

    /// Waits for the next thing to write.
    pub async fn next(&self) -> Next {
        loop {
            if let Some(n) = self.try_next() {
                if matches!(n, Next::Text(_)) {
                    self.taken.notify_waiters();
                }
                return n;
            }
            self.wake.notified().await;
        }
    }

    /// Waits until no more than half the byte budget is queued, so a session takes no new
    /// client frame while its replies are backed up. True once there is room (or the session
    /// is closing); false when the writer took nothing for `stall`: the client is not reading.
    pub async fn room(&self, stall: Duration) -> bool {
        loop {
            // Registered before the check, so a frame taken in between is not missed.
            let taken = self.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            if self.with(|s| s.bytes * 2 <= self.limits.bytes || s.closing()) {
                return true;
            }
            if tokio::time::timeout(stall, taken).await.is_err() {
                return false;
            }
        }
    }

    /// Resolves when a close must pre-empt pending writes: one asked for as urgent, a
    /// graceful one that has waited `Limits::close_flush` behind a client that does not read
    /// (or a reply that does not come), or once the close has been handed to the writer.
    pub async fn urgent(&self) {
        loop {
            let (now, by) = self.with(|s| (s.close_now.is_some() || s.closed, s.close_by));
            if now {
                return;
            }
            match by {
                Some(by) if self.with(|s| s.close_after.is_some()) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(by) => {
                            self.with(|s| {
                                if let Some(c) = s.close_after.take() {
                                    s.close_now = Some(c);
                                }
                            });
                            self.wake.notify_one();
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

    fn close_within(&self, code: u16, reason: &str, within: Duration) {
        Outbox::close_within(self, code, reason, within);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(frames: usize) -> Outbox {
        Outbox::new(Limits {
            frames,
            bytes: 1 << 20,
            close_flush: CLOSE_FLUSH_LIMIT,
        })
    }

    fn lossy(k: &str) -> Lane {
        Lane::Lossy { key: k.into() }
    }

    #[tokio::test]
    async fn durable_frames_come_out_in_order() {
        let o = outbox(4);
        o.push(&Lane::Durable, "a".into());
        o.push(&Lane::Durable, "b".into());
        assert_eq!(o.next().await, Next::Text("a".into()));
        assert_eq!(o.next().await, Next::Text("b".into()));
    }

    #[tokio::test]
    async fn lossy_frames_keep_the_latest_per_key() {
        let o = outbox(4);
        o.push(&lossy("typing:t:bob"), "1".into());
        o.push(&lossy("typing:t:bob"), "2".into());
        assert_eq!(o.next().await, Next::Text("2".into()));
        assert!(o.try_next().is_none());
    }

    #[test]
    fn overflow_closes_with_4008_before_anything_queued() {
        let o = outbox(2);
        assert_eq!(o.push(&Lane::Durable, "a".into()), Pushed::Queued);
        assert_eq!(o.push(&lossy("p"), "x".into()), Pushed::Shed);
        assert_eq!(o.push(&Lane::Durable, "b".into()), Pushed::Queued);
        assert_eq!(
            o.push(&Lane::Durable, "c".into()),
            Pushed::Overflow { dropped: 3 }
        );
        assert_eq!(o.try_next(), Some(Next::Close(4008, "too slow".into())));
        assert_eq!(o.push(&Lane::Durable, "d".into()), Pushed::Closed);
    }

    #[test]
    fn the_byte_budget_counts_replies_too() {
        let o = Outbox::new(Limits {
            frames: 100,
            bytes: 10,
            close_flush: CLOSE_FLUSH_LIMIT,
        });
        assert_eq!(o.reply("12345".into()), Pushed::Queued);
        assert_eq!(o.push(&lossy("p"), "1".into()), Pushed::Shed, "half full");
        assert_eq!(o.reply("1234".into()), Pushed::Queued);
        assert_eq!(o.reply("12".into()), Pushed::Overflow { dropped: 3 });
        assert_eq!(o.try_next(), Some(Next::Close(4008, "too slow".into())));
        // A single frame over the whole budget is let through when nothing is queued.
        let big = Outbox::new(Limits {
            frames: 100,
            bytes: 4,
            close_flush: CLOSE_FLUSH_LIMIT,
        });
        assert_eq!(big.reply("123456".into()), Pushed::Queued);
        assert_eq!(big.reply("1".into()), Pushed::Overflow { dropped: 2 });
    }

    #[tokio::test(start_paused = true)]
    async fn graceful_close_goes_first_once_it_has_waited_long_enough() {
        let o = outbox(4);
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
        let o = outbox(4);
        o.push(&Lane::Durable, "a".into());
        o.close(1001, "shutting down");
        assert_eq!(o.try_next(), Some(Next::Text("a".into())));
        assert_eq!(
            o.try_next(),
            Some(Next::Close(1001, "shutting down".into()))
        );
    }

    #[test]
    fn a_reply_in_progress_goes_out_before_a_graceful_close() {
        let o = outbox(4);
        assert!(o.begin());
        o.close(4009, "too many sessions");
        // Events are refused once the close is asked for; the close waits for the reply.
        assert_eq!(o.push(&Lane::Durable, "event".into()), Pushed::Closed);
        assert_eq!(o.try_next(), None);
        assert_eq!(o.reply("ack".into()), Pushed::Queued);
        o.end();
        assert_eq!(o.try_next(), Some(Next::Text("ack".into())));
        assert_eq!(
            o.try_next(),
            Some(Next::Close(4009, "too many sessions".into()))
        );
        // A frame not begun before the close is not acted on.
        assert!(!o.begin());
    }

    #[test]
    fn a_ping_still_pending_says_so() {
        let o = outbox(4);
        assert!(!o.ping());
        assert!(o.ping(), "the first ping was never written");
        assert_eq!(o.try_next(), Some(Next::Ping));
        assert!(!o.ping());
    }

    #[tokio::test]
    async fn room_waits_for_the_writer_and_ends_at_a_close() {
        let o = std::sync::Arc::new(Outbox::new(Limits {
            frames: 100,
            bytes: 100,
            close_flush: CLOSE_FLUSH_LIMIT,
        }));
        // Over half the byte budget queued: no room until the writer takes a frame.
        o.reply(ByteString::from("x".repeat(60)));
        let stall = Duration::from_secs(30);
        let waiting = tokio::spawn({
            let o = o.clone();
            async move { o.room(stall).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "room while the budget is over half full"
        );
        assert!(matches!(o.next().await, Next::Text(_)));
        assert!(
            waiting.await.unwrap(),
            "room once the writer took the frame"
        );
        // Full again, then closed: the wait ends at once, not after the stall.
        o.reply(ByteString::from("x".repeat(60)));
        let waiting = tokio::spawn({
            let o = o.clone();
            async move { o.room(stall).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        o.close(close::GOING_AWAY, "");
        let r = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(r.expect("woken by the close").unwrap());
        // A client that reads nothing: false after the stall.
        let o = Outbox::new(Limits {
            frames: 100,
            bytes: 100,
            close_flush: CLOSE_FLUSH_LIMIT,
        });
        o.reply(ByteString::from("x".repeat(60)));
        assert!(!o.room(Duration::from_millis(50)).await);
    }
}
