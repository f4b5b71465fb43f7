//! A set of keys that stay in until taken out or until their deadline passes, with one timer
//! per key however often it is renewed. Typing indicators use it: "typing" stays up while
//! `true`s keep coming and drops 5 s after the last one.

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;
use std::sync::Mutex;
use tokio::time::Instant;

/// Keys with a deadline each; see the module doc.
pub struct ExpiringSet<K> {
    inner: Mutex<(HashMap<K, Entry>, u64)>,
}

struct Entry {
    until: Instant,
    /// Which timer owns the key: a key taken out and put back gets a new one, and the old
    /// timer ends when it next wakes.
    epoch: u64,
}

/// What a key's timer finds when it wakes.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// The deadline has passed: the key is out, and the timer reports it.
    Now,
    /// Renewed since: sleep until then.
    Later(Instant),
    /// Taken out, or put back under another timer: nothing to do.
    Gone,
}

impl<K> Default for ExpiringSet<K> {
    fn default() -> Self {
        ExpiringSet {
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }
}

impl<K: Eq + Hash> ExpiringSet<K> {
    /// Puts `key` in until `until`, or moves its deadline there. When it was out, returns the
    /// epoch for the one timer the caller must start ([`due`](Self::due)); a renewal starts
    /// none, so a client repeating `true` costs no task per frame.
    pub fn renew(&self, key: K, until: Instant) -> Option<u64> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, next) = &mut *guard;
        if let Some(e) = map.get_mut(&key) {
            e.until = e.until.max(until);
            return None;
        }
        *next += 1;
        map.insert(
            key,
            Entry {
                until,
                epoch: *next,
            },
        );
        Some(*next)
    }

    /// For the timer of `epoch`, woken at `now`: takes `key` out once its deadline has passed.
    pub fn due(&self, key: &K, epoch: u64, now: Instant) -> Due {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match guard.0.get(key) {
            Some(e) if e.epoch != epoch => Due::Gone,
            Some(e) if e.until > now => Due::Later(e.until),
            Some(_) => {
                guard.0.remove(key);
                Due::Now
            }
            None => Due::Gone,
        }
    }

    /// Takes `key` out; returns whether it was in.
    pub fn remove(&self, key: &K) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.remove(key).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_renewal_moves_the_deadline_and_starts_no_second_timer() {
        let s = ExpiringSet::default();
        let t0 = Instant::now();
        let epoch = s
            .renew("k", t0 + Duration::from_secs(5))
            .expect("a first timer");
        assert_eq!(s.renew("k", t0 + Duration::from_secs(7)), None);
        // The timer wakes at the first deadline and finds the later one.
        let later = t0 + Duration::from_secs(7);
        assert_eq!(
            s.due(&"k", epoch, t0 + Duration::from_secs(5)),
            Due::Later(later)
        );
        assert_eq!(s.due(&"k", epoch, later), Due::Now);
        assert!(!s.remove(&"k"), "expired keys are out");
    }

    #[test]
    fn a_key_put_back_belongs_to_its_new_timer() {
        let s = ExpiringSet::default();
        let t0 = Instant::now();
        let first = s.renew("k", t0).unwrap();
        assert!(s.remove(&"k"));
        let second = s.renew("k", t0 + Duration::from_secs(5)).unwrap();
        assert_ne!(first, second);
        assert_eq!(s.due(&"k", first, t0 + Duration::from_secs(9)), Due::Gone);
        assert_eq!(s.due(&"k", second, t0 + Duration::from_secs(9)), Due::Now);
    }
}
