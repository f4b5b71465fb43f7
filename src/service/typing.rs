//! Typing indicators: relayed to the other members, lossy, and stopped by the server 5 s
//! (configurable) after the last `is_typing: true` so a client that vanishes mid-word does not
//! leave "typing…" up forever.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Caller, ServiceError, member_of, publish};
use crate::app::AppState;
use crate::relay::{Audience, Lane};
use crate::ws::frames::ServerFrame;

/// Who is typing where, each with a generation so a stale auto-stop timer does nothing.
#[derive(Default)]
pub struct Typing {
    active: Mutex<HashMap<(String, String), u64>>,
    next_gen: Mutex<u64>,
}

impl Typing {
    fn start(&self, key: (String, String)) -> u64 {
        let generation = {
            let mut g = self.next_gen.lock().unwrap_or_else(|p| p.into_inner());
            *g += 1;
            *g
        };
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, generation);
        generation
    }

    /// Ends the typing state; with `generation`, only if no newer `true` came since.
    fn stop(&self, key: &(String, String), generation: Option<u64>) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match (active.get(key), generation) {
            (Some(g), Some(want)) if *g != want => false,
            (Some(_), _) => {
                active.remove(key);
                true
            }
            (None, _) => false,
        }
    }
}

async fn announce(state: &AppState, thread_id: &str, user_id: &str, is_typing: bool) {
    let members = match state.store.member_ids(thread_id).await {
        Ok(m) => m,
        Err(e) => {
            log::warn!("typing: cannot load members of {thread_id}: {e}");
            return;
        }
    };
    let others: Vec<String> = members.into_iter().filter(|m| m != user_id).collect();
    publish(
        state,
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

/// The caller starts or stops typing in a thread.
pub async fn set(
    state: &AppState,
    caller: &Caller,
    thread_id: &str,
    is_typing: bool,
) -> Result<(), ServiceError> {
    member_of(state, thread_id, &caller.user_id).await?;
    let key = (thread_id.to_string(), caller.user_id.clone());
    if is_typing {
        let generation = state.typing.start(key.clone());
        announce(state, thread_id, &caller.user_id, true).await;
        let state = state.clone();
        let after = state.config.typing_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if state.typing.stop(&key, Some(generation)) {
                announce(&state, &key.0, &key.1, false).await;
            }
        });
    } else if state.typing.stop(&key, None) {
        announce(state, thread_id, &caller.user_id, false).await;
    }
    Ok(())
}
