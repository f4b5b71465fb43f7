//! What every transport shares: a session's bounded [`Outbox`], and the ordered attach and
//! detach against the relay and the registry. A WebSocket actor and an SSE stream are each a
//! [`Session`]; they differ only in how they write the outbox to their client.

pub mod outbox;
pub mod pieces;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix::Addr;

use crate::metrics::{self, Transport};
use crate::protocol::{ServerFrame, close};
use crate::registry::{Register, SessionRegistry, Unregister};
use crate::relay::Relay;
pub use outbox::{CLOSE_FLUSH_LIMIT, Limits, Next, Outbox};

/// The version of the protocol this gateway speaks, sent in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Opens sessions: the handles every session needs to attach and detach. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    relay: Arc<dyn Relay>,
    registry: Addr<SessionRegistry>,
    node_id: String,
    heartbeat_s: u64,
    limits: Limits,
    /// Set when the node starts draining: no session attaches after it.
    draining: Arc<AtomicBool>,
}

/// Why a session could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The node is draining; the session was closed with 1001 before `hello`.
    #[error("the server is shutting down")]
    Draining,
}

impl Hub {
    /// A hub over this node's relay and registry.
    pub fn new(
        relay: Arc<dyn Relay>,
        registry: Addr<SessionRegistry>,
        node_id: String,
        heartbeat_s: u64,
        limits: Limits,
    ) -> Hub {
        Hub {
            relay,
            registry,
            node_id,
            heartbeat_s,
            limits,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Refuses every later attach (the drain has begun).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// A new, not yet attached session for `user_id` with its own outbox.
    /// `peer` is the client's address (through trusted proxies), for the log lines.
    pub fn open(
        &self,
        user_id: &str,
        name: Option<String>,
        transport: Transport,
        peer: Option<std::net::IpAddr>,
    ) -> Arc<Session> {
        Arc::new(Session {
            id: uuid::Uuid::now_v7().simple().to_string(),
            user_id: user_id.to_string(),
            name,
            transport,
            peer,
            outbox: Arc::new(Outbox::new(self.limits)),
            hub: self.clone(),
            attached: AtomicBool::new(false),
        })
    }
}

/// One client connection of any transport.
pub struct Session {
    id: String,
    user_id: String,
    name: Option<String>,
    transport: Transport,
    /// The client's address, for log lines.
    peer: Option<std::net::IpAddr>,
    outbox: Arc<Outbox>,
    hub: Hub,
    /// Whether the relay and the registry know this session (so it must leave them).
    attached: AtomicBool,
}

impl Session {
    /// The session id (in `hello`, logs, and the relay's session cap).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The user the session belongs to.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The transport it runs over.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Its outgoing queue, which the transport's writer drains.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Joins the cluster and the registry, in the order that loses nothing: the relay first
    /// (this node now receives the user's events from every node, the user counts as online
    /// and the cluster-wide cap applies), then the registry, which queues `hello` ahead of
    /// any event. So `hello` goes first, and nothing published after it is missed. The
    /// transport reads nothing from its client until this returns.
    ///
    /// Runs to the end in its own task even if the caller is dropped half-way, so `detach`
    /// always finds the session either fully attached or not at all.
    pub async fn attach(self: &Arc<Self>) -> Result<(), AttachError> {
        let this = self.clone();
        match tokio::spawn(async move { this.attach_now().await }).await {
            Ok(r) => r,
            Err(_) => Err(AttachError::Draining),
        }
    }

    async fn attach_now(&self) -> Result<(), AttachError> {
        let hub = &self.hub;
        // Checked first, so a session refused by a draining node announces no presence.
        if hub.is_draining() {
            self.refuse();
            return Err(AttachError::Draining);
        }
        let hello = ServerFrame::Hello {
            session_id: self.id.clone(),
            user_id: self.user_id.clone(),
            node_id: hub.node_id.clone(),
            heartbeat_s: hub.heartbeat_s,
            protocol: PROTOCOL_VERSION,
        };
        let register = Register {
            session_id: self.id.clone(),
            user_id: self.user_id.clone(),
            sink: self.outbox.clone(),
            hello: hello.to_json().into(),
        };
        hub.relay
            .session_opened(&self.user_id, &self.id, self.name.clone())
            .await;
        if hub.registry.send(register).await != Ok(true) {
            hub.relay.session_closed(&self.user_id, &self.id).await;
            self.refuse();
            return Err(AttachError::Draining);
        }
        self.attached.store(true, Ordering::SeqCst);
        metrics::session_opened(self.transport);
        let from = self.peer.map(|p| format!(" from {p}")).unwrap_or_default();
        log::info!(
            "session {} opened for {} ({}){from}",
            self.id,
            self.user_id,
            self.transport.as_str()
        );
        Ok(())
    }

    fn refuse(&self) {
        self.outbox
            .close_now(close::GOING_AWAY, "server shutting down");
    }

    /// Leaves the registry (releasing its presence watches) and then the relay, which tells
    /// presence when this was the user's last session anywhere. Runs once, however many
    /// times it is called; a session that never attached has nothing to leave.
    pub async fn detach(&self) {
        // Nothing more is queued, and the writer ends.
        self.outbox.close(close::NORMAL, "");
        if !self.attached.swap(false, Ordering::SeqCst) {
            return;
        }
        metrics::session_closed(self.transport);
        log::info!(
            "session {} closed for {} ({})",
            self.id,
            self.user_id,
            self.transport.as_str()
        );
        let hub = &self.hub;
        let unwatched = hub
            .registry
            .send(Unregister {
                session_id: self.id.clone(),
            })
            .await
            .unwrap_or_default();
        for watched in unwatched {
            hub.relay.watch(&watched, false).await;
        }
        hub.relay.session_closed(&self.user_id, &self.id).await;
    }
}
