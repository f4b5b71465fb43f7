//! A set of keys that stay in until taken out or until their timer fires, where renewing a
//! key bumps its generation so that an older timer does nothing. Typing indicators use it:
//! "typing" stays up while `true`s keep coming and drops 5 s after the last one.

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;
use std::sync::Mutex;

/// Keys with a generation each; see the module doc.
pub struct ExpiringSet<K> {
    inner: Mutex<(HashMap<K, u64>, u64)>,
}

impl<K> Default for ExpiringSet<K> {
    fn default() -> Self {
        ExpiringSet {
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }
}

impl<K: Eq + Hash> ExpiringSet<K> {
    /// Puts `key` in (or renews it). Returns its new generation, for the timer to pass to
    /// [`expire`](Self::expire), and whether it was out before.
    pub fn renew(&self, key: K) -> (u64, bool) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, next) = &mut *guard;
        *next += 1;
        let generation = *next;
        let was_out = map.insert(key, generation).is_none();
        (generation, was_out)
    }

    /// Takes `key` out if its generation is still `generation` (no renewal since); returns
    /// whether it did.
    pub fn expire(&self, key: &K, generation: u64) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if guard.0.get(key) == Some(&generation) {
            guard.0.remove(key);
            return true;
        }
        false
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

    #[test]
    fn a_renewal_outlives_the_older_timer() {
        let s = ExpiringSet::default();
        let (g1, new1) = s.renew("k");
        let (g2, new2) = s.renew("k");
        assert!(new1 && !new2);
        assert!(
            !s.expire(&"k", g1),
            "the first timer must not end a renewed key"
        );
        assert!(s.expire(&"k", g2));
        assert!(!s.remove(&"k"));
    }
}
