//! Who is online. On one node the registry knows; presence turns its first-open and
//! last-close transitions into `presence` events for watchers and direct-thread partners,
//! records `last_seen`, and answers lookups.

use tokio::sync::mpsc;

use crate::app::AppState;
use crate::registry::{Online, Transition};
use crate::relay::{Audience, Lane};
use crate::service::ServiceError;
use crate::store::models::{naive, ts};
use crate::ws::frames::{Presence, ServerFrame, Ts};

/// Transitions queued between the registry and the presence task.
pub const TRANSITION_QUEUE: usize = 16_384;
/// Most users one lookup may name.
pub const MAX_LOOKUP: usize = 500;

/// Presence of each of `user_ids`, in order.
pub async fn lookup(state: &AppState, user_ids: &[String]) -> Result<Vec<Presence>, ServiceError> {
    if user_ids.len() > MAX_LOOKUP {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_LOOKUP} users per presence lookup"
        )));
    }
    let online = state
        .registry
        .send(Online {
            user_ids: user_ids.to_vec(),
        })
        .await
        .unwrap_or_else(|_| vec![false; user_ids.len()]);
    let seen = state.store.last_seen(user_ids).await?;
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

async fn announce(state: &AppState, p: Presence) {
    let partners = match state.store.direct_partners(&p.user_id).await {
        Ok(v) => v,
        Err(e) => {
            log::warn!("presence: cannot load partners of {}: {e}", p.user_id);
            Vec::new()
        }
    };
    let audience = Audience {
        users: partners,
        watchers_of: Some(p.user_id.clone()),
        except_session: None,
    };
    let lane = Lane::Lossy {
        key: format!("presence:{}", p.user_id),
    };
    crate::service::publish(state, audience, lane, &ServerFrame::Presence(p)).await;
}

/// Turns registry transitions into stored last-seen times and `presence` events, one at a
/// time so a user's online and offline go out in order.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Transition>) {
    while let Some(t) = rx.recv().await {
        let now = naive(Ts::now());
        match t {
            Transition::Online { user_id, name } => {
                if let Err(e) = state
                    .store
                    .upsert_user(user_id.clone(), name, None, now)
                    .await
                {
                    log::warn!("presence: cannot record {user_id}: {e}");
                }
                log::debug!("{user_id} online");
                let p = Presence {
                    user_id,
                    online: true,
                    last_seen: None,
                };
                announce(&state, p).await;
            }
            Transition::Offline { user_id, at } => {
                let at = naive(at);
                if let Err(e) = state
                    .store
                    .upsert_user(user_id.clone(), None, Some(at), now)
                    .await
                {
                    log::warn!("presence: cannot record last_seen of {user_id}: {e}");
                }
                log::debug!("{user_id} offline");
                let p = Presence {
                    user_id,
                    online: false,
                    last_seen: Some(ts(at)),
                };
                announce(&state, p).await;
            }
        }
    }
}
