//! Puts `message` events back in seq order before they reach sessions, per thread and user
//! (each user's events of a thread may come as their own part from Redis, so that is the
//! unit whose order can be lost). `message_updated`/`message_deleted` follow their message
//! when it is still held, so an edit never overtakes what it edits.
//!
//! One node publishes its messages in seq order (a thread always takes the same group-commit
//! shard, which publishes its batches in commit order), but two nodes writing the same thread can publish 6 just before 5:
//! both commit in order, and the second can be quicker from commit to publish. So the
//! registry hands on a thread's messages in seq order: a message after a gap waits (at most
//! `HOLD`) for the ones before it. A gap that does not fill in time is let through (the
//! client sees it and fills it with `history`).
//!
//! The first message of a thread this node sees (or sees again after `FORGET_AFTER` of quiet)
//! waits up to `FIRST_HOLD` for the one before it, which may be just behind it from another
//! node; a thread's very first message (seq 1) never waits.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// Longest a message waits for the ones before it.
pub const HOLD: Duration = Duration::from_millis(250);
/// Longest the first message seen of a thread waits for the one before it.
pub const FIRST_HOLD: Duration = Duration::from_millis(100);
/// A thread quiet this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

struct ThreadOrder<T> {
    last: i64,
    /// Held items by seq (a message and whatever follows it), with the time the first may
    /// wait until.
    held: BTreeMap<i64, (Vec<T>, Instant)>,
    touched: Instant,
}

/// Ordering state per key (thread and user).
pub struct Reorder<T> {
    threads: HashMap<String, ThreadOrder<T>>,
    /// Keys with something held, so `waiting` and the expiry timer cost nothing otherwise.
    holding: usize,
    /// When each held seq may be let through, earliest first, so `expire` looks only at what
    /// is due, never at every key. An entry whose seq has gone since is skipped.
    due: BinaryHeap<Reverse<(Instant, String)>>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            threads: HashMap::new(),
            holding: 0,
            due: BinaryHeap::new(),
        }
    }
}

impl<T> Reorder<T> {
    /// Takes one item: a message at `seq` or (with `follows`) something about the message at
    /// `seq`. Returns the items now ready, in order.
    pub fn accept(&mut self, key: &str, seq: i64, follows: bool, item: T) -> Vec<T> {
        let now = Instant::now();
        if follows {
            return match self.threads.get_mut(key).and_then(|t| t.held.get_mut(&seq)) {
                Some((items, _)) => {
                    items.push(item);
                    Vec::new()
                }
                None => vec![item],
            };
        }
        let Some(t) = self.threads.get_mut(key) else {
            let mut t = ThreadOrder {
                // As if seq - 1 were missing: it may be a moment behind.
                last: seq - 2,
                held: BTreeMap::new(),
                touched: now,
            };
            if seq <= 1 {
                t.last = seq;
                self.threads.insert(key.to_string(), t);
                return vec![item];
            }
            t.held.insert(seq, (vec![item], now + FIRST_HOLD));
            self.threads.insert(key.to_string(), t);
            self.due.push(Reverse((now + FIRST_HOLD, key.to_string())));
            self.holding += 1;
            return Vec::new();
        };
        t.touched = now;
        if seq <= t.last {
            // Late (its gap was already let through): deliver now rather than never.
            return vec![item];
        }
        let was_holding = !t.held.is_empty();
        let entry = t.held.entry(seq).or_insert_with(|| {
            self.due.push(Reverse((now + HOLD, key.to_string())));
            (Vec::new(), now + HOLD)
        });
        entry.0.push(item);
        let out = Self::ready(t, false);
        match (was_holding, t.held.is_empty()) {
            (false, false) => self.holding += 1,
            (true, true) => self.holding -= 1,
            _ => {}
        }
        out
    }

    /// Lets through what has waited long enough. Returns what is ready.
    pub fn expire(&mut self) -> Vec<T> {
        let now = Instant::now();
        let mut out = Vec::new();
        while let Some(Reverse((until, _))) = self.due.peek() {
            if *until > now {
                break;
            }
            let Some(Reverse((_, key))) = self.due.pop() else {
                break;
            };
            let Some(t) = self.threads.get_mut(&key) else {
                continue;
            };
            let Some(first_until) = t.held.values().next().map(|(_, until)| *until) else {
                continue;
            };
            if now >= first_until {
                out.extend(Self::ready(t, true));
                if t.held.is_empty() {
                    self.holding -= 1;
                }
            }
            // Whatever is still held keeps a deadline in the heap: the first held seq's (one
            // per key may be queued twice; the extra is skipped when it comes up).
            if let Some((_, until)) = t.held.values().next() {
                self.due.push(Reverse((*until, key)));
            }
        }
        out
    }

    /// Forgets keys quiet for `FORGET_AFTER` (a periodic sweep, so memory follows activity).
    pub fn forget_quiet(&mut self) {
        let now = Instant::now();
        self.threads
            .retain(|_, t| !t.held.is_empty() || now.duration_since(t.touched) < FORGET_AFTER);
    }

    /// Whether anything is waiting (so a timer is needed).
    pub fn waiting(&self) -> bool {
        self.holding > 0
    }

    /// Pops the consecutive run after `last`; with `skip_gap`, first jumps the gap.
    fn ready(t: &mut ThreadOrder<T>, skip_gap: bool) -> Vec<T> {
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

    #[test]
    fn the_first_message_seen_waits_briefly_for_the_one_before() {
        let mut r = Reorder::default();
        assert_eq!(r.accept("a", 1, false, 1), vec![1]);
        assert!(r.accept("b", 5, false, 5).is_empty());
        // Parts of one event (one per user) travel as separate items with the same seq.
        assert!(r.accept("b", 5, false, 50).is_empty());
        assert_eq!(r.accept("b", 4, false, 4), vec![4, 5, 50]);
        assert!(r.accept("c", 9, false, 9).is_empty());
        std::thread::sleep(FIRST_HOLD);
        assert_eq!(r.expire(), vec![9]);
    }

    #[test]
    fn a_message_after_a_gap_waits_for_the_gap() {
        let mut r = Reorder::default();
        for n in 1..=5 {
            assert_eq!(r.accept("t", n, false, n), vec![n]);
        }
        assert!(r.accept("t", 7, false, 7).is_empty());
        assert!(r.waiting());
        assert_eq!(r.accept("t", 6, false, 6), vec![6, 7]);
        assert!(!r.waiting());
        assert_eq!(r.accept("t", 8, false, 8), vec![8]);
    }

    #[test]
    fn an_edit_follows_its_held_message_and_passes_otherwise() {
        let mut r = Reorder::default();
        r.accept("t", 1, false, 1);
        assert!(r.accept("t", 3, false, 3).is_empty());
        assert!(r.accept("t", 3, true, 30).is_empty());
        assert_eq!(r.accept("t", 1, true, 10), vec![10]);
        assert_eq!(r.accept("t", 2, false, 2), vec![2, 3, 30]);
    }

    #[test]
    fn a_later_message_held_behind_an_earlier_one_still_leaves_in_time() {
        let mut r = Reorder::default();
        r.accept("t", 1, false, 1);
        // 6 waits first; 3 arrives later, with a later deadline, and is first in line.
        assert!(r.accept("t", 6, false, 6).is_empty());
        std::thread::sleep(Duration::from_millis(50));
        assert!(r.accept("t", 3, false, 3).is_empty());
        std::thread::sleep(HOLD - Duration::from_millis(40));
        // 6's deadline has passed but 3, before it, is not due: nothing yet.
        assert!(r.expire().is_empty());
        std::thread::sleep(Duration::from_millis(60));
        // 3 is due; 6, whose own hold ran out meanwhile, goes right behind it instead of
        // staying held with no deadline left in the heap.
        assert_eq!(r.expire(), vec![3, 6]);
        assert!(!r.waiting());
    }

    #[test]
    fn an_unfilled_gap_is_let_through_after_the_hold() {
        let mut r = Reorder::default();
        r.accept("t", 1, false, 1);
        assert!(r.accept("t", 3, false, 3).is_empty());
        assert!(r.expire().is_empty());
        std::thread::sleep(HOLD);
        assert_eq!(r.expire(), vec![3]);
        // 2 arrives late: delivered anyway.
        assert_eq!(r.accept("t", 2, false, 2), vec![2]);
    }
}
