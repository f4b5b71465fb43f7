//! The in-process relay, the single-node default: every envelope goes straight to this node's
//! registry. `Addr::send` waits while the registry's bounded mailbox is full, so publishers
//! slow down instead of queueing without limit, and one publisher's envelopes stay in order.

use actix::Addr;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::{Envelope, Relay, RelayError};
use crate::registry::{Deliver, SessionRegistry};

/// Delivers to the local registry only.
pub struct MemoryRelay {
    registry: Addr<SessionRegistry>,
}

impl MemoryRelay {
    /// A relay into `registry`.
    pub fn new(registry: Addr<SessionRegistry>) -> Self {
        MemoryRelay { registry }
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
}
