//! The in-process relay, the single-node default: every envelope goes straight to this node's
//! registry, and the cluster is this node. `Addr::send` waits while the registry's bounded
//! mailbox is full, so publishers slow down instead of queueing without limit, and one
//! publisher's envelopes stay in order.

use std::time::Duration;

use actix::Addr;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Envelope, Relay, RelayError};
use crate::limits::RateLimiter;
use crate::registry::{Deliver, Online, SessionRegistry};

/// Delivers to the local registry only.
pub struct MemoryRelay {
    registry: Addr<SessionRegistry>,
    limiter: RateLimiter,
}

impl MemoryRelay {
    /// A relay into `registry`, with the per-user send rate held in memory.
    pub fn new(registry: Addr<SessionRegistry>, limiter: RateLimiter) -> Self {
        MemoryRelay { registry, limiter }
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

    // On one node the registry already enforces the cap and knows every session.
    fn session_opened<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }

    fn session_closed<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }

    fn watch<'a>(&'a self, _: &'a str, _: bool) -> BoxFuture<'a, ()> {
        async {}.boxed()
    }

    fn user_arrived<'a>(&'a self, _: &'a str) -> BoxFuture<'a, bool> {
        async { true }.boxed()
    }

    fn user_left<'a>(&'a self, _: &'a str) -> BoxFuture<'a, bool> {
        async { true }.boxed()
    }

    fn online<'a>(&'a self, users: &'a [String]) -> BoxFuture<'a, Vec<bool>> {
        async move {
            self.registry
                .send(Online {
                    user_ids: users.to_vec(),
                })
                .await
                .unwrap_or_else(|_| vec![false; users.len()])
        }
        .boxed()
    }

    fn take_send<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<(), Duration>> {
        async move { self.limiter.check(user) }.boxed()
    }

    fn leave(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}
