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
/// The most an entry is trusted, counted from the start of the read that filled it, however
/// quiet the relay has been.
pub const TTL: Duration = Duration::from_secs(10);
/// What an entry is charged besides its ids' and its key's bytes: the map slot, the entry,
/// the shared list's header.
const OVERHEAD_PER_ENTRY: usize = 96;
/// What each id is charged besides its bytes: its `String`.
const OVERHEAD_PER_ID: usize = 24;

/// A thread's members, shared by every reader of the cache.
pub type Members = Arc<[String]>;

#[derive(Default)]
struct Stripe {
    generation: u64,
    bytes: usize,
    entries: HashMap<String, Entry>,
}

impl Stripe {
    fn remove(&mut self, thread_id: &str) {
        if let Some(old) = self.entries.remove(thread_id) {
            self.bytes -= old.bytes;
        }
    }
}

struct Entry {
    members: Members,
    bytes: usize,
    /// When the read that filled it began.
    read_at: Instant,
}

/// The cache; see the module doc.
pub struct Roster {
    stripes: Vec<Mutex<Stripe>>,
    stripe_bytes: usize,
    /// Read on every lookup; written only under `trust`.
    trusted: AtomicBool,
    /// Distrusts so far: trust is given only if none came since the relay began to earn it.
    trust: Mutex<u64>,
}

/// Taken before reading a thread's members from the database; the read may be cached only
/// if nothing was forgotten in its stripe meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: usize,
    generation: u64,
    at: Instant,
}

impl Roster {
    /// An empty cache holding at most about `bytes` (as charged: ids, keys and their
    /// overheads); `trusted` when nothing outside this node can change a membership (the
    /// single-node relay).
    pub fn new(bytes: usize, trusted: bool) -> Self {
        Roster {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
            stripe_bytes: bytes / STRIPES,
            trusted: AtomicBool::new(trusted),
            trust: Mutex::new(0),
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
        let e = s.entries.get(thread_id)?;
        if e.read_at.elapsed() < TTL {
            return Some(e.members.clone());
        }
        s.remove(thread_id);
        None
    }

    /// A ticket for caching a read of `thread_id`'s members that starts now.
    pub fn ticket(&self, thread_id: &str) -> Ticket {
        let stripe = slot(thread_id, STRIPES);
        Ticket {
            stripe,
            generation: self.stripe(stripe).generation,
            at: Instant::now(),
        }
    }

    /// Caches `members` as read under `ticket`, unless something was forgotten in its stripe
    /// since, the cache is distrusted, or the list alone is larger than a stripe's budget.
    /// A stripe that would overflow starts over (as `Memo` does): no bookkeeping per hit,
    /// and expired entries that nobody reads go with the rest.
    pub fn put(&self, ticket: Ticket, thread_id: &str, members: Members) {
        if !self.is_trusted() {
            return;
        }
        let bytes = OVERHEAD_PER_ENTRY
            + thread_id.len()
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
        s.remove(thread_id);
        if s.bytes + bytes > self.stripe_bytes {
            s.entries = HashMap::new();
            s.bytes = 0;
        }
        s.bytes += bytes;
        let read_at = ticket.at;
        s.entries.insert(
            thread_id.to_string(),
            Entry {
                members,
                bytes,
                read_at,
            },
        );
    }

    /// Drops `thread_id`'s members: its membership changed (here or on another node).
    pub fn forget(&self, thread_id: &str) {
        let mut s = self.stripe(slot(thread_id, STRIPES));
        s.generation += 1;
        s.remove(thread_id);
    }

    /// Empties the cache and bypasses it until [`Roster::trust_if`] succeeds: another node's
    /// forgets may be lost from now on.
    pub fn distrust(&self) {
        let mut distrusts = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        *distrusts += 1;
        if self.trusted.swap(false, Ordering::SeqCst) {
            log::info!("membership cache off until the relay carries changes again");
        }
        self.forget_all();
    }

    /// How many times the cache has been distrusted: taken before the relay subscribes, and
    /// handed to [`Roster::trust_if`] once it has.
    pub fn distrusts(&self) -> u64 {
        *self.trust.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uses the cache again (the relay carries every node's forgets from now on), unless it
    /// was distrusted after `distrusts` was read: then the subscription that earned the trust
    /// may already be gone. Reads that began before are not cached. Whether it is trusted now.
    pub fn trust_if(&self, distrusts: u64) -> bool {
        let now = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        if *now != distrusts {
            return false;
        }
        self.forget_all();
        if !self.trusted.swap(true, Ordering::SeqCst) {
            log::info!("membership cache on");
        }
        true
    }

    /// Forgets every thread (another node's changes may have been lost).
    pub fn forget_all(&self) {
        for i in 0..STRIPES {
            let mut s = self.stripe(i);
            s.generation += 1;
            s.entries = HashMap::new();
            s.bytes = 0;
        }
    }

    /// Whether reads may come from the cache.
    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
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
        assert!(r.trust_if(r.distrusts()));
        r.put(early, "t1", ids(&["ann"]));
        assert!(r.get("t1").is_none(), "read while changes could be lost");
        let t = r.ticket("t1");
        r.put(t, "t1", ids(&["ann"]));
        assert!(r.get("t1").is_some());
        let before = r.distrusts();
        r.distrust();
        assert!(r.get("t1").is_none());
        assert!(
            !r.trust_if(before),
            "a distrust after the relay began to earn trust wins"
        );
        assert!(!r.is_trusted());
        assert!(r.trust_if(r.distrusts()));
    }

    #[test]
    fn it_never_holds_more_than_its_budget() {
        // One stripe's budget is 1/64 of the whole: 200 bytes here.
        let r = Roster::new(200 * STRIPES, true);
        let big: Members = (0..5).map(|i| format!("user-{i}")).collect();
        let t = r.ticket("huge");
        r.put(t, "huge", big);
        assert!(r.get("huge").is_none(), "larger than a stripe: not cached");
        for i in 0..1000 {
            let id = format!("t{i}");
            let t = r.ticket(&id);
            r.put(t, &id, ids(&["a"]));
        }
        let (mut n, mut bytes) = (0, 0);
        for i in 0..STRIPES {
            let s = r.stripe(i);
            assert!(s.bytes <= 200, "stripe {i}: {} bytes", s.bytes);
            n += s.entries.len();
            bytes += s.bytes;
        }
        assert!(n > 0 && n < 1000, "{n} entries, {bytes} bytes");
        assert!(r.get("t999").is_some(), "the latest fill is kept");
    }
}
