//! Who is online. Sessions ask the relay when they open and close, and it says whether that
//! made the user online or offline anywhere (it also reports users whose last session died
//! with a node). Presence turns those transitions into `presence` events for watchers and
//! direct-thread partners, records `last_seen`, and answers lookups.

use tokio::sync::mpsc;

use crate::app::AppState;
use crate::relay::{Audience, Lane};
use crate::service::ServiceError;
use crate::store::models::{naive, ts};
use crate::ws::frames::{Presence, ServerFrame, Ts};

/// Transitions queued for the presence task; senders wait when it is full (nothing is
/// dropped, and the wait slows only session opens and closes).
pub const TRANSITION_QUEUE: usize = 16_384;

/// A user came online or went offline anywhere in the cluster, as the relay decided.
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

/// Where relays send transitions; waits when the queue is full rather than losing one.
pub async fn tell(tx: &mpsc::Sender<Transition>, t: Transition) {
    if tx.send(t).await.is_err() {
        log::warn!("presence task gone; a presence change was not announced");
    }
}
/// Most users one lookup may name.
pub const MAX_LOOKUP: usize = 500;

/// Presence of each of `user_ids`, in order.
pub async fn lookup(state: &AppState, user_ids: &[String]) -> Result<Vec<Presence>, ServiceError> {
    if user_ids.len() > MAX_LOOKUP {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_LOOKUP} users per presence lookup"
        )));
    }
    let online = state.relay.online(user_ids).await;
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
        ..Audience::default()
    };
    let lane = Lane::Lossy {
        key: format!("presence:{}", p.user_id),
    };
    crate::service::publish(state, audience, lane, &ServerFrame::Presence(p)).await;
}

async fn offline(state: &AppState, user_id: String, at: Ts) {
    log::debug!("{user_id} offline");
    // last_seen is stored before the event goes out, so a lookup made on receiving it
    // agrees with it.
    let now = naive(Ts::now());
    if let Err(e) = state
        .store
        .upsert_user(user_id.clone(), None, Some(naive(at)), now)
        .await
    {
        log::warn!("presence: cannot record last_seen of {user_id}: {e}");
    }
    let p = Presence {
        user_id,
        online: false,
        last_seen: Some(at),
    };
    announce(state, p).await;
}

/// Turns transitions into stored last-seen times and `presence` events, one at a time so a
/// user's online and offline go out in order.
pub async fn run(state: AppState, mut rx: mpsc::Receiver<Transition>) {
    while let Some(t) = rx.recv().await {
        match t {
            Transition::Online { user_id, name } => {
                log::debug!("{user_id} online");
                let p = Presence {
                    user_id: user_id.clone(),
                    online: true,
                    last_seen: None,
                };
                announce(&state, p).await;
                let now = naive(Ts::now());
                if let Err(e) = state
                    .store
                    .upsert_user(user_id.clone(), name, None, now)
                    .await
                {
                    log::warn!("presence: cannot record {user_id}: {e}");
                }
            }
            Transition::Offline { user_id, at } => offline(&state, user_id, at).await,
            Transition::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
