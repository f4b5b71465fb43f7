//! The relay seam: every event for sessions goes out as an [`Envelope`] through a [`Relay`],
//! which hands it to this node's registry and, for the Redis relay, to every other node's.
//! The relay is also the node's view of the cluster: which users have sessions anywhere, the
//! per-user session cap and send rate. Above this seam nothing knows whether one node runs or
//! many.

pub mod memory;
pub mod redis;
pub mod subscriber;

use std::time::Duration;

use futures_util::future::{BoxFuture, Either, Ready, ready};
use tokio::sync::mpsc;

use crate::envelope::Envelope;
use crate::protocol::Ts;

/// A rate check on its way: `Ok` when the send may go, else how long until it may.
pub type Asked = BoxFuture<'static, Result<(), Duration>>;

/// A rate check's answer: given at once, or on its way (with Redis, a round trip). A
/// check on its way starts its timer at its first poll, so it may be awaited on another
/// runtime than the one that asked (the message writer's), even one that outlives it.
pub enum Verdict {
    /// `Ok` when the send may go, else how long until it may.
    Now(Result<(), Duration>),
    /// Still on its way.
    Later(Asked),
    /// Not asked yet: the node's queue of checks is full, and the check is queued when the
    /// future is first polled. The caller awaits it where it is, so a node that cannot keep
    /// up with its checks slows its senders instead of queueing messages behind checks that
    /// have not been sent.
    Backlogged(Asked),
}

impl std::future::IntoFuture for Verdict {
    type Output = Result<(), Duration>;
    type IntoFuture = Either<Ready<Self::Output>, Asked>;

    fn into_future(self) -> Self::IntoFuture {
        match self {
            Verdict::Now(now) => Either::Left(ready(now)),
            Verdict::Later(asked) | Verdict::Backlogged(asked) => Either::Right(asked),
        }
    }
}

/// Transitions queued for the presence task; senders wait when it is full (nothing is
/// dropped, and the wait slows only session opens and closes).
pub const TRANSITION_QUEUE: usize = 16_384;

/// A user came online or went offline anywhere in the cluster, as the relay decided. The
/// presence service turns these into `presence` events and `last_seen`.
#[derive(Debug)]
pub enum Transition {
    /// The user's first session anywhere opened; `name` is from their token.
    Online {
        user_id: String,
        name: Option<String>,
    },
    /// The user's last session anywhere closed (or died with its node).
    Offline { user_id: String, at: Ts },
    /// Answered once everything queued before it is handled (drain).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Queues a transition; waits when the queue is full rather than losing one.
pub async fn tell(tx: &mpsc::Sender<Transition>, t: Transition) {
    if tx.send(t).await.is_err() {
        log::warn!("presence task gone; a presence change was not announced");
    }
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the local registry has stopped")]
    RegistryGone,
    #[error("relay unavailable: {0}")]
    Unavailable(String),
}

/// Carries envelopes to the sessions they address, wherever those are, and keeps the state
/// the nodes share.
///
/// The cluster calls never fail the caller: when the shared state cannot be reached, a relay
/// answers from what this node knows and says so in its `health`.
pub trait Relay: Send + Sync + 'static {
    /// Publishes one envelope. Envelopes published one after another by one task reach each
    /// session in that order.
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), RelayError>>;
    /// Publishes envelopes in order, as one delivery here and one round trip to the other
    /// nodes.
    fn publish_all(&self, envelopes: Vec<Envelope>) -> BoxFuture<'_, Result<(), RelayError>>;
    /// A short name for logs and `/readyz`.
    fn name(&self) -> &'static str;
    /// Whether the relay can deliver beyond this node right now (`/readyz`).
    fn health(&self) -> BoxFuture<'_, Result<(), RelayError>>;
    /// A session opened on this node. Resolves once the node receives the user's events and
    /// the user counts as online everywhere, so nothing published after `hello` is missed and
    /// lookups agree. Enforces the per-user cap cluster-wide, and tells presence when this is
    /// the user's first session anywhere. One user's opens and closes are handled one at a
    /// time, in the order they come.
    fn session_opened<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
        name: Option<String>,
    ) -> BoxFuture<'a, ()>;
    /// A session on this node closed; tells presence when it was the user's last anywhere.
    fn session_closed<'a>(&'a self, user: &'a str, session: &'a str) -> BoxFuture<'a, ()>;
    /// Sessions this node has opened and not yet finished closing.
    fn local_sessions(&self) -> usize;
    /// This node's first watcher of `user` arrived (`on`), or its last one left.
    fn watch<'a>(&'a self, user: &'a str, on: bool) -> BoxFuture<'a, ()>;
    /// Whether each user has a session on any node.
    fn online<'a>(&'a self, users: &'a [String]) -> BoxFuture<'a, Vec<bool>>;
    /// Takes one send from the user's rate budget, or says how long until one is free. The
    /// check is asked when this is called (checks take tokens in call order); the answer
    /// may be awaited later, so its round trip can overlap other waits (`commit.rs`).
    fn take_send(&self, user: &str) -> Verdict;
    /// A thread's membership changed and has committed: every other node forgets its
    /// cached members (`roster`). One that cannot be told now is told once the relay is
    /// back, and until then its cache is bounded by `roster::TTL`.
    fn members_changed<'a>(&'a self, thread_id: &'a str) -> BoxFuture<'a, ()>;
    /// Withdraws this node from the cluster on shutdown.
    fn leave(&self) -> BoxFuture<'_, ()>;
}

/// Connects to Redis and sends PING (for `switchboard check`).
pub async fn ping_redis(url: &str) -> Result<(), RelayError> {
    let err = |e: ::redis::RedisError| RelayError::Unavailable(e.to_string());
    let client = ::redis::Client::open(url).map_err(err)?;
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| RelayError::Unavailable("timed out connecting".into()))?
    .map_err(err)?;
    ::redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(|_| ())
        .map_err(err)
}
