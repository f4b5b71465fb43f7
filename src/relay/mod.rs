//! The relay seam: every event for sessions goes out as an [`Envelope`] through a [`Relay`],
//! which hands it to this node's registry and, for the Redis relay, to every other node's.
//! The relay is also the node's view of the cluster: which users have sessions anywhere, the
//! per-user session cap and send rate. Above this seam nothing knows whether one node runs or
//! many.

pub mod memory;
pub mod redis;
pub mod subscriber;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ws::frames::ServerFrame;

/// The envelope format; a node drops envelopes of a version it does not know.
pub const ENVELOPE_VERSION: u8 = 1;

/// One event on its way to sessions, on any node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope format version.
    pub v: u8,
    /// Set when the audience may reach one session along two paths (a user's channel and a
    /// watched user's channel): the registry delivers an id once per session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The node that published it.
    pub origin: String,
    /// Who gets it.
    pub audience: Audience,
    /// What they get.
    pub payload: Payload,
    /// For message events: the thread and seq, so every node hands them on in seq order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

/// A message event's place in its thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub thread_id: String,
    pub seq: i64,
    /// Set for `message_updated`/`message_deleted`: it follows its message rather than
    /// taking a place of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follows: bool,
}

/// The sessions an envelope is for: the union of `users`' sessions and the sessions watching
/// `watchers_of`, less `except_session`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Audience {
    /// Every session of these users.
    #[serde(default)]
    pub users: Vec<String>,
    /// Sessions that watch this user's presence.
    #[serde(default)]
    pub watchers_of: Option<String>,
    /// A session left out (the sender's, for `message`).
    #[serde(default)]
    pub except_session: Option<String>,
    /// These sessions by id, whoever their user (closing replaced sessions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<String>,
}

impl Audience {
    /// Every session of these users.
    pub fn users(users: Vec<String>) -> Self {
        Audience {
            users,
            ..Audience::default()
        }
    }

    /// Every session of these users but one.
    pub fn users_except(users: Vec<String>, except_session: Option<String>) -> Self {
        Audience {
            users,
            except_session,
            ..Audience::default()
        }
    }
}

/// What an envelope carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    /// A server frame, serialised once at the origin and written as-is to every socket.
    Frame { lane: Lane, json: String },
    /// Close the addressed sessions (server API disconnect).
    Close { code: u16, reason: String },
}

/// How a frame queues at a slow session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "lane", rename_all = "snake_case")]
pub enum Lane {
    /// Never dropped: if it cannot be queued the session is closed (4008).
    Durable,
    /// Latest wins per key, dropped first under pressure (typing, presence).
    Lossy { key: String },
}

impl Envelope {
    /// An envelope carrying `frame`, serialised once here.
    pub fn frame(origin: &str, audience: Audience, lane: Lane, frame: &ServerFrame) -> Envelope {
        let id = (audience.watchers_of.is_some() && !audience.users.is_empty())
            .then(|| uuid::Uuid::now_v7().simple().to_string());
        Envelope {
            v: ENVELOPE_VERSION,
            id,
            origin: origin.to_string(),
            audience,
            payload: Payload::Frame {
                lane,
                json: serde_json::to_string(frame).unwrap_or_default(),
            },
            order: match frame {
                ServerFrame::Message { message } => Some(Order {
                    thread_id: message.thread_id.clone(),
                    seq: message.seq,
                    follows: false,
                }),
                ServerFrame::MessageUpdated { message }
                | ServerFrame::MessageDeleted { message } => Some(Order {
                    thread_id: message.thread_id.clone(),
                    seq: message.seq,
                    follows: true,
                }),
                _ => None,
            },
        }
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
    /// Takes one send from the user's rate budget, or says how long until one is free.
    fn take_send<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<(), Duration>>;
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
