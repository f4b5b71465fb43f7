//! Who is online. The relay decides when a user's first session anywhere opens or last one
//! closes (it also reports users whose last session died with a node) and queues a
//! [`Transition`]; the presence task here turns those into `presence` events for watchers and
//! direct-thread partners and records `last_seen`. Lookups and watches are here too.

use std::collections::HashSet;

use tokio::sync::mpsc;

use super::{Caller, ServiceError, publish};
use crate::config::PresenceScope;
use crate::context::AppContext;
use crate::envelope::{Audience, Envelope, Lane};
use crate::protocol::{Presence, ServerFrame, Ts};
use crate::registry::Watch;
use crate::relay::Transition;
use crate::store::models::{naive, ts};

/// Most users one lookup (or one watch) may name.
pub const MAX_LOOKUP: usize = 500;

/// Of `user_ids`, in order, those whose presence `viewer` may see (`PRESENCE_SCOPE`): with
/// `shared`, the users who share a thread or an organisation with them.
pub async fn visible(
    app: &AppContext,
    viewer: &str,
    user_ids: Vec<String>,
) -> Result<Vec<String>, ServiceError> {
    if app.config().presence_scope == PresenceScope::All {
        return Ok(user_ids);
    }
    let seen: HashSet<String> = app
        .store()
        .in_scope(viewer, &user_ids)
        .await?
        .into_iter()
        .collect();
    Ok(user_ids.into_iter().filter(|u| seen.contains(u)).collect())
}

/// Presence of each of `user_ids` that `viewer` may see, in order; the others are left out.
pub async fn lookup_for(
    app: &AppContext,
    viewer: &str,
    user_ids: Vec<String>,
) -> Result<Vec<Presence>, ServiceError> {
    if user_ids.len() > MAX_LOOKUP {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_LOOKUP} users per presence lookup"
        )));
    }
    let ids = visible(app, viewer, user_ids).await?;
    lookup(app, &ids).await
}

/// Presence of each of `user_ids`, in order (unscoped: the server API, and callers that
/// filtered already).
pub async fn lookup(app: &AppContext, user_ids: &[String]) -> Result<Vec<Presence>, ServiceError> {
    if user_ids.len() > MAX_LOOKUP {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_LOOKUP} users per presence lookup"
        )));
    }
    let online = app.relay().online(user_ids).await;
    let seen = app.store().last_seen(user_ids).await?;
    Ok(user_ids
        .iter()
        .zip(online)
        .map(|(u, on)| Presence {
            user_id: u.clone(),
            online: on,
            last_seen: if on {
                None
            } else {
                seen.iter()
                    .find(|(id, _)| id == u)
                    .and_then(|(_, t)| t.map(ts))
            },
        })
        .collect())
}

/// Starts (or stops) the caller's session watching `user_ids`, and returns their presence
/// when starting. The watch is registered first and the lookup made after, so a change in
/// between is sent, not missed. For a user this node now watches for the first time (or no
/// longer watches) the relay subscribes (unsubscribes) before this returns.
pub async fn watch(
    app: &AppContext,
    caller: &Caller,
    user_ids: Vec<String>,
    on: bool,
) -> Result<Vec<Presence>, ServiceError> {
    if user_ids.len() > MAX_LOOKUP {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_LOOKUP} users per watch"
        )));
    }
    let Some(session_id) = caller.session_id.clone() else {
        return Err(super::bad("watching presence needs a session"));
    };
    if !on {
        register(app, &session_id, user_ids, false).await?;
        return Ok(Vec::new());
    }
    // Users outside the caller's scope are not watched (so send no events) and left out.
    let mut user_ids = visible(app, &caller.user_id, user_ids).await?;
    register(app, &session_id, user_ids.clone(), true).await?;
    if app.config().presence_scope == PresenceScope::Shared && !user_ids.is_empty() {
        // Asked again now the watch is in place: a scope that shrank in between (its unwatch
        // delivered before this watch) would otherwise leave the watch behind.
        let still: HashSet<String> = visible(app, &caller.user_id, user_ids.clone())
            .await?
            .into_iter()
            .collect();
        let (kept, gone): (Vec<String>, Vec<String>) =
            user_ids.into_iter().partition(|u| still.contains(u));
        if !gone.is_empty() {
            register(app, &session_id, gone, false).await?;
        }
        user_ids = kept;
    }
    lookup(app, &user_ids).await
}

/// Starts (or stops) one session's watches in the registry, and subscribes (unsubscribes)
/// the relay for users this node now watches first (no longer watches).
async fn register(
    app: &AppContext,
    session_id: &str,
    user_ids: Vec<String>,
    on: bool,
) -> Result<(), ServiceError> {
    let edges = app
        .registry()
        .send(Watch {
            session_id: session_id.to_string(),
            user_ids,
            watch: on,
        })
        .await
        .unwrap_or(Ok(Vec::new()))
        .map_err(|e| ServiceError::TooLarge(e.to_string()))?;
    for user in edges {
        app.relay().watch(&user, on).await;
    }
    Ok(())
}

/// After `user` stopped sharing `thread_id` with its members: the watches between `user`
/// and the members the presence scope no longer joins them to end, both ways, on every node.
/// The change has committed: a failure is logged, and the watches stay until the sessions
/// close.
pub async fn narrow(app: &AppContext, user: &str, thread_id: &str) {
    if app.config().presence_scope == PresenceScope::All {
        return;
    }
    let gone = match out_of_scope(app, user, thread_id).await {
        Ok(gone) if gone.is_empty() => return,
        Ok(gone) => gone,
        Err(e) => {
            log::warn!("presence: cannot narrow the watches of {user} after {thread_id}: {e}");
            return;
        }
    };
    let node = &app.config().node_id;
    let mine = Envelope::unwatch(node, Audience::users(vec![user.to_string()]), gone.clone());
    super::send(app, mine).await;
    let theirs = Envelope::unwatch(node, Audience::users(gone), vec![user.to_string()]);
    super::send(app, theirs).await;
}

/// The members of `thread_id` with whom `user` no longer shares a thread or an organisation.
async fn out_of_scope(
    app: &AppContext,
    user: &str,
    thread_id: &str,
) -> Result<Vec<String>, ServiceError> {
    let members = app.store().member_ids(thread_id).await?;
    let still: HashSet<String> = visible(app, user, members.clone())
        .await?
        .into_iter()
        .collect();
    Ok(members.into_iter().filter(|m| !still.contains(m)).collect())
}

async fn announce(app: &AppContext, p: Presence) {
    let partners = match app.store().direct_partners(&p.user_id).await {
        Ok(v) => v,
        Err(e) => {
            log::warn!("presence: cannot load partners of {}: {e}", p.user_id);
            Vec::new()
        }
    };
    let audience = Audience {
        users: partners,
        watchers_of: Some(p.user_id.clone()),
        ..Audience::default()
    };
    let lane = Lane::Lossy {
        key: format!("presence:{}", p.user_id),
    };
    publish(app, audience, lane, &ServerFrame::Presence(p)).await;
}

async fn offline(app: &AppContext, user_id: String, at: Ts) {
    log::debug!("{user_id} offline");
    // last_seen is stored before the event goes out, so a lookup made on receiving it
    // agrees with it.
    let now = naive(Ts::now());
    let p = Presence {
        user_id: user_id.clone(),
        online: false,
        last_seen: Some(at),
    };
    let hook = super::webhooks::wants(app, "presence.changed").then(|| p.clone());
    if let Err(e) = app
        .store()
        .upsert_user(user_id.clone(), None, Some(naive(at)), now, hook)
        .await
    {
        log::warn!("presence: cannot record last_seen of {user_id}: {e}");
    }
    announce(app, p).await;
}

/// Turns transitions into stored last-seen times and `presence` events, one at a time so a
/// user's online and offline go out in order.
pub async fn run(app: AppContext, mut rx: mpsc::Receiver<Transition>) {
    while let Some(t) = rx.recv().await {
        match t {
            Transition::Online { user_id, name } => {
                log::debug!("{user_id} online");
                let p = Presence {
                    user_id: user_id.clone(),
                    online: true,
                    last_seen: None,
                };
                let hook = super::webhooks::wants(&app, "presence.changed").then(|| p.clone());
                announce(&app, p).await;
                let now = naive(Ts::now());
                if let Err(e) = app
                    .store()
                    .upsert_user(user_id.clone(), name, None, now, hook)
                    .await
                {
                    log::warn!("presence: cannot record {user_id}: {e}");
                }
            }
            Transition::Offline { user_id, at } => offline(&app, user_id, at).await,
            Transition::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
