//! This node's cache of who is in each thread, so that addressing an event (a receipt, an
//! edit, a typing indicator) costs no database read. A membership change forgets the thread
//! here once it has committed and, through the relay, on every other node.
//!
//! Staleness is bounded three ways. A read that raced a change cannot be cached: each stripe
//! has a generation that every forget bumps, and a fill taken before the bump is refused.
//! While the relay cannot promise to carry every other node's forgets (Redis unreachable,
//! the subscription dropped), the cache is distrusted: emptied and bypassed until the relay
//! trusts it again. And an entry lives at most `TTL`, whatever happens. Messages never use
//! the cache: a send reads its members in its own transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::stripes::slot;

/// Stripes of the cache; each has its own lock, budget and generation.
const STRIPES: usize = 64;
/// The most an entry is trusted, however quiet the relay has been.
pub const TTL: Duration = Duration::from_secs(10);
/// What an entry is charged besides its ids' bytes (the string headers and the map slot).
const OVERHEAD_PER_ID: usize = 32;

/// A thread's members, shared by every reader of the cache.
pub type Members = Arc<[String]>;

#[derive(Default)]
struct Stripe {
    generation: u64,
    bytes: usize,
    entries: HashMap<String, Entry>,
}

struct Entry {
    members: Members,
    bytes: usize,
    at: Instant,
}

/// The cache; see the module doc.
pub struct Roster {
    stripes: Vec<Mutex<Stripe>>,
    stripe_bytes: usize,
    trusted: AtomicBool,
}

/// Taken before reading a thread's members from the database; the read may be cached only
/// if nothing was forgotten in its stripe meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    generation: u64,
}

impl Roster {
    /// An empty cache holding at most about `bytes` of member ids; `trusted` when nothing
    /// outside this node can change a membership (the single-node relay).
    pub fn new(bytes: usize, trusted: bool) -> Self {
        Roster {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            stripe_bytes: bytes / STRIPES,
            trusted: AtomicBool::new(trusted),
        }
    }

    fn stripe(&self, i: usize) -> std::sync::MutexGuard<'_, Stripe> {
        self.stripes[i % STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The cached members of `thread_id`, if trusted and fresh.
    pub fn get(&self, thread_id: &str) -> Option<Members> {
        if !self.is_trusted() {
            return None;
        }
        let mut s = self.stripe(slot(thread_id, STRIPES));
        let fresh = s.entries.get(thread_id)?.at.elapsed() < TTL;
        if fresh {
            return s.entries.get(thread_id).map(|e| e.members.clone());
        }
        if let Some(old) = s.entries.remove(thread_id) {
            s.bytes -= old.bytes;
        }
        None
    }

    /// A ticket for caching a read of `thread_id`'s members that starts now.
    pub fn ticket(&self, thread_id: &str) -> Ticket {
        let stripe = slot(thread_id, STRIPES);
        Ticket {
            stripe,
            generation: self.stripe(stripe).generation,
        }
    }

    /// Caches `members` as read under `ticket`, unless something was forgotten in its stripe
    /// since, the cache is distrusted, or the list alone is larger than a stripe's budget.
    /// Older entries make room, whichever the map yields first.
    pub fn put(&self, ticket: Ticket, thread_id: &str, members: Members) {
        if !self.is_trusted() {
            return;
        }
        let bytes = thread_id.len()
            + members
                .iter()
                .map(|m| m.len() + OVERHEAD_PER_ID)
                .sum::<usize>();
        if bytes > self.stripe_bytes {
            return;
        }
        let mut s = self.stripe(ticket.stripe);
        if s.generation != ticket.generation {
            return;
        }
        if let Some(old) = s.entries.remove(thread_id) {
            s.bytes -= old.bytes;
        }
        while s.bytes + bytes > self.stripe_bytes {
            let Some(victim) = s.entries.keys().next().cloned() else {
                break;
            };
            if let Some(old) = s.entries.remove(&victim) {
                s.bytes -= old.bytes;
            }
        }
        s.bytes += bytes;
        let at = Instant::now();
        s.entries
            .insert(thread_id.to_string(), Entry { members, bytes, at });
    }

    /// Drops `thread_id`'s members: its membership changed (here or on another node).
    pub fn forget(&self, thread_id: &str) {
        let mut s = self.stripe(slot(thread_id, STRIPES));
        s.generation += 1;
        if let Some(old) = s.entries.remove(thread_id) {
            s.bytes -= old.bytes;
        }
    }

    /// Empties the cache and bypasses it until [`Roster::trust`]: another node's forgets may
    /// be lost from now on.
    pub fn distrust(&self) {
        if self.trusted.swap(false, Ordering::SeqCst) {
            log::info!("membership cache off until the relay carries changes again");
        }
        self.forget_all();
    }

    /// Uses the cache again: the relay carries every node's forgets from now on. Reads that
    /// began before are not cached.
    pub fn trust(&self) {
        self.forget_all();
        if !self.trusted.swap(true, Ordering::SeqCst) {
            log::info!("membership cache on");
        }
    }

    /// Forgets every thread (another node's changes may have been lost).
    pub fn forget_all(&self) {
        for i in 0..STRIPES {
            let mut s = self.stripe(i);
            s.generation += 1;
            s.entries.clear();
            s.bytes = 0;
        }
    }

    /// Whether reads may come from the cache.
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
    }

    /// Threads cached, and the bytes charged for them.
    pub fn size(&self) -> (usize, usize) {
        (0..STRIPES).fold((0, 0), |(n, b), i| {
            let s = self.stripe(i);
            (n + s.entries.len(), b + s.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Members {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_read_that_raced_a_forget_is_not_cached() {
        let r = Roster::new(1 << 20, true);
        let t = r.ticket("t1");
        r.forget("t1");
        r.put(t, "t1", ids(&["ann"]));
        assert!(r.get("t1").is_none(), "the read may predate the change");
        let t = r.ticket("t1");
        r.put(t, "t1", ids(&["ann", "bob"]));
        assert_eq!(r.get("t1").unwrap().len(), 2);
        r.forget("t1");
        assert!(r.get("t1").is_none());
    }

    #[test]
    fn distrusted_it_holds_nothing_and_reads_begun_before_trust_are_refused() {
        let r = Roster::new(1 << 20, false);
        let t = r.ticket("t1");
        r.put(t, "t1", ids(&["ann"]));
        assert!(r.get("t1").is_none());
        let early = r.ticket("t1");
        r.trust();
        r.put(early, "t1", ids(&["ann"]));
        assert!(r.get("t1").is_none(), "read while changes could be lost");
        let t = r.ticket("t1");
        r.put(t, "t1", ids(&["ann"]));
        assert!(r.get("t1").is_some());
        r.distrust();
        assert!(r.get("t1").is_none());
        assert_eq!(r.size(), (0, 0));
    }

    #[test]
    fn it_never_holds_more_than_its_budget() {
        // One stripe's budget is 1/64 of the whole: 64 bytes here.
        let r = Roster::new(64 * STRIPES, true);
        let big: Members = (0..3).map(|i| format!("user-{i}")).collect();
        let t = r.ticket("huge");
        r.put(t, "huge", big);
        assert!(r.get("huge").is_none(), "larger than a stripe: not cached");
        for i in 0..1000 {
            let id = format!("t{i}");
            let t = r.ticket(&id);
            r.put(t, &id, ids(&["a"]));
        }
        let (n, bytes) = r.size();
        assert!(bytes <= 64 * STRIPES, "{bytes} bytes");
        assert!(n > 0 && n < 1000, "{n} entries");
    }
}
