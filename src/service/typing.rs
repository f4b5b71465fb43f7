//! Typing indicators: relayed to the other members, lossy, and stopped by the server 5 s
//! (configurable) after the last `is_typing: true` so a client that vanishes mid-word does not
//! leave "typing…" up forever.

use tokio::time::Instant;

use super::{Caller, ServiceError, member_of, members, publish};
use crate::context::AppContext;
use crate::envelope::{Audience, Lane};
use crate::expiring::Due;
use crate::protocol::ServerFrame;

async fn announce(app: &AppContext, thread_id: &str, user_id: &str, is_typing: bool) {
    let members = match members::of(app, thread_id).await {
        Ok(m) => m,
        Err(e) => {
            log::warn!("typing: cannot load members of {thread_id}: {e}");
            return;
        }
    };
    let others: Vec<String> = members.iter().filter(|m| *m != user_id).cloned().collect();
    publish(
        app,
        Audience::users(others),
        Lane::Lossy {
            key: format!("typing:{thread_id}:{user_id}"),
        },
        &ServerFrame::Typing {
            thread_id: thread_id.to_string(),
            user_id: user_id.to_string(),
            is_typing,
        },
    )
    .await;
}

/// The caller starts or stops typing in a thread. Only a change is announced: a `true` while
/// the user is already shown typing there only pushes the automatic `false` back.
pub async fn set(
    app: &AppContext,
    caller: &Caller,
    thread_id: &str,
    is_typing: bool,
) -> Result<(), ServiceError> {
    // The cache lets a member through; anything else (a miss, or a cache that trails a
    // change made on another node) is the database's to decide, and to say why not.
    let known = members::cached(app, thread_id).is_some_and(|m| m.contains(&caller.user_id));
    if !known {
        member_of(app, thread_id, &caller.user_id).await?;
    }
    let key = (thread_id.to_string(), caller.user_id.clone());
    let turn = turn_key(&key);
    let _turn = app.typing().turns.lock(&turn).await;
    if is_typing {
        // The deadline counts from this frame, not from when the announcement has gone out.
        let until = Instant::now() + app.config().typing_timeout;
        let Some(epoch) = app.typing().set.renew(key.clone(), until) else {
            // Already shown typing: the deadline moved, and the running timer will see it.
            return Ok(());
        };
        // Only starts are counted: a stop is announced only after a start was.
        if let Err(wait) = app.typing().starts.check(&caller.user_id) {
            app.typing().set.remove(&key);
            return Err(super::limited(wait));
        }
        announce(app, thread_id, &caller.user_id, true).await;
        tokio::spawn(stop_when_due(app.clone(), key, epoch, until));
    } else if app.typing().set.remove(&key) {
        announce(app, thread_id, &caller.user_id, false).await;
    }
    Ok(())
}

/// A key's one timer: sleeps until its deadline, and again while renewals move it; then
/// announces the automatic `false`, unless the key was taken out or put back meanwhile.
async fn stop_when_due(app: AppContext, key: (String, String), epoch: u64, mut until: Instant) {
    let turn = turn_key(&key);
    loop {
        tokio::time::sleep_until(until).await;
        let _turn = app.typing().turns.lock(&turn).await;
        match app.typing().set.due(&key, epoch, Instant::now()) {
            Due::Now => break announce(&app, &key.0, &key.1, false).await,
            Due::Later(t) => until = t,
            Due::Gone => break,
        }
    }
}

/// The stripe key of a (thread, user); two that collide only share a turn.
fn turn_key(key: &(String, String)) -> String {
    format!("{}\u{0}{}", key.0, key.1)
}
