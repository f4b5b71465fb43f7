//! The handles every request, frame and background task shares: configuration, store, relay,
//! registry, session hub, token verifier, metrics, and the small per-node state the services
//! keep. Built once by `app`; cheap to clone; read through accessors.

use std::sync::Arc;

use actix::Addr;

use crate::auth::Auth;
use crate::commit::Committer;
use crate::config::Config;
use crate::expiring::ExpiringSet;
use crate::limits::RateLimiter;
use crate::memo::Memo;
use crate::metrics::Metrics;
use crate::registry::SessionRegistry;
use crate::relay::Relay;
use crate::roster::Roster;
use crate::session::{CLOSE_FLUSH_LIMIT, Hub, Limits};
use crate::store::Store;
use crate::stripes::Stripes;

/// Typing turns: keys of different users rarely share one.
const TYPING_STRIPES: usize = 64;

/// Group-commit shards on Postgres: batches of different threads commit side by side. Two
/// measured best on 2 cores (docs/performance.md): more shards make smaller batches.
const PG_COMMIT_SHARDS: usize = 2;

/// What a graceful close waits beyond a write's own wait: the reply still has to be queued.
const CLOSE_FLUSH_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// Store calls a send makes in turn at most, each bounded by the store's wait: the direct
/// thread's lookup and creation, the sender's membership and the message it replies to
/// (with `reply_to`), the members for a `message.created` webhook, and the commit. (A
/// drain does not wait this long: it ends the store calls by its own deadline.)
const SEND_STORE_WAITS: u32 = 6;

/// Direct threads remembered by their pair of users (about 150 bytes each).
const DIRECT_MEMO: usize = 50_000;

/// Announcements of committed changes whose audience read failed, retried in the background
/// at once on one node; past it a change is logged as not broadcast (history has it).
const LATE_ANNOUNCES: usize = 256;

/// Who is typing where, by (thread, user), and a turn per key.
pub struct TypingSet {
    /// Who is typing, each until a deadline.
    pub set: ExpiringSet<(String, String)>,
    /// A change and its announcement happen in one turn, so that two sessions of one user
    /// (or a socket and `POST …/typing`) cannot publish them in the opposite order.
    pub turns: Stripes,
    /// Each user's starts of typing (`TYPING_STARTS_PER_S`, burst `TYPING_STARTS_BURST`):
    /// every start and its stop fan out to the thread, so alternating `true` and `false`
    /// would otherwise cost a fan-out per frame.
    pub starts: RateLimiter,
}

/// Typing starts a user may make per second on one node: far above a person's.
pub const TYPING_STARTS_PER_S: u32 = 5;
/// Typing starts a user may make at once.
pub const TYPING_STARTS_BURST: u32 = 10;

/// The shared handles. Cheap to clone.
#[derive(Clone)]
pub struct AppContext {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    relay: Arc<dyn Relay>,
    registry: Addr<SessionRegistry>,
    hub: Hub,
    auth: Auth,
    metrics: Metrics,
    typing: TypingSet,
    committer: Committer,
    directs: Memo,
    late_announces: Arc<tokio::sync::Semaphore>,
    roster: Arc<Roster>,
}

/// The parts an [`AppContext`] is built from.
pub struct Parts {
    pub config: Config,
    pub store: Store,
    pub relay: Arc<dyn Relay>,
    pub registry: Addr<SessionRegistry>,
    pub auth: Auth,
    pub metrics: Metrics,
    /// The membership cache, shared with the relay that invalidates it.
    pub roster: Arc<Roster>,
}

impl AppContext {
    /// Builds the context; the session hub is made from the relay and registry given.
    pub fn new(p: Parts) -> std::io::Result<AppContext> {
        let hub = Hub::new(
            p.relay.clone(),
            p.registry.clone(),
            p.config.node_id.clone(),
            p.config.heartbeat.as_secs(),
            Limits {
                frames: p.config.outbox_frames,
                bytes: p.config.outbox_bytes,
                // A send begun before a graceful close may still wait on the store up to
                // `SEND_STORE_WAITS` times before its reply: the close waits that long.
                close_flush: CLOSE_FLUSH_LIMIT
                    .max(p.store.write_wait() * SEND_STORE_WAITS + CLOSE_FLUSH_MARGIN),
            },
        );
        // SQLite has one writer: a second shard would only wait for the first.
        let shards = if p.store.is_postgres() {
            PG_COMMIT_SHARDS
        } else {
            1
        };
        let committer = Committer::start(
            p.store.clone(),
            p.relay.clone(),
            p.config.node_id.clone(),
            shards,
        )?;
        Ok(AppContext {
            inner: Arc::new(Inner {
                hub,
                config: p.config,
                store: p.store,
                relay: p.relay,
                registry: p.registry,
                auth: p.auth,
                metrics: p.metrics,
                typing: TypingSet {
                    set: ExpiringSet::default(),
                    turns: Stripes::new(TYPING_STRIPES),
                    starts: RateLimiter::new(TYPING_STARTS_PER_S, TYPING_STARTS_BURST),
                },
                committer,
                directs: Memo::new(DIRECT_MEMO),
                late_announces: Arc::new(tokio::sync::Semaphore::new(LATE_ANNOUNCES)),
                roster: p.roster,
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The relay: publishing, and the node's view of the cluster.
    pub fn relay(&self) -> &Arc<dyn Relay> {
        &self.inner.relay
    }

    /// This node's session registry.
    pub fn registry(&self) -> &Addr<SessionRegistry> {
        &self.inner.registry
    }

    /// Opens sessions for the transports.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The token verifier.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// The metrics exporter.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Who is typing where, on this node.
    pub fn typing(&self) -> &TypingSet {
        &self.inner.typing
    }

    /// Stores messages, a batch per transaction, and publishes their events.
    pub fn committer(&self) -> &Committer {
        &self.inner.committer
    }

    /// Direct thread ids by pair key: a pair's direct thread never changes once made.
    pub fn directs(&self) -> &Memo {
        &self.inner.directs
    }

    /// Places for announcements retried after their audience read failed (`LATE_ANNOUNCES`).
    pub fn late_announces(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.late_announces
    }

    /// Who is in each thread, as this node last read it (`service::members`).
    pub fn roster(&self) -> &Roster {
        &self.inner.roster
    }

    /// Whether SIGTERM has started the drain (`/readyz` then answers 503).
    pub fn is_draining(&self) -> bool {
        self.inner.hub.is_draining()
    }

    /// Marks the node as draining: `/readyz` turns 503 and no session attaches any more.
    pub fn start_draining(&self) {
        self.inner.hub.start_draining();
    }
}
