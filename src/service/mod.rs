//! What every entry point shares: WebSocket frames, REST routes and (later) the server API
//! call these functions, so checks, storage and broadcast happen the same way whichever way a
//! request arrives. Presence lives here too: the relay decides transitions, this layer turns
//! them into events.

pub mod broadcast;
pub mod dev;
pub mod host;
pub mod idempotency;
pub mod members;
pub mod messages;
pub mod notifications;
pub mod orgs;
pub mod presence;
pub mod receipts;
pub mod sessions;
pub mod templates;
pub mod threads;
pub mod typing;
pub mod webhooks;

use crate::context::AppContext;
use crate::envelope::{Audience, Envelope, Lane};
use crate::protocol::ServerFrame;
use crate::store::models::{MemberRow, ThreadRow};
use crate::store::{Access, StoreError};

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
    #[error("{0}")]
    Unavailable(String),
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
    app: &AppContext,
    thread_id: &str,
    user_id: &str,
) -> Result<(ThreadRow, MemberRow), ServiceError> {
    match app.store().access(thread_id, user_id).await? {
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
pub async fn publish(app: &AppContext, audience: Audience, lane: Lane, frame: &ServerFrame) {
    send(
        app,
        Envelope::frame(&app.config().node_id, audience, lane, frame),
    )
    .await;
}

/// Read attempts for a committed change's audience after the first one failed, and the wait
/// before the first of them (doubling after each).
const ANNOUNCE_RETRIES: u32 = 4;
const ANNOUNCE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(250);

/// Tells every member of a thread (every session but `except`) about a change that has
/// committed. The audience is read from the database after the commit, so it is the
/// membership the change landed in (an edit's body never reaches a member who has left). If
/// that read fails, the change is still the caller's success: the read is retried in the
/// background (`ANNOUNCE_RETRIES` times, backing off; at most `LATE_ANNOUNCES` such retries
/// per node at once), to the membership at the time of the retry, and only then logged as
/// not broadcast. A retry whose change a later one has superseded sends nothing
/// (`still_current`).
pub async fn tell_members(
    app: &AppContext,
    thread_id: &str,
    except: Option<String>,
    frame: &ServerFrame,
) {
    let first = app.store().member_ids(thread_id).await;
    announce_to(app, thread_id, first, except, frame).await;
}

/// [`tell_members`] for a receipt: the audience comes from the membership cache
/// (`members::of`), and always holds `actor`, whose other sessions are told even if the
/// cache trails their joining by a moment.
pub async fn tell_members_cached(
    app: &AppContext,
    thread_id: &str,
    actor: &str,
    except: Option<String>,
    frame: &ServerFrame,
) {
    let first = members::of(app, thread_id).await.map(|m| {
        let mut users = m.to_vec();
        if !users.iter().any(|u| u == actor) {
            users.push(actor.to_string());
        }
        users
    });
    announce_to(app, thread_id, first, except, frame).await;
}

/// Publishes `frame` to `first` (the members as first read), or retries the read as
/// [`tell_members`] says when it failed.
async fn announce_to(
    app: &AppContext,
    thread_id: &str,
    first: Result<Vec<String>, StoreError>,
    except: Option<String>,
    frame: &ServerFrame,
) {
    let e = match first {
        Ok(members) => {
            return publish(
                app,
                Audience::users_except(members, except),
                Lane::Durable,
                frame,
            )
            .await;
        }
        Err(e) => e,
    };
    let Ok(place) = app.late_announces().clone().try_acquire_owned() else {
        log::warn!("thread {thread_id}: change committed but not broadcast (retries full): {e}");
        return;
    };
    log::warn!("thread {thread_id}: change committed, reading its members failed, retrying: {e}");
    let (app, thread_id, frame) = (app.clone(), thread_id.to_string(), frame.clone());
    tokio::spawn(async move {
        let _place = place;
        let mut wait = ANNOUNCE_BACKOFF;
        for attempt in 1..=ANNOUNCE_RETRIES {
            tokio::time::sleep(wait).await;
            wait *= 2;
            let read = async {
                let members = app.store().member_ids(&thread_id).await?;
                Ok::<_, StoreError>((members, still_current(&app, &frame).await?))
            };
            match read.await {
                Ok((_, false)) => {
                    log::info!(
                        "thread {thread_id}: change superseded before retry {attempt}; its successor's event stands"
                    );
                    return;
                }
                Ok((members, true)) => {
                    let audience = Audience::users_except(members, except);
                    publish(&app, audience, Lane::Durable, &frame).await;
                    log::info!("thread {thread_id}: change broadcast on retry {attempt}");
                    return;
                }
                Err(e) if attempt == ANNOUNCE_RETRIES => log::warn!(
                    "thread {thread_id}: change committed but not broadcast after {attempt} retries: {e}"
                ),
                Err(_) => {}
            }
        }
    });
}

/// Whether a change's frame still says the latest about its message or receipt. A retried
/// announcement that a later change has superseded is not sent, so that members do not end
/// on the older state (a body edited again, a message deleted since, a receipt moved on);
/// the later change's own event carries the news. Other frames are always current.
async fn still_current(app: &AppContext, frame: &ServerFrame) -> Result<bool, StoreError> {
    Ok(match frame {
        ServerFrame::MessageUpdated { message } => {
            app.store().message(&message.id).await?.is_some_and(|row| {
                let now = crate::protocol::Message::from(row);
                !now.deleted && now.edited_at == message.edited_at
            })
        }
        ServerFrame::Read(r) | ServerFrame::Delivered(r) => {
            match app.store().access(&r.thread_id, &r.user_id).await? {
                Access::Member(_, m) if matches!(frame, ServerFrame::Read(_)) => {
                    m.read_seq == r.seq
                }
                Access::Member(_, m) => m.delivered_seq == r.seq,
                _ => false,
            }
        }
        _ => true,
    })
}

/// Hands an envelope to the relay; a failure is logged (the event is lost, the data is not).
pub async fn send(app: &AppContext, env: Envelope) {
    if let Err(e) = app.relay().publish(env).await {
        log::warn!("relay {}: publish failed: {e}", app.relay().name());
    }
}

/// Takes one action from the user's write budget (`RATE_PER_S` / `RATE_BURST`, shared by
/// every node): sends, edits, deletes, thread creation, title and member changes.
pub async fn rate(app: &AppContext, user: &str) -> Result<(), ServiceError> {
    app.relay().take_send(user).await.map_err(limited)
}

/// The `rate_limited` error for a budget that frees up after `wait`, counted.
fn limited(wait: std::time::Duration) -> ServiceError {
    crate::metrics::rate_limited();
    ServiceError::RateLimited {
        retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
    }
}

/// How many of `items`, taken from the front, fit in half the session's outgoing byte budget
/// (at least one): a page that could not be queued whole would close the session with 4008
/// instead of answering it. The caller shortens the page and says there is more.
pub fn fits<T: serde::Serialize>(app: &AppContext, items: impl Iterator<Item = T>) -> usize {
    let budget = app.config().outbox_bytes / 2;
    let mut used = 0;
    let mut n = 0;
    for item in items {
        used += serde_json::to_vec(&item).map_or(0, |v| v.len());
        if n > 0 && used > budget {
            break;
        }
        n += 1;
    }
    n
}

/// Largest `metadata` or `data` object, in bytes of JSON.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// Serialises a client's JSON object, refusing one over `MAX_JSON_BYTES` (`too_large`,
/// naming `field`).
pub fn check_json_size(field: &str, v: serde_json::Value) -> Result<String, ServiceError> {
    let s = v.to_string();
    if s.len() > MAX_JSON_BYTES {
        return Err(ServiceError::TooLarge(format!(
            "{field} is larger than {} KiB of JSON",
            MAX_JSON_BYTES / 1024
        )));
    }
    Ok(s)
}

/// Longest user id, in bytes (as long as a token's `sub`).
pub const MAX_USER_ID_BYTES: usize = crate::auth::MAX_SUB_BYTES;

/// A user id someone names (a member, a recipient): 1 to 256 bytes, no control characters.
pub fn check_user_id(u: &str) -> Result<(), ServiceError> {
    if u.is_empty() || u.len() > MAX_USER_ID_BYTES || u.chars().any(char::is_control) {
        return Err(bad(
            "user ids must be 1 to 256 bytes without control characters",
        ));
    }
    Ok(())
}

/// Checks a limit, a page size or a cursor-like count from a client.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ServiceError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(bad(format!("limit must be between 1 and {max}, got {n}"))),
    }
}
