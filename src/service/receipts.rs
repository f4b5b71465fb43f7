//! Read and delivered receipts, and unread counts.

use std::collections::BTreeMap;

use super::{Caller, ServiceError, bad, member_of, publish};
use crate::app::AppState;
use crate::relay::{Audience, Lane};
use crate::store::Receipt as Which;
use crate::store::models::naive;
use crate::ws::frames::{Receipt, ServerFrame, Ts};

/// Records that the caller has read (or received) everything up to `seq` in a thread and
/// tells the members, the caller's other sessions included. A seq beyond the thread's last is
/// taken as the last; one at or below the current receipt changes nothing and sends nothing.
pub async fn mark(
    state: &AppState,
    caller: &Caller,
    which: Which,
    thread_id: &str,
    seq: i64,
) -> Result<(), ServiceError> {
    if seq < 0 {
        return Err(bad("seq must not be negative"));
    }
    let (thread, _) = member_of(state, thread_id, &caller.user_id).await?;
    let seq = seq.min(thread.last_seq);
    let now = Ts::now();
    let moved = state
        .store
        .advance_receipt(
            which,
            thread.id.clone(),
            caller.user_id.clone(),
            seq,
            naive(now),
        )
        .await?;
    if moved {
        let receipt = Receipt {
            thread_id: thread.id.clone(),
            user_id: caller.user_id.clone(),
            seq,
            at: now,
        };
        let frame = match which {
            Which::Read => ServerFrame::Read(receipt),
            Which::Delivered => ServerFrame::Delivered(receipt),
        };
        let members = state.store.member_ids(&thread.id).await?;
        publish(
            state,
            Audience::users_except(members, caller.session_id.clone()),
            Lane::Durable,
            &frame,
        )
        .await;
    }
    Ok(())
}

/// The caller's unread counts: the total and each thread that has any.
pub async fn unread(
    state: &AppState,
    caller: &Caller,
) -> Result<(i64, BTreeMap<String, i64>), ServiceError> {
    let per_thread: BTreeMap<String, i64> = state
        .store
        .unread(&caller.user_id)
        .await?
        .into_iter()
        .collect();
    Ok((per_thread.values().sum(), per_thread))
}
