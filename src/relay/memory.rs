//! The in-process relay, the single-node default: every envelope goes straight to this node's
//! registry, and the cluster is this node. `Addr::send` waits while the registry's bounded
//! mailbox is full, so publishers slow down instead of queueing without limit, and one
//! publisher's envelopes stay in order.

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, Mutex};

use actix::Addr;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::{Relay, RelayError, Transition, Verdict, tell};
use crate::envelope::Envelope;
use crate::limits::RateLimiter;
use crate::metrics;
use crate::protocol::Ts;
use crate::registry::{DeliverAll, SessionRegistry};
use crate::stripes::Stripes;

/// Per-user turns for opening and closing sessions.
const USER_STRIPES: usize = 256;

/// Delivers to the local registry only.
pub struct MemoryRelay {
    registry: Addr<SessionRegistry>,
    limiter: RateLimiter,
    /// Open sessions per user: the whole cluster, on one node.
    sessions: Mutex<HashMap<String, usize>>,
    turns: Stripes,
    transitions: mpsc::Sender<Transition>,
}

impl MemoryRelay {
    /// A relay into `registry`, with the per-user send rate held in memory.
    pub fn new(
        registry: Addr<SessionRegistry>,
        limiter: RateLimiter,
        transitions: mpsc::Sender<Transition>,
    ) -> Self {
        MemoryRelay {
            registry,
            limiter,
            sessions: Mutex::new(HashMap::new()),
            turns: Stripes::new(USER_STRIPES),
            transitions,
        }
    }

    /// Adds `delta` to the user's open sessions; returns the new count.
    fn count(&self, user: &str, delta: isize) -> usize {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user.to_string()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        let now = *n;
        if now == 0 {
            map.remove(user);
        }
        now
    }
}

impl Relay for MemoryRelay {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), RelayError>> {
        self.publish_all(vec![envelope])
    }

    fn publish_all(&self, envelopes: Vec<Envelope>) -> BoxFuture<'_, Result<(), RelayError>> {
        async move {
            for _ in &envelopes {
                metrics::relay_published();
            }
            let envelopes = envelopes.into_iter().map(Arc::new).collect();
            // One node subscribes to nothing, so the watches an unwatch ended need no follow-up.
            self.registry
                .send(DeliverAll { envelopes })
                .await
                .map(drop)
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
    fn session_opened<'a>(
        &'a self,
        user: &'a str,
        _: &'a str,
        name: Option<String>,
    ) -> BoxFuture<'a, ()> {
        async move {
            // Held until the transition is queued: a user's online and offline are queued in
            // the order they were decided.
            let _turn = self.turns.lock(user).await;
            if self.count(user, 1) == 1 {
                let t = Transition::Online {
                    user_id: user.to_string(),
                    name,
                };
                tell(&self.transitions, t).await;
            }
        }
        .boxed()
    }

    fn session_closed<'a>(&'a self, user: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
        async move {
            let _turn = self.turns.lock(user).await;
            if self.count(user, -1) == 0 {
                let t = Transition::Offline {
                    user_id: user.to_string(),
                    at: Ts::now(),
                };
                tell(&self.transitions, t).await;
            }
        }
        .boxed()
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

    fn take_send(&self, user: &str) -> Verdict {
        Verdict::Now(self.limiter.check(user))
    }

    fn members_changed<'a>(&'a self, _thread_id: &'a str) -> BoxFuture<'a, ()> {
        // There are no other nodes; this node's own cache is the service's to forget.
        async {}.boxed()
    }

    fn leave(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}
