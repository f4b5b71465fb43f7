//! What every entry point shares: WebSocket frames, REST routes and (later) the server API
//! call these functions, so checks, storage and broadcast happen the same way whichever way a
//! request arrives.

pub mod messages;
pub mod receipts;
pub mod threads;
pub mod typing;

use crate::app::AppState;
use crate::relay::{Audience, Envelope, Lane};
use crate::store::models::{MemberRow, ThreadRow};
use crate::store::{Access, StoreError};
use crate::ws::frames::ServerFrame;

/// Why a service call failed; `error.rs` maps each variant to a contract code once.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("rate limited")]
    RateLimited { retry_after_ms: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for a `bad_request`.
pub fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(msg.into())
}

/// The user acting, and the session they act from (none over REST).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub session_id: Option<String>,
}

impl Caller {
    /// A caller without a session (REST).
    pub fn rest(user_id: &str) -> Self {
        Caller {
            user_id: user_id.to_string(),
            session_id: None,
        }
    }
}

/// The thread and the user's membership, or `not_found` / `forbidden`.
pub async fn member_of(
    state: &AppState,
    thread_id: &str,
    user_id: &str,
) -> Result<(ThreadRow, MemberRow), ServiceError> {
    match state.store.access(thread_id, user_id).await? {
        Access::NoThread => Err(ServiceError::NotFound("no such thread".into())),
        Access::NotMember(_) => Err(ServiceError::Forbidden(
            "not a member of this thread".into(),
        )),
        Access::Member(t, m) => Ok((t, m)),
    }
}

/// Publishes a frame through the relay. The caller's write has committed by now, so a relay
/// failure is logged rather than returned: the client that asked still gets its ack, and
/// others catch up with `history`.
pub async fn publish(state: &AppState, audience: Audience, lane: Lane, frame: &ServerFrame) {
    let env = Envelope::frame(&state.config.node_id, audience, lane, frame);
    if let Err(e) = state.relay.publish(env).await {
        log::warn!("relay {}: publish failed: {e}", state.relay.name());
    }
}

/// Checks a limit, a page size or a cursor-like count from a client.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ServiceError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(bad(format!("limit must be between 1 and {max}, got {n}"))),
    }
}
