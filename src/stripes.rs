//! Keyed async locks, striped: a fixed set of mutexes, a key's turn is its stripe's. Used to
//! keep per-key order where it matters (a thread's seq from commit to publish, a user's
//! sessions opening and closing) without a map that grows with the keys.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

/// Which of `n` slots `key` falls in: FNV-1a, stable across nodes and restarts and cheap;
/// the spread only needs to be fair, not secret.
pub fn slot(key: &str, n: usize) -> usize {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    usize::try_from(h % n.max(1) as u64).unwrap_or(0)
}

/// A fixed set of async mutexes, chosen by key.
pub struct Stripes {
    locks: Vec<Arc<Mutex<()>>>,
}

impl Stripes {
    /// `n` stripes; more stripes, fewer unrelated keys waiting on each other.
    pub fn new(n: usize) -> Self {
        Stripes {
            locks: (0..n.max(1)).map(|_| Arc::new(Mutex::new(()))).collect(),
        }
    }

    /// Waits for `key`'s turn; the turn lasts as long as the guard.
    pub async fn lock(&self, key: &str) -> OwnedMutexGuard<()> {
        let i = slot(key, self.locks.len());
        let lock = match self.locks.get(i) {
            Some(l) => l.clone(),
            None => Arc::new(Mutex::new(())),
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_same_key_waits_for_its_turn() {
        let s = Arc::new(Stripes::new(8));
        let g = s.lock("thread-1").await;
        let s2 = s.clone();
        let waiter = tokio::spawn(async move { s2.lock("thread-1").await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(g);
        assert!(waiter.await.is_ok());
    }
}
