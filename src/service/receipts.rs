//! Read and delivered receipts, and unread counts.

use std::collections::BTreeMap;

use super::{Caller, ServiceError, bad, member_of, tell_members_cached};
use crate::context::AppContext;
use crate::protocol::rest::UnreadCounts;
use crate::protocol::{Receipt, ServerFrame, Ts};
pub use crate::store::Receipt as Which;
use crate::store::models::naive;

/// Records that the caller has read (or received) everything up to `seq` in a thread and
/// tells the members, the caller's other sessions included. A seq beyond the thread's last is
/// taken as the last; one at or below the current receipt changes nothing and sends nothing.
pub async fn mark(
    app: &AppContext,
    caller: &Caller,
    which: Which,
    thread_id: &str,
    seq: i64,
) -> Result<(), ServiceError> {
    if seq < 0 {
        return Err(bad("seq must not be negative"));
    }
    let now = Ts::now();
    // One statement when the receipt moves: only a member has a row to move, so the
    // membership read is needed only when nothing moved, to tell a caller's mistake (no
    // such thread, not a member) from a receipt that was already there.
    let moved = app
        .store()
        .advance_receipt(
            which,
            thread_id.to_string(),
            caller.user_id.clone(),
            seq,
            naive(now),
        )
        .await?;
    let Some(seq) = moved else {
        member_of(app, thread_id, &caller.user_id).await?;
        return Ok(());
    };
    let receipt = Receipt {
        thread_id: thread_id.to_string(),
        user_id: caller.user_id.clone(),
        seq,
        at: now,
    };
    let frame = match which {
        Which::Read => ServerFrame::Read(receipt),
        Which::Delivered => ServerFrame::Delivered(receipt),
    };
    // Committed: a failure from here on is logged, never the caller's.
    tell_members_cached(
        app,
        thread_id,
        &caller.user_id,
        caller.session_id.clone(),
        &frame,
    )
    .await;
    Ok(())
}

/// The caller's unread counts: the total and each thread that has any.
pub async fn unread(app: &AppContext, caller: &Caller) -> Result<UnreadCounts, ServiceError> {
    let per_thread: BTreeMap<String, i64> = app
        .store()
        .unread(&caller.user_id)
        .await?
        .into_iter()
        .collect();
    Ok(UnreadCounts {
        total: per_thread.values().sum(),
        threads: per_thread,
    })
}
