//! The in-process relay, the single-node default: every envelope goes straight to this node's
//! registry, and the cluster is this node. `Addr::send` waits while the registry's bounded
//! mailbox is full, so publishers slow down instead of queueing without limit, and one
//! publisher's envelopes stay in order.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use actix::Addr;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Envelope, Relay, RelayError};
use crate::limits::RateLimiter;
use crate::registry::{Deliver, SessionRegistry};

/// Delivers to the local registry only.
pub struct MemoryRelay {
    registry: Addr<SessionRegistry>,
    limiter: RateLimiter,
    /// Open sessions per user: the whole cluster, on one node.
    sessions: Mutex<HashMap<String, usize>>,
}

impl MemoryRelay {
    /// A relay into `registry`, with the per-user send rate held in memory.
    pub fn new(registry: Addr<SessionRegistry>, limiter: RateLimiter) -> Self {
        MemoryRelay {
            registry,
            limiter,
            sessions: Mutex::new(HashMap::new()),
        }
    }
}

impl Relay for MemoryRelay {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), RelayError>> {
        async move {
            self.registry
                .send(Deliver {
                    envelope: envelope.into(),
                })
                .await
                .map_err(|_| RelayError::RegistryGone)
        }
        .boxed()
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    fn health(&self) -> BoxFuture<'_, Result<(), RelayError>> {
        async { Ok(()) }.boxed()
    }

    // On one node the registry enforces the cap; here only the counts for presence.
    fn session_opened<'a>(&'a self, user: &'a str, _: &'a str) -> BoxFuture<'a, bool> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user.to_string()).or_insert(0);
        *n += 1;
        let first = *n == 1;
        async move { first }.boxed()
    }

    fn session_closed<'a>(&'a self, user: &'a str, _: &'a str) -> BoxFuture<'a, bool> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let last = match map.get_mut(user) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if last {
            map.remove(user);
        }
        async move { last }.boxed()
    }

    fn local_sessions(&self) -> usize {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.values().sum()
    }

    fn watch<'a>(&'a self, _: &'a str, _: bool) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }

    fn online<'a>(&'a self, users: &'a [String]) -> BoxFuture<'a, Vec<bool>> {
        crate::registry::online_here(&self.registry, users).boxed()
    }

    fn take_send<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<(), Duration>> {
        async move { self.limiter.check(user) }.boxed()
    }

    fn leave(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}
