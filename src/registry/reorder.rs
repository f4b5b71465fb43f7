//! Puts `message` events back in seq order per thread before they reach sessions.
//!
//! One node publishes its messages in seq order (the sequencer holds a thread's turn until the
//! event is handed on), but two nodes writing the same thread can publish 6 just before 5:
//! both commit in order, and the second can be quicker from commit to publish. So the
//! registry hands on a thread's messages in seq order: a message after a gap waits (at most
//! `HOLD`) for the ones before it. A gap that does not fill in time is let through (the
//! client sees it and fills it with `history`).
//!
//! The first message of a thread this node sees (or sees again after `FORGET_AFTER` of quiet)
//! waits up to `FIRST_HOLD` for the one before it, which may be just behind it from another
//! node; a thread's very first message (seq 1) never waits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::relay::Envelope;

/// Longest a message waits for the ones before it.
pub const HOLD: Duration = Duration::from_millis(250);
/// Longest the first message seen of a thread waits for the one before it.
pub const FIRST_HOLD: Duration = Duration::from_millis(100);
/// A thread quiet this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

struct ThreadOrder {
    last: i64,
    /// Held messages by seq (several envelopes when one event came in per-user parts),
    /// with the time the first may wait until.
    held: BTreeMap<i64, (Vec<Arc<Envelope>>, Instant)>,
    touched: Instant,
}

/// Per-thread ordering state.
#[derive(Default)]
pub struct Reorder {
    threads: HashMap<String, ThreadOrder>,
}

impl Reorder {
    /// Takes one message envelope; returns those now ready, in order.
    pub fn accept(&mut self, thread_id: &str, seq: i64, env: Arc<Envelope>) -> Vec<Arc<Envelope>> {
        let now = Instant::now();
        let Some(t) = self.threads.get_mut(thread_id) else {
            let mut t = ThreadOrder {
                // As if seq - 1 were missing: it may be a moment behind.
                last: seq - 2,
                held: BTreeMap::new(),
                touched: now,
            };
            if seq <= 1 {
                t.last = seq;
                self.threads.insert(thread_id.to_string(), t);
                return vec![env];
            }
            t.held.insert(seq, (vec![env], now + FIRST_HOLD));
            self.threads.insert(thread_id.to_string(), t);
            return Vec::new();
        };
        t.touched = now;
        if seq <= t.last {
            // Late (its gap was already let through): deliver now rather than never.
            return vec![env];
        }
        t.held
            .entry(seq)
            .or_insert_with(|| (Vec::new(), now + HOLD))
            .0
            .push(env);
        Self::ready(t, false)
    }

    /// Lets through what has waited `HOLD`, and forgets quiet threads. Returns what is ready.
    pub fn expire(&mut self) -> Vec<Arc<Envelope>> {
        let now = Instant::now();
        let mut out = Vec::new();
        for t in self.threads.values_mut() {
            let overdue = t
                .held
                .values()
                .next()
                .is_some_and(|(_, until)| now >= *until);
            out.extend(Self::ready(t, overdue));
        }
        self.threads
            .retain(|_, t| !t.held.is_empty() || now.duration_since(t.touched) < FORGET_AFTER);
        out
    }

    /// Whether anything is waiting (so a timer is needed).
    pub fn waiting(&self) -> bool {
        self.threads.values().any(|t| !t.held.is_empty())
    }

    /// Pops the consecutive run after `last`; with `skip_gap`, first jumps the gap.
    fn ready(t: &mut ThreadOrder, skip_gap: bool) -> Vec<Arc<Envelope>> {
        let mut out = Vec::new();
        if skip_gap {
            if let Some((&first, _)) = t.held.iter().next() {
                t.last = first - 1;
            }
        }
        while let Some((envs, _)) = t.held.remove(&(t.last + 1)) {
            t.last += 1;
            out.extend(envs);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::{Audience, ENVELOPE_VERSION, Payload};

    fn env(n: i64) -> Arc<Envelope> {
        Arc::new(Envelope {
            v: ENVELOPE_VERSION,
            id: None,
            origin: format!("{n}"),
            audience: Audience::default(),
            payload: Payload::Close {
                code: 0,
                reason: String::new(),
            },
            order: None,
        })
    }

    fn origins(v: Vec<Arc<Envelope>>) -> Vec<String> {
        v.iter().map(|e| e.origin.clone()).collect()
    }

    #[test]
    fn the_first_message_seen_waits_briefly_for_the_one_before() {
        let mut r = Reorder::default();
        assert_eq!(origins(r.accept("a", 1, env(1))), vec!["1"]);
        assert!(r.accept("b", 5, env(5)).is_empty());
        // Parts of one event (one per user) travel as separate envelopes with the same seq.
        assert!(r.accept("b", 5, env(50)).is_empty());
        assert_eq!(origins(r.accept("b", 4, env(4))), vec!["4", "5", "50"]);
        assert!(r.accept("c", 9, env(9)).is_empty());
        std::thread::sleep(FIRST_HOLD);
        assert_eq!(origins(r.expire()), vec!["9"]);
    }

    #[test]
    fn a_message_after_a_gap_waits_for_the_gap() {
        let mut r = Reorder::default();
        assert_eq!(origins(r.accept("t", 1, env(1))), vec!["1"]);
        assert_eq!(origins(r.accept("t", 2, env(2))), vec!["2"]);
        assert_eq!(origins(r.accept("t", 3, env(3))), vec!["3"]);
        assert_eq!(origins(r.accept("t", 4, env(4))), vec!["4"]);
        assert_eq!(origins(r.accept("t", 5, env(5))), vec!["5"]);
        assert!(r.accept("t", 7, env(7)).is_empty());
        assert!(r.waiting());
        assert_eq!(origins(r.accept("t", 6, env(6))), vec!["6", "7"]);
        assert!(!r.waiting());
        assert_eq!(origins(r.accept("t", 8, env(8))), vec!["8"]);
    }

    #[test]
    fn an_unfilled_gap_is_let_through_after_the_hold() {
        let mut r = Reorder::default();
        r.accept("t", 1, env(1));
        assert!(r.accept("t", 3, env(3)).is_empty());
        assert!(r.expire().is_empty());
        std::thread::sleep(HOLD);
        assert_eq!(origins(r.expire()), vec!["3"]);
        // 2 arrives late: delivered anyway.
        assert_eq!(origins(r.accept("t", 2, env(2))), vec!["2"]);
    }
}
