//! Per-user send rate: a token bucket per user, refilled at `RATE_PER_S` up to `RATE_BURST`.
//! Sends and edits over WebSocket and REST draw from the same bucket.

use foldhash::{HashMap, HashMapExt};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many checks pass between sweeps of idle buckets, so the map stays bounded by the
/// users active in the last few seconds.
const SWEEP_EVERY: u64 = 4096;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A per-user token bucket.
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: Mutex<(HashMap<String, Bucket>, u64)>,
}

impl RateLimiter {
    /// `per_s` tokens a second, at most `burst` saved up.
    pub fn new(per_s: u32, burst: u32) -> Self {
        RateLimiter {
            per_s: f64::from(per_s),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Takes one token for `user`, or says how long until one is available.
    pub fn check(&self, user: &str) -> Result<(), Duration> {
        self.check_at(user, Instant::now())
    }

    fn check_at(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (map, checks) = &mut *guard;
        *checks += 1;
        if *checks % SWEEP_EVERY == 0 {
            let full_after = Duration::from_secs_f64(self.burst / self.per_s);
            map.retain(|_, b| now.duration_since(b.at) < full_after);
        }
        let b = map.entry(user.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_s).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let r = RateLimiter::new(20, 40);
        let t0 = Instant::now();
        for _ in 0..40 {
            assert!(r.check_at("alice", t0).is_ok());
        }
        let wait = r.check_at("alice", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(50) && wait > Duration::ZERO);
        // Other users have their own bucket.
        assert!(r.check_at("bob", t0).is_ok());
        // After 50 ms one token is back.
        assert!(r.check_at("alice", t0 + Duration::from_millis(50)).is_ok());
        assert!(r.check_at("alice", t0 + Duration::from_millis(50)).is_err());
    }
}
