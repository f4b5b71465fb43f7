//! Broadcasts from the host backend: a JSON event delivered live to the sessions of an
//! organisation's users or of given users, never stored. It is addressed to the users who are
//! online, so it reaches only the nodes they are on.

use super::{ServiceError, bad, check_json_size, check_user_id, orgs, publish};
use crate::context::AppContext;
use crate::envelope::{Audience, Lane};
use crate::protocol::ServerFrame;
use crate::protocol::rest::BroadcastRequest;

/// Users addressed by one envelope; a large organisation goes out in several.
const USERS_PER_ENVELOPE: usize = 1000;
/// Most users one broadcast may name directly.
pub const MAX_USERS: usize = 10_000;
/// Longest `channel`, in chars.
pub const MAX_CHANNEL_CHARS: usize = 128;

/// Delivers `req.event` live; returns how many users were online to get it.
pub async fn send(app: &AppContext, req: BroadcastRequest) -> Result<usize, ServiceError> {
    let (users, default_channel) = match (&req.org, req.user_ids) {
        (Some(org), None) => (orgs::members(app, org).await?, format!("org:{org}")),
        (None, Some(users)) => {
            if users.is_empty() {
                return Err(bad("user_ids is empty"));
            }
            if users.len() > MAX_USERS {
                return Err(ServiceError::TooLarge(format!(
                    "at most {MAX_USERS} user_ids per broadcast"
                )));
            }
            for u in &users {
                check_user_id(u)?;
            }
            (
                super::threads::dedup(users.into_iter()),
                "users".to_string(),
            )
        }
        _ => return Err(bad("give exactly one of org or user_ids")),
    };
    let channel = req.channel.unwrap_or(default_channel);
    if channel.is_empty() || channel.chars().count() > MAX_CHANNEL_CHARS {
        return Err(bad(format!(
            "channel must be 1 to {MAX_CHANNEL_CHARS} chars"
        )));
    }
    // The event's size is bounded like any other object the host sends.
    check_json_size("event", req.event.clone())?;
    let online = orgs::online_among(app, users).await;
    let frame = ServerFrame::Broadcast {
        channel,
        event: req.event,
    };
    for chunk in online.chunks(USERS_PER_ENVELOPE) {
        publish(app, Audience::users(chunk.to_vec()), Lane::Durable, &frame).await;
    }
    Ok(online.len())
}
